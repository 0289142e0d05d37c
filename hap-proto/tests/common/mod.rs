//! Helpers shared by hap-proto's integration tests.
// Each test binary uses a different subset of the helpers.
#![allow(dead_code)]

pub(crate) mod pair;
