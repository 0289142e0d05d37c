//! Cameras end to end (HAP §7): hap-proto's controller pairs with the bridge binary, sets up
//! streams and receives SRTP over loopback; ffmpeg decodes it; the stream lifecycle (max
//! streams, suspend/resume, connection close, RTCP silence) and snapshots.

use std::thread;
use std::time::{Duration, Instant};

use hap_proto::camera::{SessionCommand, SetupEndpointsResponse, SetupStatus, StreamingStatus};
use hap_proto::controller::setup::SrpPadding;
use serde_json::json;

use crate::camera_util::{
    Ffmpeg, Receiver, RtcpPinger, accessory_addr, command, jpeg_size, read_tlv, select, selected,
    set_active, setup_endpoints, setup_endpoints_request, stream_services, streaming_status,
    write_setup_endpoints,
};
use crate::controller::{Conn, Identity, JSON};
use crate::pairing::aid_named;
use crate::rtsp_fixture::RtspServer;
use crate::util::{Bridge, SETUP_CODE, TempDir};

/// Pairs controller 1 and returns a verified connection and the aid of the camera `name`.
pub(crate) fn connect(
    bridge: &Bridge,
    name: &str,
) -> (
    Conn,
    Identity,
    hap_proto::controller::setup::PairedAccessory,
    u64,
) {
    let me = Identity::new(1);
    let acc = Conn::open(bridge.hap)
        .pair_setup(&me, SETUP_CODE, SrpPadding::Strip)
        .unwrap();
    let mut c = Conn::open(bridge.hap);
    c.pair_verify(&me, &acc).unwrap();
    let (code, db) = c.json("GET", "/accessories", None);
    assert_eq!(code, 200);
    let aid = aid_named(&db, name).unwrap_or_else(|| panic!("no accessory {name} in {db}"));
    (c, me, acc, aid)
}

/// Adds the test-pattern camera `extra` ("Extra Camera") through the admin API, pairs, and
/// returns a verified connection with the aids of the demo camera and of the added one.
fn connect_with_extra_camera(bridge: &Bridge) -> (Conn, u64, u64) {
    let (code, body) = bridge.api_post(
        "/api/v1/homekit/cameras",
        &json!({"id": "extra", "name": "Extra Camera", "source": "test-pattern"}).to_string(),
    );
    assert_eq!(code, 201, "{body}");
    let (mut c, _, _, demo) = connect(bridge, "Demo Camera");
    let (_, db) = c.json("GET", "/accessories", None);
    let extra = aid_named(&db, "Extra Camera").expect("the added camera");
    (c, demo, extra)
}

fn wait_status(
    c: &mut Conn,
    s: &crate::camera_util::StreamService,
    want: StreamingStatus,
    timeout: Duration,
) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if streaming_status(c, s) == want {
            return true;
        }
        thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn ffmpeg_decodes_a_stream_from_the_rtsp_camera_at_the_negotiated_then_reconfigured_size() {
    // The camera: GStreamer's RTSP server, 1280x720 main stream and a 640x360 substream.
    let camera = RtspServer::start_sized(1280, 720);
    let tmp = TempDir::new("camera-rtsp");
    let config = format!(
        "[bridge]\nmdns_interfaces = [\"lo\"]\n\n[[cameras]]\nid = \"gst\"\nname = \"Gst Camera\"\n\
         source = \"{}\"\nsubstream = \"{}\"\nalways_on = true\n",
        camera.url,
        camera.sub_url()
    );
    let bridge = Bridge::start_in(&tmp.0, Some(&config));
    let (mut c, _, _, aid) = connect(&bridge, "Gst Camera");
    let services = stream_services(&mut c, aid);
    assert_eq!(services.len(), 2, "max_streams defaults to 2 services");
    let s = services[0];
    assert_eq!(streaming_status(&mut c, &s), StreamingStatus::AVAILABLE);

    let ffmpeg = Ffmpeg::start(&tmp.0);
    thread::sleep(Duration::from_millis(800)); // ffmpeg binds its port
    let session = [0x11; 16];
    let resp = setup_endpoints(&mut c, &s, session, ffmpeg.port);
    assert_eq!(resp.status, SetupStatus::SUCCESS);
    assert_eq!(resp.session_id, session);
    assert!(resp.video_ssrc.is_some_and(|x| x != 0));
    assert_eq!(
        resp.video_srtp.as_ref().map(|p| p.key.as_slice()),
        Some(&crate::camera_util::KEY[..])
    );
    assert_eq!(accessory_addr(&resp).ip().to_string(), "127.0.0.1");
    assert!(wait_status(
        &mut c,
        &s,
        StreamingStatus::IN_USE,
        Duration::from_secs(2)
    ));
    let _rtcp = RtcpPinger::start(accessory_addr(&resp));

    let t0 = Instant::now();
    let (code, body) = select(
        &mut c,
        &s,
        &selected(session, SessionCommand::START, (1280, 720, 30), 2000),
    );
    assert_eq!(code, 204, "{body}");
    assert!(
        ffmpeg.wait_for((1280, 720), 75, Duration::from_secs(25)),
        "ffmpeg decoded {:?} after {:?}\n{}",
        summary(&ffmpeg.frame_sizes()),
        t0.elapsed(),
        ffmpeg.log()
    );
    let (code, streams) = bridge.api_get("/api/v1/homekit/streams");
    assert_eq!(code, 200);
    let live = &streams["streams"][0];
    assert_eq!(
        (
            live["camera"].as_str(),
            live["width"].as_u64(),
            live["height"].as_u64()
        ),
        (Some("gst"), Some(1280), Some(720)),
        "{streams}"
    );
    assert_eq!(
        live["mode"], "passthrough",
        "a 720p request of a 720p camera passes through"
    );

    // Reconfigure: same session, new size and bit rate.
    let (code, body) = select(
        &mut c,
        &s,
        &selected(session, SessionCommand::RECONFIGURE, (640, 360, 30), 800),
    );
    assert_eq!(code, 204, "{body}");
    assert!(
        ffmpeg.wait_for((640, 360), 75, Duration::from_secs(25)),
        "after reconfigure ffmpeg decoded {:?}\n{}",
        summary(&ffmpeg.frame_sizes()),
        ffmpeg.log()
    );
    assert!(!ffmpeg.log().contains("HMAC mismatch"), "{}", ffmpeg.log());

    let (code, body) = select(&mut c, &s, &command(session, SessionCommand::END));
    assert_eq!(code, 204, "{body}");
    assert!(wait_status(
        &mut c,
        &s,
        StreamingStatus::AVAILABLE,
        Duration::from_secs(3)
    ));
    assert_eq!(bridge.status()["active_streams"], 0);
}

