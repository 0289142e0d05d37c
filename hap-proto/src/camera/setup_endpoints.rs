//! Setup Endpoints (characteristic 118, HAP §7.5): the controller's write (its address, ports
//! and SRTP keys) and the accessory's answer read back from it.

use std::net::IpAddr;

use super::fields::{invalid, item_types, opt_u32, req, req_u8, req_u16, session_id};
use super::types::{SetupStatus, SrtpCryptoSuite};
use crate::error::DecodeError;
use crate::tlv8::{self, Writer};

item_types! {
    /// The items of a Setup Endpoints write and of its answer (§7.5).
    SetupEndpointsType {
        /// Session identifier (16 bytes, a UUID).
        SessionId = 1,
        /// Status (1 byte; answer only).
        Status = 2,
        /// Controller or accessory address (nested TLV).
        Address = 3,
        /// SRTP parameters for video (nested TLV).
        VideoSrtp = 4,
        /// SRTP parameters for audio (nested TLV).
        AudioSrtp = 5,
        /// SSRC of the accessory's video RTP (u32 LE; answer only).
        VideoSsrc = 6,
        /// SSRC of the accessory's audio RTP (u32 LE; answer only).
        AudioSsrc = 7,
    }
}

item_types! {
    /// The items of an endpoint address (§7.5).
    AddressType {
        /// IP address version (1 byte: 0 IPv4, 1 IPv6).
        IpVersion = 1,
        /// IP address (UTF-8 text).
        IpAddress = 2,
        /// Video RTP port (u16 LE).
        VideoRtpPort = 3,
        /// Audio RTP port (u16 LE).
        AudioRtpPort = 4,
    }
}

item_types! {
    /// The items of SRTP parameters (§7.5).
    SrtpParamsType {
        /// SRTP crypto suite (1 byte).
        CryptoSuite = 1,
        /// SRTP master key (16 or 32 bytes).
        MasterKey = 2,
        /// SRTP master salt (14 bytes).
        MasterSalt = 3,
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
        w.put_u8(AddressType::IpVersion, u8::from(self.ip.is_ipv6()))
            .put(AddressType::IpAddress, self.ip.to_string().as_bytes())
            .put(AddressType::VideoRtpPort, &self.video_port.to_le_bytes())
            .put(AddressType::AudioRtpPort, &self.audio_port.to_le_bytes());
        w.into_vec()
    }

    fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let items = tlv8::decode(buf)?;
        let text = req(&items, AddressType::IpAddress, "endpoint IP address")?;
        let ip: IpAddr = std::str::from_utf8(text)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| invalid("endpoint IP address"))?;
        let version = req_u8(&items, AddressType::IpVersion, "endpoint IP version")?;
        if version != u8::from(ip.is_ipv6()) {
            return Err(invalid("endpoint IP version"));
        }
        Ok(Self {
            ip,
            video_port: req_u16(&items, AddressType::VideoRtpPort, "endpoint video port")?,
            audio_port: req_u16(&items, AddressType::AudioRtpPort, "endpoint audio port")?,
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
        w.put_u8(SrtpParamsType::CryptoSuite, self.suite.0)
            .put(SrtpParamsType::MasterKey, &self.key)
            .put(SrtpParamsType::MasterSalt, &self.salt);
        w.into_vec()
    }

    fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let items = tlv8::decode(buf)?;
        let suite = SrtpCryptoSuite(req_u8(
            &items,
            SrtpParamsType::CryptoSuite,
            "SRTP crypto suite",
        )?);
        let key = items
            .get(SrtpParamsType::MasterKey)
            .unwrap_or_default()
            .to_vec();
        let salt = items
            .get(SrtpParamsType::MasterSalt)
            .unwrap_or_default()
            .to_vec();
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
        w.put(SetupEndpointsType::SessionId, &self.session_id)
            .put(SetupEndpointsType::Address, &self.controller.encode())
            .put(SetupEndpointsType::VideoSrtp, &self.video_srtp.encode())
            .put(SetupEndpointsType::AudioSrtp, &self.audio_srtp.encode());
        w.into_vec()
    }

    /// Decodes the TLV.
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let items = tlv8::decode(buf)?;
        Ok(Self {
            session_id: session_id(&items, SetupEndpointsType::SessionId)?,
            controller: EndpointAddress::decode(req(
                &items,
                SetupEndpointsType::Address,
                "controller address",
            )?)?,
            video_srtp: SrtpParams::decode(req(
                &items,
                SetupEndpointsType::VideoSrtp,
                "video SRTP parameters",
            )?)?,
            audio_srtp: SrtpParams::decode(req(
                &items,
                SetupEndpointsType::AudioSrtp,
                "audio SRTP parameters",
            )?)?,
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
        w.put(SetupEndpointsType::SessionId, &self.session_id)
            .put_u8(SetupEndpointsType::Status, self.status.0);
        if let Some(a) = &self.accessory {
            w.put(SetupEndpointsType::Address, &a.encode());
        }
        if let Some(s) = &self.video_srtp {
            w.put(SetupEndpointsType::VideoSrtp, &s.encode());
        }
        if let Some(s) = &self.audio_srtp {
            w.put(SetupEndpointsType::AudioSrtp, &s.encode());
        }
        if let Some(ssrc) = self.video_ssrc {
            w.put(SetupEndpointsType::VideoSsrc, &ssrc.to_le_bytes());
        }
        if let Some(ssrc) = self.audio_ssrc {
            w.put(SetupEndpointsType::AudioSsrc, &ssrc.to_le_bytes());
        }
        w.into_vec()
    }

    /// Decodes the TLV (for the controller side and tests).
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let items = tlv8::decode(buf)?;
        Ok(Self {
            session_id: session_id(&items, SetupEndpointsType::SessionId)?,
            status: SetupStatus(req_u8(
                &items,
                SetupEndpointsType::Status,
                "setup endpoints status",
            )?),
            accessory: items
                .get(SetupEndpointsType::Address)
                .map(EndpointAddress::decode)
                .transpose()?,
            video_srtp: items
                .get(SetupEndpointsType::VideoSrtp)
                .map(SrtpParams::decode)
                .transpose()?,
            audio_srtp: items
                .get(SetupEndpointsType::AudioSrtp)
                .map(SrtpParams::decode)
                .transpose()?,
            video_ssrc: opt_u32(&items, SetupEndpointsType::VideoSsrc, "video SSRC")?,
            audio_ssrc: opt_u32(&items, SetupEndpointsType::AudioSsrc, "audio SSRC")?,
        })
    }
}
