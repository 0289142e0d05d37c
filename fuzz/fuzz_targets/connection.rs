//! Raw bytes into an accessory connection: no panic, only well-formed responses out.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| hap_proto::fuzzing::connection(data));
