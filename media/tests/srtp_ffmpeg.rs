//! Real-peer test: an H.264 clip made by ffmpeg/libx264 is split with `media::h264`, packetized
//! with `media::rtp`, protected with `media::srtp` (AES_CM_128_HMAC_SHA1_80) and sent over UDP on
//! 127.0.0.1 to an ffmpeg SRTP receiver, which must decode at least 90% of the frames at 640x360
//! without an authentication failure. SRTCP Sender Reports go to ffmpeg's RTCP port as well.
//! The other way round, ffmpeg's SRTP/SRTCP output must pass our `unprotect_*`.
//!
//! Needs `ffmpeg` on PATH; without it the test fails with a message saying so.
// Integration tests may unwrap: a panic is a test failure (clippy.toml covers #[test] only).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use media::h264::{AccessUnitSplitter, NalType, annex_b_to_bytes, nal_type, parse_sps};
use media::rtcp::{
    NtpTimestamp, RtcpPacket, SenderInfo, SenderReport, parse_compound, sender_report_compound,
};
use media::rtp::{H264Depacketizer, H264Packetizer, RtpConfig, RtpPacket};
use media::srtp::{SrtpContext, SrtpSuite, encode_params};

const WIDTH: u32 = 640;
const HEIGHT: u32 = 360;
const FRAMES: usize = 60;
const SSRC: u32 = 0x5eed_1234;
const MTU: usize = 1378;

#[test]
fn ffmpeg_decodes_our_srtp_h264_stream() {
    let dir = TempDir::new();
    let clips = Clips::make(dir.path());
    let reference = clips.reference_md5s(dir.path());
    let key = Key::new(11);
    let out = stream_to_ffmpeg(dir.path(), &clips, &key, &key);

    assert!(
        !out.log.contains("HMAC mismatch"),
        "ffmpeg rejected our SRTP:\n{}",
        out.log
    );
    assert!(
        out.log.contains("640x360"),
        "ffmpeg did not see 640x360:\n{}",
        out.log
    );
    let matched = reference.iter().filter(|r| out.frames.contains(r)).count();
    eprintln!(
        "ffmpeg decoded {} frames; {matched} of the {FRAMES} clip frames are bit-exact",
        out.frames.len()
    );
    assert!(
        matched * 10 >= FRAMES * 9,
        "only {matched} of {FRAMES} frames decoded correctly:\n{}",
        out.log
    );
}

/// The check above means something: with a key other than the SDP's, ffmpeg reports "HMAC
/// mismatch" and decodes nothing.
#[test]
fn ffmpeg_rejects_a_wrong_key() {
    let dir = TempDir::new();
    let mut clips = Clips::make(dir.path());
    clips.main.truncate(20);
    let out = stream_to_ffmpeg(dir.path(), &clips, &Key::new(11), &Key::new(12));
    assert!(
        out.log.contains("HMAC mismatch"),
        "no HMAC mismatch reported:\n{}",
        out.log
    );
    assert!(
        out.frames.is_empty(),
        "{} frames decoded with a wrong key",
        out.frames.len()
    );
}

