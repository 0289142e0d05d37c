//! Pair-verify, the encrypted session and /pairings, driven end to end in memory: the
//! controller side (feature `controller`) against the accessory side, with seeded randomness.
#![cfg(feature = "controller")]
// A panic inside a test is a test failure, not a bug in the product.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::HashMap;

use ed25519_dalek::{Signer, SigningKey};
use hap_proto::controller::verify::{
    ControllerCredentials, ControllerVerified, ControllerVerify, add_pairing_request,
    list_pairings_request, parse_list_pairings, parse_pairings_status, remove_pairing_request,
};
use hap_proto::crypto::{hkdf_sha512, label_nonce};
use hap_proto::pairing::pairings::{self, PairingsReply};
use hap_proto::pairing::verify::{PairVerify, Verified, VerifyContext};
use hap_proto::pairing::{
    AccessoryIdentity, DeviceId, MAX_PAIRINGS, MemoryStore, Pairing, PairingId, PairingStore,
    Permissions,
};
use hap_proto::session::{MAX_FRAME_PLAINTEXT, Session, SessionKeys};
use hap_proto::tlv8::TlvError;
use hap_proto::{CryptoRandom, Error, PeerMisbehaved};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

const KEYS: &str = include_str!("../testdata/verify/pair_verify_keys.txt");
const ED25519: &str = include_str!("../testdata/verify/ed25519_rfc8032_test2.txt");
const LIST_TWO: &str = include_str!("../testdata/verify/list_pairings_two.txt");

const CONTROLLER_ID: &[u8] = b"4B6C96D4-5A34-4B30-85C3-8A1687FD4E41";
/// `State=4, Error=Authentication` (hap-reference §10.5 "wrong setup code" has the same bytes).
const M4_AUTH_ERROR: [u8; 6] = [0x06, 0x01, 0x04, 0x07, 0x01, 0x02];

// ---------------------------------------------------------------------------------------------
// Vectors

#[test]
fn section_10_3_vectors_end_to_end() {
    let v = vectors(KEYS);
    let ed = vectors(ED25519);
    // The accessory signs with the RFC 8032 TEST 2 key, the controller with a seeded key.
    let identity = AccessoryIdentity {
        device_id: DeviceId::parse("E1:91:1A:70:85:AA").unwrap(),
        signing_key: SigningKey::from_bytes(&arr(&ed["secret_key"])),
    };
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let controller_key = SigningKey::from_bytes(&bytes32(&mut rng));
    let store = store_with(&[(CONTROLLER_ID, &controller_key, Permissions::Admin)]);

    let (expect_m2, m1) = ControllerVerify::start(&mut Fixed(v["controller_cvsk"].clone()));
    assert_eq!(m1[..5], [0x06, 0x01, 0x01, 0x03, 0x20]);
    assert_eq!(m1[5..], v["controller_cvpk"][..]);

    let mut accessory = PairVerify::new();
    let mut accessory_rng = Fixed(v["accessory_cvsk"].clone());
    let mut cx = VerifyContext {
        identity: &identity,
        store: &store,
        rng: &mut accessory_rng,
    };
    let m2 = accessory.handle(&m1, &mut cx).unwrap();
    assert!(m2.established.is_none());
    // State=2, PublicKey=AccessoryCvPK, EncryptedData(sub-TLV 2+17 + 2+64, tag 16).
    assert_eq!(m2.body[..5], [0x06, 0x01, 0x02, 0x03, 0x20]);
    assert_eq!(m2.body[5..37], v["accessory_cvpk"][..]);
    assert_eq!(m2.body[37..39], [0x05, 17 + 2 + 64 + 2 + 16]);

    // Decrypt M2 by hand with the vector's PV session key and nonce: the sub-TLV must carry the
    // Device ID and a signature that the RFC 8032 public key verifies.
    let pv_key = hkdf_sha512(
        &v["shared_secret"],
        b"Pair-Verify-Encrypt-Salt",
        b"Pair-Verify-Encrypt-Info",
    );
    assert_eq!(pv_key[..], v["pv_session_key"][..]);
    assert_eq!(label_nonce(b"PV-Msg02")[..], v["pv_msg02_nonce"][..]);
    let sub =
        hap_proto::crypto::open(&pv_key, &label_nonce(b"PV-Msg02"), &[], &m2.body[39..]).unwrap();
    assert_eq!(sub[..19], *b"\x01\x11E1:91:1A:70:85:AA");
    let mut info = v["accessory_cvpk"].clone();
    info.extend_from_slice(b"E1:91:1A:70:85:AA");
    info.extend_from_slice(&v["controller_cvpk"]);
    // Ed25519 is deterministic: the signature in M2 is exactly the one the key produces.
    assert_eq!(sub[19..21], [0x0a, 0x40]);
    assert_eq!(sub[21..], identity.signing_key.sign(&info).to_bytes());

    let creds = ControllerCredentials {
        pairing_id: CONTROLLER_ID,
        signing_key: &controller_key,
        accessory_pairing_id: b"E1:91:1A:70:85:AA",
        accessory_ltpk: arr(&ed["public_key"]),
    };
    let (expect_m4, m3) = expect_m2.handle(&m2.body, &creds).unwrap();
    let m4 = accessory.handle(&m3, &mut cx).unwrap();
    assert_eq!(m4.body, [0x06, 0x01, 0x04]);
    let verified = m4.established.unwrap();
    let controller = expect_m4.handle(&m4.body).unwrap();

    for (shared, keys) in [
        (&*verified.shared_secret, &verified.keys),
        (&*controller.shared_secret, &controller.keys),
    ] {
        assert_eq!(shared[..], v["shared_secret"][..]);
        assert_eq!(
            keys.accessory_to_controller[..],
            v["accessory_to_controller_key"][..]
        );
        assert_eq!(
            keys.controller_to_accessory[..],
            v["controller_to_accessory_key"][..]
        );
    }
    assert_eq!(verified.controller, PairingId(CONTROLLER_ID.to_vec()));
    assert_eq!(verified.permissions, Permissions::Admin);

    // The first framed request, byte for byte.
    let mut c = Session::controller(controller.keys);
    let mut a = Session::accessory(verified.keys);
    let mut wire = Vec::new();
    c.seal(&v["first_request_plaintext"], &mut wire).unwrap();
    assert_eq!(wire, v["first_request_frame"]);
    a.feed(&wire);
    assert_eq!(
        a.poll_plaintext().unwrap().unwrap(),
        b"GET /accessories HTTP/1.1\r\n\r\n"
    );
}

