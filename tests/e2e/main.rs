//! End-to-end tests of the `hap-bridge` binary: one test crate (STYLE.md), modules inside. Each
//! test starts the real binary on loopback (OS-chosen ports, a temporary data directory,
//! mDNS restricted to `lo`) and drives it as a controller would.
// Test code: a panic is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod accessories;
mod api;
mod camera;
mod camera_util;
mod controller;
mod interop;
mod metrics;
mod page;
mod pairing;
#[path = "../../media/tests/runtime/fixture.rs"]
mod rtsp_fixture;
mod server;
#[path = "../../media/tests/runtime/srtp_sdp.rs"]
mod srtp_sdp;
mod util;
