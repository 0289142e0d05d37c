//! Streaming Status (characteristic 120, HAP §7.7).

use super::fields::{item_types, req_u8};
use super::types::StreamingStatus;
use crate::error::DecodeError;
use crate::tlv8::{self, Writer};

item_types! {
    /// The items of Streaming Status (§7.7).
    StreamingStatusType {
        /// Status (1 byte: 0 available, 1 in use, 2 unavailable).
        Status = 1,
    }
}

/// Encodes a Streaming Status value (characteristic 120, §7.7).
pub fn encode_streaming_status(status: StreamingStatus) -> Vec<u8> {
    let mut w = Writer::new();
    w.put_u8(StreamingStatusType::Status, status.0);
    w.into_vec()
}

/// Decodes a Streaming Status value.
pub fn decode_streaming_status(buf: &[u8]) -> Result<StreamingStatus, DecodeError> {
    let items = tlv8::decode(buf)?;
    Ok(StreamingStatus(req_u8(
        &items,
        StreamingStatusType::Status,
        "streaming status",
    )?))
}
