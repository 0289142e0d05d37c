//! SRTP tests against RFC 3711 / RFC 6188 / libSRTP vectors (`testdata/srtp/vectors.txt`),
//! plus rollover, replay and tamper behaviour.

use std::collections::HashMap;

use super::keys::{Aes, derive};
use super::*;
use crate::rtp::RtpHeader;

fn vectors() -> HashMap<String, Vec<u8>> {
    include_str!("../../testdata/srtp/vectors.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains('='))
        .map(|l| {
            let (name, value) = l.split_once('=').unwrap();
            let hex: String = value.chars().filter(|c| !c.is_whitespace()).collect();
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            (name.trim().to_owned(), bytes)
        })
        .collect()
}

fn v(name: &str) -> Vec<u8> {
    vectors()
        .remove(name)
        .unwrap_or_else(|| panic!("no vector {name}"))
}

fn salt(name: &str) -> [u8; SALT_LEN] {
    v(name).try_into().unwrap()
}

#[test]
fn rfc3711_b2_aes_cm_keystream() {
    let cipher = Aes::new(&v("rfc3711_b2.session_key")).unwrap();
    let keys = SessionKeys {
        cipher,
        salt: zeroize::Zeroizing::new(salt("rfc3711_b2.session_salt")),
        auth: <hmac::Hmac<sha1::Sha1> as hmac::KeyInit>::new_from_slice(&[0; 20]).unwrap(),
    };
    let iv = keys.iv(0, 0);
    assert_eq!(iv, hex_literal::hex!("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000"));
    let mut stream = vec![0u8; 0xff02 * 16];
    keys.cipher.apply_keystream(iv, &mut stream);
    assert_eq!(stream[..48], v("rfc3711_b2.keystream_start")[..]);
    assert_eq!(stream[0xfeff * 16..], v("rfc3711_b2.keystream_end")[..]);
}

#[test]
fn rfc3711_b3_key_derivation() {
    let master = Aes::new(&v("rfc3711_b3.master_key")).unwrap();
    let s = salt("rfc3711_b3.master_salt");
    assert_eq!(derive(&master, &s, 0, 16), v("rfc3711_b3.cipher_key"));
    assert_eq!(derive(&master, &s, 2, 14), v("rfc3711_b3.cipher_salt"));
    assert_eq!(derive(&master, &s, 1, 94), v("rfc3711_b3.auth_key_94"));
    let keys = SessionKeys::derive(&master, &s, 0).unwrap();
    assert_eq!(keys.salt[..], v("rfc3711_b3.cipher_salt")[..]);
}

#[test]
fn rfc6188_aes256_key_derivation() {
    let master = Aes::new(&v("rfc6188_7_2.master_key")).unwrap();
    let s = salt("rfc6188_7_2.master_salt");
    assert_eq!(derive(&master, &s, 0, 32), v("rfc6188_7_2.cipher_key"));
    assert_eq!(derive(&master, &s, 2, 14), v("rfc6188_7_2.cipher_salt"));
    assert_eq!(derive(&master, &s, 1, 20), v("rfc6188_7_2.auth_key"));
}

#[test]
fn libsrtp_aes128_rtp_and_rtcp() {
    let key = v("libsrtp_128.master_key");
    let s = v("libsrtp_128.master_salt");
    let mut tx = SrtpContext::new(SrtpSuite::AesCm128HmacSha1_80, &key, &s).unwrap();
    let protected = tx.protect_rtp(&v("libsrtp_128.rtp_plain")).unwrap();
    assert_eq!(protected[..], v("libsrtp_128.rtp_protected")[..]);

    // libSRTP's first SRTCP index is 1; ours is 0 (RFC 3711 §3.4), so send one packet first.
    let rtcp = v("libsrtp_128.rtcp_plain");
    let first = tx.protect_rtcp(&rtcp).unwrap();
    assert_eq!(first[24..28], [0x80, 0, 0, 0]);
    let second = tx.protect_rtcp(&rtcp).unwrap();
    assert_eq!(second[..], v("libsrtp_128.rtcp_protected")[..]);

    let mut rx = SrtpContext::new(SrtpSuite::AesCm128HmacSha1_80, &key, &s).unwrap();
    assert_eq!(
        rx.unprotect_rtp(&protected).unwrap()[..],
        v("libsrtp_128.rtp_plain")[..]
    );
    assert_eq!(rx.unprotect_rtcp(&second).unwrap()[..], rtcp[..]);
    assert_eq!(rx.unprotect_rtcp(&first).unwrap()[..], rtcp[..]);
}

#[test]
fn libsrtp_aes256_rtp() {
    let key = v("libsrtp_256.master_key");
    let s = v("libsrtp_256.master_salt");
    let mut tx = SrtpContext::new(SrtpSuite::AesCm256HmacSha1_80, &key, &s).unwrap();
    let protected = tx.protect_rtp(&v("libsrtp_256.rtp_plain")).unwrap();
    assert_eq!(protected[..], v("libsrtp_256.rtp_protected")[..]);
    let mut rx = SrtpContext::new(SrtpSuite::AesCm256HmacSha1_80, &key, &s).unwrap();
    assert_eq!(
        rx.unprotect_rtp(&protected).unwrap()[..],
        v("libsrtp_256.rtp_plain")[..]
    );
    let rtcp = hex_literal::hex!(
        "81c9 0007 cafebabe 01020304 00000000 00000000 00000000 00000000 00000000"
    );
    let p = tx.protect_rtcp(&rtcp).unwrap();
    assert_eq!(p.len(), rtcp.len() + 14);
    assert_eq!(rx.unprotect_rtcp(&p).unwrap()[..], rtcp[..]);
}

fn rtp(seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    RtpHeader {
        marker: false,
        payload_type: 99,
        sequence: seq,
        timestamp: 7,
        ssrc: 0x0102_0304,
    }
    .write(&mut out);
    out.extend_from_slice(payload);
    out
}

fn pair(suite: SrtpSuite) -> (SrtpContext, SrtpContext) {
    let key = vec![0x11; suite.key_len()];
    let s = vec![0x22; suite.salt_len()];
    (
        SrtpContext::new(suite, &key, &s).unwrap(),
        SrtpContext::new(suite, &key, &s).unwrap(),
    )
}

#[test]
fn rollover_counter_follows_sequence_wrap() {
    let (mut tx, mut rx) = pair(SrtpSuite::AesCm128HmacSha1_80);
    let mut protected = Vec::new();
    for seq in [65_533u16, 65_534, 65_535, 0, 1, 2] {
        protected.push((seq, tx.protect_rtp(&rtp(seq, b"payload")).unwrap()));
    }
    assert_eq!(tx.rollover_counter(0x0102_0304), 1);
    // Deliver with a reordering across the wrap: 65533, 0, 65534, 65535, 1, 2.
    for i in [0, 3, 1, 2, 4, 5] {
        let (seq, p) = &protected[i];
        assert_eq!(
            rx.unprotect_rtp(p).unwrap()[..],
            rtp(*seq, b"payload")[..],
            "seq {seq}"
        );
    }
    assert_eq!(rx.rollover_counter(0x0102_0304), 1);
    // Just after the wrap, 65533 is a late packet of ROC 0 (RFC 3711 §3.3.1 estimate)...
    assert_eq!(
        protected[0].1[..],
        tx.protect_rtp(&rtp(65_533, b"payload")).unwrap()[..]
    );
    // ...but once the stream has moved on, the same sequence number is ROC 1 and encrypts
    // differently.
    tx.protect_rtp(&rtp(30_000, b"payload")).unwrap();
    tx.protect_rtp(&rtp(60_000, b"payload")).unwrap();
    assert_ne!(
        protected[0].1[12..],
        tx.protect_rtp(&rtp(65_533, b"payload")).unwrap()[12..]
    );
    assert_eq!(tx.rollover_counter(0x0102_0304), 1);
}

#[test]
fn tampering_and_replay_are_rejected() {
    let (mut tx, mut rx) = pair(SrtpSuite::AesCm128HmacSha1_80);
    let p = tx.protect_rtp(&rtp(100, b"hello")).unwrap();
    let mut bad = p.to_vec();
    bad[13] ^= 1;
    let e = rx.unprotect_rtp(&bad).unwrap_err();
    assert_eq!(e.kind, SrtpErrorKind::Authentication);
    assert_eq!((e.ssrc, e.seq), (Some(0x0102_0304), Some(100)));
    assert_eq!(
        e.to_string(),
        "authentication tag mismatch (ssrc 0x01020304, seq 100)"
    );
    rx.unprotect_rtp(&p).unwrap();
    assert_eq!(
        rx.unprotect_rtp(&p).unwrap_err().kind,
        SrtpErrorKind::Replayed
    );

    let rtcp = hex_literal::hex!("80c9 0001 01020304");
    let sp = tx.protect_rtcp(&rtcp).unwrap();
    let mut bad = sp.to_vec();
    bad[4] ^= 1;
    assert_eq!(
        rx.unprotect_rtcp(&bad).unwrap_err().kind,
        SrtpErrorKind::Authentication
    );
    rx.unprotect_rtcp(&sp).unwrap();
    assert_eq!(
        rx.unprotect_rtcp(&sp).unwrap_err().kind,
        SrtpErrorKind::Replayed
    );

    // Forged packets do not create per-SSRC state.
    let before = format!("{rx:?}");
    for ssrc in 0..100u8 {
        let mut forged = bad.clone();
        forged[4..8].copy_from_slice(&[ssrc; 4]);
        assert!(rx.unprotect_rtcp(&forged).is_err());
        let mut forged_rtp = p.to_vec();
        forged_rtp[8..12].copy_from_slice(&[ssrc; 4]);
        assert!(rx.unprotect_rtp(&forged_rtp).is_err());
    }
    assert_eq!(format!("{rx:?}"), before);

    // A different key fails authentication (what ffmpeg reports as "HMAC mismatch").
    let mut other =
        SrtpContext::new(SrtpSuite::AesCm128HmacSha1_80, &[0x33; 16], &[0x22; 14]).unwrap();
    assert_eq!(
        other.unprotect_rtp(&p).unwrap_err().kind,
        SrtpErrorKind::Authentication
    );
}

#[test]
fn short_and_malformed_packets_are_errors() {
    let (mut tx, mut rx) = pair(SrtpSuite::AesCm128HmacSha1_80);
    assert_eq!(
        tx.protect_rtp(&[0x80, 0, 0]).unwrap_err().kind,
        SrtpErrorKind::Malformed
    );
    assert_eq!(
        tx.protect_rtp(&[0x40; 12]).unwrap_err().kind,
        SrtpErrorKind::Malformed
    );
    assert_eq!(
        tx.protect_rtcp(&[0x80, 0xc8, 0, 0]).unwrap_err().kind,
        SrtpErrorKind::TooShort
    );
    assert_eq!(
        rx.unprotect_rtp(&rtp(1, b"abc")).unwrap_err().kind,
        SrtpErrorKind::TooShort
    );
    assert_eq!(
        rx.unprotect_rtcp(&[0x80; 20]).unwrap_err().kind,
        SrtpErrorKind::TooShort
    );
    for len in 0..40 {
        let _ = rx.unprotect_rtp(&vec![0x80; len]);
        let _ = rx.unprotect_rtcp(&vec![0x80; len]);
    }
}

#[test]
fn null_suite_passes_packets_through() {
    let (mut tx, mut rx) = pair(SrtpSuite::Null);
    let p = rtp(5, b"clear");
    assert_eq!(tx.protect_rtp(&p).unwrap()[..], p[..]);
    assert_eq!(rx.unprotect_rtp(&p).unwrap()[..], p[..]);
    let rtcp = hex_literal::hex!("80c9 0001 01020304");
    assert_eq!(tx.protect_rtcp(&rtcp).unwrap()[..], rtcp[..]);
    assert_eq!(SrtpSuite::Null.rtp_overhead(), 0);
}

#[test]
fn suites_and_key_checks() {
    assert_eq!(
        SrtpContext::new(SrtpSuite::AesCm128HmacSha1_80, &[0; 32], &[0; 14]).unwrap_err(),
        SrtpKeyError::KeyLength {
            expected: 16,
            got: 32
        }
    );
    assert_eq!(
        SrtpContext::new(SrtpSuite::AesCm256HmacSha1_80, &[0; 32], &[0; 12]).unwrap_err(),
        SrtpKeyError::SaltLength {
            expected: 14,
            got: 12
        }
    );
    let ctx = SrtpContext::new(SrtpSuite::AesCm128HmacSha1_80, &[0x5a; 16], &[0xa5; 14]).unwrap();
    let dbg = format!("{ctx:?}");
    assert!(
        !dbg.contains("5a") && !dbg.contains("90") && dbg.contains("AesCm128"),
        "{dbg}"
    );
}

#[test]
fn base64_params_round_trip() {
    let key = v("libsrtp_128.master_key");
    let s = v("libsrtp_128.master_salt");
    let b64 = encode_params(&key, &s);
    assert_eq!(b64.as_str(), "4fl6DT4Bi+DWT6MsBt5BOQ7Gda1Jiv7rtpYLOqvm");
    let master = decode_params(SrtpSuite::AesCm128HmacSha1_80, &b64).unwrap();
    assert_eq!((master.key.to_vec(), master.salt.to_vec()), (key, s));
    assert_eq!(format!("{master:?}"), "MasterKey(16 + 14 bytes)");
    // SDES inline form with lifetime and MKI.
    let sdes = format!("{}|2^31|1:1", b64.as_str());
    assert!(decode_params(SrtpSuite::AesCm128HmacSha1_80, &sdes).is_ok());
    assert_eq!(
        decode_params(SrtpSuite::AesCm256HmacSha1_80, &b64).unwrap_err(),
        SrtpKeyError::ParamsLength {
            expected: 46,
            got: 30
        }
    );
    assert_eq!(
        decode_params(SrtpSuite::AesCm128HmacSha1_80, "!!").unwrap_err(),
        SrtpKeyError::Base64
    );
    let mut a = SrtpContext::from_base64(SrtpSuite::AesCm128HmacSha1_80, &b64).unwrap();
    let protected = a.protect_rtp(&v("libsrtp_128.rtp_plain")).unwrap();
    assert_eq!(protected[..], v("libsrtp_128.rtp_protected")[..]);
}