/// Run-length summary of decoded sizes, for failure messages.
fn summary(sizes: &[(u32, u32)]) -> Vec<String> {
    let mut out: Vec<(String, usize)> = Vec::new();
    for (w, h) in sizes {
        let k = format!("{w}x{h}");
        match out.last_mut() {
            Some((last, n)) if *last == k => *n += 1,
            _ => out.push((k, 1)),
        }
    }
    out.into_iter().map(|(k, n)| format!("{n}×{k}")).collect()
}

#[test]
fn two_streams_play_a_third_is_refused_and_streams_end_with_their_connection_or_rtcp() {
    let bridge = Bridge::start();
    let (mut a, me, acc, aid) = connect(&bridge, "Demo Camera");
    let services = stream_services(&mut a, aid);
    assert_eq!(services.len(), 2);
    let mut b = Conn::open(bridge.hap);
    b.pair_verify(&me, &acc).unwrap();
    let mut watcher = Conn::open(bridge.hap);
    watcher.pair_verify(&me, &acc).unwrap();
    // A connection that only listens for Streaming Status events of service 1.
    let mut events = Conn::open(bridge.hap);
    events.pair_verify(&me, &acc).unwrap();
    crate::pairing::subscribe(&mut events, aid, services[1].status);
    let pid = bridge.pid().unwrap();
    let udp_before = udp_sockets(pid);

    // Stream A on service 0 from connection a, kept alive by RTCP.
    let ra = Receiver::start();
    let resp_a = setup_endpoints(&mut a, &services[0], [0xA; 16], ra.port);
    assert_eq!(resp_a.status, SetupStatus::SUCCESS);
    let _ping_a = RtcpPinger::start(accessory_addr(&resp_a));
    let (code, body) = select(
        &mut a,
        &services[0],
        &selected([0xA; 16], SessionCommand::START, (1280, 720, 30), 2000),
    );
    assert_eq!(code, 204, "{body}");
    // Stream B on service 1 from connection b, with no RTCP at all.
    let rb = Receiver::start();
    let resp_b = setup_endpoints(&mut b, &services[1], [0xB; 16], rb.port);
    assert_eq!(resp_b.status, SetupStatus::SUCCESS);
    let b_started = Instant::now();
    let (code, body) = select(
        &mut b,
        &services[1],
        &selected([0xB; 16], SessionCommand::START, (1280, 720, 30), 2000),
    );
    assert_eq!(code, 204, "{body}");
    assert!(
        ra.wait_for_packets(20, Duration::from_secs(15)),
        "stream A sends nothing"
    );
    assert!(
        rb.wait_for_packets(20, Duration::from_secs(15)),
        "stream B sends nothing"
    );
    assert_eq!(
        streaming_status(&mut watcher, &services[0]),
        StreamingStatus::IN_USE
    );
    assert_eq!(
        streaming_status(&mut watcher, &services[1]),
        StreamingStatus::IN_USE
    );

    // The streams in /metrics (Prometheus text): two started, frames and a latency histogram.
    let (code, metrics) = crate::util::http_text(bridge.api, "GET", "/metrics", None).unwrap();
    assert_eq!(code, 200);
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from\n{metrics}"))
    };
    assert_eq!(value("hap_bridge_active_streams"), 2.0);
    assert_eq!(value("hap_bridge_streams_started_total"), 2.0);
    assert!(value("hap_bridge_stream_frames_sent_total") > 0.0);
    assert!(value("hap_bridge_stream_frame_latency_seconds_count") > 0.0);
    assert!(value("hap_bridge_stream_frame_latency_seconds_bucket{le=\"+Inf\"}") > 0.0);

    // A third stream while two play: both services answer busy, the two streams go on.
    let rc = Receiver::start();
    for s in &services {
        let resp = setup_endpoints(&mut watcher, s, [0xC; 16], rc.port);
        assert_eq!(resp.status, SetupStatus::BUSY, "service {s:?}");
        assert!(resp.accessory.is_none());
    }
    let (code, _) = select(
        &mut watcher,
        &services[0],
        &selected([0xC; 16], SessionCommand::START, (640, 360, 30), 300),
    );
    assert_eq!(code, 207, "a Start for an unknown session is refused");
    let before = ra.packets();
    assert!(
        ra.wait_for_packets(before + 20, Duration::from_secs(5)),
        "stream A disturbed by the refused third"
    );
    assert_eq!(rc.packets(), 0);

    // Suspend and resume A: no pictures while suspended.
    let (code, _) = select(
        &mut a,
        &services[0],
        &command([0xA; 16], SessionCommand::SUSPEND),
    );
    assert_eq!(code, 204);
    assert!(
        ra.wait_for_silence(Duration::from_millis(700), Duration::from_secs(5))
            .is_some(),
        "suspended stream still sends"
    );
    let (code, _) = select(
        &mut a,
        &services[0],
        &command([0xA; 16], SessionCommand::RESUME),
    );
    assert_eq!(code, 204);
    let before = ra.packets();
    assert!(
        ra.wait_for_packets(before + 20, Duration::from_secs(5)),
        "resumed stream sends nothing"
    );

    // Streaming Status events follow (HAP §7.7): B's service went in use.
    assert_eq!(
        status_event(&mut events, &services[1], Duration::from_secs(2)),
        Some(StreamingStatus::IN_USE)
    );

    // B hears no RTCP: it ends within 5 × 0.5 s of its start (HAP §7.9), and its service frees.
    let last_b = rb
        .wait_for_silence(Duration::from_millis(500), Duration::from_secs(8))
        .expect("stream B never stopped");
    let b_lived = last_b.duration_since(b_started);
    assert!(
        b_lived < Duration::from_millis(2500 + 1500),
        "stream B sent for {b_lived:?} without RTCP"
    );
    assert!(wait_status(
        &mut watcher,
        &services[1],
        StreamingStatus::AVAILABLE,
        Duration::from_secs(3)
    ));
    // A, kept alive, still plays well past that timeout.
    let before = ra.packets();
    assert!(
        ra.wait_for_packets(before + 20, Duration::from_secs(5)),
        "stream A ended with B"
    );

    // Closing the HAP connection that set A up ends A within a second.
    drop(a);
    let closed = Instant::now();
    let last_a = ra
        .wait_for_silence(Duration::from_millis(300), Duration::from_secs(5))
        .expect("stream A never stopped");
    let after_close = last_a.saturating_duration_since(closed);
    assert!(
        after_close < Duration::from_secs(1),
        "packets for {after_close:?} after the connection closed"
    );
    assert!(wait_status(
        &mut watcher,
        &services[0],
        StreamingStatus::AVAILABLE,
        Duration::from_secs(3)
    ));
    let (code, streams) = bridge.api_get("/api/v1/homekit/streams");
    assert_eq!(code, 200);
    assert_eq!(streams["streams"], json!([]), "streams left behind");
    // Nothing left behind: both streams' UDP sockets are closed.
    let udp_after = udp_sockets(pid);
    assert_eq!(
        udp_after, udp_before,
        "UDP sockets before the streams {udp_before}, after {udp_after}"
    );
}

