//! The runtime error: opaque, cheap to clone, and carrying enough context (camera, URL without
//! credentials, stage, wall time) to find the failing exchange in a capture, in the manner of
//! retina's `Error(Arc<ErrorInt>)`.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

/// An error of the media runtime (ingest, hub, transcode, snapshot).
///
/// Its `Display` names the camera, the source URL with any credentials removed, the stage that
/// failed and the underlying cause. Passwords never appear in it.
#[derive(Clone)]
pub struct Error(Arc<ErrorInt>);

/// What failed; see [`Error::kind`].
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The source configuration is unusable (bad URL, zero size, ...).
    Config,
    /// Connecting, DESCRIBE, SETUP or PLAY failed.
    Connect,
    /// The source has no H.264 video stream.
    NoVideo,
    /// The RTSP session failed while playing.
    Stream,
    /// The source ended (the camera closed the session).
    Ended,
    /// No picture arrived within the stall timeout.
    Stalled,
    /// The H.264 decoder rejected the input.
    Decode,
    /// The H.264 encoder failed.
    Encode,
    /// Scaling a picture failed.
    Scale,
    /// Encoding a JPEG failed.
    Jpeg,
    /// No decodable picture is available yet.
    NoPicture,
    /// The hub or worker thread has shut down.
    Shutdown,
}

impl Error {
    /// Creates an error of `kind` for `camera`; add context with the `with_*` methods.
    pub(crate) fn new(kind: ErrorKind, camera: &str) -> Self {
        Self(Arc::new(ErrorInt {
            kind,
            camera: camera.to_owned(),
            url: None,
            detail: None,
            at: SystemTime::now(),
        }))
    }

    /// Adds the source URL; credentials are removed here.
    pub(crate) fn with_url(mut self, url: &str) -> Self {
        Arc::make_mut(&mut self.0).url = Some(redact_url(url));
        self
    }

    /// Adds a cause or detail. `secret`, when given, is scrubbed from the text (a cause from a
    /// library may echo a URL with its password).
    pub(crate) fn with_detail(mut self, detail: impl fmt::Display, secret: Option<&str>) -> Self {
        let mut text = detail.to_string();
        if let Some(secret) = secret.filter(|s| !s.is_empty()) {
            text = text.replace(secret, "***");
        }
        Arc::make_mut(&mut self.0).detail = Some(text);
        self
    }

    /// What failed.
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    /// The camera (source) name given in the configuration.
    pub fn camera(&self) -> &str {
        &self.0.camera
    }

    /// The source URL, credentials removed.
    pub fn url(&self) -> Option<&str> {
        self.0.url.as_deref()
    }

    /// When the error happened (wall clock, to match against a capture).
    pub fn time(&self) -> SystemTime {
        self.0.at
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = &self.0;
        write!(f, "{} (camera {:?}", e.kind.describe(), e.camera)?;
        if let Some(url) = &e.url {
            write!(f, ", {url}")?;
        }
        if let Ok(since) = e.at.duration_since(SystemTime::UNIX_EPOCH) {
            write!(
                f,
                ", at unix {}.{:03}",
                since.as_secs(),
                since.subsec_millis()
            )?;
        }
        f.write_str(")")?;
        if let Some(detail) = &e.detail {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for Error {}

impl ErrorKind {
    fn describe(self) -> &'static str {
        match self {
            Self::Config => "bad source configuration",
            Self::Connect => "connecting to the source failed",
            Self::NoVideo => "the source has no H.264 video stream",
            Self::Stream => "the source stream failed",
            Self::Ended => "the source ended the stream",
            Self::Stalled => "the source stalled",
            Self::Decode => "H.264 decoding failed",
            Self::Encode => "H.264 encoding failed",
            Self::Scale => "scaling failed",
            Self::Jpeg => "JPEG encoding failed",
            Self::NoPicture => "no decodable picture yet",
            Self::Shutdown => "the media worker has shut down",
        }
    }
}

#[derive(Clone)]
struct ErrorInt {
    kind: ErrorKind,
    camera: String,
    url: Option<String>,
    detail: Option<String>,
    at: SystemTime,
}

/// Returns `url` with any `user:password@` part removed, for logs and errors. A string that does
/// not parse as a URL is cut at its last `@` after the scheme, so a password cannot leak through
/// a malformed URL either.
///
/// An `@` that the URL parser does not take as the end of credentials is cut at too: in
/// `rtsp://user:12#34@host` the `#` ends the host part, so `user:12` parses as host and port and
/// the password would otherwise be shown.
pub fn redact_url(url: &str) -> String {
    if let Ok(mut parsed) = url::Url::parse(url) {
        let has_credentials = parsed.password().is_some() || !parsed.username().is_empty();
        if has_credentials {
            // Both fail only for URLs that cannot have credentials (cannot-be-a-base).
            let _ = parsed.set_password(None);
            let _ = parsed.set_username("");
        }
        let after_scheme = url.find("://").map_or(0, |i| i + 3);
        if has_credentials || !url[after_scheme..].contains('@') {
            return parsed.to_string();
        }
    }
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://{}", &url[..scheme_end], &url[at + 1..])
        }
        (None, Some(at)) => url[at + 1..].to_owned(),
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_shown() {
        let url = "rtsp://admin:s3cret@192.0.2.7:554/stream1";
        assert_eq!(redact_url(url), "rtsp://192.0.2.7:554/stream1");
        assert_eq!(redact_url("rtsp://a:b@c@[bad"), "rtsp://[bad");
        // A `#` in the password: the parser sees host `admin`, port 1234 and no credentials.
        assert_eq!(
            redact_url("rtsp://admin:1234#5@192.0.2.7/s"),
            "rtsp://192.0.2.7/s"
        );
        assert_eq!(
            redact_url("rtsp://admin:12/34@192.0.2.7/s"),
            "rtsp://192.0.2.7/s"
        );
        let e = Error::new(ErrorKind::Connect, "porch")
            .with_url(url)
            .with_detail(format!("401 for {url}"), Some("s3cret"));
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(
            shown.contains("porch") && shown.contains("192.0.2.7:554/stream1"),
            "{shown}"
        );
        assert_eq!(e.kind(), ErrorKind::Connect);
    }
}
