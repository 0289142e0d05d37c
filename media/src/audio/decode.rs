//! A camera's audio to mono samples: G.711 by table, L16, AAC-LC with symphonia's decoder;
//! channels are averaged.

use symphonia_codec_aac::AacDecoder;
use symphonia_core::codecs::audio::well_known::CODEC_ID_AAC;
use symphonia_core::codecs::audio::{AudioCodecParameters, AudioDecoder as _, AudioDecoderOptions};
use symphonia_core::packet::PacketRef;
use symphonia_core::units::{Duration as Frames, Timestamp};

use super::g711::{alaw_to_linear, ulaw_to_linear};
use crate::frame::{AudioChunk, AudioCoding};

/// Why a camera's audio cannot be decoded.
#[derive(Debug, thiserror::Error)]
pub enum AudioDecodeError {
    /// The AAC decoder refused the stream's configuration (HE-AAC, more than 2 channels, ...).
    #[error("AAC: {0}")]
    Aac(String),
    /// No channels.
    #[error("audio with 0 channels")]
    NoChannels,
}

/// Decodes one camera's audio track.
pub struct CameraAudioDecoder {
    coding: AudioCoding,
    channels: usize,
    sample_rate: u32,
    aac: Option<AacDecoder>,
    scratch: Vec<f32>,
}

impl CameraAudioDecoder {
    /// A decoder for the track `chunk` comes from.
    pub fn new(chunk: &AudioChunk) -> Result<Self, AudioDecodeError> {
        let channels = usize::from(chunk.channels);
        if channels == 0 {
            return Err(AudioDecodeError::NoChannels);
        }
        let aac = match &chunk.coding {
            AudioCoding::Aac { config } => {
                let mut params = AudioCodecParameters::new();
                params
                    .for_codec(CODEC_ID_AAC)
                    .with_extra_data(config.to_vec().into_boxed_slice());
                Some(
                    AacDecoder::try_new(&params, &AudioDecoderOptions::default())
                        .map_err(|e| AudioDecodeError::Aac(e.to_string()))?,
                )
            }
            _ => None,
        };
        Ok(Self {
            coding: chunk.coding.clone(),
            channels,
            sample_rate: chunk.sample_rate,
            aac,
            scratch: Vec::new(),
        })
    }

    /// Whether `chunk` is of the track this decoder was made for.
    pub fn fits(&self, chunk: &AudioChunk) -> bool {
        chunk.coding == self.coding
            && usize::from(chunk.channels) == self.channels
            && chunk.sample_rate == self.sample_rate
    }

    /// Samples a second of the output.
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// Appends `chunk`'s samples, mono, full scale ±1.0, to `out`. A chunk that does not
    /// decode (damaged AAC) adds nothing.
    pub fn decode(&mut self, chunk: &AudioChunk, out: &mut Vec<f32>) {
        let n = self.channels;
        let scale = 1.0 / f32::from(i16::MAX);
        match &self.coding {
            AudioCoding::Pcmu => mono(
                chunk
                    .data
                    .iter()
                    .map(|&b| f32::from(ulaw_to_linear(b)) * scale),
                n,
                out,
            ),
            AudioCoding::Pcma => mono(
                chunk
                    .data
                    .iter()
                    .map(|&b| f32::from(alaw_to_linear(b)) * scale),
                n,
                out,
            ),
            AudioCoding::L16 => mono(
                chunk
                    .data
                    .chunks_exact(2)
                    .map(|b| f32::from(i16::from_be_bytes([b[0], b[1]])) * scale),
                n,
                out,
            ),
            AudioCoding::Aac { .. } => {
                let Some(aac) = self.aac.as_mut() else {
                    return;
                };
                let packet = PacketRef::new(0, Timestamp::new(0), Frames::new(1024), &chunk.data);
                match aac.decode_ref(&packet) {
                    Ok(buf) => {
                        let channels = buf.spec().channels().count().max(1);
                        buf.copy_to_vec_interleaved(&mut self.scratch);
                        mono(self.scratch.iter().copied(), channels, out);
                    }
                    Err(_) => aac.reset(),
                }
            }
        }
    }
}

/// Appends the mean of each group of `channels` interleaved samples.
fn mono(samples: impl Iterator<Item = f32>, channels: usize, out: &mut Vec<f32>) {
    if channels <= 1 {
        out.extend(samples);
        return;
    }
    let mut sum = 0.0;
    for (i, s) in samples.enumerate() {
        sum += s;
        if i % channels == channels - 1 {
            out.push(sum / channels as f32);
            sum = 0.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::time::Instant;

    fn chunk(coding: AudioCoding, channels: u16, data: Vec<u8>) -> AudioChunk {
        AudioChunk {
            coding,
            sample_rate: 8000,
            channels,
            data: Bytes::from(data),
            timestamp: 0,
            received_at: Instant::now(),
        }
    }

    #[test]
    fn g711_and_l16_decode_and_stereo_is_averaged() {
        let c = chunk(AudioCoding::Pcmu, 1, vec![0xff, 0x80, 0x00]);
        let mut d = CameraAudioDecoder::new(&c).unwrap();
        let mut out = Vec::new();
        d.decode(&c, &mut out);
        assert_eq!(out.len(), 3);
        assert_eq!(out[0], 0.0);
        assert!(out[1] > 0.97 && out[2] < -0.97);
        let l16 = chunk(AudioCoding::L16, 2, vec![0x40, 0x00, 0x00, 0x00]);
        let mut d = CameraAudioDecoder::new(&l16).unwrap();
        out.clear();
        d.decode(&l16, &mut out);
        assert_eq!(out.len(), 1);
        assert!((out[0] - 0.25).abs() < 0.001, "{out:?}");
        assert!(d.fits(&l16) && !d.fits(&c));
    }

    #[test]
    fn an_aac_config_the_decoder_refuses_is_an_error_and_garbage_decodes_to_nothing() {
        // AudioSpecificConfig of AAC-LC, 16 kHz, mono: object type 2, frequency index 8.
        let lc = chunk(
            AudioCoding::Aac {
                config: Bytes::from_static(&[0x14, 0x08]),
            },
            1,
            vec![0xde, 0xad],
        );
        let mut d = CameraAudioDecoder::new(&lc).unwrap();
        let mut out = Vec::new();
        d.decode(&lc, &mut out);
        assert!(out.len() <= 1024);
        let bad = chunk(
            AudioCoding::Aac {
                config: Bytes::new(),
            },
            1,
            vec![],
        );
        assert!(CameraAudioDecoder::new(&bad).is_err());
        assert!(matches!(
            CameraAudioDecoder::new(&chunk(AudioCoding::Pcma, 0, vec![])),
            Err(AudioDecodeError::NoChannels)
        ));
    }
}
