//! Camera sources: the built-in test pattern or an RTSP URL, whose password never shows in
//! logs or errors ([`RtspUrl`], [`mask_url`]), and the checks an RTSP URL must pass.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{ConfigError, TEST_PATTERN, invalid};

/// A camera source: the built-in test pattern or an RTSP URL.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub(crate) enum Source {
    /// The built-in test pattern (`test-pattern`).
    TestPattern,
    /// An RTSP URL; checked by [`super::Config::validate`].
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

/// Masks the password of a URL's userinfo: `rtsp://user:pass@host/x` → `rtsp://user:***@host/x`,
/// and the values of parameters named like a secret in the path or query, as several camera
/// brands take credentials (`rtsp://host/user=admin&password=x`, `?pwd=x`):
/// `rtsp://host/user=admin&password=***` (the rule is `media::error::mask_secret_params`, shared
/// with the media errors' URLs).
///
/// A URL without a password is returned unchanged. When the userinfo cannot be told apart from
/// the path (an unencoded `/` in the password), everything up to the last `@` is masked.
pub(crate) fn mask_url(url: &str) -> String {
    media::error::mask_secret_params(&mask_userinfo(url))
}

/// [`mask_url`]'s userinfo part.
fn mask_userinfo(url: &str) -> String {
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
