//! JPEG snapshots of a hub's newest decodable picture: decode the latest IDR and the pictures
//! after it, scale to the requested size, encode with `jpeg-encoder`. Results are cached briefly
//! per size, and concurrent requests share one decode.
//!
//! The first snapshot of a hub decodes the prebuffered GOP on tokio's blocking pool, bounded by
//! [`DECODE_BUDGET`] (past it the newest picture decoded so far is used). It also starts a
//! tracking decoder thread that follows the hub live and keeps the newest picture decoded, so
//! later snapshots only scale and JPEG-encode a current picture. The tracker (and the
//! subscription that keeps a lazy hub connected) stops [`TRACK_FOR`] after the last request.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use jpeg_encoder::{Encoder as JpegEncoder, ImageBuffer, JpegColorType};

use crate::decode::{Picture, SourceDecoder};
use crate::error::{Error, ErrorKind};
use crate::frame::AccessUnit;
use crate::hub::{Hub, Subscription};
use crate::transcode::scale::{PlanarRef, Scaler};

/// A JPEG picture and where it came from.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// The JPEG file (JFIF).
    pub jpeg: Bytes,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// When the picture's source frame arrived.
    pub frame_received_at: Instant,
    /// When this JPEG was made.
    pub made_at: Instant,
    /// Pictures decoded to make it (the IDR and those after it, within the budget).
    pub decoded: usize,
    /// Time spent decoding and scaling.
    pub decode_time: Duration,
    /// Time spent encoding the JPEG.
    pub jpeg_time: Duration,
}

/// Makes snapshots of one hub.
pub struct Snapshotter {
    hub: Hub,
    max_age: Duration,
    wait_for_picture: Duration,
    cache: tokio::sync::Mutex<Vec<Snapshot>>,
    tracker: std::sync::Mutex<Option<Arc<Tracker>>>,
}

impl Snapshotter {
    /// Snapshots of `hub`, each reused for `max_age` (1-2 s keeps a busy Home app cheap).
    pub fn new(hub: Hub, max_age: Duration) -> Self {
        Self {
            hub,
            max_age,
            wait_for_picture: DEFAULT_WAIT,
            cache: tokio::sync::Mutex::new(Vec::new()),
            tracker: std::sync::Mutex::new(None),
        }
    }

    /// A JPEG of `width`×`height` (the picture is centre-cropped to that aspect ratio). When the
    /// hub has no picture yet (cold lazy hub), subscribes and waits up to 10 s for an IDR.
    pub async fn snapshot(&self, width: u32, height: u32) -> Result<Snapshot, Error> {
        let name = self.hub.name();
        if width == 0 || height == 0 || width > MAX_DIMENSION || height > MAX_DIMENSION {
            return Err(Error::new(ErrorKind::Config, name)
                .with_detail(format!("snapshot size {width}x{height} out of range"), None));
        }
        let mut cache = self.cache.lock().await;
        cache.retain(|s| s.made_at.elapsed() < self.max_age);
        if let Some(hit) = cache
            .iter()
            .find(|s| (s.width, s.height) == (width, height))
        {
            return Ok(hit.clone());
        }
        if let Some(picture) = self.track()? {
            let name = name.to_owned();
            let snapshot =
                tokio::task::spawn_blocking(move || render_decoded(&name, &picture, width, height))
                    .await
                    .map_err(|e| {
                        Error::new(ErrorKind::Shutdown, self.hub.name()).with_detail(e, None)
                    })??;
            cache.push(snapshot.clone());
            return Ok(snapshot);
        }
        // Keep a subscription while working so a lazy hub stays connected.
        let mut sub = self.hub.subscribe()?;
        let mut gop = self.hub.gop();
        if gop.is_empty() {
            let wait = async {
                loop {
                    if sub.recv().await?.is_idr {
                        return Ok::<_, Error>(());
                    }
                }
            };
            tokio::time::timeout(self.wait_for_picture, wait)
                .await
                .map_err(|_| {
                    Error::new(ErrorKind::NoPicture, name).with_detail(
                        format!("no keyframe within {:?}", self.wait_for_picture),
                        None,
                    )
                })??;
            gop = self.hub.gop();
        }
        let name = name.to_owned();
        let snapshot = tokio::task::spawn_blocking(move || render(&name, &gop, width, height))
            .await
            .map_err(|e| Error::new(ErrorKind::Shutdown, self.hub.name()).with_detail(e, None))??;
        drop(sub);
        cache.push(snapshot.clone());
        Ok(snapshot)
    }
}