/// ffmpeg as the SRTP sender (`-f rtp -srtp_out_suite ...`, as HAP-python and HAP-NodeJS use it):
/// our `unprotect_rtp` + depacketizer give back the clip's NAL units, and its SRTCP Sender
/// Reports pass `unprotect_rtcp` and parse.
#[test]
fn we_receive_ffmpeg_srtp_and_srtcp() {
    let dir = TempDir::new();
    let clip = dir.path().join("clip.h264");
    encode(&clip, "testsrc=size=640x360:rate=30", "2");
    let sent: Vec<Bytes> = access_units_of(&clip).into_iter().flatten().collect();

    let (rtp_socket, rtcp_socket) = bound_udp_pair();
    let port = rtp_socket.local_addr().unwrap().port();
    let key = Key::new(21);
    let url = format!("srtp://127.0.0.1:{port}?pkt_size={MTU}");
    let params = encode_params(&key.key, &key.salt);
    let log = dir.path().join("sender.log");
    let mut sender = Ffmpeg::spawn(
        &[
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-re",
            "-framerate",
            "30",
            "-i",
            path(&clip),
            "-c:v",
            "copy",
            "-f",
            "rtp",
            "-srtp_out_suite",
            "AES_CM_128_HMAC_SHA1_80",
            "-srtp_out_params",
            params.as_str(),
            &url,
        ],
        &log,
    );

    let mut ctx = SrtpContext::new(SrtpSuite::AesCm128HmacSha1_80, &key.key, &key.salt).unwrap();
    let mut depacketizer = H264Depacketizer::new();
    let mut received: Vec<Bytes> = Vec::new();
    let mut sender_reports = Vec::new();
    let mut rtp_ssrc = None;
    let mut max_len = 0;
    let mut buf = vec![0u8; 2048];
    rtp_socket.set_nonblocking(true).unwrap();
    rtcp_socket.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut exited_at: Option<Instant> = None;
    while Instant::now() < deadline {
        let mut idle = true;
        if let Ok(n) = rtp_socket.recv(&mut buf) {
            idle = false;
            max_len = max_len.max(n);
            let plain = ctx.unprotect_rtp(&buf[..n]).unwrap();
            let packet = RtpPacket::parse(&plain).unwrap();
            rtp_ssrc = Some(packet.header.ssrc);
            if let Some(au) = depacketizer.push(&packet).unwrap() {
                received.extend(au);
            }
        }
        if let Ok(n) = rtcp_socket.recv(&mut buf) {
            idle = false;
            let plain = ctx.unprotect_rtcp(&buf[..n]).unwrap();
            for p in parse_compound(&plain).unwrap() {
                if let RtcpPacket::SenderReport(sr) = p {
                    sender_reports.push(sr);
                }
            }
        }
        if idle {
            if exited_at.is_none() && sender.wait(Duration::ZERO).is_some() {
                exited_at = Some(Instant::now());
            }
            if exited_at.is_some_and(|t| t.elapsed() > Duration::from_millis(300)) {
                break;
            }
            sleep(Duration::from_millis(2));
        }
    }
    sender.kill();

    assert_eq!(depacketizer.gaps(), 0, "packets lost on loopback");
    assert_eq!(received, sent, "NAL units after SRTP + RTP round trip");
    assert!(
        !sender_reports.is_empty(),
        "no SRTCP Sender Report from ffmpeg"
    );
    assert!(sender_reports.iter().all(|sr| Some(sr.ssrc) == rtp_ssrc));
    eprintln!(
        "received {} NAL units and {} sender reports from ffmpeg; largest SRTP packet {max_len} \
         bytes with pkt_size={MTU}",
        received.len(),
        sender_reports.len()
    );
    // ffmpeg's pkt_size bounds the whole SRTP packet (its srtp protocol lowers the RTP packet size
    // by the SRTP overhead): HAP-python/HAP-NodeJS pass the negotiated MTU there.
    assert!(max_len <= MTU, "ffmpeg sent {max_len} bytes");
}

/// The clip under test and a tail clip of another picture, sent after it to push the last frames
/// of the clip out of ffmpeg's jitter buffer (its frames match no frame of the clip).
struct Clips {
    clip: PathBuf,
    main: Vec<Vec<Bytes>>,
    tail: Vec<Vec<Bytes>>,
    profile_level_id: String,
}

impl Clips {
    fn make(dir: &Path) -> Self {
        let clip = dir.join("clip.h264");
        encode(&clip, "testsrc=size=640x360:rate=30", "2");
        let tail_clip = dir.join("tail.h264");
        encode(&tail_clip, "color=c=blue:size=640x360:rate=30", "0.5");
        let main = access_units_of(&clip);
        assert_eq!(main.len(), FRAMES, "access units in the clip");
        let sps = main[0]
            .iter()
            .find(|n| nal_type(n) == Some(NalType::SPS))
            .expect("SPS in the first access unit");
        let info = parse_sps(sps).unwrap();
        assert_eq!((info.width, info.height), (WIDTH, HEIGHT));
        Self {
            clip,
            main,
            tail: access_units_of(&tail_clip),
            profile_level_id: info.profile_level_id(),
        }
    }

    /// What a local decode of the clip gives, frame by frame.
    fn reference_md5s(&self, dir: &Path) -> Vec<String> {
        let reference = dir.join("reference.md5");
        let mut local = Ffmpeg::spawn(
            &[
                "-hide_banner",
                "-nostdin",
                "-loglevel",
                "error",
                "-i",
                path(&self.clip),
            ]
            .into_iter()
            .chain(FRAMEMD5_OUT)
            .chain([path(&reference)])
            .collect::<Vec<_>>(),
            &dir.join("reference.log"),
        );
        let status = local
            .wait(Duration::from_secs(30))
            .expect("ffmpeg decode timed out");
        assert!(status.success());
        let md5s = frame_md5s(&reference);
        assert_eq!(md5s.len(), FRAMES, "frames in the local decode");
        md5s
    }
}

