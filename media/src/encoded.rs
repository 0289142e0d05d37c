//! The NAL units of an openh264 encoder output, shared by the test-pattern source and the
//! transcoder (a module of its own so that neither depends on the other).

use bytes::Bytes;
use openh264::encoder::EncodedBitStream;

use crate::frame::strip_start_code;
use crate::h264::{NalType, nal_type};

/// The NAL units of one openh264 output picture, start codes removed: its SPS and PPS (an IDR
/// carries them), and the picture's own units (access unit delimiters and SEI dropped).
pub struct EncodedUnits {
    /// The sequence parameter set, when the encoder emitted one.
    pub sps: Option<Bytes>,
    /// The picture parameter set, when the encoder emitted one.
    pub pps: Option<Bytes>,
    /// The picture's slice units.
    pub nals: Vec<Bytes>,
}

impl EncodedUnits {
    /// Splits an encoder output.
    pub fn of(stream: &EncodedBitStream<'_>) -> Self {
        let mut out = Self {
            sps: None,
            pps: None,
            nals: Vec::new(),
        };
        for layer in (0..stream.num_layers()).filter_map(|i| stream.layer(i)) {
            for raw in (0..layer.nal_count()).filter_map(|i| layer.nal_unit(i)) {
                let unit = Bytes::copy_from_slice(strip_start_code(raw));
                match nal_type(&unit) {
                    Some(NalType::SPS) => out.sps = Some(unit),
                    Some(NalType::PPS) => out.pps = Some(unit),
                    Some(NalType::AUD | NalType::SEI) | None => {}
                    Some(_) => out.nals.push(unit),
                }
            }
        }
        out
    }
}
