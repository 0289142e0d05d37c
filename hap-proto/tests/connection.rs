//! The accessory's `server::Connection` driven in memory by the controller side: pair-setup and
//! pair-verify over HTTP, then encrypted GET /accessories, reads, writes, events, /pairings,
//! with a seeded RNG and simulated time, through the [`Pair`] harness (quinn's `Pair` idea,
//! without sockets).
#![cfg(feature = "controller")]
// Test code: a panic is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::pair::{CONTROLLER_ID, Pair, TLV};
use ed25519_dalek::SigningKey;
use hap_proto::controller::client::{ClientConnection, Message};
use hap_proto::controller::verify::{
    ControllerVerified, add_pairing_request, list_pairings_request, parse_list_pairings,
    remove_pairing_request,
};
use hap_proto::db::Value;
use hap_proto::pairing::{PairingId, PairingStore, Permissions};
use hap_proto::server::{CloseReason, ConnectionEvent};
use hap_proto::tlv8::{TlvType, Writer};

fn json(msg: &Message) -> serde_json::Value {
    serde_json::from_slice(&msg.body).unwrap()
}

#[test]
fn plaintext_routes_before_pairing() {
    let mut pair = Pair::new(1);
    let (msg, _) = pair.call("GET", "/accessories", None, b"");
    assert_eq!(msg.status, 470);
    assert_eq!(json(&msg)["status"], -70401);
    let (msg, events) = pair.call("POST", "/identify", None, b"");
    assert_eq!(msg.status, 204);
    assert!(msg.has_content_length);
    assert!(matches!(events.as_slice(), [ConnectionEvent::Identify]));
    let (msg, _) = pair.call("GET", "/nowhere", None, b"");
    assert_eq!(msg.status, 404);
    let (msg, _) = pair.call("GET", "/pair-setup", None, b"");
    assert_eq!(msg.status, 405);
    let (msg, _) = pair.call("POST", "/resource", None, b"{}");
    assert_eq!(msg.status, 470, "snapshots need a verified session too");
}

#[test]
fn pair_verify_then_encrypted_database_and_events() {
    let mut pair = Pair::new(2);
    let acc = pair.pair();
    assert_eq!(acc.public_key, pair.server.identity.public_key());
    assert!(pair.server.store.is_paired());

    // After pairing, plaintext requests on another connection get 470 and /identify 400.
    pair.reconnect();
    let (msg, _) = pair.call("GET", "/characteristics?id=1.2", None, b"");
    assert_eq!(msg.status, 470);
    let (msg, _) = pair.call("POST", "/identify", None, b"");
    assert_eq!(msg.status, 400);

    pair.reconnect();
    pair.verify();
    assert!(pair.conn.is_encrypted());

    let (msg, _) = pair.call("GET", "/accessories", None, b"");
    assert_eq!(msg.status, 200);
    let db = json(&msg);
    assert_eq!(db["accessories"][0]["aid"], 1);
    assert_eq!(db["accessories"][0]["services"][0]["iid"], 1);

    // Subscribe to motion, then a change from the bridge side arrives as an EVENT at once.
    let motion = pair.server.motion;
    let body = format!(
        r#"{{"characteristics":[{{"aid":1,"iid":{},"ev":true}}]}}"#,
        motion.iid
    );
    let (msg, _) = pair.call(
        "PUT",
        "/characteristics",
        Some("application/hap+json"),
        body.as_bytes(),
    );
    assert_eq!(msg.status, 204);
    let change = pair
        .server
        .db
        .set_value(motion, Value::Bool(true))
        .unwrap()
        .unwrap();
    pair.notify(&change);
    let event = pair.pump().unwrap();
    assert!(event.is_event);
    assert_eq!(json(&event)["characteristics"][0]["value"], true);

    // A second change within the second is held, then sent with the latest value.
    let change = pair
        .server
        .db
        .set_value(motion, Value::Bool(false))
        .unwrap()
        .unwrap();
    pair.server.now += Duration::from_millis(100);
    pair.notify(&change);
    assert!(pair.conn.poll_transmit().is_none());
    let due = pair.conn.poll_timeout().unwrap();
    assert!(due <= pair.server.now + Duration::from_secs(1));
    pair.conn.handle_timeout(due);
    let event = pair.pump().unwrap();
    assert_eq!(json(&event)["characteristics"][0]["value"], false);

    // Reads over the session.
    let target = format!("/characteristics?id=1.{}&ev=1", motion.iid);
    let (msg, _) = pair.call("GET", &target, None, b"");
    assert_eq!(msg.status, 200);
    assert_eq!(json(&msg)["characteristics"][0]["ev"], true);

    // List pairings, then remove ourselves: the reply arrives and the connection closes.
    let (msg, _) = pair.call("POST", "/pairings", TLV, &list_pairings_request());
    let list = parse_list_pairings(&msg.body).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].id.0, CONTROLLER_ID);
    let (msg, events) = pair.call(
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
    assert_eq!(pair.conn.closing(), Some(&CloseReason::PairingRemoved));
    assert!(!pair.server.store.is_paired());
}

