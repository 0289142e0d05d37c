//! Motion from the pictures (issue #20), through the real binary: three cameras on one bridge,
//! each fed one scene of the GStreamer fixture (`rtsp_server.py`, `/scene/...`), detection on,
//! Motion Detected read as a controller's EVENTs:
//! - `yard`: an object still for 4 s, then crossing the picture: an EVENT within 500 ms of its
//!   first moved picture (the fixture prints that picture's time), nothing while it stands
//!   still, back to "not detected" after the reset;
//! - `low`: the same crossing in the bottom band, the zone covering the top half: no EVENT;
//! - `still`: a static noisy scene with a slow brightness ramp and a sudden IR-like switch: no
//!   EVENT.

use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use crate::controller::{aid_named, find_char};
use crate::pairing::{event_value, subscribe};
use crate::rtsp_fixture::RtspServer;
use crate::util::{Bridge, TempDir};

/// The bound from the object's first movement to the controller's EVENT.
const EVENT_WITHIN: f64 = 0.5;
/// The fixture's object: still, crossing, still (`OBJECT_*_S` in the script).
const CROSS_S: f64 = 3.0;
const PAUSE_S: f64 = 8.0;

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A Motion Detected EVENT: camera, value, arrival (Unix seconds).
#[derive(Debug)]
struct Seen {
    camera: &'static str,
    detected: bool,
    at: f64,
}