#[test]
fn session_keys_derive_matches_vector() {
    let v = vectors(KEYS);
    let keys = SessionKeys::derive(&arr(&v["shared_secret"]));
    assert_eq!(
        keys.accessory_to_controller[..],
        v["accessory_to_controller_key"][..]
    );
    assert_eq!(
        keys.controller_to_accessory[..],
        v["controller_to_accessory_key"][..]
    );
    // Key material never shows in Debug output.
    assert_eq!(format!("{keys:?}"), "SessionKeys { .. }");
}

#[test]
fn ed25519_rfc8032_test2() {
    let v = vectors(ED25519);
    let sk = SigningKey::from_bytes(&arr(&v["secret_key"]));
    assert_eq!(sk.verifying_key().to_bytes()[..], v["public_key"][..]);
    assert_eq!(sk.sign(&v["message"]).to_bytes()[..], v["signature"][..]);
}

// ---------------------------------------------------------------------------------------------
// Pair-verify, accessory ↔ controller

#[test]
fn verify_then_exchange_every_size_both_directions() {
    let mut h = Harness::new(7);
    let (verified, controller) = h.verify().unwrap();
    assert_eq!(verified.controller.0, CONTROLLER_ID);
    let mut a = Session::accessory(verified.keys);
    let mut c = Session::controller(controller.keys);
    let mut rng = ChaCha20Rng::seed_from_u64(99);

    for size in [0usize, 1, 1023, 1024, 1025, 5000] {
        let mut msg = vec![0u8; size];
        rng.fill_bytes(&mut msg);
        let frames = size.div_ceil(MAX_FRAME_PLAINTEXT);
        // Controller → accessory and accessory → controller.
        for direction in 0..2 {
            let (from, to) = if direction == 0 {
                (&mut c, &mut a)
            } else {
                (&mut a, &mut c)
            };
            let mut wire = Vec::new();
            from.seal(&msg, &mut wire).unwrap();
            assert_eq!(wire.len(), size + frames * 18);
            let got = deliver_random_chunks(to, &wire, &mut rng);
            assert_eq!(got, msg, "size {size}, direction {direction}");
        }
    }
}

