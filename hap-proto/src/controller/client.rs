//! The controller's side of HTTP over HAP, sans-IO: encodes requests (sealed once verified)
//! and parses responses and `EVENT/1.0` notifications fed in arbitrary pieces.

use crate::error::{DecodeError, DecodeErrorKind, Error};
use crate::session::{Session, SessionKeys};

/// A response or an event from the accessory.
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    /// `true` for an `EVENT/1.0` notification, `false` for an HTTP response.
    pub is_event: bool,
    /// The status code.
    pub status: u16,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// Whether a `Content-Length` header was present.
    pub has_content_length: bool,
    /// The body.
    pub body: Vec<u8>,
}

impl core::fmt::Debug for Message {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Message")
            .field("is_event", &self.is_event)
            .field("status", &self.status)
            .field("content_type", &self.content_type)
            .field("body", &String::from_utf8_lossy(&self.body))
            .finish()
    }
}

/// One controller connection's HTTP state.
#[derive(Default)]
pub struct ClientConnection {
    session: Option<Session>,
    plain: Vec<u8>,
}

impl ClientConnection {
    /// A plaintext connection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Switches to the encrypted session after pair-verify M4 (HAP §3).
    pub fn start_session(&mut self, keys: SessionKeys) {
        self.session = Some(Session::controller(keys));
    }

    /// Whether requests are sealed.
    pub fn is_encrypted(&self) -> bool {
        self.session.is_some()
    }

    /// Encodes a request (with `Content-Length`) and appends the bytes for the socket to `out`.
    pub fn request(
        &mut self,
        method: &str,
        target: &str,
        content_type: Option<&str>,
        body: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        let mut plain = format!("{method} {target} HTTP/1.1\r\nHost: accessory\r\n");
        if let Some(ct) = content_type {
            plain.push_str(&format!("Content-Type: {ct}\r\n"));
        }
        plain.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        let mut bytes = plain.into_bytes();
        bytes.extend_from_slice(body);
        match &mut self.session {
            Some(session) => session.seal(&bytes, out),
            None => {
                out.extend_from_slice(&bytes);
                Ok(())
            }
        }
    }

    /// Feeds bytes read from the socket.
    ///
    /// # Errors
    /// A frame failed to authenticate: the connection is dead.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), Error> {
        match &mut self.session {
            Some(session) => {
                session.feed(bytes);
                session.open_available(&mut self.plain).map(|_| ())
            }
            None => {
                self.plain.extend_from_slice(bytes);
                Ok(())
            }
        }
    }

    /// The next complete message, if one is buffered.
    ///
    /// # Errors
    /// The accessory sent something that is not HTTP.
    pub fn poll_message(&mut self) -> Result<Option<Message>, Error> {
        let Some(head_end) = self.plain.windows(4).position(|w| w == b"\r\n\r\n") else {
            if self.plain.len() > MAX_HEAD {
                return Err(malformed("response head too long"));
            }
            return Ok(None);
        };
        let head = std::str::from_utf8(self.plain.get(..head_end).unwrap_or_default())
            .map_err(|_| malformed("response head is not UTF-8"))?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let mut parts = status_line.splitn(3, ' ');
        let is_event = match parts.next() {
            Some("HTTP/1.1") | Some("HTTP/1.0") => false,
            Some("EVENT/1.0") => true,
            _ => return Err(malformed("status line")),
        };
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| malformed("status code"))?;
        let mut content_type = None;
        let mut content_length = None;
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                return Err(malformed("header line"));
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-type") {
                content_type = Some(value.to_owned());
            } else if name.eq_ignore_ascii_case("content-length") {
                content_length = Some(
                    value
                        .parse::<usize>()
                        .map_err(|_| malformed("Content-Length"))?,
                );
            }
        }
        let body_start = head_end + 4;
        let len = content_length.unwrap_or(0);
        let Some(end) = body_start.checked_add(len) else {
            return Err(malformed("Content-Length"));
        };
        if self.plain.len() < end {
            return Ok(None);
        }
        let body = self.plain.get(body_start..end).unwrap_or_default().to_vec();
        self.plain.drain(..end);
        Ok(Some(Message {
            is_event,
            status,
            content_type,
            has_content_length: content_length.is_some(),
            body,
        }))
    }
}

fn malformed(context: &'static str) -> Error {
    Error::Decode(DecodeError::new(0, context, DecodeErrorKind::InvalidValue))
}

/// The longest response head accepted.
const MAX_HEAD: usize = 16 * 1024;
