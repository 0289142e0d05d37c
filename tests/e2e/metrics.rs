//! `GET /metrics` end to end: the text parses with a Prometheus text-format parser (every line
//! read, each family of the type it declares, histogram buckets cumulative up to `+Inf` =
//! `_count`), and the stream counters and latency histogram keep what a stream counted after
//! the stream ends.

use std::thread;
use std::time::{Duration, Instant};

use hap_proto::camera::{SessionCommand, SetupStatus};
use hap_proto::controller::setup::SrpPadding;
use prometheus_parse::{LineInfo, Sample, Scrape, Value};

use crate::camera_util::{
    Receiver, RtcpPinger, accessory_addr, command, select, selected, setup_endpoints,
    stream_services,
};
use crate::controller::{Conn, Identity};
use crate::pairing::aid_named;
use crate::util::{Bridge, SETUP_CODE};

/// One scrape, parsed. Fails the test on a line the parser does not read as a comment, a
/// `HELP` or `TYPE` line or a sample (the parser skips such lines silently).
fn scrape(bridge: &Bridge) -> Scrape {
    let (code, text) = crate::util::http_text(bridge.api, "GET", "/metrics", None).unwrap();
    assert_eq!(code, 200, "{text}");
    for line in text.lines() {
        assert_ne!(
            LineInfo::parse(line),
            LineInfo::Ignored,
            "line {line:?} is not Prometheus text format in\n{text}"
        );
    }
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    check_families(&scrape, &text);
    scrape
}

/// Every family the README names is there with the type it declares; histograms are whole.
fn check_families(scrape: &Scrape, text: &str) {
    let kind = |name: &str| -> Vec<&Sample> {
        let found: Vec<&Sample> = scrape.samples.iter().filter(|s| s.metric == name).collect();
        assert!(!found.is_empty(), "no {name} in\n{text}");
        found
    };
    for gauge in [
        "hap_bridge_up",
        "hap_bridge_connections",
        "hap_bridge_verified_sessions",
        "hap_bridge_pairings",
        "hap_bridge_accessories",
        "hap_bridge_active_streams",
        "hap_bridge_camera_timers",
        "hap_bridge_live_stream_key_frames",
        "hap_bridge_live_stream_dropped_frames",
        "process_resident_memory_bytes",
    ] {
        for s in kind(gauge) {
            assert!(matches!(s.value, Value::Gauge(_)), "{gauge}: {s:?}");
        }
    }
    for counter in [
        "hap_bridge_snapshots_served_total",
        "hap_bridge_streams_started_total",
        "hap_bridge_stream_frames_sent_total",
        "hap_bridge_stream_bytes_sent_total",
        "hap_bridge_camera_snapshots_total",
        "hap_bridge_rtsp_reconnects_total",
    ] {
        for s in kind(counter) {
            assert!(matches!(s.value, Value::Counter(_)), "{counter}: {s:?}");
        }
    }
    assert_eq!(
        kind("hap_bridge_up")[0].labels.get("server"),
        Some("bridge"),
        "{text}"
    );
    assert_eq!(
        kind("hap_bridge_rtsp_reconnects_total")[0]
            .labels
            .get("camera"),
        Some("demo"),
        "{text}"
    );
    let latency = "hap_bridge_stream_frame_latency_seconds";
    let [histogram] = kind(latency)[..] else {
        panic!("one {latency} histogram in\n{text}");
    };
    let Value::Histogram(buckets) = &histogram.value else {
        panic!("{latency} is no histogram: {histogram:?}");
    };
    assert!(buckets.len() > 1, "{buckets:?}");
    for pair in buckets.windows(2) {
        assert!(
            pair[0].less_than < pair[1].less_than && pair[0].count <= pair[1].count,
            "{latency} buckets not cumulative: {pair:?}"
        );
    }
    let last = buckets.last().unwrap();
    assert_eq!(last.less_than, f64::INFINITY, "{buckets:?}");
    assert_eq!(
        last.count,
        value(scrape, &format!("{latency}_count")),
        "{text}"
    );
    assert!(value(scrape, &format!("{latency}_sum")) >= 0.0, "{text}");
}

