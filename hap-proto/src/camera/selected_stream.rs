//! Selected RTP Stream Configuration (characteristic 117, HAP §7.6): the controller's Start,
//! Reconfigure, Suspend, Resume or End of a stream, with the chosen video and audio parameters.

use super::audio_config::AudioCodecParamsType;
use super::fields::{invalid, item_types, opt_u16, opt_u32, req, req_u8, req_u16, session_id};
use super::types::{
    AudioCodecType, AudioSampleRate, BitrateMode, H264Level, H264Profile, SessionCommand,
    VideoCodecType,
};
use super::video_config::{VideoAttributes, VideoCodecParamsType};
use crate::error::DecodeError;
use crate::tlv8::{self, Writer};

item_types! {
    /// The items of Selected RTP Stream Configuration (§7.6).
    SelectedStreamType {
        /// Session Control (nested TLV).
        SessionControl = 1,
        /// Selected Video Parameters (nested TLV).
        Video = 2,
        /// Selected Audio Parameters (nested TLV).
        Audio = 3,
    }
}

item_types! {
    /// The items of Session Control (§7.6).
    SessionControlType {
        /// Session identifier (16 bytes, a UUID).
        SessionId = 1,
        /// Command (1 byte).
        Command = 2,
    }
}

item_types! {
    /// The items of Selected Video Parameters (§7.6).
    SelectedVideoType {
        /// Video Codec Type (1 byte).
        CodecType = 1,
        /// Video Codec Parameters (nested TLV, one of each).
        CodecParameters = 2,
        /// Video Attributes (nested TLV).
        Attributes = 3,
        /// Video RTP Parameters (nested TLV).
        RtpParameters = 4,
    }
}

item_types! {
    /// The items of Selected Audio Parameters (§7.6).
    SelectedAudioType {
        /// Audio Codec Type (1 byte).
        CodecType = 1,
        /// Audio Codec Parameters (nested TLV, with the packet time).
        CodecParameters = 2,
        /// Audio RTP Parameters (nested TLV).
        RtpParameters = 3,
        /// Comfort Noise (1 byte: 0 off, 1 on).
        ComfortNoise = 4,
    }
}

item_types! {
    /// The items of RTP Parameters, video and audio (§7.6).
    RtpParamsType {
        /// Payload type (1 byte).
        PayloadType = 1,
        /// SSRC for the stream (u32 LE).
        Ssrc = 2,
        /// Maximum bit rate in kbit/s (u16 LE).
        MaxBitrate = 3,
        /// Minimum RTCP interval in seconds (f32 LE).
        MinRtcpInterval = 4,
        /// Maximum MTU (u16 LE; video only).
        MaxMtu = 5,
        /// Comfort-noise payload type (1 byte; audio only).
        ComfortNoisePayloadType = 6,
    }
}

/// RTP parameters of a selected stream (§7.6).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RtpParams {
    /// RTP payload type (video 99, audio 110 typically).
    pub payload_type: u8,
    /// The controller's SSRC.
    pub ssrc: u32,
    /// Maximum bit rate in kbit/s.
    pub max_bitrate_kbps: u16,
    /// Minimum RTCP interval in seconds.
    pub min_rtcp_interval: f32,
    /// Maximum MTU (video only; absent = 1378 IPv4 / 1228 IPv6).
    pub max_mtu: Option<u16>,
    /// Comfort-noise payload type (audio only).
    pub comfort_noise_payload_type: Option<u8>,
}

