//! The admin API's bearer token, request-size guard and framing refusal.
//!
//! On a loopback address the API needs no token unless one is configured. On any other address
//! a token is required: `[api] token` from the configuration, or one generated at the first
//! start, kept in the store and printed once.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use rand::RngExt as _;
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

use super::{ApiState, MAX_BODY, error};
use crate::store::Store;

/// A bearer token; never shown in Debug output.
#[derive(Clone)]
pub(crate) struct ApiToken(Zeroizing<String>);

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken(***)")
    }
}

impl ApiToken {
    /// Whether `given` is this token (constant time in the token's content).
    pub(crate) fn matches(&self, given: &str) -> bool {
        bool::from(self.0.as_bytes().ct_eq(given.as_bytes()))
    }
}

/// The token the API at `addr` requires: the configured one, else none on loopback, else the
/// stored one, generated (and printed once to stdout) at the first start.
pub(crate) fn resolve_token(
    configured: Option<&str>,
    addr: SocketAddr,
    store: &Store,
) -> anyhow::Result<Option<ApiToken>> {
    if let Some(token) = configured {
        return Ok(Some(ApiToken(Zeroizing::new(token.to_owned()))));
    }
    if addr.ip().is_loopback() {
        return Ok(None);
    }
    if let Some(token) = store.setting(SETTING_TOKEN)? {
        return Ok(Some(ApiToken(Zeroizing::new(token))));
    }
    let bytes: [u8; TOKEN_BYTES] = rand::rng().random();
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    store.set_setting(SETTING_TOKEN, &token)?;
    println!(
        "hap-bridge: the admin API on {addr} is not on a loopback address and requires a token; \
         generated one (shown only this once, kept in the state store):"
    );
    println!("hap-bridge: admin API token: {token}");
    Ok(Some(ApiToken(Zeroizing::new(token))))
}

/// Refuses cross-origin browser requests (403), requests without the token (401), requests for
/// a non-loopback host name when no token protects the API (403, against DNS rebinding), and
/// bodies announced larger than [`MAX_BODY`] (413).
pub(super) async fn check(
    State(state): State<Arc<ApiState>>,
    request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // A page elsewhere may make the browser send simple requests (a POST without preflight):
    // browsers add Origin to them; the bridge's own page has the API's origin.
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        let authority = origin.split_once("://").map_or("", |(_, a)| a);
        if !authority.eq_ignore_ascii_case(host) {
            return error(
                StatusCode::FORBIDDEN,
                "Origin: cross-origin requests are refused",
            );
        }
    }
    if state.token.is_none() && !is_loopback_host(host) {
        return error(
            StatusCode::FORBIDDEN,
            "Host: without a token the API answers only loopback names (localhost, 127.0.0.1, [::1])",
        );
    }
    if let Some(token) = &state.token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let message = match given {
            None => Some("missing token: send Authorization: Bearer <token>"),
            Some(given) if !token.matches(given.trim()) => Some("wrong token"),
            Some(_) => None,
        };
        if let Some(message) = message {
            let mut response = error(StatusCode::UNAUTHORIZED, message);
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
    }
    let length = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if length.is_some_and(|n| n > MAX_BODY as u64) {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("body: larger than {MAX_BODY} bytes"),
        );
    }
    next.run(request).await
}

/// The `frame-ancestors` directive every response carries (CSP level 2).
const NO_FRAME_ANCESTORS: &str = "frame-ancestors 'none'";

/// Forbids every response of the API and page to be shown in a frame (`X-Frame-Options: DENY`,
/// `Content-Security-Policy: frame-ancestors 'none'`): a page elsewhere framing the admin page
/// could lure a click on "Disable HomeKit" (clickjacking), which works on loopback without a
/// token. A policy a response already has keeps its directives; its `frame-ancestors` becomes
/// `'none'`.
pub(super) async fn forbid_framing(mut response: Response) -> Response {
    deny_framing(response.headers_mut());
    response
}

/// [`forbid_framing`] on a response's headers.
fn deny_framing(headers: &mut HeaderMap) {
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    let existing = headers
        .get(header::CONTENT_SECURITY_POLICY)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut directives: Vec<&str> = existing
        .split(';')
        .map(str::trim)
        .filter(|d| {
            let name = d.split_ascii_whitespace().next().unwrap_or("");
            !d.is_empty() && !name.eq_ignore_ascii_case("frame-ancestors")
        })
        .collect();
    directives.push(NO_FRAME_ANCESTORS);
    // Parts of a visible-ASCII header value and a constant: always a valid header value.
    let value = HeaderValue::from_str(&directives.join("; "))
        .unwrap_or(HeaderValue::from_static(NO_FRAME_ANCESTORS));
    headers.insert(header::CONTENT_SECURITY_POLICY, value);
}

/// Whether a `Host` header names the local machine: `localhost`, a loopback address, with or
/// without a port.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map_or(rest, |(ip, _)| ip),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Settings key of the generated token.
const SETTING_TOKEN: &str = "api_token";
/// Random bytes in a generated token (hex-encoded).
const TOKEN_BYTES: usize = 32;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison_and_resolution() {
        let t = ApiToken(Zeroizing::new("0123456789abcdef".to_owned()));
        assert!(t.matches("0123456789abcdef"));
        assert!(!t.matches("0123456789abcdeF"));
        assert!(!t.matches("0123456789abcde"));
        assert!(!t.matches(""));
        assert_eq!(format!("{t:?}"), "ApiToken(***)");

        let dir = crate::testutil::TempDir::new("apitoken");
        let store = Store::open(dir.path()).unwrap();
        let lo: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert!(resolve_token(None, lo, &store).unwrap().is_none());
        let configured = resolve_token(Some("configured-token-1234"), lo, &store)
            .unwrap()
            .unwrap();
        assert!(configured.matches("configured-token-1234"));
        let generated = resolve_token(None, any, &store).unwrap().unwrap();
        assert_eq!(generated.0.len(), 2 * TOKEN_BYTES);
        let again = resolve_token(None, any, &store).unwrap().unwrap();
        assert!(again.matches(&generated.0), "the generated token is kept");
    }

    #[test]
    fn framing_denied_keeping_other_policy_directives() {
        let mut headers = HeaderMap::new();
        deny_framing(&mut headers);
        assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(
            headers[header::CONTENT_SECURITY_POLICY],
            "frame-ancestors 'none'"
        );
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'self'; Frame-Ancestors *; img-src data:"),
        );
        deny_framing(&mut headers);
        assert_eq!(
            headers[header::CONTENT_SECURITY_POLICY],
            "default-src 'self'; img-src data:; frame-ancestors 'none'"
        );
    }

    #[test]
    fn loopback_host_names() {
        for host in [
            "localhost",
            "LOCALHOST:8080",
            "127.0.0.1",
            "127.0.0.2:80",
            "[::1]:8080",
            "[::1]",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "",
            "evil.example",
            "evil.example:8080",
            "10.0.0.1:8080",
            "[::2]:1",
            "localhost.evil",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
