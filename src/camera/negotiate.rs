//! The one place where camera TLVs (HAP §7.5, §7.6) become `media` stream parameters: the
//! answer to Setup Endpoints, and Selected RTP Stream Configuration mapped to a
//! [`StreamParams`] (Start) or a [`Control`] (Reconfigure).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hap_proto::camera::{
    AudioCodecType, AudioSampleRate, EndpointAddress, H264Profile as HapProfile, SelectedAudio,
    SelectedVideo, SetupEndpointsRequest, SetupEndpointsResponse, SetupStatus, SrtpCryptoSuite,
    SrtpParams,
};
use media::audio::sender::AudioParams;
use media::h264::H264Profile;
use media::session::{Control, Mode, SrtpKeys, StreamParams};
use media::srtp::SrtpSuite;

use super::advert;
use crate::config::Transcode;

/// Why a request cannot be served; the text names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct NegotiateError(pub(crate) String);

fn err(msg: impl Into<String>) -> NegotiateError {
    NegotiateError(msg.into())
}

/// The local address to receive the controller's RTCP on: the address its HAP connection
/// arrived at (so the stream uses the interface the controller reached us on), in the IP
/// version of the controller's endpoint (HAP §7.5: "same IP version").
pub(crate) fn local_ip_for(
    conn_local: IpAddr,
    controller: IpAddr,
) -> Result<IpAddr, NegotiateError> {
    let local = match conn_local {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(conn_local, IpAddr::V4),
        IpAddr::V4(_) => conn_local,
    };
    if local.is_ipv4() == controller.is_ipv4() {
        Ok(local)
    } else {
        Err(err(format!(
            "Setup Endpoints: controller address {controller} is not reachable from {local}, \
             the address its HAP connection arrived at (different IP version)"
        )))
    }
}

/// Checks the controller's SRTP parameters and returns them as `media` keys.
pub(crate) fn srtp_keys(params: &SrtpParams) -> Result<SrtpKeys, NegotiateError> {
    let suite = match params.suite {
        SrtpCryptoSuite::AES_CM_128_HMAC_SHA1_80 => SrtpSuite::AesCm128HmacSha1_80,
        SrtpCryptoSuite::AES_256_CM_HMAC_SHA1_80 => SrtpSuite::AesCm256HmacSha1_80,
        SrtpCryptoSuite::NONE => SrtpSuite::Null,
        other => {
            return Err(err(format!(
                "Setup Endpoints: unknown SRTP crypto suite {}",
                other.0
            )));
        }
    };
    Ok(SrtpKeys {
        suite,
        key: params.key.clone(),
        salt: params.salt.clone(),
    })
}

/// Refuses a Setup Endpoints whose video or audio SRTP crypto suite is not one the accessory
/// advertises in Supported RTP Configuration (HAP §7.4, [`advert::supported_rtp`]): a controller
/// asking for `NONE` would otherwise get the video in clear and unauthenticated RTCP.
pub(crate) fn check_advertised_suites(
    request: &SetupEndpointsRequest,
) -> Result<(), NegotiateError> {
    let advertised = advert::supported_rtp().suites;
    for (what, params) in [
        ("video", &request.video_srtp),
        ("audio", &request.audio_srtp),
    ] {
        if !advertised.contains(&params.suite) {
            return Err(err(format!(
                "Setup Endpoints: {what} SRTP crypto suite {} is not one the accessory \
                 advertises",
                params.suite.0
            )));
        }
    }
    Ok(())
}

/// The accessory's answer (HAP §7.5): its address and the port it receives RTCP on (RTP and
/// RTCP share the port), the controller's SRTP parameters echoed (each side encrypts with the
/// key it announced; echoing makes them the same), and our SSRCs.
pub(crate) fn setup_response(
    request: &SetupEndpointsRequest,
    local: SocketAddr,
    video_ssrc: u32,
    audio_ssrc: u32,
) -> SetupEndpointsResponse {
    SetupEndpointsResponse {
        session_id: request.session_id,
        status: SetupStatus::SUCCESS,
        accessory: Some(EndpointAddress {
            ip: local.ip(),
            video_port: local.port(),
            audio_port: local.port(),
        }),
        video_srtp: Some(request.video_srtp.clone()),
        audio_srtp: Some(request.audio_srtp.clone()),
        video_ssrc: Some(video_ssrc),
        audio_ssrc: Some(audio_ssrc),
    }
}

/// What Setup Endpoints fixed for a session: where to send, with which keys and SSRC.
#[derive(Clone, Debug)]
pub(crate) struct Endpoints {
    /// The controller's video RTP (and RTCP) address.
    pub(crate) destination: SocketAddr,
    /// Our SSRC for video.
    pub(crate) ssrc: u32,
    /// Keys we encrypt with (the controller's, echoed).
    pub(crate) srtp: SrtpKeys,
    /// The audio side; `None` when the controller gave no audio port.
    pub(crate) audio: Option<AudioEndpoint>,
}

