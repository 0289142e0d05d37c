//! The built-in test pattern: a moving picture with a frame counter and a wall clock drawn in,
//! and a white square flashing with the demo camera's beep (the first 100 ms of each second),
//! encoded in-process with openh264, so the bridge runs with no camera.
//!
//! [`TestPattern`] produces pictures as fast as asked (for benchmarks and tests);
//! hubs run it on a dedicated thread paced to the configured frame rate.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use openh264::OpenH264API;
use openh264::encoder::{
    BitRate, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, RateControlMode,
    UsageType,
};
use openh264::formats::YUVSlices;

use super::FrameSink;
use crate::encoded::EncodedUnits;
use crate::error::{Error, ErrorKind};
use crate::frame::{AccessUnit, ParameterSets, SourceState};

/// Size, rate and bitrate of the test pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestPatternConfig {
    /// Width in pixels (even).
    pub width: u32,
    /// Height in pixels (even).
    pub height: u32,
    /// Pictures per second.
    pub fps: u32,
    /// Target bitrate in bits per second.
    pub bitrate_bps: u32,
    /// Pictures from one IDR to the next.
    pub keyframe_interval: u32,
}

impl Default for TestPatternConfig {
    fn default() -> Self {
        Self {
            width: 1280,
            height: 720,
            fps: 30,
            bitrate_bps: 2_000_000,
            keyframe_interval: 60,
        }
    }
}

/// The pattern generator and its encoder.
pub struct TestPattern {
    config: TestPatternConfig,
    name: String,
    encoder: Encoder,
    /// I420: Y (w×h), then U and V (w/2×h/2 each).
    picture: Vec<u8>,
    frame_number: u64,
    parameter_sets: Option<Arc<ParameterSets>>,
}

impl TestPattern {
    /// Creates the encoder for `config`; `name` labels errors.
    pub fn new(name: &str, config: TestPatternConfig) -> Result<Self, Error> {
        let bad = |what: &str| Error::new(ErrorKind::Config, name).with_detail(what, None);
        if config.width == 0
            || config.height == 0
            || !config.width.is_multiple_of(2)
            || !config.height.is_multiple_of(2)
        {
            return Err(bad("test pattern size must be even and non-zero"));
        }
        if config.width > MAX_DIMENSION || config.height > MAX_DIMENSION {
            return Err(bad("test pattern size exceeds 4096"));
        }
        if config.fps == 0 || config.fps > MAX_FPS {
            return Err(bad("test pattern fps must be 1..=120"));
        }
        let encoder_config = EncoderConfig::new()
            .bitrate(BitRate::from_bps(config.bitrate_bps))
            .max_frame_rate(FrameRate::from_hz(config.fps as f32))
            .rate_control_mode(RateControlMode::Bitrate)
            .usage_type(UsageType::CameraVideoRealTime)
            // Without frame skipping openh264 cannot hold the bitrate; a skipped picture is
            // simply not published, as a camera under load would drop it.
            .skip_frames(true)
            .intra_frame_period(IntraFramePeriod::from_num_frames(
                config.keyframe_interval.max(1),
            ));
        let encoder = Encoder::with_api_config(OpenH264API::from_source(), encoder_config)
            .map_err(|e| Error::new(ErrorKind::Encode, name).with_detail(e, None))?;
        let picture = vec![0; config.width as usize * config.height as usize * 3 / 2];
        Ok(Self {
            config,
            name: name.to_owned(),
            encoder,
            picture,
            frame_number: 0,
            parameter_sets: None,
        })
    }

