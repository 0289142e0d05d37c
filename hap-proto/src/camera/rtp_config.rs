//! Supported RTP Configuration (characteristic 116, HAP §7.4): the SRTP crypto suites.

use super::fields::{item_types, list_u8, put_list_u8};
use super::types::SrtpCryptoSuite;
use crate::error::DecodeError;
use crate::tlv8::{self, Writer};

item_types! {
    /// The items of Supported RTP Configuration (§7.4).
    SupportedRtpType {
        /// SRTP Crypto Suite (1 byte, a list).
        SrtpCryptoSuite = 2,
    }
}

/// Supported RTP Configuration (characteristic 116): the SRTP suites (§7.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupportedRtpConfig {
    /// Supported crypto suites.
    pub suites: Vec<SrtpCryptoSuite>,
}

impl SupportedRtpConfig {
    /// Encodes the TLV.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        put_list_u8(
            &mut w,
            SupportedRtpType::SrtpCryptoSuite,
            self.suites.iter().map(|s| s.0),
        );
        w.into_vec()
    }

    /// Decodes the TLV.
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let items = tlv8::decode(buf)?;
        let suites = list_u8(
            &items,
            SupportedRtpType::SrtpCryptoSuite,
            "SRTP crypto suite",
        )?;
        Ok(Self {
            suites: suites.into_iter().map(SrtpCryptoSuite).collect(),
        })
    }
}
