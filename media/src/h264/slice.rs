//! The slice type of a coded slice (H.264 §7.3.3, Table 7-6): enough to tell a stream whose
//! decode order differs from its display order (B-slices) from one that never reorders.

use super::bits::BitReader;
use super::nal::{NalType, nal_type, remove_emulation_prevention};

/// Bytes after the NAL header read for `first_mb_in_slice` and `slice_type`: two ue(v) of at
/// most 33 and 7 bits, plus room for emulation prevention bytes.
const HEADER_BYTES: usize = 12;
/// `slice_type` values are 0..=9 (5..=9: every slice of the picture has that type).
const MAX_SLICE_TYPE: u32 = 9;
/// `slice_type % 5` of a B-slice.
const B_SLICE: u32 = 1;

/// `slice_type` of a coded slice NAL unit (P 0, B 1, I 2, SP 3, SI 4, or the same plus 5), or
/// `None` when `nal` is not a slice or its header is cut short or out of range.
pub fn slice_type(nal: &[u8]) -> Option<u32> {
    if !matches!(nal_type(nal)?, NalType::SLICE | NalType::IDR) {
        return None;
    }
    let head = nal.get(1..nal.len().min(1 + HEADER_BYTES))?;
    let rbsp = remove_emulation_prevention(head);
    let mut r = BitReader::new(&rbsp);
    r.ue("first_mb_in_slice").ok()?;
    let slice_type = r.ue("slice_type").ok()?;
    (slice_type <= MAX_SLICE_TYPE).then_some(slice_type)
}

/// Whether one of `nals` is a B-slice: the stream reorders pictures, so a decoder outputs them
/// in display order after a delay.
pub fn has_b_slice<'a>(nals: impl IntoIterator<Item = &'a [u8]>) -> bool {
    nals.into_iter()
        .any(|nal| slice_type(nal).is_some_and(|t| t % 5 == B_SLICE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_types_from_hand_made_headers() {
        // nal_unit_type 1, then first_mb_in_slice 0 ("1") and slice_type as ue(v).
        assert_eq!(slice_type(&[0x41, 0b1100_0000]), Some(0)); // "1" "1": P
        assert_eq!(slice_type(&[0x01, 0b1010_0000]), Some(1)); // "1" "010": B
        assert_eq!(slice_type(&[0x41, 0b1001_1100]), Some(6)); // "1" "00111": B, all slices
        // IDR, first_mb_in_slice 3 ("00100"), slice_type 7 ("0001000"): I.
        assert_eq!(slice_type(&[0x65, 0b0010_0000, 0b1000_0000]), Some(7));
        // A long first_mb_in_slice (22 leading zeros) puts 00 00 02 in the RBSP twice, so the
        // slice carries two emulation prevention bytes: 00 00 03 02 00 00 03 02, the last 02
        // ending in slice_type "010" (B).
        let nal = [0x41, 0x00, 0x00, 0x03, 0x02, 0x00, 0x00, 0x03, 0x02];
        assert_eq!(slice_type(&nal), Some(1));
        assert_eq!(slice_type(&nal[..7]), None);
    }

    #[test]
    fn other_units_and_cut_headers_are_none() {
        assert_eq!(slice_type(&[0x67, 0x42, 0x00, 0x1f]), None); // SPS
        assert_eq!(slice_type(&[0x41]), None);
        assert_eq!(slice_type(&[0x41, 0x00, 0x00]), None);
        assert_eq!(slice_type(&[]), None);
        // slice_type 10 ("0001011") is out of range.
        assert_eq!(slice_type(&[0x41, 0b1000_1011]), None);
    }

    #[test]
    fn an_access_unit_with_one_b_slice_reorders() {
        let p: &[u8] = &[0x41, 0b1100_0000];
        let b: &[u8] = &[0x01, 0b1010_0000];
        let sps: &[u8] = &[0x67, 0x64];
        assert!(!has_b_slice([sps, p]));
        assert!(has_b_slice([p, b]));
        assert!(!has_b_slice([]));
    }
}
