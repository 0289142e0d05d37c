//! Live streams end to end: the in-process test pattern through `media::session` (RTP, SRTP,
//! RTCP) over UDP on loopback, received and decoded by ffmpeg, an independent SRTP receiver and
//! H.264 decoder; and the stream lifecycle (stop, RTCP silence).

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use media::camera::Camera;
use media::h264::H264Profile;
use media::hub::{ConnectMode, Hub, HubConfig};
use media::rtp::RtpPacket;
use media::session::{self, EndReason, Mode, SrtpKeys, StreamParams};
use media::source::SourceConfig;
use media::source::test_pattern::TestPatternConfig;
use media::srtp::{SrtpContext, SrtpSuite};
use tokio::net::UdpSocket;

use crate::fixture::RtspServer;
use crate::{bounded, rtsp_hub};

const KEY: [u8; 16] = [0x11; 16];
const SALT: [u8; 14] = [0x22; 14];

fn pattern_camera(width: u32, height: u32) -> Arc<Camera> {
    let hub = Hub::new(HubConfig {
        name: "pattern".into(),
        source: SourceConfig::TestPattern(TestPatternConfig {
            width,
            height,
            fps: 30,
            bitrate_bps: 1_500_000,
            keyframe_interval: 30,
        }),
        mode: ConnectMode::AlwaysOn,
        size_hint: Some((width, height)),
    })
    .unwrap();
    Arc::new(Camera::new(hub, None))
}

fn params(dest: SocketAddr, width: u32, height: u32, fps: u32, mode: Mode) -> StreamParams {
    StreamParams {
        width,
        height,
        fps,
        kbps: 1000,
        max_profile: H264Profile::High,
        payload_type: 99,
        ssrc: 0x0BAD_CAFE,
        mtu: 1378,
        srtp: SrtpKeys {
            suite: SrtpSuite::AesCm128HmacSha1_80,
            key: KEY.to_vec(),
            salt: SALT.to_vec(),
        },
        destination: dest,
        rtcp_destination: None,
        rtcp_interval: Duration::from_millis(500),
        rtcp_timeout: None,
        mode,
        initial_sequence: 40_000,
        initial_timestamp: 12_345,
    }
}

struct Ffmpeg(Child);

