//! Live streams end to end: the in-process test pattern through `media::session` (RTP, SRTP,
//! RTCP) over UDP on loopback, received and decoded by ffmpeg, an independent SRTP receiver and
//! H.264 decoder; and the stream lifecycle (stop, RTCP silence).

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use media::camera::Camera;
use media::h264::H264Profile;
use media::hub::{ConnectMode, Hub, HubConfig};
use media::session::{self, EndReason, Mode, SrtpKeys, StreamParams};
use media::source::SourceConfig;
use media::source::test_pattern::TestPatternConfig;
use media::srtp::{SrtpSuite, encode_params};
use tokio::net::UdpSocket;

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

impl Drop for Ffmpeg {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts ffmpeg receiving SRTP on a free loopback port; returns it, the port and the framemd5
/// output path.
fn ffmpeg_receiver(dir: &Path) -> (Ffmpeg, u16, std::path::PathBuf) {
    let port = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    };
    let sdp = format!(
        "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=session test\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=video {port} RTP/SAVP 99\r\na=rtpmap:99 H264/90000\r\na=fmtp:99 packetization-mode=1\r\n\
         a=rtcp-mux\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{}\r\n",
        encode_params(&KEY, &SALT).as_str()
    );
    let sdp_path = dir.join("stream.sdp");
    std::fs::File::create(&sdp_path)
        .unwrap()
        .write_all(sdp.as_bytes())
        .unwrap();
    let out = dir.join("frames.md5");
    let log = std::fs::File::create(dir.join("ffmpeg.log")).unwrap();
    let child = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "info"])
        .args(["-protocol_whitelist", "file,udp,rtp,srtp", "-analyzeduration", "500000"])
        .args(["-threads", "1", "-i"])
        .arg(&sdp_path)
        .args(["-pix_fmt", "yuv420p", "-f", "framemd5", "-flush_packets", "1", "-y"])
        .arg(&out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run ffmpeg ({e}): this test needs ffmpeg on PATH (Debian: apt-get install ffmpeg)"));
    (Ffmpeg(child), port, out)
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
    tokio::time::sleep(Duration::from_millis(800)).await;
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
