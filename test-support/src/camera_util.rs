//! A HomeKit controller's side of camera streaming (HAP §7), for the camera tests: find the
//! stream services, write Setup Endpoints and Selected RTP Stream Configuration, receive the
//! SRTP on a UDP socket (counting packets) or hand it to ffmpeg, and keep the stream alive with
//! SRTCP receiver reports as iOS does.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine as _;
use hap_proto::camera::{
    EndpointAddress, H264Level, H264Profile, RtpParams, SelectedStreamConfig, SelectedVideo,
    SessionCommand, SetupEndpointsRequest, SetupEndpointsResponse, SrtpCryptoSuite, SrtpParams,
    StreamingStatus, VideoAttributes, VideoCodecType, decode_streaming_status,
};
use media::rtcp::ReceiverReport;
use media::srtp::{SrtpContext, SrtpSuite};
use serde_json::{Value, json};

use crate::controller::Conn;

/// The SRTP master key (AES_CM_128) the helpers set up streams with.
pub const KEY: [u8; 16] = *b"e2e-srtp-key-16b";
/// The SRTP master salt that goes with [`KEY`].
pub const SALT: [u8; 14] = *b"e2e-salt-14byt";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64(v: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(v.as_str().unwrap_or_default())
        .unwrap()
}

/// The iids of one Camera RTP Stream Management service (`110`).
#[derive(Clone, Copy, Debug)]
pub struct StreamService {
    /// The camera accessory.
    pub aid: u64,
    /// Selected RTP Stream Configuration (`117`).
    pub selected: u64,
    /// Setup Endpoints (`118`).
    pub setup: u64,
    /// Streaming Status (`120`).
    pub status: u64,
    /// Active (`B0`).
    pub active: u64,
}

