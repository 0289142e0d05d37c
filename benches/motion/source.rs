//! The motion bench's sequences: generated with ffmpeg's lavfi sources and libx264 (High
//! profile, CABAC, a keyframe every 2 s, no B-frames, a camera's bit rate), cached by name, read
//! back as access units.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use media::frame::{AccessUnit, ParameterSets};
use media::h264::{AccessUnitSplitter, annex_b_to_bytes};

/// A sequence as the analyser takes it.
pub(crate) struct Sequence {
    pub(crate) access_units: Vec<Arc<AccessUnit>>,
}

/// Where sequences are cached.
pub(crate) fn bench_dir() -> PathBuf {
    let dir = test_support::util::repo_root().join("target/bench-media");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// CPU model and count, for the report.
pub(crate) fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let n = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpu}, {n} CPUs")
}

/// The background every sequence shares: bars with sensor noise changing every picture.
fn background(w: u32, h: u32, fps: u32, seconds: u32) -> String {
    format!("smptebars=size={w}x{h}:rate={fps}:duration={seconds},noise=alls=12:allf=t")
}

/// 640x360@15: noisy static scene, brightness wave of ±0.06 over 60 s, and a ±0.2 switch
/// every 60 s (on for 30 s), like lights or an IR cut filter.
pub(crate) fn noisy_static(dir: &Path, seconds: u32) -> Sequence {
    let filter = format!(
        "{},eq=eval=frame:brightness='0.06*sin(2*PI*t/60)-0.2*gte(mod(t,60),30)'",
        background(640, 360, 15, seconds)
    );
    encode(
        dir,
        &format!("static-{seconds}s"),
        &filter,
        (640, 360),
        15,
        seconds,
    )
}

/// `n` crossings of an 80x48 white box (top band), each 3 s moving then 3 s still, starting at
/// 3 s; `w`x`h`@`fps` (the box is scaled with the picture).
pub(crate) fn crossings(dir: &Path, w: u32, h: u32, fps: u32, n: u32) -> Sequence {
    let seconds = 3 + 6 * n;
    let (bw, bh) = (80 * w / 640, 48 * h / 360);
    // Period 6 s: from phase 0 to 3 the box moves (left to right on even periods, back on odd
    // ones), from 3 to 6 it stays. Shifted by 3 s so the sequence starts still.
    let x = "(W-w)*if(eq(mod(floor((t+3)/6),2),0),min(mod(t+3,6)/3,1),1-min(mod(t+3,6)/3,1))";
    let filter = format!(
        "{bg}[bg];color=c=white:size={bw}x{bh}:rate={fps}:duration={seconds}[box];\
         [bg][box]overlay=x='{x}':y={y}:eval=frame",
        bg = background(w, h, fps, seconds),
        y = 40 * h / 360,
    );
    encode(
        dir,
        &format!("cross-{w}x{h}-{fps}-{n}"),
        &filter,
        (w, h),
        fps,
        seconds,
    )
}

/// Bit rate a camera would use for a `w`x`h` stream: 1 Mbit/s for a 640x360 substream, 4 Mbit/s
/// for 1080p (as in issue #18's measurements), in proportion between.
fn camera_bitrate(w: u32, h: u32) -> String {
    let kbps = (u64::from(w) * u64::from(h) * 4000 / (1920 * 1080)).max(1000);
    format!("{kbps}k")
}

fn encode(
    dir: &Path,
    name: &str,
    filter: &str,
    (w, h): (u32, u32),
    fps: u32,
    seconds: u32,
) -> Sequence {
    let kbps = camera_bitrate(w, h);
    let path = dir.join(format!("motion-{name}-{kbps}.264"));
    if !path.exists() {
        let t0 = Instant::now();
        let tmp = path.with_extension("tmp.264");
        let status = Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-loglevel",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
            ])
            .arg(filter)
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-profile:v",
                "high",
            ])
            .args([
                "-x264-params",
                &format!("keyint={}:bframes=0:scenecut=0", 2 * fps),
            ])
            .args(["-b:v", &kbps, "-maxrate", &kbps, "-bufsize", &kbps])
            .args([
                "-pix_fmt",
                "yuv420p",
                "-t",
                &seconds.to_string(),
                "-f",
                "h264",
            ])
            .arg(&tmp)
            .status()
            .expect("ffmpeg (apt-get install ffmpeg)");
        assert!(status.success(), "ffmpeg failed for {name}");
        std::fs::rename(&tmp, &path).unwrap();
        println!("generated {} in {:.0?}", path.display(), t0.elapsed());
    }
    read(&path, fps)
}

/// Splits an Annex B file into access units as a source would hand them out: SPS/PPS carried
/// aside, AUD and SEI dropped, one picture each `1/fps` s.
fn read(path: &Path, fps: u32) -> Sequence {
    let data = Bytes::from(std::fs::read(path).unwrap());
    let mut splitter = AccessUnitSplitter::new();
    let mut groups = Vec::new();
    for nal in annex_b_to_bytes(&data) {
        if let Some(g) = splitter.push(nal) {
            groups.push(g);
        }
    }
    groups.extend(splitter.flush());
    let (mut sps, mut pps) = (None, None);
    let mut access_units = Vec::new();
    let now = Instant::now();
    for group in groups {
        let mut nals = Vec::new();
        for nal in group {
            match nal.first().map(|h| h & 0x1f) {
                Some(7) => sps = Some(nal),
                Some(8) => pps = Some(nal),
                Some(6 | 9) => {}
                _ => nals.push(nal),
            }
        }
        if nals.is_empty() {
            continue;
        }
        let is_idr = nals.iter().any(|n| n[0] & 0x1f == 5);
        let index = access_units.len() as u64;
        access_units.push(Arc::new(AccessUnit {
            nals,
            is_idr,
            timestamp_90k: index * 90_000 / u64::from(fps),
            received_at: now,
            parameter_sets: match (&sps, &pps, is_idr) {
                (Some(s), Some(p), true) => Some(Arc::new(ParameterSets {
                    sps: s.clone(),
                    pps: p.clone(),
                })),
                _ => None,
            },
        }));
    }
    Sequence { access_units }
}