/// The value of the unlabelled sample `name`.
fn value(scrape: &Scrape, name: &str) -> f64 {
    let s = scrape
        .samples
        .iter()
        .find(|s| s.metric == name)
        .unwrap_or_else(|| panic!("no {name}"));
    match s.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
        _ => panic!("{name} is not a single value: {s:?}"),
    }
}

/// The `+Inf` bucket of histogram `name`.
fn inf_bucket(scrape: &Scrape, name: &str) -> f64 {
    let s = scrape.samples.iter().find(|s| s.metric == name).unwrap();
    match &s.value {
        Value::Histogram(b) => b.last().map_or(0.0, |b| b.count),
        _ => panic!("{name} is no histogram"),
    }
}

#[test]
fn metrics_parse_and_stream_counts_survive_the_stream_end() {
    let bridge = Bridge::start();
    let before = scrape(&bridge);
    let latency_count = "hap_bridge_stream_frame_latency_seconds_count";
    assert_eq!(value(&before, latency_count), 0.0);
    assert_eq!(value(&before, "hap_bridge_active_streams"), 0.0);

    let me = Identity::new(1);
    let acc = Conn::open(bridge.hap)
        .pair_setup(&me, SETUP_CODE, SrpPadding::Strip)
        .unwrap();
    let mut c = Conn::open(bridge.hap);
    c.pair_verify(&me, &acc).unwrap();
    let (_, db) = c.json("GET", "/accessories", None);
    let aid = aid_named(&db, "Demo Camera").expect("the demo camera");
    let s = stream_services(&mut c, aid)[0];
    let rx = Receiver::start();
    let session = [0x5E; 16];
    let resp = setup_endpoints(&mut c, &s, session, rx.port);
    assert_eq!(resp.status, SetupStatus::SUCCESS);
    let _rtcp = RtcpPinger::start(accessory_addr(&resp));
    let (code, body) = select(
        &mut c,
        &s,
        &selected(session, SessionCommand::START, (640, 360, 30), 800),
    );
    assert_eq!(code, 204, "{body}");
    assert!(
        rx.wait_for_packets(30, Duration::from_secs(15)),
        "the stream sends nothing"
    );

    // Live: the histogram counts its frames.
    let live = scrape(&bridge);
    assert_eq!(value(&live, "hap_bridge_active_streams"), 1.0);
    let counted = value(&live, latency_count);
    assert!(counted > 0.0, "no frame counted while the stream plays");
    let frames = value(&live, "hap_bridge_stream_frames_sent_total");
    assert!(frames > 0.0);

    // End it the way a controller does, and wait until the bridge has let it go.
    let (code, body) = select(&mut c, &s, &command(session, SessionCommand::END));
    assert_eq!(code, 204, "{body}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while bridge.status()["active_streams"] != 0 {
        assert!(Instant::now() < deadline, "the stream did not end");
        thread::sleep(Duration::from_millis(50));
    }

    // Ended: counters and the histogram keep every frame it counted (they only go up).
    let after = scrape(&bridge);
    assert_eq!(value(&after, "hap_bridge_active_streams"), 0.0);
    assert!(
        value(&after, latency_count) >= counted,
        "latency _count went from {counted} to {} when the stream ended",
        value(&after, latency_count)
    );
    assert!(
        inf_bucket(&after, "hap_bridge_stream_frame_latency_seconds") >= counted,
        "the +Inf bucket went down when the stream ended"
    );
    assert!(value(&after, "hap_bridge_stream_frames_sent_total") >= frames);
    assert_eq!(value(&after, "hap_bridge_streams_started_total"), 1.0);
    assert_eq!(value(&after, "hap_bridge_live_stream_key_frames"), 0.0);
}
