//! Setup URI parsing: no panic, and what parses re-encodes to the same text.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| hap_proto::fuzzing::setup_uri(data));