impl RtpParams {
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.put_u8(RtpParamsType::PayloadType, self.payload_type)
            .put(RtpParamsType::Ssrc, &self.ssrc.to_le_bytes())
            .put(
                RtpParamsType::MaxBitrate,
                &self.max_bitrate_kbps.to_le_bytes(),
            )
            .put(
                RtpParamsType::MinRtcpInterval,
                &self.min_rtcp_interval.to_le_bytes(),
            );
        if let Some(mtu) = self.max_mtu {
            w.put(RtpParamsType::MaxMtu, &mtu.to_le_bytes());
        }
        if let Some(pt) = self.comfort_noise_payload_type {
            w.put_u8(RtpParamsType::ComfortNoisePayloadType, pt);
        }
        w.into_vec()
    }

    fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let items = tlv8::decode(buf)?;
        let interval = match items.get(RtpParamsType::MinRtcpInterval) {
            Some(&[a, b, c, d]) => f32::from_le_bytes([a, b, c, d]),
            None => 0.0,
            Some(_) => return Err(invalid("RTCP interval")),
        };
        if !interval.is_finite() || interval < 0.0 {
            return Err(invalid("RTCP interval"));
        }
        Ok(Self {
            payload_type: req_u8(&items, RtpParamsType::PayloadType, "RTP payload type")?,
            ssrc: opt_u32(&items, RtpParamsType::Ssrc, "RTP SSRC")?.unwrap_or(0),
            max_bitrate_kbps: req_u16(&items, RtpParamsType::MaxBitrate, "RTP max bitrate")?,
            min_rtcp_interval: interval,
            max_mtu: opt_u16(&items, RtpParamsType::MaxMtu, "RTP max MTU")?,
            comfort_noise_payload_type: items.get_u8(RtpParamsType::ComfortNoisePayloadType),
        })
    }
}

/// The selected video parameters of a Start or Reconfigure (§7.6). A Reconfigure carries only
/// attributes and RTP parameters, so the codec fields are optional.
#[derive(Debug, Clone, PartialEq)]
pub struct SelectedVideo {
    /// The codec.
    pub codec: Option<VideoCodecType>,
    /// The profile.
    pub profile: Option<H264Profile>,
    /// The level.
    pub level: Option<H264Level>,
    /// The packetization mode.
    pub packetization_mode: Option<u8>,
    /// Size and frame rate.
    pub attributes: VideoAttributes,
    /// RTP parameters.
    pub rtp: RtpParams,
}

impl SelectedVideo {
    fn encode(&self) -> Vec<u8> {
        let mut params = Writer::new();
        if let Some(p) = self.profile {
            params.put_u8(VideoCodecParamsType::ProfileId, p.0);
        }
        if let Some(l) = self.level {
            params.put_u8(VideoCodecParamsType::Level, l.0);
        }
        if let Some(m) = self.packetization_mode {
            params.put_u8(VideoCodecParamsType::PacketizationMode, m);
        }
        let mut w = Writer::new();
        if let Some(c) = self.codec {
            w.put_u8(SelectedVideoType::CodecType, c.0);
        }
        if !params.is_empty() {
            w.put(SelectedVideoType::CodecParameters, &params.into_vec());
        }
        w.put(SelectedVideoType::Attributes, &self.attributes.encode())
            .put(SelectedVideoType::RtpParameters, &self.rtp.encode());
        w.into_vec()
    }

    fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let items = tlv8::decode(buf)?;
        let params = items
            .get(SelectedVideoType::CodecParameters)
            .map(tlv8::decode)
            .transpose()?;
        let param = |ty| params.as_ref().and_then(|p| p.get_u8(ty));
        Ok(Self {
            codec: items
                .get_u8(SelectedVideoType::CodecType)
                .map(VideoCodecType),
            profile: param(VideoCodecParamsType::ProfileId).map(H264Profile),
            level: param(VideoCodecParamsType::Level).map(H264Level),
            packetization_mode: param(VideoCodecParamsType::PacketizationMode),
            attributes: VideoAttributes::decode(req(
                &items,
                SelectedVideoType::Attributes,
                "selected video attributes",
            )?)?,
            rtp: RtpParams::decode(req(
                &items,
                SelectedVideoType::RtpParameters,
                "selected video RTP parameters",
            )?)?,
        })
    }
}

/// The selected audio parameters of a Start (§7.6).
#[derive(Debug, Clone, PartialEq)]
pub struct SelectedAudio {
    /// The codec.
    pub codec: AudioCodecType,
    /// Number of channels.
    pub channels: u8,
    /// Variable or constant bit rate.
    pub bitrate_mode: BitrateMode,
    /// The sample rate.
    pub sample_rate: AudioSampleRate,
    /// RTP packet time in milliseconds.
    pub packet_time_ms: u8,
    /// RTP parameters.
    pub rtp: RtpParams,
    /// Whether comfort noise is on.
    pub comfort_noise: bool,
}

