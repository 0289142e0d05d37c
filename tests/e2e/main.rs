//! End-to-end tests of the `hap-bridge` binary: one test crate (STYLE.md), modules inside. Each
//! test starts the real binary on loopback (OS-chosen ports, a temporary data directory,
//! mDNS restricted to `lo`) and drives it as a controller would.
// Test code: a panic is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod accessories;
mod api;
mod audio;
mod camera;
mod interop;
mod metrics;
mod motion;
mod page;
mod pairing;
mod server;

// The shared harness (the test-support crate): the HAP controller, camera streaming, the RTSP
// fixture, the bridge process.
use test_support::{camera_util, controller, rtsp_fixture};

/// The support crate's process and HTTP helpers, with [`Bridge`](util::Bridge) bound to this
/// package's binary.
mod util {
    pub(crate) use test_support::util::*;

    /// The bridge under test, started from the binary Cargo built for these tests.
    pub(crate) type Bridge = test_support::util::Bridge<HapBridge>;

    /// Names the `hap-bridge` binary of this package.
    pub(crate) enum HapBridge {}

    impl BridgeBinary for HapBridge {
        const PATH: &'static str = env!("CARGO_BIN_EXE_hap-bridge");
    }
}
