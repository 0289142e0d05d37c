//! SPS parser tests on SPS bytes encoded by libx264 (see `testdata/h264/sps.txt`).

use super::*;

struct Vector {
    name: String,
    sps: Vec<u8>,
    expected: SpsInfo,
}

fn vectors() -> Vec<Vector> {
    include_str!("../../../testdata/h264/sps.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let hex = f[1];
            let sps = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            Vector {
                name: f[0].to_owned(),
                sps,
                expected: SpsInfo {
                    width: f[2].parse().unwrap(),
                    height: f[3].parse().unwrap(),
                    profile_idc: f[4].parse().unwrap(),
                    constraint_flags: f[5].parse().unwrap(),
                    level_idc: f[6].parse().unwrap(),
                },
            }
        })
        .collect()
}

fn by_name(name: &str) -> SpsInfo {
    let v = vectors().into_iter().find(|v| v.name == name).unwrap();
    parse_sps(&v.sps).unwrap()
}

#[test]
fn parses_every_captured_sps() {
    let vectors = vectors();
    assert_eq!(vectors.len(), 6);
    for v in vectors {
        assert_eq!(parse_sps(&v.sps), Ok(v.expected), "{}", v.name);
    }
}

#[test]
fn profiles_map_to_the_smallest_decoder_profile() {
    assert_eq!(
        by_name("base360").min_profile(),
        Some(H264Profile::ConstrainedBaseline)
    );
    assert_eq!(by_name("main720").min_profile(), Some(H264Profile::Main));
    assert_eq!(by_name("high1080").min_profile(), Some(H264Profile::High));
    assert_eq!(by_name("high444").min_profile(), None);
    assert_eq!(by_name("base360").profile_level_id(), "42c01e");
    assert_eq!(by_name("high1080").profile_level_id(), "640028");
}

#[test]
fn fits_checks_size_and_profile() {
    let high = by_name("high1080");
    assert!(fits(&high, 1920, 1080, H264Profile::High));
    assert!(!fits(&high, 1280, 720, H264Profile::High));
    assert!(!fits(&high, 1920, 1080, H264Profile::Main));
    let base = by_name("base360");
    assert!(fits(&base, 640, 360, H264Profile::ConstrainedBaseline));
    assert!(fits(&base, 1280, 720, H264Profile::High));
    assert!(!fits(&base, 480, 270, H264Profile::High));
    assert!(!fits(&by_name("high444"), 1920, 1080, H264Profile::High));
}

#[test]
fn rejects_non_sps_and_truncated_input() {
    assert_eq!(parse_sps(&[]), Err(SpsError::NotAnSps));
    assert_eq!(parse_sps(&[0x68, 0xce]), Err(SpsError::NotAnSps));
    let v = vectors()
        .into_iter()
        .find(|v| v.name == "high1080")
        .unwrap();
    for len in 1..10 {
        assert!(
            matches!(parse_sps(&v.sps[..len]), Err(SpsError::Truncated(_))),
            "len {len}"
        );
    }
    // An Exp-Golomb code of 40 leading zeros.
    assert_eq!(
        parse_sps(&[0x67, 0x42, 0, 0x1e, 0, 0, 0, 0, 0, 0x80]),
        Err(SpsError::OutOfRange("seq_parameter_set_id"))
    );
}

#[test]
fn never_panics_on_any_prefix_or_bit_flip() {
    for v in vectors() {
        for len in 0..=v.sps.len() {
            let _ = parse_sps(&v.sps[..len]);
        }
        for i in 1..v.sps.len() {
            for bit in 0..8 {
                let mut s = v.sps.clone();
                s[i] ^= 1 << bit;
                let _ = parse_sps(&s);
            }
        }
    }
}
