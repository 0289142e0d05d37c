//! End-to-end figures of the bridge binary's HAP server, measured over loopback with the e2e
//! test controller (hap-proto's `controller` feature). Not criterion: each figure is one
//! scenario against a real process, printed as a table.
//!
//! - connect + pair-verify + `GET /accessories` on 50 fresh connections (median, p90);
//! - trigger → EVENT: `POST .../motion` on the admin API until the EVENT is decoded. The server
//!   holds a second change of one characteristic within 1 s on a connection (leading-edge
//!   coalescing, HAP §5.8), so each of the 50 triggers uses a fresh verified connection with a
//!   fresh subscription, and the value alternates true/false; setup is not timed;
//! - how many verified, subscribed sessions one server holds with every one still receiving the
//!   EVENT of one trigger (ramp 32, 64, 128, 200, 256; the server caps connections at 256);
//! - the bridge's resident memory (VmRSS) idle after pairing and with the most sessions.
//!
//! Run with `cargo bench --bench server`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench that fails should stop loudly

use std::time::{Duration, Instant};

use hap_proto::controller::setup::{PairedAccessory, SrpPadding};
use serde_json::{Value, json};
use test_support::controller::{Conn, Identity, JSON};
use test_support::util::{BridgeBinary, SETUP_CODE};

/// The bridge under test, started from the binary Cargo built for this bench.
type Bridge = test_support::util::Bridge<HapBridge>;

/// Names the `hap-bridge` binary of this package.
enum HapBridge {}

impl BridgeBinary for HapBridge {
    const PATH: &'static str = env!("CARGO_BIN_EXE_hap-bridge");
}

fn main() {
    // `cargo bench` passes `--bench`; a filter that does not match skips the whole run.
    if std::env::args()
        .skip(1)
        .any(|a| !a.starts_with('-') && !"server".contains(a.as_str()))
    {
        return;
    }
    let bridge = Bridge::start();
    let admin = Identity::new(1);
    let acc = Conn::open(bridge.hap)
        .pair_setup(&admin, SETUP_CODE, SrpPadding::Strip)
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let idle_rss = rss_kib(&bridge);

    let verify = verify_and_read(&bridge, &admin, &acc);
    let (aid, iid) = motion_char(&bridge, &admin, &acc);
    let (latency, post) = trigger_latency(&bridge, &admin, &acc, aid, iid);
    let Ramp {
        held,
        steps,
        loaded_rss,
        beyond,
    } = ramp(&bridge, &admin, &acc, aid, iid);
    let after_rss = rss_kib(&bridge);

    println!();
    println!("| figure | value |");
    println!("| --- | --- |");
    println!(
        "| connect + pair-verify + GET /accessories, {RUNS} fresh connections | median {}, p90 {} |",
        ms(median(&verify)),
        ms(p90(&verify))
    );
    println!(
        "| trigger (API POST) → EVENT received, {RUNS} triggers | median {}, p90 {} |",
        ms(median(&latency)),
        ms(p90(&latency))
    );
    println!(
        "| of which the API POST round trip | median {} |",
        ms(median(&post))
    );
    for (n, ok, last) in &steps {
        println!(
            "| {n} verified sessions, one trigger | {ok}/{n} got the EVENT, last after {} |",
            ms(*last)
        );
    }
    println!("| most sessions with every EVENT delivered | {held} |");
    println!(
        "| one more connection with {held} sessions open | {} |",
        if beyond {
            "refused (closed at once)"
        } else {
            "accepted"
        }
    );
    println!("| bridge VmRSS idle (paired, demo camera) | {idle_rss} KiB |");
    println!("| bridge VmRSS with {held} sessions open | {loaded_rss} KiB |");
    println!("| bridge VmRSS after they closed | {after_rss} KiB |");
}

fn verify_and_read(bridge: &Bridge, admin: &Identity, acc: &PairedAccessory) -> Vec<Duration> {
    (0..RUNS)
        .map(|_| {
            let t = Instant::now();
            let mut c = Conn::open(bridge.hap);
            c.pair_verify(admin, acc).unwrap();
            let m = c.call("GET", "/accessories", None, b"");
            assert_eq!(m.status, 200);
            t.elapsed()
        })
        .collect()
}

fn trigger_latency(
    bridge: &Bridge,
    admin: &Identity,
    acc: &PairedAccessory,
    aid: u64,
    iid: u64,
) -> (Vec<Duration>, Vec<Duration>) {
    let mut latency = Vec::with_capacity(RUNS);
    let mut post = Vec::with_capacity(RUNS);
    for run in 0..RUNS {
        let detected = run.is_multiple_of(2);
        let mut c = Conn::open(bridge.hap);
        c.pair_verify(admin, acc).unwrap();
        subscribe(&mut c, aid, iid);
        let t = Instant::now();
        trigger(bridge, detected);
        post.push(t.elapsed());
        let event = c
            .next_message(Duration::from_secs(5), true)
            .expect("EVENT after the trigger");
        latency.push(t.elapsed());
        assert_eq!(event_value(&event, aid, iid), Some(Value::Bool(detected)));
    }
    (latency, post)
}

