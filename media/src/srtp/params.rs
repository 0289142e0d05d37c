//! Master key and salt as base64 of key || salt: ffmpeg's `-srtp_out_params`, SDES `inline:`
//! (RFC 4568 §6.1) and the ffmpeg command lines of the Python and Node.js camera bridges.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

use super::SrtpSuite;

/// Base64 of `key || salt`.
pub fn encode_params(key: &[u8], salt: &[u8]) -> Zeroizing<String> {
    let mut both = Zeroizing::new(Vec::with_capacity(key.len() + salt.len()));
    both.extend_from_slice(key);
    both.extend_from_slice(salt);
    Zeroizing::new(STANDARD.encode(&both[..]))
}

/// Splits base64 `key || salt` for `suite` (16 + 14 bytes, or 32 + 14 bytes). An SDES
/// `inline:` value may carry `|lifetime|MKI` after the key; that part is ignored.
pub fn decode_params(suite: SrtpSuite, params: &str) -> Result<MasterKey, SrtpKeyError> {
    let b64 = params.split('|').next().unwrap_or_default().trim();
    let both = Zeroizing::new(STANDARD.decode(b64).map_err(|_| SrtpKeyError::Base64)?);
    let expected = suite.key_len() + suite.salt_len();
    if both.len() != expected {
        return Err(SrtpKeyError::ParamsLength {
            expected,
            got: both.len(),
        });
    }
    let (key, salt) = both.split_at(suite.key_len());
    Ok(MasterKey {
        key: Zeroizing::new(key.to_vec()),
        salt: Zeroizing::new(salt.to_vec()),
    })
}

/// An SRTP master key and salt, zeroized on drop and never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKey {
    /// Master key (16 or 32 bytes).
    pub key: Zeroizing<Vec<u8>>,
    /// Master salt (14 bytes).
    pub salt: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "MasterKey({} + {} bytes)",
            self.key.len(),
            self.salt.len()
        )
    }
}

/// Bad SRTP key material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SrtpKeyError {
    /// The master key has the wrong length for the suite.
    #[error("SRTP master key of {got} bytes, expected {expected}")]
    KeyLength {
        /// Length the suite needs.
        expected: usize,
        /// Length given.
        got: usize,
    },
    /// The master salt has the wrong length for the suite.
    #[error("SRTP master salt of {got} bytes, expected {expected}")]
    SaltLength {
        /// Length the suite needs.
        expected: usize,
        /// Length given.
        got: usize,
    },
    /// The base64 parameters decode to the wrong length.
    #[error("SRTP parameters of {got} bytes, expected {expected}")]
    ParamsLength {
        /// Length the suite needs (key + salt).
        expected: usize,
        /// Length given.
        got: usize,
    },
    /// The parameters are not valid base64.
    #[error("SRTP parameters are not valid base64")]
    Base64,
}
