//! The bridge's TOML configuration: parsing, defaults and validation.
//!
//! Every validation error names the offending field (`cameras[1].id: duplicate id "front"`);
//! TOML syntax errors carry line and column. RTSP URLs may hold a password: [`source::RtspUrl`] masks it
//! in `Debug` and `Display`, and [`mask_url`] masks any URL string for logs.

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod camera;
mod motion;
mod source;

pub(crate) use camera::{
    CameraFields, CameraMode, CameraSettings, Sensors, Transcode, field_error,
};
pub(crate) use motion::MotionDetection;
pub(crate) use source::{Source, check_source, mask_url};

/// The whole configuration file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    /// The bridge accessory and its HAP server.
    #[serde(default)]
    pub(crate) bridge: BridgeConfig,
    /// The cameras, in the order given.
    #[serde(default)]
    pub(crate) cameras: Vec<CameraSettings>,
    /// Sensor timings.
    #[serde(default)]
    pub(crate) timings: Timings,
    /// The admin API.
    #[serde(default)]
    pub(crate) api: ApiConfig,
}

/// `[api]`: the admin API.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ApiConfig {
    /// Bearer token the API requires (`Authorization: Bearer ...`). Without it the API needs
    /// none on a loopback address and generates one (kept in the store) on any other.
    pub(crate) token: Option<String>,
}

impl fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token is a secret.
        f.debug_struct("ApiConfig")
            .field("token", &self.token.as_ref().map(|_| "***"))
            .finish()
    }
}

/// `[bridge]`: the bridge accessory (aid 1) and its HAP server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct BridgeConfig {
    /// Accessory name, also the mDNS instance name.
    pub(crate) name: String,
    /// HAP TCP port.
    pub(crate) port: u16,
    /// Addresses the HAP server listens on.
    pub(crate) bind: Vec<IpAddr>,
    /// Interfaces (names such as `eth0`, or addresses) mDNS advertises on; empty = all.
    pub(crate) mdns_interfaces: Vec<String>,
    /// Accessory Information manufacturer.
    pub(crate) manufacturer: String,
    /// Accessory Information model, also the TXT `md`.
    pub(crate) model: String,
    /// Directory of the persistent state store.
    pub(crate) data_dir: PathBuf,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        Self {
            name: "HAP Bridge".to_owned(),
            port: DEFAULT_HAP_PORT,
            bind: vec![IpAddr::V4(Ipv4Addr::UNSPECIFIED)],
            mdns_interfaces: Vec::new(),
            manufacturer: "hap-bridge".to_owned(),
            model: "HAP Bridge".to_owned(),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
        }
    }
}

/// `[timings]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Timings {
    /// Seconds without a new trigger after which motion is reported as ended.
    pub(crate) motion_reset_seconds: u32,
    /// Longest continuous motion event, in seconds.
    pub(crate) max_motion_duration: u32,
}

impl Default for Timings {
    fn default() -> Self {
        Self {
            motion_reset_seconds: 30,
            max_motion_duration: 300,
        }
    }
}

