//! The fault and abuse suite: the bridge binary under unauthenticated floods from other peers on
//! loopback, with a verified controller and a live stream measured meanwhile. Bounded in time
//! (each flood lasts [`FLOOD`]); the scenarios run one at a time (their figures are timings),
//! and this test crate runs after the others (its own binary). The figures are printed.
// Test code: a panic is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use hap_proto::camera::{SessionCommand, SetupStatus};
use hap_proto::controller::setup::{PairedAccessory, SrpPadding};
use hap_proto::tlv8::{TlvError, TlvType, Writer};
use serde_json::json;
use test_support::camera_util::{
    Receiver, RtcpPinger, accessory_addr, select, selected, setup_endpoints, stream_services,
};
use test_support::controller::{Conn, Identity, aid_named, find_char};
use test_support::util::{BridgeBinary, SETUP_CODE};

/// The bridge under test, started from the binary Cargo built for these tests.
type Bridge = test_support::util::Bridge<HapBridge>;

/// Names the `hap-bridge` binary of this package.
enum HapBridge {}

impl BridgeBinary for HapBridge {
    const PATH: &'static str = env!("CARGO_BIN_EXE_hap-bridge");
}

/// One scenario at a time: their figures are timings.
static SERIAL: Mutex<()> = Mutex::new(());

/// How long each flood lasts.
const FLOOD: Duration = Duration::from_secs(10);
/// Flooding peers.
const ATTACKERS: usize = 2;
/// Pipelined requests per write (about 16 KiB of pair-verify M1s).
const BATCH: usize = 188;
/// The controller's reads of a characteristic come this often.
const READ_EVERY: Duration = Duration::from_millis(10);

/// A flood of pipelined M1s from [`ATTACKERS`] connections (reconnecting when closed), whose
/// answers are read and thrown away. It runs in a child process (this test binary's
/// [`flood_peer`]) at the lowest CPU priority: on a LAN the attackers' own work (connecting,
/// writing, draining answers) runs on their machines; here it would take the 2 cores from the
/// bridge being measured. The bridge's work for the flood is not lowered. Stops when dropped.
struct Flood {
    child: Child,
}

impl Flood {
    fn start(to: SocketAddr, path: &'static str, body: Vec<u8>) -> Self {
        let body: String = body.iter().map(|b| format!("{b:02x}")).collect();
        let child = Command::new("nice")
            .args(["-n", "19"])
            .arg(std::env::current_exe().unwrap())
            .args(["--exact", "flood_peer", "--ignored", "--nocapture"])
            .env(FLOOD_ENV, format!("{to} {path} {body}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        Self { child }
    }

    /// Ends the flood (closes the child's stdin) and returns the answers it counted.
    fn stop(mut self) -> u64 {
        drop(self.child.stdin.take());
        let mut out = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        assert!(self.child.wait().unwrap().success(), "flood peer: {out}");
        out.lines()
            .find_map(|l| l.strip_prefix("answered "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("flood peer printed no count: {out}"))
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where [`flood_peer`] finds its target: `ADDR PATH HEX-BODY`.
const FLOOD_ENV: &str = "HAP_BRIDGE_ABUSE_FLOOD";

/// The flooding peers of [`Flood`], run as a child process; ignored otherwise. Floods until its
/// stdin closes, then prints `answered N`.
#[test]
#[ignore = "the flooding peers of the other scenarios, started by them in a child process"]
fn flood_peer() {
    let Ok(spec) = std::env::var(FLOOD_ENV) else {
        return;
    };
    let mut parts = spec.split(' ');
    let to: SocketAddr = parts.next().unwrap().parse().unwrap();
    let path = parts.next().unwrap();
    let hex = parts.next().unwrap();
    let body: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: bridge\r\nContent-Type: application/pairing+tlv8\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    let batch: Arc<Vec<u8>> = Arc::new(request.repeat(BATCH));
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..ATTACKERS)
        .map(|_| {
            let (stop, answered, batch) = (stop.clone(), answered.clone(), batch.clone());
            thread::spawn(move || flood(to, &batch, &stop, &answered))
        })
        .collect();
    // Until the parent closes our stdin.
    let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    println!("answered {}", answered.load(Ordering::Relaxed));
}

fn flood(to: SocketAddr, batch: &[u8], stop: &AtomicBool, answered: &AtomicU64) {
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut socket) = TcpStream::connect(to) else {
            thread::sleep(Duration::from_millis(10));
            continue;
        };
        let mut reader = socket.try_clone().unwrap();
        reader
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let d = done.clone();
        // Reads the answers so that the bridge never waits on a full socket.
        let counter = Arc::new(AtomicU64::new(0));
        let c = counter.clone();
        let drain = thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            while !d.load(Ordering::Relaxed) {
                match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        let answers = buf[..n].windows(9).filter(|w| w == b"HTTP/1.1 ").count();
                        c.fetch_add(answers as u64, Ordering::Relaxed);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                    Err(_) => break,
                }
            }
        });
        while !stop.load(Ordering::Relaxed) {
            if socket.write_all(batch).is_err() {
                break;
            }
        }
        done.store(true, Ordering::Relaxed);
        let _ = socket.shutdown(std::net::Shutdown::Both);
        let _ = drain.join();
        answered.fetch_add(counter.load(Ordering::Relaxed), Ordering::Relaxed);
    }
}