/// The stream services of accessory `aid`, in order.
pub fn stream_services(c: &mut Conn, aid: u64) -> Vec<StreamService> {
    let (code, db) = c.json("GET", "/accessories", None);
    assert_eq!(code, 200);
    let acc = db["accessories"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["aid"] == aid)
        .expect("camera accessory");
    acc["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["type"] == "110")
        .map(|s| {
            let iid = |t: &str| {
                s["characteristics"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|c| c["type"] == t)
                    .and_then(|c| c["iid"].as_u64())
                    .unwrap_or_else(|| panic!("characteristic {t} in {s}"))
            };
            StreamService {
                aid,
                selected: iid("117"),
                setup: iid("118"),
                status: iid("120"),
                active: iid("B0"),
            }
        })
        .collect()
}

/// Writes a TLV characteristic (base64 in JSON); the HTTP status and body.
pub fn write_tlv(c: &mut Conn, aid: u64, iid: u64, tlv: &[u8]) -> (u16, Value) {
    c.json(
        "PUT",
        "/characteristics",
        Some(&json!({"characteristics": [{"aid": aid, "iid": iid, "value": b64(tlv)}]})),
    )
}

/// Reads a TLV characteristic (expecting 200), base64-decoded.
pub fn read_tlv(c: &mut Conn, aid: u64, iid: u64) -> Vec<u8> {
    let (code, body) = c.json("GET", &format!("/characteristics?id={aid}.{iid}"), None);
    assert_eq!(code, 200, "{body}");
    unb64(&body["characteristics"][0]["value"])
}

/// Switches a stream service on or off (Active, `B0`), expecting 204.
pub fn set_active(c: &mut Conn, s: &StreamService, on: u8) {
    let (code, body) = c.json(
        "PUT",
        "/characteristics",
        Some(&json!({"characteristics": [{"aid": s.aid, "iid": s.active, "value": on}]})),
    );
    assert_eq!(code, 204, "{body}");
}

/// Streaming Status (`120`) of a service.
pub fn streaming_status(c: &mut Conn, s: &StreamService) -> StreamingStatus {
    decode_streaming_status(&read_tlv(c, s.aid, s.status)).unwrap()
}

/// Writes Setup Endpoints (we receive video on `video_port`) and reads the answer back, as
/// iOS does (HAP §7.1 step 2).
pub fn setup_endpoints(
    c: &mut Conn,
    s: &StreamService,
    session_id: [u8; 16],
    video_port: u16,
) -> SetupEndpointsResponse {
    let dest = SocketAddr::from(([127, 0, 0, 1], video_port));
    setup_endpoints_with(c, s, session_id, dest, &KEY, &SALT)
}

/// [`setup_endpoints`] receiving at `dest` with these AES_CM_128 SRTP keys.
pub fn setup_endpoints_with(
    c: &mut Conn,
    s: &StreamService,
    session_id: [u8; 16],
    dest: SocketAddr,
    key: &[u8],
    salt: &[u8],
) -> SetupEndpointsResponse {
    write_setup_endpoints(c, s, &setup_endpoints_request(session_id, dest, key, salt));
    SetupEndpointsResponse::decode(&read_tlv(c, s.aid, s.setup)).unwrap()
}

/// A Setup Endpoints request: we receive at `dest` with these AES_CM_128 SRTP keys.
pub fn setup_endpoints_request(
    session_id: [u8; 16],
    dest: SocketAddr,
    key: &[u8],
    salt: &[u8],
) -> SetupEndpointsRequest {
    let srtp = SrtpParams {
        suite: SrtpCryptoSuite::AES_CM_128_HMAC_SHA1_80,
        key: key.to_vec(),
        salt: salt.to_vec(),
    };
    SetupEndpointsRequest {
        session_id,
        controller: EndpointAddress {
            ip: dest.ip(),
            video_port: dest.port(),
            audio_port: dest.port().wrapping_add(2),
        },
        video_srtp: srtp.clone(),
        audio_srtp: srtp,
    }
}

/// Writes a Setup Endpoints request (expecting 204).
pub fn write_setup_endpoints(c: &mut Conn, s: &StreamService, request: &SetupEndpointsRequest) {
    let (code, body) = write_tlv(c, s.aid, s.setup, &request.encode());
    assert_eq!(code, 204, "Setup Endpoints write: {body}");
}

/// A Start (or Reconfigure) for H.264 `width`×`height`@`fps` at `kbps`, PT 99, RTCP every 0.5 s.
pub fn selected(
    session_id: [u8; 16],
    command: SessionCommand,
    (width, height, fps): (u16, u16, u8),
    kbps: u16,
) -> SelectedStreamConfig {
    let start = command == SessionCommand::START;
    SelectedStreamConfig {
        session_id,
        command,
        video: Some(SelectedVideo {
            codec: start.then_some(VideoCodecType::H264),
            profile: start.then_some(H264Profile::HIGH),
            level: start.then_some(H264Level::L4_0),
            packetization_mode: start.then_some(0),
            attributes: VideoAttributes { width, height, fps },
            rtp: RtpParams {
                payload_type: 99,
                ssrc: 0x00c0_ffee,
                max_bitrate_kbps: kbps,
                min_rtcp_interval: if start { 0.5 } else { 0.0 },
                max_mtu: None,
                comfort_noise_payload_type: None,
            },
        }),
        audio: None,
    }
}

/// A session-control-only write (End, Suspend, Resume).
pub fn command(session_id: [u8; 16], command: SessionCommand) -> SelectedStreamConfig {
    SelectedStreamConfig {
        session_id,
        command,
        video: None,
        audio: None,
    }
}

/// Writes Selected RTP Stream Configuration; the HTTP status and body.
pub fn select(c: &mut Conn, s: &StreamService, cfg: &SelectedStreamConfig) -> (u16, Value) {
    write_tlv(c, s.aid, s.selected, &cfg.encode())
}

/// The accessory's RTCP address from its Setup Endpoints answer.
pub fn accessory_addr(resp: &SetupEndpointsResponse) -> SocketAddr {
    let a = resp.accessory.expect("accessory address");
    SocketAddr::new(a.ip, a.video_port)
}

/// A UDP socket that counts what arrives (SRTP packets of one stream).
pub struct Receiver {
    /// The local UDP port.
    pub port: u16,
    /// The local address.
    pub addr: SocketAddr,
    packets: Arc<AtomicU64>,
    frames: Arc<AtomicU64>,
    last: Arc<Mutex<Option<Instant>>>,
    stop: Arc<AtomicBool>,
}

impl Receiver {
    /// A receiver on 127.0.0.1, port chosen by the OS.
    pub fn start() -> Self {
        Self::start_on("127.0.0.1:0")
    }

    /// A receiver on `addr` (e.g. `[::1]:0`).
    pub fn start_on(addr: &str) -> Self {
        let socket = UdpSocket::bind(addr).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let port = addr.port();
        let packets = Arc::new(AtomicU64::new(0));
        let frames = Arc::new(AtomicU64::new(0));
        let last = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, f, l, s) = (packets.clone(), frames.clone(), last.clone(), stop.clone());
        thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !s.load(Ordering::Relaxed) {
                if let Ok(n) = socket.recv(&mut buf) {
                    // RTP only (RTCP shares the port: payload types 200-204 in the 2nd byte).
                    if n > 12 && !(200..=204).contains(&buf[1]) {
                        p.fetch_add(1, Ordering::Relaxed);
                        // The marker bit ends a picture (RFC 6184 §5.1); SRTP leaves the
                        // header in clear.
                        if buf[1] & 0x80 != 0 {
                            f.fetch_add(1, Ordering::Relaxed);
                        }
                        *l.lock().unwrap() = Some(Instant::now());
                    }
                }
            }
        });
        Self {
            port,
            addr,
            packets,
            frames,
            last,
            stop,
        }
    }

    /// RTP packets received so far.
    pub fn packets(&self) -> u64 {
        self.packets.load(Ordering::Relaxed)
    }

    /// Pictures received so far (RTP packets with the marker bit).
    pub fn frames(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }

    /// When the last RTP packet arrived.
    pub fn last_packet(&self) -> Option<Instant> {
        *self.last.lock().unwrap()
    }

    /// Waits until packets arrive; false after `timeout`.
    pub fn wait_for_packets(&self, n: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.packets() >= n {
                return true;
            }
            thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Waits until nothing has arrived for `quiet`; returns when the last packet came, or
    /// `None` if packets still flow at `timeout`.
    pub fn wait_for_silence(&self, quiet: Duration, timeout: Duration) -> Option<Instant> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let last = self.last_packet();
            if last.is_none_or(|t| t.elapsed() >= quiet) {
                return last;
            }
            thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Sends SRTCP receiver reports to the accessory every 0.5 s, like iOS (hap-reference §7.9).
pub struct RtcpPinger {
    stop: Arc<AtomicBool>,
}

impl RtcpPinger {
    /// Pings `to` with [`KEY`] and [`SALT`].
    pub fn start(to: SocketAddr) -> Self {
        Self::start_with(to, &KEY, &SALT)
    }

    /// Pings with these AES_CM_128 SRTP keys.
    pub fn start_with(to: SocketAddr, key: &[u8], salt: &[u8]) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let mut ctx = SrtpContext::new(SrtpSuite::AesCm128HmacSha1_80, key, salt).unwrap();
        thread::spawn(move || {
            let local = if to.is_ipv6() {
                "[::1]:0"
            } else {
                "127.0.0.1:0"
            };
            let socket = UdpSocket::bind(local).unwrap();
            while !s.load(Ordering::Relaxed) {
                let mut rr = Vec::new();
                ReceiverReport {
                    ssrc: 0x00c0_ffee,
                    reports: Vec::new(),
                }
                .write(&mut rr);
                let packet = ctx.protect_rtcp(&rr).unwrap();
                let _ = socket.send_to(&packet, to);
                thread::sleep(Duration::from_millis(500));
            }
        });
        Self { stop }
    }
}

