//! Grouping NAL units into access units (H.264 §7.4.1.2.3).
#![deny(clippy::indexing_slicing)]

use std::mem;

use bytes::Bytes;

use super::nal::nal_type;

/// Groups a sequence of NAL units (in decoding order, without start codes) into access units.
///
/// A new access unit starts, once the current one holds a VCL NAL unit, at an AUD, SPS, PPS, SEI
/// or type 14..=18 NAL unit, or at a VCL NAL unit whose `first_mb_in_slice` is 0 (H.264
/// §7.4.1.2.3 and §7.4.1.2.4, simplified for streams without arbitrary slice order).
#[derive(Debug, Default)]
pub struct AccessUnitSplitter {
    current: Vec<Bytes>,
    seen_vcl: bool,
}

impl AccessUnitSplitter {
    /// An empty splitter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one NAL unit; returns the previous access unit when this NAL unit starts a new one.
    /// Empty NAL units are ignored.
    pub fn push(&mut self, nal: Bytes) -> Option<Vec<Bytes>> {
        let ty = nal_type(&nal)?;
        let starts_new = self.seen_vcl
            && (ty.starts_access_unit() || (ty.is_vcl() && first_mb_in_slice_is_zero(&nal)));
        let done = if starts_new { self.flush() } else { None };
        if ty.is_vcl() {
            self.seen_vcl = true;
        }
        self.current.push(nal);
        done
    }

    /// Returns the NAL units collected so far as an access unit (at the end of the stream), or
    /// `None` if there are none.
    pub fn flush(&mut self) -> Option<Vec<Bytes>> {
        self.seen_vcl = false;
        if self.current.is_empty() {
            None
        } else {
            Some(mem::take(&mut self.current))
        }
    }
}

/// `first_mb_in_slice` is the first ue(v) of the slice header (H.264 §7.3.3); it is 0 exactly
/// when its first bit is 1. The first payload byte cannot hold an emulation-prevention byte.
fn first_mb_in_slice_is_zero(nal: &[u8]) -> bool {
    nal.get(1).is_some_and(|b| b & 0x80 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nal(bytes: &'static [u8]) -> Bytes {
        Bytes::from_static(bytes)
    }

    #[test]
    fn groups_by_parameter_sets_and_first_mb() {
        let mut s = AccessUnitSplitter::new();
        let mut aus = Vec::new();
        for n in [
            nal(&[0x09, 0xf0]), // AUD
            nal(&[0x67, 0x42]), // SPS
            nal(&[0x68, 0xce]), // PPS
            nal(&[0x65, 0x88]), // IDR, first_mb 0
            nal(&[0x65, 0x20]), // IDR, second slice (first_mb != 0)
            nal(&[0x41, 0x9a]), // P, first_mb 0 -> new AU
            nal(&[0x06, 0x05]), // SEI -> new AU
            nal(&[0x41, 0x9a]), // P of that AU
            nal(&[]),           // ignored
        ] {
            aus.extend(s.push(n));
        }
        aus.extend(s.flush());
        let lens: Vec<usize> = aus.iter().map(Vec::len).collect();
        assert_eq!(lens, vec![5, 1, 2]);
        assert_eq!(&aus[0][3][..], &[0x65, 0x88]);
        assert!(s.flush().is_none());
    }
}
