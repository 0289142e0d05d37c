//! The accessory the `session` fuzz target talks to: its database, a write handler the input
//! steers, and the pairing made once per process by the project's own controller (pair-setup's
//! SRP costs milliseconds, far too much per input).
// A fuzz harness: a broken expectation is a finding, reported by panicking.
#![allow(clippy::expect_used)]

use std::sync::OnceLock;
use std::time::Instant;

use ed25519_dalek::SigningKey;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;

use crate::admission::AdmitAll;
use crate::controller::client::ClientConnection;
use crate::controller::setup::{ControllerSetup, PairedAccessory, SrpPadding};
use crate::db::services::{self, AccessoryInfo, CameraConfig};
use crate::db::{
    AccessoryBuilder, Database, HapStatus, IidAllocator, WriteHandler, WriteRequest, WriteResult,
};
use crate::pairing::setup::{ConnectionId, PairSetupGate};
use crate::pairing::{AccessoryIdentity, MemoryStore, PairingId};
use crate::server::{Connection, ServerContext};
use crate::setup::SetupCode;

/// The setup code of the fuzzed accessory.
const CODE: &str = "518-08-582";
/// The pairing id of the fuzzing controller.
pub(super) const CONTROLLER_ID: &[u8] = b"FUZZ-CONTROLLER-0";

/// What pair-setup left: the accessory's identity and store, the controller's key.
pub(super) struct Paired {
    pub(super) identity: AccessoryIdentity,
    pub(super) code: SetupCode,
    pub(super) store: MemoryStore,
    pub(super) key: SigningKey,
    pub(super) accessory: PairedAccessory,
    pub(super) epoch: Instant,
}

pub(super) static PAIRED: OnceLock<Paired> = OnceLock::new();

/// A bridge (aid 1) with a motion and an occupancy sensor, and a camera (aid 2) with a doorbell
/// and a microphone: writable, evented and TLV characteristics.
pub(super) fn database() -> Database {
    let mut iids = IidAllocator::default();
    let info = AccessoryInfo::new("fuzz", "Bridge", "Fuzz Bridge", "SN01", "1.0");
    let mut b = AccessoryBuilder::new(1, services::accessory_information(&info), &mut iids);
    b.add_service(services::protocol_information());
    b.add_service(services::motion_sensor());
    b.add_service(services::occupancy_sensor());
    let bridge = b.build();
    let mut iids = IidAllocator::default();
    let info = AccessoryInfo::new("fuzz", "Camera", "Fuzz Camera", "SN02", "1.0");
    let mut c = AccessoryBuilder::new(2, services::accessory_information(&info), &mut iids);
    c.add_service(services::camera_rtp_stream_management(&CameraConfig {
        supported_video: vec![1, 1, 0],
        supported_audio: vec![1, 1, 0],
        supported_rtp: vec![2, 1, 0],
        streaming_status: vec![1, 1, 0],
    }));
    c.add_service(services::doorbell());
    c.add_service(services::microphone(true));
    Database::new(vec![bridge, c.build()])
}

/// Pair-setup M1..M6 between the real accessory and the controller, once per process.
pub(super) fn pair_once() -> Paired {
    let mut rng = ChaCha20Rng::seed_from_u64(0x5345_5353);
    let identity = AccessoryIdentity::generate(&mut rng);
    let code = SetupCode::parse(CODE).expect("the fuzz setup code parses");
    let key = SigningKey::from_bytes(&[0x5a; 32]);
    let mut store = MemoryStore::default();
    let mut gate = PairSetupGate::new();
    let mut db = database();
    let epoch = Instant::now();
    let mut conn = Connection::new(ConnectionId(0));
    let mut http = ClientConnection::new();
    let mut setup = ControllerSetup::new(
        CODE,
        SrpPadding::Strip,
        PairingId(CONTROLLER_ID.to_vec()),
        key.clone(),
        &mut rng,
    );
    let mut call = |body: &[u8], rng: &mut ChaCha20Rng| {
        let mut cx = ServerContext {
            identity: &identity,
            setup_code: &code,
            store: &mut store,
            gate: &mut gate,
            db: &mut db,
            handler: &mut (),
            now: epoch,
            rng,
            admission: &mut AdmitAll,
        };
        plain_call(&mut conn, &mut http, "/pair-setup", body, &mut cx)
    };
    let m2 = call(&setup.start(), &mut rng);
    let m3 = setup.handle_m2(&m2).expect("pair-setup M2");
    let m4 = call(&m3, &mut rng);
    let m5 = setup.handle_m4(&m4).expect("pair-setup M4");
    let m6 = call(&m5, &mut rng);
    let accessory = setup.handle_m6(&m6).expect("pair-setup M6");
    Paired {
        identity,
        code,
        store,
        key,
        accessory,
        epoch,
    }
}

/// One plaintext pairing request and its response body.
pub(super) fn plain_call(
    conn: &mut Connection,
    http: &mut ClientConnection,
    path: &str,
    body: &[u8],
    cx: &mut ServerContext<'_>,
) -> Vec<u8> {
    let mut wire = Vec::new();
    http.request(
        "POST",
        path,
        Some("application/pairing+tlv8"),
        body,
        &mut wire,
    )
    .expect("a plaintext request encodes");
    conn.handle_input(&wire, cx)
        .expect("a plaintext pairing request");
    while conn.poll_event().is_some() {}
    let out = conn.poll_transmit().expect("a pairing response");
    http.feed(&out).expect("plaintext feeds");
    let msg = http
        .poll_message()
        .expect("HTTP")
        .expect("a whole response");
    assert_eq!(msg.status, 200, "{path} answered {}", msg.status);
    msg.body
}

/// A write handler whose answers the input chooses: store, store as is, answer the writer
/// only, or fail.
pub(super) struct FuzzHandler {
    pub(super) mode: u8,
    pub(super) writes: u8,
}

impl WriteHandler for FuzzHandler {
    fn write(&mut self, request: &WriteRequest<'_>) -> WriteResult {
        self.writes = self.writes.wrapping_add(1);
        match (self.mode >> (self.writes % 4 * 2)) & 3 {
            0 => WriteResult::Store,
            1 => WriteResult::StoreValue(request.value.clone()),
            2 => WriteResult::Answer(request.value.clone()),
            _ => WriteResult::Fail(HapStatus::RESOURCE_BUSY),
        }
    }
}

/// The accessory's state for one run.
pub(super) struct Server {
    pub(super) store: MemoryStore,
    pub(super) gate: PairSetupGate,
    pub(super) db: Database,
    pub(super) rng: ChaCha20Rng,
    pub(super) now: Instant,
    pub(super) handler: FuzzHandler,
    pub(super) admission: AdmitAll,
}

impl Server {
    pub(super) fn context<'a>(&'a mut self, paired: &'a Paired) -> ServerContext<'a> {
        ServerContext {
            identity: &paired.identity,
            setup_code: &paired.code,
            store: &mut self.store,
            gate: &mut self.gate,
            db: &mut self.db,
            handler: &mut self.handler,
            now: self.now,
            rng: &mut self.rng,
            admission: &mut self.admission,
        }
    }
}
