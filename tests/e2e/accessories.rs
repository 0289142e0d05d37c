//! The bridge's accessories: motion reset and cap timers, and standalone cameras as HAP servers
//! of their own.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hap_proto::controller::setup::SrpPadding;
use serde_json::Value;

use crate::controller::{Conn, Identity};
use crate::pairing::{event_value, find_char, motion_char, subscribe, trigger_motion};
use crate::util::{Bridge, SETUP_CODE, TempDir};

/// Waits for an EVENT carrying `aid.iid` and returns its value with the time it arrived.
fn next_value(c: &mut Conn, aid: u64, iid: u64, timeout: Duration) -> Option<(Value, Instant)> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = c.next_message(left, true)?;
        if let Some(v) = event_value(&event, aid, iid) {
            return Some((v, Instant::now()));
        }
    }
    None
}

#[test]
fn motion_resets_after_the_reset_time_and_is_capped() {
    let tmp = TempDir::new("motion");
    let config = "[bridge]\nmdns_interfaces = [\"lo\"]\n\n[timings]\nmotion_reset_seconds = 1\n\
                  max_motion_duration = 3\n\n[[cameras]]\nid = \"demo\"\nname = \"Demo Camera\"\n\
                  source = \"test-pattern\"\n";
    let bridge = Bridge::start_in(&tmp.0, Some(config));
    let me = Identity::new(3);
    let acc = Conn::open(bridge.hap)
        .pair_setup(&me, SETUP_CODE, SrpPadding::Strip)
        .unwrap();
    let mut c = Conn::open(bridge.hap);
    c.pair_verify(&me, &acc).unwrap();
    let (aid, iid) = motion_char(&mut c);
    subscribe(&mut c, aid, iid);

    // One trigger: true at once, false about motion_reset_seconds later.
    let t0 = Instant::now();
    trigger_motion(&bridge, true);
    let (v, _) = next_value(&mut c, aid, iid, Duration::from_secs(2)).expect("motion event");
    assert_eq!(v, true);
    let (v, at) = next_value(&mut c, aid, iid, Duration::from_secs(4)).expect("reset event");
    assert_eq!(v, false);
    let after = at.duration_since(t0);
    assert!(
        after >= Duration::from_millis(900) && after < Duration::from_secs(3),
        "{after:?}"
    );

    // Triggers every 400 ms keep motion on, but the cap ends the run after 3 s.
    std::thread::sleep(Duration::from_millis(1100));
    let t1 = Instant::now();
    let mut reset_at = None;
    while t1.elapsed() < Duration::from_secs(5) && reset_at.is_none() {
        trigger_motion(&bridge, true);
        if let Some((Value::Bool(false), at)) =
            next_value(&mut c, aid, iid, Duration::from_millis(400))
        {
            reset_at = Some(at.duration_since(t1));
        }
    }
    let capped = reset_at.expect("the cap reset motion while triggers continued");
    assert!(
        capped >= Duration::from_millis(2500) && capped < Duration::from_millis(4500),
        "{capped:?}"
    );

    // Triggers and clears at once from many clients: whatever order they land in, motion
    // ends "not detected" once the reset time has passed.
    let threads: Vec<_> = (0..16)
        .map(|n| {
            let api = bridge.api;
            std::thread::spawn(move || {
                let body = format!("{{\"detected\": {}}}", n % 2 == 0);
                crate::util::http(
                    api,
                    "POST",
                    "/api/v1/homekit/cameras/demo/motion",
                    Some(&body),
                )
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap().0, 200);
    }
    std::thread::sleep(Duration::from_millis(1500));
    let (_, read) = c.json("GET", &format!("/characteristics?id={aid}.{iid}"), None);
    assert_eq!(read["characteristics"][0]["value"], false, "{read}");
}

#[test]
fn a_standalone_camera_is_its_own_hap_server() {
    let tmp = TempDir::new("standalone");
    let config = "[bridge]\nmdns_interfaces = [\"lo\"]\n\n[[cameras]]\nid = \"demo\"\nname = \"Demo Camera\"\n\
                  source = \"test-pattern\"\n\n[[cameras]]\nid = \"porch\"\nname = \"Porch\"\n\
                  source = \"test-pattern\"\nmode = \"standalone\"\nsensors = { motion = true, doorbell = true }\n";
    let bridge = Bridge::start_in(&tmp.0, Some(config));
    // Its address and setup code are printed at start, like the bridge's.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (addr, code) = loop {
        let out = bridge.output();
        let addr = out.lines().find_map(|l| {
            l.strip_prefix("hap-bridge: HAP server camera:porch listening on ")
                .and_then(|a| a.trim().parse::<SocketAddr>().ok())
        });
        let code = out.lines().find_map(|l| {
            l.strip_prefix("Porch: not paired. Setup code ")
                .map(|r| r[..10].to_owned())
        });
        if let (Some(a), Some(c)) = (addr, code) {
            break (a, c);
        }
        assert!(Instant::now() < deadline, "no standalone server in:\n{out}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_ne!(addr, bridge.hap);
    assert_ne!(code, SETUP_CODE, "each server has its own setup code");

    let me = Identity::new(4);
    // The bridge's code does not pair the camera; its own does.
    assert!(
        Conn::open(addr)
            .pair_setup(&me, SETUP_CODE, SrpPadding::Strip)
            .is_err()
    );
    let cam = Conn::open(addr)
        .pair_setup(&me, &code, SrpPadding::Strip)
        .unwrap();
    let bridge_acc = Conn::open(bridge.hap)
        .pair_setup(&me, SETUP_CODE, SrpPadding::Strip)
        .unwrap();
    assert_ne!(cam.device_id, bridge_acc.device_id, "own identity");

    let mut c = Conn::open(addr);
    c.pair_verify(&me, &cam).unwrap();
    let (status, db) = c.json("GET", "/accessories", None);
    assert_eq!(status, 200);
    let accessories = db["accessories"].as_array().unwrap();
    assert_eq!(
        accessories.len(),
        1,
        "a standalone camera is a single accessory"
    );
    assert!(
        find_char(&db, 1, "A2", "37").is_some(),
        "primary accessory carries Protocol Information"
    );
    assert!(find_char(&db, 1, "85", "22").is_some());
    assert!(find_char(&db, 1, "121", "73").is_some());
    // A video doorbell: the Doorbell service is primary, the camera streams are there, and a
    // snapshot needs no aid (the camera is aid 1 of its own server).
    let services = db["accessories"][0]["services"].as_array().unwrap();
    assert!(
        services
            .iter()
            .any(|s| s["type"] == "121" && s["primary"] == true)
    );
    assert_eq!(services.iter().filter(|s| s["type"] == "110").count(), 2);
    assert!(services.iter().any(|s| s["type"] == "112"), "Microphone");
    let m = c.call(
        "POST",
        "/resource",
        crate::controller::JSON,
        br#"{"resource-type":"image","image-width":320,"image-height":180}"#,
    );
    assert_eq!(
        (m.status, m.content_type.as_deref()),
        (200, Some("image/jpeg"))
    );
    assert!(m.body.starts_with(&[0xFF, 0xD8]), "JPEG SOI");
    // The bridge no longer lists the standalone camera.
    let mut b = Conn::open(bridge.hap);
    b.pair_verify(&me, &bridge_acc).unwrap();
    let (_, bdb) = b.json("GET", "/accessories", None);
    assert_eq!(
        bdb["accessories"].as_array().unwrap().len(),
        2,
        "bridge + demo only"
    );
}