#[test]
fn tampered_frame_closes_without_response() {
    let mut pair = Pair::verified(4);
    let mut wire = Vec::new();
    pair.http
        .request("GET", "/accessories", None, b"", &mut wire)
        .unwrap();
    wire[5] ^= 0x80;
    let (conn, mut cx) = pair.server_end();
    assert!(conn.handle_input(&wire, &mut cx).is_err());
    assert!(pair.conn.poll_transmit().is_none());
    assert!(matches!(
        pair.conn.closing(),
        Some(CloseReason::Protocol(_))
    ));
}

#[test]
fn requests_split_across_frames_and_byte_by_byte() {
    let mut pair = Pair::verified(5);
    // A body larger than one 1024-byte frame, fed one byte at a time.
    let padding = "x".repeat(1500);
    let body = format!(
        r#"{{"characteristics":[{{"aid":1,"iid":{},"ev":true}}],"pad":"{padding}"}}"#,
        pair.server.motion.iid
    );
    let mut wire = Vec::new();
    let ct = Some("application/hap+json");
    pair.http
        .request("PUT", "/characteristics", ct, body.as_bytes(), &mut wire)
        .unwrap();
    assert!(wire.len() > 1024 + 18, "the request spans two frames");
    let mut out = Vec::new();
    for b in &wire {
        let (o, _) = pair.input(std::slice::from_ref(b));
        out.extend_from_slice(&o);
    }
    pair.http.feed(&out).unwrap();
    let msg = pair.http.poll_message().unwrap().unwrap();
    assert_eq!(msg.status, 204);
    // The subscription took effect: a change now reaches this connection.
    let motion = pair.server.motion;
    let change = pair
        .server
        .db
        .set_value(motion, Value::Bool(true))
        .unwrap()
        .unwrap();
    pair.notify(&change);
    assert!(pair.pump().unwrap().is_event);
}

/// A frame that fails authentication while a snapshot is pending ends the connection: the
/// snapshot's answer, when the caller gives it later, is not sent (HAP §4).
#[test]
fn a_snapshot_answer_after_a_tampered_frame_is_not_sent() {
    let mut pair = Pair::verified(8);
    let mut wire = Vec::new();
    let body = br#"{"resource-type":"image","image-width":640,"image-height":360,"aid":1}"#;
    pair.http
        .request(
            "POST",
            "/resource",
            Some("application/hap+json"),
            body,
            &mut wire,
        )
        .unwrap();
    let (out, events) = pair.input(&wire);
    assert!(out.is_empty());
    assert!(matches!(events.as_slice(), [ConnectionEvent::Snapshot(_)]));
    let mut tampered = Vec::new();
    pair.http
        .request("GET", "/accessories", None, b"", &mut tampered)
        .unwrap();
    tampered[5] ^= 0x80;
    let (conn, mut cx) = pair.server_end();
    assert!(conn.handle_input(&tampered, &mut cx).is_err());
    conn.respond_resource(Ok(vec![0xFF, 0xD8, 0xFF, 0xD9]), &mut cx);
    assert!(
        pair.conn.poll_transmit().is_none(),
        "nothing after the failure"
    );
}