/// UDP sockets the process holds open: its `/proc/PID/fd` sockets whose inode is in
/// `/proc/PID/net/udp` or `udp6`.
fn udp_sockets(pid: u32) -> usize {
    let mut inodes = std::collections::HashSet::new();
    for table in ["udp", "udp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        inodes.extend(
            text.lines()
                .skip(1)
                .filter_map(|l| l.split_whitespace().nth(9).map(str::to_owned)),
        );
    }
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .filter(|inode| inodes.contains(inode))
        .count()
}

/// The next Streaming Status event of service `s`.
fn status_event(
    c: &mut Conn,
    s: &crate::camera_util::StreamService,
    timeout: Duration,
) -> Option<StreamingStatus> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let event = c.next_message(deadline.saturating_duration_since(Instant::now()), true)?;
        if let Some(v) = crate::pairing::event_value(&event, s.aid, s.status) {
            let bytes =
                base64::Engine::decode(&base64::engine::general_purpose::STANDARD, v.as_str()?)
                    .ok()?;
            return hap_proto::camera::decode_streaming_status(&bytes).ok();
        }
    }
    None
}

#[test]
fn a_snapshot_is_a_jpeg_of_the_requested_size() {
    let bridge = Bridge::start();
    let tmp = TempDir::new("snapshot");
    let (mut c, _, _, aid) = connect(&bridge, "Demo Camera");
    for (w, h) in [(640u32, 360u32), (320, 240)] {
        let body =
            json!({"resource-type": "image", "image-width": w, "image-height": h, "aid": aid});
        let t = Instant::now();
        let m = c.call("POST", "/resource", JSON, body.to_string().as_bytes());
        assert_eq!(m.status, 200, "{m:?}");
        assert_eq!(m.content_type.as_deref(), Some("image/jpeg"));
        assert_eq!(
            jpeg_size(&tmp.0, &m.body),
            (w, h),
            "snapshot asked {w}x{h} in {:?}",
            t.elapsed()
        );
    }
    // Two requests in one write (a pipelining controller): the second is answered after the
    // first without waiting for more input.
    let small =
        json!({"resource-type": "image", "image-width": 320, "image-height": 180, "aid": aid});
    let small = small.to_string();
    c.send_pipelined(&[
        ("POST", "/resource", JSON, small.as_bytes()),
        ("POST", "/resource", JSON, small.as_bytes()),
    ]);
    for n in 0..2 {
        let m = c
            .next_message(Duration::from_secs(10), false)
            .unwrap_or_else(|| panic!("pipelined snapshot {n} not answered"));
        assert_eq!(m.status, 200, "{m:?}");
        assert_eq!(jpeg_size(&tmp.0, &m.body), (320, 180));
    }
    // The bridge itself (aid 1) has no picture.
    let body = json!({"resource-type": "image", "image-width": 640, "image-height": 360, "aid": 1});
    let m = c.call("POST", "/resource", JSON, body.to_string().as_bytes());
    assert_eq!(m.status, 404, "{m:?}");
    // The same picture through the admin API (the web page's thumbnails).
    let (code, jpeg) = crate::util::http_raw(
        bridge.api,
        "GET",
        "/api/v1/homekit/cameras/demo/snapshot?width=320&height=180",
        None,
        None,
    );
    assert_eq!(code, 200);
    assert_eq!(jpeg_size(&tmp.0, &jpeg), (320, 180));
}

