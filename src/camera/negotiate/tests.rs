use std::net::Ipv4Addr;

use base64::Engine as _;
use hap_proto::camera::{SelectedStreamConfig, SessionCommand, VideoAttributes};

use super::*;

/// A capture from hap-proto's testdata (hap-reference §10.8).
fn capture(name: &str) -> Vec<u8> {
    let text = include_str!("../../../hap-proto/testdata/camera/captures.txt");
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(name)?.trim_start().strip_prefix('='))
        .unwrap_or_else(|| panic!("capture {name} missing"));
    base64::engine::general_purpose::STANDARD
        .decode(line.trim())
        .unwrap()
}

fn ios_setup() -> SetupEndpointsRequest {
    SetupEndpointsRequest::decode(&capture("setup_endpoints_ios")).unwrap()
}

#[test]
fn the_ios_setup_endpoints_capture_maps_to_a_destination_and_keys() {
    let req = ios_setup();
    let ep = Endpoints::from_request(&req, 0x1234_5678, 0x9abc_def0).unwrap();
    assert_eq!(
        ep.destination.ip(),
        IpAddr::V4(Ipv4Addr::new(192, 168, 0, 13))
    );
    assert_eq!(ep.destination.port(), req.controller.video_port);
    assert_eq!(ep.srtp.suite, SrtpSuite::AesCm128HmacSha1_80);
    assert_eq!(ep.srtp.key, req.video_srtp.key);
    assert_eq!(ep.srtp.salt, req.video_srtp.salt);
    // Keys never show in Debug output.
    let debug = format!("{ep:?}");
    assert!(
        !debug.contains(&format!("{:?}", req.video_srtp.key)),
        "{debug}"
    );
}

#[test]
fn the_response_echoes_keys_and_round_trips_like_the_reference_capture() {
    let req = ios_setup();
    let local: SocketAddr = "192.168.0.50:51234".parse().unwrap();
    let resp = setup_response(&req, local, 0x1234_5678, 0x0abc_def0);
    let bytes = resp.encode();
    let back = SetupEndpointsResponse::decode(&bytes).unwrap();
    assert_eq!(back, resp);
    assert_eq!(back.session_id, req.session_id);
    assert_eq!(back.status, SetupStatus::SUCCESS);
    assert_eq!(back.video_srtp.as_ref(), Some(&req.video_srtp));
    let addr = back.accessory.unwrap();
    assert_eq!((addr.ip, addr.video_port), (local.ip(), local.port()));
    // The reference response of §10.8 answers this very request from 192.168.0.50 with the
    // same session id, echoed keys and these SSRCs.
    let reference = SetupEndpointsResponse::decode(&capture("setup_endpoints_response")).unwrap();
    assert_eq!(reference.session_id, back.session_id);
    assert_eq!(reference.video_srtp, back.video_srtp);
    assert_eq!(reference.audio_srtp, back.audio_srtp);
    assert_eq!(reference.accessory.unwrap().ip, back.accessory.unwrap().ip);
}

#[test]
fn the_start_capture_maps_to_stream_parameters() {
    let start = SelectedStreamConfig::decode(&capture("selected_start")).unwrap();
    assert_eq!(start.command, SessionCommand::START);
    let video = start.video.as_ref().unwrap();
    let ep = Endpoints::from_request(&ios_setup(), 77, 78).unwrap();
    let p = stream_params(&ep, video, 1, 2).unwrap();
    assert_eq!(
        (p.width, p.height, p.fps),
        (
            u32::from(video.attributes.width),
            u32::from(video.attributes.height),
            u32::from(video.attributes.fps)
        )
    );
    assert_eq!(p.kbps, u32::from(video.rtp.max_bitrate_kbps));
    assert_eq!(p.payload_type, video.rtp.payload_type);
    // We keep sending with the SSRC we announced, not the controller's (§7.6).
    assert_eq!(p.ssrc, 77);
    assert_eq!(p.destination, ep.destination);
    assert_eq!(p.mtu, usize::from(video.rtp.max_mtu.unwrap_or(1378)));
    // 5 × the RTCP interval (§7.9).
    assert_eq!(p.rtcp_timeout, Some(p.rtcp_interval * 5));
    assert_eq!((p.initial_sequence, p.initial_timestamp), (1, 2));
}

