//! Camera RTP stream management TLVs (HAP §7): the capabilities the accessory advertises
//! (114, 115, 116), Setup Endpoints (118), Selected RTP Stream Configuration (117) and Streaming
//! Status (120). Lists inside these TLVs are separated by `00 00` (§1.2); decoders also accept
//! entries written back to back.
//!
//! These are plain data types with `encode`/`decode`; mapping them to media parameters is the
//! bridge's job (`src/camera/negotiate.rs`).
#![deny(clippy::indexing_slicing)]

mod types;

use std::net::IpAddr;

pub use types::{
    AudioCodecType, AudioSampleRate, BitrateMode, H264Level, H264Profile, SessionCommand,
    SetupStatus, SrtpCryptoSuite, StreamingStatus, VideoCodecType,
};

use crate::error::{DecodeError, DecodeErrorKind};
use crate::tlv8::{self, Items, Writer};

/// The separator between list entries of camera TLVs (§1.2).
const SEP: u8 = 0x00;

/// Width, height and frame rate of one video mode (§7.2 attributes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VideoAttributes {
    /// Image width in pixels.
    pub width: u16,
    /// Image height in pixels.
    pub height: u16,
    /// Frames per second.
    pub fps: u8,
}

impl VideoAttributes {
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.put(1, &self.width.to_le_bytes())
            .put(2, &self.height.to_le_bytes())
            .put_u8(3, self.fps);
        w.into_vec()
    }

    fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let items = tlv8::decode(buf)?;
        Ok(Self {
            width: req_u16(&items, 1, "video attributes width")?,
            height: req_u16(&items, 2, "video attributes height")?,
            // HAP-python writes the frame rate as uint16 (§11); the low byte is the value.
            fps: match items.get(3) {
                Some([fps]) | Some([fps, 0]) => *fps,
                _ => return Err(invalid("video attributes frame rate")),
            },
        })
    }
}

/// One supported video codec with its parameter lists and modes (§7.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoCodecConfig {
    /// The codec (H.264 in practice).
    pub codec: VideoCodecType,
    /// Supported profiles.
    pub profiles: Vec<H264Profile>,
    /// Supported levels.
    pub levels: Vec<H264Level>,
    /// Supported packetization modes (0 = non-interleaved).
    pub packetization_modes: Vec<u8>,
    /// Coordination of video orientation: `Some(id)` when supported with that extension id.
    pub cvo: Option<u8>,
    /// Supported resolutions and frame rates.
    pub attributes: Vec<VideoAttributes>,
}

/// Supported Video Stream Configuration (characteristic 114).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupportedVideoConfig {
    /// One entry per codec.
    pub codecs: Vec<VideoCodecConfig>,
}

impl SupportedVideoConfig {
    /// Encodes the TLV.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        let entries: Vec<Vec<u8>> = self.codecs.iter().map(encode_video_codec).collect();
        put_list(&mut w, 1, &entries);
        w.into_vec()
    }

    /// Decodes the TLV.
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let items = tlv8::decode(buf)?;
        let codecs = values(&items, 1)
            .map(decode_video_codec)
            .collect::<Result<_, _>>()?;
        Ok(Self { codecs })
    }
}

fn encode_video_codec(c: &VideoCodecConfig) -> Vec<u8> {
    let mut params = Writer::new();
    put_list_u8(&mut params, 1, c.profiles.iter().map(|p| p.0));
    put_list_u8(&mut params, 2, c.levels.iter().map(|l| l.0));
    put_list_u8(&mut params, 3, c.packetization_modes.iter().copied());
    match c.cvo {
        Some(id) => params.put_u8(4, 1).put_u8(5, id),
        None => params.put_u8(4, 0),
    };
    let mut w = Writer::new();
    w.put_u8(1, c.codec.0).put(2, &params.into_vec());
    let attrs: Vec<Vec<u8>> = c.attributes.iter().map(VideoAttributes::encode).collect();
    put_list(&mut w, 3, &attrs);
    w.into_vec()
}

