//! The HTTP parser, the accessory database and the event queue together, as a connection uses
//! them: bytes in → request → database → response bytes, and events to the other connection.
// Integration tests may unwrap: a panic is a test failure (clippy.toml allows it in unit tests).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use hap_proto::db::services::{self, AccessoryInfo};
use hap_proto::db::{
    AccessoryBuilder, CharId, ClientState, Database, HapType, IidAllocator, Value,
};
use hap_proto::events;
use hap_proto::http::{
    ContentType, Method, Parsed, Request, RequestParser, Status, encode_response,
};

/// One controller connection: its parser and its database state.
#[derive(Default)]
struct Conn {
    parser: RequestParser,
    client: ClientState,
}

/// A tiny router over the database, as the bridge's connection will have.
fn handle(
    db: &mut Database,
    conn: &mut Conn,
    req: &Request,
    now: Instant,
    others: &mut [&mut Conn],
) -> Vec<u8> {
    let mut out = Vec::new();
    let json = |status, body: Vec<u8>, out: &mut Vec<u8>| {
        let body = (!body.is_empty()).then_some((ContentType::HapJson, body.as_slice()));
        encode_response(status, body, out);
    };
    match (req.method, req.path.as_str()) {
        (Method::Get, "/accessories") => json(Status::OK, db.accessories_json(), &mut out),
        (Method::Get, "/characteristics") => {
            let (status, body) = db.read(req.query.as_deref().unwrap_or(""), &conn.client);
            json(status, body, &mut out);
        }
        (Method::Put, "/characteristics") => {
            let r = db.write(&req.body, &mut conn.client, now, &mut ());
            for change in &r.changes {
                for other in others.iter_mut() {
                    other.client.notify(change, now);
                }
            }
            json(r.status, r.body, &mut out);
        }
        (Method::Put, "/prepare") => {
            let (status, body) = db.prepare(&req.body, &mut conn.client, now);
            json(status, body, &mut out);
        }
        (_, "/accessories" | "/characteristics" | "/prepare") => {
            encode_response(Status::METHOD_NOT_ALLOWED, None, &mut out);
        }
        _ => encode_response(Status::NOT_FOUND, None, &mut out),
    }
    out
}