#[test]
fn small_message_opens_at_every_split_point() {
    let mut h = Harness::new(8);
    let (verified, controller) = h.verify().unwrap();
    let mut a = Session::accessory(verified.keys);
    let mut c = Session::controller(controller.keys);
    let msg = b"PUT /characteristics HTTP/1.1\r\nContent-Length: 0\r\n\r\n";
    // Two messages so that the second frame uses counter 1 and the split may fall anywhere in
    // either frame.
    let mut wire = Vec::new();
    c.seal(msg, &mut wire).unwrap();
    c.seal(b"x", &mut wire).unwrap();
    let mut expected = msg.to_vec();
    expected.push(b'x');
    for split in 0..=wire.len() {
        // A fresh pair of sessions per split point: counters restart at 0.
        let keys = SessionKeys::derive(&[split as u8; 32]);
        let mut tx = Session::controller(keys.clone());
        let mut rx = Session::accessory(keys);
        let mut w = Vec::new();
        tx.seal(msg, &mut w).unwrap();
        tx.seal(b"x", &mut w).unwrap();
        let mut got = Vec::new();
        rx.feed(&w[..split]);
        rx.open_available(&mut got).unwrap();
        rx.feed(&w[split..]);
        rx.open_available(&mut got).unwrap();
        assert_eq!(got, expected, "split at {split}");
    }
    // And the verified session itself, byte by byte.
    let mut got = Vec::new();
    for b in &wire {
        a.feed(std::slice::from_ref(b));
        a.open_available(&mut got).unwrap();
    }
    assert_eq!(got, expected);
}

#[test]
fn tampered_byte_kills_the_session_for_good() {
    let mut h = Harness::new(9);
    let (verified, controller) = h.verify().unwrap();
    let mut a = Session::accessory(verified.keys);
    let mut c = Session::controller(controller.keys);
    let mut wire = Vec::new();
    c.seal(b"first", &mut wire).unwrap();
    a.feed(&wire);
    assert_eq!(a.poll_plaintext().unwrap().unwrap(), b"first");

    let mut wire = Vec::new();
    c.seal(b"second frame", &mut wire).unwrap();
    // Flip one bit in the ciphertext (the length bytes are covered as AAD, tested below).
    wire[5] ^= 0x01;
    a.feed(&wire);
    assert_eq!(a.poll_plaintext(), Err(Error::Authentication));
    assert!(a.is_dead());
    // Later input, even valid, changes nothing: the connection must close.
    let mut good = Vec::new();
    c.seal(b"third", &mut good).unwrap();
    a.feed(&good);
    assert_eq!(a.poll_plaintext(), Err(Error::Authentication));
    assert_eq!(
        a.open_available(&mut Vec::new()),
        Err(Error::Authentication)
    );
    assert_eq!(
        a.seal(b"reply", &mut Vec::new()),
        Err(Error::Authentication)
    );

    // A modified length (AAD) fails the same way.
    let mut h = Harness::new(10);
    let (verified, controller) = h.verify().unwrap();
    let mut a = Session::accessory(verified.keys);
    let mut c = Session::controller(controller.keys);
    let mut wire = Vec::new();
    c.seal(b"abc", &mut wire).unwrap();
    wire[0] = 2;
    wire.push(0);
    a.feed(&wire);
    assert_eq!(a.poll_plaintext(), Err(Error::Authentication));
}

#[test]
fn frame_length_1025_is_rejected() {
    let mut a = Session::accessory(SessionKeys::derive(&[1; 32]));
    a.feed(&[0x01, 0x04]);
    assert_eq!(a.poll_plaintext(), Err(Error::FrameTooLarge { len: 1025 }));
    a.feed(&[0u8; 1041]);
    assert_eq!(a.poll_plaintext(), Err(Error::FrameTooLarge { len: 1025 }));
    // 1024 is fine: it only waits for the rest of the frame.
    let mut a = Session::accessory(SessionKeys::derive(&[1; 32]));
    a.feed(&[0x00, 0x04]);
    assert_eq!(a.poll_plaintext(), Ok(None));
}

#[test]
fn wrong_accessory_ltpk_or_id_is_refused_by_the_controller() {
    for case in 0..2 {
        let mut h = Harness::new(11);
        let (expect_m2, m1) = ControllerVerify::start(&mut h.rng);
        let m2 = h.accessory_handle(&m1).unwrap();
        let other = SigningKey::from_bytes(&bytes32(&mut h.rng))
            .verifying_key()
            .to_bytes();
        let creds = ControllerCredentials {
            pairing_id: CONTROLLER_ID,
            signing_key: &h.controller_key,
            accessory_pairing_id: if case == 0 {
                b"E1:91:1A:70:85:AA"
            } else {
                b"E1:91:1A:70:85:AB"
            },
            accessory_ltpk: if case == 0 {
                other
            } else {
                h.identity.public_key()
            },
        };
        assert_eq!(
            expect_m2.handle(&m2.body, &creds).err(),
            Some(Error::Authentication)
        );
    }
}

