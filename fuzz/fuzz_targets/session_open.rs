//! Encrypted framing: never panics; the counter advances only on success; tampering is caught.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| hap_proto::fuzzing::session_open(data));
