//! The media pipeline of hap-bridge: RTSP in, H.264 passthrough or re-encode, RTP + SRTP + RTCP out.
//!
//! `media` knows nothing of the protocol that negotiates its streams: its input is plain stream
//! parameters (size, fps, bitrate, payload type, SSRC, SRTP suite + key + salt, MTU, destination,
//! RTCP interval) and a camera source.
//!
//! ```text
//!  camera ──RTSP──▶ NAL units ──h264──▶ access units ──rtp──▶ RTP packets ──srtp──▶ UDP
//!                                                               ▲
//!                              controller ──SRTCP──▶ srtp ──▶ rtcp (RR stats, liveness)
//! ```
//!
//! # Structure
//!
//! The pure modules below perform no I/O: they never open a socket, read a clock, start a thread
//! or draw random numbers (initial sequence numbers, timestamps and times are parameters). They
//! build with `--no-default-features`.
//!
//! - [`h264`]: Annex B / AVCC splitting, access-unit grouping, SPS parsing, SDP `fmtp` values.
//! - [`rtp`]: RTP header codec, the RFC 6184 H.264 packetizer and a small depacketizer.
//! - [`srtp`]: SRTP/SRTCP protect and unprotect (RFC 3711; AES-CM-128/256 + HMAC-SHA1-80, NULL).
//! - [`rtcp`]: Sender Reports out, Receiver Reports and other compound packets in.
//! - [`stats`]: per-stream counters and a latency histogram.
//! - [`audio`]: audio RTP packets and G.711 (the Opus encoder, camera audio decoding,
//!   resampling and the audio sender are runtime).
//! - [`motion`]: a motion detector on small luma pictures (its thread, `motion::watch`, is
//!   runtime).
//!
//! The runtime half (feature `runtime`, on by default) runs the sources and codecs:
//!
//! ```text
//!  source::rtsp (retina, reconnect) ─┐                      ┌─ passthrough consumer
//!  source::test_pattern (openh264) ──┴─► hub::Hub (GOP) ─────┼─ transcode::Transcoder (thread)
//!                                                            └─ snapshot::Snapshotter (JPEG)
//! ```
//!
//! - [`frame`]: the [`frame::AccessUnit`] every runtime stage passes around.
//! - `source`: RTSP ingest with reconnect, and the built-in test pattern.
//! - `hub`: one source session per camera, shared by every consumer; newest frame wins.
//! - `transcode`: decode, scale and re-encode on a dedicated thread.
//! - `snapshot`: JPEG of the newest decodable picture.
//! - `camera`: main stream + substream; a request picks the stream that fits best.
//! - `motion::watch`: a camera's motion detector on its own thread.
//!
//! ```
//! use bytes::Bytes;
//! use media::rtp::{H264Packetizer, RtpConfig};
//! use media::srtp::{SrtpContext, SrtpSuite};
//!
//! let mut packetizer = H264Packetizer::new(RtpConfig {
//!     ssrc: 0x1234_5678,
//!     payload_type: 99,
//!     mtu: 1378 - SrtpSuite::AesCm128HmacSha1_80.rtp_overhead(),
//!     initial_sequence: 4321, // random in real use
//!     initial_timestamp: 98_765,
//! })?;
//! let mut srtp = SrtpContext::new(SrtpSuite::AesCm128HmacSha1_80, &[7; 16], &[9; 14])?;
//!
//! // One IDR access unit (NAL units without start codes) with its parameter sets.
//! let sps = Bytes::from_static(&[0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x00, 0xa0, 0x2f, 0xf9]);
//! let pps = Bytes::from_static(&[0x68, 0xcb, 0x83, 0xcb, 0x20]);
//! let idr = Bytes::from(vec![0x65; 5000]);
//! let mut packets = Vec::new();
//! packetizer.packetize(&[sps, pps, idr], 0, &mut packets)?;
//! assert_eq!(packets.len(), 5); // STAP-A (SPS + PPS), then 4 FU-A fragments
//! for p in &packets {
//!     let wire = srtp.protect_rtp(p)?;
//!     assert!(wire.len() <= 1378);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod audio;
pub mod h264;
pub mod motion;
pub mod rtcp;
pub mod rtp;
pub mod srtp;
pub mod stats;

pub mod frame;

#[cfg(feature = "runtime")]
pub mod camera;
#[cfg(feature = "runtime")]
pub mod decode;
#[cfg(feature = "runtime")]
mod encoded;
#[cfg(feature = "runtime")]
pub mod error;
#[cfg(feature = "runtime")]
pub mod hub;
#[cfg(feature = "runtime")]
pub mod session;
#[cfg(feature = "runtime")]
pub mod snapshot;
#[cfg(feature = "runtime")]
pub mod source;
#[cfg(feature = "runtime")]
pub mod transcode;

#[cfg(feature = "runtime")]
pub use error::{Error, ErrorKind};

#[cfg(feature = "fuzzing")]
pub mod fuzzing;
