//! Re-encoding for consumers whose request the source does not fit: openh264 decode, scale
//! ([`scale`]), openh264 encode at the requested size, rate, bitrate and profile, on a dedicated
//! thread (never on the async runtime).
//!
//! A new transcoder decodes the hub's prebuffered GOP at full speed and encodes only the newest
//! picture, as an IDR, so its first output is current. Later, whenever newer input is already
//! queued, pictures are decoded (they are references) but not encoded. The output rate is capped
//! at the requested fps by skipping pictures on the source's 90 kHz timeline.

pub mod scale;

pub use crate::encoded::EncodedUnits;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use openh264::OpenH264API;
use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, Profile,
    RateControlMode, UsageType,
};
use openh264::formats::YUVSlices;
use tokio::sync::Notify;

use crate::decode::{SourceDecoder, Stamp};
use crate::error::{Error, ErrorKind};
use crate::frame::{AccessUnit, ParameterSets};
use crate::h264::H264Profile;
use crate::hub::Subscription;
use scale::{PlanarRef, Scaler};

/// What the consumer asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TranscodeParams {
    /// Output width (even).
    pub width: u32,
    /// Output height (even).
    pub height: u32,
    /// Maximum output pictures per second; extra input pictures are skipped.
    pub fps: u32,
    /// Target bitrate in bits per second; changeable with [`Transcoder::set_bitrate`].
    pub bitrate_bps: u32,
    /// H.264 profile asked of openh264.
    pub profile: H264Profile,
    /// Output pictures between periodic IDRs (0: only at start and on request).
    pub keyframe_interval: u32,
}

/// Counters of a transcoder; read with [`Transcoder::stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TranscodeStats {
    /// Input pictures decoded.
    pub decoded: u64,
    /// Output pictures encoded.
    pub encoded: u64,
    /// Input pictures decoded but not encoded (catch-up or fps cap).
    pub skipped: u64,
    /// Output pictures dropped because the consumer did not take them in time.
    pub output_dropped: u64,
    /// Duration of the last encoded picture's decode + scale + encode, in microseconds.
    pub last_frame_us: u64,
    /// Time spent on the encoded pictures, summed over them: waiting (from the picture's
    /// arrival from the source until the transcoding thread takes it, plus the time the decoder
    /// held it back when the stream reorders), decoding (the encoded picture's own decode, not
    /// the skipped ones'), scaling and encoding, in microseconds.
    /// Divided by `encoded`, it says where a transcoded picture's added latency goes.
    pub wait_us: u64,
    /// See `wait_us`.
    pub decode_us: u64,
    /// See `decode_us`.
    pub scale_us: u64,
    /// See `decode_us`.
    pub encode_us: u64,
}

impl TranscodeStats {
    /// Mean wait, decode, scale and encode time per encoded picture, once there is one.
    pub fn mean_stages(&self) -> Option<[Duration; 4]> {
        (self.encoded > 0).then(|| {
            [self.wait_us, self.decode_us, self.scale_us, self.encode_us]
                .map(|us| Duration::from_micros(us / self.encoded))
        })
    }
}

/// A running transcoder. Dropping it stops its thread (within [`POLL_INTERVAL`]).
pub struct Transcoder {
    shared: Arc<TranscodeShared>,
    thread: Option<JoinHandle<()>>,
}

impl Transcoder {
    /// Starts transcoding `input` to `params` on a new thread.
    pub fn start(input: Subscription, params: TranscodeParams) -> Result<Self, Error> {
        let name = input.hub().name().to_owned();
        let bad = |what: &str| Error::new(ErrorKind::Config, &name).with_detail(what, None);
        if params.width == 0
            || params.height == 0
            || !params.width.is_multiple_of(2)
            || !params.height.is_multiple_of(2)
        {
            return Err(bad("transcode size must be even and non-zero"));
        }
        if params.width > MAX_DIMENSION || params.height > MAX_DIMENSION || params.fps == 0 {
            return Err(bad("transcode size exceeds 4096 or fps is 0"));
        }
        let shared = Arc::new(TranscodeShared {
            name: name.clone(),
            stop: AtomicBool::new(false),
            keyframe: AtomicBool::new(false),
            bitrate: AtomicU32::new(params.bitrate_bps),
            output: Mutex::new(Output::default()),
            notify: Notify::new(),
            stats: StatsCells::default(),
        });
        let worker_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(format!("transcode-{name}"))
            .spawn(move || worker(input, params, &worker_shared))
            .map_err(|e| Error::new(ErrorKind::Config, &name).with_detail(e, None))?;
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }

    /// The next encoded picture. Fails when the input ended or the codec failed.
    pub async fn recv(&mut self) -> Result<Arc<AccessUnit>, Error> {
        loop {
            let notified = self.shared.notify.notified();
            {
                let mut out = self.shared.lock();
                if let Some(au) = out.frames.pop_front() {
                    return Ok(au);
                }
                if let Some(e) = &out.error {
                    return Err(e.clone());
                }
            }
            notified.await;
        }
    }

    /// Makes the next output picture an IDR.
    pub fn request_keyframe(&self) {
        self.shared.keyframe.store(true, Ordering::Release);
    }

    /// Changes the target bitrate; takes effect on the next picture, which is an IDR (openh264
    /// fixes the bitrate at creation, so the encoder is recreated).
    pub fn set_bitrate(&self, bitrate_bps: u32) {
        self.shared.bitrate.store(bitrate_bps, Ordering::Release);
    }

    /// Counters so far.
    pub fn stats(&self) -> TranscodeStats {
        let s = &self.shared.stats;
        TranscodeStats {
            decoded: s.decoded.load(Ordering::Relaxed),
            encoded: s.encoded.load(Ordering::Relaxed),
            skipped: s.skipped.load(Ordering::Relaxed),
            output_dropped: s.output_dropped.load(Ordering::Relaxed),
            last_frame_us: s.last_frame_us.load(Ordering::Relaxed),
            wait_us: s.wait_us.load(Ordering::Relaxed),
            decode_us: s.decode_us.load(Ordering::Relaxed),
            scale_us: s.scale_us.load(Ordering::Relaxed),
            encode_us: s.encode_us.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Transcoder {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        // Not joined: the thread notices `stop` within POLL_INTERVAL, and joining here could
        // block an async runtime thread.
        drop(self.thread.take());
    }
}

struct TranscodeShared {
    name: String,
    stop: AtomicBool,
    keyframe: AtomicBool,
    bitrate: AtomicU32,
    output: Mutex<Output>,
    notify: Notify,
    stats: StatsCells,
}

impl TranscodeShared {
    fn lock(&self) -> MutexGuard<'_, Output> {
        self.output
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues an output picture; if the consumer is behind, its backlog is dropped and the
    /// caller is told to make the next picture an IDR.
    fn push(&self, au: AccessUnit) -> bool {
        let mut out = self.lock();
        if out.frames.len() >= OUTPUT_CAPACITY {
            let n = out.frames.len() as u64;
            out.frames.clear();
            self.stats.output_dropped.fetch_add(n, Ordering::Relaxed);
            out.waiting_for_idr = true;
        }
        if out.waiting_for_idr && !au.is_idr {
            // This picture references dropped ones: useless until the next IDR.
            self.stats.output_dropped.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        out.waiting_for_idr = false;
        out.frames.push_back(Arc::new(au));
        drop(out);
        self.notify.notify_one();
        false
    }

    fn fail(&self, error: Error) {
        self.lock().error = Some(error);
        self.notify.notify_one();
    }
}

#[derive(Default)]
struct Output {
    frames: VecDeque<Arc<AccessUnit>>,
    waiting_for_idr: bool,
    error: Option<Error>,
}

#[derive(Default)]
struct StatsCells {
    decoded: AtomicU64,
    encoded: AtomicU64,
    skipped: AtomicU64,
    output_dropped: AtomicU64,
    last_frame_us: AtomicU64,
    wait_us: AtomicU64,
    decode_us: AtomicU64,
    scale_us: AtomicU64,
    encode_us: AtomicU64,
}

fn worker(mut input: Subscription, params: TranscodeParams, shared: &TranscodeShared) {
    let name = shared.name.as_str();
    let mut decoder = match SourceDecoder::new() {
        Ok(d) => d,
        Err(e) => return shared.fail(Error::new(ErrorKind::Decode, name).with_detail(e, None)),
    };
    let mut scaler = Scaler::new(params.width, params.height);
    let mut encoder: Option<(Encoder, u32)> = None;
    let mut parameter_sets: Option<Arc<ParameterSets>> = None;
    let mut cap = RateCap::new(params.fps);
    let mut synced = false;
    let mut told_reorder = false;
    let began = Instant::now();
    let mut last_output: Option<Instant> = None;
    while !shared.stop.load(Ordering::Acquire) {
        if decoder.reorders() && !told_reorder {
            tracing::info!(camera = %name, "the source has B-slices: transcoding in display order");
            told_reorder = true;
        }
        let au = match input.recv_blocking(POLL_INTERVAL) {
            Ok(Some(au)) => au,
            Ok(None) => continue,
            Err(e) => return shared.fail(e),
        };
        let started = Instant::now();
        if !synced {
            if !au.is_idr {
                continue;
            }
            synced = true;
        }
        let decoded = match decoder.decode(&au) {
            Ok(d) => d,
            Err(e) => {
                // Resynchronise at the next IDR instead of encoding garbage.
                tracing::debug!(camera = %name, error = %e, "transcode decode error");
                synced = false;
                continue;
            }
        };
        shared.stats.decoded.fetch_add(1, Ordering::Relaxed);
        // A stream with B-slices lets pictures out in display order: `stamp` is the picture's
        // own (the access unit just fed may be a later one).
        let Some(picture) = decoded else { continue };
        let stamp = picture.stamp;
        // Catch-up: a newer picture is already waiting, so this one is only a reference.
        // Unless the output has waited too long: on a machine that decodes slower than the
        // source runs, a newer picture is always waiting.
        let since_output = last_output.unwrap_or(began).elapsed();
        if input.pending() > 0 && since_output < catch_up_limit(last_output.is_some()) {
            shared.stats.skipped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        // Frame-rate cap on the source timeline ([`RateCap`]).
        if !cap.admit(stamp.timestamp_90k) {
            shared.stats.skipped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let decoded_at = Instant::now();
        let scaled = match scaler.scale(PlanarRef::from_yuv(&picture.yuv)) {
            Ok(s) => s,
            Err(e) => return shared.fail(Error::new(ErrorKind::Scale, name).with_detail(e, None)),
        };
        let scaled_at = Instant::now();
        let bitrate = shared.bitrate.load(Ordering::Acquire);
        if encoder.as_ref().is_none_or(|(_, b)| *b != bitrate) {
            match new_encoder(&params, bitrate) {
                Ok(e) => encoder = Some((e, bitrate)),
                Err(e) => {
                    return shared.fail(Error::new(ErrorKind::Encode, name).with_detail(e, None));
                }
            }
        }
        let Some((enc, _)) = encoder.as_mut() else {
            continue;
        };
        if shared.keyframe.swap(false, Ordering::AcqRel) {
            enc.force_intra_frame();
        }
        let (w, h) = (params.width as usize, params.height as usize);
        let (y, uv) = scaled.split_at(w * h);
        let (u, v) = uv.split_at(w * h / 4);
        let slices = YUVSlices::new((y, u, v), (w, h), (w, w / 2, w / 2));
        let out = match encode(enc, &slices, &mut parameter_sets, stamp) {
            Ok(Some(out)) => out,
            Ok(None) => continue,
            Err(e) => return shared.fail(Error::new(ErrorKind::Encode, name).with_detail(e, None)),
        };
        let us = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let elapsed = us(started.elapsed());
        let stats = &shared.stats;
        stats.last_frame_us.store(elapsed, Ordering::Relaxed);
        stats.wait_us.fetch_add(
            us(started.saturating_duration_since(stamp.received_at)),
            Ordering::Relaxed,
        );
        stats
            .decode_us
            .fetch_add(us(decoded_at - started), Ordering::Relaxed);
        stats
            .scale_us
            .fetch_add(us(scaled_at - decoded_at), Ordering::Relaxed);
        stats
            .encode_us
            .fetch_add(us(scaled_at.elapsed()), Ordering::Relaxed);
        stats.encoded.fetch_add(1, Ordering::Relaxed);
        last_output = Some(Instant::now());
        if shared.push(out) {
            enc.force_intra_frame();
        }
    }
}

/// The output frame-rate cap, on the source's 90 kHz timeline.
///
/// Pictures are due on a grid of one output interval; a picture up to a quarter interval early
/// is taken (source timestamps jitter), earlier ones are skipped. The grid alone does not bound
/// the gap between two outputs: when the picture on a grid point is not encoded (catch-up skip,
/// decode error), the next source picture is taken late and the one after it would be due again
/// one source interval later (a 1/30 s gap at a 15 fps cap from a 30 fps source). So a picture
/// must also be at least `interval - interval / 4` after the previous output. Together: no two
/// outputs closer than 3/4 of an interval, and no more than the requested rate on average.
#[derive(Clone, Copy, Debug)]
struct RateCap {
    interval_90k: u64,
    /// Grid point the next output is due at.
    due: Option<u64>,
    /// Timestamp of the last picture admitted.
    last: Option<u64>,
}

impl RateCap {
    fn new(fps: u32) -> Self {
        Self {
            interval_90k: 90_000 / u64::from(fps.max(1)),
            due: None,
            last: None,
        }
    }

    /// Whether the picture stamped `ts` is encoded; if so it counts as output.
    fn admit(&mut self, ts: u64) -> bool {
        let interval = self.interval_90k;
        let slack = interval / 4;
        let (Some(due), Some(last)) = (self.due, self.last) else {
            self.due = Some(ts + interval);
            self.last = Some(ts);
            return true;
        };
        // A jump either way (reconnect, new source session) restarts the grid.
        let jumped = ts + MAX_TS_JUMP_90K < due || ts > due + MAX_TS_JUMP_90K || ts < last;
        if !jumped && (ts + slack < due || ts < last + interval - slack) {
            return false;
        }
        // On time or a little late: keep the grid (the rate stays exact). More than one
        // interval late, or after a jump: restart it at this picture.
        let base = if jumped || ts > due + interval {
            ts
        } else {
            due
        };
        self.due = Some(base + interval);
        self.last = Some(ts);
        true
    }
}

fn new_encoder(params: &TranscodeParams, bitrate: u32) -> Result<Encoder, openh264::Error> {
    let profile = match params.profile {
        H264Profile::ConstrainedBaseline => Profile::Baseline,
        H264Profile::Main => Profile::Main,
        H264Profile::High => Profile::High,
    };
    let mut config = EncoderConfig::new()
        .bitrate(BitRate::from_bps(bitrate))
        .max_frame_rate(FrameRate::from_hz(params.fps as f32))
        .rate_control_mode(RateControlMode::Bitrate)
        .usage_type(UsageType::CameraVideoRealTime)
        // openh264 holds the bitrate only by skipping pictures; a skipped one yields no output.
        .skip_frames(true)
        // Latency is the point of re-encoding in-process: the fastest mode takes ~30% less time
        // per picture than the default (medium) at the same bitrate (720p from 1080p on the
        // 2-core build machine: 7.5 ms instead of 10.7 ms per picture), like ffmpeg's
        // `-preset ultrafast` in the pipeline this replaces.
        .complexity(Complexity::Low)
        // openh264's picture analyses, off as in x264's `ultrafast` (the old pipeline's preset):
        // adaptive quantisation, background detection and scene-change detection cost ~10% of
        // the encode time (0.4-0.6 ms per 720p picture here) and a bridge gets its IDRs on
        // request (stream start, controller ask, consumer fell behind) anyway.
        .adaptive_quantization(false)
        .background_detection(false)
        .scene_change_detect(false)
        .profile(profile);
    if params.keyframe_interval > 0 {
        config =
            config.intra_frame_period(IntraFramePeriod::from_num_frames(params.keyframe_interval));
    }
    Encoder::with_api_config(OpenH264API::from_source(), config)
}

/// Encodes one picture into an [`AccessUnit`] carrying its source stamp.
fn encode(
    encoder: &mut Encoder,
    picture: &YUVSlices<'_>,
    parameter_sets: &mut Option<Arc<ParameterSets>>,
    input: Stamp,
) -> Result<Option<AccessUnit>, openh264::Error> {
    let stream = encoder.encode(picture)?;
    let frame_type = stream.frame_type();
    if matches!(frame_type, FrameType::Skip | FrameType::Invalid) {
        return Ok(None);
    }
    let is_idr = frame_type == FrameType::IDR;
    let EncodedUnits { sps, pps, nals } = EncodedUnits::of(&stream);
    if let (Some(sps), Some(pps)) = (sps, pps) {
        *parameter_sets = Some(Arc::new(ParameterSets { sps, pps }));
    }
    if nals.is_empty() {
        return Ok(None);
    }
    Ok(Some(AccessUnit {
        nals,
        is_idr,
        timestamp_90k: input.timestamp_90k,
        received_at: input.received_at,
        parameter_sets: if is_idr { parameter_sets.clone() } else { None },
    }))
}

/// How often the worker checks for a stop request while its input is idle.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Whether openh264 was built with its x86 assembly (`nasm` found at build time; see media's
/// `build.rs`). Without it encoding is about 2.5x slower.
pub const OPENH264_ASSEMBLY: bool = matches!(env!("MEDIA_OPENH264_ASSEMBLY").as_bytes(), b"yes");
/// Output pictures queued before the consumer counts as behind.
const OUTPUT_CAPACITY: usize = 8;
/// Largest accepted width or height.
const MAX_DIMENSION: u32 = 4096;
/// Longest a new transcoder skips pictures to catch up with the prebuffered GOP (decoded at
/// full speed to encode only the newest picture) before it encodes one anyway.
const CATCH_UP_START: Duration = Duration::from_secs(1);
/// Longest the output waits on catch-up skips once it runs: a machine too slow for the source
/// still gets a few pictures a second rather than none.
const CATCH_UP_LIVE: Duration = Duration::from_millis(250);

/// How long pictures may be skipped for catch-up since the last output (or the start).
fn catch_up_limit(started: bool) -> Duration {
    if started {
        CATCH_UP_LIVE
    } else {
        CATCH_UP_START
    }
}

/// A source timestamp jump larger than this (5 s) resets the frame-rate cap.
const MAX_TS_JUMP_90K: u64 = 5 * 90_000;

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `stamps` through a cap; returns the admitted ones.
    fn admitted(fps: u32, stamps: impl IntoIterator<Item = u64>) -> Vec<u64> {
        let mut cap = RateCap::new(fps);
        stamps.into_iter().filter(|&ts| cap.admit(ts)).collect()
    }

    fn min_gap(out: &[u64]) -> u64 {
        out.windows(2).map(|p| p[1] - p[0]).min().unwrap()
    }

    #[test]
    fn halves_a_30fps_source_to_15() {
        let out = admitted(15, (0..300).map(|i| i * 3000));
        assert_eq!(out.len(), 150);
        assert_eq!(min_gap(&out), 6000);
    }

    #[test]
    fn a_skipped_grid_picture_does_not_give_a_one_frame_gap() {
        // The regression: the picture due at 6000 is skipped before the cap (catch-up), so
        // 9000 is taken late; 12000 must not follow one source interval later.
        let mut cap = RateCap::new(15);
        assert!(cap.admit(0));
        assert!(!cap.admit(3000));
        assert!(cap.admit(9000));
        assert!(!cap.admit(12_000), "1/30 s after the previous output");
        assert!(cap.admit(15_000));
        // The rate over a long run still matches the request.
        let mut out = vec![0, 9000, 15_000];
        out.extend((6..300).map(|i| i * 3000).filter(|&ts| cap.admit(ts)));
        assert!(min_gap(&out) >= 6000 * 3 / 4);
        let rate = (out.len() - 1) as f64 / ((out[out.len() - 1] - out[0]) as f64 / 90_000.0);
        assert!((14.0..=15.01).contains(&rate), "{rate}");
    }

    #[test]
    fn same_rate_passes_every_jittered_picture() {
        // 30 fps in, 30 fps out, timestamps jittering by up to 1/8 interval.
        let stamps: Vec<u64> = (0..300)
            .map(|i| i * 3000 + [0, 300, 0, 375, 100][i as usize % 5])
            .collect();
        assert_eq!(admitted(30, stamps.clone()), stamps);
    }

    #[test]
    fn a_timestamp_jump_restarts_the_grid() {
        let mut cap = RateCap::new(30);
        assert!(cap.admit(1_000_000));
        assert!(cap.admit(1_003_000));
        // Source reconnected: its clock starts over.
        assert!(cap.admit(500));
        assert!(cap.admit(3500));
        assert!(!cap.admit(4000));
    }

    #[test]
    fn gaps_never_fall_below_three_quarters_of_an_interval() {
        // A 25 fps source capped at 15: irregular ratio.
        let out = admitted(15, (0..250).map(|i| i * 3600));
        assert!(min_gap(&out) >= 4500, "{}", min_gap(&out));
        let rate = (out.len() - 1) as f64 / ((out[out.len() - 1] - out[0]) as f64 / 90_000.0);
        assert!(rate <= 15.0, "{rate}");
    }
}