/// Where a session's audio goes, with our audio SSRC and the audio keys.
#[derive(Clone, Debug)]
pub(crate) struct AudioEndpoint {
    /// The controller's audio RTP (and RTCP) address.
    pub(crate) destination: SocketAddr,
    /// Our SSRC for audio.
    pub(crate) ssrc: u32,
    /// Keys we encrypt audio with (the controller's, echoed).
    pub(crate) srtp: SrtpKeys,
}

impl Endpoints {
    /// From a decoded Setup Endpoints write, with our video and audio SSRCs.
    pub(crate) fn from_request(
        request: &SetupEndpointsRequest,
        ssrc: u32,
        audio_ssrc: u32,
    ) -> Result<Self, NegotiateError> {
        let c = &request.controller;
        if c.video_port == 0 {
            return Err(err("Setup Endpoints: controller video port is 0"));
        }
        check_advertised_suites(request)?;
        let audio = (c.audio_port != 0)
            .then(|| {
                Ok::<_, NegotiateError>(AudioEndpoint {
                    destination: SocketAddr::new(c.ip, c.audio_port),
                    ssrc: audio_ssrc,
                    srtp: srtp_keys(&request.audio_srtp)?,
                })
            })
            .transpose()?;
        Ok(Self {
            destination: SocketAddr::new(c.ip, c.video_port),
            ssrc,
            srtp: srtp_keys(&request.video_srtp)?,
            audio,
        })
    }
}

/// Maps the audio part of a Start to a `media` audio stream (HAP §7.6; hksv-audio-reference
/// §7): Opus, mono, at the requested rate (the RTP clock too) and packet time. `Ok(None)` when
/// nothing can be sent as asked (another codec, a packet time that is no Opus frame): the
/// video starts without audio, and the reason is returned for the log.
pub(crate) fn audio_params(
    endpoint: &AudioEndpoint,
    audio: &SelectedAudio,
    initial_sequence: u16,
    initial_timestamp: u32,
) -> Result<AudioParams, NegotiateError> {
    if audio.codec != AudioCodecType::OPUS {
        return Err(err(format!(
            "Selected RTP Stream Configuration: audio codec {} (only Opus is advertised)",
            audio.codec.0
        )));
    }
    let sample_rate = match audio.sample_rate {
        AudioSampleRate::KHZ_8 => 8_000,
        AudioSampleRate::KHZ_16 => 16_000,
        AudioSampleRate::KHZ_24 => 24_000,
        other => {
            return Err(err(format!(
                "Selected RTP Stream Configuration: audio sample rate code {}",
                other.0
            )));
        }
    };
    let packet_time_ms = u32::from(audio.packet_time_ms);
    if !media::audio::PACKET_TIMES_MS.contains(&packet_time_ms) {
        return Err(err(format!(
            "Selected RTP Stream Configuration: audio packet time {packet_time_ms} ms is not an \
             Opus frame (10, 20, 40, 60)"
        )));
    }
    if audio.rtp.payload_type > MAX_PAYLOAD_TYPE {
        return Err(err(format!(
            "Selected RTP Stream Configuration: audio payload type {} is not a 7-bit RTP \
             payload type",
            audio.rtp.payload_type
        )));
    }
    let bitrate_bps = match u32::from(audio.rtp.max_bitrate_kbps) {
        0 => DEFAULT_AUDIO_BITRATE,
        kbps => kbps.saturating_mul(1000),
    };
    Ok(AudioParams {
        sample_rate,
        packet_time_ms,
        bitrate_bps,
        payload_type: audio.rtp.payload_type,
        ssrc: endpoint.ssrc,
        srtp: endpoint.srtp.clone(),
        destination: endpoint.destination,
        rtcp_interval: rtcp_interval(audio.rtp.min_rtcp_interval),
        initial_sequence,
        initial_timestamp,
        mute: std::sync::Arc::default(),
    })
}

/// Maps the video part of a Start to a `media` stream (HAP §7.6, §7.9, §7.10).
pub(crate) fn stream_params(
    endpoints: &Endpoints,
    video: &SelectedVideo,
    initial_sequence: u16,
    initial_timestamp: u32,
) -> Result<StreamParams, NegotiateError> {
    let (width, height, fps, kbps) = size_rate(video)?;
    let max_profile = match video.profile {
        None | Some(HapProfile::HIGH) => H264Profile::High,
        Some(HapProfile::MAIN) => H264Profile::Main,
        Some(HapProfile::CONSTRAINED_BASELINE) => H264Profile::ConstrainedBaseline,
        Some(other) => {
            return Err(err(format!(
                "Selected RTP Stream Configuration: unknown H.264 profile {}",
                other.0
            )));
        }
    };
    if video.rtp.payload_type > MAX_PAYLOAD_TYPE {
        return Err(err(format!(
            "Selected RTP Stream Configuration: payload type {} is not a 7-bit RTP payload type",
            video.rtp.payload_type
        )));
    }
    let default_mtu = if endpoints.destination.is_ipv4() {
        DEFAULT_MTU_V4
    } else {
        DEFAULT_MTU_V6
    };
    let mtu = video.rtp.max_mtu.unwrap_or(default_mtu);
    if !(MIN_MTU..=MAX_MTU).contains(&mtu) {
        return Err(err(format!(
            "Selected RTP Stream Configuration: max MTU {mtu} outside {MIN_MTU}..={MAX_MTU}"
        )));
    }
    let interval = rtcp_interval(video.rtp.min_rtcp_interval);
    Ok(StreamParams {
        width,
        height,
        fps,
        kbps,
        max_profile,
        payload_type: video.rtp.payload_type,
        ssrc: endpoints.ssrc,
        mtu: usize::from(mtu),
        srtp: endpoints.srtp.clone(),
        destination: endpoints.destination,
        rtcp_destination: None,
        rtcp_interval: interval,
        rtcp_timeout: Some(interval * RTCP_TIMEOUT_INTERVALS),
        mode: Mode::Auto,
        initial_sequence,
        initial_timestamp,
    })
}

