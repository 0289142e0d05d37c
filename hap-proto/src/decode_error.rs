//! The error of undecodable bytes, below both the crate's `Error` and the codecs that raise it
//! (TLV8, HTTP), so that the codecs need not depend on the crate's error type.

/// Bytes that could not be decoded, with where and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{context} at byte {offset}: {kind:?}")]
pub struct DecodeError {
    /// Offset of the offending byte in the input.
    pub offset: usize,
    /// What was being decoded.
    pub context: &'static str,
    /// What was wrong.
    pub kind: DecodeErrorKind,
}

impl DecodeError {
    /// A decode error at `offset` while decoding `context`.
    pub fn new(offset: usize, context: &'static str, kind: DecodeErrorKind) -> Self {
        Self {
            offset,
            context,
            kind,
        }
    }
}

/// What was wrong with undecodable bytes.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeErrorKind {
    /// The input ended inside an item.
    Truncated,
    /// A continuation fragment had length zero (HAP §1.2).
    EmptyContinuation,
    /// An item that must appear once appeared more than once.
    Duplicate,
    /// A value was out of range or not of the expected form.
    InvalidValue,
    /// The input exceeded a limit.
    TooLong,
}
