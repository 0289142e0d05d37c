//! Latency, first-frame time, CPU and memory of the media pipeline, side by side with the old
//! one-ffmpeg-per-stream pipeline, all fed by the same live RTSP source in one run (issue 6).
//!
//! ```text
//! cargo bench --bench latency       # ~3 min
//! LATENCY_BENCH_SECONDS=15          # measuring window per pipeline
//! LATENCY_BENCH_START_RUNS=3        # short start-up runs per pipeline (first-frame medians)
//! LATENCY_BENCH_ONLY=transcode      # only pipelines whose name contains this
//! LATENCY_BENCH_VERBOSE=1           # show the pipelines' own output (hap-bridge: its figures)
//! ```
//!
//! # How it measures (identically for every pipeline, from outside)
//!
//! - **Source.** At start the bench encodes a 10 s 1920x1080@30 H.264 clip with openh264 (IDR
//!   every 60 pictures, 4 Mbit/s). Every picture shows its index as a row of 24 large
//!   black/white blocks (12 bits, then their complements), which survive re-encoding and
//!   scaling. A small RTSP server inside the bench (TCP interleaved, RFC 2326 §10.12) plays
//!   the clip in a loop on a fixed 30 fps schedule like one live camera encoder: clients join
//!   at the next picture, mid-GOP. It records when it finished writing each picture's packets.
//! - **Receiver.** A UDP socket in the bench receives the pipeline's SRTP; one thread only
//!   receives and timestamps packets, another decrypts them (`media::srtp`), depacketizes
//!   (RFC 6184), decodes each access unit with openh264 and reads the index blocks.
//! - **Per-frame added latency** = receive time of a picture's last (marker-bit) packet −
//!   the time the source finished sending that picture (matched by index), over the
//!   measuring window; p50/p95/p99.
//! - **First packet / first decodable frame** = first SRTP packet that authenticates / first
//!   picture that decodes with valid index blocks. *Warm*: from the moment `hap-bridge stream
//!   --warm-up` prints `session start` (its hub has been connected and holds a GOP, as an
//!   always-on hub in the bridge). *Cold*: from process spawn (connect, DESCRIBE, SETUP, PLAY,
//!   wait for an IDR). Medians over `LATENCY_BENCH_START_RUNS` (3) short runs (warm: plus the
//!   main run). "age" is how old the first picture of the main run is (its latency as above).
//! - **CPU** = utime + stime of the pipeline process from `/proc/PID/stat` over the measuring
//!   window, in % of one core; **peak RSS** = `VmHWM` from `/proc/PID/status`.
//!
//! Each pipeline runs alone (one after another against the same server), so they do not
//! compete for the cores. The measuring window opens 2 s after the first decodable picture
//! (the passthrough start-up burst of the prebuffered GOP is excluded).
//!
//! New pipelines implement `pipeline::Pipeline`. `bridge::HapBridge` is the whole bridge: the
//! binary with an always-on camera on the same source, driven over HAP by hap-proto's
//! controller (its warm origin is the Selected RTP Stream Configuration Start write). After the
//! table, the bridge's CPU and memory with 0, 1 and 2 live 1080p streams (`bridge::load_rows`).
// A bench: a failed step is the bench failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "latency/bridge.rs"]
mod bridge;
#[path = "latency/clip.rs"]
mod clip;
#[path = "latency/pipeline.rs"]
mod pipeline;
#[path = "latency/receiver.rs"]
mod receiver;
#[path = "latency/server.rs"]
mod server;

// The e2e tests' HAP controller and camera streaming helpers (the test-support crate).
use test_support::{camera_util, controller};

use std::time::{Duration, Instant};

use media::srtp::encode_params;
use pipeline::{Ffmpeg, HapBridgeStream, Pipeline, Running, Target};
use receiver::Receiver;
use server::RtspServer;

