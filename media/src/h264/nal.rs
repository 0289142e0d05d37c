//! NAL unit framing: Annex B byte streams, AVCC (length-prefixed) buffers, NAL header fields and
//! emulation-prevention removal (H.264 §7.3.1, §7.4.1, Annex B).
#![deny(clippy::indexing_slicing)]

use std::fmt;

use bytes::Bytes;

/// The 5-bit `nal_unit_type` of a NAL header (H.264 Table 7-1), as an open newtype: unknown
/// values are kept as they are.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NalType(pub u8);

impl NalType {
    /// Coded slice of a non-IDR picture.
    pub const SLICE: Self = Self(1);
    /// Coded slice data partition A.
    pub const SLICE_DPA: Self = Self(2);
    /// Coded slice of an IDR picture.
    pub const IDR: Self = Self(5);
    /// Supplemental enhancement information.
    pub const SEI: Self = Self(6);
    /// Sequence parameter set.
    pub const SPS: Self = Self(7);
    /// Picture parameter set.
    pub const PPS: Self = Self(8);
    /// Access unit delimiter.
    pub const AUD: Self = Self(9);
    /// End of sequence.
    pub const END_OF_SEQUENCE: Self = Self(10);
    /// End of stream.
    pub const END_OF_STREAM: Self = Self(11);
    /// Filler data.
    pub const FILLER: Self = Self(12);
    /// RTP single-time aggregation packet (RFC 6184 §5.7.1).
    pub const STAP_A: Self = Self(24);
    /// RTP fragmentation unit A (RFC 6184 §5.8).
    pub const FU_A: Self = Self(28);

    /// True for the coded-slice types 1..=5 (the VCL NAL units of H.264 §7.4.1.2.3).
    pub fn is_vcl(self) -> bool {
        (1..=5).contains(&self.0)
    }

    /// True for the types that, after a VCL NAL unit, start a new access unit
    /// (H.264 §7.4.1.2.3: AUD, SPS, PPS, SEI, 14..=18).
    pub fn starts_access_unit(self) -> bool {
        matches!(self.0, 6..=9 | 14..=18)
    }
}

impl fmt::Debug for NalType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.0 {
            1 => "SLICE",
            2 => "SLICE_DPA",
            3 => "SLICE_DPB",
            4 => "SLICE_DPC",
            5 => "IDR",
            6 => "SEI",
            7 => "SPS",
            8 => "PPS",
            9 => "AUD",
            10 => "END_OF_SEQUENCE",
            11 => "END_OF_STREAM",
            12 => "FILLER",
            24 => "STAP_A",
            28 => "FU_A",
            other => return write!(f, "NalType({other})"),
        };
        f.write_str(name)
    }
}

/// The type of a NAL unit from its first byte, or `None` for an empty NAL unit.
pub fn nal_type(nal: &[u8]) -> Option<NalType> {
    nal.first().map(|h| NalType(h & 0x1f))
}

/// Iterator over the NAL units of an Annex B byte stream (start codes `00 00 01` or
/// `00 00 00 01`), yielding each NAL unit without its start code and without trailing zero bytes.
/// Bytes before the first start code are skipped; empty NAL units are skipped.
#[derive(Debug, Clone)]
pub struct AnnexBNals<'a> {
    rest: &'a [u8],
}

/// Splits an Annex B byte stream into NAL units; see [`AnnexBNals`].
pub fn annex_b_nals(stream: &[u8]) -> AnnexBNals<'_> {
    let rest = match find_start_code(stream) {
        Some((_, after)) => stream.get(after..).unwrap_or_default(),
        None => &[],
    };
    AnnexBNals { rest }
}

impl<'a> Iterator for AnnexBNals<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        while !self.rest.is_empty() {
            let (nal, rest) = match find_start_code(self.rest) {
                Some((at, after)) => (
                    self.rest.get(..at).unwrap_or_default(),
                    self.rest.get(after..).unwrap_or_default(),
                ),
                None => (self.rest, &[][..]),
            };
            self.rest = rest;
            let nal = trim_trailing_zeros(nal);
            if !nal.is_empty() {
                return Some(nal);
            }
        }
        None
    }
}

/// Splits an Annex B byte stream held in `Bytes` into zero-copy `Bytes` NAL units.
pub fn annex_b_to_bytes(stream: &Bytes) -> Vec<Bytes> {
    annex_b_nals(stream)
        .map(|nal| stream.slice_ref(nal))
        .collect()
}

/// Splits an AVCC buffer (each NAL unit preceded by a big-endian length of `length_size` bytes,
/// 1..=4, ISO/IEC 14496-15 §5.3.4.2) into zero-copy `Bytes` NAL units.
pub fn avcc_nals(buf: &Bytes, length_size: usize) -> Result<Vec<Bytes>, AvccError> {
    if !(1..=4).contains(&length_size) {
        return Err(AvccError::BadLengthSize { length_size });
    }
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < buf.len() {
        let len_end = pos
            .checked_add(length_size)
            .filter(|&e| e <= buf.len())
            .ok_or(AvccError::Truncated { offset: pos })?;
        let len = buf
            .get(pos..len_end)
            .unwrap_or_default()
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        let end = len_end
            .checked_add(len)
            .filter(|&e| e <= buf.len())
            .ok_or(AvccError::Truncated { offset: pos })?;
        if len > 0 {
            out.push(buf.slice(len_end..end));
        }
        pos = end;
    }
    Ok(out)
}

