//! What a camera accessory advertises (HAP §7.2-§7.4, §7.7): the video modes, the audio codec
//! (Opus, which the bridge sends), and the SRTP suites.

use hap_proto::camera::{
    AudioCodecConfig, AudioSampleRate, BitrateMode, H264Level, H264Profile, SrtpCryptoSuite,
    StreamingStatus, SupportedAudioConfig, SupportedRtpConfig, SupportedVideoConfig,
    VideoAttributes, VideoCodecConfig, VideoCodecType, encode_streaming_status,
};
use hap_proto::db::services::CameraConfig;

/// The TLVs of every Camera RTP Stream Management service of a camera.
pub(crate) fn stream_service_config() -> CameraConfig {
    CameraConfig {
        supported_video: supported_video().encode(),
        supported_audio: supported_audio().encode(),
        supported_rtp: supported_rtp().encode(),
        streaming_status: encode_streaming_status(StreamingStatus::AVAILABLE),
    }
}

/// H.264 Constrained Baseline, Main and High at levels 3.1, 3.2 and 4.0, non-interleaved, the
/// sizes of hap-reference §7.2 at 30 fps and the common ones again at 15 fps (320x240@15 is the
/// Apple Watch's).
pub(crate) fn supported_video() -> SupportedVideoConfig {
    let at = |width, height, fps| VideoAttributes { width, height, fps };
    let mut attributes: Vec<VideoAttributes> =
        SIZES_30.iter().map(|&(w, h)| at(w, h, 30)).collect();
    attributes.extend(SIZES_15.iter().map(|&(w, h)| at(w, h, 15)));
    SupportedVideoConfig {
        codecs: vec![VideoCodecConfig {
            codec: VideoCodecType::H264,
            profiles: vec![
                H264Profile::CONSTRAINED_BASELINE,
                H264Profile::MAIN,
                H264Profile::HIGH,
            ],
            levels: vec![H264Level::L3_1, H264Level::L3_2, H264Level::L4_0],
            packetization_modes: vec![0],
            cvo: None,
            attributes,
        }],
    }
}

/// Opus, mono, variable bit rate, 16 and 24 kHz: what the bridge sends (the demo camera's sound;
/// iOS also needs an audio codec advertised to start a stream at all, hap-reference §7.3).
/// AAC-ELD is not advertised: it is not sent (hksv-audio-reference §7: advertise only what is
/// sent).
pub(crate) fn supported_audio() -> SupportedAudioConfig {
    SupportedAudioConfig {
        codecs: vec![AudioCodecConfig {
            codec: hap_proto::camera::AudioCodecType::OPUS,
            channels: 1,
            bitrate_mode: BitrateMode::VARIABLE,
            sample_rates: vec![AudioSampleRate::KHZ_16, AudioSampleRate::KHZ_24],
        }],
        comfort_noise: false,
    }
}

/// AES_CM_128_HMAC_SHA1_80 and AES_256_CM_HMAC_SHA1_80 (§7.4). Only these are accepted: a
/// Setup Endpoints asking for another suite (`NONE`, unencrypted) is refused
/// (`negotiate::check_advertised_suites`).
pub(crate) fn supported_rtp() -> SupportedRtpConfig {
    SupportedRtpConfig {
        suites: vec![
            SrtpCryptoSuite::AES_CM_128_HMAC_SHA1_80,
            SrtpCryptoSuite::AES_256_CM_HMAC_SHA1_80,
        ],
    }
}

/// The largest picture advertised: the most a controller was told it may get.
pub(crate) fn largest_size() -> (u32, u32) {
    SIZES_30
        .iter()
        .chain(SIZES_15)
        .map(|&(w, h)| (u32::from(w), u32::from(h)))
        .max_by_key(|&(w, h)| w * h)
        .unwrap_or((1920, 1080))
}

/// Sizes advertised at 30 fps (hap-reference §7.2 "commonly advertised").
const SIZES_30: &[(u16, u16)] = &[
    (1920, 1080),
    (1280, 720),
    (640, 480),
    (640, 360),
    (480, 360),
    (480, 270),
    (320, 240),
    (320, 180),
];
/// Sizes advertised at 15 fps as well; 320x240@15 is what an Apple Watch asks for.
const SIZES_15: &[(u16, u16)] = &[
    (1920, 1080),
    (1280, 720),
    (640, 360),
    (480, 270),
    (320, 240),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertised_tlvs_decode_back_to_what_was_meant() {
        let config = stream_service_config();
        let video = SupportedVideoConfig::decode(&config.supported_video).unwrap();
        assert_eq!(video, supported_video());
        let modes = &video.codecs[0].attributes;
        for (w, h, fps) in [
            (1920, 1080, 30),
            (1280, 720, 30),
            (640, 360, 30),
            (480, 270, 30),
            (320, 240, 15),
        ] {
            assert!(
                modes.contains(&VideoAttributes {
                    width: w,
                    height: h,
                    fps
                }),
                "{w}x{h}@{fps} not advertised"
            );
        }
        let audio = SupportedAudioConfig::decode(&config.supported_audio).unwrap();
        assert_eq!(audio.codecs.len(), 1, "iOS needs an audio codec advertised");
        assert_eq!(
            audio.codecs[0].codec,
            hap_proto::camera::AudioCodecType::OPUS
        );
        let rtp = SupportedRtpConfig::decode(&config.supported_rtp).unwrap();
        assert_eq!(rtp.suites[0], SrtpCryptoSuite::AES_CM_128_HMAC_SHA1_80);
        // Available: `01 01 00` (hap-reference §7.7).
        assert_eq!(config.streaming_status, [1, 1, 0]);
    }
}
