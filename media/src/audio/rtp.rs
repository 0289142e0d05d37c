//! RTP for audio (RFC 3550 §5.1, RFC 7587 for Opus): one packet per encoded frame, the timestamp
//! advancing by the frame's samples at the stream's clock rate.

use crate::rtp::{RTP_HEADER_LEN, RtpHeader};

/// Packs encoded audio frames into RTP packets.
#[derive(Debug, Clone)]
pub struct AudioPacketizer {
    ssrc: u32,
    payload_type: u8,
    sequence: u16,
    timestamp: u32,
    packets: u64,
    octets: u64,
}

impl AudioPacketizer {
    /// A packetizer starting at `initial_sequence` / `initial_timestamp` (random in real use,
    /// RFC 3550 §5.1).
    pub fn new(ssrc: u32, payload_type: u8, initial_sequence: u16, initial_timestamp: u32) -> Self {
        Self {
            ssrc,
            payload_type: payload_type & 0x7f,
            sequence: initial_sequence,
            timestamp: initial_timestamp,
            packets: 0,
            octets: 0,
        }
    }

    /// Writes one RTP packet carrying `payload` (`samples` long) into `out` (cleared first);
    /// the marker bit is set on the first packet of the stream (RFC 3551 §4.1).
    pub fn packetize(&mut self, payload: &[u8], samples: u32, out: &mut Vec<u8>) {
        out.clear();
        out.reserve(RTP_HEADER_LEN + payload.len());
        RtpHeader {
            marker: self.packets == 0,
            payload_type: self.payload_type,
            sequence: self.sequence,
            timestamp: self.timestamp,
            ssrc: self.ssrc,
        }
        .write(out);
        out.extend_from_slice(payload);
        self.sequence = self.sequence.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(samples);
        self.packets += 1;
        self.octets += payload.len() as u64;
    }

    /// The RTP timestamp the next packet will carry.
    pub fn next_timestamp(&self) -> u32 {
        self.timestamp
    }

    /// Packets written.
    pub fn packet_count(&self) -> u64 {
        self.packets
    }

    /// Payload octets written.
    pub fn payload_octets(&self) -> u64 {
        self.octets
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::RtpPacket;

    #[test]
    fn timestamps_advance_by_the_samples_and_sequences_by_one() {
        let mut p = AudioPacketizer::new(0xABCD, 110, u16::MAX, u32::MAX - 100);
        let mut out = Vec::new();
        p.packetize(&[1, 2, 3], 480, &mut out);
        let first = RtpPacket::parse(&out).unwrap();
        assert!(first.header.marker);
        assert_eq!(
            (first.header.payload_type, first.header.sequence),
            (110, u16::MAX)
        );
        assert_eq!(first.payload, &[1, 2, 3]);
        p.packetize(&[4], 480, &mut out);
        let second = RtpPacket::parse(&out).unwrap();
        assert!(!second.header.marker);
        assert_eq!(second.header.sequence, 0);
        assert_eq!(second.header.timestamp, (u32::MAX - 100).wrapping_add(480));
        assert_eq!((p.packet_count(), p.payload_octets()), (2, 4));
    }
}
