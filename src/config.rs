//! The bridge's TOML configuration: parsing, defaults and validation.
//!
//! Every validation error names the offending field (`cameras[1].id: duplicate id "front"`);
//! TOML syntax errors carry line and column. RTSP URLs may hold a password: [`RtspUrl`] masks it
//! in `Debug` and `Display`, and [`mask_url`] masks any URL string for logs.

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

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

/// `[[cameras]]`: one camera.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CameraSettings {
    /// Stable identifier (`[a-z0-9_-]`); AIDs and standalone identities are keyed on it.
    pub(crate) id: String,
    /// Name shown in the Home app.
    pub(crate) name: String,
    /// Main stream: an RTSP URL or `test-pattern`.
    pub(crate) source: Source,
    /// Optional lower-resolution RTSP stream.
    #[serde(default)]
    pub(crate) substream: Option<Source>,
    /// Whether the camera is exposed at all.
    #[serde(default = "yes")]
    pub(crate) enabled: bool,
    /// Bridged behind the bridge (default) or a standalone accessory with its own pairing.
    #[serde(default)]
    pub(crate) mode: CameraMode,
    /// HAP port of a standalone camera; absent = chosen by the OS at start.
    #[serde(default)]
    pub(crate) port: Option<u16>,
    /// Sensor services attached to the camera.
    #[serde(default)]
    pub(crate) sensors: Sensors,
    /// Most concurrent live streams.
    #[serde(default = "default_max_streams")]
    pub(crate) max_streams: u8,
    /// Keep the RTSP pull running even with no viewer (faster stream start).
    #[serde(default)]
    pub(crate) always_on: bool,
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

/// `cameras[].sensors`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
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

/// A camera source: the built-in test pattern or an RTSP URL.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub(crate) enum Source {
    /// The built-in test pattern (`test-pattern`).
    TestPattern,
    /// An RTSP URL; checked by [`Config::validate`].
    Rtsp(RtspUrl),
}

impl From<String> for Source {
    fn from(s: String) -> Self {
        if s == TEST_PATTERN {
            Self::TestPattern
        } else {
            Self::Rtsp(RtspUrl(s))
        }
    }
}

impl From<Source> for String {
    fn from(s: Source) -> Self {
        match s {
            Source::TestPattern => TEST_PATTERN.to_owned(),
            Source::Rtsp(url) => url.0,
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TestPattern => f.write_str(TEST_PATTERN),
            Self::Rtsp(url) => fmt::Display::fmt(url, f),
        }
    }
}

/// An RTSP URL whose password never shows in `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct RtspUrl(String);

impl RtspUrl {
    /// The URL with its credentials, for the RTSP client only.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RtspUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&mask_url(&self.0))
    }
}

impl fmt::Debug for RtspUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RtspUrl({:?})", mask_url(&self.0))
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
            }],
            timings: Timings::default(),
            api: ApiConfig::default(),
        }
    }
}

impl CameraSettings {
    /// Checks this camera's own fields (not its relation to other cameras: unique id and
    /// port are checked by [`Config::validate`]); error fields are `prefix` + the field name.
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

/// Masks the password of a URL's userinfo: `rtsp://user:pass@host/x` → `rtsp://user:***@host/x`.
///
/// A URL without a password is returned unchanged. When the userinfo cannot be told apart from
/// the path (an unencoded `/` in the password), everything up to the last `@` is masked.
pub(crate) fn mask_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        // Not a URL (`rtsp:/user:pass@cam`, `user:pass@cam`): over-mask up to the last `@`.
        return match url.rfind('@') {
            Some(at) => format!("***{}", url.split_at(at).1),
            None => url.to_owned(),
        };
    };
    let (head, rest) = url.split_at(scheme_end);
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    if let Some(at) = authority.rfind('@') {
        let (userinfo, host) = authority.split_at(at);
        return match userinfo.split_once(':') {
            Some((user, _password)) => format!("{head}{user}:***{host}{tail}"),
            None => url.to_owned(),
        };
    }
    match rest.rfind('@') {
        // No `@` in the authority but one later: the password may contain `/`. Over-mask.
        Some(at) => format!("{head}***{}", rest.split_at(at).1),
        None => url.to_owned(),
    }
}

fn yes() -> bool {
    true
}

fn default_max_streams() -> u8 {
    DEFAULT_MAX_STREAMS
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

pub(crate) fn check_source(field: &str, source: &Source) -> Result<(), ConfigError> {
    let Source::Rtsp(url) = source else {
        return Ok(());
    };
    let raw = url.expose();
    if raw.starts_with("rtsps://") {
        // retina (the RTSP client) speaks RTSP over TCP and UDP, not over TLS.
        return Err(invalid(
            field,
            format!(
                "{url}: rtsps:// (RTSP over TLS) is not supported; use the camera's rtsp:// URL"
            ),
        ));
    }
    let rest = raw.strip_prefix("rtsp://").ok_or_else(|| {
        invalid(
            field,
            format!("{} is neither an rtsp:// URL nor {TEST_PATTERN:?}", url),
        )
    })?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if !authority.contains('@') && rest.contains('@') {
        // `user:pass#word@host`: the URL ends its host part at the `#` (or `?`, `/`), so the
        // password would be taken for a host and port, and shown in logs as one.
        return Err(invalid(
            field,
            format!(
                "{url}: the part before '@' is not a user:password (percent-encode '/', '?', \
                 '#' and '@' in them: %2F, %3F, %23, %40)"
            ),
        ));
    }
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if host.is_empty() || host.starts_with(':') {
        return Err(invalid(field, format!("{url} has no host")));
    }
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(field, format!("{url} contains whitespace")));
    }
    // What the RTSP client will parse when it connects (a port over 65535, a zone in an IPv6
    // address ...): refused now rather than stopping the camera at its first use.
    media::source::rtsp::check_url(raw).map_err(|e| invalid(field, format!("{url}: {e}")))
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
