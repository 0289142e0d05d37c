//! Decoding a camera's access units with openh264, each picture out as early as the stream
//! allows, carrying the source stamps of the access unit it was coded in.
//!
//! openh264's decoder holds a picture back while a later one might have to be shown first. The
//! `openh264` crate flushes it out at once by default: right for streams that never reorder
//! (without it a Main or High profile stream comes out one picture late, +33 ms at 30 fps), but
//! flushing a stream with B-slices breaks the decoder's picture bookkeeping (every picture after
//! the first B-slice fails to decode). So a [`SourceDecoder`] starts with immediate output, and
//! the first B-slice (H.264 §7.4.3, `slice_type`) switches it for good to display order: a new
//! decoder without the flush, fed again the access units since the last IDR. From then on a
//! picture comes out after the stream's reorder delay, stamped with its own access unit's
//! timestamp and arrival (display order is ascending presentation time, so the earliest stamp
//! still waiting is the picture's).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::Instant;

use openh264::OpenH264API;
use openh264::decoder::{DecodedYUV, Decoder, DecoderConfig, Flush};

use crate::frame::AccessUnit;
use crate::h264::has_b_slice;

/// Access units kept since the last IDR for the switch to display order (20 s at 30 fps).
pub const MAX_REPLAY: usize = 600;
/// Stamps of pictures held for reordering, at most (H.264's largest DPB is 16 frames).
const MAX_PENDING: usize = 16;

/// Where a picture came from: its access unit's presentation time and arrival.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stamp {
    /// Presentation time on the source's 90 kHz clock.
    pub timestamp_90k: u64,
    /// When the access unit arrived from the source.
    pub received_at: Instant,
}

impl Stamp {
    fn of(au: &AccessUnit) -> Self {
        Self {
            timestamp_90k: au.timestamp_90k,
            received_at: au.received_at,
        }
    }
}

/// A decoded picture (borrowed from the decoder until the next call) and its stamp.
pub struct Picture<'a> {
    /// The picture, I420 with row strides.
    pub yuv: DecodedYUV<'a>,
    /// Its access unit's stamp.
    pub stamp: Stamp,
}

/// Why an access unit did not decode.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// openh264 rejected it (or, after a switch to display order, one replayed before it).
    #[error("openh264: {0}")]
    Codec(#[from] openh264::Error),
    /// The first B-slice came more than [`MAX_REPLAY`] access units after the last IDR, too
    /// late to replay; decoding resumes at the next IDR.
    #[error("B-slices {0} access units after the last IDR: waiting for the next IDR")]
    TooLateToReorder(usize),
}

/// An openh264 decoder for one source (see the module docs).
pub struct SourceDecoder {
    decoder: Decoder,
    /// The stream has B-slices: pictures come out in display order.
    reorders: bool,
    /// Access units since the last IDR (empty until one), while not reordering.
    since_idr: Vec<Arc<AccessUnit>>,
    /// `since_idr` overflowed [`MAX_REPLAY`] since the last IDR.
    overflowed: bool,
    /// Stamps of the access units fed but not yet out as pictures, while reordering.
    pending: BinaryHeap<Reverse<Stamp>>,
    /// Presentation time of the last picture out before the switch to display order: the
    /// replayed pictures up to it were shown already, and the B-pictures before it would go
    /// back in time, so they are not let out again.
    shown: Option<u64>,
    annex_b: Vec<u8>,
}

impl SourceDecoder {
    /// A decoder with immediate output.
    pub fn new() -> Result<Self, openh264::Error> {
        Ok(Self {
            decoder: Decoder::new()?,
            reorders: false,
            since_idr: Vec::new(),
            overflowed: false,
            pending: BinaryHeap::new(),
            shown: None,
            annex_b: Vec::new(),
        })
    }

    /// Whether the stream reorders (B-slices seen): pictures come out in display order, late.
    pub fn reorders(&self) -> bool {
        self.reorders
    }

