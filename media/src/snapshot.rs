//! JPEG snapshots of a hub's newest decodable picture: decode the latest IDR and the pictures
//! after it, scale to the requested size, encode with `jpeg-encoder`. Results are cached briefly
//! per size, and concurrent requests share one decode.
//!
//! Decoding runs on tokio's blocking pool, never on an async worker thread. The catch-up decode
//! is bounded by [`DECODE_BUDGET`]: past it the newest picture decoded so far is used.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use jpeg_encoder::{Encoder as JpegEncoder, ImageBuffer, JpegColorType};
use openh264::decoder::Decoder;

use crate::error::{Error, ErrorKind};
use crate::frame::AccessUnit;
use crate::hub::Hub;
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
}

/// Makes snapshots of one hub.
pub struct Snapshotter {
    hub: Hub,
    max_age: Duration,
    wait_for_picture: Duration,
    cache: tokio::sync::Mutex<Vec<Snapshot>>,
}

impl Snapshotter {
    /// Snapshots of `hub`, each reused for `max_age` (1-2 s keeps a busy Home app cheap).
    pub fn new(hub: Hub, max_age: Duration) -> Self {
        Self {
            hub,
            max_age,
            wait_for_picture: DEFAULT_WAIT,
            cache: tokio::sync::Mutex::new(Vec::new()),
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
    let mut decoder = Decoder::new().map_err(|e| err(ErrorKind::Decode, &e))?;
    let mut scaler = Scaler::new(width.next_multiple_of(2), height.next_multiple_of(2));
    let mut buf = Vec::new();
    let mut newest: Option<(Vec<u8>, Instant)> = None;
    let last = gop.len().saturating_sub(1);
    for (i, au) in gop.iter().enumerate() {
        buf.clear();
        au.write_annex_b(&mut buf);
        let decoded = match decoder.decode(&buf) {
            Ok(d) => d,
            Err(e) if newest.is_some() => {
                tracing::debug!(camera = %name, error = %e, "snapshot: keeping the last good picture");
                break;
            }
            Err(e) => return Err(err(ErrorKind::Decode, &e)),
        };
        let over_budget = started.elapsed() > DECODE_BUDGET;
        if let Some(picture) = decoded.filter(|_| i == last || over_budget) {
            let scaled = scaler
                .scale(PlanarRef::from_yuv(&picture))
                .map_err(|e| err(ErrorKind::Scale, &e))?;
            newest = Some((scaled.to_vec(), au.received_at));
        }
        if over_budget && newest.is_some() {
            break;
        }
    }
    let Some((i420, frame_received_at)) = newest else {
        return Err(err(
            ErrorKind::NoPicture,
            &"nothing decodable in the prebuffer",
        ));
    };
    let image = I420Image {
        data: &i420,
        stride: scaler.width() as usize,
        rows: scaler.height() as usize,
        width: u16::try_from(width).map_err(|e| err(ErrorKind::Config, &e))?,
        height: u16::try_from(height).map_err(|e| err(ErrorKind::Config, &e))?,
    };
    let mut jpeg = Vec::with_capacity(width as usize * height as usize / 4);
    JpegEncoder::new(&mut jpeg, JPEG_QUALITY)
        .encode_image(image)
        .map_err(|e| err(ErrorKind::Jpeg, &e))?;
    Ok(Snapshot {
        jpeg: Bytes::from(jpeg),
        width,
        height,
        frame_received_at,
        made_at: Instant::now(),
    })
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
/// How long a snapshot of a cold hub waits for its first keyframe.
const DEFAULT_WAIT: Duration = Duration::from_secs(10);
/// JPEG quality (1-100).
const JPEG_QUALITY: u8 = 80;
/// Largest accepted width or height (JPEG's limit is 65535; cameras are far below).
const MAX_DIMENSION: u32 = 4096;
