//! The HAP server under load: many verified sessions on one server, all receiving events.

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
