//! Where motion counts: polygons in coordinates relative to the picture (0..1 from the left and
//! from the top), so that they fit every stream of a camera.

/// Points of one zone, at most.
pub const MAX_ZONE_POINTS: usize = 64;

/// One polygon, its points in picture-relative coordinates, in order (closed implicitly).
#[derive(Clone, Debug, PartialEq)]
pub struct Zone {
    /// `(x, y)`, each in 0..=1.
    pub points: Vec<(f32, f32)>,
}

/// Why a zone cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ZoneError {
    /// Fewer than three points, or more than [`MAX_ZONE_POINTS`].
    #[error("a zone needs 3..={MAX_ZONE_POINTS} points, this one has {0}")]
    Points(usize),
    /// A coordinate outside 0..=1 (or not a number).
    #[error("point {0}: coordinates are fractions of the picture, 0..=1")]
    OutOfRange(usize),
}

impl Zone {
    /// Checks the point count and range.
    pub fn check(&self) -> Result<(), ZoneError> {
        if !(3..=MAX_ZONE_POINTS).contains(&self.points.len()) {
            return Err(ZoneError::Points(self.points.len()));
        }
        let ok = |v: f32| (0.0..=1.0).contains(&v);
        match self.points.iter().position(|&(x, y)| !(ok(x) && ok(y))) {
            Some(i) => Err(ZoneError::OutOfRange(i)),
            None => Ok(()),
        }
    }

    /// Whether the picture-relative point `(x, y)` is inside (even-odd rule).
    pub fn contains(&self, x: f32, y: f32) -> bool {
        let mut inside = false;
        let n = self.points.len();
        for i in 0..n {
            let (xi, yi) = self.points[i];
            let (xj, yj) = self.points[(i + n - 1) % n];
            if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
                inside = !inside;
            }
        }
        inside
    }
}

/// The cells of a `width`×`height` grid whose centres lie in one of `zones` (every cell when
/// there is none).
pub fn mask(zones: &[Zone], (width, height): (usize, usize)) -> Vec<bool> {
    if zones.is_empty() {
        return vec![true; width * height];
    }
    let mut out = Vec::with_capacity(width * height);
    for gy in 0..height {
        let y = (gy as f32 + 0.5) / height as f32;
        for gx in 0..width {
            let x = (gx as f32 + 0.5) / width as f32;
            out.push(zones.iter().any(|z| z.contains(x, y)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rect(x0: f32, y0: f32, x1: f32, y1: f32) -> Zone {
        Zone {
            points: vec![(x0, y0), (x1, y0), (x1, y1), (x0, y1)],
        }
    }

    #[test]
    fn a_half_picture_zone_covers_half_the_cells() {
        let m = mask(&[rect(0.0, 0.0, 1.0, 0.5)], (4, 4));
        assert_eq!(m.iter().filter(|&&c| c).count(), 8);
        assert!(m[..8].iter().all(|&c| c));
    }

    #[test]
    fn triangles_and_unions() {
        let tri = Zone {
            points: vec![(0.0, 0.0), (1.0, 0.0), (0.0, 1.0)],
        };
        assert!(tri.contains(0.2, 0.2));
        assert!(!tri.contains(0.8, 0.8));
        let m = mask(&[tri, rect(0.5, 0.5, 1.0, 1.0)], (2, 2));
        assert_eq!(m, vec![true, false, false, true]);
    }

    #[test]
    fn bad_zones_are_named() {
        let two = Zone {
            points: vec![(0.0, 0.0), (1.0, 1.0)],
        };
        assert_eq!(two.check(), Err(ZoneError::Points(2)));
        let out = Zone {
            points: vec![(0.0, 0.0), (1.5, 0.0), (0.0, 1.0)],
        };
        assert_eq!(out.check(), Err(ZoneError::OutOfRange(1)));
        let nan = Zone {
            points: vec![(0.0, 0.0), (1.0, f32::NAN), (0.0, 1.0)],
        };
        assert_eq!(nan.check(), Err(ZoneError::OutOfRange(1)));
        assert!(rect(0.0, 0.0, 1.0, 1.0).check().is_ok());
    }
}
