use std::time::Instant;

use hex_literal::hex;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::*;
use crate::pairing::MemoryStore;
use crate::srp::vectors::{get, hex as unhex, parse};

const KEYS: &str = include_str!("../../../testdata/srp/pair_setup_keys.txt");

struct Fixture {
    identity: AccessoryIdentity,
    code: SetupCode,
    store: MemoryStore,
    gate: PairSetupGate,
    rng: ChaCha20Rng,
    now: Instant,
}

impl Fixture {
    fn new(seed: u64) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        Self {
            identity: AccessoryIdentity::generate(&mut rng),
            code: SetupCode::parse("031-45-154").unwrap(),
            store: MemoryStore::default(),
            gate: PairSetupGate::new(),
            rng,
            now: Instant::now(),
        }
    }

    fn send(
        &mut self,
        machine: &mut PairSetup,
        conn: u64,
        body: &[u8],
    ) -> Result<SetupReply, Error> {
        let mut cx = SetupContext {
            identity: &self.identity,
            setup_code: &self.code,
            store: &mut self.store,
            gate: &mut self.gate,
            conn: ConnectionId(conn),
            now: self.now,
            rng: &mut self.rng,
        };
        machine.handle(body, &mut cx)
    }
}

/// Pair-setup M1 as iOS sends it (hap-reference §10.5, ADK Tests/HAPTLVTest.c).
const M1: [u8; 6] = hex!("00 01 00 06 01 01");

#[test]
fn setup_keys_match_vector() {
    // hap-reference §10.2.
    let v = parse(KEYS);
    let keys = SetupKeys::derive(&unhex(get(&v, "K")));
    assert_eq!(keys.session_key.to_vec(), unhex(get(&v, "SessionKey")));
    assert_eq!(keys.controller_x.to_vec(), unhex(get(&v, "iOSDeviceX")));
    assert_eq!(keys.accessory_x.to_vec(), unhex(get(&v, "AccessoryX")));
    assert_eq!(
        label_nonce(b"PS-Msg05").to_vec(),
        unhex(get(&v, "NoncePSMsg05"))
    );
    assert_eq!(format!("{keys:?}"), "SetupKeys { .. }");
}

#[test]
fn m1_is_answered_with_m2_layout() {
    let mut f = Fixture::new(1);
    let mut machine = PairSetup::new();
    let reply = f.send(&mut machine, 1, &M1).unwrap();
    assert_eq!(reply.error, None);
    assert_eq!(reply.paired, None);
    let body = &reply.body;
    // hap-reference §10.5: `06 01 02  03 FF <255 B>  03 81 <129 B>  02 10 <16-byte salt>` when B
    // is 384 bytes (this seed's B has no leading zero byte).
    assert_eq!(body.len(), 3 + 2 + 255 + 2 + 129 + 2 + 16);
    assert_eq!(&body[..5], hex!("06 01 02 03 FF"));
    assert_eq!(&body[260..262], hex!("03 81"));
    assert_eq!(&body[391..393], hex!("02 10"));
    assert!(!machine.is_idle());
    assert_eq!(f.gate.owner(), Some(ConnectionId(1)));
    // Debug shows the state, never the verifier, b or keys.
    assert_eq!(
        format!("{machine:?}"),
        "PairSetup { state: ExpectM3(ExpectM3 { srp: SrpServer { public_len: 384, .. } }) }"
    );
}

#[test]
fn already_paired_is_unavailable() {
    let mut f = Fixture::new(2);
    f.store.pairings.push(Pairing {
        id: PairingId(b"someone".to_vec()),
        public_key: [1; 32],
        permissions: Permissions::Admin,
    });
    let mut machine = PairSetup::new();
    let reply = f.send(&mut machine, 1, &M1).unwrap();
    // hap-reference §10.5 "Error: already paired".
    assert_eq!(reply.body, hex!("06 01 02 07 01 06"));
    assert_eq!(reply.error, Some(Error::Pairing(TlvError::UNAVAILABLE)));
    assert!(machine.is_idle());
    assert_eq!(f.gate.owner(), None);
}

#[test]
fn max_tries_at_m1() {
    let mut f = Fixture::new(3);
    f.store.failed_attempts = MAX_FAILED_ATTEMPTS;
    let reply = f.send(&mut PairSetup::new(), 1, &M1).unwrap();
    assert_eq!(reply.body, hex!("06 01 02 07 01 05"));
    f.store.failed_attempts = MAX_FAILED_ATTEMPTS - 1;
    let reply = f.send(&mut PairSetup::new(), 1, &M1).unwrap();
    assert_eq!(reply.error, None);
}

#[test]
fn wrong_proof_is_authentication_and_counts() {
    let mut f = Fixture::new(4);
    let mut machine = PairSetup::new();
    f.send(&mut machine, 1, &M1).unwrap();
    let mut m3 = Writer::new();
    m3.put_u8(TlvType::STATE, 3)
        .put(TlvType::PUBLIC_KEY, &[2])
        .put(TlvType::PROOF, &[0; 64]);
    let reply = f.send(&mut machine, 1, &m3.into_vec()).unwrap();
    // hap-reference §10.5 "Error: wrong setup code".
    assert_eq!(reply.body, hex!("06 01 04 07 01 02"));
    assert_eq!(reply.error, Some(Error::Authentication));
    assert_eq!(f.store.failed_attempts, 1);
    assert!(machine.is_idle());
    assert_eq!(f.gate.owner(), None);
}

