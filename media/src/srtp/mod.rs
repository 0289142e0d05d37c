//! SRTP.
