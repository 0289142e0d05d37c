//! The accessory's `server::Connection` driven in memory by the controller side: pair-setup and
//! pair-verify over HTTP, then encrypted GET /accessories, reads, writes, events, /pairings,
//! with a seeded RNG and simulated time (quinn's `Pair` idea, without sockets).
#![cfg(feature = "controller")]
// Test code: a panic is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use hap_proto::controller::client::{ClientConnection, Message};
use hap_proto::controller::setup::{ControllerSetup, PairedAccessory, SrpPadding};
use hap_proto::controller::verify::{
    ControllerCredentials, ControllerVerify, ExpectM4, list_pairings_request, parse_list_pairings,
    remove_pairing_request,
};
use hap_proto::db::services::{self, AccessoryInfo};
use hap_proto::db::{AccessoryBuilder, CharId, Database, IidAllocator, Value};
use hap_proto::pairing::setup::{ConnectionId, PairSetupGate};
use hap_proto::pairing::{AccessoryIdentity, MemoryStore, PairingId, PairingStore};
use hap_proto::server::{CloseReason, Connection, ConnectionEvent, ServerContext};
use hap_proto::setup::SetupCode;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const CODE: &str = "518-08-582";
const TLV: Option<&str> = Some("application/pairing+tlv8");
const CONTROLLER_ID: &[u8] = b"6A2B7B1C-0D5E-4F60-8172-93A4B5C6D7E8";

/// The accessory server: everything the connections share.
struct Server {
    identity: AccessoryIdentity,
    code: SetupCode,
    store: MemoryStore,
    gate: PairSetupGate,
    db: Database,
    rng: ChaCha20Rng,
    now: Instant,
    motion: CharId,
}

impl Server {
    fn new(seed: u64) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let identity = AccessoryIdentity::generate(&mut rng);
        let mut iids = IidAllocator::default();
        let info = AccessoryInfo::new("hap-bridge", "Bridge", "Test Bridge", "SN0001", "0.1.0");
        let mut b = AccessoryBuilder::new(1, services::accessory_information(&info), &mut iids);
        b.add_service(services::protocol_information());
        b.add_service(services::motion_sensor());
        let db = Database::new(vec![b.build()]);
        let motion = db
            .find(
                1,
                &hap_proto::db::HapType::Apple(0x85),
                &hap_proto::db::HapType::Apple(0x22),
            )
            .unwrap();
        Self {
            identity,
            code: SetupCode::parse(CODE).unwrap(),
            store: MemoryStore::default(),
            gate: PairSetupGate::new(),
            db,
            rng,
            now: Instant::now(),
            motion,
        }
    }

    /// Feeds `bytes` to `conn` and returns what it transmits and its events.
    fn input(&mut self, conn: &mut Connection, bytes: &[u8]) -> (Vec<u8>, Vec<ConnectionEvent>) {
        let mut cx = ServerContext {
            identity: &self.identity,
            setup_code: &self.code,
            store: &mut self.store,
            gate: &mut self.gate,
            db: &mut self.db,
            handler: &mut (),
            now: self.now,
            rng: &mut self.rng,
        };
        conn.handle_input(bytes, &mut cx).unwrap();
        let out = conn.poll_transmit().unwrap_or_default();
        let events = std::iter::from_fn(|| conn.poll_event()).collect();
        (out, events)
    }
}

/// A controller with its long-term key and one connection.
struct Controller {
    key: SigningKey,
    http: ClientConnection,
    rng: ChaCha20Rng,
}

impl Controller {
    fn new(seed: u64) -> Self {
        Self {
            key: SigningKey::from_bytes(&[seed as u8; 32]),
            http: ClientConnection::new(),
            rng: ChaCha20Rng::seed_from_u64(seed + 1000),
        }
    }

