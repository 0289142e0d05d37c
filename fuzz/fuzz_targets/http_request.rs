//! HTTP request parsing: the same result at every split point.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| hap_proto::fuzzing::http_request(data));
