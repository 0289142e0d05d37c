//! Camera settings: the settings themselves ([`CameraSettings`]), their one parser
//! ([`CameraFields`], serde, shared by the TOML configuration file, the admin API's JSON and the
//! state store), and their checks. Errors name the field.

use std::fmt;

use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::motion::MotionDetection;
use super::source::{Source, check_source, mask_url};
use super::{
    ConfigError, DEFAULT_MAX_STREAMS, MAX_CAMERA_ID_LEN, MAX_STREAMS_LIMIT, TEST_PATTERN,
    check_name, invalid,
};

/// `[[cameras]]`: one camera. Read through [`CameraFields`], the one parser of camera settings
/// (configuration file, admin API and the store alike).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "CameraFields")]
pub(crate) struct CameraSettings {
    /// Stable identifier (`[a-z0-9_-]`); AIDs and standalone identities are keyed on it.
    pub(crate) id: String,
    /// Name shown in the Home app.
    pub(crate) name: String,
    /// Main stream: an RTSP URL or `test-pattern`.
    pub(crate) source: Source,
    /// Optional lower-resolution RTSP stream.
    pub(crate) substream: Option<Source>,
    /// Whether the camera is exposed at all.
    pub(crate) enabled: bool,
    /// Bridged behind the bridge (default) or a standalone accessory with its own pairing.
    pub(crate) mode: CameraMode,
    /// HAP port of a standalone camera; absent = chosen by the OS at start.
    pub(crate) port: Option<u16>,
    /// Sensor services attached to the camera.
    pub(crate) sensors: Sensors,
    /// Most concurrent live streams.
    pub(crate) max_streams: u8,
    /// Keep the RTSP pull running even with no viewer (faster stream start).
    pub(crate) always_on: bool,
    /// Re-encode when the camera's stream does not fit (auto), never, or always.
    pub(crate) transcode: Transcode,
    /// Motion from the camera's own pictures.
    pub(crate) motion_detection: MotionDetection,
}

/// When a camera's pictures are re-encoded for a live stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Transcode {
    /// Pass the best-fitting stream through when it fits the request, re-encode otherwise.
    #[default]
    Auto,
    /// Pass the best-fitting stream through, even larger than the request (never above the
    /// largest size the bridge advertises).
    Never,
    /// Always re-encode (to the requested size, rate and bit rate).
    Always,
}

impl Transcode {
    /// The name used in the configuration and the API.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Never => "never",
            Self::Always => "always",
        }
    }
}

/// Bridged or standalone (ARCHITECTURE.md key decision 1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum CameraMode {
    /// An accessory behind the bridge (aid ≠ 1).
    #[default]
    Bridged,
    /// Its own HAP server, identity, pairings and mDNS record.
    Standalone,
}

/// `cameras[].sensors`: a table (`{ motion = true, doorbell = true }`, missing keys take their
/// defaults) or a list of names (`["motion", "doorbell"]`, exactly those).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct Sensors {
    /// Motion sensor service.
    pub(crate) motion: bool,
    /// Occupancy sensor service.
    pub(crate) occupancy: bool,
    /// Doorbell (programmable switch) service; the accessory becomes a video doorbell.
    pub(crate) doorbell: bool,
}

impl Default for Sensors {
    fn default() -> Self {
        Self {
            motion: true,
            occupancy: false,
            doorbell: false,
        }
    }
}

impl CameraSettings {
    /// Checks this camera's own fields (not its relation to other cameras: unique id and
    /// port are checked by [`super::Config::validate`]); error fields are `prefix` + the field name.
    pub(crate) fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        let field = |name: &str| format!("{prefix}{name}");
        check_camera_id(&field("id"), &self.id)?;
        check_name(&field("name"), &self.name)?;
        check_source(&field("source"), &self.source)?;
        if let Some(sub) = &self.substream {
            if *sub == Source::TestPattern {
                return Err(invalid(field("substream"), "must be an rtsp:// URL"));
            }
            check_source(&field("substream"), sub)?;
        }
        if !(1..=MAX_STREAMS_LIMIT).contains(&self.max_streams) {
            return Err(invalid(
                field("max_streams"),
                format!("must be 1..={MAX_STREAMS_LIMIT}"),
            ));
        }
        self.motion_detection
            .validate(&field("motion_detection."), self.sensors.motion)?;
        match (self.mode, self.port) {
            (CameraMode::Bridged, Some(_)) => Err(invalid(
                field("port"),
                "only a standalone camera has its own port",
            )),
            (CameraMode::Standalone, Some(0)) => Err(invalid(field("port"), "must be 1..=65535")),
            _ => Ok(()),
        }
    }
}

