//! Supported Video Stream Configuration (characteristic 114, HAP §7.2): the video codecs, their
//! parameters and the resolutions and frame rates the accessory offers.

use super::fields::{invalid, item_types, list_u8, put_list, put_list_u8, req, req_u8, req_u16};
use super::types::{H264Level, H264Profile, VideoCodecType};
use crate::error::DecodeError;
use crate::tlv8::{self, Writer};

item_types! {
    /// The items of Supported Video Stream Configuration (§7.2).
    SupportedVideoType {
        /// One Video Codec Configuration (a list, `00 00` between entries).
        CodecConfiguration = 1,
    }
}

item_types! {
    /// The items of one Video Codec Configuration (§7.2).
    VideoCodecConfigType {
        /// Video Codec Type (1 byte).
        CodecType = 1,
        /// Video Codec Parameters (nested TLV).
        CodecParameters = 2,
        /// Video Attributes (nested TLV, a list).
        Attributes = 3,
    }
}

item_types! {
    /// The items of Video Codec Parameters (§7.2), also inside a selected video configuration
    /// (§7.6), where each appears once.
    VideoCodecParamsType {
        /// ProfileID (1 byte, a list).
        ProfileId = 1,
        /// Level (1 byte, a list).
        Level = 2,
        /// Packetization mode (1 byte, a list).
        PacketizationMode = 3,
        /// CVO Enabled (1 byte: 0 no, 1 yes).
        CvoEnabled = 4,
        /// CVO ID (1 byte, 1..=14), present when CVO is enabled.
        CvoId = 5,
    }
}

item_types! {
    /// The items of Video Attributes (§7.2).
    VideoAttributesType {
        /// Image width (u16 LE).
        ImageWidth = 1,
        /// Image height (u16 LE).
        ImageHeight = 2,
        /// Frame rate (1 byte).
        FrameRate = 3,
    }
}

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
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.put(VideoAttributesType::ImageWidth, &self.width.to_le_bytes())
            .put(VideoAttributesType::ImageHeight, &self.height.to_le_bytes())
            .put_u8(VideoAttributesType::FrameRate, self.fps);
        w.into_vec()
    }

    pub(super) fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let items = tlv8::decode(buf)?;
        Ok(Self {
            width: req_u16(
                &items,
                VideoAttributesType::ImageWidth,
                "video attributes width",
            )?,
            height: req_u16(
                &items,
                VideoAttributesType::ImageHeight,
                "video attributes height",
            )?,
            // HAP-python writes the frame rate as uint16 (§11); the low byte is the value.
            fps: match items.get(VideoAttributesType::FrameRate) {
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
        put_list(&mut w, SupportedVideoType::CodecConfiguration, &entries);
        w.into_vec()
    }

    /// Decodes the TLV.
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let items = tlv8::decode(buf)?;
        let codecs = items
            .all(SupportedVideoType::CodecConfiguration)
            .map(decode_video_codec)
            .collect::<Result<_, _>>()?;
        Ok(Self { codecs })
    }
}

fn encode_video_codec(c: &VideoCodecConfig) -> Vec<u8> {
    let mut params = Writer::new();
    put_list_u8(
        &mut params,
        VideoCodecParamsType::ProfileId,
        c.profiles.iter().map(|p| p.0),
    );
    put_list_u8(
        &mut params,
        VideoCodecParamsType::Level,
        c.levels.iter().map(|l| l.0),
    );
    put_list_u8(
        &mut params,
        VideoCodecParamsType::PacketizationMode,
        c.packetization_modes.iter().copied(),
    );
    match c.cvo {
        Some(id) => params
            .put_u8(VideoCodecParamsType::CvoEnabled, 1)
            .put_u8(VideoCodecParamsType::CvoId, id),
        None => params.put_u8(VideoCodecParamsType::CvoEnabled, 0),
    };
    let mut w = Writer::new();
    w.put_u8(VideoCodecConfigType::CodecType, c.codec.0)
        .put(VideoCodecConfigType::CodecParameters, &params.into_vec());
    let attrs: Vec<Vec<u8>> = c.attributes.iter().map(VideoAttributes::encode).collect();
    put_list(&mut w, VideoCodecConfigType::Attributes, &attrs);
    w.into_vec()
}

fn decode_video_codec(buf: &[u8]) -> Result<VideoCodecConfig, DecodeError> {
    let items = tlv8::decode(buf)?;
    let params = tlv8::decode(req(
        &items,
        VideoCodecConfigType::CodecParameters,
        "video codec parameters",
    )?)?;
    Ok(VideoCodecConfig {
        codec: VideoCodecType(req_u8(
            &items,
            VideoCodecConfigType::CodecType,
            "video codec type",
        )?),
        profiles: list_u8(&params, VideoCodecParamsType::ProfileId, "video profile")?
            .into_iter()
            .map(H264Profile)
            .collect(),
        levels: list_u8(&params, VideoCodecParamsType::Level, "video level")?
            .into_iter()
            .map(H264Level)
            .collect(),
        packetization_modes: list_u8(
            &params,
            VideoCodecParamsType::PacketizationMode,
            "packetization mode",
        )?,
        cvo: match params.get_u8(VideoCodecParamsType::CvoEnabled) {
            Some(1) => params.get_u8(VideoCodecParamsType::CvoId),
            _ => None,
        },
        attributes: items
            .all(VideoCodecConfigType::Attributes)
            .map(VideoAttributes::decode)
            .collect::<Result<_, _>>()?,
    })
}