/// A configuration that could not be read, parsed or accepted.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// TOML syntax or type error (including unknown fields).
    #[error("{origin}:{line}:{column}: {message}")]
    Syntax {
        /// The file name, or `<config>` for a string.
        origin: String,
        /// 1-based line.
        line: usize,
        /// 1-based column (in characters).
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// A value that parses but is not acceptable.
    #[error("{field}: {message}")]
    Invalid {
        /// The field path, e.g. `cameras[1].id`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
}

impl Default for Config {
    /// The configuration used when no file is given: a bridge with one test-pattern camera.
    fn default() -> Self {
        Self {
            bridge: BridgeConfig::default(),
            cameras: vec![CameraSettings {
                id: "demo".to_owned(),
                name: "Demo Camera".to_owned(),
                source: Source::TestPattern,
                substream: None,
                enabled: true,
                mode: CameraMode::Bridged,
                port: None,
                sensors: Sensors::default(),
                max_streams: DEFAULT_MAX_STREAMS,
                always_on: false,
                transcode: Transcode::Auto,
                motion_detection: MotionDetection::default(),
            }],
            timings: Timings::default(),
            api: ApiConfig::default(),
        }
    }
}

impl Config {
    /// Reads, parses and validates a file.
    pub(crate) fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and validates TOML text; `origin` names it in syntax errors.
    pub(crate) fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|e| {
            let (line, column) = e
                .span()
                .map_or((1, 1), |span| line_column(text, span.start));
            ConfigError::Syntax {
                origin: origin.to_owned(),
                line,
                column,
                message: e.message().trim_end().to_owned(),
            }
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every rule that the types alone do not; the first violation is returned.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let b = &self.bridge;
        check_name("bridge.name", &b.name)?;
        if b.bind.is_empty() {
            return Err(invalid("bridge.bind", "must list at least one address"));
        }
        for (i, iface) in b.mdns_interfaces.iter().enumerate() {
            if iface.trim().is_empty() {
                return Err(invalid(
                    format!("bridge.mdns_interfaces[{i}]"),
                    "must not be empty",
                ));
            }
        }
        check_name("bridge.manufacturer", &b.manufacturer)?;
        check_name("bridge.model", &b.model)?;
        if let Some(token) = &self.api.token {
            if token.len() < MIN_API_TOKEN || token.len() > MAX_API_TOKEN {
                return Err(invalid(
                    "api.token",
                    format!("must be {MIN_API_TOKEN} to {MAX_API_TOKEN} characters long"),
                ));
            }
            if !token.bytes().all(|c| c.is_ascii_graphic()) {
                return Err(invalid(
                    "api.token",
                    "must be printable ASCII without spaces",
                ));
            }
        }
        if b.data_dir.as_os_str().is_empty() {
            return Err(invalid("bridge.data_dir", "must not be empty"));
        }

        let bridged = self
            .cameras
            .iter()
            .filter(|c| c.mode == CameraMode::Bridged)
            .count();
        if bridged > MAX_BRIDGED_CAMERAS {
            return Err(invalid(
                "cameras",
                format!("{bridged} bridged cameras; a bridge holds at most {MAX_BRIDGED_CAMERAS}"),
            ));
        }
        let mut ids = HashSet::new();
        let mut ports = HashSet::from([b.port]);
        for (i, cam) in self.cameras.iter().enumerate() {
            let prefix = format!("cameras[{i}].");
            cam.validate(&prefix)?;
            if !ids.insert(cam.id.as_str()) {
                return Err(invalid(
                    format!("{prefix}id"),
                    format!("duplicate id {:?}", cam.id),
                ));
            }
            if let Some(port) = cam.port
                && !ports.insert(port)
            {
                return Err(invalid(
                    format!("{prefix}port"),
                    format!("port {port} is already used"),
                ));
            }
        }

        let t = &self.timings;
        if t.motion_reset_seconds == 0 {
            return Err(invalid(
                "timings.motion_reset_seconds",
                "must be at least 1",
            ));
        }
        if t.max_motion_duration < t.motion_reset_seconds {
            return Err(invalid(
                "timings.max_motion_duration",
                "must be at least timings.motion_reset_seconds",
            ));
        }
        Ok(())
    }
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

fn check_name(field: &str, value: &str) -> Result<(), ConfigError> {
    if value.trim().is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if value.chars().count() > MAX_NAME_CHARS {
        return Err(invalid(
            field,
            format!("longer than {MAX_NAME_CHARS} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(field, "must not contain control characters"));
    }
    Ok(())
}

/// 1-based line and column (in characters) of byte offset `pos` in `text`.
fn line_column(text: &str, pos: usize) -> (usize, usize) {
    let before = text.get(..pos).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

/// The source string of the built-in test pattern.
pub(crate) const TEST_PATTERN: &str = "test-pattern";
/// Default HAP port (the port HAP-python and HAP-NodeJS use).
pub(crate) const DEFAULT_HAP_PORT: u16 = 51826;
/// Default state directory, relative to the working directory.
pub(crate) const DEFAULT_DATA_DIR: &str = "data/homekit";
/// Default concurrent streams per camera (ARCHITECTURE.md key decision 5).
pub(crate) const DEFAULT_MAX_STREAMS: u8 = 2;
/// Upper bound of `max_streams`.
const MAX_STREAMS_LIMIT: u8 = 8;
/// Longest camera id.
const MAX_CAMERA_ID_LEN: usize = 32;
/// Longest accessory name (HAP-python and HAP-NodeJS cap names at 64).
const MAX_NAME_CHARS: usize = 64;
/// A bridge exposes at most 150 accessories: itself + 149 (HAP §6.1).
pub(crate) const MAX_BRIDGED_CAMERAS: usize = 149;
/// Shortest accepted `api.token`.
const MIN_API_TOKEN: usize = 16;
/// Longest accepted `api.token`.
const MAX_API_TOKEN: usize = 256;

#[cfg(test)]
mod tests;
