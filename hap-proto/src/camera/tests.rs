use std::net::{IpAddr, Ipv4Addr};

use base64::Engine as _;
use hex_literal::hex;

use super::rtp_config::SupportedRtpType;
use super::*;
use crate::tlv8::decode;

fn capture(name: &str) -> Vec<u8> {
    let text = include_str!("../../testdata/camera/captures.txt");
    let line = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(" = ")))
        .unwrap_or_else(|| panic!("capture {name} missing"));
    base64::engine::general_purpose::STANDARD
        .decode(line.trim())
        .unwrap()
}

const SESSION: [u8; 16] = hex!("73db556e0aea4666b7b703ad9b883f17");

#[test]
fn streaming_status() {
    assert_eq!(
        decode_streaming_status(&capture("streaming_status_available")).unwrap(),
        StreamingStatus::AVAILABLE
    );
    assert_eq!(
        encode_streaming_status(StreamingStatus::AVAILABLE),
        capture("streaming_status_available")
    );
    assert_eq!(
        encode_streaming_status(StreamingStatus::IN_USE),
        hex!("01 01 01")
    );
}

#[test]
fn supported_rtp_configuration() {
    let aqara = SupportedRtpConfig::decode(&capture("supported_rtp_aqara")).unwrap();
    assert_eq!(
        aqara.suites,
        [SrtpCryptoSuite(0), SrtpCryptoSuite(1), SrtpCryptoSuite(2)]
    );
    assert_eq!(aqara.encode(), capture("supported_rtp_aqara"));
    let hb = SupportedRtpConfig {
        suites: vec![SrtpCryptoSuite::AES_CM_128_HMAC_SHA1_80],
    };
    assert_eq!(hb.encode(), capture("supported_rtp_homebridge"));
}

#[test]
fn supported_audio_configuration() {
    let audio = SupportedAudioConfig::decode(&capture("supported_audio_aqara")).unwrap();
    assert_eq!(
        audio,
        SupportedAudioConfig {
            codecs: vec![AudioCodecConfig {
                codec: AudioCodecType::AAC_ELD,
                channels: 1,
                bitrate_mode: BitrateMode::VARIABLE,
                sample_rates: vec![AudioSampleRate::KHZ_16],
            }],
            comfort_noise: false,
        }
    );
    assert_eq!(audio.encode(), capture("supported_audio_aqara"));
}

#[test]
fn supported_video_configuration_aqara_round_trips_byte_exact() {
    let bytes = capture("supported_video_aqara");
    let video = SupportedVideoConfig::decode(&bytes).unwrap();
    assert_eq!(video.codecs.len(), 1);
    let c = &video.codecs[0];
    assert_eq!(c.codec, VideoCodecType::H264);
    assert_eq!(c.profiles, [H264Profile::MAIN]);
    assert_eq!(c.levels, [H264Level::L3_1, H264Level::L4_0]);
    assert_eq!(c.packetization_modes, [0]);
    assert_eq!(c.cvo, None);
    let sizes: Vec<(u16, u16, u8)> = c
        .attributes
        .iter()
        .map(|a| (a.width, a.height, a.fps))
        .collect();
    assert_eq!(
        sizes,
        [
            (1920, 1080, 30),
            (1280, 720, 30),
            (640, 360, 30),
            (480, 270, 30),
            (320, 180, 30),
            (1280, 960, 30),
            (1024, 768, 30),
            (640, 480, 30),
            (480, 360, 30),
            (320, 240, 30)
        ]
    );
    assert_eq!(video.encode(), bytes);
}

#[test]
fn setup_endpoints_write_from_ios() {
    let req = SetupEndpointsRequest::decode(&capture("setup_endpoints_ios")).unwrap();
    assert_eq!(req.session_id, SESSION);
    assert_eq!(
        req.controller.ip,
        IpAddr::V4(Ipv4Addr::new(192, 168, 0, 13))
    );
    assert_eq!(req.controller.video_port, 58872);
    assert_eq!(req.controller.audio_port, 53738);
    assert_eq!(
        req.video_srtp.suite,
        SrtpCryptoSuite::AES_CM_128_HMAC_SHA1_80
    );
    assert_eq!(req.video_srtp.key, hex!("fa4b05459013391f16219dd6a9227aaa"));
    assert_eq!(req.video_srtp.salt, hex!("2f1c20c3b4565d7e91e8331a09e9"));
    assert_eq!(req.audio_srtp.key, hex!("9436ed97bd1049aec5c2153e10c4b3af"));
    // iOS sends the suite last; our encoder writes it first, and both decode the same.
    assert_eq!(SetupEndpointsRequest::decode(&req.encode()).unwrap(), req);
    // Secrets stay out of Debug output.
    assert!(!format!("{req:?}").contains("250, 75"));
}

