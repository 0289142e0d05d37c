//! HTTP/1.1 as HAP uses it (HAP §5): an incremental request parser and a response encoder.
//!
//! A HAP connection carries one request and its response at a time (§5.9), plaintext before
//! pair-verify and inside the encrypted framing (§4) after it. The parser takes the decrypted
//! bytes in any split; the encoder writes responses and `EVENT/1.0` notifications (§5.8), always
//! with `Content-Length` (§5: iOS can stall on chunked bodies).
//!
//! ```
//! use hap_proto::http::{Method, Parsed, RequestParser};
//! let mut p = RequestParser::new();
//! assert!(matches!(p.feed(b"GET /characteristics?id=1.9 HTTP/1.1\r\n"), Parsed::Incomplete));
//! let Parsed::Request(req) = p.feed(b"\r\n") else { panic!() };
//! assert_eq!((req.method, req.path.as_str(), req.query.as_deref()), (Method::Get, "/characteristics", Some("id=1.9")));
//! ```

mod encode;
mod parse;

pub use encode::{ContentType, Status, encode_event, encode_response};
pub use parse::{
    InvalidKind, InvalidRequest, MAX_BODY, MAX_HEAD, MAX_HEADERS, Method, Parsed, Request,
    RequestParser,
};