impl Drop for RtcpPinger {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// ffmpeg receiving our SRTP (an independent SRTP receiver and H.264 decoder); its `showinfo`
/// filter logs the size of every decoded picture (the filter graph is rebuilt when the size
/// changes, so a reconfigured stream shows its new size).
pub struct Ffmpeg {
    child: Child,
    /// The UDP port ffmpeg receives on (from the SDP file).
    pub port: u16,
    log: PathBuf,
}

impl Ffmpeg {
    /// Starts ffmpeg on a free port with [`KEY`] and [`SALT`], its SDP file and log in `dir`.
    pub fn start(dir: &Path) -> Self {
        let (port, sdp_path) = crate::srtp_sdp::write(dir, &KEY, &SALT);
        let log = dir.join("ffmpeg.log");
        let child = Command::new("ffmpeg")
            .args(["-hide_banner", "-nostdin", "-loglevel", "info"])
            .args([
                "-protocol_whitelist",
                "file,udp,rtp,srtp",
                "-analyzeduration",
                "500000",
            ])
            .args(["-threads", "1", "-i"])
            .arg(&sdp_path)
            .args(["-vf", "showinfo", "-f", "null", "-"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run ffmpeg ({e}): apt-get install ffmpeg"));
        Self { child, port, log }
    }

    /// The sizes of the pictures decoded so far, in order.
    pub fn frame_sizes(&self) -> Vec<(u32, u32)> {
        self.log()
            .lines()
            .filter(|l| l.contains("showinfo") && l.contains(" n:"))
            .filter_map(|l| {
                let s = l.split(" s:").nth(1)?.split_whitespace().next()?;
                let (w, h) = s.split_once('x')?;
                Some((w.parse().ok()?, h.parse().ok()?))
            })
            .collect()
    }

    /// Pictures of `size` decoded so far.
    pub fn count(&self, size: (u32, u32)) -> usize {
        self.frame_sizes().iter().filter(|s| **s == size).count()
    }

    /// Waits until `n` pictures of `size` were decoded; false after `timeout`.
    pub fn wait_for(&self, size: (u32, u32), n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.count(size) >= n {
                return true;
            }
            thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// Everything ffmpeg logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Ffmpeg {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Width and height of a JPEG, decoded by ffprobe.
pub fn jpeg_size(dir: &Path, jpeg: &[u8]) -> (u32, u32) {
    let path = dir.join("snapshot.jpg");
    std::fs::write(&path, jpeg).unwrap();
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=width,height,codec_name",
            "-of",
            "csv=p=0",
        ])
        .arg(&path)
        .output()
        .expect("ffprobe (apt-get install ffmpeg)");
    let text = String::from_utf8_lossy(&out.stdout);
    let fields: Vec<&str> = text.trim().split(',').collect();
    assert_eq!(
        fields.first(),
        Some(&"mjpeg"),
        "not a JPEG: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (fields[1].parse().unwrap(), fields[2].parse().unwrap())
}