fn video(width: u16, height: u16, fps: u8, kbps: u16) -> SelectedVideo {
    SelectedVideo {
        codec: None,
        profile: None,
        level: None,
        packetization_mode: None,
        attributes: VideoAttributes { width, height, fps },
        rtp: hap_proto::camera::RtpParams {
            payload_type: 99,
            ssrc: 1,
            max_bitrate_kbps: kbps,
            min_rtcp_interval: 0.0,
            max_mtu: None,
            comfort_noise_payload_type: None,
        },
    }
}

#[test]
fn a_reconfigure_with_interval_zero_keeps_the_default_and_maps_size_and_rate() {
    let v = video(640, 360, 30, 800);
    assert_eq!(
        reconfigure(&v).unwrap(),
        Control::Reconfigure {
            width: 640,
            height: 360,
            fps: 30,
            kbps: 800
        }
    );
    let ep = Endpoints::from_request(&ios_setup(), 1, 2).unwrap();
    let p = stream_params(&ep, &v, 0, 0).unwrap();
    assert_eq!(p.rtcp_interval, Duration::from_millis(500));
    assert_eq!(p.mtu, 1378);
}

#[test]
fn nonsense_is_refused_with_the_field_named() {
    let ep = Endpoints::from_request(&ios_setup(), 1, 2).unwrap();
    for (v, field) in [
        (video(0, 360, 30, 300), "size"),
        (video(641, 360, 30, 300), "even"),
        (video(640, 360, 0, 300), "frame rate"),
        (video(640, 360, 30, 0), "bitrate"),
    ] {
        let e = stream_params(&ep, &v, 0, 0).unwrap_err();
        assert!(e.0.contains(field), "{e} should name {field}");
    }
    let mut v = video(640, 360, 30, 300);
    v.rtp.payload_type = 200;
    assert!(
        stream_params(&ep, &v, 0, 0)
            .unwrap_err()
            .0
            .contains("payload type")
    );
    v.rtp.payload_type = 99;
    v.rtp.max_mtu = Some(10);
    assert!(stream_params(&ep, &v, 0, 0).unwrap_err().0.contains("MTU"));
}

#[test]
fn the_local_address_follows_the_connection_and_the_controller_ip_version() {
    let v4: IpAddr = "192.168.0.50".parse().unwrap();
    let mapped: IpAddr = "::ffff:192.168.0.50".parse().unwrap();
    let v6: IpAddr = "fe80::1".parse().unwrap();
    let ctl4: IpAddr = "192.168.0.13".parse().unwrap();
    let ctl6: IpAddr = "fe80::2".parse().unwrap();
    assert_eq!(local_ip_for(v4, ctl4).unwrap(), v4);
    assert_eq!(local_ip_for(mapped, ctl4).unwrap(), v4);
    assert_eq!(local_ip_for(v6, ctl6).unwrap(), v6);
    assert!(local_ip_for(v4, ctl6).is_err());
    assert!(local_ip_for(v6, ctl4).is_err());
}

#[test]
fn hap_suite_and_profile_values_map_to_media_and_unknown_ones_are_refused() {
    // The HAP wire values (SRTP crypto suite §7.4, H.264 ProfileID §7.2) are mapped here and
    // only here: media knows its suites and profiles by name.
    for (value, suite, key_len, salt_len) in [
        (0, SrtpSuite::AesCm128HmacSha1_80, 16, 14),
        (1, SrtpSuite::AesCm256HmacSha1_80, 32, 14),
        (2, SrtpSuite::Null, 0, 0),
    ] {
        let params = SrtpParams {
            suite: SrtpCryptoSuite(value),
            key: vec![7; key_len],
            salt: vec![9; salt_len],
        };
        assert_eq!(srtp_keys(&params).unwrap().suite, suite);
    }
    let unknown = SrtpParams {
        suite: SrtpCryptoSuite(3),
        key: Vec::new(),
        salt: Vec::new(),
    };
    assert!(matches!(
        srtp_keys(&unknown),
        Err(e) if e.0.contains("SRTP crypto suite 3")
    ));
    let ep = Endpoints::from_request(&ios_setup(), 1, 2).unwrap();
    let mut v = video(640, 360, 30, 300);
    for (value, profile) in [
        (0, H264Profile::ConstrainedBaseline),
        (1, H264Profile::Main),
        (2, H264Profile::High),
    ] {
        v.profile = Some(HapProfile(value));
        assert_eq!(stream_params(&ep, &v, 0, 0).unwrap().max_profile, profile);
    }
    v.profile = Some(HapProfile(3));
    assert!(
        stream_params(&ep, &v, 0, 0)
            .unwrap_err()
            .0
            .contains("H.264 profile 3")
    );
}

