//! The motion detector (see the module docs of [`super`] for the steps).

use super::MotionSettings;
use super::blobs::{largest_area, open};
use super::zones::mask as zone_mask;

/// Pictures after the first (or after a lighting change) in which nothing fires while the
/// background and the noise estimate settle.
pub const WARMUP_PICTURES: u32 = 2;
/// Background update rate where nothing changed (per analysed picture; at 5 pictures a second a
/// slow lighting ramp is followed with a lag of about 5 times its change per picture).
pub const BACKGROUND_RATE: f32 = 0.2;
/// Background update rate where motion is.
pub const MOTION_RATE: f32 = 0.02;
/// Pictures a changed cell must stay still (within the threshold) before it joins the
/// background: an object that stopped, or the place an object left.
pub const STILL_ABSORB: u8 = 10;
/// A median shift of the whole picture above this many luma levels is a lighting change.
pub const LIGHTING_SHIFT: f32 = 10.0;
/// More than this fraction of the zones changed at once is a lighting change.
pub const LIGHTING_FRACTION: f32 = 0.35;
/// The threshold grows by this fraction of the picture's brightness shift (pixels near black
/// or white, or the camera's gamma, do not follow a global change linearly).
pub const SHIFT_SLACK: f32 = 0.5;
/// Median absolute deviation to standard deviation, for normally distributed noise.
const MAD_TO_SIGMA: f32 = 1.4826;

/// What one picture showed.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Analysis {
    /// A connected changed area of at least the minimum inside the zones.
    pub motion: bool,
    /// The largest connected changed area, as a fraction of the picture.
    pub area: f32,
    /// Changed cells inside the zones (before the opening), as a fraction of the zones.
    pub changed: f32,
    /// The picture's median change since the background (luma levels).
    pub shift: f32,
    /// The scene's noise (standard deviation, luma levels of the detector's picture).
    pub noise: f32,
    /// The change a cell needed to count (luma levels).
    pub threshold: f32,
    /// A lighting change: the background was taken anew and nothing fired.
    pub lighting_change: bool,
}

/// Why a picture could not be analysed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DetectorError {
    /// The picture is not the detector's size.
    #[error("picture of {got} cells, the detector works on {want}")]
    Size {
        /// Cells given.
        got: usize,
        /// Cells expected.
        want: usize,
    },
}

/// A background model and the state of the last picture, for one camera at one grid size.
pub struct Detector {
    size: (usize, usize),
    zone: Vec<bool>,
    zone_cells: usize,
    min_cells: usize,
    noise_factor: f32,
    floor: f32,
    background: Vec<f32>,
    previous: Vec<u8>,
    still: Vec<u8>,
    warmup: u32,
    changed: Vec<bool>,
    scratch: Vec<bool>,
    stack: Vec<usize>,
    shift_bins: Vec<u32>,
    noise_bins: Vec<u32>,
}

/// Bins per luma level of the median-shift histogram, which spans -255..=255.
const SHIFT_BINS_PER_LEVEL: f32 = 2.0;
/// Bins per luma level of the noise histogram, which spans 0..[`NOISE_SPAN`].
const NOISE_BINS_PER_LEVEL: f32 = 4.0;
/// Noise deviations at or above this many levels land in the last bin.
const NOISE_SPAN: f32 = 64.0;

impl Detector {
    /// A detector for pictures of `size` (columns, rows) with `settings`.
    pub fn new(settings: &MotionSettings, size: (usize, usize)) -> Self {
        let cells = size.0 * size.1;
        let zone = zone_mask(&settings.zones, size);
        let zone_cells = zone.iter().filter(|&&z| z).count();
        // 1 (least sensitive) .. 100 (most): a multiple of the noise and a floor in levels.
        let dull = f32::from(100 - settings.sensitivity.clamp(1, 100)) / 99.0;
        let min_cells = ((settings.min_area.clamp(0.0, 1.0) * cells as f32).ceil() as usize).max(1);
        Self {
            size,
            zone,
            zone_cells,
            min_cells,
            noise_factor: 3.0 + 6.0 * dull,
            floor: 3.0 + 12.0 * dull,
            background: Vec::new(),
            previous: vec![0; cells],
            still: vec![0; cells],
            warmup: 0,
            changed: vec![false; cells],
            scratch: Vec::new(),
            stack: Vec::new(),
            shift_bins: vec![0; (510.0 * SHIFT_BINS_PER_LEVEL) as usize + 1],
            noise_bins: vec![0; (NOISE_SPAN * NOISE_BINS_PER_LEVEL) as usize + 1],
        }
    }

    /// The picture size this detector works on.
    pub fn size(&self) -> (usize, usize) {
        self.size
    }

    /// The zones as a cell mask.
    pub fn zone(&self) -> &[bool] {
        &self.zone
    }

    /// The changed cells of the last picture (after the opening, inside the zones).
    pub fn changed(&self) -> &[bool] {
        &self.changed
    }

