//! A minimal live RTSP server (RFC 2326, RTP interleaved on the TCP connection, §10.12) that
//! plays the clip in a loop at 30 fps on its own clock, like one camera encoder shared by every
//! client: a client joins at the next picture, mid-GOP. It records when each picture's last
//! packet was written to the clients' sockets: the start of the per-frame latency measurement.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use media::h264::{parse_sps, sprop_parameter_sets};
use media::rtp::{H264Packetizer, RtpConfig};

use crate::clip::{self, Clip};

/// The server; stops its threads on drop.
pub(crate) struct RtspServer {
    pub(crate) url: String,
    shared: Arc<Shared>,
}

struct Shared {
    /// Send time of global picture `g` (clip picture `g % clip::FRAMES`).
    sent: Mutex<Vec<Instant>>,
    clients: Mutex<Vec<Client>>,
    /// Next RTP sequence number and timestamp (for RTP-Info).
    next: Mutex<(u16, u32)>,
    stop: AtomicBool,
}

struct Client {
    id: u64,
    stream: TcpStream,
    channel: u8,
}

impl RtspServer {
    pub(crate) fn start(clip: Clip) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let url = format!("rtsp://127.0.0.1:{port}/bench");
        let shared = Arc::new(Shared {
            sent: Mutex::new(Vec::new()),
            clients: Mutex::new(Vec::new()),
            next: Mutex::new((0, 0)),
            stop: AtomicBool::new(false),
        });
        let sdp = Arc::new(sdp(&clip));
        let s = Arc::clone(&shared);
        std::thread::spawn(move || broadcast(&clip, &s));
        let s = Arc::clone(&shared);
        let base = url.clone();
        std::thread::spawn(move || {
            let mut next_id = 1;
            for conn in listener.incoming() {
                if s.stop.load(Ordering::Acquire) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (s, sdp, base) = (Arc::clone(&s), Arc::clone(&sdp), base.clone());
                let id = next_id;
                next_id += 1;
                std::thread::spawn(move || {
                    let _ = serve(conn, id, &s, &sdp, &base);
                    s.clients.lock().unwrap().retain(|c| c.id != id);
                });
            }
        });
        Self { url, shared }
    }

    /// When the picture with clip index `index` that arrived at `at` was sent: the newest
    /// send of that index not after `at` (+ a little slack: the send time is taken just after
    /// the write returns, and a loopback passthrough can deliver before that). Call it once the
    /// run is over, when every send is recorded.
    pub(crate) fn sent_time(&self, index: u32, at: Instant) -> Option<Instant> {
        let sent = self.shared.sent.lock().unwrap();
        let frames = u64::from(clip::FRAMES);
        let last = (sent.len() as u64).checked_sub(1)?;
        let mut g = last.checked_sub((last + frames - u64::from(index)) % frames)?;
        loop {
            let t = sent[g as usize];
            if t <= at + SEND_SLACK {
                return Some(t);
            }
            g = g.checked_sub(frames)?;
        }
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        for c in self.shared.clients.lock().unwrap().drain(..) {
            let _ = c.stream.shutdown(std::net::Shutdown::Both);
        }
    }
}

fn sdp(clip: &Clip) -> String {
    let profile = parse_sps(&clip.sps).unwrap().profile_level_id();
    format!(
        "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=latency bench\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n\
         a=control:*\r\na=range:npt=0-\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n\
         a=fmtp:96 packetization-mode=1;profile-level-id={profile};sprop-parameter-sets={}\r\n\
         a=framerate:30\r\na=control:track1\r\n",
        sprop_parameter_sets(&clip.sps, &clip.pps)
    )
}

/// Plays the clip for ever at 30 fps on a fixed schedule, to every playing client.
fn broadcast(clip: &Clip, shared: &Shared) {
    let mut packetizer = H264Packetizer::new(RtpConfig {
        ssrc: 0x5EED_0001,
        payload_type: 96,
        mtu: 1400,
        initial_sequence: 1000,
        initial_timestamp: 0,
    })
    .unwrap();
    packetizer.set_parameter_sets(clip.sps.clone(), clip.pps.clone());
    let interval = Duration::from_secs(1) / clip::FPS;
    let start = Instant::now();
    let mut packets: Vec<Bytes> = Vec::new();
    let mut buf = Vec::new();
    let mut g: u64 = 0;
    while !shared.stop.load(Ordering::Acquire) {
        let due = start + interval * g as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let frame = &clip.frames[(g % u64::from(clip::FRAMES)) as usize];
        let ts = (g * 90_000 / u64::from(clip::FPS)) as u32;
        packets.clear();
        packetizer.packetize(&frame.nals, ts, &mut packets).unwrap();
        let mut clients = shared.clients.lock().unwrap();
        let mut sent_at = None;
        clients.retain_mut(|c| {
            buf.clear();
            for p in &packets {
                buf.extend_from_slice(&[b'$', c.channel]);
                buf.extend_from_slice(&(p.len() as u16).to_be_bytes());
                buf.extend_from_slice(p);
            }
            let ok = c.stream.write_all(&buf).is_ok();
            sent_at = Some(Instant::now());
            ok
        });
        drop(clients);
        shared
            .sent
            .lock()
            .unwrap()
            .push(sent_at.unwrap_or_else(Instant::now));
        *shared.next.lock().unwrap() = (
            packetizer.next_sequence(),
            ((g + 1) * 90_000 / u64::from(clip::FPS)) as u32,
        );
        g += 1;
    }
}

