//! The detector's picture: the luma plane averaged down to a small grid.

/// At most this many rows of each cell are read (evenly spaced): averaging more rows hides no
/// more noise than the detector's own noise estimate handles, and costs time at 1080p.
pub const MAX_ROWS_PER_CELL: usize = 4;

/// Averages the `width`×`height` luma plane `y` (rows `stride` bytes apart) into `out`, a
/// `grid_w`×`grid_h` picture, each cell the mean of its source rectangle (cells tile the
/// picture; at most [`MAX_ROWS_PER_CELL`] of its rows are read).
///
/// # Panics
/// Never on consistent sizes; the caller passes a plane of at least `stride * (height - 1) +
/// width` bytes and a non-empty grid no larger than the picture (else cells are skipped).
pub fn downscale(
    y: &[u8],
    stride: usize,
    (width, height): (usize, usize),
    (grid_w, grid_h): (usize, usize),
    out: &mut Vec<u8>,
) {
    out.clear();
    out.resize(grid_w * grid_h, 0);
    if width == 0 || height == 0 || grid_w == 0 || grid_h == 0 {
        return;
    }
    for gy in 0..grid_h {
        let (y0, y1) = (
            gy * height / grid_h,
            ((gy + 1) * height / grid_h).max(gy * height / grid_h + 1),
        );
        let step = (y1 - y0).div_ceil(MAX_ROWS_PER_CELL).max(1);
        for gx in 0..grid_w {
            let (x0, x1) = (
                gx * width / grid_w,
                ((gx + 1) * width / grid_w).max(gx * width / grid_w + 1),
            );
            let mut sum = 0u32;
            let mut n = 0u32;
            for row in (y0..y1.min(height)).step_by(step) {
                let start = row * stride + x0;
                let end = (row * stride + x1.min(width)).min(y.len());
                if start >= end {
                    continue;
                }
                sum += y[start..end].iter().map(|&v| u32::from(v)).sum::<u32>();
                n += (end - start) as u32;
            }
            out[gy * grid_w + gx] = (sum + n / 2).checked_div(n).unwrap_or(0) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_the_means_of_their_rectangles() {
        // 8x4 picture, stride 10: left half 10, right half 200.
        let mut y = vec![0u8; 40];
        for row in 0..4 {
            for col in 0..8 {
                y[row * 10 + col] = if col < 4 { 10 } else { 200 };
            }
        }
        let mut out = Vec::new();
        downscale(&y, 10, (8, 4), (2, 2), &mut out);
        assert_eq!(out, vec![10, 200, 10, 200]);
        downscale(&y, 10, (8, 4), (4, 1), &mut out);
        assert_eq!(out, vec![10, 10, 200, 200]);
    }

    #[test]
    fn a_short_plane_leaves_cells_dark_and_does_not_panic() {
        let mut out = Vec::new();
        downscale(&[50; 10], 10, (10, 10), (5, 5), &mut out);
        assert_eq!(out.len(), 25);
        assert_eq!(out[0], 50);
        assert_eq!(out[24], 0);
    }
}