fn decode_video_codec(buf: &[u8]) -> Result<VideoCodecConfig, DecodeError> {
    let items = tlv8::decode(buf)?;
    let params = tlv8::decode(
        items
            .get(2)
            .ok_or_else(|| missing("video codec parameters"))?,
    )?;
    Ok(VideoCodecConfig {
        codec: VideoCodecType(req_u8(&items, 1, "video codec type")?),
        profiles: list_u8(&params, 1, "video profile")?
            .into_iter()
            .map(H264Profile)
            .collect(),
        levels: list_u8(&params, 2, "video level")?
            .into_iter()
            .map(H264Level)
            .collect(),
        packetization_modes: list_u8(&params, 3, "packetization mode")?,
        cvo: match params.get_u8(4) {
            Some(1) => params.get_u8(5),
            _ => None,
        },
        attributes: values(&items, 3)
            .map(VideoAttributes::decode)
            .collect::<Result<_, _>>()?,
    })
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
                params.put_u8(1, c.channels).put_u8(2, c.bitrate_mode.0);
                put_list_u8(&mut params, 3, c.sample_rates.iter().map(|r| r.0));
                let mut w = Writer::new();
                w.put_u8(1, c.codec.0).put(2, &params.into_vec());
                w.into_vec()
            })
            .collect();
        let mut w = Writer::new();
        put_list(&mut w, 1, &entries);
        w.put_u8(2, u8::from(self.comfort_noise));
        w.into_vec()
    }

    /// Decodes the TLV.
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let items = tlv8::decode(buf)?;
        let codecs = values(&items, 1)
            .map(|v| {
                let c = tlv8::decode(v)?;
                let p = tlv8::decode(c.get(2).ok_or_else(|| missing("audio codec parameters"))?)?;
                Ok(AudioCodecConfig {
                    codec: AudioCodecType(req_u8(&c, 1, "audio codec type")?),
                    channels: req_u8(&p, 1, "audio channels")?,
                    bitrate_mode: BitrateMode(req_u8(&p, 2, "audio bit-rate mode")?),
                    sample_rates: list_u8(&p, 3, "audio sample rate")?
                        .into_iter()
                        .map(AudioSampleRate)
                        .collect(),
                })
            })
            .collect::<Result<_, DecodeError>>()?;
        Ok(Self {
            codecs,
            comfort_noise: items.get_u8(2).is_some_and(|b| b != 0),
        })
    }
}

/// Supported RTP Configuration (characteristic 116): the SRTP suites (§7.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupportedRtpConfig {
    /// Supported crypto suites.
    pub suites: Vec<SrtpCryptoSuite>,
}

impl SupportedRtpConfig {
    /// Encodes the TLV.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        put_list_u8(&mut w, 2, self.suites.iter().map(|s| s.0));
        w.into_vec()
    }

    /// Decodes the TLV.
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let items = tlv8::decode(buf)?;
        let suites = list_u8(&items, 2, "SRTP crypto suite")?;
        Ok(Self {
            suites: suites.into_iter().map(SrtpCryptoSuite).collect(),
        })
    }
}

/// An endpoint address inside Setup Endpoints (§7.5): IP and the video and audio RTP ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointAddress {
    /// The IP address (the version byte follows from it).
    pub ip: IpAddr,
    /// Video RTP port.
    pub video_port: u16,
    /// Audio RTP port.
    pub audio_port: u16,
}

impl EndpointAddress {
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.put_u8(1, u8::from(self.ip.is_ipv6()))
            .put(2, self.ip.to_string().as_bytes())
            .put(3, &self.video_port.to_le_bytes())
            .put(4, &self.audio_port.to_le_bytes());
        w.into_vec()
    }

    fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let items = tlv8::decode(buf)?;
        let text = items.get(2).ok_or_else(|| missing("endpoint IP address"))?;
        let ip: IpAddr = std::str::from_utf8(text)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| invalid("endpoint IP address"))?;
        let version = req_u8(&items, 1, "endpoint IP version")?;
        if version != u8::from(ip.is_ipv6()) {
            return Err(invalid("endpoint IP version"));
        }
        Ok(Self {
            ip,
            video_port: req_u16(&items, 3, "endpoint video port")?,
            audio_port: req_u16(&items, 4, "endpoint audio port")?,
        })
    }
}

/// SRTP parameters of one media direction (§7.5). `Debug` hides the key and salt.
#[derive(Clone, PartialEq, Eq)]
pub struct SrtpParams {
    /// The crypto suite.
    pub suite: SrtpCryptoSuite,
    /// Master key: 16 bytes (suite 0), 32 bytes (suite 1), empty (none).
    pub key: Vec<u8>,
    /// Master salt: 14 bytes, empty for none.
    pub salt: Vec<u8>,
}

