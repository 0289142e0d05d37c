//! TLV8: decode → encode → decode gives the same items, and nothing panics.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| hap_proto::fuzzing::tlv8_roundtrip(data));
