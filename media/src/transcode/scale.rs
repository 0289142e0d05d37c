//! Scaling of I420 pictures plane by plane with `fast_image_resize`, centre-cropping the source
//! when the aspect ratios differ so the picture is never stretched.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use openh264::formats::YUVSource;

/// A borrowed I420 picture with row strides (as a decoder hands it out).
#[derive(Clone, Copy, Debug)]
pub struct PlanarRef<'a> {
    /// Luma width in pixels.
    pub width: u32,
    /// Luma height in pixels.
    pub height: u32,
    /// Y plane, `stride_y * height` bytes.
    pub y: &'a [u8],
    /// U plane, `stride_uv * height / 2` bytes.
    pub u: &'a [u8],
    /// V plane, `stride_uv * height / 2` bytes.
    pub v: &'a [u8],
    /// Bytes per Y row.
    pub stride_y: usize,
    /// Bytes per U or V row.
    pub stride_uv: usize,
}

impl<'a> PlanarRef<'a> {
    /// Views any openh264 YUV source (e.g. a decoded picture).
    pub fn from_yuv(src: &'a impl YUVSource) -> Self {
        let (w, h) = src.dimensions();
        let (sy, su, _) = src.strides();
        Self {
            width: w as u32,
            height: h as u32,
            y: src.y(),
            u: src.u(),
            v: src.v(),
            stride_y: sy,
            stride_uv: su,
        }
    }
}

/// Scales into a contiguous I420 buffer of a fixed size, reusing its buffers between pictures.
pub struct Scaler {
    width: u32,
    height: u32,
    resizer: Resizer,
    out: Vec<u8>,
}

impl Scaler {
    /// A scaler to `width`×`height` (both even).
    pub fn new(width: u32, height: u32) -> Self {
        let len = width as usize * height as usize * 3 / 2;
        Self {
            width,
            height,
            resizer: Resizer::new(),
            out: vec![0; len],
        }
    }

    /// Scales `src` and returns the I420 result (Y, then U, then V, no padding).
    pub fn scale(&mut self, src: PlanarRef<'_>) -> Result<&[u8], String> {
        let (dw, dh) = (self.width, self.height);
        let (y_out, uv_out) = self.out.split_at_mut(dw as usize * dh as usize);
        let (u_out, v_out) = uv_out.split_at_mut(y_out.len() / 4);
        if (src.width, src.height) == (dw, dh) {
            // Same size: only remove the row padding.
            copy_plane(src.y, src.stride_y, y_out, dw as usize)?;
            copy_plane(src.u, src.stride_uv, u_out, dw as usize / 2)?;
            copy_plane(src.v, src.stride_uv, v_out, dw as usize / 2)?;
            return Ok(&self.out);
        }
        // Centre crop of the source with the destination's aspect ratio.
        let (sw, sh) = (f64::from(src.width), f64::from(src.height));
        let target_aspect = f64::from(dw) / f64::from(dh);
        let (cw, ch) = if sw / sh > target_aspect {
            (sh * target_aspect, sh)
        } else {
            (sw, sw / target_aspect)
        };
        let (cx, cy) = ((sw - cw) / 2.0, (sh - ch) / 2.0);
        let planes = [
            (src.y, src.stride_y, src.height, y_out, dw, dh, 1.0),
            (
                src.u,
                src.stride_uv,
                src.height / 2,
                u_out,
                dw / 2,
                dh / 2,
                0.5,
            ),
            (
                src.v,
                src.stride_uv,
                src.height / 2,
                v_out,
                dw / 2,
                dh / 2,
                0.5,
            ),
        ];
        for (plane, stride, rows, out, ow, oh, f) in planes {
            let stride_u32 = u32::try_from(stride).map_err(|e| e.to_string())?;
            // The source view spans the full stride; the crop box keeps the visible part.
            let src_img = ImageRef::new(stride_u32, rows, plane, PixelType::U8)
                .map_err(|e| format!("source plane: {e}"))?;
            let mut dst_img = Image::from_slice_u8(ow, oh, out, PixelType::U8)
                .map_err(|e| format!("destination plane: {e}"))?;
            let options = ResizeOptions::new()
                .resize_alg(ResizeAlg::Convolution(FilterType::Bilinear))
                .crop(cx * f, cy * f, cw * f, ch * f);
            self.resizer
                .resize(&src_img, &mut dst_img, &options)
                .map_err(|e| format!("resize: {e}"))?;
        }
        Ok(&self.out)
    }

    /// Output width.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Output height.
    pub fn height(&self) -> u32 {
        self.height
    }
}

fn copy_plane(src: &[u8], stride: usize, out: &mut [u8], width: usize) -> Result<(), String> {
    for (row, line) in out.chunks_exact_mut(width).enumerate() {
        let start = row * stride;
        let from = src
            .get(start..start + width)
            .ok_or("source plane too short")?;
        line.copy_from_slice(from);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRIDE: usize = 1984;
    const STRIDE_UV: usize = 992;

    /// A 1920x1080 view with openh264's row padding (stride 1984).
    fn view<'a>(y: &'a [u8], u: &'a [u8], v: &'a [u8]) -> PlanarRef<'a> {
        PlanarRef {
            width: 1920,
            height: 1080,
            y,
            u,
            v,
            stride_y: STRIDE,
            stride_uv: STRIDE_UV,
        }
    }

    #[test]
    fn a_different_aspect_ratio_is_centre_cropped_not_stretched() {
        // 4:3 from 16:9 keeps the middle 1440 columns. Left and right eighths black, middle
        // light: the result is light (the filter reads one pixel beyond the crop box, so only
        // the outermost columns are a little darker), and the row padding never shows.
        let y: Vec<u8> = (0..STRIDE * 1080)
            .map(|i| {
                if (240..1680).contains(&(i % STRIDE)) {
                    200
                } else {
                    0
                }
            })
            .collect();
        let uv = vec![128u8; STRIDE_UV * 540];
        let mut scaler = Scaler::new(640, 480);
        let out = scaler.scale(view(&y, &uv, &uv)).unwrap();
        for row in out[..640 * 480].chunks_exact(640) {
            assert!(row[1..639].iter().all(|&p| p == 200), "{:?}", &row[..4]);
            assert!(row[0] > 150 && row[639] > 150, "{} {}", row[0], row[639]);
        }
        assert!(out[640 * 480..].iter().all(|&p| p == 128));
    }

    #[test]
    fn the_same_size_only_removes_the_row_padding() {
        let y: Vec<u8> = (0..STRIDE * 1080).map(|i| (i % STRIDE) as u8).collect();
        let uv = vec![7u8; STRIDE_UV * 540];
        let mut scaler = Scaler::new(1920, 1080);
        let out = scaler.scale(view(&y, &uv, &uv)).unwrap();
        let expect: Vec<u8> = (0..1920).map(|x| x as u8).collect();
        assert!(out[..1920 * 1080].chunks_exact(1920).all(|r| r == expect));
        assert!(out[1920 * 1080..].iter().all(|&p| p == 7));
    }

    #[test]
    fn a_short_source_plane_is_an_error_not_a_panic() {
        let y = vec![0u8; STRIDE * 1080];
        let uv = vec![0u8; STRIDE_UV * 540];
        let short = &y[..1000];
        assert!(Scaler::new(1280, 720).scale(view(short, &uv, &uv)).is_err());
        assert!(
            Scaler::new(1920, 1080)
                .scale(view(short, &uv, &uv))
                .is_err()
        );
        assert!(
            Scaler::new(640, 360)
                .scale(view(&y, &uv[..10], &uv))
                .is_err()
        );
    }
}