impl Snapshotter {
    /// Starts or extends the tracking decoder; returns its newest picture when it is current.
    fn track(&self) -> Result<Option<Arc<DecodedPicture>>, Error> {
        let mut slot = self
            .tracker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(tracker) = slot
            .as_ref()
            .filter(|t| !t.finished.load(Ordering::Acquire))
        {
            *tracker
                .last_request
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Instant::now();
            let latest = tracker
                .latest
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            return Ok(latest.clone().filter(|p| p.received_at.elapsed() < CURRENT));
        }
        let tracker = Arc::new(Tracker {
            latest: std::sync::Mutex::new(None),
            last_request: std::sync::Mutex::new(Instant::now()),
            finished: AtomicBool::new(false),
        });
        let sub = self.hub.subscribe()?;
        let worker = Arc::clone(&tracker);
        let name = self.hub.name().to_owned();
        std::thread::Builder::new()
            .name(format!("snapshot-{name}"))
            .spawn(move || worker.run(&name, sub))
            .map_err(|e| Error::new(ErrorKind::Shutdown, self.hub.name()).with_detail(e, None))?;
        *slot = Some(tracker);
        Ok(None)
    }
}

impl Drop for Snapshotter {
    fn drop(&mut self) {
        let slot = self
            .tracker
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(tracker) = slot.take() {
            // Makes the thread see an expired request time and stop.
            *tracker
                .last_request
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Instant::now()
                .checked_sub(TRACK_FOR)
                .unwrap_or_else(Instant::now);
        }
    }
}

/// A decoded picture kept by the tracker: contiguous I420 at the source size.
struct DecodedPicture {
    i420: Vec<u8>,
    width: u32,
    height: u32,
    received_at: Instant,
}

/// The tracking decoder: follows the hub live and keeps the newest picture.
struct Tracker {
    latest: std::sync::Mutex<Option<Arc<DecodedPicture>>>,
    last_request: std::sync::Mutex<Instant>,
    finished: AtomicBool,
}

impl Tracker {
    fn run(&self, name: &str, mut sub: Subscription) {
        let mut decoder = match SourceDecoder::new() {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(camera = %name, error = %e, "snapshot tracker: no decoder");
                self.finished.store(true, Ordering::Release);
                return;
            }
        };
        let mut synced = false;
        // From the start: the prebuffered GOP is decoded at full speed first.
        let mut kept_at = Instant::now();
        loop {
            let idle = self
                .last_request
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .elapsed();
            if idle >= TRACK_FOR {
                break;
            }
            let au = match sub.recv_blocking(Duration::from_millis(100)) {
                Ok(Some(au)) => au,
                Ok(None) => continue,
                Err(_) => break,
            };
            if !synced && !au.is_idr {
                continue;
            }
            synced = true;
            match decoder.decode(&au) {
                // Copy only the newest picture: older ones are just references. Unless none
                // was kept for a while: on a machine that decodes slower than the source runs,
                // a newer picture is always waiting.
                Ok(Some(picture))
                    if sub.pending() == 0 || kept_at.elapsed() >= KEEP_AT_LEAST_EVERY =>
                {
                    kept_at = Instant::now();
                    let planar = PlanarRef::from_yuv(&picture.yuv);
                    let mut i420 = Vec::with_capacity(planar.y.len() * 3 / 2);
                    let (w, h) = (planar.width as usize, planar.height as usize);
                    let rows =
                        |plane: &[u8], stride: usize, w: usize, h: usize, out: &mut Vec<u8>| {
                            for row in plane.chunks(stride).take(h) {
                                out.extend_from_slice(row.get(..w).unwrap_or(row));
                            }
                        };
                    rows(planar.y, planar.stride_y, w, h, &mut i420);
                    rows(planar.u, planar.stride_uv, w / 2, h / 2, &mut i420);
                    rows(planar.v, planar.stride_uv, w / 2, h / 2, &mut i420);
                    let decoded = DecodedPicture {
                        i420,
                        width: planar.width,
                        height: planar.height,
                        received_at: picture.stamp.received_at,
                    };
                    *self
                        .latest
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) =
                        Some(Arc::new(decoded));
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(camera = %name, error = %e, "snapshot tracker: resync at next IDR");
                    synced = false;
                }
            }
        }
        self.finished.store(true, Ordering::Release);
    }
}

