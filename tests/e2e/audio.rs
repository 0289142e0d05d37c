//! Camera audio (issue #19), first slice: `hap-bridge stream --audio-dest` sends the test
//! pattern's beep (1 kHz, the first 100 ms of every second) as Opus over SRTP. Checked by our
//! own SRTP receiver (every packet lasts the packet time, RTP timestamps advance at the
//! requested rate, no sequence gap) and by ffmpeg, which decodes the audio: beeps of the
//! source's frequency, one a second.

use std::net::UdpSocket;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use media::rtp::RtpPacket;
use media::srtp::{SrtpContext, SrtpSuite, encode_params};

use hap_proto::camera::{
    AudioCodecType, AudioSampleRate, BitrateMode, RtpParams, SelectedAudio, SessionCommand,
    SetupEndpointsResponse, SetupStatus,
};

use crate::camera_util::{
    KEY, Receiver, RtcpPinger, SALT, accessory_addr, command, read_tlv, select, selected,
    setup_endpoints_request, stream_services, write_setup_endpoints,
};
use crate::rtsp_fixture::RtspServer;
use crate::util::{Bridge, TempDir};

/// Audio SSRC and payload type the tests ask for.
const SSRC: u32 = 0x0A0D_1000;
const PT: u8 = 110;
/// How long each run sends.
const RUN: Duration = Duration::from_secs(3);