#[test]
fn each_controller_reads_the_answer_to_its_own_setup_endpoints() {
    let bridge = Bridge::start();
    let (mut a, me, acc, aid) = connect(&bridge, "Demo Camera");
    let mut b = Conn::open(bridge.hap);
    b.pair_verify(&me, &acc).unwrap();
    let s = stream_services(&mut a, aid)[0];
    // A writes; B writes to the same service before A reads (B is told busy: A's session
    // holds it). A still reads its own endpoints, B its refusal.
    let request = |id, port| {
        let dest = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        setup_endpoints_request(id, dest, &[0x11; 16], &[0x22; 14])
    };
    write_setup_endpoints(&mut a, &s, &request([0xA; 16], 40_000));
    write_setup_endpoints(&mut b, &s, &request([0xB; 16], 40_010));
    let answer =
        |c: &mut Conn| SetupEndpointsResponse::decode(&read_tlv(c, s.aid, s.setup)).unwrap();
    let (for_a, for_b) = (answer(&mut a), answer(&mut b));
    assert_eq!(
        (for_a.session_id, for_a.status),
        ([0xA; 16], SetupStatus::SUCCESS)
    );
    assert!(for_a.accessory.is_some());
    assert_eq!(
        (for_b.session_id, for_b.status),
        ([0xB; 16], SetupStatus::BUSY)
    );
}