    /// Draws and encodes the next picture, stamped with `timestamp_90k`; `None` when the rate
    /// control skipped it. The picture counts as received when it is encoded: drawing and
    /// encoding it is the camera's work (a real camera's happens before its packets leave it),
    /// so a stream's added latency is the bridge's alone whatever the source.
    pub fn next_frame(&mut self, timestamp_90k: u64) -> Result<Option<AccessUnit>, Error> {
        draw(
            &mut self.picture,
            &self.config,
            self.frame_number,
            SystemTime::now(),
        );
        self.frame_number += 1;
        let (w, h) = (self.config.width as usize, self.config.height as usize);
        let (y, uv) = self.picture.split_at(w * h);
        let (u, v) = uv.split_at(w * h / 4);
        let source = YUVSlices::new((y, u, v), (w, h), (w, w / 2, w / 2));
        let stream = self
            .encoder
            .encode(&source)
            .map_err(|e| Error::new(ErrorKind::Encode, &self.name).with_detail(e, None))?;
        let frame_type = stream.frame_type();
        if matches!(frame_type, FrameType::Skip | FrameType::Invalid) {
            return Ok(None);
        }
        let is_idr = frame_type == FrameType::IDR;
        let EncodedUnits { sps, pps, nals } = EncodedUnits::of(&stream);
        if let (Some(sps), Some(pps)) = (sps, pps) {
            self.parameter_sets = Some(Arc::new(ParameterSets { sps, pps }));
        }
        if nals.is_empty() {
            return Err(Error::new(ErrorKind::Encode, &self.name)
                .with_detail("encoder produced no picture", None));
        }
        Ok(Some(AccessUnit {
            nals,
            is_idr,
            timestamp_90k,
            received_at: Instant::now(),
            parameter_sets: if is_idr {
                self.parameter_sets.clone()
            } else {
                None
            },
        }))
    }

    /// Makes the next picture an IDR.
    pub fn force_keyframe(&mut self) {
        self.encoder.force_intra_frame();
    }

    /// The configuration in use.
    pub fn config(&self) -> &TestPatternConfig {
        &self.config
    }
}

/// Runs the pattern on its own thread at the configured rate until `stop` is set. When the
/// thread falls behind (slow machine) it skips pictures rather than drifting: timestamps follow
/// the wall clock.
pub(crate) fn spawn(
    name: &str,
    config: TestPatternConfig,
    sink: Arc<dyn FrameSink>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    let name = name.to_owned();
    std::thread::Builder::new()
        .name(format!("pattern-{name}"))
        .spawn(move || {
            sink.set_state(SourceState::Connecting, None);
            let mut pattern = match TestPattern::new(&name, config) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(camera = %name, error = %e, "test pattern failed to start");
                    sink.set_state(SourceState::Stopped, Some(e));
                    return;
                }
            };
            let fps = u64::from(pattern.config.fps);
            let start = Instant::now();
            let mut tick: u64 = 0;
            let mut streaming = false;
            while !stop.load(Ordering::Acquire) {
                let due = start + Duration::from_nanos(tick * 1_000_000_000 / fps);
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                let elapsed = start.elapsed();
                let ts = (elapsed.as_nanos() * 90_000 / 1_000_000_000) as u64;
                match pattern.next_frame(ts) {
                    Ok(None) => {}
                    Ok(Some(au)) => {
                        if !streaming {
                            streaming = true;
                            sink.set_state(SourceState::Streaming, None);
                        }
                        sink.publish(au);
                    }
                    Err(e) => {
                        tracing::error!(camera = %name, error = %e, "test pattern encode failed");
                        sink.set_state(SourceState::Stopped, Some(e));
                        return;
                    }
                }
                // Next tick strictly after now: skip ticks we are late for.
                let elapsed_ticks = start.elapsed().as_nanos() as u64 * fps / 1_000_000_000;
                tick = (tick + 1).max(elapsed_ticks + 1);
            }
            sink.set_state(SourceState::Stopped, None);
        })
}

