//! Entry points for the cargo-fuzz targets in `fuzz/` (feature `fuzzing`). Each checks the
//! invariants of one parser or state machine and panics when one is broken.

mod ops;
mod paired;
mod session;

pub use session::session;

use crate::camera::ListSeparator;
use crate::tlv8::{self, TlvType};

/// TLV8: whatever decodes re-encodes to bytes that decode to the same items.
pub fn tlv8_roundtrip(data: &[u8]) {
    let Ok(items) = tlv8::decode(data) else {
        return;
    };
    let encoded = items.encode();
    let again = tlv8::decode(&encoded);
    assert_eq!(
        again.as_ref(),
        Ok(&items),
        "TLV8 round trip changed the items"
    );
    for entry in items
        .split(TlvType::SEPARATOR)
        .iter()
        .chain(items.split(ListSeparator).iter())
    {
        let _ = entry.encode();
    }
}

/// Camera TLVs: whatever decodes re-encodes to bytes that decode to the same value.
pub fn camera_tlv(data: &[u8]) {
    use crate::camera::{
        SelectedStreamConfig, SetupEndpointsRequest, SetupEndpointsResponse, SupportedAudioConfig,
        SupportedRtpConfig, SupportedVideoConfig,
    };
    macro_rules! round_trip {
        ($ty:ty) => {
            if let Ok(v) = <$ty>::decode(data) {
                let again = <$ty>::decode(&v.encode());
                assert_eq!(
                    again.as_ref(),
                    Ok(&v),
                    concat!(stringify!($ty), " round trip")
                );
            }
        };
    }
    round_trip!(SetupEndpointsRequest);
    round_trip!(SetupEndpointsResponse);
    round_trip!(SupportedVideoConfig);
    round_trip!(SupportedAudioConfig);
    round_trip!(SupportedRtpConfig);
    // Floats (the RTCP interval) may be NaN-free but -0.0 == 0.0: compare re-encodings instead.
    if let Ok(v) = SelectedStreamConfig::decode(data) {
        let once = v.encode();
        let twice = SelectedStreamConfig::decode(&once).map(|v| v.encode());
        assert_eq!(
            twice.as_deref(),
            Ok(&once[..]),
            "SelectedStreamConfig round trip"
        );
    }
}

/// A deterministic generator for fuzzing: the same input always takes the same path.
fn fuzz_rng() -> rand_chacha::ChaCha20Rng {
    use rand_chacha::rand_core::SeedableRng;
    rand_chacha::ChaCha20Rng::seed_from_u64(0x4841_5046_555a)
}

/// Splits fuzz input into messages, each prefixed by a one-byte length.
fn messages(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = data;
    core::iter::from_fn(move || {
        let (&len, tail) = rest.split_first()?;
        let take = usize::from(len).min(tail.len());
        let (msg, tail) = tail.split_at(take);
        rest = tail;
        Some(msg)
    })
}

