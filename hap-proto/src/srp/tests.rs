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

/// The accessory matches each controller convention when a value has a leading zero byte, and
/// the conventions really produce different proofs then. Uses the controller's independent
/// client math (feature `controller`).
#[cfg(feature = "controller")]
mod variants {
    use super::*;
    use crate::controller::setup::{Exchange, SrpPadding, client_exchange};

    const PASSWORD: &[u8] = b"031-45-154";
    const SALT: [u8; SALT_LEN] = [0x11; SALT_LEN];

    /// Client secrets a = SHA-512(i)[..32]: the first index whose A, resp. S (with the server
    /// of secret `[0x22; 32]`), has a leading zero byte. Found by `search`.
    const A_ZERO_INDEX: u32 = 839;
    const S_ZERO_INDEX: u32 = 323;
    /// Server secret b = SHA-512(i)[..32] whose B has a leading zero byte.
    const B_ZERO_INDEX: u32 = 389;

    fn secret(i: u32) -> [u8; 32] {
        hash(&[&i.to_be_bytes()])[..32].try_into().unwrap()
    }

    fn exchange(server: &SrpServer, a: u32, padding: SrpPadding) -> Exchange {
        client_exchange(
            USERNAME,
            PASSWORD,
            server.salt(),
            &secret(a),
            server.public_key(),
            padding,
        )
        .unwrap()
    }

    /// The first index from `start` for which `hit` holds (bounded).
    fn search(start: u32, hit: impl Fn(u32) -> bool) -> u32 {
        (start..start + 4096)
            .find(|i| hit(*i))
            .expect("no index in 4096 tries")
    }

    fn check(server: &SrpServer, a: u32, padding: SrpPadding, variant: Variant) {
        let ex = exchange(server, a, padding);
        let session = server.verify_client(&ex.a_sent, &ex.m1).unwrap();
        assert_eq!(session.variant(), variant, "{padding:?}");
        assert_eq!(session.key()[..], ex.key[..], "{padding:?}");
        assert_eq!(session.server_proof(), &ex.expected_m2, "{padding:?}");
    }

    #[test]
    fn a_with_leading_zero() {
        let server = SrpServer::new(USERNAME, PASSWORD, SALT, [0x22; 32]);
        assert_eq!(server.public_key().len(), N_LEN);
        let i = search(A_ZERO_INDEX, |i| {
            exchange(&server, i, SrpPadding::Pad).leading_zeros.a
        });
        assert_eq!(i, A_ZERO_INDEX, "refresh A_ZERO_INDEX");
        let strip = exchange(&server, i, SrpPadding::Strip);
        assert_eq!(strip.a_sent.len(), N_LEN - 1);
        assert_ne!(strip.m1, exchange(&server, i, SrpPadding::Pad).m1);
        check(&server, i, SrpPadding::Strip, Variant::ADK);
        check(&server, i, SrpPadding::Pad, Variant::PADDED);
        check(&server, i, SrpPadding::ReceivedB, Variant::PADDED);
    }

    #[test]
    fn s_with_leading_zero() {
        let server = SrpServer::new(USERNAME, PASSWORD, SALT, [0x22; 32]);
        let i = search(S_ZERO_INDEX, |i| {
            exchange(&server, i, SrpPadding::Pad).leading_zeros.s
        });
        assert_eq!(i, S_ZERO_INDEX, "refresh S_ZERO_INDEX");
        let strip = exchange(&server, i, SrpPadding::Strip);
        let pad = exchange(&server, i, SrpPadding::Pad);
        assert_ne!(strip.key[..], pad.key[..]);
        check(&server, i, SrpPadding::Strip, Variant::ADK);
        check(&server, i, SrpPadding::Pad, Variant::PADDED);
        check(&server, i, SrpPadding::ReceivedB, Variant::PADDED);
    }

    #[test]
    fn b_with_leading_zero() {
        let j = search(B_ZERO_INDEX, |j| {
            SrpServer::new(USERNAME, PASSWORD, SALT, secret(j))
                .public_key()
                .len()
                < N_LEN
        });
        assert_eq!(j, B_ZERO_INDEX, "refresh B_ZERO_INDEX");
        let server = SrpServer::new(USERNAME, PASSWORD, SALT, secret(j));
        // ADK sends B stripped.
        assert_eq!(server.public_key().len(), N_LEN - 1);
        let strip = exchange(&server, 1, SrpPadding::Strip);
        let pad = exchange(&server, 1, SrpPadding::Pad);
        let received = exchange(&server, 1, SrpPadding::ReceivedB);
        assert_ne!(strip.m1, pad.m1);
        // aiohomekit 4.x hashes B as received inside u: a different S and K altogether.
        assert_ne!(received.key[..], pad.key[..]);
        check(&server, 1, SrpPadding::Strip, Variant::ADK);
        check(&server, 1, SrpPadding::Pad, Variant::PADDED);
        check(
            &server,
            1,
            SrpPadding::ReceivedB,
            Variant {
                a: Form::Padded,
                b: Form::Stripped,
                s: Form::Padded,
                u_over_sent_b: true,
            },
        );
    }
}

#[test]
fn aiohomekit_4_0_1_with_short_b() {
    // A real peer's numbers: aiohomekit hashes the stripped B inside u (see the file header).
    let v = parse(include_str!(
        "../../testdata/srp/aiohomekit_4_0_1_short_b.txt"
    ));
    let server = SrpServer::new(
        USERNAME,
        get(&v, "P").as_bytes(),
        hex(get(&v, "s")).try_into().unwrap(),
        hex(get(&v, "b")).try_into().unwrap(),
    );
    assert_eq!(server.public_key(), &hex(get(&v, "B"))[..]);
    assert_eq!(server.public_key().len(), N_LEN - 1);
    let session = server
        .verify_client(&hex(get(&v, "A")), &hex(get(&v, "M1")))
        .unwrap();
    assert_eq!(session.key().to_vec(), hex(get(&v, "K")));
    assert!(session.variant().u_over_sent_b);
    assert_eq!(session.server_proof().to_vec(), hex(get(&v, "M2")));
}
