//! Real-peer test: an H.264 clip made by ffmpeg/libx264 is split with `media::h264`, packetized
//! with `media::rtp`, protected with `media::srtp` (AES_CM_128_HMAC_SHA1_80) and sent over UDP on
//! 127.0.0.1 to an ffmpeg SRTP receiver, which must decode at least 90% of the frames at 640x360
//! without an authentication failure. SRTCP Sender Reports go to ffmpeg's RTCP port as well.
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
use media::rtcp::{NtpTimestamp, SenderInfo, SenderReport, sender_report_compound};
use media::rtp::{H264Packetizer, RtpConfig};
use media::srtp::{SrtpContext, SrtpSuite, encode_params};

const WIDTH: u32 = 640;
const HEIGHT: u32 = 360;
const FRAMES: usize = 60;
const SSRC: u32 = 0x5eed_1234;
const MTU: usize = 1378;

#[test]
fn ffmpeg_decodes_our_srtp_h264_stream() {
    let dir = TempDir::new();
    let clip = dir.path().join("clip.h264");
    encode(&clip, "testsrc=size=640x360:rate=30", "2");
    // A different picture sent after the clip, to push the last frames of the clip out of
    // ffmpeg's jitter buffer; its frames match no frame of the clip.
    let tail_clip = dir.path().join("tail.h264");
    encode(&tail_clip, "color=c=blue:size=640x360:rate=30", "0.5");

    let access_units = access_units_of(&clip);
    assert_eq!(access_units.len(), FRAMES, "access units in the clip");
    let tail = access_units_of(&tail_clip);
    let sps = access_units[0]
        .iter()
        .find(|n| nal_type(n) == Some(NalType::SPS))
        .expect("SPS in the first access unit");
    let info = parse_sps(sps).unwrap();
    assert_eq!((info.width, info.height), (WIDTH, HEIGHT));

    // What a local decode of the clip gives, frame by frame.
    let reference = dir.path().join("reference.md5");
    let mut local = Ffmpeg::spawn(
        &[
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-i",
            path(&clip),
        ]
        .into_iter()
        .chain(FRAMEMD5_OUT)
        .chain([path(&reference)])
        .collect::<Vec<_>>(),
        &dir.path().join("reference.log"),
    );
    assert!(
        local
            .wait(Duration::from_secs(30))
            .expect("ffmpeg decode timed out")
            .success()
    );
    let reference = frame_md5s(&reference);
    assert_eq!(reference.len(), FRAMES, "frames in the local decode");

    // SRTP key and the receiver's SDP (no sprop-parameter-sets: the decoder depends on the
    // in-band STAP-A before each IDR).
    let key: Vec<u8> = (0u8..16)
        .map(|i| i.wrapping_mul(37).wrapping_add(11))
        .collect();
    let salt: Vec<u8> = (0u8..14)
        .map(|i| i.wrapping_mul(91).wrapping_add(5))
        .collect();
    let port = free_udp_port_pair();
    let sdp = format!(
        "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=hap-bridge test\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=video {port} RTP/SAVP 99\r\na=rtpmap:99 H264/90000\r\n\
         a=fmtp:99 packetization-mode=1;profile-level-id={}\r\n\
         a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{}\r\n",
        info.profile_level_id(),
        encode_params(&key, &salt).as_str()
    );
    let sdp_path = dir.path().join("stream.sdp");
    fs::write(&sdp_path, sdp).unwrap();

    let received = dir.path().join("received.md5");
    let log = dir.path().join("ffmpeg.log");
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
    let mut srtp = SrtpContext::new(SrtpSuite::AesCm128HmacSha1_80, &key, &salt).unwrap();
    let mut packets = Vec::new();
    for (i, au) in access_units.iter().chain(tail.iter()).enumerate() {
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
    assert!(packetizer.packet_count() > (FRAMES + tail.len()) as u64);

    // Wait until the output stops growing, then stop ffmpeg. (ffmpeg 5.1 takes ~9 s to exit on
    // SIGINT from an RTP input, so it is killed instead; -flush_packets 1 wrote every frame.)
    wait_until_stable(
        &received,
        Duration::from_millis(700),
        Duration::from_secs(15),
    );
    receiver.kill();

    let log_text = fs::read_to_string(&log).unwrap_or_default();
    assert!(
        !log_text.contains("HMAC mismatch"),
        "ffmpeg rejected our SRTP:\n{log_text}"
    );
    assert!(
        log_text.contains("640x360"),
        "ffmpeg did not see 640x360:\n{log_text}"
    );
    let received = frame_md5s(&received);
    let matched = reference.iter().filter(|r| received.contains(r)).count();
    eprintln!(
        "ffmpeg decoded {} frames; {matched} of the {FRAMES} clip frames are bit-exact",
        received.len()
    );
    assert!(
        matched * 10 >= FRAMES * 9,
        "only {matched} of {FRAMES} frames decoded correctly:\n{log_text}"
    );
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
    let deadline = Instant::now() + timeout;
    let mut last = (0, Instant::now());
    while Instant::now() < deadline {
        let len = fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        if len != last.0 {
            last = (len, Instant::now());
        } else if len > 0 && last.1.elapsed() >= quiet {
            return;
        }
        sleep(Duration::from_millis(50));
    }
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

    fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            sleep(Duration::from_millis(20));
        }
        None
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