const KEY: [u8; 16] = *b"latency-bench-k!";
const SALT: [u8; 14] = *b"latency-salt14";
/// Time between the first decodable picture and the measuring window.
const SETTLE: Duration = Duration::from_secs(2);
/// Limit for a pipeline's first picture.
const FIRST_FRAME_LIMIT: Duration = Duration::from_secs(20);

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not supported.
    let secs: u64 = env_or("LATENCY_BENCH_SECONDS", 15);
    let start_runs: usize = env_or("LATENCY_BENCH_START_RUNS", 3);
    let only = std::env::var("LATENCY_BENCH_ONLY").unwrap_or_default();
    println!("latency bench: encoding the 1080p30 source clip");
    let started = Instant::now();
    let clip = clip::encode();
    println!(
        "latency bench: clip of {} pictures encoded in {:.1} s",
        clip.frames.len(),
        started.elapsed().as_secs_f64()
    );
    let server = RtspServer::start(clip);
    let pipelines: Vec<Box<dyn Pipeline>> = vec![
        Box::new(HapBridgeStream {
            size: (1920, 1080),
            mode: "passthrough",
            warm_up_secs: 2.0,
        }),
        Box::new(HapBridgeStream {
            size: (1280, 720),
            mode: "transcode",
            warm_up_secs: 2.0,
        }),
        Box::new(bridge::HapBridge {
            size: (1920, 1080),
            mode: "passthrough",
            warm_up: Duration::from_secs(2),
        }),
        Box::new(bridge::HapBridge {
            size: (1280, 720),
            mode: "transcode",
            warm_up: Duration::from_secs(2),
        }),
        Box::new(Ffmpeg { copy: false }),
        Box::new(Ffmpeg { copy: true }),
    ];
    let mut rows = Vec::new();
    for p in pipelines.iter().filter(|p| p.name().contains(&only)) {
        println!("latency bench: {} ({secs} s)", p.name());
        let main = run(
            &server,
            &**p,
            p.warm_start(),
            Some(Duration::from_secs(secs)),
        );
        let mut starts = Starts::default();
        if let Some(f) = main.first_frame.filter(|_| main.warm) {
            starts.warm.push(f);
        }
        for i in 0..start_runs {
            println!("latency bench: {} start {}/{start_runs}", p.name(), i + 1);
            if let Some(f) = run(&server, &**p, false, None).first_frame {
                starts.cold.push(f);
            }
            if p.warm_start() && i + 1 < start_runs {
                let r = run(&server, &**p, true, None);
                starts.warm.extend(r.first_frame);
            }
        }
        rows.push((p.name(), main, starts));
    }
    print_table(&rows, secs, start_runs);
    if "bridge load".contains(&only) || only.is_empty() {
        println!("latency bench: bridge load with 0, 1, 2 live 1080p streams ({secs} s each)");
        let load = bridge::load_rows(&server.url, Duration::from_secs(secs));
        println!();
        println!(
            "The bridge binary with one always-on camera on the same source, 0, 1 and 2 live \
             passthrough 1920x1080 streams over HAP (each kept alive with RTCP):"
        );
        println!(
            "| live streams | CPU (% of a core) | RSS (MB) | peak RSS (MB) | stream rates (kbit/s) |"
        );
        println!("|---|---|---|---|---|");
        for row in load {
            println!("{row}");
        }
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// First-decodable-frame times of the start-up runs.
#[derive(Default)]
struct Starts {
    /// From a warm hub (session start), including the main run's.
    warm: Vec<Duration>,
    /// From process spawn.
    cold: Vec<Duration>,
}

/// One run's figures.
#[derive(Default)]
struct RunResult {
    /// Whether the origin is a warm-hub session start (else process spawn).
    warm: bool,
    first_packet: Option<Duration>,
    first_frame: Option<Duration>,
    first_frame_age: Option<Duration>,
    /// Sorted per-frame latencies in the window.
    latencies: Vec<Duration>,
    window: Duration,
    cpu_percent: f64,
    peak_rss_kib: u64,
    size: (usize, usize),
    /// Pictures in the window that did not decode or whose index did not read.
    unidentified: usize,
    /// RTP sequence gaps over the run.
    gaps: u64,
}

/// Starts `p`, waits for its first decodable picture, and with `window` measures it for that
/// long after [`SETTLE`].
fn run(server: &RtspServer, p: &dyn Pipeline, warm: bool, window: Option<Duration>) -> RunResult {
    let receiver = Receiver::start(&KEY, &SALT);
    let target = Target {
        source_url: server.url.clone(),
        dest: receiver.addr,
        srtp_params: encode_params(&KEY, &SALT).to_string(),
        ssrc: 0x0BE0_C4A5,
    };
    let running = p.start(&target, warm);
    let origin = if warm {
        running
            .wait_session_start(FIRST_FRAME_LIMIT)
            .unwrap_or_else(|| fail(&running, "no session start line"))
    } else {
        running.spawned
    };
    let deadline = Instant::now() + FIRST_FRAME_LIMIT;
    let first = loop {
        let found = {
            let r = receiver.received.lock().unwrap();
            r.arrivals
                .iter()
                .find_map(|a| a.index.map(|i| (a.at, i, a.size)))
        };
        if let Some(f) = found {
            break f;
        }
        if Instant::now() > deadline {
            fail(&running, "no decodable picture");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut result = RunResult {
        warm,
        size: first.2,
        first_frame: Some(first.0.saturating_duration_since(origin)),
        ..RunResult::default()
    };
    let mut span = None;
    if let Some(window) = window {
        std::thread::sleep(SETTLE);
        let pid = running.child.id();
        let (t0, c0) = (Instant::now(), cpu_ticks(pid));
        std::thread::sleep(window);
        let (t1, c1) = (Instant::now(), cpu_ticks(pid));
        result.window = t1 - t0;
        result.cpu_percent =
            (c1 - c0) as f64 / clock_ticks() as f64 / result.window.as_secs_f64() * 100.0;
        result.peak_rss_kib = peak_rss_kib(pid);
        span = Some((t0, t1));
    }
    running.stop();
    let received = receiver.finish();
    result.first_packet = received
        .first_packet
        .map(|t| t.saturating_duration_since(origin));
    result.first_frame_age = server
        .sent_time(first.1, first.0)
        .map(|sent| first.0.saturating_duration_since(sent));
    if let Some((t0, t1)) = span {
        for a in received.arrivals.iter().filter(|a| a.at >= t0 && a.at < t1) {
            match a.index.and_then(|i| server.sent_time(i, a.at)) {
                Some(sent) => result.latencies.push(a.at.saturating_duration_since(sent)),
                None => result.unidentified += 1,
            }
        }
        result.latencies.sort_unstable();
        result.gaps = received.gaps;
        if received.bad_srtp > 0 {
            println!("  warning: {} packets failed SRTP", received.bad_srtp);
        }
    }
    result
}

fn fail(running: &Running, what: &str) -> ! {
    panic!("{what}; its stderr:\n{}", running.log_tail())
}

/// utime + stime of `pid` in clock ticks (proc(5): fields 14 and 15).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state).
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// `VmHWM` of `pid` in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted.get(i).copied()
}

fn ms(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".into(), |d| format!("{:.1}", d.as_secs_f64() * 1e3))
}

fn median(mut v: Vec<Duration>) -> Option<Duration> {
    v.sort_unstable();
    v.get(v.len() / 2).copied()
}

fn print_table(rows: &[(String, RunResult, Starts)], secs: u64, start_runs: usize) {
    println!();
    println!(
        "Source: 1920x1080@30 H.264 over RTSP/TCP (local server, IDR every 2 s); {secs} s window \
         per pipeline; latency = source picture sent -> its last RTP packet received; first \
         frames: median (all runs), {start_runs} cold runs per pipeline."
    );
    println!(
        "| pipeline | output | fps | added latency p50 / p95 / p99 (ms) | first packet, warm hub (ms) | first decodable frame, warm hub (ms) | first decodable frame, cold (ms) | age of the first frame (ms) | CPU (% of a core) | peak RSS (MB) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (name, m, starts) in rows {
        let fps = m.latencies.len() as f64 / m.window.as_secs_f64().max(1e-9);
        let all = |v: &[Duration]| {
            let list: Vec<String> = v.iter().map(|d| ms(Some(*d))).collect();
            format!("{} ({})", ms(median(v.to_vec())), list.join(", "))
        };
        let (warm_packet, warm_frame) = if m.warm {
            (ms(m.first_packet), all(&starts.warm))
        } else {
            ("- (no hub)".into(), "- (no hub)".into())
        };
        println!(
            "| {name} | {}x{} | {fps:.1} | {} / {} / {} | {warm_packet} | {warm_frame} | {} | {} | {:.1} | {:.0} |",
            m.size.0,
            m.size.1,
            ms(percentile(&m.latencies, 0.50)),
            ms(percentile(&m.latencies, 0.95)),
            ms(percentile(&m.latencies, 0.99)),
            all(&starts.cold),
            ms(m.first_frame_age),
            m.cpu_percent,
            m.peak_rss_kib as f64 / 1024.0,
        );
        if m.unidentified > 0 || m.gaps > 0 {
            println!(
                "\n({name}: {} pictures in the window did not decode or identify; {} RTP sequence gaps)\n",
                m.unidentified, m.gaps
            );
        }
    }
}
