//! Packetizer tests: packet sizes, FU-A reassembly, STAP-A placement, marker, sequence numbers
//! and timestamps, checked by parsing the packets back with the depacketizer.

use super::*;
use crate::rtp::{H264Depacketizer, RtpPacket};

const SPS: &[u8] = &[
    0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x00, 0xa0, 0x2f, 0xf9, 0x70, 0x11,
];
const PPS: &[u8] = &[0x68, 0xcb, 0x83, 0xcb, 0x20];

fn cfg(mtu: usize) -> RtpConfig {
    RtpConfig {
        ssrc: 0x1234_5678,
        payload_type: 99,
        mtu,
        initial_sequence: 65_530,
        initial_timestamp: 0xffff_ff00,
    }
}

/// A NAL unit of `len` bytes with header byte `header` and a counting payload.
fn nal(header: u8, len: usize) -> Bytes {
    let mut v = vec![header];
    v.extend((1..len).map(|i| (i % 251) as u8));
    Bytes::from(v)
}

fn types(packets: &[Bytes]) -> Vec<u8> {
    packets.iter().map(|p| p[12] & 0x1f).collect()
}

#[test]
fn every_packet_fits_the_mtu_and_fu_a_reassembles() {
    for mtu in [MIN_MTU, 200, 1228, 1378] {
        let mut p = H264Packetizer::new(cfg(mtu)).unwrap();
        let au = vec![
            Bytes::from_static(SPS),
            Bytes::from_static(PPS),
            nal(0x65, 100_000),
            nal(0x65, mtu - 12),     // exactly fits: single NAL unit
            nal(0x65, mtu - 12 + 1), // one byte over: two fragments
        ];
        let mut out = Vec::new();
        p.packetize(&au, 0, &mut out).unwrap();
        assert!(out.iter().all(|pkt| pkt.len() <= mtu), "mtu {mtu}");
        let mut d = H264Depacketizer::new();
        let mut got = None;
        for pkt in &out {
            got = d.push(&RtpPacket::parse(pkt).unwrap()).unwrap();
        }
        let got = got.expect("marker on the last packet");
        assert_eq!(got, au, "mtu {mtu}");
        assert_eq!(d.gaps(), 0);
    }
}

#[test]
fn fu_a_headers() {
    let mut p = H264Packetizer::new(cfg(100)).unwrap();
    let mut out = Vec::new();
    p.packetize(&[nal(0x65, 300)], 0, &mut out).unwrap();
    // 299 body bytes in chunks of 100 - 12 - 2 = 86: four fragments.
    assert_eq!(out.len(), 4);
    for (i, pkt) in out.iter().enumerate() {
        assert_eq!(pkt[12], 0x60 | 28, "FU indicator keeps NRI");
        let start = i == 0;
        let end = i == 3;
        assert_eq!(pkt[13], (u8::from(start) << 7) | (u8::from(end) << 6) | 5);
    }
}

#[test]
fn stap_a_before_every_idr_from_stored_parameter_sets() {
    let mut p = H264Packetizer::new(cfg(1378)).unwrap();
    p.set_parameter_sets(Bytes::from_static(SPS), Bytes::from_static(PPS));
    let mut out = Vec::new();
    // IDR without in-band parameter sets: STAP-A from the SDP ones, then the IDR.
    p.packetize(&[nal(0x09, 2), nal(0x06, 10), nal(0x65, 500)], 0, &mut out)
        .unwrap();
    assert_eq!(types(&out), vec![24, 5]);
    let stap = &out[0][12..];
    let mut expected = vec![0x78, 0, SPS.len() as u8];
    expected.extend_from_slice(SPS);
    expected.extend_from_slice(&[0, PPS.len() as u8]);
    expected.extend_from_slice(PPS);
    assert_eq!(stap, &expected[..]);

    // A P frame: no STAP-A.
    out.clear();
    p.packetize(&[nal(0x41, 500)], 3000, &mut out).unwrap();
    assert_eq!(types(&out), vec![1]);

    // A second IDR with two slices: one STAP-A, before the first slice only.
    out.clear();
    p.packetize(&[nal(0x65, 500), nal(0x65, 500)], 6000, &mut out)
        .unwrap();
    assert_eq!(types(&out), vec![24, 5, 5]);
}

#[test]
fn in_band_parameter_sets_replace_stored_ones() {
    let mut p = H264Packetizer::new(cfg(1378)).unwrap();
    p.set_parameter_sets(
        Bytes::from_static(&[0x67, 1]),
        Bytes::from_static(&[0x68, 2]),
    );
    let mut out = Vec::new();
    p.packetize(
        &[
            Bytes::from_static(SPS),
            Bytes::from_static(PPS),
            nal(0x65, 50),
        ],
        0,
        &mut out,
    )
    .unwrap();
    assert_eq!(types(&out), vec![24, 5]);
    assert_eq!(&out[0][15..15 + SPS.len()], SPS);
    // The next IDR, without in-band copies, repeats the in-band ones.
    out.clear();
    p.packetize(&[nal(0x65, 50)], 3000, &mut out).unwrap();
    assert_eq!(&out[0][15..15 + SPS.len()], SPS);
    // Parameter sets in an access unit without IDR are sent as they are.
    out.clear();
    p.packetize(&[Bytes::from_static(PPS), nal(0x41, 50)], 6000, &mut out)
        .unwrap();
    assert_eq!(types(&out), vec![8, 1]);
}