    /// Sends one request through `conn` and returns the first message back (and the events).
    fn call(
        &mut self,
        server: &mut Server,
        conn: &mut Connection,
        method: &str,
        target: &str,
        ct: Option<&str>,
        body: &[u8],
    ) -> (Message, Vec<ConnectionEvent>) {
        let mut wire = Vec::new();
        self.http
            .request(method, target, ct, body, &mut wire)
            .unwrap();
        let (out, events) = server.input(conn, &wire);
        self.http.feed(&out).unwrap();
        let msg = self.http.poll_message().unwrap().expect("a response");
        (msg, events)
    }

    fn pair(&mut self, server: &mut Server, conn: &mut Connection) -> PairedAccessory {
        let mut setup = ControllerSetup::new(
            CODE,
            SrpPadding::Strip,
            PairingId(CONTROLLER_ID.to_vec()),
            self.key.clone(),
            &mut self.rng,
        );
        let m1 = setup.start();
        let (m2, _) = self.call(server, conn, "POST", "/pair-setup", TLV, &m1);
        let m3 = setup.handle_m2(&m2.body).unwrap();
        let (m4, _) = self.call(server, conn, "POST", "/pair-setup", TLV, &m3);
        let m5 = setup.handle_m4(&m4.body).unwrap();
        let (m6, events) = self.call(server, conn, "POST", "/pair-setup", TLV, &m5);
        assert!(matches!(
            events.as_slice(),
            [ConnectionEvent::Paired { .. }]
        ));
        setup.handle_m6(&m6.body).unwrap()
    }

    /// Pair-verify M1 and M2: returns M3 and what checks M4.
    fn verify_to_m3(
        &mut self,
        server: &mut Server,
        conn: &mut Connection,
        acc: &PairedAccessory,
    ) -> (ExpectM4, Vec<u8>) {
        let (expect_m2, m1) = ControllerVerify::start(&mut self.rng);
        let (m2, _) = self.call(server, conn, "POST", "/pair-verify", TLV, &m1);
        let device_id = acc.device_id.to_string();
        let creds = ControllerCredentials {
            pairing_id: CONTROLLER_ID,
            signing_key: &self.key,
            accessory_pairing_id: device_id.as_bytes(),
            accessory_ltpk: acc.public_key,
        };
        expect_m2.handle(&m2.body, &creds).unwrap()
    }

    fn verify(&mut self, server: &mut Server, conn: &mut Connection, acc: &PairedAccessory) {
        let (expect_m4, m3) = self.verify_to_m3(server, conn, acc);
        let (m4, events) = self.call(server, conn, "POST", "/pair-verify", TLV, &m3);
        assert!(matches!(
            events.as_slice(),
            [ConnectionEvent::Verified { .. }]
        ));
        let verified = expect_m4.handle(&m4.body).unwrap();
        self.http.start_session(verified.keys);
    }
}

/// A server paired with controller `seed` over connection 1, and a fresh connection 2 (not
/// verified yet) with the controller's HTTP state reset for it.
fn paired_then_new_connection(seed: u64) -> (Server, Controller, Connection, PairedAccessory) {
    let mut server = Server::new(seed);
    let mut c = Controller::new(seed);
    let mut setup_conn = Connection::new(ConnectionId(1));
    let acc = c.pair(&mut server, &mut setup_conn);
    c.http = ClientConnection::new();
    (server, c, Connection::new(ConnectionId(2)), acc)
}

fn json(msg: &Message) -> serde_json::Value {
    serde_json::from_slice(&msg.body).unwrap()
}

#[test]
fn plaintext_routes_before_pairing() {
    let mut server = Server::new(1);
    let mut conn = Connection::new(ConnectionId(1));
    let mut c = Controller::new(1);
    let (msg, _) = c.call(&mut server, &mut conn, "GET", "/accessories", None, b"");
    assert_eq!(msg.status, 470);
    assert_eq!(json(&msg)["status"], -70401);
    let (msg, events) = c.call(&mut server, &mut conn, "POST", "/identify", None, b"");
    assert_eq!(msg.status, 204);
    assert!(msg.has_content_length);
    assert!(matches!(events.as_slice(), [ConnectionEvent::Identify]));
    let (msg, _) = c.call(&mut server, &mut conn, "GET", "/nowhere", None, b"");
    assert_eq!(msg.status, 404);
    let (msg, _) = c.call(&mut server, &mut conn, "GET", "/pair-setup", None, b"");
    assert_eq!(msg.status, 405);
    let (msg, _) = c.call(&mut server, &mut conn, "POST", "/resource", None, b"{}");
    assert_eq!(msg.status, 470, "snapshots need a verified session too");
}

