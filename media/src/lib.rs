//! The media pipeline of hap-bridge: RTSP in, H.264 passthrough or re-encode, RTP + SRTP + RTCP out.
//!
//! `media` knows nothing of HomeKit: its input is plain stream parameters (size, fps, bitrate,
//! payload type, SSRC, SRTP suite + key + salt, MTU, destination) and a camera
//! source.
//!
//! # Structure (runtime half, feature `runtime`)
//!
//! ```text
//!  source::rtsp (retina, reconnect) ─┐                       ┌─ passthrough consumer
//!  source::test_pattern (openh264) ──┴─► hub::Hub (GOP) ──────┼─ transcode::Transcoder (thread)
//!                                                             └─ snapshot::Snapshotter (JPEG)
//! ```
//!
//! - [`frame`]: the [`frame::AccessUnit`] every stage passes around.
//! - [`source`]: RTSP ingest and the built-in test pattern.
//! - [`hub`]: one source session per camera, shared by every consumer; newest frame wins.
//! - [`transcode`]: decode, scale and re-encode on a dedicated thread.
//! - [`snapshot`]: JPEG of the newest decodable picture.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod frame;

#[cfg(feature = "runtime")]
pub mod error;
#[cfg(feature = "runtime")]
pub mod hub;
#[cfg(feature = "runtime")]
pub mod snapshot;
#[cfg(feature = "runtime")]
pub mod source;
#[cfg(feature = "runtime")]
pub mod transcode;

#[cfg(feature = "runtime")]
pub use error::{Error, ErrorKind};
