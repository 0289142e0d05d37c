//! Motion from a camera's own pictures: media's motion watcher on the camera's substream (the
//! smallest stream, when it has one) or main stream, its analyses turned into Motion Detected
//! through a [`MotionSink`] (the bridge's sensors, which own the reset and cap timers).
//!
//! The watcher's thread publishes each analysis on a `watch` channel (the newest wins, nothing
//! queues); a task on the runtime starts an event on the first motion (unless the camera's
//! cooldown since the last event's end is still running) and keeps it alive while motion goes
//! on, re-triggering well within the sensors' reset time (a third of it, at most every
//! [`EXTEND_EVERY`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use media::hub::Hub;
use media::motion::render::Rgb;
use media::motion::watch::{MotionWatcher, Report, WatchStats};
use tokio::sync::watch;

use crate::config::MotionDetection;

/// What motion detection needs of the camera's sensors (the bridge's `Sensors`, which own
/// Motion Detected and its timers).
pub(crate) trait MotionSink: Send + Sync {
    /// Whether camera `camera`'s Motion Detected is on and when its last run ended; `None`
    /// when the camera has no motion sensor (now).
    fn motion_state(&self, camera: &str) -> Option<MotionState>;
    /// Sets Motion Detected (starting or extending a run).
    fn trigger_motion(&self, camera: &str) -> Result<(), String>;
    /// How long Motion Detected stays on after the last trigger.
    fn motion_reset(&self) -> Duration;
}

/// A camera's Motion Detected as the sensors keep it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct MotionState {
    /// Motion Detected is on.
    pub(crate) active: bool,
    /// When the last run of motion ended.
    pub(crate) ended: Option<tokio::time::Instant>,
}

/// While motion goes on, Motion Detected is triggered again at most this often (each trigger
/// pushes the sensor's reset back), and at least three times per reset time.
pub(crate) const EXTEND_EVERY: Duration = Duration::from_secs(1);

/// A camera's motion figures over the process's life (they survive the camera's runtime being
/// rebuilt, so the metrics' counters never go back).
#[derive(Debug, Default)]
pub(crate) struct MotionTotals {
    /// Motion events started by the detector.
    pub(crate) events: AtomicU64,
    /// Pictures analysed.
    pub(crate) analysed: AtomicU64,
    /// Microseconds spent analysing (downscale + detector).
    pub(crate) analysis_us: AtomicU64,
    /// Microseconds spent decoding for the detector.
    pub(crate) decode_us: AtomicU64,
    /// Analyses with motion that started no event because of the cooldown.
    pub(crate) cooled: AtomicU64,
}

/// A camera's motion detection while it runs; stops when dropped.
pub(crate) struct MotionRuntime {
    watcher: MotionWatcher,
    task: tokio::task::JoinHandle<()>,
    /// `"substream"` or `"main"`.
    pub(crate) stream: &'static str,
    totals: Arc<MotionTotals>,
    motion_now: Arc<AtomicBool>,
    last_event: Arc<std::sync::Mutex<Option<SystemTime>>>,
    /// The watcher's counters already folded into `totals`.
    folded: std::sync::Mutex<WatchStats>,
}

/// What the admin API shows of a camera's detection.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct MotionStatus {
    /// The stream analysed.
    pub(crate) stream: &'static str,
    /// The detector saw motion in its last picture.
    pub(crate) motion_now: bool,
    /// Events started by the detector since the process started.
    pub(crate) events: u64,
    /// When the last one started (Unix seconds).
    pub(crate) last_event: Option<u64>,
    /// Pictures analysed since the process started.
    pub(crate) analysed: u64,
    /// Mean time per analysis (ms), decoding excluded.
    pub(crate) analysis_ms: f64,
    /// Mean decoding time per decoded picture (ms).
    pub(crate) decode_ms: f64,
    /// Size of the pictures analysed.
    pub(crate) source_size: Option<(u32, u32)>,
    /// The source's or decoder's last error.
    pub(crate) last_error: Option<String>,
    /// The last picture's figures.
    pub(crate) last: Option<LastAnalysis>,
}

/// The detector's figures for its last picture.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub(crate) struct LastAnalysis {
    /// Largest moving area, percent of the picture.
    pub(crate) area: f32,
    /// Scene noise (luma levels).
    pub(crate) noise: f32,
    /// The change a pixel needed (luma levels).
    pub(crate) threshold: f32,
    /// The picture was taken as a lighting change.
    pub(crate) lighting_change: bool,
}