/// Draws picture `n`: diagonal moving luma stripes, a bouncing box, colour bands, and the frame
/// counter and UTC clock in a built-in 5×7 font.
fn draw(pic: &mut [u8], config: &TestPatternConfig, n: u64, now: SystemTime) {
    let (w, h) = (config.width as usize, config.height as usize);
    let (cw, ch) = (w / 2, h / 2);
    let shift = (n * 4) as usize;
    let (y_plane, rest) = pic.split_at_mut(w * h);
    // Diagonal stripes: every row is a window into one repeating ramp (row copies, no per-pixel
    // work, so the pattern stays cheap even in debug builds).
    let ramp: Vec<u8> = (0..w + RAMP_PERIOD)
        .map(|i| 40 + ((i >> 3) & 0x7f) as u8)
        .collect();
    for (row, line) in y_plane.chunks_exact_mut(w).enumerate() {
        let offset = (row + shift) % RAMP_PERIOD;
        line.copy_from_slice(&ramp[offset..offset + w]);
    }
    // Bouncing box, 1/6 of the height.
    let side = (h / 6).max(8);
    let span_x = (w - side).max(1);
    let span_y = (h - side).max(1);
    let bx = bounce(n * 7, span_x);
    let by = bounce(n * 5, span_y);
    fill_rect(y_plane, w, bx, by, side, side, 235);
    // Chroma: eight vertical colour bands.
    let (u_plane, v_plane) = rest.split_at_mut(cw * ch);
    let band = |col: usize| col * 8 / cw.max(1) % 8;
    let u_row: Vec<u8> = (0..cw).map(|c| BAND_U[band(c)]).collect();
    let v_row: Vec<u8> = (0..cw).map(|c| BAND_V[band(c)]).collect();
    for line in u_plane.chunks_exact_mut(cw) {
        line.copy_from_slice(&u_row);
    }
    for line in v_plane.chunks_exact_mut(cw) {
        line.copy_from_slice(&v_row);
    }
    // Text: counter and clock on a black band at the top left.
    let scale = (h / 135).max(1);
    let since = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs() % 86_400;
    let text = format!(
        "#{n:07} {:02}:{:02}:{:02}.{:03}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        since.subsec_millis()
    );
    let glyph_w = 6 * scale;
    let band_w = (text.len() * glyph_w + 2 * scale).min(w);
    let band_h = (9 * scale).min(h);
    fill_rect(y_plane, w, 0, 0, band_w, band_h, 16);
    for (i, c) in text.chars().enumerate() {
        draw_glyph(y_plane, w, h, scale + i * glyph_w, scale, scale, c);
    }
    // The flash: a white square at the top right while the demo camera's beep sounds (the same
    // wall-clock window, `source::tone`), so audio/video sync can be measured at a receiver.
    if super::tone::beeping(since) {
        let side = (h / 8).max(8).min(w);
        fill_rect(y_plane, w, w - side, 0, side, side, 235);
    }
}

fn bounce(pos: u64, span: usize) -> usize {
    let period = 2 * span as u64;
    let p = (pos % period) as usize;
    if p < span { p } else { period as usize - p }
}

fn fill_rect(plane: &mut [u8], stride: usize, x: usize, y: usize, w: usize, h: usize, v: u8) {
    for line in plane.chunks_exact_mut(stride).skip(y).take(h) {
        if let Some(run) = line.get_mut(x..(x + w).min(stride)) {
            run.fill(v);
        }
    }
}

fn draw_glyph(
    plane: &mut [u8],
    stride: usize,
    height: usize,
    x: usize,
    y: usize,
    s: usize,
    c: char,
) {
    let rows = glyph(c);
    for (r, bits) in rows.iter().enumerate() {
        for col in 0..5 {
            if bits & (0x10 >> col) != 0 && y + (r + 1) * s <= height {
                fill_rect(plane, stride, x + col * s, y + r * s, s, s, 235);
            }
        }
    }
}

/// 5×7 glyphs, one byte per row, bit 4 = leftmost column.
fn glyph(c: char) -> [u8; 7] {
    match c {
        '0' => [0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e],
        '1' => [0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e],
        '2' => [0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f],
        '3' => [0x1f, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0e],
        '4' => [0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02],
        '5' => [0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e],
        '6' => [0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e],
        '7' => [0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e],
        '9' => [0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c],
        ':' => [0x00, 0x0c, 0x0c, 0x00, 0x0c, 0x0c, 0x00],
        '.' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x0c],
        '#' => [0x0a, 0x0a, 0x1f, 0x0a, 0x1f, 0x0a, 0x0a],
        _ => [0; 7],
    }
}

/// U and V of eight colour bands (BT.601, roughly white, yellow, cyan, green, magenta, red,
/// blue, grey).
const BAND_U: [u8; 8] = [128, 44, 156, 72, 184, 100, 212, 128];
const BAND_V: [u8; 8] = [128, 142, 44, 58, 198, 212, 114, 128];

/// Period of the luma ramp: `(i >> 3) & 0x7f` repeats every 1024 pixels.
const RAMP_PERIOD: usize = 1024;
/// Largest accepted width or height.
const MAX_DIMENSION: u32 = 4096;
/// Largest accepted frame rate.
const MAX_FPS: u32 = 120;