#[test]
fn a_setup_endpoints_with_an_srtp_suite_not_advertised_is_refused() {
    use hap_proto::camera::SrtpCryptoSuite;
    let bridge = Bridge::start();
    let (mut c, _, _, aid) = connect(&bridge, "Demo Camera");
    let s = stream_services(&mut c, aid)[0];
    let dest = std::net::SocketAddr::from(([127, 0, 0, 1], 40_020));
    // NONE (2) would send the video in clear with unauthenticated RTCP: it is not advertised,
    // for video nor audio (an unknown value does not even decode: HAP §7.4).
    for (n, (video, audio)) in [
        (
            SrtpCryptoSuite::NONE,
            SrtpCryptoSuite::AES_CM_128_HMAC_SHA1_80,
        ),
        (
            SrtpCryptoSuite::AES_CM_128_HMAC_SHA1_80,
            SrtpCryptoSuite::NONE,
        ),
        (SrtpCryptoSuite::NONE, SrtpCryptoSuite::NONE),
    ]
    .into_iter()
    .enumerate()
    {
        let id = [0x30 + n as u8; 16];
        let mut request = setup_endpoints_request(id, dest, &[0x11; 16], &[0x22; 14]);
        for (params, suite) in [
            (&mut request.video_srtp, video),
            (&mut request.audio_srtp, audio),
        ] {
            if suite != SrtpCryptoSuite::AES_CM_128_HMAC_SHA1_80 {
                params.suite = suite;
                params.key.clear();
                params.salt.clear();
            }
        }
        write_setup_endpoints(&mut c, &s, &request);
        let answer = SetupEndpointsResponse::decode(&read_tlv(&mut c, s.aid, s.setup)).unwrap();
        assert_eq!(
            (answer.session_id, answer.status),
            (id, SetupStatus::ERROR),
            "video {video:?}, audio {audio:?}"
        );
        assert!(answer.accessory.is_none() && answer.video_srtp.is_none());
        assert_eq!(
            streaming_status(&mut c, &s),
            StreamingStatus::AVAILABLE,
            "nothing held"
        );
    }
    // An advertised suite is still served.
    let request = setup_endpoints_request([0x3F; 16], dest, &[0x11; 16], &[0x22; 14]);
    write_setup_endpoints(&mut c, &s, &request);
    let answer = SetupEndpointsResponse::decode(&read_tlv(&mut c, s.aid, s.setup)).unwrap();
    assert_eq!(answer.status, SetupStatus::SUCCESS);
    assert!(bridge.output().contains("SRTP suite not advertised"));
}

#[test]
fn a_connection_cut_off_by_disabling_homekit_releases_what_it_held() {
    // A camera whose RTSP server accepts and never answers: a snapshot of it waits (up to 4 s)
    // longer than disabling HomeKit grants the connections (2 s) before ending their tasks.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let config = format!(
        "[bridge]\nmdns_interfaces = [\"lo\"]\n\n[[cameras]]\nid = \"mute\"\n\
         name = \"Mute Camera\"\nsource = \"rtsp://{}/stream\"\n",
        silent.local_addr().unwrap()
    );
    let tmp = TempDir::new("camera-abort");
    let bridge = Bridge::start_in(&tmp.0, Some(&config));
    let (mut c, _, _, aid) = connect(&bridge, "Mute Camera");
    let body =
        json!({"resource-type": "image", "image-width": 320, "image-height": 180, "aid": aid});
    c.send("POST", "/resource", JSON, body.to_string().as_bytes());
    thread::sleep(Duration::from_millis(300));
    let counts = |bridge: &Bridge| {
        let (_, status) = bridge.api_get("/api/v1/homekit/status");
        (
            status["connections"].clone(),
            status["verified_sessions"].clone(),
        )
    };
    assert_eq!(counts(&bridge), (json!(1), json!(1)), "the waiting session");
    assert_eq!(bridge.api_post("/api/v1/homekit/disable", "").0, 200);
    assert!(c.closed_within(Duration::from_secs(5)));
    assert_eq!(bridge.api_post("/api/v1/homekit/enable", "").0, 200);
    assert_eq!(
        counts(&bridge),
        (json!(0), json!(0)),
        "nothing left counted"
    );
}

#[test]
fn a_transcoded_stream_is_decoded_and_shutdown_ends_it_cleanly() {
    let mut bridge = Bridge::start();
    let tmp = TempDir::new("camera-shutdown");
    let (mut c, _, _, aid) = connect(&bridge, "Demo Camera");
    let s = stream_services(&mut c, aid)[0];
    // The test pattern is 1280x720: a 640x360 request is transcoded.
    let ffmpeg = Ffmpeg::start(&tmp.0);
    thread::sleep(Duration::from_millis(800));
    let resp = setup_endpoints(&mut c, &s, [0x5; 16], ffmpeg.port);
    let _rtcp = RtcpPinger::start(accessory_addr(&resp));
    let (code, body) = select(
        &mut c,
        &s,
        &selected([0x5; 16], SessionCommand::START, (640, 360, 30), 500),
    );
    assert_eq!(code, 204, "{body}");
    assert!(
        ffmpeg.wait_for((640, 360), 30, Duration::from_secs(25)),
        "ffmpeg decoded {:?}\n{}",
        summary(&ffmpeg.frame_sizes()),
        ffmpeg.log()
    );
    assert_eq!(
        ffmpeg.count((1280, 720)),
        0,
        "the source size leaked into a 640x360 stream"
    );
    let (_, streams) = bridge.api_get("/api/v1/homekit/streams");
    assert_eq!(streams["streams"][0]["mode"], "transcode", "{streams}");

    // SIGTERM mid-stream: the process ends the stream and exits cleanly.
    let t = Instant::now();
    assert!(
        bridge.stop(),
        "the bridge did not exit cleanly with a live stream"
    );
    assert!(
        t.elapsed() < Duration::from_secs(6),
        "shutdown took {:?}",
        t.elapsed()
    );
    let decoded = ffmpeg.count((640, 360));
    thread::sleep(Duration::from_millis(800));
    assert_eq!(
        ffmpeg.count((640, 360)),
        decoded,
        "pictures after the bridge exited"
    );
}

