//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`). Each panics when an
//! invariant breaks; they never panic on well-behaved code, whatever the input.
// A fuzz target reports a broken invariant by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;

use crate::h264::{
    AccessUnitSplitter, NalType, annex_b_to_bytes, avcc_nals, nal_type, parse_sps, slice_type,
};
use crate::rtcp::parse_compound;
use crate::rtp::{H264Depacketizer, H264Packetizer, MIN_MTU, RtpConfig, RtpPacket};
use crate::srtp::{SrtpContext, SrtpSuite};

/// Packetizes NAL units taken from `data` and checks that every packet is within the MTU and that
/// depacketizing gives back every NAL unit that is not dropped, in order.
///
/// Input layout: 2 bytes MTU selector, 2 bytes initial sequence number, then NAL units each
/// preceded by a 2-byte big-endian length.
pub fn fuzz_packetize(data: &[u8]) {
    let [m0, m1, s0, s1, rest @ ..] = data else {
        return;
    };
    let mtu = MIN_MTU + usize::from(u16::from_be_bytes([*m0, *m1])) % 1500;
    let mut nals = Vec::new();
    let mut rest = rest;
    while let [l0, l1, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*l0, *l1])).min(tail.len());
        let (nal, tail) = tail.split_at(len);
        // Clear forbidden_zero_bit: such NAL units are rejected by design.
        let mut nal = nal.to_vec();
        if let Some(h) = nal.first_mut() {
            *h &= 0x7f;
        }
        nals.push(Bytes::from(nal));
        rest = tail;
    }
    let mut packetizer = H264Packetizer::new(RtpConfig {
        ssrc: 1,
        payload_type: 96,
        mtu,
        initial_sequence: u16::from_be_bytes([*s0, *s1]),
        initial_timestamp: 0,
    })
    .unwrap();
    let mut out = Vec::new();
    packetizer.packetize(&nals, 0, &mut out).unwrap();
    let mut depacketizer = H264Depacketizer::new();
    let mut got = Vec::new();
    for (i, p) in out.iter().enumerate() {
        assert!(p.len() <= mtu, "packet of {} bytes over MTU {mtu}", p.len());
        let parsed = RtpPacket::parse(p).unwrap();
        assert_eq!(parsed.header.marker, i + 1 == out.len());
        if let Some(au) = depacketizer.push(&parsed).unwrap() {
            got = au;
        }
    }
    assert_eq!(depacketizer.gaps(), 0);
    let is_parameter_set = |n: &Bytes| matches!(nal_type(n), Some(NalType::SPS | NalType::PPS));
    let expected: Vec<&Bytes> = nals
        .iter()
        .filter(|n| {
            !matches!(
                nal_type(n),
                None | Some(NalType::AUD | NalType::SEI | NalType::FILLER)
            ) && !matches!(nal_type(n), Some(t) if t.0 == 0 || t.0 >= 24)
                && !is_parameter_set(n)
        })
        .collect();
    let got_media: Vec<&Bytes> = got.iter().filter(|n| !is_parameter_set(n)).collect();
    assert_eq!(got_media, expected);
}

/// Feeds peer-controlled bytes to every parser of the crate (RTP, RTCP, SRTP/SRTCP unprotect,
/// the depacketizer, Annex B / AVCC splitting, access-unit grouping, SPS); none may panic, and
/// the RTP header length must lie within the packet.
pub fn fuzz_parsers(data: &[u8]) {
    if let Ok(p) = RtpPacket::parse(data) {
        assert!(p.header_len <= data.len());
        let _ = H264Depacketizer::new().push(&p);
    }
    let _ = parse_compound(data);
    let mut sps = vec![0x67];
    sps.extend_from_slice(data);
    let _ = parse_sps(&sps);
    for header in [0x01, 0x41, 0x65] {
        sps[0] = header;
        assert!(slice_type(&sps).is_none_or(|t| t <= 9));
    }
    let bytes = Bytes::copy_from_slice(data);
    let mut splitter = AccessUnitSplitter::new();
    for nal in annex_b_to_bytes(&bytes) {
        let _ = splitter.push(nal);
    }
    let _ = splitter.flush();
    for length_size in 1..=4 {
        let _ = avcc_nals(&bytes, length_size);
    }
    let mut srtp = SrtpContext::new(SrtpSuite::AesCm128HmacSha1_80, &[1; 16], &[2; 14]).unwrap();
    let _ = srtp.unprotect_rtp(data);
    let _ = srtp.unprotect_rtcp(data);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuzz_packetize_on_sample_inputs() {
        fuzz_packetize(&[]);
        fuzz_packetize(&[
            0, 0, 0xff, 0xff, 0, 3, 0x67, 1, 2, 0, 2, 0x68, 3, 0x0f, 0xff, 0x65,
        ]);
        let mut big = vec![0x05, 0xdc, 0xff, 0xf0, 0x27, 0x10, 0xe5];
        big.extend(std::iter::repeat_n(0xab, 10_000));
        fuzz_packetize(&big);
        fuzz_packetize(&[0, 1, 0, 0, 0, 0, 0, 1, 0x09, 0, 1, 0x06]);
    }

    /// A deterministic smoke run of both entry points over pseudo-random inputs (xorshift), so
    /// that CI exercises them without cargo-fuzz.
    #[test]
    fn entry_points_survive_pseudo_random_inputs() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..3000 {
            let len = (next() % 3000) as usize;
            let mut data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            // Make some inputs look like RTP / RTCP / Annex B.
            match round % 4 {
                0 if len > 1 => data[0] = 0x80 | (data[0] & 0x3f),
                1 if len > 2 => {
                    data[0] = 0x80 | (data[0] & 0x1f);
                    data[1] = 200 + (data[1] % 7);
                }
                2 if len > 4 => data[..3].copy_from_slice(&[0, 0, 1]),
                _ => {}
            }
            fuzz_parsers(&data);
            fuzz_packetize(&data);
        }
    }
}
