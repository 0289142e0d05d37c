//! The source clip: 1080p30 H.264, encoded once at start with openh264, each picture carrying its
//! index as a row of large black/white blocks that survive re-encoding and scaling.

use bytes::Bytes;
use media::transcode::EncodedUnits;
use openh264::OpenH264API;
use openh264::encoder::{
    BitRate, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, RateControlMode,
    UsageType,
};
use openh264::formats::{YUVSlices, YUVSource};

pub(crate) const WIDTH: usize = 1920;
pub(crate) const HEIGHT: usize = 1080;
pub(crate) const FPS: u32 = 30;
/// Pictures from one IDR to the next (2 s, a common camera setting).
pub(crate) const GOP: u32 = 60;
/// Clip length (10 s, a whole number of GOPs so the loop restarts on an IDR). Indices repeat
/// every `FRAMES` pictures; any latency under 10 s identifies its frame uniquely.
pub(crate) const FRAMES: u32 = 300;
const BITRATE_BPS: u32 = 4_000_000;

/// Bits of the index; each is drawn twice (value, then complement) so a garbled picture reads as
/// no index rather than a wrong one.
const INDEX_BITS: usize = 12;
/// Block size at 1080p (2 × 12 blocks of 80 px fill the width exactly).
const BLOCK: usize = 80;
const BLOCK_TOP: usize = 40;

/// One picture of the clip.
pub(crate) struct ClipFrame {
    /// Slice NAL units, no start codes.
    pub(crate) nals: Vec<Bytes>,
}

/// The encoded clip and its parameter sets.
pub(crate) struct Clip {
    pub(crate) frames: Vec<ClipFrame>,
    pub(crate) sps: Bytes,
    pub(crate) pps: Bytes,
}

/// Encodes the clip (a few seconds of one core).
pub(crate) fn encode() -> Clip {
    let config = EncoderConfig::new()
        .bitrate(BitRate::from_bps(BITRATE_BPS))
        .max_frame_rate(FrameRate::from_hz(FPS as f32))
        .rate_control_mode(RateControlMode::Bitrate)
        .usage_type(UsageType::CameraVideoRealTime)
        .skip_frames(false)
        .intra_frame_period(IntraFramePeriod::from_num_frames(GOP));
    let mut encoder = Encoder::with_api_config(OpenH264API::from_source(), config).unwrap();
    let mut picture = vec![0u8; WIDTH * HEIGHT * 3 / 2];
    let (mut sps, mut pps) = (None, None);
    let mut frames = Vec::new();
    for i in 0..FRAMES {
        draw(&mut picture, i);
        if i % GOP == 0 {
            encoder.force_intra_frame();
        }
        let (y, uv) = picture.split_at(WIDTH * HEIGHT);
        let (u, v) = uv.split_at(WIDTH * HEIGHT / 4);
        let source = YUVSlices::new((y, u, v), (WIDTH, HEIGHT), (WIDTH, WIDTH / 2, WIDTH / 2));
        let stream = encoder.encode(&source).unwrap();
        let is_idr = stream.frame_type() == FrameType::IDR;
        assert_eq!(is_idr, i % GOP == 0, "clip picture {i}: IDR placement");
        let units = EncodedUnits::of(&stream);
        sps = units.sps.or(sps);
        pps = units.pps.or(pps);
        let nals = units.nals;
        assert!(!nals.is_empty(), "clip picture {i} was skipped");
        frames.push(ClipFrame { nals });
    }
    Clip {
        frames,
        sps: sps.unwrap(),
        pps: pps.unwrap(),
    }
}

/// Picture `i`: moving diagonal stripes and a moving box (work for the encoders), the index
/// blocks on top.
fn draw(pic: &mut [u8], i: u32) {
    let (y_plane, chroma) = pic.split_at_mut(WIDTH * HEIGHT);
    let shift = i as usize * 6;
    for (row, line) in y_plane.chunks_exact_mut(WIDTH).enumerate() {
        for (col, px) in line.iter_mut().enumerate() {
            *px = 60 + (((col + row + shift) >> 3) & 0x3f) as u8 * 2;
        }
    }
    let bx = (i as usize * 11) % (WIDTH - 200);
    fill(y_plane, bx, 400, 200, 200, 220);
    chroma.fill(128);
    for bit in 0..INDEX_BITS {
        let one = (i >> bit) & 1 == 1;
        fill(
            y_plane,
            bit * BLOCK,
            BLOCK_TOP,
            BLOCK,
            BLOCK,
            if one { 235 } else { 16 },
        );
        let x = (INDEX_BITS + bit) * BLOCK;
        fill(
            y_plane,
            x,
            BLOCK_TOP,
            BLOCK,
            BLOCK,
            if one { 16 } else { 235 },
        );
    }
}

fn fill(plane: &mut [u8], x: usize, y: usize, w: usize, h: usize, v: u8) {
    for line in plane.chunks_exact_mut(WIDTH).skip(y).take(h) {
        line[x..(x + w).min(WIDTH)].fill(v);
    }
}

/// Reads the index from a decoded picture of any size (the blocks scale with it); `None` when
/// the blocks do not check out.
pub(crate) fn read_index(picture: &impl YUVSource) -> Option<u32> {
    let (w, h) = picture.dimensions();
    let (stride, _, _) = picture.strides();
    let y = picture.y();
    let luma_at = |x1080: usize, y1080: usize| -> Option<u32> {
        // Mean of a small square at the block centre, in the picture's own coordinates.
        let (cx, cy) = (x1080 * w / WIDTH, y1080 * h / HEIGHT);
        let r = (BLOCK * w / WIDTH / 6).max(1);
        let mut sum = 0u32;
        let mut n = 0u32;
        for yy in cy.saturating_sub(r)..=cy + r {
            for xx in cx.saturating_sub(r)..=cx + r {
                sum += u32::from(*y.get(yy * stride + xx)?);
                n += 1;
            }
        }
        Some(sum / n)
    };
    let centre_y = BLOCK_TOP + BLOCK / 2;
    let mut index = 0;
    for bit in 0..INDEX_BITS {
        let a = luma_at(bit * BLOCK + BLOCK / 2, centre_y)?;
        let b = luma_at((INDEX_BITS + bit) * BLOCK + BLOCK / 2, centre_y)?;
        let (one, zero) = (a > 170 && b < 80, a < 80 && b > 170);
        if !(one || zero) {
            return None;
        }
        index |= u32::from(one) << bit;
    }
    (index < FRAMES).then_some(index)
}