/// Session framing: arbitrary bytes never panic the opener, and its counter advances exactly
/// once per frame that opened. The first byte picks the mode: raw bytes, or genuine frames
/// (sealed from the input) with one byte flipped at a position the input chooses, fed in pieces.
pub fn session_open(data: &[u8]) {
    use crate::session::{Opener, Sealer};
    let key = [0x42u8; 32];
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut opener = Opener::new(key);
    if mode & 1 == 0 {
        opener.feed(rest);
        let mut opened = 0u64;
        loop {
            let before = opener.counter();
            match opener.poll_plaintext() {
                Ok(Some(pt)) => {
                    assert!(pt.len() <= crate::session::MAX_FRAME_PLAINTEXT);
                    opened += 1;
                    assert_eq!(opener.counter(), before + 1);
                }
                Ok(None) => break,
                Err(_) => {
                    assert_eq!(opener.counter(), before, "counter moved on a failed frame");
                    assert!(opener.is_dead());
                    assert!(
                        opener.poll_plaintext().is_err(),
                        "a dead session opened again"
                    );
                    break;
                }
            }
        }
        assert_eq!(opener.counter(), opened);
        return;
    }
    // Genuine frames: everything before the flipped frame opens, nothing after it does.
    let Some((&flip, payload)) = rest.split_first() else {
        return;
    };
    let mut sealer = Sealer::new(key);
    let mut wire = Vec::new();
    if sealer.seal(payload, &mut wire).is_err() {
        return;
    }
    let flip_at = if wire.is_empty() {
        None
    } else {
        Some(usize::from(flip) * 7 % wire.len())
    };
    if let Some(b) = flip_at.and_then(|at| wire.get_mut(at)) {
        *b ^= 0x01;
    }
    let mut plain = Vec::new();
    let mut failed = false;
    for piece in wire.chunks(usize::from(mode >> 1).max(1)) {
        opener.feed(piece);
        match opener.open_available(&mut plain) {
            Ok(_) => {}
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    if flip_at.is_some() {
        // A flipped length byte may make the frame wait for bytes that never come.
        assert!(
            failed || opener.buffered() > 0,
            "a tampered frame was accepted"
        );
        assert!(plain.len() < payload.len().max(1) || payload.is_empty());
    } else {
        assert_eq!(plain, payload);
    }
}

/// Pair-verify: arbitrary message sequences against the accessory state machine never panic,
/// every reply is a TLV with a State, and no sequence establishes a session (that needs a
/// signature from a paired controller's key).
pub fn pair_verify(data: &[u8]) {
    use crate::pairing::verify::{PairVerify, VerifyContext};
    use crate::pairing::{AccessoryIdentity, MemoryStore, Pairing, PairingId, Permissions};
    let mut rng = fuzz_rng();
    let identity = AccessoryIdentity::generate(&mut rng);
    let store = MemoryStore {
        pairings: vec![Pairing {
            id: PairingId(b"FUZZ-CONTROLLER".to_vec()),
            public_key: ed25519_dalek::SigningKey::from_bytes(&[7; 32])
                .verifying_key()
                .to_bytes(),
            permissions: Permissions::Admin,
        }],
        failed_attempts: 0,
    };
    let mut machine = PairVerify::new();
    for msg in messages(data) {
        let mut cx = VerifyContext {
            identity: &identity,
            store: &store,
            rng: &mut rng,
        };
        if let Ok(reply) = machine.handle(msg, &mut cx) {
            assert!(
                reply.established.is_none(),
                "pair-verify established without a signature"
            );
            let items = tlv8::decode(&reply.body).ok();
            assert!(
                items.is_some_and(|i| i.get_u8(TlvType::STATE).is_some()),
                "reply without State"
            );
        }
    }
}

/// Every request the parser yields from `data` fed in one piece, then from the same bytes split
/// at `split` (and byte by byte when `split` is 0): the results must be the same (retina's
/// split-point invariant).
pub fn http_request(data: &[u8]) {
    use crate::http::{Parsed, RequestParser};
    let Some((&split, data)) = data.split_first() else {
        return;
    };
    fn collect(pieces: &mut dyn Iterator<Item = &[u8]>) -> Vec<Parsed> {
        let mut parser = RequestParser::new();
        let mut out = Vec::new();
        for piece in pieces {
            let mut p = parser.feed(piece);
            loop {
                match p {
                    Parsed::Incomplete => break,
                    Parsed::Invalid(_) => {
                        out.push(p);
                        return out;
                    }
                    Parsed::Request(_) => {
                        out.push(p);
                        p = parser.poll();
                    }
                }
            }
        }
        out
    }
    let whole = collect(&mut core::iter::once(data));
    let at = usize::from(split).min(data.len());
    let (a, b) = data.split_at(at);
    let halves = collect(&mut [a, b].into_iter());
    assert_eq!(whole, halves, "result changed when split at {at}");
    if split == 0 && data.len() <= 4096 {
        let bytes = collect(&mut data.chunks(1));
        assert_eq!(whole, bytes, "result changed when fed byte by byte");
    }
}

/// Raw controller bytes into an accessory connection (plaintext phase, unpaired accessory):
/// never panics, and whatever it transmits is a sequence of well-formed HTTP responses.
pub fn connection(data: &[u8]) {
    use std::time::Instant;

    use crate::controller::client::ClientConnection;
    use crate::db::{AccessoryBuilder, Database, IidAllocator, services};
    use crate::pairing::setup::{ConnectionId, PairSetupGate};
    use crate::pairing::{AccessoryIdentity, MemoryStore};
    use crate::server::{Connection, ServerContext};
    use crate::setup::SetupCode;

    let mut rng = fuzz_rng();
    let identity = AccessoryIdentity::generate(&mut rng);
    let Ok(code) = SetupCode::parse("518-08-582") else {
        return;
    };
    let mut store = MemoryStore::default();
    let mut gate = PairSetupGate::new();
    let mut iids = IidAllocator::default();
    let info = services::AccessoryInfo::new("fuzz", "fuzz", "fuzz", "SN01", "1.0");
    let mut b = AccessoryBuilder::new(1, services::accessory_information(&info), &mut iids);
    b.add_service(services::motion_sensor());
    let mut db = Database::new(vec![b.build()]);
    let mut conn = Connection::new(ConnectionId(1));
    let now = Instant::now();
    let mut responses = ClientConnection::new();
    let mut admission = crate::admission::AdmitAll;
    for msg in messages(data) {
        let mut cx = ServerContext {
            identity: &identity,
            setup_code: &code,
            store: &mut store,
            gate: &mut gate,
            db: &mut db,
            handler: &mut (),
            now,
            rng: &mut rng,
            admission: &mut admission,
        };
        if conn.handle_input(msg, &mut cx).is_err() {
            break;
        }
        while conn.poll_event().is_some() {}
        if let Some(out) = conn.poll_transmit() {
            assert!(responses.feed(&out).is_ok());
            while let Ok(Some(m)) = responses.poll_message() {
                assert!(m.has_content_length, "a response without Content-Length");
            }
        }
        if conn.closing().is_some() {
            break;
        }
    }
    assert!(
        matches!(responses.poll_message(), Ok(None)),
        "a partial response was sent"
    );
}

/// Setup URIs: parsing never panics, and whatever parses re-encodes to the same text.
pub fn setup_uri(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(parsed) = crate::setup::parse_setup_uri(text) {
        let id = std::str::from_utf8(&parsed.setup_id)
            .ok()
            .and_then(|s| crate::setup::SetupId::parse(s).ok());
        let again = crate::setup::encode_setup_uri(parsed.payload, id.as_ref());
        assert_eq!(again, text, "setup URI round trip");
    }
}

/// Pair-setup: arbitrary message sequences against the accessory state machine never panic,
/// every reply carries a State, and no sequence stores a pairing (that needs the SRP proof of
/// the setup code and a signature).
pub fn pair_setup(data: &[u8]) {
    use std::time::{Duration, Instant};

    use crate::pairing::setup::{ConnectionId, PairSetup, PairSetupGate, SetupContext};
    use crate::pairing::{AccessoryIdentity, MemoryStore, PairingStore as _};
    use crate::setup::SetupCode;

    let mut rng = fuzz_rng();
    let identity = AccessoryIdentity::generate(&mut rng);
    let Ok(code) = SetupCode::parse("518-08-582") else {
        return;
    };
    let mut store = MemoryStore::default();
    let mut gate = PairSetupGate::new();
    let mut machine = PairSetup::new();
    let start = Instant::now();
    for (n, msg) in messages(data).enumerate().take(MAX_FUZZ_MESSAGES) {
        let mut cx = SetupContext {
            identity: &identity,
            setup_code: &code,
            store: &mut store,
            gate: &mut gate,
            conn: ConnectionId((n % 2) as u64),
            now: start + Duration::from_secs(n as u64 * 7),
            rng: &mut rng,
        };
        if let Ok(reply) = machine.handle(msg, &mut cx) {
            assert!(
                reply.paired.is_none(),
                "pair-setup stored a pairing without the code"
            );
            let items = tlv8::decode(&reply.body).ok();
            assert!(
                items.is_some_and(|i| i.get_u8(TlvType::STATE).is_some()),
                "reply without State"
            );
        }
    }
    assert!(!store.is_paired());
}

/// Bounds the SRP work per fuzz input (each M1/M3 costs milliseconds).
const MAX_FUZZ_MESSAGES: usize = 8;