impl Ffmpeg {
    /// Stops ffmpeg the graceful way (SIGTERM), so it flushes its decoder into the output.
    fn finish(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Ffmpeg {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts ffmpeg receiving SRTP on a free loopback port; returns it, the port and the framemd5
/// output path.
fn ffmpeg_receiver(dir: &Path) -> (Ffmpeg, u16, std::path::PathBuf) {
    let (port, sdp_path) = crate::srtp_sdp::write(dir, &KEY, &SALT);
    let out = dir.join("frames.md5");
    let log = std::fs::File::create(dir.join("ffmpeg.log")).unwrap();
    let child = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "info"])
        .args(["-protocol_whitelist", "file,udp,rtp,srtp", "-analyzeduration", "500000"])
        .args(["-threads", "1", "-i"])
        .arg(&sdp_path)
        // Every decoded picture, whatever its timestamp (no frame-rate conversion).
        .args(["-fps_mode", "passthrough"])
        .args(["-pix_fmt", "yuv420p", "-f", "framemd5", "-flush_packets", "1", "-y"])
        .arg(&out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run ffmpeg ({e}): this test needs ffmpeg on PATH (Debian: apt-get install ffmpeg)"));
    (Ffmpeg(child), port, out)
}

/// Waits until a process has bound UDP `port` on this machine (ffmpeg is listening), at most
/// 15 s: a fixed sleep loses the first IDR, and with it the stream, when ffmpeg starts slowly.
async fn wait_until_bound(port: u16) {
    let needle = format!(":{port:04X} ");
    let bound = || {
        ["/proc/net/udp", "/proc/net/udp6"].iter().any(|t| {
            std::fs::read_to_string(t)
                .unwrap_or_default()
                .lines()
                .any(|l| {
                    l.split_whitespace()
                        .nth(1)
                        .is_some_and(|a| format!("{a} ").ends_with(&needle))
                })
        })
    };
    bounded("ffmpeg listening", Duration::from_secs(15), async {
        while !bound() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    // Bound is not yet reading: give it a moment to enter its receive loop.
    tokio::time::sleep(Duration::from_millis(200)).await;
}

/// Decoded frame sizes (bytes of a yuv420p picture) from a framemd5 file.
fn decoded_frame_bytes(path: &Path) -> Vec<usize> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(',').nth(4).and_then(|s| s.trim().parse().ok()))
        .collect()
}

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("media-session-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Streams `camera` at the requested size for `seconds` to ffmpeg and returns the decoded frame
/// sizes (bytes) and whether the session transcoded.
async fn stream_to_ffmpeg(
    tag: &str,
    camera: Arc<Camera>,
    width: u32,
    height: u32,
    fps: u32,
    mode: Mode,
) -> (Vec<usize>, bool, session::LiveStats) {
    let dir = temp_dir(tag);
    let (_ffmpeg, port, out) = ffmpeg_receiver(&dir);
    wait_until_bound(port).await;
    let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let dest: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut handle = session::start(camera, socket, params(dest, width, height, fps, mode))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let stats = handle.stats();
    handle.stop();
    assert_eq!(handle.wait().await, EndReason::Stopped);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let frames = decoded_frame_bytes(&out);
    let log = std::fs::read_to_string(dir.join("ffmpeg.log")).unwrap_or_default();
    assert!(
        !log.contains("HMAC mismatch"),
        "ffmpeg rejected our SRTP:\n{log}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    (frames, stats.transcoding, stats)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_decodes_a_passthrough_stream_at_the_source_size() {
    let camera = pattern_camera(640, 360);
    let (frames, transcoding, stats) =
        stream_to_ffmpeg("pass", camera, 1280, 720, 30, Mode::Auto).await;
    assert!(!transcoding, "a 640x360 source fits a 1280x720 request");
    assert!(
        frames.len() >= 30,
        "ffmpeg decoded only {} frames",
        frames.len()
    );
    assert!(frames.iter().all(|b| *b == 640 * 360 * 3 / 2), "{frames:?}");
    assert!(stats.stream.frames_sent >= 30);
    assert!(stats.stream.latency.p50().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_decodes_a_transcoded_stream_at_the_requested_size() {
    let camera = pattern_camera(1280, 720);
    let (frames, transcoding, _) =
        stream_to_ffmpeg("trans", camera, 320, 240, 15, Mode::Auto).await;
    assert!(transcoding, "a 1280x720 source does not fit 320x240");
    assert!(
        frames.len() >= 15,
        "ffmpeg decoded only {} frames",
        frames.len()
    );
    assert!(frames.iter().all(|b| *b == 320 * 240 * 3 / 2), "{frames:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtcp_silence_ends_the_stream_and_stop_means_no_more_packets() {
    let camera = pattern_camera(320, 240);
    let receiver = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let dest = receiver.local_addr().unwrap();
    let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let mut p = params(dest, 320, 240, 30, Mode::Passthrough);
    p.rtcp_timeout = Some(Duration::from_millis(1500));
    let started = Instant::now();
    let mut handle = session::start(camera.clone(), socket.clone(), p.clone())
        .await
        .unwrap();
    let mut buf = [0u8; 2048];
    let n = tokio::time::timeout(Duration::from_secs(5), receiver.recv(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(n > 12 && n <= 1378);
    let reason = tokio::time::timeout(Duration::from_secs(10), handle.wait())
        .await
        .unwrap();
    assert_eq!(reason, EndReason::RtcpTimeout);
    assert!(started.elapsed() < Duration::from_secs(5));

    // Stop: after the BYE, nothing more arrives.
    p.rtcp_timeout = None;
    let mut handle = session::start(camera, socket, p).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), receiver.recv(&mut buf))
        .await
        .unwrap()
        .unwrap();
    handle.stop();
    assert_eq!(handle.wait().await, EndReason::Stopped);
    // Drain what was in flight, then expect silence.
    while tokio::time::timeout(Duration::from_millis(200), receiver.recv(&mut buf))
        .await
        .is_ok()
    {}
    assert!(
        tokio::time::timeout(Duration::from_millis(800), receiver.recv(&mut buf))
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_own_rtcp_reflected_back_is_not_the_receivers_liveness() {
    // The receiver uses the keys we encrypt with (both directions share them), so our own
    // SRTCP sent back to us authenticates: it must still not keep the stream alive.
    let camera = pattern_camera(320, 240);
    let receiver = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let dest = receiver.local_addr().unwrap();
    let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let ours = socket.local_addr().unwrap();
    let mut p = params(dest, 320, 240, 30, Mode::Passthrough);
    p.rtcp_timeout = Some(Duration::from_millis(1500));
    let started = Instant::now();
    let mut handle = session::start(camera, socket, p).await.unwrap();
    let reflected = Arc::new(AtomicU64::new(0));
    let reflector = {
        let (receiver, reflected) = (receiver.clone(), reflected.clone());
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            while let Ok((n, _)) = receiver.recv_from(&mut buf).await {
                // SRTCP keeps the RTCP header in the clear (RFC 3711 §3.4): PT 200..=206.
                if n >= 8 && (200..=206).contains(&buf[1]) {
                    receiver.send_to(&buf[..n], ours).await.unwrap();
                    reflected.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let reason = tokio::time::timeout(Duration::from_secs(6), handle.wait())
        .await
        .expect("the stream must end on RTCP silence despite its own RTCP reflected back");
    reflector.abort();
    assert_eq!(reason, EndReason::RtcpTimeout);
    assert!(started.elapsed() < Duration::from_secs(5));
    // The reflection did happen (SRs every 500 ms for over a second), and counted for nothing.
    assert!(reflected.load(Ordering::Relaxed) >= 2);
    let stats = handle.stats();
    assert_eq!(stats.stream.rtcp_received, 0);
    assert_eq!(stats.last_rtcp, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtcp_goes_to_its_own_port_when_not_multiplexed() {
    let camera = pattern_camera(320, 240);
    let rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let rtcp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let mut p = params(rtp.local_addr().unwrap(), 320, 240, 30, Mode::Passthrough);
    p.rtcp_destination = Some(rtcp.local_addr().unwrap());
    let mut handle = session::start(camera, socket, p).await.unwrap();
    // SRTCP keeps the RTCP header in the clear (RFC 3711 §3.4): a Sender Report is PT 200.
    let mut buf = [0u8; 2048];
    let n = tokio::time::timeout(Duration::from_secs(5), rtcp.recv(&mut buf))
        .await
        .expect("a Sender Report on the RTCP port")
        .unwrap();
    assert!(n >= 8 && buf[1] == 200, "{:?}", &buf[..n.min(8)]);
    handle.stop();
    assert_eq!(handle.wait().await, EndReason::Stopped);
    // The RTP port got only RTP (payload type 99), no RTCP.
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(200), rtp.recv(&mut buf)).await
    {
        assert!(n > 12 && buf[1] & 0x7f == 99, "{:?}", &buf[..8]);
    }
}

/// What the checking relay saw of a stream on its way to ffmpeg.
#[derive(Debug, Default)]
struct WireCheck {
    packets: u64,
    /// Packets that failed SRTP or RTP parsing.
    bad_packets: u64,
    largest: usize,
    /// Access units (marker bits).
    pictures: u64,
    idrs: u64,
    /// IDR access units whose first packet was not a STAP-A with SPS and PPS.
    idrs_without_parameter_sets: u64,
    first_is_idr: Option<bool>,
    /// RTP timestamps of the access units.
    timestamps: Vec<u32>,
}

/// NAL unit types in an RTP payload (RFC 6184 §5.2): the unit itself, each STAP-A unit, or a
/// FU-A's fragment type.
fn payload_nal_types(payload: &[u8]) -> Vec<u8> {
    match payload.first().map(|b| b & 0x1f) {
        Some(24) => {
            let mut types = Vec::new();
            let mut rest = &payload[1..];
            while rest.len() >= 3 {
                let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                types.push(rest[2] & 0x1f);
                rest = rest.get(2 + len..).unwrap_or_default();
            }
            types
        }
        Some(28) => payload.get(1).map(|b| vec![b & 0x1f]).unwrap_or_default(),
        Some(t) => vec![t],
        None => Vec::new(),
    }
}

/// A UDP relay between the session and ffmpeg that decrypts a copy of every packet and checks
/// it (sizes, IDRs and their parameter sets, timestamps).
async fn checking_relay(to: SocketAddr) -> (SocketAddr, Arc<std::sync::Mutex<WireCheck>>) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let check = Arc::new(std::sync::Mutex::new(WireCheck::default()));
    let c = Arc::clone(&check);
    tokio::spawn(async move {
        let mut srtp = SrtpContext::new(SrtpSuite::AesCm128HmacSha1_80, &KEY, &SALT).unwrap();
        let mut buf = vec![0u8; 65_536];
        let (mut first_packet_ps, mut has_idr, mut at_start) = (false, false, true);
        while let Ok((n, _)) = socket.recv_from(&mut buf).await {
            let wire = &buf[..n];
            let _ = socket.send_to(wire, to).await;
            // RTCP (multiplexed, RFC 5761 §4) passes unchecked.
            if (200..=204).contains(&wire[1]) {
                continue;
            }
            let mut c = c.lock().unwrap();
            let Ok(plain) = srtp.unprotect_rtp(wire) else {
                c.bad_packets += 1;
                continue;
            };
            let Ok(rtp) = RtpPacket::parse(&plain) else {
                c.bad_packets += 1;
                continue;
            };
            let types = payload_nal_types(rtp.payload);
            c.packets += 1;
            c.largest = c.largest.max(n);
            if at_start {
                first_packet_ps = rtp.payload[0] & 0x1f == 24 && types.starts_with(&[7, 8]);
                at_start = false;
            }
            has_idr |= types.contains(&5);
            if rtp.header.marker {
                c.pictures += 1;
                c.timestamps.push(rtp.header.timestamp);
                c.first_is_idr.get_or_insert(has_idr);
                if has_idr {
                    c.idrs += 1;
                    c.idrs_without_parameter_sets += u64::from(!first_packet_ps);
                }
                (has_idr, at_start) = (false, true);
            }
        }
    });
    (addr, check)
}

/// A 1080p RTSP camera (the GStreamer fixture) re-encoded to `width`x`height`@`fps` and sent
/// through the checking relay to ffmpeg, for `seconds`.
async fn transcode_rtsp_1080p_to_ffmpeg(tag: &str, width: u32, height: u32, fps: u32) {
    const MTU: usize = 1378;
    let server = RtspServer::start();
    let hub = rtsp_hub("fixture", server.url.clone());
    let camera = Arc::new(Camera::new(hub, None));
    let dir = temp_dir(tag);
    let (mut ffmpeg, port, out) = ffmpeg_receiver(&dir);
    let ffmpeg_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let (relay, check) = checking_relay(ffmpeg_addr).await;
    wait_until_bound(port).await;
    let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let mut p = params(relay, width, height, fps, Mode::Auto);
    p.mtu = MTU;
    let mut handle = bounded(
        "session start",
        Duration::from_secs(10),
        session::start(camera, socket, p),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let stats = handle.stats();
    handle.stop();
    assert_eq!(handle.wait().await, EndReason::Stopped);
    tokio::time::sleep(Duration::from_millis(300)).await;
    ffmpeg.finish();
    let frames = decoded_frame_bytes(&out);
    let log = std::fs::read_to_string(dir.join("ffmpeg.log")).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    let check = std::mem::take(&mut *check.lock().unwrap());
    println!(
        "1920x1080 RTSP -> {width}x{height}@{fps}: ffmpeg decoded {} pictures; relay: {} \
         pictures, {} IDRs, {} packets, largest {} bytes; latency p50 {:?}",
        frames.len(),
        check.pictures,
        check.idrs,
        check.packets,
        check.largest,
        stats.stream.latency.p50()
    );
    assert!(
        stats.transcoding,
        "a 1080p source does not fit {width}x{height}"
    );
    assert!(
        !log.contains("HMAC mismatch"),
        "ffmpeg rejected our SRTP:\n{log}"
    );
    // Every packet within the MTU (also asserted per packet in the relay), SPS + PPS in a STAP-A
    // before every IDR, and the stream starts on one.
    assert!(check.largest <= MTU, "a packet of {} bytes", check.largest);
    assert_eq!(check.bad_packets, 0);
    assert_eq!(check.first_is_idr, Some(true), "{check:?}");
    assert!(check.idrs >= 1);
    assert_eq!(check.idrs_without_parameter_sets, 0, "{check:?}");
    // ffmpeg decoded what was sent, at the requested size: its output is contiguous from the
    // first picture, but it still holds the last 2 or 3 in its input pipeline when it is
    // stopped mid-stream (same with a Baseline stream, and with `-fps_mode passthrough`), so
    // up to 4 may be missing at the end.
    assert!(
        frames.len() as u64 + 4 >= check.pictures && frames.len() as u64 <= check.pictures,
        "ffmpeg decoded {} of {} pictures\n{log}",
        frames.len(),
        check.pictures
    );
    let picture_bytes = (width * height * 3 / 2) as usize;
    assert!(frames.iter().all(|&b| b == picture_bytes), "{frames:?}");
    // At most the requested rate (on the RTP clock), and not starved: at least a quarter of
    // it even on a loaded 2-core machine.
    let span = check
        .timestamps
        .last()
        .unwrap()
        .wrapping_sub(check.timestamps[0]) as f64
        / 90_000.0;
    let rate = (check.timestamps.len() - 1) as f64 / span;
    assert!(rate <= f64::from(fps) * 1.15, "{rate:.1} fps > {fps}");
    assert!(
        check.pictures as f64 >= 4.0 * f64::from(fps) / 4.0,
        "only {} pictures in 4 s at {fps} fps",
        check.pictures
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_decodes_a_1080p_camera_transcoded_to_720p() {
    transcode_rtsp_1080p_to_ffmpeg("t720", 1280, 720, 30).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_decodes_a_1080p_camera_transcoded_to_240p_at_15fps() {
    transcode_rtsp_1080p_to_ffmpeg("t240", 320, 240, 15).await;
}