/// A pair-verify M1: State 1 and an X25519 public key.
fn verify_m1() -> Vec<u8> {
    let mut w = Writer::new();
    w.put_u8(TlvType::STATE, 1)
        .put(TlvType::PUBLIC_KEY, &[9u8; 32]);
    w.into_vec()
}

/// A pair-setup M1: State 1, Method pair-setup.
fn setup_m1() -> Vec<u8> {
    let mut w = Writer::new();
    w.put_u8(TlvType::STATE, 1).put_u8(TlvType::METHOD, 0);
    w.into_vec()
}

/// Prints one scenario's figures and holds them to the suite's bounds: the flood reached the
/// bridge, the flooded p99 (see [`assert_p99`]), and the stream kept 90 % of its pictures.
fn report(
    title: &str,
    what: &str,
    unit: &str,
    (quiet, quiet_fps): (&mut [Duration], f64),
    (loud, loud_fps): (&mut [Duration], f64),
    answered: u64,
) {
    let (q50, q99, qmax) = percentiles(quiet);
    let (l50, l99, lmax) = percentiles(loud);
    println!(
        "{title}: {ATTACKERS} peers, {answered} M1s answered in {FLOOD:?}\n\
         {what} quiet p50 {} p99 {} max {} | flooded p50 {} p99 {} max {} ({} {unit})\n\
         stream {quiet_fps:.1} fps quiet, {loud_fps:.1} fps flooded",
        ms(q50),
        ms(q99),
        ms(qmax),
        ms(l50),
        ms(l99),
        ms(lmax),
        loud.len()
    );
    assert!(answered > 0, "the flood reached the bridge");
    assert_p99(l99, q99);
    assert!(
        loud_fps >= 0.9 * quiet_fps.min(30.0),
        "the stream fell to {loud_fps:.1} fps from {quiet_fps:.1}"
    );
}

/// The flooded p99 stays under 5 ms (issue #17's target), or, on a machine whose quiet p99 is
/// already above half of that (a shared 2-core CI host), under twice the quiet p99 measured in
/// the same run: the flood must not be what slows the calls down.
fn assert_p99(flooded: Duration, quiet: Duration) {
    let bound = P99_TARGET.max(quiet * 2);
    assert!(
        flooded < bound,
        "flooded p99 {} (quiet {}, bound {})",
        ms(flooded),
        ms(quiet),
        ms(bound)
    );
}

/// The flooded p99 this suite is held to.
const P99_TARGET: Duration = Duration::from_millis(5);

/// p50, p99 and max of `samples`.
fn percentiles(samples: &mut [Duration]) -> (Duration, Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99), at(1.0))
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// Times `op` every [`READ_EVERY`] for `how_long`.
fn sample(how_long: Duration, mut op: impl FnMut()) -> Vec<Duration> {
    let end = Instant::now() + how_long;
    let mut out = Vec::new();
    while Instant::now() < end {
        let t = Instant::now();
        op();
        out.push(t.elapsed());
        thread::sleep(READ_EVERY.saturating_sub(t.elapsed()));
    }
    out
}

/// A live 1280x720@30 stream of the camera `aid` on a verified connection, kept alive by RTCP.
struct Stream {
    receiver: Receiver,
    _ping: RtcpPinger,
    _conn: Conn,
}

impl Stream {
    fn start(me: &Identity, acc: &PairedAccessory, addr: SocketAddr, aid: u64) -> Self {
        let mut c = Conn::open(addr);
        c.pair_verify(me, acc).unwrap();
        let services = stream_services(&mut c, aid);
        let receiver = Receiver::start();
        let resp = setup_endpoints(&mut c, &services[0], [0x5A; 16], receiver.port);
        assert_eq!(resp.status, SetupStatus::SUCCESS);
        let ping = RtcpPinger::start(accessory_addr(&resp));
        let (code, body) = select(
            &mut c,
            &services[0],
            &selected([0x5A; 16], SessionCommand::START, (1280, 720, 30), 2000),
        );
        assert_eq!(code, 204, "{body}");
        assert!(
            receiver.wait_for_packets(30, Duration::from_secs(15)),
            "the stream sends nothing"
        );
        Self {
            receiver,
            _ping: ping,
            _conn: c,
        }
    }

