//! A verified session (real pair-setup once, real pair-verify per input) driven by structured
//! operations: sealed requests, raw and tampered frames, time, value changes, snapshots.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| hap_proto::fuzzing::session(data));
