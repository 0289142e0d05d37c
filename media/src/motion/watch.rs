//! A camera's motion detector on its own thread: follows a hub, decodes what it must, analyses
//! about [`WatchConfig::fps`] pictures a second and reports each analysis.
//!
//! H.264 pictures depend on earlier ones, so every reference picture is decoded; a picture no
//! other refers to (`nal_ref_idc` 0, H.264 §7.4.1; B-pictures of most cameras) is skipped unless
//! it is due for analysis.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use openh264::formats::YUVSource;

use super::detector::{Analysis, Detector};
use super::luma::downscale;
use super::render::{Rgb, render};
use super::{MotionSettings, grid_size};
use crate::decode::{SourceDecoder, Stamp};
use crate::error::{Error, ErrorKind};
use crate::frame::AccessUnit;
use crate::hub::Hub;

/// How long the thread waits for a picture before it checks whether it should stop.
const RECV_WAIT: Duration = Duration::from_millis(200);
/// Wait before subscribing again after the hub refused.
const RESUBSCRIBE_AFTER: Duration = Duration::from_secs(1);
/// The analysis rate's bounds (pictures a second).
pub const FPS_RANGE: std::ops::RangeInclusive<f32> = 0.5..=30.0;

/// What to watch for and how often.
#[derive(Clone, Debug, PartialEq)]
pub struct WatchConfig {
    /// The detector's settings.
    pub settings: MotionSettings,
    /// Pictures analysed a second, at most (clamped to [`FPS_RANGE`]).
    pub fps: f32,
}

/// One analysed picture.
#[derive(Clone, Copy, Debug)]
pub struct Report {
    /// What the detector saw.
    pub analysis: Analysis,
    /// The picture's source stamp.
    pub stamp: Stamp,
    /// Time spent on the analysis itself (downscale + detector).
    pub analysis_time: Duration,
}

/// The watcher's counters.
#[derive(Clone, Debug, Default)]
pub struct WatchStats {
    /// Access units decoded.
    pub decoded: u64,
    /// Access units skipped without decoding (not referenced, not due).
    pub skipped: u64,
    /// Pictures analysed.
    pub analysed: u64,
    /// Time spent decoding.
    pub decode_time: Duration,
    /// Time spent analysing.
    pub analysis_time: Duration,
    /// The source picture size being analysed.
    pub source_size: Option<(u32, u32)>,
    /// The last decode or source error.
    pub last_error: Option<String>,
}

/// The detector's last view, for people to check.
#[derive(Clone, Debug)]
pub struct View {
    /// The last analysis.
    pub analysis: Analysis,
    /// When it was made.
    pub at: Instant,
    size: (usize, usize),
    picture: Vec<u8>,
    zone: Vec<bool>,
    changed: Vec<bool>,
}

impl View {
    /// The last analysed picture with the zones and the changed area drawn.
    pub fn render(&self) -> Rgb {
        render(&self.picture, &self.zone, &self.changed, self.size)
    }
}

struct Shared {
    stop: AtomicBool,
    view: Mutex<Option<View>>,
    stats: Mutex<WatchStats>,
}

/// A running watcher; the thread stops when this is dropped.
pub struct MotionWatcher {
    shared: Arc<Shared>,
}

impl MotionWatcher {
    /// Starts watching `hub` (keeping its source connected) on a thread of its own; `on_report`
    /// runs on that thread after every analysis.
    pub fn start(
        hub: &Hub,
        config: WatchConfig,
        on_report: impl FnMut(Report) + Send + 'static,
    ) -> Result<Self, Error> {
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            view: Mutex::new(None),
            stats: Mutex::new(WatchStats::default()),
        });
        let worker = Worker {
            hub: hub.clone(),
            shared: shared.clone(),
            config,
            on_report: Box::new(on_report),
        };
        std::thread::Builder::new()
            .name(format!("motion-{}", hub.name()))
            .spawn(move || worker.run())
            .map_err(|e| Error::new(ErrorKind::Shutdown, hub.name()).with_detail(e, None))?;
        Ok(Self { shared })
    }

    /// The last analysis and picture, once there is one.
    pub fn view(&self) -> Option<View> {
        lock(&self.shared.view).clone()
    }

    /// The counters so far.
    pub fn stats(&self) -> WatchStats {
        lock(&self.shared.stats).clone()
    }
}

impl Drop for MotionWatcher {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
    }
}

struct Worker {
    hub: Hub,
    shared: Arc<Shared>,
    config: WatchConfig,
    on_report: Box<dyn FnMut(Report) + Send>,
}

impl Worker {
    fn run(mut self) {
        let name = self.hub.name().to_owned();
        let mut analyser = match Analyser::new(self.config.clone()) {
            Ok(a) => a,
            Err(e) => {
                lock(&self.shared.stats).last_error = Some(format!("no decoder: {e}"));
                return;
            }
        };
        let mut sub = None;
        while !self.shared.stop.load(Ordering::Acquire) {
            let Some(s) = sub.as_mut() else {
                match self.hub.subscribe() {
                    Ok(s) => sub = Some(s),
                    Err(e) => {
                        lock(&self.shared.stats).last_error = Some(e.to_string());
                        std::thread::sleep(RESUBSCRIBE_AFTER);
                    }
                }
                continue;
            };
            let au = match s.recv_blocking(RECV_WAIT) {
                Ok(Some(au)) => au,
                Ok(None) => continue,
                Err(e) => {
                    lock(&self.shared.stats).last_error = Some(e.to_string());
                    sub = None;
                    analyser.resync();
                    std::thread::sleep(RESUBSCRIBE_AFTER);
                    continue;
                }
            };
            let report = analyser.push(&au);
            if let Some(e) = analyser.take_error() {
                tracing::debug!(camera = %name, error = %e, "motion: resync at next IDR");
            }
            *lock(&self.shared.stats) = analyser.stats().clone();
            if let Some(report) = report {
                *lock(&self.shared.view) = analyser.view();
                (self.on_report)(report);
            }
        }
    }
}

