//! End-to-end tests of the `hap-bridge` binary: one test binary (STYLE.md "Tests"), one module
//! per area. Each test starts the real binary on 127.0.0.1 with OS-chosen ports
//! ([`util::Bridge`]) and drives it from outside.
// Integration tests may unwrap: a panic is the test failure we want (clippy.toml allows it only
// in #[test] functions, not in these helper modules).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod interop;
mod util;