#[test]
fn idr_without_any_parameter_sets_is_sent_alone() {
    let mut p = H264Packetizer::new(cfg(1378)).unwrap();
    let mut out = Vec::new();
    p.packetize(&[nal(0x65, 50)], 0, &mut out).unwrap();
    assert_eq!(types(&out), vec![5]);
}

#[test]
fn large_parameter_sets_are_not_aggregated() {
    let mut p = H264Packetizer::new(cfg(MIN_MTU)).unwrap();
    p.set_parameter_sets(nal(0x67, 20), nal(0x68, 10));
    let mut out = Vec::new();
    p.packetize(&[nal(0x65, 10)], 0, &mut out).unwrap();
    assert_eq!(types(&out), vec![28, 28, 8, 5]);
    assert!(out.iter().all(|pkt| pkt.len() <= MIN_MTU));
}

#[test]
fn marker_sequence_and_timestamp() {
    let mut p = H264Packetizer::new(cfg(200)).unwrap();
    assert_eq!(p.last_rtp_timestamp(), 0xffff_ff00);
    let mut out = Vec::new();
    p.packetize(&[nal(0x65, 1000)], 0, &mut out).unwrap();
    p.packetize(&[nal(0x41, 100), nal(0x41, 100)], 3000, &mut out)
        .unwrap();
    let parsed: Vec<RtpPacket<'_>> = out.iter().map(|b| RtpPacket::parse(b).unwrap()).collect();
    let n = parsed.len();
    // Sequence numbers start at 65530, increase by one and wrap.
    for (i, pkt) in parsed.iter().enumerate() {
        assert_eq!(pkt.header.sequence, 65_530u16.wrapping_add(i as u16));
        assert_eq!(pkt.header.ssrc, 0x1234_5678);
        assert_eq!(pkt.header.payload_type, 99);
    }
    assert!(parsed.iter().any(|p| p.header.sequence == 0));
    let markers: Vec<bool> = parsed.iter().map(|p| p.header.marker).collect();
    let first_au = n - 2;
    let mut expected = vec![false; n];
    expected[first_au - 1] = true;
    expected[n - 1] = true;
    assert_eq!(markers, expected);
    // Timestamps: initial + media time, wrapping.
    assert!(
        parsed[..first_au]
            .iter()
            .all(|p| p.header.timestamp == 0xffff_ff00)
    );
    assert!(
        parsed[first_au..]
            .iter()
            .all(|p| p.header.timestamp == 0xffff_ff00u32.wrapping_add(3000))
    );
    assert_eq!(p.last_rtp_timestamp(), 0xffff_ff00u32.wrapping_add(3000));
    assert_eq!(p.next_sequence(), 65_530u16.wrapping_add(n as u16));
    assert_eq!(p.packet_count(), n as u64);
    let octets: usize = out.iter().map(|b| b.len() - 12).sum();
    assert_eq!(p.payload_octets(), octets as u64);
}

#[test]
fn rtp_reserved_nal_types_are_dropped() {
    let mut p = H264Packetizer::new(cfg(1378)).unwrap();
    let mut out = Vec::new();
    // Types 0, 24 (STAP-A), 28 (FU-A) and 31 would be misread by a receiver.
    let au = [
        nal(0x00, 9),
        nal(0x78, 9),
        nal(0x5c, 9),
        nal(0x1f, 9),
        nal(0x41, 9),
    ];
    p.packetize(&au, 0, &mut out).unwrap();
    assert_eq!(types(&out), vec![1]);
}

#[test]
fn dropped_only_access_unit_sends_nothing() {
    let mut p = H264Packetizer::new(cfg(1378)).unwrap();
    let mut out = Vec::new();
    p.packetize(&[nal(0x09, 2), nal(0x06, 4), Bytes::new()], 0, &mut out)
        .unwrap();
    assert!(out.is_empty());
    assert_eq!(p.next_sequence(), 65_530);
}

#[test]
fn rejects_bad_config_and_forbidden_bit() {
    assert_eq!(
        H264Packetizer::new(cfg(MIN_MTU - 1)).unwrap_err(),
        PacketizeError::MtuTooSmall { mtu: MIN_MTU - 1 }
    );
    let mut c = cfg(1378);
    c.payload_type = 128;
    assert!(matches!(
        H264Packetizer::new(c),
        Err(PacketizeError::BadPayloadType { .. })
    ));
    let mut p = H264Packetizer::new(cfg(1378)).unwrap();
    let mut out = Vec::new();
    assert_eq!(
        p.packetize(&[nal(0x41, 5), nal(0xe5, 5)], 0, &mut out),
        Err(PacketizeError::ForbiddenBit { index: 1 })
    );
    assert!(out.is_empty());
}
