//! RTCP writer/parser and statistics tests on hand-assembled RFC 3550 packets.

use std::time::{Duration, Instant};

use hex_literal::hex;

use super::*;

#[test]
fn ntp_from_unix() {
    let t = NtpTimestamp::from_unix(Duration::new(1_700_000_000, 500_000_000));
    assert_eq!(t.0 >> 32, 1_700_000_000 + 2_208_988_800);
    assert_eq!(t.0 & 0xffff_ffff, 0x8000_0000);
    assert_eq!(
        t.middle_32(),
        (((1_700_000_000u64 + 2_208_988_800) & 0xffff) << 16) as u32 | 0x8000
    );
}

#[test]
fn sender_report_compound_bytes() {
    let sr = SenderReport {
        ssrc: 0x1122_3344,
        info: SenderInfo {
            ntp: NtpTimestamp(0xe8a0_0000_8000_0000),
            rtp_timestamp: 0x0000_3000,
            packet_count: 7,
            octet_count: 9000,
        },
        reports: Vec::new(),
    };
    let mut out = Vec::new();
    sender_report_compound(&sr, "cam", &mut out);
    assert_eq!(
        out,
        hex!(
            "80c8 0006 11223344 e8a00000 80000000 00003000 00000007 00002328"
            "81ca 0003 11223344 01 03 63616d 00 0000"
        )
    );
    let parsed = parse_compound(&out).unwrap();
    assert_eq!(parsed[0], RtcpPacket::SenderReport(sr));
    assert_eq!(
        parsed[1],
        RtcpPacket::Sdes(vec![(0x1122_3344, Some("cam".to_owned()))])
    );
}

/// A compound as a receiver sends it: RR with one block about our SSRC, SDES CNAME, then a
/// separate PLI and a BYE.
fn controller_compound() -> Vec<u8> {
    hex!(
        // RR, 1 block: ssrc 0xaabbccdd, about 0x11223344, 10/256 lost, cumulative -2,
        // highest 0x0001_0005, jitter 42, LSR 0x12345678, DLSR 0x00010000 (1 s).
        "81c9 0007 aabbccdd 11223344 0afffffe 00010005 0000002a 12345678 00010000"
        // SDES, one chunk, CNAME "ios" padded.
        "81ca 0003 aabbccdd 0103 696f73 00 0000"
        // PLI (PT 206, FMT 1).
        "81ce 0002 aabbccdd 11223344"
        // BYE.
        "81cb 0001 aabbccdd"
    )
    .to_vec()
}

#[test]
fn parses_controller_compound() {
    let packets = parse_compound(&controller_compound()).unwrap();
    assert_eq!(packets.len(), 4);
    let RtcpPacket::ReceiverReport(rr) = &packets[0] else {
        panic!("{packets:?}")
    };
    assert_eq!(rr.ssrc, 0xaabb_ccdd);
    assert_eq!(
        rr.reports,
        vec![ReportBlock {
            ssrc: 0x1122_3344,
            fraction_lost: 10,
            cumulative_lost: -2,
            highest_sequence: 0x0001_0005,
            jitter: 42,
            last_sr: 0x1234_5678,
            delay_since_last_sr: 0x0001_0000,
        }]
    );
    let mut rewritten = Vec::new();
    rr.write(&mut rewritten);
    assert_eq!(rewritten, controller_compound()[..32]);
    assert_eq!(
        packets[1],
        RtcpPacket::Sdes(vec![(0xaabb_ccdd, Some("ios".to_owned()))])
    );
    assert!(packets[2].requests_key_frame());
    assert_eq!(packets[3], RtcpPacket::Bye(vec![0xaabb_ccdd]));
}

#[test]
fn rejects_malformed_compounds() {
    let good = controller_compound();
    assert!(parse_compound(&[]).is_err());
    assert_eq!(
        parse_compound(&good[..30]).unwrap_err().context,
        "length past the end"
    );
    let mut bad_version = good.clone();
    bad_version[32] = 0x41;
    assert_eq!(
        parse_compound(&bad_version).unwrap_err(),
        RtcpParseError {
            offset: 32,
            context: "version is not 2"
        }
    );
    // RR claiming 2 blocks in a 1-block length.
    let mut bad_count = good.clone();
    bad_count[0] = 0x82;
    assert_eq!(
        parse_compound(&bad_count).unwrap_err().context,
        "report block too short"
    );
    for len in 0..good.len() {
        let _ = parse_compound(&good[..len]);
    }
    for i in 0..good.len() {
        let mut g = good.clone();
        g[i] ^= 0xff;
        let _ = parse_compound(&g);
    }
}

#[test]
fn stats_track_loss_rtt_liveness_and_key_frames() {
    let start = Instant::now();
    let mut stats = RtcpStats::new();
    let timeout = Duration::from_millis(2500);
    assert!(stats.is_alive(start, start + Duration::from_secs(2), timeout));
    assert!(!stats.is_alive(start, start + Duration::from_secs(3), timeout));

    let packets = parse_compound(&controller_compound()).unwrap();
    // Arrival 1.25 s after the SR with LSR 0x12345678, receiver held it 1 s: RTT 0.25 s.
    let now_ntp = NtpTimestamp((u64::from(0x1234_5678u32 + 0x0001_4000) << 16) | 0x1234_0000_0000);
    let at = start + Duration::from_secs(10);
    stats.on_compound(&packets, 0x1122_3344, at, now_ntp);
    assert_eq!(stats.fraction_lost, 10);
    assert_eq!(stats.cumulative_lost, -2);
    assert_eq!(stats.jitter, 42);
    assert_eq!(stats.round_trip, Some(Duration::from_millis(250)));
    assert!(stats.bye);
    assert!(stats.take_key_frame_request());
    assert!(!stats.take_key_frame_request());
    assert!(stats.is_alive(start, at + Duration::from_secs(2), timeout));
    assert!(!stats.is_alive(start, at + Duration::from_secs(3), timeout));

    // Blocks about other SSRCs are ignored.
    let mut other = RtcpStats::new();
    other.on_compound(&packets, 0x9999_9999, at, now_ntp);
    assert_eq!((other.jitter, other.round_trip), (0, None));
    assert_eq!(other.packets, 1);

    // Our own reports reflected back (sender SSRC ours): neither liveness nor statistics.
    let ours = 0x5555_6666;
    let mut own = Vec::new();
    sender_report_compound(
        &SenderReport {
            ssrc: ours,
            info: SenderInfo {
                ntp: now_ntp,
                rtp_timestamp: 1,
                packet_count: 1,
                octet_count: 1,
            },
            reports: Vec::new(),
        },
        "me",
        &mut own,
    );
    write_bye(ours, &mut own);
    let own = parse_compound(&own).unwrap();
    let mut reflected = RtcpStats::new();
    assert!(!reflected.on_compound(&own, ours, at, now_ntp));
    assert_eq!(reflected.last_seen, None);
    assert_eq!(reflected.packets, 0);
    assert!(!reflected.bye, "our own BYE is not the receiver's");
    assert!(!reflected.is_alive(start, start + Duration::from_secs(3), timeout));
    // The receiver's packets in the same compound still count.
    let mut mixed = own.clone();
    mixed.extend(packets.iter().cloned());
    assert!(reflected.on_compound(&mixed, ours, at, now_ntp));
    assert_eq!(reflected.last_seen, Some(at));
    assert_eq!(reflected.packets, 1);
}
