//! Camera TLVs (Setup Endpoints, Selected RTP Stream Configuration, capabilities): round trip.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| hap_proto::fuzzing::camera_tlv(data));