fn request(method: &str, path: &str, body: &str) -> Vec<u8> {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: bridge\r\nContent-Type: application/hap+json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn next(conn: &mut Conn, bytes: &[u8]) -> Request {
    match conn.parser.feed(bytes) {
        Parsed::Request(r) => r,
        other => panic!("{other:?}"),
    }
}

fn bridge() -> Database {
    let info = AccessoryInfo::new("Acme", "Bridge", "Acme Bridge", "SN0001", "1.0.0");
    let mut iids = IidAllocator::default();
    let mut b = AccessoryBuilder::new(1, services::accessory_information(&info), &mut iids);
    b.add_service(services::protocol_information());
    let info = AccessoryInfo::new("Acme", "Cam", "Porch", "SN0002", "1.0.0");
    let mut iids = IidAllocator::default();
    let mut cam = AccessoryBuilder::new(2, services::accessory_information(&info), &mut iids);
    cam.add_service(services::motion_sensor());
    cam.add_service(services::doorbell());
    Database::new(vec![b.build(), cam.build()])
}

fn body_of(response: &[u8]) -> &str {
    let text = std::str::from_utf8(response).unwrap();
    text.split_once("\r\n\r\n").unwrap().1
}

#[test]
fn subscribe_read_and_event_flow() {
    let mut db = bridge();
    let motion = db
        .find(2, &HapType::Apple(0x85), &HapType::Apple(0x22))
        .unwrap();
    let pse = db
        .find(2, &HapType::Apple(0x121), &HapType::Apple(0x73))
        .unwrap();
    let t0 = Instant::now();
    let (mut a, mut b) = (Conn::default(), Conn::default());

    // A subscribes to motion and the doorbell, then reads; both requests pipelined, split.
    let sub = format!(
        r#"{{"characteristics":[{{"aid":2,"iid":{},"ev":true}},{{"aid":2,"iid":{},"ev":true}}]}}"#,
        motion.iid, pse.iid
    );
    let mut bytes = request("PUT", "/characteristics", &sub);
    bytes.extend_from_slice(&request(
        "GET",
        &format!("/characteristics?id=2.{}&ev=1", motion.iid),
        "",
    ));
    let (first, second) = bytes.split_at(40);
    assert_eq!(a.parser.feed(first), Parsed::Incomplete);
    let req = next(&mut a, second);
    let resp = handle(&mut db, &mut a, &req, t0, &mut [&mut b]);
    assert_eq!(
        resp,
        b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"
    );
    let Parsed::Request(req) = a.parser.poll() else {
        panic!()
    };
    let resp = handle(&mut db, &mut a, &req, t0, &mut [&mut b]);
    assert_eq!(
        body_of(&resp),
        format!(
            r#"{{"characteristics":[{{"aid":2,"iid":{},"value":false,"ev":true}}]}}"#,
            motion.iid
        )
    );

    // The bridge sees motion: A gets an EVENT at once, B (not subscribed) nothing.
    let change = db.set_value(motion, Value::Bool(true)).unwrap().unwrap();
    a.client.notify(&change, t0);
    b.client.notify(&change, t0);
    let batch = a.client.events.poll_event(t0).unwrap();
    let mut out = Vec::new();
    events::encode(&batch, &mut out);
    let json = format!(
        r#"{{"characteristics":[{{"aid":2,"iid":{},"value":true}}]}}"#,
        motion.iid
    );
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        format!(
            "EVENT/1.0 200 OK\r\nContent-Type: application/hap+json\r\nContent-Length: {}\r\n\r\n{json}",
            json.len()
        )
    );
    assert_eq!(b.client.events.poll_event(t0), None);

    // Motion clears 300 ms later: held for the rest of the second.
    let t1 = t0 + Duration::from_millis(300);
    let change = db.set_value(motion, Value::Bool(false)).unwrap().unwrap();
    a.client.notify(&change, t1);
    assert_eq!(a.client.events.poll_event(t1), None);
    // The doorbell rings twice meanwhile: both presses go out at once.
    for _ in 0..2 {
        let ring = db.set_value(pse, Value::Uint(0)).unwrap().unwrap();
        a.client.notify(&ring, t1);
    }
    assert_eq!(
        a.client.events.poll_event(t1).unwrap(),
        [(pse, Value::Uint(0)), (pse, Value::Uint(0))]
    );
    let due = a.client.events.poll_timeout().unwrap();
    assert_eq!(due, t0 + Duration::from_secs(1));
    assert_eq!(
        a.client.events.poll_event(due).unwrap(),
        [(motion, Value::Bool(false))]
    );
    // A read of the doorbell still returns null.
    let req = next(
        &mut a,
        &request("GET", &format!("/characteristics?id=2.{}", pse.iid), ""),
    );
    let resp = handle(&mut db, &mut a, &req, due, &mut [&mut b]);
    assert!(
        body_of(&resp).ends_with(r#""value":null}]}"#),
        "{}",
        body_of(&resp)
    );
}

#[test]
fn writer_is_not_notified_and_errors_route() {
    let mut db = bridge();
    let t0 = Instant::now();
    let (mut a, mut b) = (Conn::default(), Conn::default());
    // The camera's Name (iid 5) has no `ev`: -70406 in a 207.
    let req = next(
        &mut a,
        &request(
            "PUT",
            "/characteristics",
            r#"{"characteristics":[{"aid":2,"iid":5,"ev":true}]}"#,
        ),
    );
    let resp = handle(&mut db, &mut a, &req, t0, &mut [&mut b]);
    assert!(resp.starts_with(b"HTTP/1.1 207 Multi-Status\r\n"));
    assert_eq!(
        body_of(&resp),
        r#"{"characteristics":[{"aid":2,"iid":5,"status":-70406}]}"#
    );

    // Microphone Mute is writable with events: both connections subscribe, A writes.
    let info = AccessoryInfo::new("Acme", "Cam", "Porch", "SN0002", "1.0.0");
    let mut iids = IidAllocator::default();
    let mut cam = AccessoryBuilder::new(1, services::accessory_information(&info), &mut iids);
    cam.add_service(services::microphone(false));
    let mut db = Database::new(vec![cam.build()]);
    let mute = db
        .find(1, &HapType::Apple(0x112), &HapType::Apple(0x11A))
        .unwrap();
    let sub = format!(
        r#"{{"characteristics":[{{"aid":1,"iid":{},"ev":true}}]}}"#,
        mute.iid
    );
    for conn in [&mut a, &mut b] {
        let req = next(conn, &request("PUT", "/characteristics", &sub));
        handle(&mut db, conn, &req, t0, &mut []);
    }
    let w = format!(
        r#"{{"characteristics":[{{"aid":1,"iid":{},"value":true}}]}}"#,
        mute.iid
    );
    let req = next(&mut a, &request("PUT", "/characteristics", &w));
    let resp = handle(&mut db, &mut a, &req, t0, &mut [&mut b]);
    assert_eq!(
        resp,
        b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"
    );
    assert_eq!(
        a.client.events.poll_event(t0),
        None,
        "the writer is not notified"
    );
    assert_eq!(
        b.client.events.poll_event(t0).unwrap(),
        [(CharId::new(1, mute.iid), Value::Bool(true))]
    );

    let req = next(&mut a, b"DELETE /characteristics HTTP/1.1\r\n\r\n");
    assert_eq!(
        handle(&mut db, &mut a, &req, t0, &mut []),
        b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n"
    );
    let req = next(&mut a, b"GET /nope HTTP/1.1\r\n\r\n");
    assert_eq!(
        handle(&mut db, &mut a, &req, t0, &mut []),
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
    );
    let req = next(&mut a, &request("PUT", "/characteristics", "{not json"));
    assert_eq!(
        handle(&mut db, &mut a, &req, t0, &mut []),
        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"
    );
}
