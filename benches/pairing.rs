//! Criterion benches of the pairing hot paths: SRP server work per pair-setup, pair-verify
//! accessory work, frame seal/open of 1 KiB, TLV8 decode of a pair-setup M3.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench that fails should stop loudly

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use ed25519_dalek::SigningKey;
use hap_proto::controller::verify::{ControllerCredentials, ControllerVerify};
use hap_proto::pairing::verify::{PairVerify, VerifyContext};
use hap_proto::pairing::{AccessoryIdentity, MemoryStore, Pairing, PairingId, Permissions};
use hap_proto::session::{Opener, Sealer};
use hap_proto::tlv8::{self, TlvType, Writer};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;

const CONTROLLER_ID: &[u8] = b"3E1D6F0A-0B7C-4F2E-9A55-0123456789AB";

fn pair_verify(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let identity = AccessoryIdentity::generate(&mut rng);
    let controller_key = SigningKey::from_bytes(&[9; 32]);
    let store = MemoryStore {
        pairings: vec![Pairing {
            id: PairingId(CONTROLLER_ID.to_vec()),
            public_key: controller_key.verifying_key().to_bytes(),
            permissions: Permissions::Admin,
        }],
        failed_attempts: 0,
    };
    let device_id = identity.device_id.to_string();
    let creds = ControllerCredentials {
        pairing_id: CONTROLLER_ID,
        signing_key: &controller_key,
        accessory_pairing_id: device_id.as_bytes(),
        accessory_ltpk: identity.public_key(),
    };
    // Only the accessory's two handle() calls are timed; the controller's work is not.
    c.bench_function("pair_verify/accessory_m1_m3", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let (expect_m2, m1) = ControllerVerify::start(&mut rng);
                let mut machine = PairVerify::new();
                let t = Instant::now();
                let m2 = {
                    let mut cx = VerifyContext {
                        identity: &identity,
                        store: &store,
                        rng: &mut rng,
                    };
                    machine.handle(&m1, &mut cx).unwrap().body
                };
                spent += t.elapsed();
                let (_expect_m4, m3) = expect_m2.handle(&m2, &creds).unwrap();
                let t = Instant::now();
                let reply = {
                    let mut cx = VerifyContext {
                        identity: &identity,
                        store: &store,
                        rng: &mut rng,
                    };
                    machine.handle(&m3, &mut cx).unwrap()
                };
                spent += t.elapsed();
                assert!(reply.established.is_some());
            }
            spent
        });
    });
}

/// The accessory's SRP work per pair-setup: verifier, B, then S, K and the proofs at M3.
fn srp_server(c: &mut Criterion) {
    use hap_proto::controller::setup::{ControllerSetup, SrpPadding};
    use hap_proto::srp::{SrpServer, USERNAME};
    const CODE: &str = "518-08-582";
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let salt = [0x5A; 16];
    let secret = [0x3C; 32];
    let server = SrpServer::new(USERNAME, CODE.as_bytes(), salt, secret);
    let mut m2 = Writer::new();
    m2.put_u8(TlvType::STATE, 2)
        .put(TlvType::PUBLIC_KEY, server.public_key())
        .put(TlvType::SALT, &salt);
    let key = SigningKey::from_bytes(&[4; 32]);
    let mut ctrl = ControllerSetup::new(
        CODE,
        SrpPadding::Strip,
        PairingId(CONTROLLER_ID.to_vec()),
        key,
        &mut rng,
    );
    ctrl.start();
    let m3 = ctrl.handle_m2(&m2.into_vec()).unwrap();
    let items = tlv8::decode(&m3).unwrap();
    let a = items.get(TlvType::PUBLIC_KEY).unwrap().to_vec();
    let m1 = items.get(TlvType::PROOF).unwrap().to_vec();
    let mut group = c.benchmark_group("srp");
    group.sample_size(20);
    group.bench_function("server_per_pair_setup", |b| {
        b.iter(|| {
            let server = SrpServer::new(USERNAME, CODE.as_bytes(), salt, secret);
            black_box(server.verify_client(&a, &m1).unwrap());
        });
    });
    group.finish();
}

fn frames(c: &mut Criterion) {
    let key = [0x11; 32];
    let plaintext = vec![0xA5u8; 1024];
    c.bench_function("session/seal_1KiB", |b| {
        let mut sealer = Sealer::new(key);
        let mut out = Vec::with_capacity(2048);
        b.iter(|| {
            out.clear();
            sealer.seal(black_box(&plaintext), &mut out).unwrap();
        });
    });
    // Pre-seal enough frames for the opener to consume in order.
    c.bench_function("session/open_1KiB", |b| {
        b.iter_custom(|iters| {
            let mut sealer = Sealer::new(key);
            let mut wire = Vec::new();
            for _ in 0..iters {
                sealer.seal(&plaintext, &mut wire).unwrap();
            }
            let mut opener = Opener::new(key);
            let frame_len = 2 + 1024 + 16;
            let t = Instant::now();
            for frame in wire.chunks(frame_len) {
                opener.feed(frame);
                black_box(opener.poll_plaintext().unwrap().unwrap());
            }
            t.elapsed()
        });
    });
}

fn tlv_decode_m3(c: &mut Criterion) {
    let mut w = Writer::new();
    w.put_u8(TlvType::STATE, 3)
        .put(TlvType::PUBLIC_KEY, &[0x5A; 384])
        .put(TlvType::PROOF, &[0x33; 64]);
    let m3 = w.into_vec();
    c.bench_function("tlv8/decode_m3", |b| {
        b.iter(|| {
            let items = tlv8::decode(black_box(&m3)).unwrap();
            black_box(items.get(TlvType::PUBLIC_KEY).map(<[u8]>::len));
        });
    });
}

criterion_group!(benches, srp_server, pair_verify, frames, tlv_decode_m3);
criterion_main!(benches);