#[test]
fn motion_is_detected_in_the_pictures_and_nothing_else_fires() {
    let fixture = RtspServer::start();
    let tmp = TempDir::new("motion-detect");
    let camera = |id: &str, name: &str, scene: &str, zones: &str| {
        format!(
            "[[cameras]]\nid = \"{id}\"\nname = \"{name}\"\nsource = \"{}\"\n\
             [cameras.motion_detection]\nenabled = true\n{zones}\n",
            fixture.scene_url(scene)
        )
    };
    let config = format!(
        "[bridge]\nmdns_interfaces = [\"lo\"]\n\n[timings]\nmotion_reset_seconds = 1\n\n{}{}{}",
        camera("yard", "Yard", "object", ""),
        camera(
            "low",
            "Low",
            "object-low",
            "zones = [[[0.0, 0.0], [1.0, 0.0], [1.0, 0.5], [0.0, 0.5]]]"
        ),
        camera("still", "Still", "static", ""),
    );
    let bridge = Bridge::start_in(&tmp.0, Some(&config));
    let (mut c, ..) = crate::camera::connect(&bridge, "Yard");
    let (code, db) = c.json("GET", "/accessories", None);
    assert_eq!(code, 200);
    let chars: Vec<(&'static str, u64, u64)> =
        [("yard", "Yard"), ("low", "Low"), ("still", "Still")]
            .into_iter()
            .map(|(id, name)| {
                let aid = aid_named(&db, name).unwrap();
                let (_, iid) = find_char(&db, aid, "85", "22").expect("motion sensor");
                (id, aid, iid)
            })
            .collect();
    for &(_, aid, iid) in &chars {
        subscribe(&mut c, aid, iid);
    }
    let subscribed = unix_now();

    // Watch until two crossings and the static scene's IR switch are behind us.
    let mut seen: Vec<Seen> = Vec::new();
    let mut picture_checked = false;
    let deadline = Instant::now() + Duration::from_secs(60);
    let done = |fixture: &RtspServer| {
        let moves = fixture.events("object-move");
        let ir = fixture.events("static-ir-switch");
        moves.len() >= 2
            && !ir.is_empty()
            && unix_now() > moves[1].1 + CROSS_S + 4.0
            && unix_now() > ir[0].1 + 3.0
    };
    while !done(&fixture) {
        assert!(
            Instant::now() < deadline,
            "the fixture's scenes did not run: {:?}",
            fixture.output_lines()
        );
        let Some(event) = c.next_message(Duration::from_millis(200), true) else {
            continue;
        };
        let at = unix_now();
        for &(camera, aid, iid) in &chars {
            if let Some(Value::Bool(detected)) = event_value(&event, aid, iid) {
                seen.push(Seen {
                    camera,
                    detected,
                    at,
                });
                // While motion is on, the detector's picture shows the changed area in red.
                if camera == "yard" && detected && !picture_checked {
                    picture_checked = true;
                    check_picture(&bridge);
                }
            }
        }
    }
    println!(
        "subscribed at {subscribed:.3}; events: {seen:#?}\nfixture: {:#?}",
        fixture.output_lines()
    );

    // The low object moved outside the zone, the static scene only changed its lighting.
    for cam in ["low", "still"] {
        assert!(
            !seen.iter().any(|s| s.camera == cam && s.detected),
            "{cam}: motion fired: {seen:?}"
        );
    }
    // Each crossing that started after we subscribed fired in time and was reset before the
    // next one; nothing fired while the object stood still.
    let moves = fixture.events("object-move");
    let yard: Vec<&Seen> = seen.iter().filter(|s| s.camera == "yard").collect();
    let mut checked = 0;
    for &(_, moved) in moves.iter().filter(|(_, t)| *t > subscribed + 0.5) {
        let first = yard
            .iter()
            .find(|s| s.detected && s.at >= moved - 0.05)
            .unwrap_or_else(|| panic!("no EVENT for the crossing at {moved:.3}: {yard:?}"));
        let delay = first.at - moved;
        println!(
            "crossing at {moved:.3}: EVENT after {:.0} ms",
            delay * 1000.0
        );
        assert!(
            delay < EVENT_WITHIN,
            "EVENT {delay:.3} s after the first movement"
        );
        let reset = yard
            .iter()
            .find(|s| !s.detected && s.at > first.at)
            .unwrap_or_else(|| panic!("no reset after the crossing at {moved:.3}: {yard:?}"));
        assert!(
            reset.at < moved + CROSS_S + PAUSE_S,
            "reset at {:.3}",
            reset.at
        );
        checked += 1;
    }
    assert!(
        checked >= 1,
        "no crossing after the subscription: {moves:?}"
    );
    for s in yard.iter().filter(|s| s.detected) {
        let in_crossing = moves
            .iter()
            .any(|&(_, m)| s.at >= m - 0.05 && s.at < m + CROSS_S + 1.0);
        assert!(
            in_crossing,
            "motion while the object stood still: {s:?} {moves:?}"
        );
    }

    // The API and the metrics count the events per camera.
    let (_, cams) = bridge.api_get("/api/v1/homekit/cameras");
    let events = |id: &str| {
        let cam = cams["cameras"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap()
            .clone();
        cam["motion"]["detection"]["events"].as_u64().unwrap()
    };
    assert!(events("yard") >= 1);
    assert_eq!((events("low"), events("still")), (0, 0));
    let (code, metrics) = crate::util::http_text(bridge.api, "GET", "/metrics", None).unwrap();
    assert_eq!(code, 200);
    assert!(
        metrics.lines().any(
            |l| l.starts_with("hap_bridge_motion_events_total{camera=\"yard\"}")
                && !l.ends_with(" 0")
        ),
        "{metrics}"
    );
    assert!(metrics.contains("hap_bridge_motion_events_total{camera=\"still\"} 0"));
}

/// `GET /cameras/yard/motion/picture`: a PNG of the detector's grid (160x90, 4 pixels a cell)
/// with changed cells in red.
fn check_picture(bridge: &Bridge) {
    let (code, png) = bridge.api_request(
        "GET",
        "/api/v1/homekit/cameras/yard/motion/picture",
        None,
        None,
    );
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&png));
    let img = image::load_from_memory(&png).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), (640, 360));
    let red = img
        .pixels()
        .filter(|p| p.0[0] == 255 && p.0[1] < 100)
        .count();
    assert!(red > 0, "no changed area drawn while motion is detected");
}
