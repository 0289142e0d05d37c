//! Motion from the pictures themselves: a detector that tells a moving object from sensor noise
//! and lighting changes, and (feature `runtime`) a watcher that feeds it a camera's pictures on
//! its own thread.
//!
//! ```text
//!  hub ──▶ watch::MotionWatcher (thread: decode, pick ~5 pictures/s, downscale luma)
//!                 └──▶ detector::Detector ──▶ Analysis (motion?, changed area, lighting change)
//! ```
//!
//! The detector is pure (no I/O, no clock): it takes a small luma picture
//! ([`luma::downscale`], [`GRID_WIDTH`] columns) and keeps a background model. Per picture:
//!
//! 1. the difference to the background, minus its median (a global brightness shift, such as a
//!    slow ramp, moves every pixel alike and is taken out);
//! 2. the scene's noise as the median absolute deviation of that difference; a pixel changed
//!    when its difference exceeds a multiple of the noise (and a floor), both set by the
//!    sensitivity;
//! 3. a lighting change (lights on, IR switch, a cloud) shifts the median abruptly or changes
//!    most of the picture: the background is taken anew and nothing fires;
//! 4. an opening (erode, dilate) removes isolated pixels, and only a connected changed area of
//!    at least `min_area` of the picture, inside the zones, is motion;
//! 5. the background follows the scene (a running average; slower where motion is), and what
//!    stopped moving (a parked car, an object that left) joins it after
//!    [`detector::STILL_ABSORB`] pictures.

pub mod blobs;
pub mod detector;
pub mod luma;
pub mod render;
#[cfg(feature = "runtime")]
pub mod watch;
pub mod zones;

pub use detector::{Analysis, Detector};
pub use zones::Zone;

/// Columns of the picture the detector works on (rows follow the source's aspect ratio).
pub const GRID_WIDTH: usize = 160;
/// Rows of that picture, at most (a very tall source is squeezed).
pub const MAX_GRID_HEIGHT: usize = 160;
/// Rows of that picture, at least.
pub const MIN_GRID_HEIGHT: usize = 16;

/// How a camera's motion is told from noise.
#[derive(Clone, Debug, PartialEq)]
pub struct MotionSettings {
    /// 1 (only large, strong changes) to 100 (faint changes count).
    pub sensitivity: u8,
    /// Where motion counts; empty = the whole picture.
    pub zones: Vec<Zone>,
    /// The smallest connected changed area that is motion, as a fraction of the picture.
    pub min_area: f32,
}

impl Default for MotionSettings {
    fn default() -> Self {
        Self {
            sensitivity: DEFAULT_SENSITIVITY,
            zones: Vec::new(),
            min_area: DEFAULT_MIN_AREA,
        }
    }
}

/// Default sensitivity.
pub const DEFAULT_SENSITIVITY: u8 = 50;
/// Default smallest area: 0.5 % of the picture.
pub const DEFAULT_MIN_AREA: f32 = 0.005;

/// The detector's picture size for a `width`×`height` source: [`GRID_WIDTH`] columns and the
/// rows that keep the aspect ratio, within [`MIN_GRID_HEIGHT`]..=[`MAX_GRID_HEIGHT`].
pub fn grid_size(width: u32, height: u32) -> (usize, usize) {
    let rows = if width == 0 {
        MIN_GRID_HEIGHT
    } else {
        (GRID_WIDTH as u64 * u64::from(height) / u64::from(width)) as usize
    };
    (GRID_WIDTH, rows.clamp(MIN_GRID_HEIGHT, MAX_GRID_HEIGHT))
}