fn check_camera_id(field: &str, id: &str) -> Result<(), ConfigError> {
    if id.is_empty() || id.len() > MAX_CAMERA_ID_LEN {
        return Err(invalid(
            field,
            format!("must be 1..={MAX_CAMERA_ID_LEN} characters"),
        ));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_'))
    {
        return Err(invalid(
            field,
            format!("{id:?} contains {c:?}; use only a-z, 0-9, '-' and '_'"),
        ));
    }
    Ok(())
}

/// Camera settings as written, every field optional: the one parser of the configuration
/// file's `[[cameras]]` (TOML), the admin API's camera objects (JSON) and the cameras kept in the
/// store. [`CameraFields::into_settings`] makes a new camera (defaults for what is absent) or
/// changes a current one (what is absent stays). `rtsp_url` is accepted for `source` (the old
/// service's name).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CameraFields {
    id: Option<String>,
    name: Option<String>,
    #[serde(alias = "rtsp_url")]
    source: Option<String>,
    /// `Some(None)`: given as `null` (the API's "no substream").
    #[serde(default, deserialize_with = "given")]
    substream: Option<Option<String>>,
    enabled: Option<bool>,
    mode: Option<CameraMode>,
    /// `Some(None)`: given as `null` (the API's "any port").
    #[serde(default, deserialize_with = "given")]
    port: Option<Option<u16>>,
    sensors: Option<Sensors>,
    max_streams: Option<u8>,
    always_on: Option<bool>,
    transcode: Option<Transcode>,
    motion_detection: Option<MotionDetection>,
}

impl CameraFields {
    /// The field names, for messages.
    pub(crate) const NAMES: &'static [&'static str] = &[
        "id",
        "name",
        "source",
        "substream",
        "enabled",
        "mode",
        "port",
        "sensors",
        "max_streams",
        "always_on",
        "transcode",
        "motion_detection",
    ];

    /// A new camera (`current` is `None`: `id`, `name` and `source` required, defaults for the
    /// rest), or `current` with the fields given here. Field-level checks only: the whole camera
    /// is checked by [`CameraSettings::validate`].
    pub(crate) fn into_settings(
        self,
        current: Option<&CameraSettings>,
    ) -> Result<CameraSettings, ConfigError> {
        let id = match (self.id, current) {
            (Some(id), Some(cur)) if id != cur.id => {
                return Err(invalid(
                    "id",
                    format!(
                        "cannot change ({:?} to {id:?}); remove the camera and add it again",
                        cur.id
                    ),
                ));
            }
            (Some(id), _) => id,
            (None, Some(cur)) => cur.id.clone(),
            (None, None) => return Err(invalid("id", "missing")),
        };
        let name = match (self.name, current) {
            (Some(name), _) => name,
            (None, Some(cur)) => cur.name.clone(),
            (None, None) => return Err(invalid("name", "missing")),
        };
        let source = match (self.source, current) {
            (Some(text), cur) => source_from(text, cur.map(|c| &c.source)),
            (None, Some(cur)) => cur.source.clone(),
            (None, None) => {
                return Err(invalid(
                    "source",
                    format!("missing (an rtsp:// URL or {TEST_PATTERN:?})"),
                ));
            }
        };
        let substream = match self.substream {
            Some(Some(text)) => Some(source_from(
                text,
                current.and_then(|c| c.substream.as_ref()),
            )),
            Some(None) => None,
            None => current.and_then(|c| c.substream.clone()),
        };
        let mode = self
            .mode
            .or_else(|| current.map(|c| c.mode))
            .unwrap_or_default();
        let port = match self.port {
            Some(port) => port,
            // Back to bridged: a port no longer applies.
            None if mode == CameraMode::Bridged => None,
            None => current.and_then(|c| c.port),
        };
        Ok(CameraSettings {
            id,
            name,
            source,
            substream,
            enabled: self
                .enabled
                .or_else(|| current.map(|c| c.enabled))
                .unwrap_or(true),
            mode,
            port,
            sensors: self
                .sensors
                .or_else(|| current.map(|c| c.sensors))
                .unwrap_or_default(),
            max_streams: self
                .max_streams
                .or_else(|| current.map(|c| c.max_streams))
                .unwrap_or(DEFAULT_MAX_STREAMS),
            always_on: self
                .always_on
                .or_else(|| current.map(|c| c.always_on))
                .unwrap_or(false),
            transcode: self
                .transcode
                .or_else(|| current.map(|c| c.transcode))
                .unwrap_or_default(),
            motion_detection: self
                .motion_detection
                .or_else(|| current.map(|c| c.motion_detection.clone()))
                .unwrap_or_default(),
        })
    }
}