/// Scales and JPEG-encodes a picture the tracker decoded.
fn render_decoded(
    name: &str,
    picture: &DecodedPicture,
    width: u32,
    height: u32,
) -> Result<Snapshot, Error> {
    let started = Instant::now();
    let err =
        |kind, detail: &dyn std::fmt::Display| Error::new(kind, name).with_detail(detail, None);
    let (w, h) = (picture.width as usize, picture.height as usize);
    let (y, uv) = picture.i420.split_at((w * h).min(picture.i420.len()));
    let (u, v) = uv.split_at((w * h / 4).min(uv.len()));
    let planar = PlanarRef {
        width: picture.width,
        height: picture.height,
        y,
        u,
        v,
        stride_y: w,
        stride_uv: w / 2,
    };
    let mut scaler = Scaler::new(width.next_multiple_of(2), height.next_multiple_of(2));
    let scaled = scaler
        .scale(planar)
        .map_err(|e| err(ErrorKind::Scale, &e))?
        .to_vec();
    let decode_time = started.elapsed();
    let jpeg =
        encode_jpeg(&scaled, &scaler, width, height).map_err(|e| err(ErrorKind::Jpeg, &e))?;
    let made_at = Instant::now();
    Ok(Snapshot {
        jpeg,
        width,
        height,
        frame_received_at: picture.received_at,
        made_at,
        decoded: 0,
        decode_time,
        jpeg_time: made_at.saturating_duration_since(started + decode_time),
    })
}

/// Decodes `gop` (IDR first) within [`DECODE_BUDGET`] and encodes the newest picture as JPEG.
pub fn render(
    name: &str,
    gop: &[Arc<AccessUnit>],
    width: u32,
    height: u32,
) -> Result<Snapshot, Error> {
    let started = Instant::now();
    let err =
        |kind, detail: &dyn std::fmt::Display| Error::new(kind, name).with_detail(detail, None);
    let mut decoder = SourceDecoder::new().map_err(|e| err(ErrorKind::Decode, &e))?;
    let mut scaler = Scaler::new(width.next_multiple_of(2), height.next_multiple_of(2));
    let mut newest: Option<(Vec<u8>, Instant)> = None;
    let mut decoded_count = 0;
    let last = gop.len().saturating_sub(1);
    let keep = |scaler: &mut Scaler, picture: &Picture<'_>| {
        let scaled = scaler
            .scale(PlanarRef::from_yuv(&picture.yuv))
            .map_err(|e| err(ErrorKind::Scale, &e))?;
        Ok::<_, Error>((scaled.to_vec(), picture.stamp.received_at))
    };
    let mut stopped_early = false;
    for (i, au) in gop.iter().enumerate() {
        let decoded = match decoder.decode(au) {
            Ok(d) => d,
            Err(e) if newest.is_some() => {
                tracing::debug!(camera = %name, error = %e, "snapshot: keeping the last good picture");
                stopped_early = true;
                break;
            }
            Err(e) => return Err(err(ErrorKind::Decode, &e)),
        };
        decoded_count += 1;
        let over_budget = started.elapsed() > DECODE_BUDGET;
        if let Some(picture) = decoded.filter(|_| i == last || over_budget) {
            newest = Some(keep(&mut scaler, &picture)?);
        }
        if over_budget && newest.is_some() {
            stopped_early = true;
            break;
        }
    }
    // A stream that reorders still holds its newest pictures (in display order).
    if !stopped_early {
        match decoder.flush() {
            Ok(Some(picture)) => newest = Some(keep(&mut scaler, &picture)?),
            Ok(None) => {}
            Err(e) => tracing::debug!(camera = %name, error = %e, "snapshot: flush failed"),
        }
    }
    let decode_time = started.elapsed();
    let Some((i420, frame_received_at)) = newest else {
        return Err(err(
            ErrorKind::NoPicture,
            &"nothing decodable in the prebuffer",
        ));
    };
    let jpeg = encode_jpeg(&i420, &scaler, width, height).map_err(|e| err(ErrorKind::Jpeg, &e))?;
    let made_at = Instant::now();
    Ok(Snapshot {
        jpeg,
        width,
        height,
        frame_received_at,
        made_at,
        decoded: decoded_count,
        decode_time,
        jpeg_time: made_at.saturating_duration_since(started + decode_time),
    })
}

