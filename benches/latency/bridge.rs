//! The whole bridge as a pipeline (issue 4): the `hap-bridge` binary with one camera on the
//! bench's RTSP source, driven over HAP by hap-proto's controller exactly as iOS drives it:
//! pair-setup, pair-verify, Setup Endpoints (the receiver's address and keys), then
//! Selected RTP Stream Configuration Start. The warm origin is the moment the Start write is
//! sent (the camera is `always_on`, its hub connected and holding a GOP); the cold origin is
//! the process spawn with a lazy camera (pairing, the RTSP connect and the first IDR included).
//! A thread keeps the HAP connection open and sends SRTCP receiver reports every 0.5 s, as iOS
//! does, so the stream is not ended for RTCP silence (HAP §7.9).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use hap_proto::camera::SessionCommand;
use hap_proto::controller::setup::SrpPadding;
use media::srtp::{SrtpSuite, decode_params};

use crate::camera_util::{self, RtcpPinger, StreamService};
use crate::controller::{Conn, Identity};
use crate::pipeline::{Pipeline, Running, Target};

/// The bridge over HAP, streaming at `size` (passthrough when it is the source's size).
pub(crate) struct HapBridge {
    pub(crate) size: (u16, u16),
    pub(crate) mode: &'static str,
    /// How long an always-on camera gets to connect and fill its GOP before a warm start.
    pub(crate) warm_up: Duration,
}

impl Pipeline for HapBridge {
    fn name(&self) -> String {
        format!(
            "bridge over HAP, {} {}x{}",
            self.mode, self.size.0, self.size.1
        )
    }

    fn warm_start(&self) -> bool {
        true
    }

    fn start(&self, t: &Target, warm: bool) -> Running {
        let bridge = spawn_bridge(&t.source_url, warm);
        if warm {
            std::thread::sleep(self.warm_up);
        }
        let key = decode_params(SrtpSuite::AesCm128HmacSha1_80, &t.srtp_params).unwrap();
        stream_to(&bridge, t.dest, &key.key, &key.salt, self.size);
        bridge.running
    }
}

/// A started bridge process.
pub(crate) struct Bridge {
    pub(crate) running: Running,
    pub(crate) hap: SocketAddr,
}