#[test]
fn unknown_controller_gets_authentication() {
    let mut h = Harness::new(12);
    h.store = MemoryStore::default();
    let (expect_m2, m1) = ControllerVerify::start(&mut h.rng);
    let m2 = h.accessory_handle(&m1).unwrap();
    let (_, m3) = expect_m2.handle(&m2.body, &h.creds()).unwrap();
    let m4 = h.accessory_handle(&m3).unwrap();
    assert_eq!(m4.body, M4_AUTH_ERROR);
    assert!(m4.established.is_none());
    // The machine is back at M1: the same M3 again is out of sequence.
    assert_eq!(
        h.accessory_handle(&m3).err(),
        Some(Error::PeerMisbehaved(PeerMisbehaved::UnexpectedState {
            received: 3
        }))
    );
}

#[test]
fn controller_key_not_matching_the_stored_ltpk_gets_authentication() {
    let mut h = Harness::new(13);
    let (expect_m2, m1) = ControllerVerify::start(&mut h.rng);
    let m2 = h.accessory_handle(&m1).unwrap();
    let impostor = SigningKey::from_bytes(&bytes32(&mut h.rng));
    let mut creds = h.creds();
    creds.signing_key = &impostor;
    let (_, m3) = expect_m2.handle(&m2.body, &creds).unwrap();
    let m4 = h.accessory_handle(&m3).unwrap();
    assert_eq!(m4.body, M4_AUTH_ERROR);
}

#[test]
fn m3_identifier_length_rules() {
    // 37 bytes cannot name a pairing: malformed (HTTP 400), as ADK. Empty: simply unknown.
    for (id, expect_decode_error) in [(&[b'A'; 37][..], true), (&[][..], false)] {
        let mut h = Harness::new(21);
        let (expect_m2, m1) = ControllerVerify::start(&mut h.rng);
        let m2 = h.accessory_handle(&m1).unwrap();
        let mut creds = h.creds();
        creds.pairing_id = id;
        let (_, m3) = expect_m2.handle(&m2.body, &creds).unwrap();
        let result = h.accessory_handle(&m3);
        if expect_decode_error {
            assert!(matches!(result, Err(Error::Decode(_))), "{result:?}");
        } else {
            assert_eq!(result.unwrap().body, M4_AUTH_ERROR);
        }
    }
}

#[test]
fn tampered_m3_gets_authentication_and_controller_sees_it() {
    let mut h = Harness::new(14);
    let (expect_m2, m1) = ControllerVerify::start(&mut h.rng);
    let m2 = h.accessory_handle(&m1).unwrap();
    let (expect_m4, mut m3) = expect_m2.handle(&m2.body, &h.creds()).unwrap();
    let last = m3.len() - 1;
    m3[last] ^= 0x80; // inside the tag of EncryptedData
    let m4 = h.accessory_handle(&m3).unwrap();
    assert_eq!(m4.body, M4_AUTH_ERROR);
    assert!(m4.established.is_none());
    assert_eq!(
        expect_m4.handle(&m4.body).err(),
        Some(Error::Pairing(TlvError::AUTHENTICATION))
    );
}

#[test]
fn new_m1_restarts_and_the_old_m3_no_longer_verifies() {
    // M1a, M1b, then M3b: the restarted attempt completes.
    let mut h = Harness::new(15);
    let (first, m1a) = ControllerVerify::start(&mut h.rng);
    let m2a = h.accessory_handle(&m1a).unwrap();
    let (second, m1b) = ControllerVerify::start(&mut h.rng);
    let m2b = h.accessory_handle(&m1b).unwrap();
    assert!(h.verify.is_expecting_m3());
    let (expect_m4, m3b) = second.handle(&m2b.body, &h.creds()).unwrap();
    let m4 = h.accessory_handle(&m3b).unwrap();
    let verified = m4.established.unwrap();
    let controller = expect_m4.handle(&m4.body).unwrap();
    assert_eq!(
        verified.keys.controller_to_accessory,
        controller.keys.controller_to_accessory
    );
    assert!(!h.verify.is_expecting_m3());

    // M1a, M1b, then M3a: sealed with the abandoned attempt's key.
    let (_, m3a) = first.handle(&m2a.body, &h.creds()).unwrap();
    let (_, m1c) = ControllerVerify::start(&mut h.rng);
    h.accessory_handle(&m1c).unwrap();
    assert_eq!(h.accessory_handle(&m3a).unwrap().body, M4_AUTH_ERROR);
    assert!(!h.verify.is_expecting_m3());
}