impl core::fmt::Debug for SrtpParams {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SrtpParams")
            .field("suite", &self.suite)
            .field("key", &format_args!("<{} bytes>", self.key.len()))
            .field("salt", &format_args!("<{} bytes>", self.salt.len()))
            .finish()
    }
}

impl SrtpParams {
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.put_u8(1, self.suite.0)
            .put(2, &self.key)
            .put(3, &self.salt);
        w.into_vec()
    }

    fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let items = tlv8::decode(buf)?;
        let suite = SrtpCryptoSuite(req_u8(&items, 1, "SRTP crypto suite")?);
        let key = items.get(2).unwrap_or_default().to_vec();
        let salt = items.get(3).unwrap_or_default().to_vec();
        let (key_len, salt_len) = match suite {
            SrtpCryptoSuite::AES_CM_128_HMAC_SHA1_80 => (16, 14),
            SrtpCryptoSuite::AES_256_CM_HMAC_SHA1_80 => (32, 14),
            SrtpCryptoSuite::NONE => (0, 0),
            _ => return Err(invalid("SRTP crypto suite")),
        };
        if key.len() != key_len {
            return Err(invalid("SRTP master key length"));
        }
        if salt.len() != salt_len {
            return Err(invalid("SRTP master salt length"));
        }
        Ok(Self { suite, key, salt })
    }
}

/// A Setup Endpoints write from the controller (§7.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupEndpointsRequest {
    /// The session id (a raw UUID).
    pub session_id: [u8; 16],
    /// Where the controller receives video and audio.
    pub controller: EndpointAddress,
    /// The controller's video SRTP parameters.
    pub video_srtp: SrtpParams,
    /// The controller's audio SRTP parameters.
    pub audio_srtp: SrtpParams,
}

impl SetupEndpointsRequest {
    /// Encodes the TLV (for the controller side and tests).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.put(1, &self.session_id)
            .put(3, &self.controller.encode())
            .put(4, &self.video_srtp.encode())
            .put(5, &self.audio_srtp.encode());
        w.into_vec()
    }

    /// Decodes the TLV.
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let items = tlv8::decode(buf)?;
        Ok(Self {
            session_id: session_id(&items, 1)?,
            controller: EndpointAddress::decode(
                items.get(3).ok_or_else(|| missing("controller address"))?,
            )?,
            video_srtp: SrtpParams::decode(
                items
                    .get(4)
                    .ok_or_else(|| missing("video SRTP parameters"))?,
            )?,
            audio_srtp: SrtpParams::decode(
                items
                    .get(5)
                    .ok_or_else(|| missing("audio SRTP parameters"))?,
            )?,
        })
    }
}

/// The accessory's answer to Setup Endpoints, read back from 118 (§7.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupEndpointsResponse {
    /// The session id of the request.
    pub session_id: [u8; 16],
    /// Success, busy or error.
    pub status: SetupStatus,
    /// The accessory's address and the ports where it receives RTCP; absent unless success.
    pub accessory: Option<EndpointAddress>,
    /// The SRTP parameters the accessory encrypts video with.
    pub video_srtp: Option<SrtpParams>,
    /// The SRTP parameters the accessory encrypts audio with.
    pub audio_srtp: Option<SrtpParams>,
    /// SSRC of the accessory's video RTP.
    pub video_ssrc: Option<u32>,
    /// SSRC of the accessory's audio RTP.
    pub audio_ssrc: Option<u32>,
}

impl SetupEndpointsResponse {
    /// A response with only the session id and a status (busy or error).
    pub fn status_only(session_id: [u8; 16], status: SetupStatus) -> Self {
        Self {
            session_id,
            status,
            accessory: None,
            video_srtp: None,
            audio_srtp: None,
            video_ssrc: None,
            audio_ssrc: None,
        }
    }

