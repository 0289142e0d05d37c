//! Test and bench support shared across the workspace: the helpers the root package's e2e tests
//! and benches and media's runtime tests have in common. Not published; only a dev-dependency.
//!
//! # Structure
//!
//! - [`rtsp_fixture`]: the GStreamer RTSP server fixture (`fixtures/rtsp_server.py` in this
//!   crate) as a child process, a stand-in IP camera.
//! - [`srtp_sdp`]: the SDP file an ffmpeg receiver reads for one SRTP H.264 stream.
//! - `controller` (feature `bridge`): a HAP controller over a real TCP socket, built on
//!   hap-proto's `controller` feature.
//! - `camera_util` (feature `bridge`): a HomeKit controller's side of camera streaming (Setup
//!   Endpoints, Selected RTP Stream Configuration, SRTP receivers, SRTCP keep-alives).
//! - `util` (feature `bridge`): starting the bridge binary (`util::BridgeBinary` names it: only
//!   the root package's tests and benches know its path), its admin API, outside peers.
//!
//! Every helper panics on failure: in a test, a panic is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![warn(missing_docs)]

#[cfg(feature = "bridge")]
pub mod camera_util;
#[cfg(feature = "bridge")]
pub mod controller;
pub mod rtsp_fixture;
pub mod srtp_sdp;
#[cfg(feature = "bridge")]
pub mod util;