#[test]
fn pair_verify_then_encrypted_database_and_events() {
    let mut server = Server::new(2);
    let mut c = Controller::new(2);
    let mut setup_conn = Connection::new(ConnectionId(1));
    let acc = c.pair(&mut server, &mut setup_conn);
    assert_eq!(acc.public_key, server.identity.public_key());
    assert!(server.store.is_paired());

    // After pairing, plaintext requests get 470 and /identify 400.
    let mut plain = Connection::new(ConnectionId(2));
    let mut p = Controller::new(3);
    let (msg, _) = p.call(
        &mut server,
        &mut plain,
        "GET",
        "/characteristics?id=1.2",
        None,
        b"",
    );
    assert_eq!(msg.status, 470);
    let (msg, _) = p.call(&mut server, &mut plain, "POST", "/identify", None, b"");
    assert_eq!(msg.status, 400);

    let mut conn = Connection::new(ConnectionId(3));
    let mut c2 = Controller {
        http: ClientConnection::new(),
        ..Controller::new(2)
    };
    c2.verify(&mut server, &mut conn, &acc);
    assert!(conn.is_encrypted());

    let (msg, _) = c2.call(&mut server, &mut conn, "GET", "/accessories", None, b"");
    assert_eq!(msg.status, 200);
    let db = json(&msg);
    assert_eq!(db["accessories"][0]["aid"], 1);
    assert_eq!(db["accessories"][0]["services"][0]["iid"], 1);

    // Subscribe to motion, then a change from the bridge side arrives as an EVENT at once.
    let motion = server.motion;
    let body = format!(
        r#"{{"characteristics":[{{"aid":1,"iid":{},"ev":true}}]}}"#,
        motion.iid
    );
    let (msg, _) = c2.call(
        &mut server,
        &mut conn,
        "PUT",
        "/characteristics",
        Some("application/hap+json"),
        body.as_bytes(),
    );
    assert_eq!(msg.status, 204);
    let change = server
        .db
        .set_value(motion, Value::Bool(true))
        .unwrap()
        .unwrap();
    conn.notify(&change, server.now);
    c2.http.feed(&conn.poll_transmit().unwrap()).unwrap();
    let event = c2.http.poll_message().unwrap().unwrap();
    assert!(event.is_event);
    assert_eq!(json(&event)["characteristics"][0]["value"], true);

    // A second change within the second is held, then sent with the latest value.
    let change = server
        .db
        .set_value(motion, Value::Bool(false))
        .unwrap()
        .unwrap();
    server.now += Duration::from_millis(100);
    conn.notify(&change, server.now);
    assert!(conn.poll_transmit().is_none());
    let due = conn.poll_timeout().unwrap();
    assert!(due <= server.now + Duration::from_secs(1));
    conn.handle_timeout(due);
    c2.http.feed(&conn.poll_transmit().unwrap()).unwrap();
    let event = c2.http.poll_message().unwrap().unwrap();
    assert_eq!(json(&event)["characteristics"][0]["value"], false);

    // Reads over the session.
    let target = format!("/characteristics?id=1.{}&ev=1", motion.iid);
    let (msg, _) = c2.call(&mut server, &mut conn, "GET", &target, None, b"");
    assert_eq!(msg.status, 200);
    assert_eq!(json(&msg)["characteristics"][0]["ev"], true);

    // List pairings, then remove ourselves: the reply arrives and the connection closes.
    let (msg, _) = c2.call(
        &mut server,
        &mut conn,
        "POST",
        "/pairings",
        TLV,
        &list_pairings_request(),
    );
    let list = parse_list_pairings(&msg.body).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].id.0, CONTROLLER_ID);
    let (msg, events) = c2.call(
        &mut server,
        &mut conn,
        "POST",
        "/pairings",
        TLV,
        &remove_pairing_request(CONTROLLER_ID),
    );
    assert_eq!(msg.status, 200);
    assert!(matches!(
        events.as_slice(),
        [ConnectionEvent::PairingsRemoved {
            now_unpaired: true,
            ..
        }]
    ));
    assert_eq!(conn.closing(), Some(&CloseReason::PairingRemoved));
    assert!(!server.store.is_paired());
}

