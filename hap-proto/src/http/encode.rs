//! Encoding of HTTP responses and `EVENT/1.0` notifications (HAP §5, §5.8).

use std::fmt;

/// An HTTP status code, with the codes HAP uses as constants (HAP §5.6).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Status(pub u16);

impl Status {
    /// 200 OK: pairing TLV responses (also for TLV errors), reads, prepare.
    pub const OK: Self = Self(200);
    /// 204 No Content: success without a body.
    pub const NO_CONTENT: Self = Self(204);
    /// 207 Multi-Status: a read or write with a failed entry or a write response.
    pub const MULTI_STATUS: Self = Self(207);
    /// 400 Bad Request: malformed JSON/TLV, wrong endpoint state.
    pub const BAD_REQUEST: Self = Self(400);
    /// 404 Not Found: unknown path.
    pub const NOT_FOUND: Self = Self(404);
    /// 405 Method Not Allowed: known path, other method.
    pub const METHOD_NOT_ALLOWED: Self = Self(405);
    /// 413 Payload Too Large: a request body over [`super::MAX_BODY`].
    pub const PAYLOAD_TOO_LARGE: Self = Self(413);
    /// 422 Unprocessable Entity (HAP-NodeJS only, §5.6).
    pub const UNPROCESSABLE_ENTITY: Self = Self(422);
    /// 429 Too Many Requests: pairing already in progress.
    pub const TOO_MANY_REQUESTS: Self = Self(429);
    /// 431 Request Header Fields Too Large: a head over [`super::MAX_HEAD`].
    pub const HEADER_FIELDS_TOO_LARGE: Self = Self(431);
    /// 470 Connection Authorization Required: a secured endpoint before pair-verify (§5.1).
    pub const CONNECTION_AUTHORIZATION_REQUIRED: Self = Self(470);
    /// 500 Internal Server Error: out of resources (`{"status":-70407}`).
    pub const INTERNAL_SERVER_ERROR: Self = Self(500);
    /// 501 Not Implemented: a request body in a transfer coding (chunked) we do not accept.
    pub const NOT_IMPLEMENTED: Self = Self(501);
    /// 503 Service Unavailable: e.g. too many connections.
    pub const SERVICE_UNAVAILABLE: Self = Self(503);

    /// The reason phrase written after the code.
    pub fn reason(self) -> &'static str {
        match self.0 {
            200 => "OK",
            204 => "No Content",
            207 => "Multi-Status",
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            413 => "Payload Too Large",
            422 => "Unprocessable Entity",
            429 => "Too Many Requests",
            431 => "Request Header Fields Too Large",
            470 => "Connection Authorization Required",
            500 => "Internal Server Error",
            501 => "Not Implemented",
            503 => "Service Unavailable",
            _ => "Unknown",
        }
    }
}

impl fmt::Debug for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.0, self.reason())
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The content types of HAP bodies (HAP §5.1).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ContentType {
    /// `application/hap+json`: accessories, characteristics, prepare, events.
    HapJson,
    /// `application/pairing+tlv8`: pair-setup, pair-verify, pairings.
    PairingTlv8,
    /// `image/jpeg`: snapshots (POST /resource).
    Jpeg,
}

impl ContentType {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HapJson => "application/hap+json",
            Self::PairingTlv8 => "application/pairing+tlv8",
            Self::Jpeg => "image/jpeg",
        }
    }
}

/// Appends an `HTTP/1.1` response to `out`.
///
/// With a body, `Content-Type` and `Content-Length` are written. Without one, `Content-Length: 0`
/// is written, except for 204, which by RFC 9110 §8.6 carries no `Content-Length` (as ADK does).
/// The body is ignored for 204.
pub fn encode_response(status: Status, body: Option<(ContentType, &[u8])>, out: &mut Vec<u8>) {
    write_head(b"HTTP/1.1 ", status, out);
    // Always a Content-Length, even on 204: iOS can stall on responses without one (HAP §5,
    // HAP-python forces it too).
    write_body(
        if status == Status::NO_CONTENT {
            None
        } else {
            body
        },
        out,
    );
}

/// Appends an `EVENT/1.0 200 OK` notification carrying `json` (HAP §5.8) to `out`.
pub fn encode_event(json: &[u8], out: &mut Vec<u8>) {
    write_head(b"EVENT/1.0 ", Status::OK, out);
    write_body(Some((ContentType::HapJson, json)), out);
}

fn write_head(version: &[u8], status: Status, out: &mut Vec<u8>) {
    out.extend_from_slice(version);
    out.extend_from_slice(format!("{} {}\r\n", status.0, status.reason()).as_bytes());
}

fn write_body(body: Option<(ContentType, &[u8])>, out: &mut Vec<u8>) {
    match body {
        Some((ty, bytes)) => {
            out.extend_from_slice(b"Content-Type: ");
            out.extend_from_slice(ty.as_str().as_bytes());
            out.extend_from_slice(
                format!("\r\nContent-Length: {}\r\n\r\n", bytes.len()).as_bytes(),
            );
            out.extend_from_slice(bytes);
        }
        None => out.extend_from_slice(b"Content-Length: 0\r\n\r\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_response_bytes() {
        let mut out = Vec::new();
        encode_response(
            Status::MULTI_STATUS,
            Some((ContentType::HapJson, br#"{"a":1}"#)),
            &mut out,
        );
        assert_eq!(
            out,
            b"HTTP/1.1 207 Multi-Status\r\nContent-Type: application/hap+json\r\nContent-Length: 7\r\n\r\n{\"a\":1}"
        );
    }

    #[test]
    fn tlv_and_jpeg_content_types() {
        let mut out = Vec::new();
        encode_response(
            Status::OK,
            Some((ContentType::PairingTlv8, &[6, 1, 2])),
            &mut out,
        );
        assert_eq!(
            out,
            b"HTTP/1.1 200 OK\r\nContent-Type: application/pairing+tlv8\r\nContent-Length: 3\r\n\r\n\x06\x01\x02"
        );
        out.clear();
        encode_response(
            Status::OK,
            Some((ContentType::Jpeg, &[0xFF, 0xD8])),
            &mut out,
        );
        assert_eq!(
            out,
            b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: 2\r\n\r\n\xFF\xD8"
        );
    }

    #[test]
    fn no_content_has_no_body_and_a_zero_length() {
        let mut out = Vec::new();
        encode_response(
            Status::NO_CONTENT,
            Some((ContentType::HapJson, b"ignored")),
            &mut out,
        );
        assert_eq!(out, b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n");
    }

    #[test]
    fn bodiless_error_has_zero_length() {
        let mut out = Vec::new();
        encode_response(Status::NOT_FOUND, None, &mut out);
        assert_eq!(out, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        out.clear();
        encode_response(
            Status::CONNECTION_AUTHORIZATION_REQUIRED,
            Some((ContentType::HapJson, br#"{"status":-70411}"#)),
            &mut out,
        );
        assert!(out.starts_with(b"HTTP/1.1 470 Connection Authorization Required\r\n"));
        assert!(out.ends_with(b"Content-Length: 17\r\n\r\n{\"status\":-70411}"));
    }

    #[test]
    fn event_bytes() {
        let mut out = Vec::new();
        let body = br#"{"characteristics":[{"aid":1,"iid":10,"value":true}]}"#;
        encode_event(body, &mut out);
        let mut want =
            b"EVENT/1.0 200 OK\r\nContent-Type: application/hap+json\r\nContent-Length: 53\r\n\r\n"
                .to_vec();
        want.extend_from_slice(body);
        assert_eq!(body.len(), 53);
        assert_eq!(out, want);
    }
}