#[test]
fn snapshot_request_waits_for_the_caller() {
    let mut pair = Pair::verified(6);
    let mut wire = Vec::new();
    let body = br#"{"resource-type":"image","image-width":640,"image-height":360,"aid":1}"#;
    pair.http
        .request(
            "POST",
            "/resource",
            Some("application/hap+json"),
            body,
            &mut wire,
        )
        .unwrap();
    // A second request is pipelined behind it and must wait.
    pair.http
        .request("GET", "/accessories", None, b"", &mut wire)
        .unwrap();
    let (out, events) = pair.input(&wire);
    assert!(out.is_empty());
    let [ConnectionEvent::Snapshot(req)] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!((req.aid, req.width, req.height), (Some(1), 640, 360));
    let (conn, mut cx) = pair.server_end();
    conn.respond_resource(Ok(vec![0xFF, 0xD8, 0xFF, 0xD9]), &mut cx);
    let jpeg = pair.pump().unwrap();
    assert_eq!(jpeg.content_type.as_deref(), Some("image/jpeg"));
    assert_eq!(jpeg.body, [0xFF, 0xD8, 0xFF, 0xD9]);
    let next = pair.http.poll_message().unwrap().unwrap();
    assert_eq!(next.status, 200);
}

/// Found by the `session` fuzz target: a request that arrives in a later read while a
/// `/resource` request waits for the caller was parsed and dropped, never answered.
#[test]
fn request_read_while_a_snapshot_is_pending_is_answered_after_it() {
    let mut pair = Pair::verified(6);
    let mut wire = Vec::new();
    let body = br#"{"resource-type":"image","image-width":640,"image-height":360,"aid":1}"#;
    pair.http
        .request(
            "POST",
            "/resource",
            Some("application/hap+json"),
            body,
            &mut wire,
        )
        .unwrap();
    let (out, events) = pair.input(&wire);
    assert!(out.is_empty());
    assert!(matches!(events.as_slice(), [ConnectionEvent::Snapshot(_)]));
    // The next request comes in its own read, before the snapshot is ready.
    let mut wire = Vec::new();
    pair.http
        .request("GET", "/accessories", None, b"", &mut wire)
        .unwrap();
    let (out, _) = pair.input(&wire);
    assert!(out.is_empty(), "answered before the pending snapshot");
    let (conn, mut cx) = pair.server_end();
    conn.respond_resource(Ok(vec![0xFF, 0xD8, 0xFF, 0xD9]), &mut cx);
    let jpeg = pair.pump().unwrap();
    assert_eq!(jpeg.content_type.as_deref(), Some("image/jpeg"));
    let next = pair
        .http
        .poll_message()
        .unwrap()
        .expect("the later request's response");
    assert_eq!(next.status, 200);
    assert_eq!(next.content_type.as_deref(), Some("application/hap+json"));
}

/// Pair-verify up to M3 on the current connection: returns M3's HTTP bytes and the controller's
/// session keys (its M4 check only reads the state byte, so a bare M4 TLV yields them).
fn verify_until_m3(pair: &mut Pair) -> (Vec<u8>, ControllerVerified) {
    let (expect_m4, m3) = pair.verify_to_m3();
    let mut wire = Vec::new();
    pair.http
        .request("POST", "/pair-verify", TLV, &m3, &mut wire)
        .unwrap();
    let mut m4 = Writer::new();
    m4.put_u8(TlvType::STATE, 4);
    let verified = expect_m4.handle(&m4.into_vec()).unwrap();
    (wire, verified)
}