struct Key {
    key: Vec<u8>,
    salt: Vec<u8>,
}

impl Key {
    fn new(seed: u8) -> Self {
        Self {
            key: (0u8..16)
                .map(|i| i.wrapping_mul(37).wrapping_add(seed))
                .collect(),
            salt: (0u8..14)
                .map(|i| i.wrapping_mul(91).wrapping_add(seed))
                .collect(),
        }
    }
}

struct Received {
    log: String,
    frames: Vec<String>,
}

/// Packetizes and protects `clips` with `send_key` and sends them to an ffmpeg receiver whose
/// SDP announces `sdp_key`; returns ffmpeg's log and the md5 of each frame it decoded.
fn stream_to_ffmpeg(dir: &Path, clips: &Clips, sdp_key: &Key, send_key: &Key) -> Received {
    // No sprop-parameter-sets: the decoder depends on the in-band STAP-A before each IDR.
    let port = free_udp_port_pair();
    let sdp = format!(
        "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=hap-bridge test\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=video {port} RTP/SAVP 99\r\na=rtpmap:99 H264/90000\r\n\
         a=fmtp:99 packetization-mode=1;profile-level-id={}\r\n\
         a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{}\r\n",
        clips.profile_level_id,
        encode_params(&sdp_key.key, &sdp_key.salt).as_str()
    );
    let sdp_path = dir.join("stream.sdp");
    fs::write(&sdp_path, sdp).unwrap();

    let received = dir.join("received.md5");
    let log = dir.join("ffmpeg.log");
    let mut receiver = Ffmpeg::spawn(
        &[
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "info",
            "-protocol_whitelist",
            "file,udp,rtp,srtp",
            // Probe briefly: the stream is complete well before the default 5 s.
            "-analyzeduration",
            "500000",
            // No frame-threading delay: every frame is written as soon as it is decoded.
            "-threads",
            "1",
            "-i",
            path(&sdp_path),
        ]
        .into_iter()
        .chain(FRAMEMD5_OUT)
        .chain(["-flush_packets", "1", path(&received)])
        .collect::<Vec<_>>(),
        &log,
    );
    // ffmpeg opens its sockets well within a second.
    sleep(Duration::from_millis(1000));

    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let rtp_addr = ("127.0.0.1", port);
    let rtcp_addr = ("127.0.0.1", port + 1);
    let mut packetizer = H264Packetizer::new(RtpConfig {
        ssrc: SSRC,
        payload_type: 99,
        mtu: MTU,
        initial_sequence: 65_500, // wraps during the clip
        initial_timestamp: 0x9000_0000,
    })
    .unwrap();
    let mut srtp = SrtpContext::new(
        SrtpSuite::AesCm128HmacSha1_80,
        &send_key.key,
        &send_key.salt,
    )
    .unwrap();
    let mut packets = Vec::new();
    for (i, au) in clips.main.iter().chain(clips.tail.iter()).enumerate() {
        packets.clear();
        let ts = u32::try_from(i).unwrap() * 3000;
        packetizer.packetize(au, ts, &mut packets).unwrap();
        for p in &packets {
            assert!(p.len() <= MTU);
            let protected = srtp.protect_rtp(p).unwrap();
            assert_eq!(protected.len(), p.len() + 10);
            socket.send_to(&protected, rtp_addr).unwrap();
        }
        if i % 15 == 0 {
            let mut rtcp = Vec::new();
            sender_report_compound(&sender_report(&packetizer), "hap-bridge-test", &mut rtcp);
            socket
                .send_to(&srtp.protect_rtcp(&rtcp).unwrap(), rtcp_addr)
                .unwrap();
        }
        sleep(Duration::from_millis(5));
    }
    assert!(packetizer.packet_count() > (clips.main.len() + clips.tail.len()) as u64);

    // Wait until the output stops growing, then stop ffmpeg. (ffmpeg 5.1 takes ~9 s to exit on
    // SIGINT from an RTP input, so it is killed instead; -flush_packets 1 wrote every frame.)
    wait_until_stable(
        &received,
        Duration::from_millis(700),
        Duration::from_secs(15),
    );
    receiver.kill();
    Received {
        log: fs::read_to_string(&log).unwrap_or_default(),
        frames: frame_md5s(&received),
    }
}

/// framemd5 output options: raw 4:2:0 frames of 640x360 (the size appears in each line).
const FRAMEMD5_OUT: [&str; 5] = ["-pix_fmt", "yuv420p", "-f", "framemd5", "-y"];

