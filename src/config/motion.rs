//! `[cameras.motion_detection]`: motion from the camera's own pictures (media's
//! `motion` detector, run by `camera::motion`).

use serde::{Deserialize, Serialize};

use super::{ConfigError, invalid};

/// Zones per camera, at most.
pub(crate) const MAX_ZONES: usize = 16;
/// Longest cooldown (seconds).
pub(crate) const MAX_COOLDOWN: u32 = 3600;
/// Smallest and largest `min_area` (percent of the picture).
const MIN_AREA_RANGE: std::ops::RangeInclusive<f32> = 0.01..=50.0;
/// Analysis rates allowed (pictures a second).
const FPS_RANGE: std::ops::RangeInclusive<f32> = 1.0..=15.0;

/// How a camera watches its pictures for motion. Keys left out take their defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct MotionDetection {
    /// Watch the pictures (the camera's substream when it has one). Needs the motion sensor.
    pub(crate) enabled: bool,
    /// 1 (only strong changes) to 100 (faint ones count).
    pub(crate) sensitivity: u8,
    /// Polygons where motion counts, points as `[x, y]` fractions of the picture (0..1 from the
    /// left and the top); none = the whole picture.
    pub(crate) zones: Vec<Vec<[f32; 2]>>,
    /// The smallest moving area that counts, in percent of the picture.
    pub(crate) min_area: f32,
    /// Seconds after a motion event ends during which new motion is not reported.
    pub(crate) cooldown: u32,
    /// Pictures analysed a second.
    pub(crate) fps: f32,
}

// Every float is checked finite by `validate` before a camera is used or stored.
impl Eq for MotionDetection {}

impl Default for MotionDetection {
    fn default() -> Self {
        Self {
            enabled: false,
            sensitivity: media::motion::DEFAULT_SENSITIVITY,
            zones: Vec::new(),
            min_area: media::motion::DEFAULT_MIN_AREA * 100.0,
            cooldown: 5,
            fps: 5.0,
        }
    }
}

impl MotionDetection {
    /// The field names, for messages about unknown ones.
    pub(crate) const NAMES: &'static [&'static str] = &[
        "enabled",
        "sensitivity",
        "zones",
        "min_area",
        "cooldown",
        "fps",
    ];

    /// Checks the values; error fields are `prefix` + the field name.
    pub(crate) fn validate(&self, prefix: &str, motion_sensor: bool) -> Result<(), ConfigError> {
        let field = |name: &str| format!("{prefix}{name}");
        if self.enabled && !motion_sensor {
            return Err(invalid(
                field("enabled"),
                "needs the camera's motion sensor (sensors.motion = true)",
            ));
        }
        if !(1..=100).contains(&self.sensitivity) {
            return Err(invalid(field("sensitivity"), "must be 1..=100"));
        }
        if !MIN_AREA_RANGE.contains(&self.min_area) {
            return Err(invalid(
                field("min_area"),
                format!(
                    "must be {}..={} (percent of the picture)",
                    MIN_AREA_RANGE.start(),
                    MIN_AREA_RANGE.end()
                ),
            ));
        }
        if self.cooldown > MAX_COOLDOWN {
            return Err(invalid(
                field("cooldown"),
                format!("must be 0..={MAX_COOLDOWN} seconds"),
            ));
        }
        if !FPS_RANGE.contains(&self.fps) {
            return Err(invalid(
                field("fps"),
                format!(
                    "must be {}..={} pictures a second",
                    FPS_RANGE.start(),
                    FPS_RANGE.end()
                ),
            ));
        }
        if self.zones.len() > MAX_ZONES {
            return Err(invalid(
                field("zones"),
                format!("at most {MAX_ZONES} zones"),
            ));
        }
        for (i, zone) in self.zones().iter().enumerate() {
            zone.check()
                .map_err(|e| invalid(field(&format!("zones[{i}]")), e.to_string()))?;
        }
        Ok(())
    }

    /// The zones as the detector takes them.
    pub(crate) fn zones(&self) -> Vec<media::motion::Zone> {
        self.zones
            .iter()
            .map(|points| media::motion::Zone {
                points: points.iter().map(|&[x, y]| (x, y)).collect(),
            })
            .collect()
    }

    /// The watcher's configuration.
    pub(crate) fn watch_config(&self) -> media::motion::watch::WatchConfig {
        media::motion::watch::WatchConfig {
            settings: media::motion::MotionSettings {
                sensitivity: self.sensitivity,
                zones: self.zones(),
                min_area: self.min_area / 100.0,
            },
            fps: self.fps,
        }
    }
}