    /// The last picture analysed.
    pub fn picture(&self) -> &[u8] {
        &self.previous
    }

    /// Analyses one picture of the detector's size.
    pub fn analyse(&mut self, luma: &[u8]) -> Result<Analysis, DetectorError> {
        let cells = self.size.0 * self.size.1;
        if luma.len() != cells {
            return Err(DetectorError::Size {
                got: luma.len(),
                want: cells,
            });
        }
        if self.background.is_empty() {
            self.rebase(luma);
            return Ok(Analysis::default());
        }
        let shift = self.median_shift(luma);
        let noise = self.noise(luma, shift);
        let threshold = (self.noise_factor * noise).max(self.floor) + SHIFT_SLACK * shift.abs();
        let mut changed_cells = 0usize;
        for (i, &v) in luma.iter().enumerate() {
            let d = (f32::from(v) - self.background[i] - shift).abs();
            let c = self.zone[i] && d > threshold;
            self.changed[i] = c;
            changed_cells += usize::from(c);
        }
        let changed = changed_cells as f32 / self.zone_cells.max(1) as f32;
        let mut analysis = Analysis {
            changed,
            shift,
            noise,
            threshold,
            ..Analysis::default()
        };
        if shift.abs() > LIGHTING_SHIFT || changed > LIGHTING_FRACTION {
            self.rebase(luma);
            analysis.lighting_change = true;
            return Ok(analysis);
        }
        open(&mut self.changed, &mut self.scratch, self.size);
        let mut seen = std::mem::take(&mut self.scratch);
        let largest = largest_area(&self.changed, self.size, &mut self.stack, &mut seen);
        self.scratch = seen;
        analysis.area = largest as f32 / cells as f32;
        if self.warmup > 0 {
            self.warmup -= 1;
        } else {
            analysis.motion = largest >= self.min_cells;
        }
        self.learn(luma, threshold);
        Ok(analysis)
    }

    /// Takes `luma` as the background and starts a warm-up.
    fn rebase(&mut self, luma: &[u8]) {
        self.background.clear();
        self.background.extend(luma.iter().map(|&v| f32::from(v)));
        self.previous.copy_from_slice(luma);
        self.still.fill(0);
        self.changed.fill(false);
        self.warmup = WARMUP_PICTURES;
    }

    /// The median of (picture - background) over the whole picture.
    fn median_shift(&mut self, luma: &[u8]) -> f32 {
        self.shift_bins.fill(0);
        let last = self.shift_bins.len() - 1;
        for (i, &v) in luma.iter().enumerate() {
            let d = f32::from(v) - self.background[i];
            let bin = ((d + 255.0) * SHIFT_BINS_PER_LEVEL).round() as usize;
            self.shift_bins[bin.min(last)] += 1;
        }
        median_bin(&self.shift_bins, luma.len()) as f32 / SHIFT_BINS_PER_LEVEL - 255.0
    }

    /// The noise's standard deviation from the median absolute deviation of the difference.
    fn noise(&mut self, luma: &[u8], shift: f32) -> f32 {
        self.noise_bins.fill(0);
        let last = self.noise_bins.len() - 1;
        for (i, &v) in luma.iter().enumerate() {
            let d = (f32::from(v) - self.background[i] - shift).abs();
            let bin = (d * NOISE_BINS_PER_LEVEL).round() as usize;
            self.noise_bins[bin.min(last)] += 1;
        }
        MAD_TO_SIGMA * median_bin(&self.noise_bins, luma.len()) as f32 / NOISE_BINS_PER_LEVEL
    }

    /// Updates the background: fast where nothing changed, slowly where motion is, and at once
    /// where a changed cell stayed still for [`STILL_ABSORB`] pictures.
    fn learn(&mut self, luma: &[u8], threshold: f32) {
        for (i, &v) in luma.iter().enumerate() {
            let v_f = f32::from(v);
            if self.changed[i] {
                let still = (v_f - f32::from(self.previous[i])).abs() <= threshold;
                self.still[i] = if still {
                    self.still[i].saturating_add(1)
                } else {
                    0
                };
                if self.still[i] >= STILL_ABSORB {
                    self.background[i] = v_f;
                    self.still[i] = 0;
                } else {
                    self.background[i] += MOTION_RATE * (v_f - self.background[i]);
                }
            } else {
                self.still[i] = 0;
                self.background[i] += BACKGROUND_RATE * (v_f - self.background[i]);
            }
        }
        self.previous.copy_from_slice(luma);
    }
}

/// The bin holding the median of `total` counts.
fn median_bin(bins: &[u32], total: usize) -> usize {
    let half = total.div_ceil(2) as u64;
    let mut seen = 0u64;
    for (i, &n) in bins.iter().enumerate() {
        seen += u64::from(n);
        if seen >= half {
            return i;
        }
    }
    bins.len().saturating_sub(1)
}

#[cfg(test)]
mod tests;