#[test]
fn a_stream_service_switched_off_is_unavailable_and_refuses_sessions() {
    let bridge = Bridge::start();
    let (mut c, _, _, aid) = connect(&bridge, "Demo Camera");
    let s = stream_services(&mut c, aid)[1];
    let active = |c: &mut Conn, on: u8| set_active(c, &s, on);
    active(&mut c, 0);
    let off = wait_status(
        &mut c,
        &s,
        StreamingStatus::UNAVAILABLE,
        Duration::from_secs(2),
    );
    assert!(off, "{}", bridge.output());
    let rx = Receiver::start();
    assert_eq!(
        setup_endpoints(&mut c, &s, [0x6; 16], rx.port).status,
        SetupStatus::BUSY
    );
    active(&mut c, 1);
    assert!(wait_status(
        &mut c,
        &s,
        StreamingStatus::AVAILABLE,
        Duration::from_secs(2)
    ));
    assert_eq!(
        setup_endpoints(&mut c, &s, [0x6; 16], rx.port).status,
        SetupStatus::SUCCESS
    );
}

/// A camera change that rebuilds its media runtime (here `always_on`) keeps each stream
/// service's Active switch, and the database says what the new runtime's slots do: switched
/// off stays off (and on again works), endpoints set up on the old runtime are gone.
#[test]
fn a_camera_rebuilt_at_run_time_keeps_its_active_switch_and_reports_its_slots() {
    let bridge = Bridge::start();
    // A camera added at run time (cameras of the config file are edited in the file).
    let (mut c, _, aid) = connect_with_extra_camera(&bridge);
    let services = stream_services(&mut c, aid);
    let (s0, s1) = (services[0], services[1]);
    let rx = Receiver::start();
    set_active(&mut c, &s1, 0);
    assert!(wait_status(
        &mut c,
        &s1,
        StreamingStatus::UNAVAILABLE,
        Duration::from_secs(2)
    ));
    assert_eq!(
        setup_endpoints(&mut c, &s0, [0x7; 16], rx.port).status,
        SetupStatus::SUCCESS
    );
    assert!(wait_status(
        &mut c,
        &s0,
        StreamingStatus::IN_USE,
        Duration::from_secs(2)
    ));

    let (_, cam) = bridge.api_get("/api/v1/homekit/cameras/extra");
    let always_on = cam["always_on"]
        .as_bool()
        .unwrap_or_else(|| panic!("{cam}"));
    let body = json!({"always_on": !always_on}).to_string();
    let (code, reply) =
        bridge.api_request("PUT", "/api/v1/homekit/cameras/extra", Some(&body), None);
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&reply));

    // The new runtime's slot 0 is free; slot 1 is still switched off.
    assert!(
        wait_status(
            &mut c,
            &s0,
            StreamingStatus::AVAILABLE,
            Duration::from_secs(2)
        ),
        "endpoints of the replaced runtime still reported: {}",
        bridge.output()
    );
    assert_eq!(streaming_status(&mut c, &s1), StreamingStatus::UNAVAILABLE);
    let id = format!("{aid}.{}", s1.active);
    let (code, read) = c.json("GET", &format!("/characteristics?id={id}"), None);
    assert_eq!(code, 200, "{read}");
    assert_eq!(read["characteristics"][0]["value"], json!(0), "{read}");
    assert_eq!(
        setup_endpoints(&mut c, &s1, [0x8; 16], rx.port).status,
        SetupStatus::BUSY
    );
    set_active(&mut c, &s1, 1);
    assert!(
        wait_status(
            &mut c,
            &s1,
            StreamingStatus::AVAILABLE,
            Duration::from_secs(2)
        ),
        "switched on again, still unavailable: {}",
        bridge.output()
    );
    assert_eq!(
        setup_endpoints(&mut c, &s1, [0x8; 16], rx.port).status,
        SetupStatus::SUCCESS
    );
}