    /// Encodes the TLV in the order iOS and the reference captures use.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.put(1, &self.session_id).put_u8(2, self.status.0);
        if let Some(a) = &self.accessory {
            w.put(3, &a.encode());
        }
        if let Some(s) = &self.video_srtp {
            w.put(4, &s.encode());
        }
        if let Some(s) = &self.audio_srtp {
            w.put(5, &s.encode());
        }
        if let Some(ssrc) = self.video_ssrc {
            w.put(6, &ssrc.to_le_bytes());
        }
        if let Some(ssrc) = self.audio_ssrc {
            w.put(7, &ssrc.to_le_bytes());
        }
        w.into_vec()
    }

    /// Decodes the TLV (for the controller side and tests).
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let items = tlv8::decode(buf)?;
        Ok(Self {
            session_id: session_id(&items, 1)?,
            status: SetupStatus(req_u8(&items, 2, "setup endpoints status")?),
            accessory: items.get(3).map(EndpointAddress::decode).transpose()?,
            video_srtp: items.get(4).map(SrtpParams::decode).transpose()?,
            audio_srtp: items.get(5).map(SrtpParams::decode).transpose()?,
            video_ssrc: opt_u32(&items, 6, "video SSRC")?,
            audio_ssrc: opt_u32(&items, 7, "audio SSRC")?,
        })
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
        w.put_u8(1, self.payload_type)
            .put(2, &self.ssrc.to_le_bytes())
            .put(3, &self.max_bitrate_kbps.to_le_bytes())
            .put(4, &self.min_rtcp_interval.to_le_bytes());
        if let Some(mtu) = self.max_mtu {
            w.put(5, &mtu.to_le_bytes());
        }
        if let Some(pt) = self.comfort_noise_payload_type {
            w.put_u8(6, pt);
        }
        w.into_vec()
    }

    fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let items = tlv8::decode(buf)?;
        let interval = match items.get(4) {
            Some(&[a, b, c, d]) => f32::from_le_bytes([a, b, c, d]),
            None => 0.0,
            Some(_) => return Err(invalid("RTCP interval")),
        };
        if !interval.is_finite() || interval < 0.0 {
            return Err(invalid("RTCP interval"));
        }
        Ok(Self {
            payload_type: req_u8(&items, 1, "RTP payload type")?,
            ssrc: opt_u32(&items, 2, "RTP SSRC")?.unwrap_or(0),
            max_bitrate_kbps: req_u16(&items, 3, "RTP max bitrate")?,
            min_rtcp_interval: interval,
            max_mtu: opt_u16(&items, 5, "RTP max MTU")?,
            comfort_noise_payload_type: items.get_u8(6),
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
        control.put(1, &self.session_id).put_u8(2, self.command.0);
        let mut w = Writer::new();
        w.put(1, &control.into_vec());
        if let Some(v) = &self.video {
            let mut params = Writer::new();
            if let Some(p) = v.profile {
                params.put_u8(1, p.0);
            }
            if let Some(l) = v.level {
                params.put_u8(2, l.0);
            }
            if let Some(m) = v.packetization_mode {
                params.put_u8(3, m);
            }
            let mut vw = Writer::new();
            if let Some(c) = v.codec {
                vw.put_u8(1, c.0);
            }
            if !params.is_empty() {
                vw.put(2, &params.into_vec());
            }
            vw.put(3, &v.attributes.encode()).put(4, &v.rtp.encode());
            w.put(2, &vw.into_vec());
        }
        if let Some(a) = &self.audio {
            let mut params = Writer::new();
            params
                .put_u8(1, a.channels)
                .put_u8(2, a.bitrate_mode.0)
                .put_u8(3, a.sample_rate.0)
                .put_u8(4, a.packet_time_ms);
            let mut aw = Writer::new();
            aw.put_u8(1, a.codec.0)
                .put(2, &params.into_vec())
                .put(3, &a.rtp.encode())
                .put_u8(4, u8::from(a.comfort_noise));
            w.put(3, &aw.into_vec());
        }
        w.into_vec()
    }

    /// Decodes the TLV.
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let items = tlv8::decode(buf)?;
        let control = tlv8::decode(items.get(1).ok_or_else(|| missing("session control"))?)?;
        let video = items
            .get(2)
            .map(|v| {
                let vi = tlv8::decode(v)?;
                let params = vi.get(2).map(tlv8::decode).transpose()?;
                Ok::<_, DecodeError>(SelectedVideo {
                    codec: vi.get_u8(1).map(VideoCodecType),
                    profile: params.as_ref().and_then(|p| p.get_u8(1)).map(H264Profile),
                    level: params.as_ref().and_then(|p| p.get_u8(2)).map(H264Level),
                    packetization_mode: params.as_ref().and_then(|p| p.get_u8(3)),
                    attributes: VideoAttributes::decode(
                        vi.get(3)
                            .ok_or_else(|| missing("selected video attributes"))?,
                    )?,
                    rtp: RtpParams::decode(
                        vi.get(4)
                            .ok_or_else(|| missing("selected video RTP parameters"))?,
                    )?,
                })
            })
            .transpose()?;
        let audio = items
            .get(3)
            .map(|v| {
                let ai = tlv8::decode(v)?;
                let p = tlv8::decode(ai.get(2).ok_or_else(|| missing("audio parameters"))?)?;
                Ok::<_, DecodeError>(SelectedAudio {
                    codec: AudioCodecType(req_u8(&ai, 1, "selected audio codec")?),
                    channels: req_u8(&p, 1, "selected audio channels")?,
                    bitrate_mode: BitrateMode(req_u8(&p, 2, "selected audio bit-rate mode")?),
                    sample_rate: AudioSampleRate(req_u8(&p, 3, "selected audio sample rate")?),
                    packet_time_ms: p.get_u8(4).unwrap_or(0),
                    rtp: RtpParams::decode(
                        ai.get(3)
                            .ok_or_else(|| missing("selected audio RTP parameters"))?,
                    )?,
                    comfort_noise: ai.get_u8(4).is_some_and(|b| b != 0),
                })
            })
            .transpose()?;
        Ok(Self {
            session_id: session_id(&control, 1)?,
            command: SessionCommand(req_u8(&control, 2, "session command")?),
            video,
            audio,
        })
    }
}