impl SelectedAudio {
    fn encode(&self) -> Vec<u8> {
        let mut params = Writer::new();
        params
            .put_u8(AudioCodecParamsType::Channels, self.channels)
            .put_u8(AudioCodecParamsType::BitRate, self.bitrate_mode.0)
            .put_u8(AudioCodecParamsType::SampleRate, self.sample_rate.0)
            .put_u8(AudioCodecParamsType::PacketTime, self.packet_time_ms);
        let mut w = Writer::new();
        w.put_u8(SelectedAudioType::CodecType, self.codec.0)
            .put(SelectedAudioType::CodecParameters, &params.into_vec())
            .put(SelectedAudioType::RtpParameters, &self.rtp.encode())
            .put_u8(
                SelectedAudioType::ComfortNoise,
                u8::from(self.comfort_noise),
            );
        w.into_vec()
    }

    fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let items = tlv8::decode(buf)?;
        let p = tlv8::decode(req(
            &items,
            SelectedAudioType::CodecParameters,
            "audio parameters",
        )?)?;
        Ok(Self {
            codec: AudioCodecType(req_u8(
                &items,
                SelectedAudioType::CodecType,
                "selected audio codec",
            )?),
            channels: req_u8(
                &p,
                AudioCodecParamsType::Channels,
                "selected audio channels",
            )?,
            bitrate_mode: BitrateMode(req_u8(
                &p,
                AudioCodecParamsType::BitRate,
                "selected audio bit-rate mode",
            )?),
            sample_rate: AudioSampleRate(req_u8(
                &p,
                AudioCodecParamsType::SampleRate,
                "selected audio sample rate",
            )?),
            packet_time_ms: p.get_u8(AudioCodecParamsType::PacketTime).unwrap_or(0),
            rtp: RtpParams::decode(req(
                &items,
                SelectedAudioType::RtpParameters,
                "selected audio RTP parameters",
            )?)?,
            comfort_noise: items
                .get_u8(SelectedAudioType::ComfortNoise)
                .is_some_and(|b| b != 0),
        })
    }
}

/// A Selected RTP Stream Configuration write (characteristic 117).
#[derive(Debug, Clone, PartialEq)]
pub struct SelectedStreamConfig {
    /// The session id from Setup Endpoints.
    pub session_id: [u8; 16],
    /// End, Start, Suspend, Resume or Reconfigure.
    pub command: SessionCommand,
    /// Video parameters (Start, Reconfigure).
    pub video: Option<SelectedVideo>,
    /// Audio parameters (Start).
    pub audio: Option<SelectedAudio>,
}

impl SelectedStreamConfig {
    /// Encodes the TLV (for the controller side and tests).
    pub fn encode(&self) -> Vec<u8> {
        let mut control = Writer::new();
        control
            .put(SessionControlType::SessionId, &self.session_id)
            .put_u8(SessionControlType::Command, self.command.0);
        let mut w = Writer::new();
        w.put(SelectedStreamType::SessionControl, &control.into_vec());
        if let Some(v) = &self.video {
            w.put(SelectedStreamType::Video, &v.encode());
        }
        if let Some(a) = &self.audio {
            w.put(SelectedStreamType::Audio, &a.encode());
        }
        w.into_vec()
    }

    /// Decodes the TLV.
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let items = tlv8::decode(buf)?;
        let control = tlv8::decode(req(
            &items,
            SelectedStreamType::SessionControl,
            "session control",
        )?)?;
        let video = items
            .get(SelectedStreamType::Video)
            .map(SelectedVideo::decode)
            .transpose()?;
        let audio = items
            .get(SelectedStreamType::Audio)
            .map(SelectedAudio::decode)
            .transpose()?;
        Ok(Self {
            session_id: session_id(&control, SessionControlType::SessionId)?,
            command: SessionCommand(req_u8(
                &control,
                SessionControlType::Command,
                "session command",
            )?),
            video,
            audio,
        })
    }
}
