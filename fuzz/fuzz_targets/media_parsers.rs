//! Every media parser (SPS, Annex B, AVCC, RTP, RTCP, SRTP unprotect) on arbitrary bytes.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| media::fuzzing::fuzz_parsers(data));