#[test]
fn malformed_requests_are_errors_not_replies() {
    let mut h = Harness::new(16);
    // Truncated TLV.
    assert!(matches!(h.accessory_handle(&[0x06]), Err(Error::Decode(_))));
    // No State.
    assert_eq!(
        h.accessory_handle(&[0x03, 0x00]).err(),
        Some(Error::PeerMisbehaved(PeerMisbehaved::MissingItem {
            ty: 0x06
        }))
    );
    // M1 without a public key, and with a short one.
    assert_eq!(
        h.accessory_handle(&[0x06, 0x01, 0x01]).err(),
        Some(Error::PeerMisbehaved(PeerMisbehaved::MissingItem {
            ty: 0x03
        }))
    );
    assert_eq!(
        h.accessory_handle(&[0x06, 0x01, 0x01, 0x03, 0x01, 0x09])
            .err(),
        Some(Error::PeerMisbehaved(PeerMisbehaved::BadLength {
            ty: 0x03,
            len: 1
        }))
    );
    // M3 before any M1.
    assert_eq!(
        h.accessory_handle(&[0x06, 0x01, 0x03, 0x05, 0x00]).err(),
        Some(Error::PeerMisbehaved(PeerMisbehaved::UnexpectedState {
            received: 3
        }))
    );
    // A low-order X25519 point (all zero) shares no secret: refused at M2.
    let mut m1 = vec![0x06, 0x01, 0x01, 0x03, 0x20];
    m1.extend_from_slice(&[0; 32]);
    assert_eq!(
        h.accessory_handle(&m1).unwrap().body,
        [0x06, 0x01, 0x02, 0x07, 0x01, 0x02]
    );
}

#[test]
fn verified_debug_hides_secrets() {
    let mut h = Harness::new(17);
    let (verified, _) = h.verify().unwrap();
    let text = format!("{verified:?}");
    assert!(text.contains("Verified"));
    let secret_hex: String = verified
        .shared_secret
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(!text.contains(&secret_hex));
    assert!(!text.contains(&format!("{:?}", *verified.shared_secret)));
}

// ---------------------------------------------------------------------------------------------
// /pairings

#[test]
fn pairings_non_admin_is_refused() {
    let user_key = SigningKey::from_bytes(&[5; 32]);
    let mut store = store_with(&[(b"USER", &user_key, Permissions::User)]);
    let caller = PairingId(b"USER".to_vec());
    for body in [
        list_pairings_request(),
        remove_pairing_request(b"USER"),
        add_pairing_request(b"NEW", &[9; 32], Permissions::Admin),
    ] {
        let reply = pairings::handle(&body, &caller, &mut store).unwrap();
        assert_eq!(reply.body, [0x06, 0x01, 0x02, 0x07, 0x01, 0x02]);
        assert_eq!(
            parse_pairings_status(&reply.body),
            Err(Error::Pairing(TlvError::AUTHENTICATION))
        );
    }
    // Rights are checked before the items: a malformed add from a non-admin is still refused.
    let reply =
        pairings::handle(&[0x06, 0x01, 0x01, 0x00, 0x01, 0x03], &caller, &mut store).unwrap();
    assert_eq!(reply.body, [0x06, 0x01, 0x02, 0x07, 0x01, 0x02]);
    assert_eq!(store.pairings.len(), 1);
    // A caller whose pairing is gone is refused too.
    let reply = pairings::handle(
        &list_pairings_request(),
        &PairingId(b"GONE".to_vec()),
        &mut store,
    )
    .unwrap();
    assert_eq!(reply.body, [0x06, 0x01, 0x02, 0x07, 0x01, 0x02]);
}

