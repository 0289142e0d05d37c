//! H.264 packetizer: every packet fits the MTU and FU-A fragments reassemble to the NAL.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| media::fuzzing::fuzz_packetize(data));