/// JPEG-encodes the top-left `width`×`height` of a scaler-sized I420 buffer.
fn encode_jpeg(i420: &[u8], scaler: &Scaler, width: u32, height: u32) -> Result<Bytes, String> {
    let image = I420Image {
        data: i420,
        stride: scaler.width() as usize,
        rows: scaler.height() as usize,
        width: u16::try_from(width).map_err(|e| e.to_string())?,
        height: u16::try_from(height).map_err(|e| e.to_string())?,
    };
    let mut jpeg = Vec::with_capacity(width as usize * height as usize / 4);
    JpegEncoder::new(&mut jpeg, JPEG_QUALITY)
        .encode_image(image)
        .map_err(|e| e.to_string())?;
    Ok(Bytes::from(jpeg))
}

/// A contiguous I420 picture fed row by row to the JPEG encoder, with video-range
/// (16-235/240) samples stretched to JFIF's full range (JFIF 1.02 / BT.601).
struct I420Image<'a> {
    data: &'a [u8],
    stride: usize,
    rows: usize,
    width: u16,
    height: u16,
}

impl ImageBuffer for I420Image<'_> {
    fn get_jpeg_color_type(&self) -> JpegColorType {
        JpegColorType::Ycbcr
    }

    fn width(&self) -> u16 {
        self.width
    }

    fn height(&self) -> u16 {
        self.height
    }

    fn fill_buffers(&self, y: u16, buffers: &mut [Vec<u8>; 4]) {
        let (w, row) = (usize::from(self.width), usize::from(y));
        let luma_len = self.stride * self.rows;
        let chroma_stride = self.stride / 2;
        let chroma_len = chroma_stride * (self.rows / 2);
        let y_row = self.data.get(row * self.stride..).unwrap_or_default();
        let u_row = self
            .data
            .get(luma_len + (row / 2) * chroma_stride..)
            .unwrap_or_default();
        let v_row = self
            .data
            .get(luma_len + chroma_len + (row / 2) * chroma_stride..)
            .unwrap_or_default();
        let [yb, cb, cr, _] = buffers;
        let (luma, chroma) = (&*LUMA_LUT, &*CHROMA_LUT);
        yb.extend(y_row.iter().take(w).map(|&v| luma[usize::from(v)]));
        for x in 0..w {
            cb.push(chroma[usize::from(u_row.get(x / 2).copied().unwrap_or(128))]);
            cr.push(chroma[usize::from(v_row.get(x / 2).copied().unwrap_or(128))]);
        }
        // A short row (cannot happen with a scaler-made buffer) is padded to keep the encoder's
        // invariant of `width` samples per row.
        yb.resize(yb.len() + w.saturating_sub(y_row.len().min(w)), 0);
    }
}

static LUMA_LUT: std::sync::LazyLock<[u8; 256]> =
    std::sync::LazyLock::new(|| std::array::from_fn(|v| expand_luma(v as u8)));
static CHROMA_LUT: std::sync::LazyLock<[u8; 256]> =
    std::sync::LazyLock::new(|| std::array::from_fn(|v| expand_chroma(v as u8)));

fn expand_luma(v: u8) -> u8 {
    ((i32::from(v) - 16) * 255 / 219).clamp(0, 255) as u8
}

fn expand_chroma(v: u8) -> u8 {
    ((i32::from(v) - 128) * 255 / 224 + 128).clamp(0, 255) as u8
}

/// Catch-up decode time after which the newest picture so far is used.
pub const DECODE_BUDGET: Duration = Duration::from_millis(60);
/// How long the tracking decoder runs after the last snapshot request.
pub const TRACK_FOR: Duration = Duration::from_secs(30);
/// A tracked picture older than this is not used (the source may have stalled).
const CURRENT: Duration = Duration::from_secs(2);
/// The tracker keeps a picture at least this often even while newer ones wait (a machine that
/// decodes slower than the source runs always has newer ones waiting).
const KEEP_AT_LEAST_EVERY: Duration = Duration::from_millis(500);
/// How long a snapshot of a cold hub waits for its first keyframe.
const DEFAULT_WAIT: Duration = Duration::from_secs(10);
/// JPEG quality (1-100).
const JPEG_QUALITY: u8 = 80;
/// Largest accepted width or height (JPEG's limit is 65535; cameras are far below).
const MAX_DIMENSION: u32 = 4096;