#[test]
fn pairings_add_update_conflict_and_max_peers() {
    let admin_key = SigningKey::from_bytes(&[1; 32]);
    let mut store = store_with(&[(CONTROLLER_ID, &admin_key, Permissions::Admin)]);
    let admin = PairingId(CONTROLLER_ID.to_vec());

    // Add a user.
    let reply = pairings::handle(
        &add_pairing_request(b"guest-1", &[7; 32], Permissions::User),
        &admin,
        &mut store,
    )
    .unwrap();
    assert_eq!(reply, ok_reply());
    assert_eq!(
        store.pairing(&PairingId(b"guest-1".to_vec())).unwrap(),
        Pairing {
            id: PairingId(b"guest-1".to_vec()),
            public_key: [7; 32],
            permissions: Permissions::User
        }
    );
    // Same key: permissions updated.
    let reply = pairings::handle(
        &add_pairing_request(b"guest-1", &[7; 32], Permissions::Admin),
        &admin,
        &mut store,
    )
    .unwrap();
    assert_eq!(reply, ok_reply());
    assert_eq!(
        store
            .pairing(&PairingId(b"guest-1".to_vec()))
            .unwrap()
            .permissions,
        Permissions::Admin
    );
    // Different key: Unknown, nothing changes.
    let before = store.pairings.clone();
    let reply = pairings::handle(
        &add_pairing_request(b"guest-1", &[8; 32], Permissions::User),
        &admin,
        &mut store,
    )
    .unwrap();
    assert_eq!(reply.body, [0x06, 0x01, 0x02, 0x07, 0x01, 0x01]);
    assert_eq!(store.pairings, before);

    // Fill up to 16; the 17th is MaxPeers, but updating an existing one still works.
    for i in store.pairings.len()..MAX_PAIRINGS {
        let id = format!("fill-{i}");
        let reply = pairings::handle(
            &add_pairing_request(id.as_bytes(), &[i as u8; 32], Permissions::User),
            &admin,
            &mut store,
        )
        .unwrap();
        assert_eq!(reply, ok_reply());
    }
    assert_eq!(store.pairings.len(), MAX_PAIRINGS);
    let reply = pairings::handle(
        &add_pairing_request(b"one-too-many", &[0xEE; 32], Permissions::User),
        &admin,
        &mut store,
    )
    .unwrap();
    assert_eq!(reply.body, [0x06, 0x01, 0x02, 0x07, 0x01, 0x04]);
    assert_eq!(
        parse_pairings_status(&reply.body),
        Err(Error::Pairing(TlvError::MAX_PEERS))
    );
    let reply = pairings::handle(
        &add_pairing_request(b"guest-1", &[7; 32], Permissions::User),
        &admin,
        &mut store,
    )
    .unwrap();
    assert_eq!(reply, ok_reply());
}

#[test]
fn pairings_add_rejects_bad_permissions_and_long_ids() {
    let admin_key = SigningKey::from_bytes(&[1; 32]);
    let mut store = store_with(&[(CONTROLLER_ID, &admin_key, Permissions::Admin)]);
    let admin = PairingId(CONTROLLER_ID.to_vec());
    let mut bad_perm = add_pairing_request(b"x", &[7; 32], Permissions::User);
    let last = bad_perm.len() - 1;
    bad_perm[last] = 2;
    assert!(matches!(
        pairings::handle(&bad_perm, &admin, &mut store),
        Err(Error::Decode(_))
    ));
    let long = [b'A'; 37];
    assert!(matches!(
        pairings::handle(
            &add_pairing_request(&long, &[7; 32], Permissions::User),
            &admin,
            &mut store
        ),
        Err(Error::Decode(_))
    ));
    // 36 bytes is the limit and is accepted.
    let reply = pairings::handle(
        &add_pairing_request(&long[..36], &[7; 32], Permissions::User),
        &admin,
        &mut store,
    )
    .unwrap();
    assert_eq!(reply, ok_reply());
    assert_eq!(store.pairings.len(), 2);
}

#[test]
fn pairings_demoted_admin_loses_rights_at_once() {
    let admin_key = SigningKey::from_bytes(&[1; 32]);
    let other_key = SigningKey::from_bytes(&[2; 32]);
    let mut store = store_with(&[
        (CONTROLLER_ID, &admin_key, Permissions::Admin),
        (b"OTHER-ADMIN", &other_key, Permissions::Admin),
    ]);
    let me = PairingId(CONTROLLER_ID.to_vec());
    let other = PairingId(b"OTHER-ADMIN".to_vec());
    // The other admin demotes me.
    let reply = pairings::handle(
        &add_pairing_request(
            CONTROLLER_ID,
            &admin_key.verifying_key().to_bytes(),
            Permissions::User,
        ),
        &other,
        &mut store,
    )
    .unwrap();
    assert_eq!(reply, ok_reply());
    // My session is still open, but my next request is refused.
    let reply = pairings::handle(&list_pairings_request(), &me, &mut store).unwrap();
    assert_eq!(reply.body, [0x06, 0x01, 0x02, 0x07, 0x01, 0x02]);

    // The other admin demotes itself too: no admin is left, so every pairing goes.
    let reply = pairings::handle(
        &add_pairing_request(
            b"OTHER-ADMIN",
            &other_key.verifying_key().to_bytes(),
            Permissions::User,
        ),
        &other,
        &mut store,
    )
    .unwrap();
    assert_eq!(reply.body, [0x06, 0x01, 0x02]);
    assert_eq!(reply.removed, vec![me, other]);
    assert!(reply.now_unpaired);
    assert!(store.pairings.is_empty());
}