    /// Decodes one access unit and returns the picture it lets out, if any. After an error
    /// the decoder needs an IDR again (its references are gone); the caller skips to one.
    pub fn decode(&mut self, au: &Arc<AccessUnit>) -> Result<Option<Picture<'_>>, DecodeError> {
        if !self.reorders {
            self.track_since_idr(au);
            if has_b_slice(au.nals.iter().map(|n| &n[..])) {
                self.switch_to_display_order()?;
            }
        }
        let result = if self.reorders {
            Self::decode_reordered(&mut self.decoder, &mut self.pending, &mut self.annex_b, au)
        } else {
            Self::feed(&mut self.decoder, &mut self.annex_b, au)
                .map(|yuv| yuv.map(|yuv| (yuv, Stamp::of(au))))
        };
        if au.is_idr && self.reorders {
            self.shown = None;
        }
        match result {
            Ok(Some((_, stamp)))
                if self.reorders && self.shown.is_some_and(|t| stamp.timestamp_90k <= t) =>
            {
                Ok(None)
            }
            Ok(out) => {
                let out = out.map(|(yuv, stamp)| Picture { yuv, stamp });
                if let Some(picture) = &out {
                    self.shown = (!self.reorders).then_some(picture.stamp.timestamp_90k);
                }
                Ok(out)
            }
            Err(e) => {
                self.pending.clear();
                self.since_idr.clear();
                Err(e.into())
            }
        }
    }

    /// The newest of the pictures still held for reordering (the rest are dropped); `None`
    /// when nothing is held, as always for a stream that does not reorder.
    pub fn flush(&mut self) -> Result<Option<Picture<'_>>, DecodeError> {
        if !self.reorders {
            return Ok(None);
        }
        let newest = self.pending.drain().map(|Reverse(s)| s).max();
        let mut pictures = self.decoder.flush_remaining()?;
        Ok(pictures
            .pop()
            .zip(newest)
            .map(|(yuv, stamp)| Picture { yuv, stamp }))
    }

    fn track_since_idr(&mut self, au: &Arc<AccessUnit>) {
        if au.is_idr {
            self.since_idr.clear();
            self.overflowed = false;
        } else if self.since_idr.is_empty() || self.overflowed {
            return;
        }
        if self.since_idr.len() >= MAX_REPLAY {
            self.since_idr.clear();
            self.overflowed = true;
            return;
        }
        self.since_idr.push(Arc::clone(au));
    }

    /// A new decoder in display order, fed the access units since the last IDR up to (not
    /// including) the newest one, whose pictures are not wanted.
    fn switch_to_display_order(&mut self) -> Result<(), DecodeError> {
        let config = DecoderConfig::new().flush_after_decode(Flush::NoFlush);
        self.decoder = Decoder::with_api_config(OpenH264API::from_source(), config)?;
        self.reorders = true;
        let replay = std::mem::take(&mut self.since_idr);
        if self.overflowed {
            return Err(DecodeError::TooLateToReorder(MAX_REPLAY));
        }
        for au in replay.iter().take(replay.len().saturating_sub(1)) {
            let fed =
                Self::decode_reordered(&mut self.decoder, &mut self.pending, &mut self.annex_b, au);
            if let Err(e) = fed {
                self.pending.clear();
                return Err(e.into());
            }
        }
        Ok(())
    }

    /// Feeds `au` to a display-order decoder; a picture out takes the earliest waiting stamp.
    fn decode_reordered<'d>(
        decoder: &'d mut Decoder,
        pending: &mut BinaryHeap<Reverse<Stamp>>,
        annex_b: &mut Vec<u8>,
        au: &AccessUnit,
    ) -> Result<Option<(DecodedYUV<'d>, Stamp)>, openh264::Error> {
        pending.push(Reverse(Stamp::of(au)));
        while pending.len() > MAX_PENDING {
            pending.pop();
        }
        let Some(yuv) = Self::feed(decoder, annex_b, au)? else {
            return Ok(None);
        };
        // Display order: the earliest stamp still waiting is this picture's.
        Ok(pending.pop().map(|Reverse(stamp)| (yuv, stamp)))
    }

    fn feed<'d>(
        decoder: &'d mut Decoder,
        annex_b: &mut Vec<u8>,
        au: &AccessUnit,
    ) -> Result<Option<DecodedYUV<'d>>, openh264::Error> {
        annex_b.clear();
        au.write_annex_b(annex_b);
        decoder.decode(annex_b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    /// An access unit with one slice of `slice_header` (NAL header byte + slice header bits).
    fn au(slice_header: &'static [u8], timestamp_90k: u64) -> Arc<AccessUnit> {
        Arc::new(AccessUnit {
            nals: vec![Bytes::from_static(slice_header)],
            is_idr: slice_header.first().is_some_and(|h| h & 0x1f == 5),
            timestamp_90k,
            received_at: Instant::now(),
            parameter_sets: None,
        })
    }

    const IDR: &[u8] = &[0x65, 0b1000_1000]; // first_mb 0, slice_type 7 (I)
    const P: &[u8] = &[0x41, 0b1100_0000]; // slice_type 0
    const B: &[u8] = &[0x01, 0b1010_0000]; // slice_type 1

    #[test]
    fn access_units_are_kept_from_an_idr_up_to_max_replay() {
        let mut d = SourceDecoder::new().unwrap();
        // Before any IDR nothing is kept (a decoder cannot start there).
        d.track_since_idr(&au(P, 0));
        assert!(d.since_idr.is_empty());
        d.track_since_idr(&au(IDR, 1));
        for ts in 2..=MAX_REPLAY as u64 {
            d.track_since_idr(&au(P, ts));
        }
        assert_eq!(d.since_idr.len(), MAX_REPLAY);
        // One more: too long to replay; nothing is kept until the next IDR.
        d.track_since_idr(&au(P, 0));
        assert!(d.overflowed && d.since_idr.is_empty());
        d.track_since_idr(&au(P, 0));
        assert!(d.since_idr.is_empty());
        d.track_since_idr(&au(IDR, 0));
        assert!(!d.overflowed && d.since_idr.len() == 1);
    }

    #[test]
    fn a_first_b_slice_too_long_after_the_idr_asks_for_the_next_idr() {
        let mut d = SourceDecoder::new().unwrap();
        d.track_since_idr(&au(IDR, 0));
        for ts in 1..=MAX_REPLAY as u64 {
            d.track_since_idr(&au(P, ts));
        }
        assert!(d.overflowed);
        let e = d.decode(&au(B, 0)).err();
        assert!(matches!(e, Some(DecodeError::TooLateToReorder(_))), "{e:?}");
        // Display order from now on, whatever comes next.
        assert!(d.reorders());
    }
}
