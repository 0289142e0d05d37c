//! Motion detection benchmark (issue #20): sequences encoded at bench time by an encoder that is
//! not ours (libx264 through ffmpeg, High profile, CABAC, 2 s GOP, no B-frames as camera
//! substreams send), fed picture by picture through the bridge's own analysis (media's
//! `motion::watch::Analyser`: decode, pick 5 pictures a second, downscale, detect).
//!
//! Rows:
//! - **noisy static, 10 min** (640x360@15): a static scene with sensor noise, a slow brightness
//!   wave (60 s period) and a sudden ±0.2 brightness switch every 60 s: motion events (target 0);
//! - **100 crossings** (640x360@15): an 80x48 box (1.7 % of the picture) crossing in 3 s, then 3 s
//!   still, 100 times: crossings missed (target 0), detection delay p50/p95 (source time from the
//!   first moved picture to the first analysed picture with motion), motion outside crossings;
//! - **cost** per source (640x360@15 substream, 1920x1080@30 main stream): processing time per
//!   second of video = % of one core for a live camera (decode + analysis, one thread).
//!
//! `cargo bench --bench motion` (needs ffmpeg with libx264; sequences are cached in
//! `target/bench-media/`). `MOTION_BENCH_SHORT=1` runs 60 s sequences (a quick look).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "motion/source.rs"]
mod source;

use std::time::{Duration, Instant};

use media::motion::MotionSettings;
use media::motion::watch::{Analyser, WatchConfig};

/// Analysed pictures a second (the bridge's default).
const FPS: f32 = 5.0;
/// Crossing period: 3 s moving, 3 s still.
const PERIOD_S: f64 = 6.0;
/// Moving part of each period.
const MOVE_S: f64 = 3.0;
/// The first crossing starts here (the detector has a background first).
const FIRST_MOVE_S: f64 = 3.0;
/// After a crossing ends, motion may go on this long while the box (and the place it left)
/// joins the background; later motion is counted as false.
const SETTLE_S: f64 = 2.5;

fn main() {
    let short = std::env::var_os("MOTION_BENCH_SHORT").is_some();
    let long_s = if short { 60 } else { 600 };
    let dir = source::bench_dir();
    println!(
        "motion bench: {} s sequences, analysis at {FPS} pictures/s, machine: {}",
        long_s,
        source::machine()
    );

    // 1. Noisy static scene with lighting changes.
    let stat = source::noisy_static(&dir, long_s);
    let run = analyse(&stat);
    println!(
        "| noisy static 640x360@15, {long_s} s (ramps, a ±0.2 switch every 60 s) | motion events: {} | analysed: {} | {} |",
        run.events(),
        run.analyses.len(),
        run.cost(long_s as f64)
    );

    // 2. Crossings.
    let crossings_n = long_s / PERIOD_S as u32;
    let cross = source::crossings(&dir, 640, 360, 15, crossings_n);
    let run = analyse(&cross);
    let (missed, delays, false_events) = score_crossings(&run, crossings_n);
    let pct = |q: f64| percentile(&delays, q) * 1000.0;
    println!(
        "| {crossings_n} crossings 640x360@15 | missed: {missed} | delay p50 {:.0} ms p95 {:.0} ms | motion outside crossings: {false_events} | {} |",
        pct(0.5),
        pct(0.95),
        run.cost(f64::from(crossings_n) * PERIOD_S + FIRST_MOVE_S)
    );

    // 3. A 1080p main stream (cost).
    let n = 10;
    let big = source::crossings(&dir, 1920, 1080, 30, n);
    let run = analyse(&big);
    let (missed, delays, _) = score_crossings(&run, n);
    println!(
        "| {n} crossings 1920x1080@30 (main stream) | missed: {missed} | delay p50 {:.0} ms | {} |",
        percentile(&delays, 0.5) * 1000.0,
        run.cost(f64::from(n) * PERIOD_S + FIRST_MOVE_S)
    );
}

/// What one sequence gave.
struct Run {
    /// (source time in s, motion) per analysed picture.
    analyses: Vec<(f64, bool)>,
    decoded: u64,
    decode: Duration,
    analysis: Duration,
    /// Wall time of the whole feed (decode + analysis + splitting).
    wall: Duration,
}

impl Run {
    /// Rising edges of motion: what would become events (with no cooldown).
    fn events(&self) -> usize {
        let mut last = false;
        let mut n = 0;
        for &(_, m) in &self.analyses {
            n += usize::from(m && !last);
            last = m;
        }
        n
    }

    /// Processing time per second of video, in % of one core, and its parts.
    fn cost(&self, video_s: f64) -> String {
        let per = |d: Duration, n: u64| d.as_secs_f64() * 1000.0 / n.max(1) as f64;
        format!(
            "cost {:.2} % of a core (decode {:.2} ms x {} pictures, analysis {:.2} ms x {})",
            (self.decode + self.analysis).as_secs_f64() / video_s * 100.0,
            per(self.decode, self.decoded),
            self.decoded,
            per(self.analysis, self.analyses.len() as u64),
            self.analyses.len()
        )
    }
}

fn analyse(seq: &source::Sequence) -> Run {
    let mut analyser = Analyser::new(WatchConfig {
        settings: MotionSettings::default(),
        fps: FPS,
    })
    .unwrap();
    let t0 = Instant::now();
    let mut analyses = Vec::new();
    for au in &seq.access_units {
        if let Some(report) = analyser.push(au) {
            analyses.push((
                report.stamp.timestamp_90k as f64 / 90_000.0,
                report.analysis.motion,
            ));
        }
    }
    let stats = analyser.stats();
    Run {
        analyses,
        decoded: stats.decoded,
        decode: stats.decode_time,
        analysis: stats.analysis_time,
        wall: t0.elapsed(),
    }
}

/// Missed crossings, detection delays (s), and motion events starting outside every crossing's
/// window (its moving time plus [`SETTLE_S`]).
fn score_crossings(run: &Run, n: u32) -> (u32, Vec<f64>, usize) {
    let mut missed = 0;
    let mut delays = Vec::new();
    for k in 0..n {
        let start = FIRST_MOVE_S + f64::from(k) * PERIOD_S;
        match run
            .analyses
            .iter()
            .find(|&&(t, m)| m && t >= start - 0.01 && t < start + MOVE_S)
        {
            Some(&(t, _)) => delays.push((t - start).max(0.0)),
            None => missed += 1,
        }
    }
    let in_window = |t: f64| {
        let since = t - FIRST_MOVE_S;
        since >= -0.01 && since.rem_euclid(PERIOD_S) < MOVE_S + SETTLE_S
    };
    let mut last = false;
    let mut false_events = 0;
    for &(t, m) in &run.analyses {
        if m && !last && !in_window(t) {
            false_events += 1;
        }
        last = m;
    }
    let _ = run.wall;
    (missed, delays, false_events)
}

fn percentile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[((s.len() - 1) as f64 * q).round() as usize]
}