#[test]
fn pairings_remove_unknown_user_and_last_admin() {
    let admin_key = SigningKey::from_bytes(&[1; 32]);
    let user_key = SigningKey::from_bytes(&[2; 32]);
    let mut store = store_with(&[
        (CONTROLLER_ID, &admin_key, Permissions::Admin),
        (b"USER-1", &user_key, Permissions::User),
        (b"USER-2", &user_key, Permissions::User),
    ]);
    let admin = PairingId(CONTROLLER_ID.to_vec());

    // Unknown identifier: success, nothing removed.
    let reply = pairings::handle(&remove_pairing_request(b"NOBODY"), &admin, &mut store).unwrap();
    assert_eq!(reply, ok_reply());
    assert_eq!(store.pairings.len(), 3);

    // A user: removed, its sessions must close.
    let reply = pairings::handle(&remove_pairing_request(b"USER-1"), &admin, &mut store).unwrap();
    assert_eq!(reply.body, [0x06, 0x01, 0x02]);
    assert_eq!(reply.removed, vec![PairingId(b"USER-1".to_vec())]);
    assert!(!reply.now_unpaired);

    // The last admin removes itself: every pairing goes, the accessory is unpaired.
    let reply =
        pairings::handle(&remove_pairing_request(CONTROLLER_ID), &admin, &mut store).unwrap();
    assert_eq!(reply.body, [0x06, 0x01, 0x02]);
    assert_eq!(
        reply.removed,
        vec![admin.clone(), PairingId(b"USER-2".to_vec())]
    );
    assert!(reply.now_unpaired);
    assert!(store.pairings.is_empty());
}

#[test]
fn pairings_list_two_entries_byte_exact() {
    let v = vectors(LIST_TWO);
    let mut store = MemoryStore {
        pairings: vec![
            Pairing {
                id: PairingId(v["id1"].clone()),
                public_key: arr(&v["key1"]),
                permissions: Permissions::Admin,
            },
            Pairing {
                id: PairingId(v["id2"].clone()),
                public_key: arr(&v["key2"]),
                permissions: Permissions::User,
            },
        ],
        failed_attempts: 0,
    };
    let caller = PairingId(v["id1"].clone());
    let reply = pairings::handle(&list_pairings_request(), &caller, &mut store).unwrap();
    assert_eq!(reply.body, v["reply"]);
    assert!(reply.removed.is_empty());
    // The controller parses it back, identifiers byte-exact (lowercase id#2 stays lowercase).
    assert_eq!(parse_list_pairings(&reply.body).unwrap(), store.pairings);

    // One entry: no separator at all.
    store.pairings.truncate(1);
    let reply = pairings::handle(&list_pairings_request(), &caller, &mut store).unwrap();
    assert!(!reply.body.windows(2).any(|w| w == [0xFF, 0x00]));
    assert_eq!(reply.body.len(), 3 + 38 + 34 + 3);
}

#[test]
fn pairings_requests_over_a_verified_session() {
    // The whole path: verify, then a framed POST /pairings body (HTTP is out of scope here, so
    // only the TLV body travels through the session).
    let mut h = Harness::new(20);
    let (verified, controller) = h.verify().unwrap();
    let mut a = Session::accessory(verified.keys);
    let mut c = Session::controller(controller.keys);
    let mut wire = Vec::new();
    c.seal(
        &add_pairing_request(b"GUEST", &[3; 32], Permissions::User),
        &mut wire,
    )
    .unwrap();
    a.feed(&wire);
    let body = a.poll_plaintext().unwrap().unwrap();
    let reply = pairings::handle(&body, &verified.controller, &mut h.store).unwrap();
    let mut wire = Vec::new();
    a.seal(&reply.body, &mut wire).unwrap();
    c.feed(&wire);
    assert_eq!(
        parse_pairings_status(&c.poll_plaintext().unwrap().unwrap()),
        Ok(())
    );
    let listed = parse_list_pairings(
        &pairings::handle(&list_pairings_request(), &verified.controller, &mut h.store)
            .unwrap()
            .body,
    )
    .unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1].id.0, b"GUEST");
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// An accessory with a store holding one admin controller, and that controller's key.
struct Harness {
    rng: ChaCha20Rng,
    identity: AccessoryIdentity,
    controller_key: SigningKey,
    store: MemoryStore,
    verify: PairVerify,
}