impl MotionRuntime {
    /// Starts watching `hub` for camera `camera` as `settings` say.
    pub(crate) fn start(
        camera: &str,
        hub: &Hub,
        stream: &'static str,
        settings: &MotionDetection,
        sensors: Arc<dyn MotionSink>,
        totals: Arc<MotionTotals>,
    ) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| anyhow::anyhow!("camera {camera}: motion detection needs the runtime"))?;
        let (tx, rx) = watch::channel(None::<Report>);
        let watcher = MotionWatcher::start(hub, settings.watch_config(), move |report| {
            tx.send_replace(Some(report));
        })
        .map_err(|e| anyhow::anyhow!("camera {camera}: motion detection: {e}"))?;
        let motion_now = Arc::new(AtomicBool::new(false));
        let last_event = Arc::new(std::sync::Mutex::new(None));
        let task = runtime.spawn(events(
            camera.to_owned(),
            rx,
            sensors,
            Duration::from_secs(u64::from(settings.cooldown)),
            totals.clone(),
            motion_now.clone(),
            last_event.clone(),
        ));
        tracing::info!(camera, stream, "motion detection on");
        Ok(Self {
            watcher,
            task,
            stream,
            totals,
            motion_now,
            last_event,
            folded: std::sync::Mutex::new(WatchStats::default()),
        })
    }

    /// The last analysed picture with the zones and the changed area drawn.
    pub(crate) fn picture(&self) -> Option<Rgb> {
        self.watcher.view().map(|v| v.render())
    }

    /// The figures for the admin API (and folds the watcher's counters into the totals).
    pub(crate) fn status(&self) -> MotionStatus {
        let stats = self.fold();
        let totals = &self.totals;
        let analysed = totals.analysed.load(Ordering::Relaxed);
        let per = |us: u64, n: u64| {
            if n == 0 {
                0.0
            } else {
                us as f64 / n as f64 / 1000.0
            }
        };
        MotionStatus {
            stream: self.stream,
            motion_now: self.motion_now.load(Ordering::Relaxed),
            events: totals.events.load(Ordering::Relaxed),
            last_event: self
                .last_event
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                .map(|d| d.as_secs()),
            analysed,
            analysis_ms: per(stats.analysis_time.as_micros() as u64, stats.analysed),
            decode_ms: per(stats.decode_time.as_micros() as u64, stats.decoded),
            source_size: stats.source_size,
            last_error: stats.last_error,
            last: self.watcher.view().map(|v| LastAnalysis {
                area: v.analysis.area * 100.0,
                noise: v.analysis.noise,
                threshold: v.analysis.threshold,
                lighting_change: v.analysis.lighting_change,
            }),
        }
    }

    /// Adds what the watcher counted since the last call to the totals; returns its counters.
    pub(crate) fn fold(&self) -> WatchStats {
        let stats = self.watcher.stats();
        let mut folded = self
            .folded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let t = &self.totals;
        t.analysed
            .fetch_add(stats.analysed - folded.analysed, Ordering::Relaxed);
        t.analysis_us.fetch_add(
            (stats.analysis_time - folded.analysis_time).as_micros() as u64,
            Ordering::Relaxed,
        );
        t.decode_us.fetch_add(
            (stats.decode_time - folded.decode_time).as_micros() as u64,
            Ordering::Relaxed,
        );
        *folded = stats.clone();
        stats
    }
}

impl Drop for MotionRuntime {
    fn drop(&mut self) {
        self.fold();
        self.task.abort();
    }
}

/// Turns the watcher's analyses into Motion Detected (see the module docs).
async fn events(
    camera: String,
    mut rx: watch::Receiver<Option<Report>>,
    sensors: Arc<dyn MotionSink>,
    cooldown: Duration,
    totals: Arc<MotionTotals>,
    motion_now: Arc<AtomicBool>,
    last_event: Arc<std::sync::Mutex<Option<SystemTime>>>,
) {
    let mut last_trigger: Option<tokio::time::Instant> = None;
    let extend_every = EXTEND_EVERY.min(sensors.motion_reset() / 3);
    while rx.changed().await.is_ok() {
        let Some(report) = *rx.borrow_and_update() else {
            continue;
        };
        motion_now.store(report.analysis.motion, Ordering::Relaxed);
        if !report.analysis.motion {
            continue;
        }
        let Some(state) = sensors.motion_state(&camera) else {
            continue;
        };
        let now = tokio::time::Instant::now();
        if state.active {
            if last_trigger.is_some_and(|t| now < t + extend_every) {
                continue;
            }
        } else if state.ended.is_some_and(|end| now < end + cooldown) {
            totals.cooled.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if let Err(e) = sensors.trigger_motion(&camera) {
            tracing::warn!(camera, error = %e, "motion detection: cannot set Motion Detected");
            continue;
        }
        last_trigger = Some(now);
        if !state.active {
            totals.events.fetch_add(1, Ordering::Relaxed);
            *last_event
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(SystemTime::now());
            tracing::info!(
                camera,
                area = format!("{:.1} %", report.analysis.area * 100.0),
                "motion detected in the pictures"
            );
        }
    }
}