#[test]
fn plaintext_after_verify_m3_is_never_a_request() {
    let mut pair = Pair::paired(7);
    let (mut wire, _) = verify_until_m3(&mut pair);
    // Someone on the path appends a plaintext AddPairing (admin) to M3.
    let intruder = SigningKey::from_bytes(&[0x42; 32]);
    let body = add_pairing_request(
        b"intruder",
        intruder.verifying_key().as_bytes(),
        Permissions::Admin,
    );
    pair.http
        .request("POST", "/pairings", TLV, &body, &mut wire)
        .unwrap();
    let (out, _) = pair.input(&wire);
    assert!(matches!(
        pair.conn.closing(),
        Some(CloseReason::Protocol(_))
    ));
    assert!(out.is_empty(), "nothing is answered on a broken session");
    let ids: Vec<_> = pair
        .server
        .store
        .pairings()
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(ids, vec![PairingId(CONTROLLER_ID.to_vec())]);
}

#[test]
fn encrypted_request_in_the_same_read_as_verify_m3_is_answered() {
    let mut pair = Pair::paired(8);
    let (mut wire, verified) = verify_until_m3(&mut pair);
    let mut session = ClientConnection::new();
    session.start_session(verified.keys);
    session
        .request("GET", "/accessories", None, b"", &mut wire)
        .unwrap();
    let (out, events) = pair.input(&wire);
    assert!(matches!(
        events.as_slice(),
        [ConnectionEvent::Verified { .. }]
    ));
    // M4 in plaintext, then the encrypted answer.
    let m4_len = plaintext_response_len(&out);
    pair.http.feed(&out[..m4_len]).unwrap();
    assert_eq!(pair.http.poll_message().unwrap().unwrap().status, 200);
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

#[test]
fn a_removed_controller_is_not_served_on_its_open_session() {
    // Removed straight from the store (as another server path or the owner would): the next
    // request on the open session is not served and the connection closes.
    let mut pair = Pair::verified(9);
    let (msg, _) = pair.call("GET", "/accessories", None, b"");
    assert_eq!(msg.status, 200);
    pair.server
        .store
        .remove_pairing(&PairingId(CONTROLLER_ID.to_vec()))
        .unwrap();
    let mut wire = Vec::new();
    pair.http
        .request("GET", "/accessories", None, b"", &mut wire)
        .unwrap();
    let (out, events) = pair.input(&wire);
    assert!(out.is_empty(), "nothing is served to a removed controller");
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(pair.conn.closing(), Some(&CloseReason::PairingRemoved));
}

#[test]
fn requests_queued_behind_a_snapshot_do_not_run_after_the_removal() {
    let mut pair = Pair::verified(10);
    let mut wire = Vec::new();
    let body = br#"{"resource-type":"image","image-width":640,"image-height":360,"aid":1}"#;
    pair.http
        .request(
            "POST",
            "/resource",
            Some("application/hap+json"),
            body,
            &mut wire,
        )
        .unwrap();
    pair.http
        .request("GET", "/accessories", None, b"", &mut wire)
        .unwrap();
    let (out, events) = pair.input(&wire);
    assert!(out.is_empty());
    assert!(matches!(events.as_slice(), [ConnectionEvent::Snapshot(_)]));
    // The pairing goes while the snapshot is being made.
    pair.server
        .store
        .remove_pairing(&PairingId(CONTROLLER_ID.to_vec()))
        .unwrap();
    let (conn, mut cx) = pair.server_end();
    conn.respond_resource(Ok(vec![0xFF, 0xD8, 0xFF, 0xD9]), &mut cx);
    let jpeg = pair.pump().unwrap();
    assert_eq!(
        jpeg.body,
        [0xFF, 0xD8, 0xFF, 0xD9],
        "the answer already due"
    );
    assert!(
        pair.http.poll_message().unwrap().is_none(),
        "the request queued behind it is not served"
    );
    assert_eq!(pair.conn.closing(), Some(&CloseReason::PairingRemoved));
}