/// The camera's `transcode` setting as media's feed mode: `never` passes through the best
/// stream up to the largest size advertised (hap-reference §7.2), even larger than the request.
pub(crate) fn feed_mode(transcode: Transcode) -> Mode {
    match transcode {
        Transcode::Auto => Mode::Auto,
        Transcode::Always => Mode::Transcode,
        Transcode::Never => {
            let (width, height) = advert::largest_size();
            Mode::PassthroughUpTo { width, height }
        }
    }
}

/// Maps a Reconfigure (new size, rate or bit rate, same session) to a `media` control.
pub(crate) fn reconfigure(video: &SelectedVideo) -> Result<Control, NegotiateError> {
    let (width, height, fps, kbps) = size_rate(video)?;
    Ok(Control::Reconfigure {
        width,
        height,
        fps,
        kbps,
    })
}

fn size_rate(video: &SelectedVideo) -> Result<(u32, u32, u32, u32), NegotiateError> {
    let a = video.attributes;
    let (width, height, fps) = (u32::from(a.width), u32::from(a.height), u32::from(a.fps));
    if width < MIN_DIMENSION
        || height < MIN_DIMENSION
        || width > MAX_DIMENSION
        || height > MAX_DIMENSION
    {
        return Err(err(format!(
            "Selected RTP Stream Configuration: size {width}x{height} out of range"
        )));
    }
    if width % 2 != 0 || height % 2 != 0 {
        return Err(err(format!(
            "Selected RTP Stream Configuration: size {width}x{height} is not even"
        )));
    }
    if fps == 0 || fps > MAX_FPS {
        return Err(err(format!(
            "Selected RTP Stream Configuration: frame rate {fps} outside 1..={MAX_FPS}"
        )));
    }
    let kbps = u32::from(video.rtp.max_bitrate_kbps);
    if kbps < MIN_KBPS {
        return Err(err(format!(
            "Selected RTP Stream Configuration: max bitrate {kbps} kbit/s below {MIN_KBPS}"
        )));
    }
    Ok((width, height, fps, kbps))
}

/// The negotiated minimum RTCP interval; 0 (what a Reconfigure may carry) and nonsense mean
/// the usual 0.5 s (hap-reference §7.6, §7.10).
fn rtcp_interval(seconds: f32) -> Duration {
    if seconds.is_finite() && seconds > 0.0 {
        Duration::from_secs_f32(seconds.clamp(MIN_RTCP_INTERVAL, MAX_RTCP_INTERVAL))
    } else {
        DEFAULT_RTCP_INTERVAL
    }
}

/// Opus bit rate when the controller names none (iOS asks 24 kbit/s).
const DEFAULT_AUDIO_BITRATE: u32 = 24_000;
/// Video MTU when the controller names none: IPv4 (hap-reference §7.10).
const DEFAULT_MTU_V4: u16 = 1378;
/// Video MTU when the controller names none: IPv6 (single source: HAP-NodeJS).
const DEFAULT_MTU_V6: u16 = 1228;
/// Smallest MTU accepted (a STAP-A of SPS+PPS must fit with the SRTP tag).
const MIN_MTU: u16 = 256;
/// Largest MTU accepted (one UDP datagram on Ethernet-sized links).
const MAX_MTU: u16 = 9000;
/// RTP payload types are 7 bits (RFC 3550 §5.1).
const MAX_PAYLOAD_TYPE: u8 = 127;
/// Smallest picture side accepted.
const MIN_DIMENSION: u32 = 16;
/// Largest picture side accepted.
const MAX_DIMENSION: u32 = 4096;
/// Highest frame rate accepted.
const MAX_FPS: u32 = 60;
/// Lowest bit rate accepted.
const MIN_KBPS: u32 = 16;
/// RTCP interval when none is given (hap-reference §7.10).
const DEFAULT_RTCP_INTERVAL: Duration = Duration::from_millis(500);
/// Bounds of the RTCP interval we accept.
const MIN_RTCP_INTERVAL: f32 = 0.1;
/// See [`MIN_RTCP_INTERVAL`].
const MAX_RTCP_INTERVAL: f32 = 10.0;
/// A stream ends after this many RTCP intervals without RTCP from the controller (HAP §7.9).
const RTCP_TIMEOUT_INTERVALS: u32 = 5;

#[cfg(test)]
mod tests;