impl TryFrom<CameraFields> for CameraSettings {
    type Error = ConfigError;

    fn try_from(fields: CameraFields) -> Result<Self, Self::Error> {
        fields.into_settings(None)
    }
}

/// A parser's message about the field at `path` (`port`, `sensors[0]`, `.` for the object
/// itself) as the bridge words errors: the field first, then what it must be.
pub(crate) fn field_error(path: &str, message: &str) -> String {
    let path = if path == "." { "" } else { path };
    if let Some(rest) = message.strip_prefix("unknown field `")
        && let Some((name, _)) = rest.split_once('`')
    {
        // Some parsers put the unknown key itself at the end of the path, some do not.
        let parent = path
            .strip_suffix(name)
            .map_or(path, |p| p.trim_end_matches('.'));
        let (prefix, known) = if parent.is_empty() {
            (String::new(), CameraFields::NAMES.join(", "))
        } else if parent.ends_with("motion_detection") {
            (format!("{parent}."), MotionDetection::NAMES.join(", "))
        } else {
            (
                format!("{parent}."),
                "motion, occupancy, doorbell".to_owned(),
            )
        };
        return format!("{prefix}{name}: unknown field (known: {known})");
    }
    if let Some(rest) = message.strip_prefix("invalid type: ")
        && let Some((got, expected)) = rest.split_once(", expected ")
    {
        let expected = match expected {
            "u8" => "an integer 0..=255",
            "u16" => "a port number 0..=65535",
            "a boolean" => "true or false",
            other => other,
        };
        return format!("{path}: must be {expected} (got {got})");
    }
    format!("{path}: {message}")
}

/// `null` given for an optional field (`Some(None)`), as opposed to the field left out (`None`).
fn given<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A source from text; the masked form of the current URL keeps the current URL (a client
/// sending back what it read).
fn source_from(text: String, current: Option<&Source>) -> Source {
    if let Some(Source::Rtsp(url)) = current
        && text != url.expose()
        && text == mask_url(url.expose())
    {
        return Source::Rtsp(url.clone());
    }
    Source::from(text)
}

/// One sensor's name in the list form of `sensors`.
#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum SensorName {
    Motion,
    Occupancy,
    Doorbell,
}

/// A key of the table form of `sensors`.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum SensorKey {
    Motion,
    Occupancy,
    Doorbell,
}

impl<'de> Deserialize<'de> for Sensors {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SensorsVisitor;

        impl<'de> Visitor<'de> for SensorsVisitor {
            type Value = Sensors;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list such as [\"motion\", \"doorbell\"] or a table of booleans")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Sensors, A::Error> {
                let mut s = Sensors {
                    motion: false,
                    occupancy: false,
                    doorbell: false,
                };
                while let Some(name) = seq.next_element::<SensorName>()? {
                    match name {
                        SensorName::Motion => s.motion = true,
                        SensorName::Occupancy => s.occupancy = true,
                        SensorName::Doorbell => s.doorbell = true,
                    }
                }
                Ok(s)
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Sensors, A::Error> {
                let mut s = Sensors::default();
                while let Some(key) = map.next_key::<SensorKey>()? {
                    let on = map.next_value::<bool>()?;
                    match key {
                        SensorKey::Motion => s.motion = on,
                        SensorKey::Occupancy => s.occupancy = on,
                        SensorKey::Doorbell => s.doorbell = on,
                    }
                }
                Ok(s)
            }
        }

        deserializer.deserialize_any(SensorsVisitor)
    }
}