/// `hap-bridge stream` from the test pattern, its video thrown away, its audio to `audio_port`.
fn stream(audio_port: u16, rate: u32, ptime: u32) -> (Child, UdpSocket) {
    let video_sink = UdpSocket::bind("127.0.0.1:0").unwrap();
    let key = encode_params(&KEY, &SALT);
    let child = Command::new(env!("CARGO_BIN_EXE_hap-bridge"))
        .args([
            "stream",
            "--rtsp",
            "test-pattern",
            "--ssrc",
            "1",
            "--srtp-key",
            &key,
        ])
        .arg("--dest")
        .arg(video_sink.local_addr().unwrap().to_string())
        .args(["--audio-dest", &format!("127.0.0.1:{audio_port}")])
        .args(["--audio-srtp-key", &key, "--audio-ssrc", &SSRC.to_string()])
        .args(["--audio-pt", &PT.to_string()])
        .args([
            "--audio-rate",
            &rate.to_string(),
            "--audio-ptime",
            &ptime.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    (child, video_sink)
}

/// Ends `hap-bridge stream` with SIGTERM and returns its output.
fn finish(child: Child) -> String {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn stream_cli_audio_packets_last_the_packet_time_at_the_requested_rate() {
    for (rate, ptime) in [(16_000u32, 20u32), (24_000, 60)] {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let (child, _video) = stream(socket.local_addr().unwrap().port(), rate, ptime);
        let mut srtp = SrtpContext::new(SrtpSuite::AesCm128HmacSha1_80, &KEY, &SALT).unwrap();
        let mut packets = Vec::new();
        let mut reports = 0;
        let mut first_at = None;
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut buf = [0u8; 2048];
        while Instant::now() < deadline && first_at.is_none_or(|t: Instant| t.elapsed() < RUN) {
            let Ok(n) = socket.recv(&mut buf) else {
                continue;
            };
            // RTCP (PT 200..=204 in the second byte) is multiplexed on the same port.
            if (200..=204).contains(&buf[1]) {
                reports += 1;
                continue;
            }
            let plain = srtp.unprotect_rtp(&buf[..n]).expect("SRTP authenticates");
            let p = RtpPacket::parse(&plain).unwrap();
            first_at.get_or_insert_with(Instant::now);
            packets.push((
                p.header.sequence,
                p.header.timestamp,
                p.header.ssrc,
                p.header.payload_type,
            ));
        }
        let output = finish(child);
        let step = rate / 1000 * ptime;
        let want = (RUN.as_millis() as u32 / ptime) as usize;
        assert!(
            packets.len() + 3 >= want && packets.len() <= want + 3,
            "{rate} Hz {ptime} ms: {} packets in {RUN:?}, want about {want}\n{output}",
            packets.len()
        );
        assert!(reports > 0, "no Sender Report: {output}");
        for w in packets.windows(2) {
            let ((s0, t0, ..), (s1, t1, ssrc, pt)) = (w[0], w[1]);
            assert_eq!((ssrc, pt), (SSRC, PT));
            assert_eq!(s1, s0.wrapping_add(1), "sequence gap");
            assert_eq!(
                t1.wrapping_sub(t0),
                step,
                "{rate} Hz {ptime} ms: timestamp step"
            );
        }
    }
}

#[test]
fn ffmpeg_decodes_the_beep_at_its_frequency_once_a_second() {
    let tmp = TempDir::new("audio-ffmpeg");
    for (rate, ptime) in [(16_000u32, 20u32), (24_000, 60)] {
        let port = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let sdp = tmp.0.join(format!("audio-{rate}.sdp"));
        write_sdp(&sdp, port, rate);
        let pcm = tmp.0.join(format!("audio-{rate}.s16"));
        let ffmpeg = ffmpeg_decoder(&sdp, &pcm);
        std::thread::sleep(Duration::from_millis(500));
        let (child, _video) = stream(port, rate, ptime);
        wait_for_pcm(&pcm, RUN);
        let output = finish(child);
        let log = stop_ffmpeg(ffmpeg, &tmp.0);
        let samples = read_pcm(&pcm);
        let beeps = beeps(&samples, DECODE_RATE);
        println!(
            "{rate} Hz {ptime} ms: {} samples decoded, beeps {beeps:?}",
            samples.len()
        );
        check_beeps(
            &beeps,
            &format!(
                "{rate} Hz {ptime} ms: {} samples\n{output}\n{log}",
                samples.len()
            ),
        );
    }
}

#[test]
fn a_hap_stream_of_the_demo_camera_carries_its_beep_decoded_by_ffmpeg() {
    let tmp = TempDir::new("audio-hap");
    let bridge = Bridge::start_in(&tmp.0, None);
    let (mut c, _, _, aid) = crate::camera::connect(&bridge, "Demo Camera");
    let services = stream_services(&mut c, aid);
    let (_, db) = c.json("GET", "/accessories", None);
    let (_, mute) = crate::controller::find_char(&db, aid, "112", "11A").expect("Microphone Mute");
    for (n, (rate, code, ptime, muted)) in [
        (16_000u32, AudioSampleRate::KHZ_16, 20u8, false),
        (24_000, AudioSampleRate::KHZ_24, 60, false),
        // The Microphone's Mute: the stream goes on, silent.
        (24_000, AudioSampleRate::KHZ_24, 20, true),
    ]
    .into_iter()
    .enumerate()
    {
        let (status, body) = c.json(
            "PUT",
            "/characteristics",
            Some(&serde_json::json!({"characteristics": [{"aid": aid, "iid": mute, "value": muted}]})),
        );
        assert_eq!(status, 204, "{body}");
        let session = [0x40 + n as u8; 16];
        let video = Receiver::start();
        let audio_port = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let resp = setup_with_audio(&mut c, &services[0], session, video.port, audio_port);
        assert_eq!(resp.status, SetupStatus::SUCCESS);
        let audio_ssrc = resp.audio_ssrc.expect("an audio SSRC");
        let sdp = tmp.0.join(format!("hap-audio-{n}.sdp"));
        write_sdp(&sdp, audio_port, rate);
        let pcm = tmp.0.join(format!("hap-audio-{n}.s16"));
        let ffmpeg = ffmpeg_decoder(&sdp, &pcm);
        std::thread::sleep(Duration::from_millis(500));
        let _ping = RtcpPinger::start(accessory_addr(&resp));
        let mut start = selected(session, SessionCommand::START, (1280, 720, 30), 2000);
        start.audio = Some(opus_request(code, ptime));
        let (code, body) = select(&mut c, &services[0], &start);
        assert_eq!(code, 204, "{body}");
        assert!(
            video.wait_for_packets(30, Duration::from_secs(15)),
            "no video"
        );
        wait_for_pcm(&pcm, RUN);
        let (code, body) = select(&mut c, &services[0], &command(session, SessionCommand::END));
        assert_eq!(code, 204, "{body}");
        let log = stop_ffmpeg(ffmpeg, &tmp.0);
        let samples = read_pcm(&pcm);
        if muted {
            let loudest = samples.iter().map(|v| v.unsigned_abs()).max().unwrap_or(0);
            println!("HAP muted: {} samples, loudest {loudest}", samples.len());
            assert!(
                samples.len() as f64 >= RUN.as_secs_f64() * f64::from(DECODE_RATE) * 0.9,
                "muted: the stream stopped ({} samples)\n{log}",
                samples.len()
            );
            assert!(loudest < 300, "muted, yet a sample of {loudest}");
            continue;
        }
        let beeps = beeps(&samples, DECODE_RATE);
        println!("HAP {rate} Hz {ptime} ms (SSRC {audio_ssrc:#x}): beeps {beeps:?}");
        check_beeps(
            &beeps,
            &format!("HAP {rate} Hz {ptime} ms: {} samples\n{log}", samples.len()),
        );
    }
}

#[test]
fn cameras_aac_and_pcmu_audio_reaches_the_controller_as_opus_and_opus_cameras_stream_video_only() {
    let fixture = RtspServer::start();
    let tmp = TempDir::new("audio-camera");
    let camera = |id: &str, name: &str, audio: &str| {
        format!(
            "[[cameras]]\nid = \"{id}\"\nname = \"{name}\"\nsource = \"{}\"\n",
            fixture.av_url(audio)
        )
    };
    let config = format!(
        "[bridge]\nmdns_interfaces = [\"lo\"]\n\n{}{}{}",
        camera("aac", "Aac Cam", "aac"),
        camera("pcmu", "Pcmu Cam", "pcmu"),
        camera("opus", "Opus Cam", "opus")
    );
    let bridge = Bridge::start_in(&tmp.0, Some(&config));
    let (mut c, ..) = crate::camera::connect(&bridge, "Aac Cam");
    let (_, db) = c.json("GET", "/accessories", None);
    for (n, (name, rate, code, ptime)) in [
        ("Aac Cam", 24_000u32, AudioSampleRate::KHZ_24, 20u8),
        ("Pcmu Cam", 16_000, AudioSampleRate::KHZ_16, 60),
        ("Opus Cam", 16_000, AudioSampleRate::KHZ_16, 20),
    ]
    .into_iter()
    .enumerate()
    {
        let aid = crate::controller::aid_named(&db, name).unwrap();
        let services = stream_services(&mut c, aid);
        let session = [0x60 + n as u8; 16];
        let video = Receiver::start();
        let mut audio_socket = Some(UdpSocket::bind("127.0.0.1:0").unwrap());
        let audio_port = audio_socket.as_ref().unwrap().local_addr().unwrap().port();
        let resp = setup_with_audio(&mut c, &services[0], session, video.port, audio_port);
        let _ping = RtcpPinger::start(accessory_addr(&resp));
        let pcm = tmp.0.join(format!("camera-{n}.s16"));
        let ffmpeg = if name == "Opus Cam" {
            None
        } else {
            drop(audio_socket.take());
            let sdp = tmp.0.join(format!("camera-{n}.sdp"));
            write_sdp(&sdp, audio_port, rate);
            let f = ffmpeg_decoder(&sdp, &pcm);
            std::thread::sleep(Duration::from_millis(500));
            Some(f)
        };
        let mut start = selected(session, SessionCommand::START, (640, 360, 30), 1000);
        start.audio = Some(opus_request(code, ptime));
        let (status, body) = select(&mut c, &services[0], &start);
        assert_eq!(status, 204, "{body}");
        assert!(
            video.wait_for_packets(30, Duration::from_secs(15)),
            "{name}: no video"
        );
        match ffmpeg {
            Some(ffmpeg) => {
                wait_for_pcm(&pcm, RUN);
                let log = stop_ffmpeg(ffmpeg, &tmp.0);
                let samples = read_pcm(&pcm);
                let (hz, quiet) = tone(&samples, DECODE_RATE);
                println!(
                    "{name} -> Opus {rate} Hz {ptime} ms: {} samples, {hz:.1} Hz, {quiet} quiet 10 ms windows",
                    samples.len()
                );
                assert!(
                    samples.len() as f64 >= RUN.as_secs_f64() * f64::from(DECODE_RATE) * 0.9,
                    "{name}: {} samples\n{log}",
                    samples.len()
                );
                assert!(
                    (hz - 1000.0).abs() <= 20.0,
                    "{name}: the tone is {hz:.1} Hz"
                );
                assert_eq!(quiet, 0, "{name}: gaps in the audio");
            }
            None => {
                // No audio track the bridge can decode: the video streams, the audio slot is
                // silent.
                let socket = audio_socket.as_ref().unwrap();
                socket
                    .set_read_timeout(Some(Duration::from_secs(2)))
                    .unwrap();
                let mut buf = [0u8; 2048];
                assert!(socket.recv(&mut buf).is_err(), "{name}: audio was sent");
            }
        }
        let (status, body) = select(&mut c, &services[0], &command(session, SessionCommand::END));
        assert_eq!(status, 204, "{body}");
    }
}

/// Setup Endpoints as iOS writes it: video to `video_port`, audio to `audio_port` (the test
/// keys for both); the accessory's answer.
fn setup_with_audio(
    c: &mut crate::controller::Conn,
    service: &crate::camera_util::StreamService,
    session: [u8; 16],
    video_port: u16,
    audio_port: u16,
) -> SetupEndpointsResponse {
    let mut request = setup_endpoints_request(
        session,
        format!("127.0.0.1:{video_port}").parse().unwrap(),
        &KEY,
        &SALT,
    );
    request.controller.audio_port = audio_port;
    write_setup_endpoints(c, service, &request);
    SetupEndpointsResponse::decode(&read_tlv(c, service.aid, service.setup)).unwrap()
}

/// The audio part of a Start as iOS writes it: Opus mono VBR at `rate`, `ptime` ms, PT 110.
fn opus_request(rate: AudioSampleRate, ptime: u8) -> SelectedAudio {
    SelectedAudio {
        codec: AudioCodecType::OPUS,
        channels: 1,
        bitrate_mode: BitrateMode::VARIABLE,
        sample_rate: rate,
        packet_time_ms: ptime,
        rtp: RtpParams {
            payload_type: PT,
            ssrc: 0x00be_ef00,
            max_bitrate_kbps: 24,
            min_rtcp_interval: 5.0,
            max_mtu: None,
            comfort_noise_payload_type: Some(13),
        },
        comfort_noise: false,
    }
}

/// A continuous tone's frequency (zero crossings, after the first half second) and the number
/// of 10 ms windows in the middle of the recording where it is missing (gaps).
fn tone(samples: &[i16], rate: u32) -> (f64, usize) {
    let skip = (rate / 2) as usize;
    if samples.len() < 2 * skip + 1 {
        return (0.0, usize::MAX);
    }
    let middle = &samples[skip..samples.len() - skip / 2];
    let crossings = middle
        .windows(2)
        .filter(|w| (w[0] < 0) != (w[1] < 0))
        .count();
    let hz = crossings as f64 / 2.0 / (middle.len() as f64 / f64::from(rate));
    let quiet = middle
        .chunks((rate / 100) as usize)
        .filter(|w| w.iter().all(|v| v.unsigned_abs() < 1000))
        .count();
    (hz, quiet)
}

/// An SDP for ffmpeg: Opus at `rate` (the RTP clock too) on `port`, SRTP with the test keys.
fn write_sdp(path: &Path, port: u16, rate: u32) {
    std::fs::write(
        path,
        format!(
            "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=hap-bridge audio\r\nc=IN IP4 127.0.0.1\r\n\
             t=0 0\r\nm=audio {port} RTP/SAVP {PT}\r\na=rtpmap:{PT} opus/{rate}/1\r\n\
             a=rtcp-mux\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{}\r\n",
            encode_params(&KEY, &SALT).as_str()
        ),
    )
    .unwrap();
}

/// Waits until ffmpeg has written `how_long` of decoded audio to `path` (at most 20 s more: on a
/// loaded machine the sender may start late), and a little longer for the last beep to end.
fn wait_for_pcm(path: &Path, how_long: Duration) {
    let want = (how_long.as_secs_f64() * f64::from(DECODE_RATE) * 2.0) as u64;
    let deadline = Instant::now() + how_long + Duration::from_secs(20);
    while Instant::now() < deadline {
        if std::fs::metadata(path).is_ok_and(|m| m.len() >= want) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
}

fn read_pcm(path: &Path) -> Vec<i16> {
    std::fs::read(path)
        .unwrap_or_default()
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// At least two whole beeps: ~100 ms of 1 kHz (within 2 %), one a second (medians: one beep
/// concealed by the decoder after a packet lost on a loaded machine does not fail the run; the
/// sender's own timeline is checked packet by packet above).
fn check_beeps(beeps: &[(f64, f64, f64)], context: &str) {
    assert!(beeps.len() >= 2, "beeps {beeps:?}: {context}");
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let hz = median(beeps.iter().map(|b| b.1).collect());
    let len = median(beeps.iter().map(|b| b.2).collect());
    let gap = median(beeps.windows(2).map(|w| w[1].0 - w[0].0).collect());
    assert!((hz - 1000.0).abs() <= 20.0, "{hz:.1} Hz: {beeps:?}");
    assert!(
        (0.07..0.13).contains(&len),
        "beeps last {len:.3} s: {beeps:?}"
    );
    assert!(
        (gap - 1.0).abs() < 0.03,
        "beeps {gap:.3} s apart: {beeps:?}"
    );
}

/// ffmpeg's output rate for the decoded audio.
const DECODE_RATE: u32 = 48_000;

fn ffmpeg_decoder(sdp: &Path, out: &Path) -> Child {
    Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "info", "-y"])
        .args(["-protocol_whitelist", "file,udp,rtp,srtp"])
        .arg("-i")
        .arg(sdp)
        .args(["-ac", "1", "-ar", &DECODE_RATE.to_string(), "-f", "s16le"])
        .arg(out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run ffmpeg ({e}): apt-get install ffmpeg"))
}

/// Stops ffmpeg (SIGINT: it finishes its output file) and returns its log.
fn stop_ffmpeg(ffmpeg: Child, _dir: &Path) -> String {
    let _ = Command::new("kill")
        .args(["-INT", &ffmpeg.id().to_string()])
        .status();
    let out = ffmpeg.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The beeps in `samples`: (start in s, frequency from zero crossings, length in s).
fn beeps(samples: &[i16], rate: u32) -> Vec<(f64, f64, f64)> {
    let rate_f = f64::from(rate);
    // Loud where the 1 ms window around a sample has a peak over a tenth of full scale.
    let window = (rate / 1000) as usize;
    let loud: Vec<bool> = samples
        .chunks(window)
        .map(|c| c.iter().any(|v| v.unsigned_abs() > 3000))
        .collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < loud.len() {
        if !loud[i] {
            i += 1;
            continue;
        }
        let start = i;
        while i < loud.len() && loud[i] {
            i += 1;
        }
        let (a, b) = (start * window, (i * window).min(samples.len()));
        // Skip the edges (the codec's fade in and out).
        let inner = &samples[a + (b - a) / 5..b - (b - a) / 5];
        let crossings = inner
            .windows(2)
            .filter(|w| (w[0] < 0) != (w[1] < 0))
            .count();
        let secs = inner.len() as f64 / rate_f;
        out.push((
            a as f64 / rate_f,
            crossings as f64 / 2.0 / secs,
            (b - a) as f64 / rate_f,
        ));
    }
    // A beep cut by the start or the end of the recording is not whole.
    out.retain(|&(start, _, len)| start > 0.05 && start + len < samples.len() as f64 / rate_f);
    out
}
