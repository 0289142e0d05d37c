//! RTP (RFC 3550) fixed header writing and parsing, and the H.264 packetizer (RFC 6184).
#![deny(clippy::indexing_slicing)]

mod depacketize;
mod h264;

pub use depacketize::{DepacketizeError, H264Depacketizer};
pub use h264::{H264Packetizer, MIN_MTU, PacketizeError, RtpConfig};

/// The fields of an RTP header this crate writes (version 2, no padding, no extension, no CSRC:
/// always [`RTP_HEADER_LEN`] bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// Marker bit (for H.264: last packet of an access unit, RFC 6184 §5.1).
    pub marker: bool,
    /// Payload type (7 bits).
    pub payload_type: u8,
    /// Sequence number.
    pub sequence: u16,
    /// Media timestamp.
    pub timestamp: u32,
    /// Synchronization source.
    pub ssrc: u32,
}

impl RtpHeader {
    /// Appends the 12-byte header (RFC 3550 §5.1) to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.push(0x80);
        out.push((u8::from(self.marker) << 7) | (self.payload_type & 0x7f));
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
    }
}

/// A parsed RTP packet borrowing its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    /// The fixed header fields.
    pub header: RtpHeader,
    /// Length of the header including CSRCs and the extension; the payload starts here.
    pub header_len: usize,
    /// The payload, without padding.
    pub payload: &'a [u8],
}

impl<'a> RtpPacket<'a> {
    /// Parses an RTP packet (RFC 3550 §5.1, §5.3.1): version 2, CSRCs, header extension and
    /// padding are handled.
    pub fn parse(packet: &'a [u8]) -> Result<Self, RtpParseError> {
        let header_len = rtp_header_len(packet)?;
        let b0 = packet.first().copied().unwrap_or_default();
        let fixed = packet
            .get(..RTP_HEADER_LEN)
            .ok_or(RtpParseError::TooShort { len: packet.len() })?;
        let [_, b1, s0, s1, t0, t1, t2, t3, c0, c1, c2, c3] = fixed else {
            return Err(RtpParseError::TooShort { len: packet.len() });
        };
        let mut end = packet.len();
        if b0 & 0x20 != 0 {
            let pad = usize::from(packet.last().copied().unwrap_or_default());
            end = end
                .checked_sub(pad)
                .filter(|&e| pad > 0 && e >= header_len)
                .ok_or(RtpParseError::BadPadding)?;
        }
        Ok(Self {
            header: RtpHeader {
                marker: b1 & 0x80 != 0,
                payload_type: b1 & 0x7f,
                sequence: u16::from_be_bytes([*s0, *s1]),
                timestamp: u32::from_be_bytes([*t0, *t1, *t2, *t3]),
                ssrc: u32::from_be_bytes([*c0, *c1, *c2, *c3]),
            },
            header_len,
            payload: packet.get(header_len..end).unwrap_or_default(),
        })
    }
}

/// Length of an RTP packet's header including CSRCs and header extension (RFC 3550 §5.1,
/// §5.3.1), after checking the version and that the header fits in the packet.
pub fn rtp_header_len(packet: &[u8]) -> Result<usize, RtpParseError> {
    let too_short = RtpParseError::TooShort { len: packet.len() };
    let b0 = *packet.first().ok_or(too_short)?;
    if b0 >> 6 != 2 {
        return Err(RtpParseError::BadVersion { version: b0 >> 6 });
    }
    let csrc_count = usize::from(b0 & 0x0f);
    let mut len = RTP_HEADER_LEN + 4 * csrc_count;
    if packet.len() < len {
        return Err(too_short);
    }
    if b0 & 0x10 != 0 {
        let ext = packet.get(len..len + 4).ok_or(too_short)?;
        let words = usize::from(u16::from_be_bytes([
            ext.get(2).copied().unwrap_or_default(),
            ext.get(3).copied().unwrap_or_default(),
        ]));
        len = len + 4 + 4 * words;
        if packet.len() < len {
            return Err(too_short);
        }
    }
    Ok(len)
}

/// Error parsing an RTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RtpParseError {
    /// The packet is shorter than its header says.
    #[error("RTP packet of {len} bytes is shorter than its header")]
    TooShort {
        /// Packet length.
        len: usize,
    },
    /// The version field is not 2.
    #[error("RTP version {version} is not 2")]
    BadVersion {
        /// The version found.
        version: u8,
    },
    /// The padding count is 0 or runs into the header.
    #[error("RTP padding count is invalid")]
    BadPadding,
}

/// Length of the fixed RTP header (RFC 3550 §5.1).
pub const RTP_HEADER_LEN: usize = 12;

#[cfg(test)]
mod tests {
    use hex_literal::hex;

    use super::*;

    #[test]
    fn header_round_trip() {
        let h = RtpHeader {
            marker: true,
            payload_type: 99,
            sequence: 0x1234,
            timestamp: 0xdeca_fbad,
            ssrc: 0xcafe_babe,
        };
        let mut buf = Vec::new();
        h.write(&mut buf);
        assert_eq!(buf, hex!("80e3 1234 decafbad cafebabe"));
        buf.extend_from_slice(b"xyz");
        let p = RtpPacket::parse(&buf).unwrap();
        assert_eq!(p.header, h);
        assert_eq!(p.header_len, 12);
        assert_eq!(p.payload, b"xyz");
    }

    #[test]
    fn csrc_extension_and_padding() {
        // 1 CSRC, extension of 1 word, padding of 2 bytes.
        let pkt = hex!("b1 63 0001 00000002 00000003 00000004 bede0001 11223344 aabb 0002");
        let p = RtpPacket::parse(&pkt).unwrap();
        assert_eq!(p.header_len, 12 + 4 + 8);
        assert_eq!(p.payload, &hex!("aabb"));
        assert_eq!(
            rtp_header_len(&pkt[..20]),
            Err(RtpParseError::TooShort { len: 20 })
        );
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(
            RtpPacket::parse(&[]),
            Err(RtpParseError::TooShort { len: 0 })
        );
        assert_eq!(
            RtpPacket::parse(&hex!("40 00 0000 00000000 00000000")),
            Err(RtpParseError::BadVersion { version: 1 })
        );
        assert_eq!(
            RtpPacket::parse(&hex!("a0 00 0000 00000000 00000000 00")),
            Err(RtpParseError::BadPadding)
        );
        assert_eq!(
            RtpPacket::parse(&hex!("80 00 0000 00000000 000000")),
            Err(RtpParseError::TooShort { len: 11 })
        );
    }
}
