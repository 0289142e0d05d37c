//! Incremental parsing of HTTP/1.1 requests (HAP §5), in the style of retina's `rtsp/parse.rs`.
//!
//! [`RequestParser::feed`] takes bytes in any split and gives the same result at every split
//! point: the head is parsed from the buffered bytes each time (it is at most [`MAX_HEAD`] bytes),
//! and every decision looks only at the first [`MAX_HEAD`] bytes of the head and at the
//! `Content-Length` body. Bytes after a complete request stay buffered for the next one.
#![deny(clippy::indexing_slicing)]

use super::Status;

/// The request method. HAP uses `GET`, `PUT` and `POST`; any other method is kept as
/// [`Method::Other`] so that the router can answer 405 on a known path (HAP §5.1).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Method {
    /// `GET`.
    Get,
    /// `PUT`.
    Put,
    /// `POST`.
    Post,
    /// Any other method token.
    Other,
}

/// A complete request: its line, the headers HAP needs and its body.
///
/// `Debug` shows the body's length only: bodies carry pairing proofs and, in Setup Endpoints
/// writes, SRTP master keys.
#[derive(Clone, PartialEq, Eq)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The path, without the query: `/characteristics`.
    pub path: String,
    /// The query after `?`, undecoded: `id=1.9,1.10&ev=1`.
    pub query: Option<String>,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// The body, exactly `Content-Length` bytes (empty without the header).
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("query", &self.query)
            .field("content_type", &self.content_type)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// The outcome of [`RequestParser::feed`] and [`RequestParser::poll`].
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Parsed {
    /// More bytes are needed.
    Incomplete,
    /// A complete request; its bytes left the buffer.
    Request(Request),
    /// The bytes are not an acceptable request. The parser stays in this state: answer with
    /// [`InvalidRequest::status`] and close the connection.
    Invalid(InvalidRequest),
}

/// Why and where a request was rejected.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
#[error("{context} at byte {pos}: {kind:?}")]
pub struct InvalidRequest {
    /// Offset of the offending byte from the start of the request.
    pub pos: usize,
    /// What was being parsed.
    pub context: &'static str,
    /// What was wrong.
    pub kind: InvalidKind,
}

/// What was wrong with a rejected request.
#[non_exhaustive]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum InvalidKind {
    /// The head is not HTTP/1.x syntax.
    Malformed,
    /// The head is longer than [`MAX_HEAD`].
    HeadTooLarge,
    /// More than [`MAX_HEADERS`] header fields.
    TooManyHeaders,
    /// `Content-Length` is not a decimal number, or two differ.
    BadContentLength,
    /// `Content-Length` exceeds [`MAX_BODY`].
    BodyTooLarge,
    /// A `Transfer-Encoding` header (chunked request bodies are not accepted).
    TransferEncoding,
}

impl InvalidRequest {
    /// The status to answer with before closing the connection.
    pub fn status(&self) -> Status {
        match self.kind {
            InvalidKind::HeadTooLarge | InvalidKind::TooManyHeaders => {
                Status::HEADER_FIELDS_TOO_LARGE
            }
            InvalidKind::BodyTooLarge => Status::PAYLOAD_TOO_LARGE,
            InvalidKind::TransferEncoding => Status::NOT_IMPLEMENTED,
            InvalidKind::Malformed | InvalidKind::BadContentLength => Status::BAD_REQUEST,
        }
    }
}

/// Buffers the bytes of one connection and splits them into requests.
#[derive(Debug, Default)]
pub struct RequestParser {
    buf: Vec<u8>,
    failed: Option<InvalidRequest>,
}

impl RequestParser {
    /// An empty parser.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `bytes` and returns the next request if it is complete ([`Self::poll`]).
    ///
    /// After a [`Parsed::Request`], call [`Self::poll`] until [`Parsed::Incomplete`]: pipelined
    /// bytes may already hold the next request.
    pub fn feed(&mut self, bytes: &[u8]) -> Parsed {
        if self.failed.is_none() {
            self.buf.extend_from_slice(bytes);
        }
        self.poll()
    }

    /// Returns the next request from the buffered bytes, if complete.
    pub fn poll(&mut self) -> Parsed {
        if let Some(e) = self.failed {
            return Parsed::Invalid(e);
        }
        match parse_one(&self.buf) {
            Ok(None) => Parsed::Incomplete,
            Ok(Some((req, len))) => {
                self.buf.drain(..len);
                Parsed::Request(req)
            }
            Err(e) => {
                self.failed = Some(e);
                self.buf = Vec::new();
                Parsed::Invalid(e)
            }
        }
    }

    /// The number of buffered bytes not yet returned as a request.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Removes and returns the buffered bytes not yet returned as a request (when the bytes
    /// after a request must be read another way, e.g. decrypted once pair-verify has ended).
    pub fn take_buffered(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    /// Appends `bytes` without parsing them; [`Self::poll`] returns the next request.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.failed.is_none() {
            self.buf.extend_from_slice(bytes);
        }
    }
}

