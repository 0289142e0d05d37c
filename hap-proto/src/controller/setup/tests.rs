use hex_literal::hex;
use rand_core::SeedableRng;

use super::*;
use crate::srp::vectors::{get, hex as unhex, parse};

const VECTOR: &str = include_str!("../../../testdata/srp/hap_srp_3072_sha512.txt");

#[test]
fn client_math_matches_vector_in_every_style() {
    // hap-reference §10.1 with the fixed a: no value has a leading zero byte, so all three
    // styles must produce the vector's A, M1, K and accept its M2.
    let v = parse(VECTOR);
    let a: [u8; 32] = unhex(get(&v, "a")).try_into().unwrap();
    for padding in [SrpPadding::Strip, SrpPadding::Pad, SrpPadding::ReceivedB] {
        let exchange = client_exchange(
            get(&v, "I").as_bytes(),
            get(&v, "P").as_bytes(),
            &unhex(get(&v, "s")),
            &a,
            &unhex(get(&v, "B")),
            padding,
        )
        .unwrap();
        assert_eq!(exchange.a_sent, unhex(get(&v, "A")), "{padding:?}");
        assert_eq!(exchange.m1.to_vec(), unhex(get(&v, "M1")), "{padding:?}");
        assert_eq!(exchange.key.to_vec(), unhex(get(&v, "K")), "{padding:?}");
        assert_eq!(
            exchange.expected_m2.to_vec(),
            unhex(get(&v, "M2")),
            "{padding:?}"
        );
        assert_eq!(exchange.leading_zeros, LeadingZeros::default());
    }
}

#[test]
fn client_rejects_b_zero_mod_n() {
    let a = [7u8; 32];
    for b in [vec![0u8], modulus_bytes().to_vec()] {
        let err = client_exchange(USERNAME, b"031-45-154", &[1; 16], &a, &b, SrpPadding::Pad)
            .err()
            .unwrap();
        assert_eq!(
            err,
            Error::PeerMisbehaved(PeerMisbehaved::InvalidSrpPublicKey)
        );
    }
}

#[test]
fn m1_bytes_match_ios() {
    // hap-reference §10.5 (ADK Tests/HAPTLVTest.c).
    let mut rng = rand_chacha::ChaCha20Rng::from_seed([0; 32]);
    let mut c = ControllerSetup::new(
        "031-45-154",
        SrpPadding::Strip,
        PairingId(b"c".to_vec()),
        SigningKey::from_bytes(&[1; 32]),
        &mut rng,
    );
    assert_eq!(c.start(), hex!("00 01 00 06 01 01"));
    // Out of order calls are refused.
    assert!(c.handle_m4(&hex!("06 01 04")).is_err());
}

#[test]
fn accessory_error_items_surface_as_pairing_errors() {
    let mut rng = rand_chacha::ChaCha20Rng::from_seed([0; 32]);
    let mut c = ControllerSetup::new(
        "031-45-154",
        SrpPadding::Pad,
        PairingId(b"c".to_vec()),
        SigningKey::from_bytes(&[1; 32]),
        &mut rng,
    );
    c.start();
    assert_eq!(
        c.handle_m2(&hex!("06 01 02 07 01 06")).unwrap_err(),
        Error::Pairing(TlvError::UNAVAILABLE)
    );
}

#[test]
fn received_b_style_reproduces_aiohomekit_4_0_1() {
    // The numbers aiohomekit 4.0.1 itself produced (testdata header): SrpPadding::ReceivedB
    // is a faithful model of that controller, including its u over the stripped B.
    let v = parse(include_str!(
        "../../../testdata/srp/aiohomekit_4_0_1_short_b.txt"
    ));
    let mut a = [0u8; 32];
    a[16..].copy_from_slice(&unhex(get(&v, "a")));
    let exchange = client_exchange(
        USERNAME,
        get(&v, "P").as_bytes(),
        &unhex(get(&v, "s")),
        &a,
        &unhex(get(&v, "B")),
        SrpPadding::ReceivedB,
    )
    .unwrap();
    assert_eq!(exchange.a_sent, unhex(get(&v, "A")));
    assert_eq!(exchange.m1.to_vec(), unhex(get(&v, "M1")));
    assert_eq!(exchange.key.to_vec(), unhex(get(&v, "K")));
    assert_eq!(exchange.expected_m2.to_vec(), unhex(get(&v, "M2")));
    assert!(exchange.leading_zeros.b);
}