#[test]
fn a_controller_on_ipv6_gets_an_ipv6_endpoint_and_the_stream() {
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("SKIPPED: no IPv6 loopback on this machine");
        return;
    }
    let tmp = TempDir::new("camera-ipv6");
    let bridge = Bridge::start_bound(&tmp.0, None, "127.0.0.1:0", "::1");
    assert!(bridge.hap.is_ipv6(), "{}", bridge.hap);
    let (mut c, _, _, aid) = connect(&bridge, "Demo Camera");
    let s = stream_services(&mut c, aid)[0];
    let rx = Receiver::start_on("[::1]:0");
    let key = crate::camera_util::KEY;
    let salt = crate::camera_util::SALT;
    let resp =
        crate::camera_util::setup_endpoints_with(&mut c, &s, [0x66; 16], rx.addr, &key, &salt);
    assert_eq!(resp.status, SetupStatus::SUCCESS);
    let ours = accessory_addr(&resp);
    assert_eq!(
        ours.ip().to_string(),
        "::1",
        "same IP version and interface as the HAP connection"
    );
    let _rtcp = RtcpPinger::start(ours);
    let (code, body) = select(
        &mut c,
        &s,
        &selected([0x66; 16], SessionCommand::START, (1280, 720, 30), 1000),
    );
    assert_eq!(code, 204, "{body}");
    assert!(
        rx.wait_for_packets(30, Duration::from_secs(15)),
        "no packets over IPv6"
    );
}

