//! The unit of video that flows from a source through a hub to consumers: one H.264 access unit
//! (one picture), as NAL units without start codes.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

/// One coded picture: its NAL units (no start codes, no length prefixes), in decoding order.
///
/// Sources drop AUD (type 9) and SEI (type 6) NAL units and carry SPS/PPS separately in
/// [`AccessUnit::parameter_sets`], so `nals` holds only the slices (and any other NAL types the
/// camera sends that must reach the decoder).
#[derive(Clone, Debug)]
pub struct AccessUnit {
    /// NAL units in decoding order, each starting with its NAL header byte (RFC 6184 §1.3).
    pub nals: Vec<Bytes>,
    /// Whether this picture is an IDR (NAL type 5): a decoder can start here.
    pub is_idr: bool,
    /// Presentation time on the 90 kHz RTP clock, monotonic per source session (RFC 6184 §5.1).
    pub timestamp_90k: u64,
    /// When the first byte of this picture arrived from the source (or was encoded, for
    /// in-process sources); the start point of the per-frame added-latency measurement.
    pub received_at: Instant,
    /// The SPS/PPS in effect. Sources set it on every IDR; it may also be set on other pictures
    /// when the camera changed its parameters in-band.
    pub parameter_sets: Option<Arc<ParameterSets>>,
}

impl AccessUnit {
    /// Sum of the NAL unit sizes, parameter sets excluded.
    pub fn byte_len(&self) -> usize {
        self.nals.iter().map(Bytes::len).sum()
    }

    /// Appends the picture in Annex B form (H.264 §B.1), SPS and PPS first when present, as a
    /// decoder wants it.
    pub fn write_annex_b(&self, out: &mut Vec<u8>) {
        if let Some(ps) = &self.parameter_sets {
            for nal in [&ps.sps, &ps.pps] {
                out.extend_from_slice(&START_CODE);
                out.extend_from_slice(nal);
            }
        }
        for nal in &self.nals {
            out.extend_from_slice(&START_CODE);
            out.extend_from_slice(nal);
        }
    }
}

/// How a camera's audio is coded (what the audio decoder needs to know).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AudioCoding {
    /// G.711 µ-law (RTP PCMU).
    Pcmu,
    /// G.711 A-law (RTP PCMA).
    Pcma,
    /// 16-bit big-endian linear PCM (RTP L16).
    L16,
    /// AAC-LC access units without ADTS headers; `config` is the AudioSpecificConfig
    /// (ISO/IEC 14496-3 §1.6.2.1).
    Aac {
        /// The AudioSpecificConfig.
        config: Bytes,
    },
}

/// A piece of a camera's audio as it arrived: one RTP frame's payload.
#[derive(Clone, Debug)]
pub struct AudioChunk {
    /// The coding.
    pub coding: AudioCoding,
    /// Samples a second.
    pub sample_rate: u32,
    /// Channels (interleaved).
    pub channels: u16,
    /// The coded data.
    pub data: Bytes,
    /// Presentation time, in samples of `sample_rate` since the session's start.
    pub timestamp: i64,
    /// When it arrived.
    pub received_at: Instant,
}

/// One SPS and one PPS, without start codes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParameterSets {
    /// Sequence parameter set NAL unit (type 7), header byte included.
    pub sps: Bytes,
    /// Picture parameter set NAL unit (type 8), header byte included.
    pub pps: Bytes,
}

/// Where a source is in its life; hubs report it to callers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceState {
    /// Not running: a lazy hub with no consumers.
    Idle,
    /// First connection attempt under way.
    Connecting,
    /// Pictures are flowing.
    Streaming,
    /// The source failed, ended or stalled; the next attempt follows after a backoff.
    Reconnecting {
        /// Consecutive failed attempts so far (1 after the first failure).
        attempt: u32,
    },
    /// Shut down for good.
    Stopped,
}

/// Removes a leading 3- or 4-byte Annex B start code, if any (openh264 output carries them).
#[cfg(feature = "runtime")]
pub(crate) fn strip_start_code(nal: &[u8]) -> &[u8] {
    nal.strip_prefix(&START_CODE)
        .or_else(|| nal.strip_prefix(&START_CODE[1..]))
        .unwrap_or(nal)
}

const START_CODE: [u8; 4] = [0, 0, 0, 1];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annex_b_puts_parameter_sets_first() {
        let au = AccessUnit {
            nals: vec![Bytes::from_static(&[0x65, 0xaa])],
            is_idr: true,
            timestamp_90k: 0,
            received_at: Instant::now(),
            parameter_sets: Some(Arc::new(ParameterSets {
                sps: Bytes::from_static(&[0x67, 1]),
                pps: Bytes::from_static(&[0x68, 2]),
            })),
        };
        let mut out = Vec::new();
        au.write_annex_b(&mut out);
        assert_eq!(
            out,
            [
                0, 0, 0, 1, 0x67, 1, 0, 0, 0, 1, 0x68, 2, 0, 0, 0, 1, 0x65, 0xaa
            ]
        );
        assert_eq!(au.byte_len(), 2);
    }

    #[cfg(feature = "runtime")]
    #[test]
    fn start_codes_are_stripped() {
        assert_eq!(strip_start_code(&[0, 0, 0, 1, 0x65]), [0x65]);
        assert_eq!(strip_start_code(&[0, 0, 1, 0x41]), [0x41]);
        assert_eq!(strip_start_code(&[0x41]), [0x41]);
    }
}
