//! Pair-setup message sequences against the accessory state machine.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| hap_proto::fuzzing::pair_setup(data));