/// Encodes a Streaming Status value (characteristic 120, §7.7).
pub fn encode_streaming_status(status: StreamingStatus) -> Vec<u8> {
    let mut w = Writer::new();
    w.put_u8(1, status.0);
    w.into_vec()
}

/// Decodes a Streaming Status value.
pub fn decode_streaming_status(buf: &[u8]) -> Result<StreamingStatus, DecodeError> {
    let items = tlv8::decode(buf)?;
    Ok(StreamingStatus(req_u8(&items, 1, "streaming status")?))
}

/// Writes `entries` as items of type `ty` with `00 00` between them.
fn put_list(w: &mut Writer, ty: u8, entries: &[Vec<u8>]) {
    for (i, e) in entries.iter().enumerate() {
        if i > 0 {
            w.separator(SEP);
        }
        w.put(ty, e);
    }
}

fn put_list_u8(w: &mut Writer, ty: u8, values: impl Iterator<Item = u8>) {
    for (i, v) in values.enumerate() {
        if i > 0 {
            w.separator(SEP);
        }
        w.put_u8(ty, v);
    }
}

/// Every value of type `ty`, separators ignored.
fn values<'a>(items: &'a Items<'_>, ty: u8) -> impl Iterator<Item = &'a [u8]> {
    items.iter().filter(move |i| i.ty == ty).map(|i| &*i.value)
}

fn list_u8(items: &Items<'_>, ty: u8, context: &'static str) -> Result<Vec<u8>, DecodeError> {
    values(items, ty)
        .map(|v| match v {
            [b] => Ok(*b),
            _ => Err(invalid(context)),
        })
        .collect()
}

fn req_u8(items: &Items<'_>, ty: u8, context: &'static str) -> Result<u8, DecodeError> {
    match items.get(ty) {
        Some([b]) => Ok(*b),
        Some(_) => Err(invalid(context)),
        None => Err(missing(context)),
    }
}

fn req_u16(items: &Items<'_>, ty: u8, context: &'static str) -> Result<u16, DecodeError> {
    opt_u16(items, ty, context)?.ok_or_else(|| missing(context))
}

fn opt_u16(items: &Items<'_>, ty: u8, context: &'static str) -> Result<Option<u16>, DecodeError> {
    match items.get(ty) {
        Some(&[a, b]) => Ok(Some(u16::from_le_bytes([a, b]))),
        Some(_) => Err(invalid(context)),
        None => Ok(None),
    }
}

fn opt_u32(items: &Items<'_>, ty: u8, context: &'static str) -> Result<Option<u32>, DecodeError> {
    match items.get(ty) {
        Some(&[a, b, c, d]) => Ok(Some(u32::from_le_bytes([a, b, c, d]))),
        Some(_) => Err(invalid(context)),
        None => Ok(None),
    }
}

fn session_id(items: &Items<'_>, ty: u8) -> Result<[u8; 16], DecodeError> {
    items
        .get(ty)
        .ok_or_else(|| missing("session id"))?
        .try_into()
        .map_err(|_| invalid("session id"))
}

fn missing(context: &'static str) -> DecodeError {
    DecodeError::new(0, context, DecodeErrorKind::Truncated)
}

fn invalid(context: &'static str) -> DecodeError {
    DecodeError::new(0, context, DecodeErrorKind::InvalidValue)
}

#[cfg(test)]
mod tests;