/// Error splitting an AVCC buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AvccError {
    /// The length prefix size is not 1..=4 bytes.
    #[error("AVCC length size {length_size} is not 1..=4")]
    BadLengthSize {
        /// The size given.
        length_size: usize,
    },
    /// A length prefix or the NAL unit it announces runs past the end of the buffer.
    #[error("AVCC NAL unit at byte {offset} runs past the end of the buffer")]
    Truncated {
        /// Offset of the length prefix.
        offset: usize,
    },
}

/// Converts NAL unit payload bytes (EBSP) to RBSP by removing each emulation-prevention byte, the
/// `03` in `00 00 03` (H.264 §7.4.1).
pub fn remove_emulation_prevention(ebsp: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ebsp.len());
    let mut zeros = 0usize;
    for &b in ebsp {
        if zeros >= 2 && b == 0x03 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros.saturating_add(1) } else { 0 };
        out.push(b);
    }
    out
}

/// Finds the first start code; returns (offset of its first byte, offset just after it).
fn find_start_code(data: &[u8]) -> Option<(usize, usize)> {
    data.windows(3)
        .position(|w| w == [0, 0, 1])
        .map(|i| (i, i.saturating_add(3)))
}

fn trim_trailing_zeros(nal: &[u8]) -> &[u8] {
    let end = nal
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |i| i.saturating_add(1));
    nal.get(..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annex_b_with_three_and_four_byte_start_codes() {
        let stream = [
            0, 0, 0, 1, 0x67, 0x42, 0, 0x1f, // SPS
            0, 0, 1, 0x68, 0xce, 0x3c, 0x80, // PPS
            0, 0, 0, 1, 0x65, 0x88, 0x84, 0x00, 0x00, 0x03, 0x01, // IDR
        ];
        let nals: Vec<&[u8]> = annex_b_nals(&stream).collect();
        assert_eq!(
            nals,
            vec![
                &[0x67, 0x42, 0, 0x1f][..],
                &[0x68, 0xce, 0x3c, 0x80][..],
                &[0x65, 0x88, 0x84, 0x00, 0x00, 0x03, 0x01][..],
            ]
        );
        assert_eq!(nal_type(nals[0]), Some(NalType::SPS));
        assert_eq!(nal_type(nals[2]), Some(NalType::IDR));
    }

    #[test]
    fn annex_b_skips_leading_garbage_and_empty_nals() {
        let stream = [0xff, 0xfe, 0, 0, 1, 0, 0, 1, 0x09, 0xf0, 0, 0, 0];
        let nals: Vec<&[u8]> = annex_b_nals(&stream).collect();
        assert_eq!(nals, vec![&[0x09, 0xf0][..]]);
        assert_eq!(annex_b_nals(&[1, 2, 3]).count(), 0);
        assert_eq!(annex_b_nals(&[]).count(), 0);
    }

    #[test]
    fn annex_b_to_bytes_is_zero_copy() {
        let stream = Bytes::from_static(&[0, 0, 1, 0x41, 0x9a, 0, 0, 1, 0x41, 0x9b]);
        let nals = annex_b_to_bytes(&stream);
        assert_eq!(nals.len(), 2);
        assert_eq!(&nals[1][..], &[0x41, 0x9b]);
        assert_eq!(nals[0].as_ptr(), stream[3..].as_ptr());
    }

    #[test]
    fn avcc_splits_and_rejects_truncation() {
        let buf = Bytes::from_static(&[0, 0, 0, 2, 0x65, 0x88, 0, 0, 0, 1, 0x41]);
        let nals = avcc_nals(&buf, 4).unwrap();
        assert_eq!(
            nals,
            vec![
                Bytes::from_static(&[0x65, 0x88]),
                Bytes::from_static(&[0x41])
            ]
        );
        let short = Bytes::from_static(&[0, 0, 0, 5, 0x65]);
        assert_eq!(
            avcc_nals(&short, 4),
            Err(AvccError::Truncated { offset: 0 })
        );
        let short_prefix = Bytes::from_static(&[0, 1, 0x41, 0]);
        assert_eq!(
            avcc_nals(&short_prefix, 2),
            Err(AvccError::Truncated { offset: 3 })
        );
        assert_eq!(
            avcc_nals(&buf, 0),
            Err(AvccError::BadLengthSize { length_size: 0 })
        );
        let two = Bytes::from_static(&[0, 1, 0x09, 0, 2, 0x41, 0x42]);
        assert_eq!(avcc_nals(&two, 2).unwrap().len(), 2);
    }

    #[test]
    fn emulation_prevention_is_removed() {
        assert_eq!(remove_emulation_prevention(&[0, 0, 3, 1]), vec![0, 0, 1]);
        assert_eq!(
            remove_emulation_prevention(&[0, 0, 3, 0, 0, 3]),
            vec![0, 0, 0, 0]
        );
        assert_eq!(remove_emulation_prevention(&[0, 3, 0, 3]), vec![0, 3, 0, 3]);
        assert_eq!(remove_emulation_prevention(&[1, 0, 0, 3]), vec![1, 0, 0]);
    }

    #[test]
    fn nal_type_classes() {
        assert!(NalType::IDR.is_vcl());
        assert!(NalType::SLICE.is_vcl());
        assert!(!NalType::SPS.is_vcl());
        assert!(NalType::AUD.starts_access_unit());
        assert!(NalType::SEI.starts_access_unit());
        assert!(!NalType::IDR.starts_access_unit());
        assert_eq!(format!("{:?}", NalType(20)), "NalType(20)");
        assert_eq!(format!("{:?}", NalType::FU_A), "FU_A");
        assert_eq!(nal_type(&[]), None);
    }
}