fn sender_report(p: &H264Packetizer) -> SenderReport {
    SenderReport {
        ssrc: SSRC,
        info: SenderInfo {
            ntp: NtpTimestamp::from_unix(SystemTime::now().duration_since(UNIX_EPOCH).unwrap()),
            rtp_timestamp: p.last_rtp_timestamp(),
            packet_count: u32::try_from(p.packet_count()).unwrap(),
            octet_count: u32::try_from(p.payload_octets()).unwrap(),
        },
        reports: Vec::new(),
    }
}

/// The (size, md5) of each video frame line of a framemd5 file; sizes must be 640x360 4:2:0.
fn frame_md5s(file: &Path) -> Vec<String> {
    let text = fs::read_to_string(file).unwrap_or_default();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').map(str::trim).collect();
            (f.len() == 6).then(|| {
                assert_eq!(
                    f[4],
                    (WIDTH * HEIGHT * 3 / 2).to_string(),
                    "frame size in {l}"
                );
                f[5].to_owned()
            })
        })
        .collect()
}

/// Splits an Annex B file into access units with `media::h264`.
fn access_units_of(clip: &Path) -> Vec<Vec<Bytes>> {
    let stream = Bytes::from(fs::read(clip).unwrap());
    let mut splitter = AccessUnitSplitter::new();
    let mut out = Vec::new();
    for nal in annex_b_to_bytes(&stream) {
        out.extend(splitter.push(nal));
    }
    out.extend(splitter.flush());
    out
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Encodes `seconds` of a lavfi source as Constrained Baseline H.264 (GOP 30, no B-frames);
/// fails the test clearly when ffmpeg is missing.
fn encode(out: &Path, source: &str, seconds: &str) {
    let mut enc = Ffmpeg::spawn(
        &[
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            source,
            "-t",
            seconds,
            "-pix_fmt",
            "yuv420p",
            "-c:v",
            "libx264",
            "-profile:v",
            "baseline",
            "-bf",
            "0",
            "-g",
            "30",
            "-f",
            "h264",
            "-y",
            path(out),
        ],
        &out.with_extension("log"),
    );
    let status = enc
        .wait(Duration::from_secs(60))
        .expect("ffmpeg encoder timed out");
    assert!(status.success(), "ffmpeg failed to encode {source}");
}

/// Waits until the file at `path` has not grown for `quiet`, or `timeout` passed.
fn wait_until_stable(path: &Path, quiet: Duration, timeout: Duration) {
    let start = Instant::now();
    let deadline = start + timeout;
    let mut last = (0, Instant::now());
    while Instant::now() < deadline {
        let len = fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        if len != last.0 {
            last = (len, Instant::now());
        } else if last.1.elapsed() >= quiet && (len > 0 || start.elapsed() >= quiet * 3) {
            return;
        }
        sleep(Duration::from_millis(50));
    }
}

/// Two sockets on 127.0.0.1 ports p (even) and p + 1, for receiving RTP and RTCP.
fn bound_udp_pair() -> (UdpSocket, UdpSocket) {
    for _ in 0..50 {
        let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = rtp.local_addr().unwrap().port();
        if port.is_multiple_of(2)
            && let Ok(rtcp) = UdpSocket::bind(("127.0.0.1", port + 1))
        {
            return (rtp, rtcp);
        }
    }
    panic!("no free UDP port pair on 127.0.0.1");
}

/// A UDP port p on 127.0.0.1 with p + 1 also free (RTP + RTCP), picked by the OS.
fn free_udp_port_pair() -> u16 {
    for _ in 0..50 {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = s.local_addr().unwrap().port();
        if port.is_multiple_of(2)
            && port < u16::MAX
            && UdpSocket::bind(("127.0.0.1", port + 1)).is_ok()
        {
            return port;
        }
    }
    panic!("no free UDP port pair on 127.0.0.1");
}

/// An ffmpeg child process that is always killed when dropped.
struct Ffmpeg {
    child: Child,
}

impl Ffmpeg {
    fn spawn(args: &[&str], log: &Path) -> Self {
        let log = fs::File::create(log).unwrap();
        let child = Command::new("ffmpeg")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run ffmpeg ({e}): this test needs ffmpeg on PATH \
                     (Debian: apt-get install ffmpeg)"
                )
            });
        Self { child }
    }

    /// Waits up to `timeout` for the process to exit (`Duration::ZERO`: just checks).
    fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Ffmpeg {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir =
            std::env::temp_dir().join(format!("media-srtp-ffmpeg-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