impl Harness {
    fn new(seed: u64) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let identity = AccessoryIdentity {
            device_id: DeviceId::parse("E1:91:1A:70:85:AA").unwrap(),
            signing_key: SigningKey::from_bytes(&bytes32(&mut rng)),
        };
        let controller_key = SigningKey::from_bytes(&bytes32(&mut rng));
        let store = store_with(&[(CONTROLLER_ID, &controller_key, Permissions::Admin)]);
        Self {
            rng,
            identity,
            controller_key,
            store,
            verify: PairVerify::new(),
        }
    }

    fn creds(&self) -> ControllerCredentials<'_> {
        ControllerCredentials {
            pairing_id: CONTROLLER_ID,
            signing_key: &self.controller_key,
            accessory_pairing_id: b"E1:91:1A:70:85:AA",
            accessory_ltpk: self.identity.public_key(),
        }
    }

    fn accessory_handle(
        &mut self,
        body: &[u8],
    ) -> Result<hap_proto::pairing::verify::VerifyReply, Error> {
        let mut cx = VerifyContext {
            identity: &self.identity,
            store: &self.store,
            rng: &mut self.rng,
        };
        self.verify.handle(body, &mut cx)
    }

    fn verify(&mut self) -> Result<(Verified, ControllerVerified), Error> {
        let (expect_m2, m1) = ControllerVerify::start(&mut self.rng);
        let m2 = self.accessory_handle(&m1)?;
        let (expect_m4, m3) = expect_m2.handle(&m2.body, &self.creds())?;
        let m4 = self.accessory_handle(&m3)?;
        let controller = expect_m4.handle(&m4.body)?;
        Ok((m4.established.unwrap(), controller))
    }
}

fn ok_reply() -> PairingsReply {
    PairingsReply {
        body: vec![0x06, 0x01, 0x02],
        removed: Vec::new(),
        now_unpaired: false,
    }
}

fn store_with(entries: &[(&[u8], &SigningKey, Permissions)]) -> MemoryStore {
    MemoryStore {
        pairings: entries
            .iter()
            .map(|(id, key, permissions)| Pairing {
                id: PairingId(id.to_vec()),
                public_key: key.verifying_key().to_bytes(),
                permissions: *permissions,
            })
            .collect(),
        failed_attempts: 0,
    }
}

/// Feeds `wire` to `to` in random pieces of 1..=1500 bytes, opening after every piece.
fn deliver_random_chunks(to: &mut Session, wire: &[u8], rng: &mut ChaCha20Rng) -> Vec<u8> {
    let mut got = Vec::new();
    let mut rest = wire;
    while !rest.is_empty() {
        let n = (rng.next_u32() as usize % 1500 + 1).min(rest.len());
        let (piece, tail) = rest.split_at(n);
        to.feed(piece);
        to.open_available(&mut got).unwrap();
        rest = tail;
    }
    assert_eq!(to.poll_plaintext(), Ok(None));
    got
}

/// Randomness that replays fixed bytes (to inject the RFC 7748 scalars as ephemeral keys).
struct Fixed(Vec<u8>);

impl CryptoRandom for Fixed {
    fn fill(&mut self, buf: &mut [u8]) {
        assert!(self.0.len() >= buf.len(), "fixed randomness exhausted");
        let rest = self.0.split_off(buf.len());
        buf.copy_from_slice(&self.0);
        self.0 = rest;
    }
}

/// Parses `name = hex` lines; indented lines continue the previous value; `#` lines are
/// comments.
fn vectors(text: &str) -> HashMap<&str, Vec<u8>> {
    let mut out: HashMap<&str, Vec<u8>> = HashMap::new();
    let mut current: Option<&str> = None;
    for line in text.lines() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let hex =
            if let Some((name, value)) = line.split_once('=').filter(|_| !line.starts_with(' ')) {
                current = Some(name.trim());
                value
            } else {
                line
            };
        let digits: String = hex.chars().filter(|c| !c.is_whitespace()).collect();
        let bytes = (0..digits.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
            .collect::<Vec<_>>();
        out.entry(current.unwrap()).or_default().extend(bytes);
    }
    out
}

fn bytes32(rng: &mut ChaCha20Rng) -> [u8; 32] {
    let mut out = [0u8; 32];
    rng.fill_bytes(&mut out);
    out
}

fn arr<const N: usize>(v: &[u8]) -> [u8; N] {
    v.try_into().unwrap()
}