    /// Pictures a second over `how_long`, from now.
    fn fps_over(&self, how_long: Duration, during: impl FnOnce()) -> f64 {
        let (f0, t0) = (self.receiver.frames(), Instant::now());
        during();
        let frames = self.receiver.frames() - f0;
        let secs = t0.elapsed().as_secs_f64().max(how_long.as_secs_f64() / 2.0);
        frames as f64 / secs
    }
}

#[test]
fn pair_verify_floods_leave_a_verified_controller_and_a_stream_alone() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let bridge = Bridge::start();
    let me = Identity::new(1);
    let acc = Conn::open(bridge.hap)
        .pair_setup(&me, SETUP_CODE, SrpPadding::Strip)
        .unwrap();
    let mut c = Conn::open(bridge.hap);
    c.pair_verify(&me, &acc).unwrap();
    let (_, db) = c.json("GET", "/accessories", None);
    let aid = aid_named(&db, "Demo Camera").unwrap();
    let (_, iid) = find_char(&db, aid, "85", "22").unwrap();
    let read = format!("/characteristics?id={aid}.{iid}");
    let stream = Stream::start(&me, &acc, bridge.hap, aid);

    let mut quiet = Vec::new();
    let quiet_fps = stream.fps_over(Duration::from_secs(3), || {
        quiet = sample(Duration::from_secs(3), || {
            assert_eq!(c.json("GET", &read, None).0, 200);
        });
    });
    let flood = Flood::start(bridge.hap, "/pair-verify", verify_m1());
    let mut loud = Vec::new();
    let loud_fps = stream.fps_over(FLOOD, || {
        loud = sample(FLOOD, || {
            assert_eq!(c.json("GET", &read, None).0, 200);
        });
    });
    let answered = flood.stop();
    report(
        "pair-verify flood",
        "verified reads",
        "reads",
        (&mut quiet, quiet_fps),
        (&mut loud, loud_fps),
        answered,
    );
}

#[test]
fn pair_setup_floods_of_an_unpaired_bridge_leave_the_api_and_a_stream_alone() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let bridge = Bridge::start();
    // The stream comes from a standalone camera with its own pairing; the bridge stays unpaired
    // and takes the flood.
    let (code, body) = bridge.api_post(
        "/api/v1/homekit/cameras",
        &json!({"id": "porch", "name": "Porch", "source": "test-pattern", "mode": "standalone"})
            .to_string(),
    );
    assert_eq!(code, 201, "{body}");
    let (addr, setup_code) = bridge.standalone_server("porch", "Porch", 0);
    let me = Identity::new(2);
    let acc = Conn::open(addr)
        .pair_setup(&me, &setup_code, SrpPadding::Strip)
        .unwrap();
    let stream = Stream::start(&me, &acc, addr, 1);
    let status = || {
        let (code, body) = bridge.api_get("/api/v1/homekit/status");
        assert_eq!(code, 200, "{body}");
        assert_eq!(body["paired"], false);
    };

    let mut quiet = Vec::new();
    let quiet_fps = stream.fps_over(Duration::from_secs(3), || {
        quiet = sample(Duration::from_secs(3), status);
    });
    let flood = Flood::start(bridge.hap, "/pair-setup", setup_m1());
    let mut loud = Vec::new();
    let loud_fps = stream.fps_over(FLOOD, || {
        loud = sample(FLOOD, status);
    });
    let answered = flood.stop();
    report(
        "pair-setup flood (unpaired)",
        "admin API status",
        "calls",
        (&mut quiet, quiet_fps),
        (&mut loud, loud_fps),
        answered,
    );
    // The flood left the bridge pairable: the owner pairs with the right code (from the same
    // loopback address as the flood, so once its pair-setup bucket has a token again).
    let owner = Identity::new(3);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match Conn::open(bridge.hap).pair_setup(&owner, SETUP_CODE, SrpPadding::Strip) {
            Ok(_) => break,
            Err(hap_proto::Error::Pairing(TlvError::BUSY)) if Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(300));
            }
            Err(e) => panic!("the owner cannot pair after the flood: {e:?}"),
        }
    }
}