#[test]
fn setup_endpoints_response_is_byte_exact() {
    let req = SetupEndpointsRequest::decode(&capture("setup_endpoints_ios")).unwrap();
    let resp = SetupEndpointsResponse {
        session_id: req.session_id,
        status: SetupStatus::SUCCESS,
        accessory: Some(EndpointAddress {
            ip: IpAddr::V4(Ipv4Addr::new(192, 168, 0, 50)),
            video_port: 51234,
            audio_port: 51236,
        }),
        video_srtp: Some(req.video_srtp.clone()),
        audio_srtp: Some(req.audio_srtp),
        video_ssrc: Some(0x1234_5678),
        audio_ssrc: Some(0x0ABC_DEF0),
    };
    assert_eq!(resp.encode(), capture("setup_endpoints_response"));
    assert_eq!(
        SetupEndpointsResponse::decode(&resp.encode()).unwrap(),
        resp
    );
    let busy = SetupEndpointsResponse::status_only(SESSION, SetupStatus::BUSY);
    assert_eq!(
        SetupEndpointsResponse::decode(&busy.encode()).unwrap(),
        busy
    );
}

#[test]
fn selected_configuration_end_from_ios() {
    let end = SelectedStreamConfig::decode(&capture("selected_end_ios")).unwrap();
    assert_eq!(end.command, SessionCommand::END);
    assert_eq!(end.session_id, hex!("75bcb6227d134178b4b96f39445d1427"));
    assert!(end.video.is_none() && end.audio.is_none());
}

#[test]
fn selected_configuration_start_round_trips_byte_exact() {
    let bytes = capture("selected_start");
    let start = SelectedStreamConfig::decode(&bytes).unwrap();
    assert_eq!(start.command, SessionCommand::START);
    assert_eq!(start.session_id, SESSION);
    let v = start.video.as_ref().unwrap();
    assert_eq!(v.profile, Some(H264Profile::MAIN));
    assert_eq!(v.level, Some(H264Level::L3_1));
    assert_eq!(
        v.attributes,
        VideoAttributes {
            width: 1280,
            height: 720,
            fps: 30
        }
    );
    assert_eq!(v.rtp.payload_type, 99);
    assert_eq!(v.rtp.ssrc, 2_677_182_490);
    assert_eq!(v.rtp.max_bitrate_kbps, 299);
    assert_eq!(v.rtp.min_rtcp_interval, 0.5);
    assert_eq!(v.rtp.max_mtu, Some(1378));
    let a = start.audio.as_ref().unwrap();
    assert_eq!(a.codec, AudioCodecType::AAC_ELD);
    assert_eq!(a.sample_rate, AudioSampleRate::KHZ_16);
    assert_eq!(a.packet_time_ms, 30);
    assert_eq!(a.rtp.payload_type, 110);
    assert_eq!(a.rtp.min_rtcp_interval, 5.0);
    assert_eq!(a.rtp.comfort_noise_payload_type, Some(13));
    assert!(!a.comfort_noise);
    assert_eq!(start.encode(), bytes);
}

#[test]
fn reconfigure_without_codec_fields() {
    let cfg = SelectedStreamConfig {
        session_id: SESSION,
        command: SessionCommand::RECONFIGURE,
        video: Some(SelectedVideo {
            codec: None,
            profile: None,
            level: None,
            packetization_mode: None,
            attributes: VideoAttributes {
                width: 640,
                height: 360,
                fps: 30,
            },
            rtp: RtpParams {
                payload_type: 99,
                ssrc: 1,
                max_bitrate_kbps: 500,
                min_rtcp_interval: 0.0,
                max_mtu: None,
                comfort_noise_payload_type: None,
            },
        }),
        audio: None,
    };
    assert_eq!(SelectedStreamConfig::decode(&cfg.encode()).unwrap(), cfg);
}

#[test]
fn malformed_inputs_are_errors_not_panics() {
    assert!(SetupEndpointsRequest::decode(&hex!("01 02 0000")).is_err());
    assert!(SelectedStreamConfig::decode(&hex!("01 03 02 01 01")).is_err());
    let mut bad_key = capture("setup_endpoints_ios");
    // Shorten the video key's length byte: the value no longer parses as a 16-byte key.
    let pos = bad_key.windows(2).position(|w| w == [0x02, 0x10]).unwrap();
    bad_key[pos + 1] = 0x0F;
    assert!(SetupEndpointsRequest::decode(&bad_key).is_err());
    let full = capture("selected_start");
    for cut in 0..full.len() {
        let _ = SelectedStreamConfig::decode(&full[..cut]);
    }
}

// TLV8 lists as cameras and controllers write them (moved from tlv8: they need camera types).

#[test]
fn camera_list_with_00_separators() {
    // Aqara G3 Supported RTP Configuration (go2rtc capture): SRTP suites [0, 1, 2].
    let bytes = hex!("02 01 00 00 00 02 01 01 00 00 02 01 02");
    let items = decode(&bytes).unwrap();
    let suites: Vec<u8> = items
        .split(ListSeparator)
        .iter()
        .filter_map(|e| e.get_u8(SupportedRtpType::SrtpCryptoSuite))
        .collect();
    assert_eq!(suites, [0, 1, 2]);
    assert_eq!(items.encode(), bytes);
}

#[test]
fn list_without_separators_is_tolerated() {
    // HAP-python writes camera list entries back to back.
    let bytes = hex!("02 01 00 02 01 01");
    let items = decode(&bytes).unwrap();
    assert_eq!(items.len(), 2);
    assert!(items.get_unique(SupportedRtpType::SrtpCryptoSuite).is_err());
}