/// The watcher's work on one access unit at a time, without a thread or a hub (benchmarks feed
/// it a file): decode what is needed, analyse the pictures that are due.
pub struct Analyser {
    decoder: SourceDecoder,
    detector: Option<Detector>,
    settings: MotionSettings,
    interval_90k: u64,
    next_due: Option<u64>,
    synced: bool,
    luma: Vec<u8>,
    stats: WatchStats,
    error: Option<String>,
    last: Option<Analysis>,
}

impl Analyser {
    /// An analyser with its own decoder.
    pub fn new(config: WatchConfig) -> Result<Self, openh264::Error> {
        Ok(Self {
            decoder: SourceDecoder::new()?,
            detector: None,
            settings: config.settings,
            interval_90k: (90_000.0 / config.fps.clamp(*FPS_RANGE.start(), *FPS_RANGE.end()))
                as u64,
            next_due: None,
            synced: false,
            luma: Vec::new(),
            stats: WatchStats::default(),
            error: None,
            last: None,
        })
    }

    /// The source was interrupted: wait for the next IDR.
    pub fn resync(&mut self) {
        self.synced = false;
    }

    /// Takes one access unit (in decoding order); returns the analysis of the picture it let
    /// out, if that picture was due.
    pub fn push(&mut self, au: &Arc<AccessUnit>) -> Option<Report> {
        if !self.synced && !au.is_idr {
            return None;
        }
        self.synced = true;
        let interval = self.interval_90k;
        // A new source session may start its clock anew.
        if self
            .next_due
            .is_some_and(|t| au.timestamp_90k + 10 * interval < t)
        {
            self.next_due = None;
        }
        let next_due = self.next_due;
        let due = move |ts: u64| next_due.is_none_or(|t| ts + interval / 4 >= t);
        if !due(au.timestamp_90k) && is_disposable(au) {
            self.stats.skipped += 1;
            return None;
        }
        let started = Instant::now();
        let decoded = self.decoder.decode(au);
        self.stats.decoded += 1;
        self.stats.decode_time += started.elapsed();
        let picture = match decoded {
            Ok(Some(p)) => p,
            Ok(None) => return None,
            Err(e) => {
                let e = e.to_string();
                self.stats.last_error = Some(e.clone());
                self.error = Some(e);
                self.synced = false;
                return None;
            }
        };
        if !due(picture.stamp.timestamp_90k) {
            return None;
        }
        self.next_due = Some(picture.stamp.timestamp_90k + interval);
        let started = Instant::now();
        let (w, h) = picture.yuv.dimensions();
        let grid = grid_size(w as u32, h as u32);
        let (stride, _, _) = picture.yuv.strides();
        downscale(picture.yuv.y(), stride, (w, h), grid, &mut self.luma);
        let stamp = picture.stamp;
        let detector = match &mut self.detector {
            Some(d) if d.size() == grid => d,
            _ => self.detector.insert(Detector::new(&self.settings, grid)),
        };
        let analysis = detector.analyse(&self.luma).ok()?;
        let analysis_time = started.elapsed();
        self.stats.analysed += 1;
        self.stats.analysis_time += analysis_time;
        self.stats.source_size = Some((w as u32, h as u32));
        self.last = Some(analysis);
        Some(Report {
            analysis,
            stamp,
            analysis_time,
        })
    }

    /// The counters so far.
    pub fn stats(&self) -> &WatchStats {
        &self.stats
    }

    /// The decode error of the last [`Analyser::push`], once.
    pub fn take_error(&mut self) -> Option<String> {
        self.error.take()
    }

    /// The last analysis with its picture and masks.
    pub fn view(&self) -> Option<View> {
        let (d, analysis) = (self.detector.as_ref()?, self.last?);
        Some(View {
            analysis,
            at: Instant::now(),
            size: d.size(),
            picture: d.picture().to_vec(),
            zone: d.zone().to_vec(),
            changed: d.changed().to_vec(),
        })
    }
}

/// Whether no other picture refers to this one: every slice has `nal_ref_idc` 0.
fn is_disposable(au: &AccessUnit) -> bool {
    let mut slices = au
        .nals
        .iter()
        .filter(|n| n.first().is_some_and(|h| matches!(h & 0x1f, 1 | 5)))
        .peekable();
    slices.peek().is_some() && slices.all(|n| n[0] & 0x60 == 0)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn au(nals: &[&'static [u8]]) -> AccessUnit {
        AccessUnit {
            nals: nals.iter().map(|n| Bytes::from_static(n)).collect(),
            is_idr: false,
            timestamp_90k: 0,
            received_at: Instant::now(),
            parameter_sets: None,
        }
    }

    #[test]
    fn only_pictures_without_reference_slices_are_disposable() {
        assert!(is_disposable(&au(&[&[0x01, 0x88], &[0x01, 0x99]])));
        assert!(
            !is_disposable(&au(&[&[0x41, 0x88]])),
            "P slice, nal_ref_idc 2"
        );
        assert!(!is_disposable(&au(&[&[0x65, 0x88]])), "IDR");
        assert!(
            !is_disposable(&au(&[&[0x01, 0x88], &[0x21, 0x99]])),
            "one referenced slice"
        );
        assert!(!is_disposable(&au(&[])), "no slices");
    }
}
