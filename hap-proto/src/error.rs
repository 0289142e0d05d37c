//! Errors of the HAP core, each knowing its wire consequence.

pub use crate::decode_error::{DecodeError, DecodeErrorKind};
use crate::tlv8::TlvError;

/// An error raised while handling controller input.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The bytes could not be decoded.
    #[error("malformed message: {0}")]
    Decode(#[from] DecodeError),
    /// The peer broke a protocol rule.
    #[error("peer misbehaved: {0:?}")]
    PeerMisbehaved(PeerMisbehaved),
    /// A proof, tag or signature did not verify.
    #[error("authentication failed")]
    Authentication,
    /// A pairing request was refused with this `kTLVError`.
    #[error("pairing refused: {0:?}")]
    Pairing(TlvError),
    /// An encrypted frame announced more than 1024 bytes of plaintext (HAP §4).
    #[error("frame of {len} bytes exceeds 1024")]
    FrameTooLarge {
        /// The announced plaintext length.
        len: usize,
    },
    /// The caller's store failed to persist a change; nothing was acknowledged to the peer.
    #[error("state store failed: {0}")]
    Store(StoreError),
}

impl Error {
    /// The `kTLVError` a pairing endpoint answers with for this error (HAP §1.4).
    pub fn tlv_error(&self) -> TlvError {
        match self {
            Self::Authentication => TlvError::AUTHENTICATION,
            Self::Pairing(e) => *e,
            _ => TlvError::UNKNOWN,
        }
    }
}

/// A violation of a protocol rule by the peer, one variant per rule.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerMisbehaved {
    /// A pairing message arrived in a state that does not expect it.
    UnexpectedState {
        /// The state byte received.
        received: u8,
    },
    /// A pairing message named a method this endpoint does not serve.
    UnsupportedMethod {
        /// The method byte received.
        method: u8,
    },
    /// A required TLV item was missing.
    MissingItem {
        /// The TLV type that was required.
        ty: u8,
    },
    /// A TLV item had the wrong length.
    BadLength {
        /// The TLV type.
        ty: u8,
        /// Its length.
        len: usize,
    },
    /// The SRP public key A was zero modulo N (HAP §2.1).
    InvalidSrpPublicKey,
    /// The frame counter would wrap (2^64 frames).
    CounterExhausted,
}

/// A failure of the caller's persistent store, carried through without a `String`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{what}")]
pub struct StoreError {
    /// What failed, for the log.
    pub what: &'static str,
}