#[test]
fn a_suite_that_is_not_advertised_is_refused() {
    // Both advertised suites are accepted, for video and audio.
    for suite in advert::supported_rtp().suites {
        let mut req = ios_setup();
        req.video_srtp.suite = suite;
        req.audio_srtp.suite = suite;
        assert_eq!(check_advertised_suites(&req), Ok(()));
    }
    // NONE (unencrypted video, unauthenticated RTCP) or an unknown value, in video or audio:
    // refused, naming which.
    for (suite, video) in [
        (SrtpCryptoSuite::NONE, true),
        (SrtpCryptoSuite::NONE, false),
        (SrtpCryptoSuite(3), false),
    ] {
        let mut req = ios_setup();
        let (params, what) = if video {
            (&mut req.video_srtp, "video")
        } else {
            (&mut req.audio_srtp, "audio")
        };
        params.suite = suite;
        params.key.clear();
        params.salt.clear();
        let e = check_advertised_suites(&req).unwrap_err();
        assert!(
            e.0.contains(what) && e.0.contains(&format!("suite {}", suite.0)),
            "{e}"
        );
        let e = Endpoints::from_request(&req, 1, 2).unwrap_err();
        assert!(e.0.contains("not one the accessory advertises"), "{e}");
    }
}

#[test]
fn the_audio_of_a_start_maps_to_an_opus_stream_or_a_named_refusal() {
    let setup = ios_setup();
    let ep = Endpoints::from_request(&setup, 77, 78).unwrap();
    let endpoint = ep.audio.as_ref().expect("the capture has an audio port");
    assert_eq!(
        endpoint.destination,
        SocketAddr::new(setup.controller.ip, setup.controller.audio_port)
    );
    assert_eq!(endpoint.srtp.key, setup.audio_srtp.key);
    let start = SelectedStreamConfig::decode(&capture("selected_start")).unwrap();
    let mut audio = start.audio.expect("the capture asks for audio");
    // iOS on the LAN: Opus 24 kHz; 60 ms packets are iOS's remote choice.
    audio.codec = AudioCodecType::OPUS;
    audio.sample_rate = AudioSampleRate::KHZ_24;
    audio.packet_time_ms = 60;
    audio.rtp.max_bitrate_kbps = 24;
    let p = audio_params(endpoint, &audio, 5, 6).unwrap();
    assert_eq!(
        (p.sample_rate, p.packet_time_ms, p.bitrate_bps, p.ssrc),
        (24_000, 60, 24_000, 78)
    );
    assert_eq!(
        (p.payload_type, p.initial_sequence, p.initial_timestamp),
        (audio.rtp.payload_type, 5, 6)
    );
    assert_eq!(p.destination, endpoint.destination);

    let refused = |change: &dyn Fn(&mut SelectedAudio)| {
        let mut a = audio.clone();
        change(&mut a);
        audio_params(endpoint, &a, 0, 0).unwrap_err().0
    };
    assert!(refused(&|a| a.codec = AudioCodecType::AAC_ELD).contains("only Opus"));
    assert!(refused(&|a| a.packet_time_ms = 30).contains("30 ms is not an Opus frame"));
    assert!(refused(&|a| a.rtp.payload_type = 200).contains("audio payload type 200"));
    // No audio port: no audio endpoint (the video still streams).
    let mut no_audio = setup;
    no_audio.controller.audio_port = 0;
    assert!(
        Endpoints::from_request(&no_audio, 1, 2)
            .unwrap()
            .audio
            .is_none()
    );
}
