//! The media pipeline of hap-bridge: RTSP in, H.264 passthrough or re-encode, RTP + SRTP + RTCP out.
//!
//! `media` knows nothing of HomeKit: its input is plain stream parameters (size, fps, bitrate,
//! payload type, SSRC, SRTP suite + key + salt, MTU, destination, RTCP interval) and a camera
//! source.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