#[test]
fn the_admin_api_stops_a_stream_and_removing_a_camera_ends_its_streams() {
    let bridge = Bridge::start();
    let (mut c, demo, extra) = connect_with_extra_camera(&bridge);
    let on_demo = stream_services(&mut c, demo)[0];
    let on_extra = stream_services(&mut c, extra)[0];
    let mut start = |s: &crate::camera_util::StreamService, session: [u8; 16]| {
        let rx = Receiver::start();
        let resp = setup_endpoints(&mut c, s, session, rx.port);
        assert_eq!(resp.status, SetupStatus::SUCCESS);
        let ping = RtcpPinger::start(accessory_addr(&resp));
        let (code, body) = select(
            &mut c,
            s,
            &selected(session, SessionCommand::START, (1280, 720, 30), 1000),
        );
        assert_eq!(code, 204, "{body}");
        assert!(rx.wait_for_packets(20, Duration::from_secs(15)));
        (rx, ping)
    };
    let (rx_demo, _ping_demo) = start(&on_demo, [0xD; 16]);
    let (rx_extra, _ping_extra) = start(&on_extra, [0xE; 16]);

    // Stop the demo camera's stream through the admin API.
    let (_, streams) = bridge.api_get("/api/v1/homekit/streams");
    let id = streams["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["camera"] == "demo")
        .and_then(|s| s["id"].as_u64())
        .unwrap_or_else(|| panic!("no demo stream in {streams}"));
    let (code, _) = bridge.api_request(
        "DELETE",
        &format!("/api/v1/homekit/streams/{id}"),
        None,
        None,
    );
    assert_eq!(code, 200);
    let stopped = Instant::now();
    let last = rx_demo
        .wait_for_silence(Duration::from_millis(300), Duration::from_secs(5))
        .expect("still streaming");
    assert!(last.saturating_duration_since(stopped) < Duration::from_secs(1));
    let (code, _) = bridge.api_request(
        "DELETE",
        &format!("/api/v1/homekit/streams/{id}"),
        None,
        None,
    );
    assert_eq!(code, 404, "a stopped stream is gone");

    // Removing the camera ends its stream.
    let before = rx_extra.packets();
    assert!(
        rx_extra.wait_for_packets(before + 10, Duration::from_secs(5)),
        "the other stream stopped too"
    );
    let (code, _) = bridge.api_request("DELETE", "/api/v1/homekit/cameras/extra", None, None);
    assert!(code == 200 || code == 204, "{code}");
    let removed = Instant::now();
    let last = rx_extra
        .wait_for_silence(Duration::from_millis(300), Duration::from_secs(5))
        .expect("still streaming");
    assert!(last.saturating_duration_since(removed) < Duration::from_secs(1));
    let (_, streams) = bridge.api_get("/api/v1/homekit/streams");
    assert_eq!(streams["streams"], json!([]));
}

#[test]
fn the_stream_command_refuses_bad_arguments_naming_them() {
    let key = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"; // 30 zero bytes
    let base = [
        "stream",
        "--rtsp",
        "test-pattern",
        "--dest",
        "127.0.0.1:9",
        "--ssrc",
        "1",
        "--pt",
        "99",
    ];
    for (extra, named) in [
        (["--srtp-key", key, "--warm-up=inf"], "--warm-up"),
        (["--srtp-key", key, "--warm-up=-1"], "--warm-up"),
        (["--srtp-key", "c2hvcnQ=", "--warm-up=0"], "--srtp-key"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_hap-bridge"))
            .args(base.iter().chain(extra.iter()))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{extra:?}: {stderr}");
        assert!(stderr.contains(named), "{extra:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{extra:?}: {stderr}");
    }
}

/// A paired controller writing Setup Endpoints over and over (#17 item 7) piles up nothing:
/// one expiry timer per stream service, and the sockets handed out are the pool's (a replaced
/// session's socket is closed).
#[test]
fn setup_endpoints_spam_keeps_one_timer_per_stream_service_and_no_socket_pile() {
    let bridge = Bridge::start();
    let (mut c, _, _, aid) = connect(&bridge, "Demo Camera");
    let services = stream_services(&mut c, aid);
    let pid = bridge.pid().unwrap();
    let before = udp_sockets(pid);
    let timers = |bridge: &Bridge| -> u64 {
        let (code, text) = crate::util::http_text(bridge.api, "GET", "/metrics", None).unwrap();
        assert_eq!(code, 200);
        text.lines()
            .find_map(|l| l.strip_prefix("hap_bridge_camera_timers "))
            .and_then(|v| v.trim().parse().ok())
            .expect("hap_bridge_camera_timers in /metrics")
    };
    for i in 0..300u32 {
        let s = &services[(i % 2) as usize];
        let dest = std::net::SocketAddr::from(([127, 0, 0, 1], 40_000));
        let id = [(i % 251) as u8; 16];
        write_setup_endpoints(
            &mut c,
            s,
            &setup_endpoints_request(id, dest, &[1; 16], &[2; 14]),
        );
    }
    // The answers of the last writes are real endpoints.
    let resp = SetupEndpointsResponse::decode(&read_tlv(&mut c, aid, services[1].setup)).unwrap();
    assert_eq!(resp.status, SetupStatus::SUCCESS);
    let pending = timers(&bridge);
    assert!(
        (1..=2).contains(&pending),
        "{pending} timers for 300 Setup Endpoints on 2 services"
    );
    let after = udp_sockets(pid);
    assert!(
        after <= before + 2 + 2 * 4,
        "UDP sockets went from {before} to {after}: two prepared sessions and the pool"
    );
}

/// A camera's `transcode` setting (#18 item 4): `never` passes the 1280x720 test pattern
/// through to a 640x360 request, `always` re-encodes it for a 1280x720 one, `auto` re-encodes
/// only what does not fit; `/streams` and `/metrics` say which and why.
#[test]
fn the_transcode_setting_chooses_passthrough_or_transcode_and_says_why() {
    let bridge = Bridge::start();
    for (id, name, transcode) in [
        ("never", "Never Cam", "never"),
        ("always", "Always Cam", "always"),
    ] {
        let (code, body) = bridge.api_post(
            "/api/v1/homekit/cameras",
            &json!({"id": id, "name": name, "source": "test-pattern", "transcode": transcode})
                .to_string(),
        );
        assert_eq!(code, 201, "{body}");
        assert_eq!(body["transcode"], transcode);
    }
    let (mut c, _, _, demo) = connect(&bridge, "Demo Camera");
    let (_, db) = c.json("GET", "/accessories", None);
    let never = aid_named(&db, "Never Cam").unwrap();
    let always = aid_named(&db, "Always Cam").unwrap();
    let mut keep = Vec::new();
    for (aid, session, size) in [
        (never, [0x1; 16], (640, 360, 30)),
        (always, [0x2; 16], (1280, 720, 30)),
        (demo, [0x3; 16], (640, 360, 30)),
    ] {
        let s = stream_services(&mut c, aid)[0];
        let rx = Receiver::start();
        let resp = setup_endpoints(&mut c, &s, session, rx.port);
        assert_eq!(resp.status, SetupStatus::SUCCESS);
        let ping = RtcpPinger::start(accessory_addr(&resp));
        let (code, body) = select(
            &mut c,
            &s,
            &selected(session, SessionCommand::START, size, 1000),
        );
        assert_eq!(code, 204, "{body}");
        assert!(rx.wait_for_packets(10, Duration::from_secs(15)));
        keep.push((rx, ping));
    }
    let (_, streams) = bridge.api_get("/api/v1/homekit/streams");
    let of = |camera: &str| {
        streams["streams"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["camera"] == camera)
            .map(|s| (s["mode"].clone(), s["mode_reason"].clone()))
            .unwrap_or_else(|| panic!("no {camera} stream in {streams}"))
    };
    assert_eq!(
        of("never"),
        (json!("passthrough"), json!("passthrough_asked"))
    );
    assert_eq!(of("always"), (json!("transcode"), json!("transcode_asked")));
    assert_eq!(of("demo"), (json!("transcode"), json!("does_not_fit")));
    let (code, metrics) = crate::util::http_text(bridge.api, "GET", "/metrics", None).unwrap();
    assert_eq!(code, 200);
    for line in [
        "hap_bridge_live_streams{mode=\"passthrough\",reason=\"passthrough_asked\"} 1",
        "hap_bridge_live_streams{mode=\"transcode\",reason=\"transcode_asked\"} 1",
        "hap_bridge_live_streams{mode=\"transcode\",reason=\"does_not_fit\"} 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
}