/// Parses one request from the start of `buf`: `Ok(None)` if incomplete, else the request and
/// the number of bytes it took.
fn parse_one(buf: &[u8]) -> Result<Option<(Request, usize)>, InvalidRequest> {
    // Only the first MAX_HEAD bytes decide about the head, so every split gives the same answer.
    let window = buf.get(..MAX_HEAD).unwrap_or(buf);
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(window) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if window.len() >= MAX_HEAD => {
            return Err(invalid(MAX_HEAD, "request head", InvalidKind::HeadTooLarge));
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(head_error(window, e)),
    };
    let method = match req.method {
        Some("GET") => Method::Get,
        Some("PUT") => Method::Put,
        Some("POST") => Method::Post,
        _ => Method::Other,
    };
    let target = req.path.unwrap_or_default();
    if !target.starts_with('/') {
        return Err(invalid(
            offset_in(buf, target.as_bytes()),
            "request target",
            InvalidKind::Malformed,
        ));
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (target.to_owned(), None),
    };

    let mut content_length: Option<usize> = None;
    let mut content_type = None;
    for h in req.headers.iter() {
        let pos = offset_in(buf, h.value);
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = parse_decimal(h.value)
                .ok_or_else(|| invalid(pos, "content-length", InvalidKind::BadContentLength))?;
            if content_length.is_some_and(|prev| prev != n) {
                return Err(invalid(
                    pos,
                    "content-length",
                    InvalidKind::BadContentLength,
                ));
            }
            if n > MAX_BODY {
                return Err(invalid(pos, "content-length", InvalidKind::BodyTooLarge));
            }
            content_length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(invalid(
                pos,
                "transfer-encoding",
                InvalidKind::TransferEncoding,
            ));
        } else if h.name.eq_ignore_ascii_case("content-type") {
            let v = std::str::from_utf8(h.value)
                .map_err(|_| invalid(pos, "content-type", InvalidKind::Malformed))?;
            content_type = Some(v.trim().to_owned());
        }
    }
    let body_len = content_length.unwrap_or(0);
    let Some(total) = head_len.checked_add(body_len) else {
        return Err(invalid(
            head_len,
            "content-length",
            InvalidKind::BodyTooLarge,
        ));
    };
    let Some(body) = buf.get(head_len..total) else {
        return Ok(None);
    };
    let request = Request {
        method,
        path,
        query,
        content_type,
        body: body.to_vec(),
    };
    Ok(Some((request, total)))
}

/// Turns an `httparse` error into one with the offset of the offending byte: the shortest
/// prefix of `window` that fails ends just after it (the parser checks each byte as it comes).
fn head_error(window: &[u8], e: httparse::Error) -> InvalidRequest {
    let (mut lo, mut hi) = (0usize, window.len());
    // Invariant: the prefix of length `lo` does not fail, the prefix of length `hi` does.
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let failed = httparse::Request::new(&mut headers)
            .parse(window.get(..mid).unwrap_or(window))
            .is_err();
        if failed { hi = mid } else { lo = mid }
    }
    let (context, kind) = match e {
        httparse::Error::HeaderName => ("header name", InvalidKind::Malformed),
        httparse::Error::HeaderValue => ("header value", InvalidKind::Malformed),
        httparse::Error::NewLine => ("line ending", InvalidKind::Malformed),
        httparse::Error::Status => ("status", InvalidKind::Malformed),
        httparse::Error::Token => ("request line", InvalidKind::Malformed),
        httparse::Error::TooManyHeaders => ("headers", InvalidKind::TooManyHeaders),
        httparse::Error::Version => ("HTTP version", InvalidKind::Malformed),
    };
    invalid(lo, context, kind)
}

fn invalid(pos: usize, context: &'static str, kind: InvalidKind) -> InvalidRequest {
    InvalidRequest { pos, context, kind }
}

/// The offset of `part` (a slice of `buf`) within `buf`.
fn offset_in(buf: &[u8], part: &[u8]) -> usize {
    (part.as_ptr() as usize).saturating_sub(buf.as_ptr() as usize)
}

/// A non-empty run of ASCII digits (surrounding spaces allowed) without overflow.
fn parse_decimal(v: &[u8]) -> Option<usize> {
    let s = std::str::from_utf8(v).ok()?.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The longest request head accepted: request line plus headers plus the blank line. iOS heads
/// are under 300 bytes; 8 KiB is the common server default (hyper, nginx).
pub const MAX_HEAD: usize = 8 * 1024;

/// The most header fields accepted in a head (iOS sends about five).
pub const MAX_HEADERS: usize = 32;

/// The longest request body accepted. HAP bodies are small: pairing TLVs < 1 KiB, Setup
/// Endpoints < 1 KiB, a PUT /characteristics of every characteristic of a large bridge a few
/// KiB. 64 KiB leaves ample room while bounding what one peer can make us buffer.
pub const MAX_BODY: usize = 64 * 1024;

#[cfg(test)]
mod tests;