#[test]
fn public_key_zero_mod_n_is_authentication_without_count() {
    let mut f = Fixture::new(5);
    let mut machine = PairSetup::new();
    f.send(&mut machine, 1, &M1).unwrap();
    let mut m3 = Writer::new();
    m3.put_u8(TlvType::STATE, 3)
        .put(TlvType::PUBLIC_KEY, srp::modulus_bytes())
        .put(TlvType::PROOF, &[0; 64]);
    let reply = f.send(&mut machine, 1, &m3.into_vec()).unwrap();
    assert_eq!(reply.body, hex!("06 01 04 07 01 02"));
    assert_eq!(
        reply.error,
        Some(Error::PeerMisbehaved(PeerMisbehaved::InvalidSrpPublicKey))
    );
    assert_eq!(f.store.failed_attempts, 0);
}

#[test]
fn missing_proof_is_unknown() {
    let mut f = Fixture::new(6);
    let mut machine = PairSetup::new();
    f.send(&mut machine, 1, &M1).unwrap();
    let reply = f.send(&mut machine, 1, &hex!("06 01 03 03 01 02")).unwrap();
    assert_eq!(reply.body, hex!("06 01 04 07 01 01"));
    assert_eq!(
        reply.error,
        Some(Error::PeerMisbehaved(PeerMisbehaved::MissingItem { ty: 4 }))
    );
}

#[test]
fn unexpected_state_is_unknown_and_resets() {
    let mut f = Fixture::new(7);
    let mut machine = PairSetup::new();
    let reply = f.send(&mut machine, 1, &hex!("06 01 05 05 00")).unwrap();
    assert_eq!(reply.body, hex!("06 01 06 07 01 01"));
    assert_eq!(
        reply.error,
        Some(Error::PeerMisbehaved(PeerMisbehaved::UnexpectedState {
            received: 5
        }))
    );
    // M3 after M1 restarted twice is still fine; M5 while expecting M3 resets.
    f.send(&mut machine, 1, &M1).unwrap();
    f.send(&mut machine, 1, &M1).unwrap();
    assert_eq!(f.gate.owner(), Some(ConnectionId(1)));
    let reply = f.send(&mut machine, 1, &hex!("06 01 05")).unwrap();
    assert_eq!(reply.body, hex!("06 01 06 07 01 01"));
    assert!(machine.is_idle());
    assert_eq!(f.gate.owner(), None);
}

#[test]
fn unsupported_methods_are_unknown() {
    let mut f = Fixture::new(8);
    // Method 1 = PairSetupWithAuth (MFi).
    let reply = f
        .send(&mut PairSetup::new(), 1, &hex!("00 01 01 06 01 01"))
        .unwrap();
    assert_eq!(reply.body, hex!("06 01 02 07 01 01"));
    assert_eq!(reply.error, Some(Error::Pairing(TlvError::UNKNOWN)));
    let reply = f
        .send(&mut PairSetup::new(), 1, &hex!("00 01 07 06 01 01"))
        .unwrap();
    assert_eq!(
        reply.error,
        Some(Error::PeerMisbehaved(PeerMisbehaved::UnsupportedMethod {
            method: 7
        }))
    );
    let reply = f.send(&mut PairSetup::new(), 1, &hex!("06 01 01")).unwrap();
    assert_eq!(
        reply.error,
        Some(Error::PeerMisbehaved(PeerMisbehaved::MissingItem { ty: 0 }))
    );
    assert_eq!(f.gate.owner(), None);
}

#[test]
fn flags_are_ignored() {
    // Transient + split (hap-reference §10.5): answered with a normal M2.
    let mut f = Fixture::new(9);
    let reply = f
        .send(
            &mut PairSetup::new(),
            1,
            &hex!("00 01 00 06 01 01 13 04 10 00 00 01"),
        )
        .unwrap();
    assert_eq!(reply.error, None);
    assert_eq!(&reply.body[..3], hex!("06 01 02"));
}

#[test]
fn malformed_bodies_are_decode_errors() {
    let mut f = Fixture::new(10);
    let mut machine = PairSetup::new();
    f.send(&mut machine, 1, &M1).unwrap();
    for body in [
        &hex!("06 02 01")[..],
        &hex!("06")[..],
        &hex!("00 01 00")[..],
        &[][..],
        &hex!("06 00")[..],
    ] {
        assert!(
            matches!(f.send(&mut machine, 1, body), Err(Error::Decode(_))),
            "{body:02x?}"
        );
    }
    // A duplicated State item is malformed too.
    assert!(matches!(
        f.send(&mut machine, 1, &hex!("06 01 03 FF 00 06 01 03")),
        Err(Error::Decode(_))
    ));
    // The machine did not move: still expecting M3, still owning the gate.
    assert!(!machine.is_idle());
    assert_eq!(f.gate.owner(), Some(ConnectionId(1)));
}

#[test]
fn gate_is_released_on_close_only_by_its_owner() {
    let mut f = Fixture::new(11);
    let mut machine = PairSetup::new();
    f.send(&mut machine, 1, &M1).unwrap();
    f.gate.connection_closed(ConnectionId(2));
    assert_eq!(f.gate.owner(), Some(ConnectionId(1)));
    f.gate.connection_closed(ConnectionId(1));
    assert_eq!(f.gate.owner(), None);
}