/// Starts `hap-bridge` with one camera on `source_url` in a fresh data directory.
pub(crate) fn spawn_bridge(source_url: &str, always_on: bool) -> Bridge {
    static RUN: AtomicU32 = AtomicU32::new(0);
    let dir: PathBuf = std::env::temp_dir().join(format!(
        "latency-bridge-{}-{}",
        std::process::id(),
        RUN.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("bridge.toml");
    std::fs::write(
        &config,
        format!(
            "[bridge]\nmdns_interfaces = [\"lo\"]\n\n[[cameras]]\nid = \"bench\"\n\
             name = \"Bench Camera\"\nsource = \"{source_url}\"\nalways_on = {always_on}\n"
        ),
    )
    .unwrap();
    // A port the OS picks, handed to the bridge.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hap-bridge"));
    cmd.arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.join("state"))
        .args(["--hap-port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--api-addr", "127.0.0.1:0", "--setup-code", SETUP_CODE])
        .env("RUST_LOG", "warn");
    let running = Running::spawn(cmd, None);
    let hap = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect_timeout(&hap, Duration::from_millis(200)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the bridge does not listen on {hap}:\n{}",
            running.log_tail()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    Bridge { running, hap }
}

/// Pairs, sets a stream up to `dest` and starts it; the warm origin is set just before the
/// Start write. The HAP connection and the RTCP keep-alive live on a thread until the bridge
/// closes the connection (it exits).
pub(crate) fn stream_to(
    bridge: &Bridge,
    dest: SocketAddr,
    key: &[u8],
    salt: &[u8],
    size: (u16, u16),
) {
    let me = Identity::new(1);
    // One pairing per bridge process: later streams verify with the same identity.
    let acc = match PAIRED.with(|p| p.borrow().get(&bridge.hap).cloned()) {
        Some(acc) => acc,
        None => {
            let acc = Conn::open(bridge.hap)
                .pair_setup(&me, SETUP_CODE, SrpPadding::Strip)
                .unwrap();
            PAIRED.with(|p| p.borrow_mut().insert(bridge.hap, acc.clone()));
            acc
        }
    };
    let mut c = Conn::open(bridge.hap);
    c.pair_verify(&me, &acc).unwrap();
    let (code, db) = c.json("GET", "/accessories", None);
    assert_eq!(code, 200);
    let aid = db["accessories"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| {
            a["services"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["type"] == "110")
        })
        .and_then(|a| a["aid"].as_u64())
        .expect("a camera accessory");
    let services = camera_util::stream_services(&mut c, aid);
    let free: StreamService = *services
        .iter()
        .find(|s| {
            camera_util::streaming_status(&mut c, s)
                == hap_proto::camera::StreamingStatus::AVAILABLE
        })
        .expect("a free stream service");
    let session: [u8; 16] = rand_session();
    let resp = camera_util::setup_endpoints_with(&mut c, &free, session, dest, key, salt);
    assert_eq!(resp.status, hap_proto::camera::SetupStatus::SUCCESS);
    let pinger = RtcpPinger::start_with(camera_util::accessory_addr(&resp), key, salt);
    let start = camera_util::selected(session, SessionCommand::START, (size.0, size.1, 30), 2000);
    *bridge.running.session_start.lock().unwrap() = Some(Instant::now());
    let (code, body) = camera_util::select(&mut c, &free, &start);
    assert_eq!(code, 204, "Start refused: {body}");
    std::thread::spawn(move || {
        let _pinger = pinger;
        while !c.closed_within(Duration::from_millis(500)) {}
    });
}

fn rand_session() -> [u8; 16] {
    use std::hash::{BuildHasher as _, RandomState};
    let a = RandomState::new().hash_one(Instant::now()).to_le_bytes();
    let b = RandomState::new().hash_one(a).to_le_bytes();
    let mut s = [0u8; 16];
    s[..8].copy_from_slice(&a);
    s[8..].copy_from_slice(&b);
    s
}

thread_local! {
    static PAIRED: std::cell::RefCell<std::collections::HashMap<SocketAddr, hap_proto::controller::setup::PairedAccessory>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// The bridge's setup code in the bench.
const SETUP_CODE: &str = "031-45-154";

/// CPU and memory of the bridge with 0, 1 and 2 live passthrough 1080p streams of an
/// always-on camera (issue 4's targets: 2 streams under 50 % of one core), each measured
/// over `window` after the streams settled. Returns the table rows.
pub(crate) fn load_rows(source_url: &str, window: Duration) -> Vec<String> {
    let bridge = spawn_bridge(source_url, true);
    std::thread::sleep(Duration::from_secs(2));
    let pid = bridge.running.child.id();
    let key = *b"bridge-load-key!";
    let salt = *b"bridge-load-sa";
    let mut sinks = Vec::new();
    let mut rows = Vec::new();
    for streams in 0..=2 {
        if streams > 0 {
            let sink = Sink::start();
            stream_to(&bridge, sink.addr, &key, &salt, (1920, 1080));
            sinks.push(sink);
            std::thread::sleep(Duration::from_secs(2));
        }
        let before: Vec<u64> = sinks.iter().map(Sink::bytes).collect();
        let (t0, c0) = (Instant::now(), crate::cpu_ticks(pid));
        std::thread::sleep(window);
        let (t1, c1) = (Instant::now(), crate::cpu_ticks(pid));
        let secs = (t1 - t0).as_secs_f64();
        let cpu = (c1 - c0) as f64 / crate::clock_ticks() as f64 / secs * 100.0;
        let kbps: Vec<String> = sinks
            .iter()
            .zip(&before)
            .map(|(s, b)| format!("{:.0}", (s.bytes() - b) as f64 * 8.0 / secs / 1000.0))
            .collect();
        assert!(
            sinks.iter().zip(&before).all(|(s, b)| s.bytes() > *b),
            "a stream stopped during the measurement:\n{}",
            bridge.running.log_tail()
        );
        rows.push(format!(
            "| {streams} | {cpu:.1} | {:.1} | {:.1} | {} |",
            rss_kib(pid, "VmRSS:") as f64 / 1024.0,
            rss_kib(pid, "VmHWM:") as f64 / 1024.0,
            if kbps.is_empty() {
                "-".to_owned()
            } else {
                kbps.join(", ")
            },
        ));
    }
    bridge.running.stop();
    rows
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A UDP socket that only counts what arrives (the load figures need no decoding).
struct Sink {
    addr: SocketAddr,
    bytes: std::sync::Arc<std::sync::atomic::AtomicU64>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Sink {
    fn start() -> Self {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let bytes = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (b, s) = (bytes.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !s.load(Ordering::Relaxed) {
                if let Ok(n) = socket.recv(&mut buf) {
                    b.fetch_add(n as u64, Ordering::Relaxed);
                }
            }
        });
        Self { addr, bytes, stop }
    }

    fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
