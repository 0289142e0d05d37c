//! The detector's view as a picture a person can check: the last analysed picture in grey,
//! outside the zones darkened, the zones' borders in yellow, the changed area in red.

/// Output pixels per detector cell, in each direction.
pub const SCALE: usize = 4;

/// An RGB picture, 3 bytes a pixel, rows packed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rgb {
    /// Pixels across.
    pub width: usize,
    /// Pixels down.
    pub height: usize,
    /// `width * height * 3` bytes.
    pub data: Vec<u8>,
}

/// Draws `picture` (grid luma), `zone` and `changed` (cell masks) of a `w`×`h` grid, each cell
/// [`SCALE`]×[`SCALE`] pixels. Masks shorter than the grid count as "outside" / "unchanged".
pub fn render(picture: &[u8], zone: &[bool], changed: &[bool], (w, h): (usize, usize)) -> Rgb {
    let at = |m: &[bool], x: usize, y: usize| m.get(y * w + x).copied().unwrap_or(false);
    let (width, height) = (w * SCALE, h * SCALE);
    let mut data = Vec::with_capacity(width * height * 3);
    for py in 0..height {
        let y = py / SCALE;
        for px in 0..width {
            let x = px / SCALE;
            let luma = picture.get(y * w + x).copied().unwrap_or(0);
            let inside = at(zone, x, y);
            // A zone cell with a neighbour outside draws its border on the edge pixels.
            let edge_px = px % SCALE == 0 || py % SCALE == 0;
            let border = inside
                && edge_px
                && ((x > 0 && !at(zone, x - 1, y) && px % SCALE == 0)
                    || (y > 0 && !at(zone, x, y - 1) && py % SCALE == 0)
                    || (x == 0 && px == 0)
                    || (y == 0 && py == 0));
            let rgb = if at(changed, x, y) {
                [255, luma / 3, luma / 3]
            } else if border {
                [255, 220, 0]
            } else if inside {
                [luma, luma, luma]
            } else {
                [luma / 3, luma / 3, luma / 3]
            };
            data.extend_from_slice(&rgb);
        }
    }
    Rgb {
        width,
        height,
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_cells_are_red_and_outside_is_dark() {
        let picture = [90u8; 4];
        let zone = [true, true, false, false];
        let changed = [false, true, false, false];
        let out = render(&picture, &zone, &changed, (2, 2));
        assert_eq!((out.width, out.height), (8, 8));
        let px = |x: usize, y: usize| &out.data[(y * 8 + x) * 3..(y * 8 + x) * 3 + 3];
        assert_eq!(px(6, 2), &[255, 30, 30], "changed");
        assert_eq!(px(2, 2), &[90, 90, 90], "inside");
        assert_eq!(px(2, 6), &[30, 30, 30], "outside");
        assert_eq!(px(0, 0), &[255, 220, 0], "border");
    }
}
