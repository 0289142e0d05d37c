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
///
/// Credentials given as parameters (`rtsp://host/user=admin&password=x`, `?pwd=x`) are masked
/// too, see [`mask_secret_params`].
pub fn redact_url(url: &str) -> String {
    mask_secret_params(&redact_userinfo(url))
}

/// Names that mark a URL parameter as a secret when its name contains one of them, in any case
/// (`password`, `PassWord`, `pwd`, `api_key`, `authToken` ...). Over-masking a harmless value is
/// the lesser evil.
const SECRET_PARAM_WORDS: [&str; 9] = [
    "password", "passwd", "pwd", "pass", "pw", "secret", "token", "key", "auth",
];

/// What a secret parameter's value is replaced with.
const MASK: &str = "***";

/// Masks the values of a URL's secret parameters, keeping the rest readable:
/// `rtsp://cam/user=admin&password=x` → `rtsp://cam/user=admin&password=***`.
///
/// A parameter is a `name=value` pair after the host: in the path separated by `&`, `;` or `/`,
/// in the query (after `?`) separated by `&` or `;`. It is secret when its name contains, in any
/// case, `password`, `passwd`, `pwd`, `pass`, `pw`, `secret`, `token`, `key` or `auth`. The
/// scheme, userinfo and host are not touched (the userinfo is the callers' job). A string
/// without `://` is taken as starting with its host.
pub fn mask_secret_params(url: &str) -> String {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let authority_end = url[after_scheme..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| after_scheme + i);
    let (head, tail) = url.split_at(authority_end);
    let mut out = String::with_capacity(url.len());
    out.push_str(head);
    let mut in_query = false;
    let mut rest = tail;
    while !rest.is_empty() {
        // Separators are copied as they are; `?` (and `#`) start the query.
        let sep_len = rest
            .find(|c| !is_param_separator(c, in_query))
            .unwrap_or(rest.len());
        let (seps, after) = rest.split_at(sep_len);
        in_query |= seps.contains(['?', '#']);
        out.push_str(seps);
        let end = after
            .find(|c| is_param_separator(c, in_query))
            .unwrap_or(after.len());
        let (pair, next) = after.split_at(end);
        match pair.split_once('=') {
            Some((name, _value)) if is_secret_name(name) => {
                out.push_str(name);
                out.push('=');
                out.push_str(MASK);
            }
            _ => out.push_str(pair),
        }
        rest = next;
    }
    out
}

/// Whether `c` ends a `name=value` parameter: `&`, `;`, `?`, `#`, and `/` outside the query.
fn is_param_separator(c: char, in_query: bool) -> bool {
    matches!(c, '&' | ';' | '?' | '#') || (c == '/' && !in_query)
}

/// Whether a parameter name marks a secret (see [`SECRET_PARAM_WORDS`]).
fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_PARAM_WORDS.iter().any(|w| name.contains(w))
}

/// [`redact_url`]'s `user:password@` part.
fn redact_userinfo(url: &str) -> String {
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
        // Credentials outside the userinfo, as several camera brands take them: the values of
        // secret parameters are masked, the rest stays readable.
        let cases = [
            (
                "rtsp://192.0.2.7/user=admin&password=s3cret&channel=1&stream=0.sdp",
                "rtsp://192.0.2.7/user=admin&password=***&channel=1&stream=0.sdp",
            ),
            (
                "rtsp://192.0.2.7:554/live?user=admin&pwd=s3cret",
                "rtsp://192.0.2.7:554/live?user=admin&pwd=***",
            ),
            (
                "rtsp://192.0.2.7/cam;user=admin;PASSWORD=s3cret;stream=1",
                "rtsp://192.0.2.7/cam;user=admin;PASSWORD=***;stream=1",
            ),
            (
                "rtsp://192.0.2.7/user=admin/passwd=s3cret/ch1",
                "rtsp://192.0.2.7/user=admin/passwd=***/ch1",
            ),
            (
                "rtsp://192.0.2.7/s?Pass=s3/cret&api_key=s3cret&authToken=s3cret&pw=s3cret",
                "rtsp://192.0.2.7/s?Pass=***&api_key=***&authToken=***&pw=***",
            ),
            (
                "rtsp://192.0.2.7/s?secret=s3cret;token=s3cret#key=s3cret",
                "rtsp://192.0.2.7/s?secret=***;token=***#key=***",
            ),
            (
                "rtsp://admin:s3cret@192.0.2.7/s?password=s3cret",
                "rtsp://192.0.2.7/s?password=***",
            ),
            // Not secret: left as they are.
            (
                "rtsp://192.0.2.7/h264?channel=1&subtype=0&user=admin",
                "rtsp://192.0.2.7/h264?channel=1&subtype=0&user=admin",
            ),
            ("rtsp://192.0.2.7/password", "rtsp://192.0.2.7/password"),
        ];
        for (url, want) in cases {
            assert_eq!(redact_url(url), want, "{url}");
        }
        assert_eq!(
            mask_secret_params("192.0.2.7/x&password=s3cret"),
            "192.0.2.7/x&password=***"
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