#[test]
fn tampered_frame_closes_without_response() {
    let (mut server, mut c, mut conn, acc) = paired_then_new_connection(4);
    c.verify(&mut server, &mut conn, &acc);
    let mut wire = Vec::new();
    c.http
        .request("GET", "/accessories", None, b"", &mut wire)
        .unwrap();
    wire[5] ^= 0x80;
    let mut cx = ServerContext {
        identity: &server.identity,
        setup_code: &server.code,
        store: &mut server.store,
        gate: &mut server.gate,
        db: &mut server.db,
        handler: &mut (),
        now: server.now,
        rng: &mut server.rng,
    };
    assert!(conn.handle_input(&wire, &mut cx).is_err());
    assert!(conn.poll_transmit().is_none());
    assert!(matches!(conn.closing(), Some(CloseReason::Protocol(_))));
}

#[test]
fn requests_split_across_frames_and_byte_by_byte() {
    let (mut server, mut c, mut conn, acc) = paired_then_new_connection(5);
    c.verify(&mut server, &mut conn, &acc);
    // A body larger than one 1024-byte frame, fed one byte at a time.
    let padding = "x".repeat(1500);
    let body = format!(
        r#"{{"characteristics":[{{"aid":1,"iid":{},"ev":true}}],"pad":"{padding}"}}"#,
        server.motion.iid
    );
    let mut wire = Vec::new();
    let ct = Some("application/hap+json");
    c.http
        .request("PUT", "/characteristics", ct, body.as_bytes(), &mut wire)
        .unwrap();
    assert!(wire.len() > 1024 + 18, "the request spans two frames");
    let mut out = Vec::new();
    for b in &wire {
        let (o, _) = server.input(&mut conn, std::slice::from_ref(b));
        out.extend_from_slice(&o);
    }
    c.http.feed(&out).unwrap();
    let msg = c.http.poll_message().unwrap().unwrap();
    assert_eq!(msg.status, 204);
    // The subscription took effect: a change now reaches this connection.
    let change = server
        .db
        .set_value(server.motion, Value::Bool(true))
        .unwrap()
        .unwrap();
    conn.notify(&change, server.now);
    c.http.feed(&conn.poll_transmit().unwrap()).unwrap();
    assert!(c.http.poll_message().unwrap().unwrap().is_event);
}

#[test]
fn snapshot_request_waits_for_the_caller() {
    let (mut server, mut c, mut conn, acc) = paired_then_new_connection(6);
    c.verify(&mut server, &mut conn, &acc);
    let mut wire = Vec::new();
    let body = br#"{"resource-type":"image","image-width":640,"image-height":360,"aid":1}"#;
    c.http
        .request(
            "POST",
            "/resource",
            Some("application/hap+json"),
            body,
            &mut wire,
        )
        .unwrap();
    // A second request is pipelined behind it and must wait.
    c.http
        .request("GET", "/accessories", None, b"", &mut wire)
        .unwrap();
    let (out, events) = server.input(&mut conn, &wire);
    assert!(out.is_empty());
    let [ConnectionEvent::Snapshot(req)] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!((req.aid, req.width, req.height), (Some(1), 640, 360));
    let mut cx = ServerContext {
        identity: &server.identity,
        setup_code: &server.code,
        store: &mut server.store,
        gate: &mut server.gate,
        db: &mut server.db,
        handler: &mut (),
        now: server.now,
        rng: &mut server.rng,
    };
    conn.respond_resource(Ok(vec![0xFF, 0xD8, 0xFF, 0xD9]), &mut cx);
    c.http.feed(&conn.poll_transmit().unwrap()).unwrap();
    let jpeg = c.http.poll_message().unwrap().unwrap();
    assert_eq!(jpeg.content_type.as_deref(), Some("image/jpeg"));
    assert_eq!(jpeg.body, [0xFF, 0xD8, 0xFF, 0xD9]);
    let next = c.http.poll_message().unwrap().unwrap();
    assert_eq!(next.status, 200);
}