/// What the session ramp found.
struct Ramp {
    /// The largest count where every session got the EVENT.
    held: usize,
    /// Per step: sessions, sessions that got the EVENT, time until the last one.
    steps: Vec<(usize, usize, Duration)>,
    /// VmRSS with the most sessions open.
    loaded_rss: u64,
    /// Whether one more connection was refused with the most sessions open.
    beyond: bool,
}

/// Adds sessions step by step until one trigger no longer reaches all of them.
fn ramp(bridge: &Bridge, admin: &Identity, acc: &PairedAccessory, aid: u64, iid: u64) -> Ramp {
    let mut conns: Vec<Conn> = Vec::new();
    let mut steps = Vec::new();
    let mut held = 0;
    // The last trigger_latency run left the value at false; start with true.
    let mut detected = true;
    for target in RAMP {
        while conns.len() < target {
            let mut c = Conn::open(bridge.hap);
            if c.pair_verify(admin, acc).is_err() {
                break;
            }
            subscribe(&mut c, aid, iid);
            conns.push(c);
        }
        // Past events on these connections were at least 1.1 s ago: the next one goes at once.
        std::thread::sleep(Duration::from_millis(1100));
        let t = Instant::now();
        trigger(bridge, detected);
        let mut ok = 0;
        let mut last = Duration::ZERO;
        for c in &mut conns {
            let left = Duration::from_secs(5).saturating_sub(t.elapsed());
            if let Some(e) = c.next_message(left, true)
                && event_value(&e, aid, iid) == Some(Value::Bool(detected))
            {
                ok += 1;
                last = t.elapsed();
            }
        }
        steps.push((conns.len(), ok, last));
        if ok == conns.len() && conns.len() == target {
            held = target;
        } else {
            break;
        }
        detected = !detected;
    }
    Ramp {
        held,
        steps,
        loaded_rss: rss_kib(bridge),
        beyond: beyond_cap_refused(bridge),
    }
}

/// Whether one more connection, on top of those open, is closed by the accessory at once.
fn beyond_cap_refused(bridge: &Bridge) -> bool {
    let mut c = Conn::open(bridge.hap);
    c.closed_within(Duration::from_secs(1))
}

fn motion_char(bridge: &Bridge, admin: &Identity, acc: &PairedAccessory) -> (u64, u64) {
    let mut c = Conn::open(bridge.hap);
    c.pair_verify(admin, acc).unwrap();
    let (_, db) = c.json("GET", "/accessories", None);
    db["accessories"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|a| {
            let svc = a["services"]
                .as_array()?
                .iter()
                .find(|s| s["type"] == "85")?;
            let ch = svc["characteristics"]
                .as_array()?
                .iter()
                .find(|c| c["type"] == "22")?;
            Some((a["aid"].as_u64()?, ch["iid"].as_u64()?))
        })
        .expect("a motion sensor")
}

fn subscribe(c: &mut Conn, aid: u64, iid: u64) {
    let body = json!({"characteristics": [{"aid": aid, "iid": iid, "ev": true}]});
    let m = c.call(
        "PUT",
        "/characteristics",
        JSON,
        &serde_json::to_vec(&body).unwrap(),
    );
    assert_eq!(m.status, 204);
}

fn trigger(bridge: &Bridge, detected: bool) {
    let (code, _) = bridge.api_post(
        "/api/v1/homekit/cameras/demo/motion",
        &json!({ "detected": detected }).to_string(),
    );
    assert_eq!(code, 200);
}

fn event_value(
    event: &hap_proto::controller::client::Message,
    aid: u64,
    iid: u64,
) -> Option<Value> {
    let json: Value = serde_json::from_slice(&event.body).ok()?;
    json["characteristics"]
        .as_array()?
        .iter()
        .find(|c| c["aid"] == aid && c["iid"] == iid)
        .map(|c| c["value"].clone())
}

fn rss_kib(bridge: &Bridge) -> u64 {
    let pid = bridge.pid().expect("running");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

fn median(v: &[Duration]) -> Duration {
    quantile(v, 0.5)
}

fn p90(v: &[Duration]) -> Duration {
    quantile(v, 0.9)
}

fn quantile(v: &[Duration], q: f64) -> Duration {
    let mut s = v.to_vec();
    s.sort();
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let i = ((s.len() - 1) as f64 * q).round() as usize;
    s[i]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// Runs per timed figure.
const RUNS: usize = 50;
/// Session counts tried in turn.
const RAMP: [usize; 5] = [32, 64, 128, 200, 256];