/// One RTSP connection: requests until TEARDOWN or EOF; interleaved data from the client
/// (RTCP receiver reports) is read and ignored.
fn serve(conn: TcpStream, id: u64, shared: &Shared, sdp: &str, base: &str) -> std::io::Result<()> {
    conn.set_nodelay(true)?;
    let mut writer = conn.try_clone()?;
    let mut reader = BufReader::new(conn);
    let mut channel = 0u8;
    let session = format!("{:08X}", 0x5E55_0000 + id);
    loop {
        // Interleaved frame from the client?
        let first = reader.fill_buf()?.first().copied();
        match first {
            None => return Ok(()),
            Some(b'$') => {
                let mut head = [0u8; 4];
                reader.read_exact(&mut head)?;
                let len = u16::from_be_bytes([head[2], head[3]]) as usize;
                let mut skip = vec![0u8; len];
                reader.read_exact(&mut skip)?;
                continue;
            }
            Some(_) => {}
        }
        let mut request = Vec::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let line = line.trim_end().to_owned();
            if line.is_empty() {
                break;
            }
            request.push(line);
        }
        let header = |name: &str| {
            request.iter().skip(1).find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_owned())
            })
        };
        if let Some(len) = header("Content-Length").and_then(|v| v.parse::<usize>().ok()) {
            let mut body = vec![0u8; len];
            reader.read_exact(&mut body)?;
        }
        let method = request
            .first()
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or("")
            .to_owned();
        let cseq = header("CSeq").unwrap_or_default();
        let mut extra = String::new();
        let mut body = String::new();
        let mut status = "200 OK";
        match method.as_str() {
            "OPTIONS" => {
                extra =
                    "Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER\r\n".into();
            }
            "DESCRIBE" => {
                extra = format!("Content-Base: {base}/\r\nContent-Type: application/sdp\r\n");
                body = sdp.to_owned();
            }
            "SETUP" => {
                let transport = header("Transport").unwrap_or_default();
                if let Some(ch) = transport
                    .split(';')
                    .find_map(|p| p.trim().strip_prefix("interleaved="))
                    .and_then(|r| r.split('-').next())
                    .and_then(|c| c.parse().ok())
                {
                    channel = ch;
                    extra = format!(
                        "Transport: RTP/AVP/TCP;unicast;interleaved={channel}-{}\r\n\
                         Session: {session};timeout=60\r\n",
                        channel + 1
                    );
                } else {
                    status = "461 Unsupported Transport";
                }
            }
            "PLAY" => {
                let mut clients = shared.clients.lock().unwrap();
                let (seq, rtptime) = *shared.next.lock().unwrap();
                extra = format!(
                    "Session: {session}\r\nRange: npt=0.000-\r\n\
                     RTP-Info: url={base}/track1;seq={seq};rtptime={rtptime}\r\n"
                );
                // Registered under the lock, after the reply, so the client's first picture
                // matches RTP-Info.
                respond(&mut writer, status, &cseq, &extra, &body)?;
                clients.push(Client {
                    id,
                    stream: writer.try_clone()?,
                    channel,
                });
                continue;
            }
            "TEARDOWN" => {
                let mut clients = shared.clients.lock().unwrap();
                clients.retain(|c| c.id != id);
                extra = format!("Session: {session}\r\n");
                respond(&mut writer, status, &cseq, &extra, &body)?;
                return Ok(());
            }
            "GET_PARAMETER" | "SET_PARAMETER" => extra = format!("Session: {session}\r\n"),
            _ => status = "501 Not Implemented",
        }
        // Under the clients lock: the broadcaster writes interleaved data to the same socket.
        let _clients = shared.clients.lock().unwrap();
        respond(&mut writer, status, &cseq, &extra, &body)?;
    }
}

fn respond(
    w: &mut TcpStream,
    status: &str,
    cseq: &str,
    extra: &str,
    body: &str,
) -> std::io::Result<()> {
    let head = format!(
        "RTSP/1.0 {status}\r\nCSeq: {cseq}\r\nServer: latency-bench\r\n{extra}Content-Length: {}\r\n\r\n",
        body.len()
    );
    w.write_all(head.as_bytes())?;
    w.write_all(body.as_bytes())
}

/// See [`RtspServer::sent_time`].
const SEND_SLACK: Duration = Duration::from_millis(500);