/// Pair-verify up to M3 on a fresh connection: returns M3's HTTP bytes and the controller's
/// session keys (its M4 check only reads the state byte, so a bare M4 TLV yields them).
fn verify_until_m3(
    server: &mut Server,
    c: &mut Controller,
    conn: &mut Connection,
    acc: &PairedAccessory,
) -> (Vec<u8>, hap_proto::controller::verify::ControllerVerified) {
    let (expect_m4, m3) = c.verify_to_m3(server, conn, acc);
    let mut wire = Vec::new();
    c.http
        .request("POST", "/pair-verify", TLV, &m3, &mut wire)
        .unwrap();
    // kTLVType_State (6) = M4 (4).
    let verified = expect_m4.handle(&[0x06, 0x01, 0x04]).unwrap();
    (wire, verified)
}

#[test]
fn plaintext_after_verify_m3_is_never_a_request() {
    let (mut server, mut c, mut conn, acc) = paired_then_new_connection(7);
    let (mut wire, _) = verify_until_m3(&mut server, &mut c, &mut conn, &acc);
    // Someone on the path appends a plaintext AddPairing (admin) to M3.
    let intruder = SigningKey::from_bytes(&[0x42; 32]);
    let body = hap_proto::controller::verify::add_pairing_request(
        b"intruder",
        intruder.verifying_key().as_bytes(),
        hap_proto::pairing::Permissions::Admin,
    );
    c.http
        .request("POST", "/pairings", TLV, &body, &mut wire)
        .unwrap();
    let (out, _) = server.input(&mut conn, &wire);
    assert!(matches!(conn.closing(), Some(CloseReason::Protocol(_))));
    assert!(out.is_empty(), "nothing is answered on a broken session");
    let ids: Vec<_> = server.store.pairings().into_iter().map(|p| p.id).collect();
    assert_eq!(ids, vec![PairingId(CONTROLLER_ID.to_vec())]);
}

#[test]
fn encrypted_request_in_the_same_read_as_verify_m3_is_answered() {
    let (mut server, mut c, mut conn, acc) = paired_then_new_connection(8);
    let (mut wire, verified) = verify_until_m3(&mut server, &mut c, &mut conn, &acc);
    let mut session = ClientConnection::new();
    session.start_session(verified.keys);
    session
        .request("GET", "/accessories", None, b"", &mut wire)
        .unwrap();
    let (out, events) = server.input(&mut conn, &wire);
    assert!(matches!(
        events.as_slice(),
        [ConnectionEvent::Verified { .. }]
    ));
    // M4 in plaintext, then the encrypted answer.
    let m4_len = plaintext_response_len(&out);
    c.http.feed(&out[..m4_len]).unwrap();
    assert_eq!(c.http.poll_message().unwrap().unwrap().status, 200);
    session.feed(&out[m4_len..]).unwrap();
    let msg = session
        .poll_message()
        .unwrap()
        .expect("the encrypted answer");
    assert_eq!(msg.status, 200);
    assert!(json(&msg)["accessories"].is_array());
}

/// The length of the plaintext HTTP response at the start of `out` (head + Content-Length).
fn plaintext_response_len(out: &[u8]) -> usize {
    let head_end = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = std::str::from_utf8(&out[..head_end]).unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    head_end + len
}
