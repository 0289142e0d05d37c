use num_bigint::BigUint;

use super::vectors::{get, hex, parse};
use super::*;

const VECTOR: &str = include_str!("../../testdata/srp/hap_srp_3072_sha512.txt");

struct Vector {
    entries: Vec<(String, String)>,
}

impl Vector {
    fn load() -> Self {
        Self {
            entries: parse(VECTOR),
        }
    }
    fn text(&self, name: &str) -> &[u8] {
        get(&self.entries, name).as_bytes()
    }
    fn bytes(&self, name: &str) -> Vec<u8> {
        hex(get(&self.entries, name))
    }
    fn server(&self) -> SrpServer {
        SrpServer::new(
            self.text("I"),
            self.text("P"),
            self.bytes("s").try_into().unwrap(),
            self.bytes("b").try_into().unwrap(),
        )
    }
}

#[test]
fn group_constants_match_vector() {
    let v = Vector::load();
    assert_eq!(&modulus_bytes()[..], &v.bytes("N")[..]);
    assert_eq!(v.bytes("g"), [GENERATOR]);
    assert_eq!(multiplier().to_bytes_be(), v.bytes("k"));
}

#[test]
fn x_and_verifier_match_vector() {
    let v = Vector::load();
    let x = private_key_x(&v.bytes("s"), v.text("I"), v.text("P"));
    assert_eq!(&x[..], &v.bytes("x")[..]);
    let verifier = verifier(&v.bytes("s"), v.text("I"), v.text("P"));
    assert_eq!(pad(&verifier.to_bytes_be()).to_vec(), v.bytes("v"));
}

#[test]
fn server_public_key_matches_vector() {
    let v = Vector::load();
    let server = v.server();
    assert_eq!(server.public_key(), &v.bytes("B")[..]);
    assert_eq!(server.salt(), &v.bytes("s")[..]);
}

#[test]
fn client_public_key_a_matches_vector() {
    // A = g^a mod N with the vector's a: the value the controller sends in M3.
    let v = Vector::load();
    let a = BigUint::from(GENERATOR).modpow(&BigUint::from_bytes_be(&v.bytes("a")), modulus());
    assert_eq!(a.to_bytes_be(), v.bytes("A"));
}

#[test]
fn u_s_k_m1_m2_match_vector() {
    let v = Vector::load();
    let server = v.server();
    let u = scrambling(&pad(&v.bytes("A")), &pad(&v.bytes("B")));
    assert_eq!(u.to_vec(), v.bytes("u"));
    let s = server.premaster(&BigUint::from_bytes_be(&v.bytes("A")), &u);
    assert_eq!(s.to_vec(), v.bytes("S"));
    assert_eq!(session_key(&s[..]).to_vec(), v.bytes("K"));
    let m1 = client_proof(
        v.text("I"),
        &v.bytes("s"),
        &v.bytes("A"),
        &v.bytes("B"),
        &v.bytes("K"),
    );
    assert_eq!(m1.to_vec(), v.bytes("M1"));
    assert_eq!(
        server_proof(&v.bytes("A"), &m1, &v.bytes("K")).to_vec(),
        v.bytes("M2")
    );

    let session = server.verify_client(&v.bytes("A"), &v.bytes("M1")).unwrap();
    assert_eq!(session.key().to_vec(), v.bytes("K"));
    assert_eq!(session.server_proof().to_vec(), v.bytes("M2"));
    // No leading zeros: every convention is the same byte string, ADK's is tried first.
    assert_eq!(session.variant(), Variant::ADK);
}

#[test]
fn wrong_proof_is_authentication_error() {
    let v = Vector::load();
    let mut m1 = v.bytes("M1");
    m1[63] ^= 1;
    assert_eq!(
        v.server().verify_client(&v.bytes("A"), &m1).unwrap_err(),
        Error::Authentication
    );
}

#[test]
fn a_zero_mod_n_is_rejected() {
    let v = Vector::load();
    let server = v.server();
    let m1 = v.bytes("M1");
    for a in [vec![0u8], vec![0u8; N_LEN], modulus_bytes().to_vec()] {
        assert_eq!(
            server.verify_client(&a, &m1).unwrap_err(),
            Error::PeerMisbehaved(PeerMisbehaved::InvalidSrpPublicKey)
        );
    }
}

#[test]
fn bad_lengths_are_rejected() {
    let v = Vector::load();
    let server = v.server();
    assert_eq!(
        server.verify_client(&[], &v.bytes("M1")).unwrap_err(),
        Error::PeerMisbehaved(PeerMisbehaved::BadLength { ty: 3, len: 0 })
    );
    assert_eq!(
        server
            .verify_client(&[1u8; N_LEN + 1], &v.bytes("M1"))
            .unwrap_err(),
        Error::PeerMisbehaved(PeerMisbehaved::BadLength {
            ty: 3,
            len: N_LEN + 1
        })
    );
    assert_eq!(
        server.verify_client(&v.bytes("A"), &[0u8; 63]).unwrap_err(),
        Error::PeerMisbehaved(PeerMisbehaved::BadLength { ty: 4, len: 63 })
    );
}

#[test]
fn pad_and_strip() {
    assert_eq!(strip(&[0, 0, 1, 2]), &[1, 2]);
    assert_eq!(strip(&[0, 0]), &[0]);
    assert_eq!(strip(&[]), &[] as &[u8]);
    let p = pad(&[0, 7]);
    assert_eq!(p.len(), N_LEN);
    assert_eq!(p[N_LEN - 1], 7);
    assert!(p[..N_LEN - 1].iter().all(|b| *b == 0));
}

#[test]
fn debug_hides_secrets() {
    let v = Vector::load();
    let server = v.server();
    let text = format!("{server:?}");
    assert!(
        !text.contains("verifier") && !text.contains("secret"),
        "{text}"
    );
    let session = server.verify_client(&v.bytes("A"), &v.bytes("M1")).unwrap();
    assert!(!format!("{session:?}").contains("key"));
}
