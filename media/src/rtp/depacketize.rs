//! A small H.264 RTP depacketizer (RFC 6184 packetization-mode 1: single NAL unit, STAP-A,
//! FU-A), used to check the packetizer and for receiving test streams.
#![deny(clippy::indexing_slicing)]

use bytes::Bytes;

use super::RtpPacket;
use crate::h264::NalType;

/// Reassembles NAL units from RTP packets, one access unit per marker bit.
#[derive(Debug, Default)]
pub struct H264Depacketizer {
    fu: Option<Vec<u8>>,
    nals: Vec<Bytes>,
    next_sequence: Option<u16>,
    gaps: u64,
}

impl H264Depacketizer {
    /// An empty depacketizer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one RTP packet; returns the NAL units of the access unit it ends (marker bit set).
    ///
    /// A sequence gap drops the partially received access unit and is counted in
    /// [`gaps`](Self::gaps).
    pub fn push(&mut self, packet: &RtpPacket<'_>) -> Result<Option<Vec<Bytes>>, DepacketizeError> {
        let seq = packet.header.sequence;
        if self.next_sequence.is_some_and(|e| e != seq) {
            self.fu = None;
            self.nals.clear();
            self.gaps = self.gaps.saturating_add(1);
        }
        self.next_sequence = Some(seq.wrapping_add(1));
        let payload = packet.payload;
        let header = *payload.first().ok_or(DepacketizeError::Empty)?;
        match NalType(header & 0x1f) {
            NalType::STAP_A => {
                let mut rest = payload.get(1..).unwrap_or_default();
                while !rest.is_empty() {
                    let [a, b, tail @ ..] = rest else {
                        return Err(DepacketizeError::BadStapA);
                    };
                    let len = usize::from(u16::from_be_bytes([*a, *b]));
                    let nal = tail.get(..len).ok_or(DepacketizeError::BadStapA)?;
                    self.nals.push(Bytes::copy_from_slice(nal));
                    rest = tail.get(len..).unwrap_or_default();
                }
            }
            NalType::FU_A => {
                let fu_header = *payload.get(1).ok_or(DepacketizeError::BadFuA)?;
                let data = payload.get(2..).unwrap_or_default();
                let start = fu_header & 0x80 != 0;
                let end = fu_header & 0x40 != 0;
                if start {
                    let mut nal = vec![(header & 0xe0) | (fu_header & 0x1f)];
                    nal.extend_from_slice(data);
                    self.fu = Some(nal);
                } else if let Some(nal) = self.fu.as_mut() {
                    nal.extend_from_slice(data);
                } else {
                    return Err(DepacketizeError::BadFuA);
                }
                if end && let Some(nal) = self.fu.take() {
                    self.nals.push(Bytes::from(nal));
                }
            }
            _ => self.nals.push(Bytes::copy_from_slice(payload)),
        }
        if packet.header.marker {
            self.fu = None;
            return Ok(Some(std::mem::take(&mut self.nals)));
        }
        Ok(None)
    }

    /// Number of sequence gaps seen.
    pub fn gaps(&self) -> u64 {
        self.gaps
    }
}

/// Error depacketizing H.264.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DepacketizeError {
    /// The packet has no payload.
    #[error("empty RTP payload")]
    Empty,
    /// A STAP-A length runs past the payload.
    #[error("malformed STAP-A")]
    BadStapA,
    /// An FU-A is too short or continues a fragment that never started.
    #[error("malformed or orphan FU-A")]
    BadFuA,
}
