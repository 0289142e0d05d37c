//! Supported Audio Stream Configuration (characteristic 115, HAP §7.3): the audio codecs and
//! their parameters, and comfort noise.

use super::fields::{item_types, list_u8, put_list, put_list_u8, req, req_u8};
use super::types::{AudioCodecType, AudioSampleRate, BitrateMode};
use crate::error::DecodeError;
use crate::tlv8::{self, Writer};

item_types! {
    /// The items of Supported Audio Stream Configuration (§7.3).
    SupportedAudioType {
        /// One Audio Codec Configuration (a list, `00 00` between entries).
        CodecConfiguration = 1,
        /// Comfort Noise support (1 byte: 0 no, 1 yes).
        ComfortNoise = 2,
    }
}

item_types! {
    /// The items of one Audio Codec Configuration (§7.3).
    AudioCodecConfigType {
        /// Audio Codec Type (1 byte).
        CodecType = 1,
        /// Audio Codec Parameters (nested TLV).
        CodecParameters = 2,
    }
}

item_types! {
    /// The items of Audio Codec Parameters (§7.3), also inside a selected audio configuration
    /// (§7.6), which adds the packet time.
    AudioCodecParamsType {
        /// Audio channels (1 byte).
        Channels = 1,
        /// Bit-rate mode (1 byte: 0 variable, 1 constant).
        BitRate = 2,
        /// Sample rate (1 byte, a list in the supported configuration).
        SampleRate = 3,
        /// RTP packet time in milliseconds (1 byte, selected configuration only).
        PacketTime = 4,
    }
}

/// One supported audio codec (§7.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioCodecConfig {
    /// The codec.
    pub codec: AudioCodecType,
    /// Number of channels.
    pub channels: u8,
    /// Variable or constant bit rate.
    pub bitrate_mode: BitrateMode,
    /// Supported sample rates.
    pub sample_rates: Vec<AudioSampleRate>,
}

/// Supported Audio Stream Configuration (characteristic 115).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupportedAudioConfig {
    /// One entry per codec.
    pub codecs: Vec<AudioCodecConfig>,
    /// Whether comfort noise is supported.
    pub comfort_noise: bool,
}

impl SupportedAudioConfig {
    /// Encodes the TLV.
    pub fn encode(&self) -> Vec<u8> {
        let entries: Vec<Vec<u8>> = self
            .codecs
            .iter()
            .map(|c| {
                let mut params = Writer::new();
                params
                    .put_u8(AudioCodecParamsType::Channels, c.channels)
                    .put_u8(AudioCodecParamsType::BitRate, c.bitrate_mode.0);
                put_list_u8(
                    &mut params,
                    AudioCodecParamsType::SampleRate,
                    c.sample_rates.iter().map(|r| r.0),
                );
                let mut w = Writer::new();
                w.put_u8(AudioCodecConfigType::CodecType, c.codec.0)
                    .put(AudioCodecConfigType::CodecParameters, &params.into_vec());
                w.into_vec()
            })
            .collect();
        let mut w = Writer::new();
        put_list(&mut w, SupportedAudioType::CodecConfiguration, &entries);
        w.put_u8(
            SupportedAudioType::ComfortNoise,
            u8::from(self.comfort_noise),
        );
        w.into_vec()
    }

    /// Decodes the TLV.
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let items = tlv8::decode(buf)?;
        let codecs = items
            .all(SupportedAudioType::CodecConfiguration)
            .map(|v| {
                let c = tlv8::decode(v)?;
                let p = tlv8::decode(req(
                    &c,
                    AudioCodecConfigType::CodecParameters,
                    "audio codec parameters",
                )?)?;
                Ok(AudioCodecConfig {
                    codec: AudioCodecType(req_u8(
                        &c,
                        AudioCodecConfigType::CodecType,
                        "audio codec type",
                    )?),
                    channels: req_u8(&p, AudioCodecParamsType::Channels, "audio channels")?,
                    bitrate_mode: BitrateMode(req_u8(
                        &p,
                        AudioCodecParamsType::BitRate,
                        "audio bit-rate mode",
                    )?),
                    sample_rates: list_u8(
                        &p,
                        AudioCodecParamsType::SampleRate,
                        "audio sample rate",
                    )?
                    .into_iter()
                    .map(AudioSampleRate)
                    .collect(),
                })
            })
            .collect::<Result<_, DecodeError>>()?;
        Ok(Self {
            codecs,
            comfort_noise: items
                .get_u8(SupportedAudioType::ComfortNoise)
                .is_some_and(|b| b != 0),
        })
    }
}
