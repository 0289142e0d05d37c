//! The HAP server under load: many verified sessions on one server, all receiving events.

use std::io::Read as _;
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;

use crate::pairing::{
    event_value, motion_char, paired_bridge, subscribe, trigger_motion, verified,
};

#[test]
fn one_trigger_reaches_32_concurrent_verified_sessions() {
    let (bridge, admin, acc) = paired_bridge();
    let mut conns: Vec<_> = (0..SESSIONS)
        .map(|_| verified(&bridge, &admin, &acc))
        .collect();
    let (aid, iid) = motion_char(&mut conns[0]);
    for c in &mut conns {
        subscribe(c, aid, iid);
    }
    let (_, status) = bridge.api_get("/api/v1/homekit/status");
    assert!(
        status["verified_sessions"].as_u64().unwrap() >= SESSIONS as u64,
        "{status}"
    );

    trigger_motion(&bridge, true);
    for (n, c) in conns.iter_mut().enumerate() {
        let event = c
            .next_message(Duration::from_secs(3), true)
            .unwrap_or_else(|| panic!("session {n}: no EVENT"));
        assert_eq!(
            event_value(&event, aid, iid),
            Some(Value::Bool(true)),
            "session {n}"
        );
    }
    // Every session still answers requests after the burst.
    for (n, c) in conns.iter_mut().enumerate() {
        let (code, _) = c.json("GET", &format!("/characteristics?id={aid}.{iid}"), None);
        assert_eq!(code, 200, "session {n}");
    }
}

/// Concurrent sessions in the test (the server's cap is 256).
const SESSIONS: usize = 32;

#[test]
fn at_the_cap_the_oldest_unverified_connections_make_room() {
    let (bridge, admin, acc) = paired_bridge();
    let mut session = verified(&bridge, &admin, &acc);
    // Only that session is open (the pair-setup connection has been seen closing).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while bridge.api_get("/api/v1/homekit/status").1["connections"] != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "pair-setup connection still open"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // A burst: the cap must hold even when connections arrive faster than their tasks start.
    let conns: Vec<_> = (0..CAP + 20)
        .map(|_| TcpStream::connect_timeout(&bridge.hap, Duration::from_secs(5)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let open: Vec<bool> = conns
        .iter()
        .map(|s| {
            s.set_nonblocking(true).unwrap();
            // A closed connection reads end-of-file (or a reset); an open one has nothing.
            matches!((&*s).read(&mut [0u8; 16]), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
        })
        .collect();
    // The verified session and the newest plaintext connections stay; the oldest plaintext
    // ones were closed for room.
    let closed = open.iter().take_while(|o| !**o).count();
    assert_eq!(closed, 21, "the oldest closed, in order: {open:?}");
    assert!(open[closed..].iter().all(|o| *o), "{open:?}");
    let (_, status) = bridge.api_get("/api/v1/homekit/status");
    assert_eq!(status["connections"], CAP);
    let (code, _) = session.json("GET", "/accessories", None);
    assert_eq!(code, 200, "a verified session is never closed for room");
    // A controller can still connect and verify.
    drop(conns);
    std::thread::sleep(Duration::from_millis(300));
    let mut c = verified(&bridge, &admin, &acc);
    assert_eq!(c.json("GET", "/accessories", None).0, 200);
}

/// The server's connection cap (`MAX_CONNECTIONS` in src/hap/mod.rs).
const CAP: usize = 256;
