//! One live stream: a camera feed (passthrough or re-encoded) packetized per RFC 6184,
//! protected with SRTP and sent over UDP, with RTCP Sender Reports out and the receiver's RTCP
//! in (RTP/RTCP multiplexed on one socket, as the controllers do).
//!
//! ```text
//!  Camera ─► VideoFeed ─► H264Packetizer ─► SrtpContext::protect_rtp ─► UDP ─► receiver
//!                                            SR every interval ◄──────┘   │
//!                       liveness, loss, jitter, PLI ◄── unprotect_rtcp ◄──┘
//! ```
//!
//! The stream runs as one tokio task. It ends on [`StreamHandle::stop`], when the receiver's RTCP
//! stays silent past the timeout, or when the feed fails; [`StreamHandle::wait`] tells why.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

use crate::camera::{Camera, VideoFeed, VideoRequest};
use crate::frame::AccessUnit;
use crate::h264::H264Profile;
use crate::rtcp::{
    NtpTimestamp, RtcpStats, SenderInfo, SenderReport, parse_compound, sender_report_compound,
};
use crate::rtp::{H264Packetizer, RtpConfig};
use crate::srtp::SrtpContext;
pub use crate::srtp::SrtpKeys;
use crate::stats::StreamStats;
use crate::transcode::TranscodeStats;

/// How to choose between passthrough and re-encoding (the camera's [`crate::camera::FeedMode`]).
pub use crate::camera::FeedMode as Mode;

/// Everything a stream needs, in media's own terms.
#[derive(Clone, Debug)]
pub struct StreamParams {
    /// Picture width wanted.
    pub width: u32,
    /// Picture height wanted.
    pub height: u32,
    /// Frames per second wanted.
    pub fps: u32,
    /// Bit rate in kbit/s.
    pub kbps: u32,
    /// Highest H.264 profile the receiver takes.
    pub max_profile: H264Profile,
    /// RTP payload type.
    pub payload_type: u8,
    /// Our SSRC.
    pub ssrc: u32,
    /// Largest UDP payload (SRTP packet) to send.
    pub mtu: usize,
    /// SRTP suite, master key and salt used to protect what we send.
    pub srtp: SrtpKeys,
    /// Where RTP (and RTCP, unless `rtcp_destination` is set) goes.
    pub destination: SocketAddr,
    /// Where RTCP goes when it is not multiplexed with RTP.
    pub rtcp_destination: Option<SocketAddr>,
    /// Minimum interval between Sender Reports.
    pub rtcp_interval: Duration,
    /// The stream ends when no RTCP arrives for this long (controllers use 5 × the interval); `None`
    /// disables the check (a receiver that sends no RTCP, e.g. ffmpeg in tests).
    pub rtcp_timeout: Option<Duration>,
    /// Passthrough, transcode or automatic.
    pub mode: Mode,
    /// Random initial RTP sequence number (RFC 3550 §5.1).
    pub initial_sequence: u16,
    /// Random initial RTP timestamp.
    pub initial_timestamp: u32,
}

/// A change to a running stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// New size, frame rate and bit rate (a new feed is opened when the size changes).
    Reconfigure {
        /// Width.
        width: u32,
        /// Height.
        height: u32,
        /// Frames per second.
        fps: u32,
        /// Bit rate in kbit/s.
        kbps: u32,
    },
    /// Stop sending pictures (RTCP goes on).
    Suspend,
    /// Send pictures again, starting with an IDR.
    Resume,
    /// Ask for an IDR.
    KeyFrame,
}

/// Why a stream ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// [`StreamHandle::stop`] was called.
    Stopped,
    /// No RTCP from the receiver within the timeout.
    RtcpTimeout,
    /// The receiver sent an RTCP BYE.
    Bye,
    /// The feed failed (camera gone, encoder error).
    Feed(String),
    /// The socket failed.
    Socket(String),
}

/// Live figures of a stream.
#[derive(Clone, Debug, Default)]
pub struct LiveStats {
    /// Frames, packets, bytes, latency histogram.
    pub stream: StreamStats,
    /// Whether pictures are re-encoded.
    pub transcoding: bool,
    /// Why they are (or are not).
    pub feed_reason: crate::camera::FeedReason,
    /// Current size, fps and bit rate.
    pub width: u32,
    /// Current height.
    pub height: u32,
    /// Current frames per second.
    pub fps: u32,
    /// Current bit rate in kbit/s.
    pub kbps: u32,
    /// When the first packet left.
    pub first_packet: Option<Instant>,
    /// When the stream started.
    pub started: Option<Instant>,
    /// Receiver reports: fraction lost (of 256), cumulative lost, jitter (RTP units).
    pub fraction_lost: u8,
    /// Cumulative packets lost as reported.
    pub cumulative_lost: i32,
    /// Interarrival jitter as reported.
    pub jitter: u32,
    /// Last RTCP from the receiver.
    pub last_rtcp: Option<Instant>,
    /// The transcoder's counters and stage times while pictures are re-encoded.
    pub transcode: Option<TranscodeStats>,
}

/// A running stream.
pub struct StreamHandle {
    control: mpsc::UnboundedSender<Control>,
    stop: watch::Sender<bool>,
    stats: Arc<Mutex<LiveStats>>,
    task: Option<tokio::task::JoinHandle<EndReason>>,
}

impl StreamHandle {
    /// Sends a change to the stream.
    pub fn control(&self, c: Control) {
        let _ = self.control.send(c);
    }

    /// A snapshot of the stream's figures.
    pub fn stats(&self) -> LiveStats {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Whether the stream task has ended.
    pub fn is_finished(&self) -> bool {
        self.task
            .as_ref()
            .is_none_or(tokio::task::JoinHandle::is_finished)
    }

    /// Asks the stream to end (it sends an RTCP BYE).
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Waits for the stream to end and returns why.
    pub async fn wait(&mut self) -> EndReason {
        match self.task.take() {
            Some(task) => task
                .await
                .unwrap_or_else(|e| EndReason::Feed(format!("task: {e}"))),
            None => EndReason::Stopped,
        }
    }
}

/// A clonable view of a running stream: its controls and figures, without ownership (the
/// [`StreamHandle`] still decides when the stream ends when dropped).
#[derive(Clone)]
pub struct StreamControl {
    control: mpsc::UnboundedSender<Control>,
    stop: watch::Sender<bool>,
    stats: Arc<Mutex<LiveStats>>,
}

impl StreamControl {
    /// Sends a change to the stream.
    pub fn control(&self, c: Control) {
        let _ = self.control.send(c);
    }

    /// A snapshot of the stream's figures.
    pub fn stats(&self) -> LiveStats {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Asks the stream to end (it sends an RTCP BYE).
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

impl StreamHandle {
    /// A clonable [`StreamControl`] of this stream, usable while [`StreamHandle::wait`] runs.
    pub fn controller(&self) -> StreamControl {
        StreamControl {
            control: self.control.clone(),
            stop: self.stop.clone(),
            stats: self.stats.clone(),
        }
    }
}

impl Drop for StreamHandle {
    fn drop(&mut self) {
        // Nothing is left behind: the task ends on the stop signal.
        let _ = self.stop.send(true);
    }
}

/// Starts a stream of `camera` to `params.destination` over `socket` (already bound; it also
/// receives the receiver's RTCP).
pub async fn start(
    camera: Arc<Camera>,
    socket: Arc<UdpSocket>,
    params: StreamParams,
) -> Result<StreamHandle, crate::Error> {
    let started = Instant::now();
    let request = request_for(&params);
    let (feed, reason) = camera.open_video(&request, FEED_WAIT).await?;
    let srtp = SrtpContext::new(params.srtp.suite, &params.srtp.key, &params.srtp.salt)
        .map_err(|e| feed_error(&camera, &format!("SRTP keys: {e}")))?;
    let rtp_mtu = params.mtu.saturating_sub(params.srtp.suite.rtp_overhead());
    let packetizer = H264Packetizer::new(RtpConfig {
        ssrc: params.ssrc,
        payload_type: params.payload_type,
        mtu: rtp_mtu,
        initial_sequence: params.initial_sequence,
        initial_timestamp: params.initial_timestamp,
    })
    .map_err(|e| feed_error(&camera, &format!("RTP: {e}")))?;
    let stats = Arc::new(Mutex::new(LiveStats {
        transcoding: feed.is_transcoding(),
        feed_reason: reason,
        width: params.width,
        height: params.height,
        fps: params.fps,
        kbps: params.kbps,
        started: Some(started),
        ..LiveStats::default()
    }));
    let (control_tx, control_rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let sender = Sender {
        camera,
        socket,
        params,
        feed,
        packetizer,
        srtp,
        stats: stats.clone(),
        rtcp: RtcpStats::new(),
        started,
        clock: RtpClock::default(),
        suspended: false,
        packets: Vec::new(),
    };
    let task = tokio::spawn(sender.run(control_rx, stop_rx));
    Ok(StreamHandle {
        control: control_tx,
        stop: stop_tx,
        stats,
        task: Some(task),
    })
}

struct Sender {
    camera: Arc<Camera>,
    socket: Arc<UdpSocket>,
    params: StreamParams,
    feed: VideoFeed,
    packetizer: H264Packetizer,
    srtp: SrtpContext,
    stats: Arc<Mutex<LiveStats>>,
    rtcp: RtcpStats,
    started: Instant,
    clock: RtpClock,
    suspended: bool,
    packets: Vec<Bytes>,
}

impl Sender {
    async fn run(
        mut self,
        mut control: mpsc::UnboundedReceiver<Control>,
        mut stop: watch::Receiver<bool>,
    ) -> EndReason {
        let mut sr_timer = tokio::time::interval(self.params.rtcp_interval.max(MIN_RTCP_INTERVAL));
        sr_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut buf = vec![0u8; RTCP_BUFFER];
        let reason = loop {
            tokio::select! {
                biased;
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        break EndReason::Stopped;
                    }
                }
                Some(c) = control.recv() => {
                    if let Err(reason) = self.apply(c).await {
                        break reason;
                    }
                }
                received = self.socket.recv_from(&mut buf) => match received {
                    Ok((n, from)) => {
                        if let Some(reason) = self.on_rtcp(buf.get(..n).unwrap_or_default(), from) {
                            break reason;
                        }
                    }
                    Err(e) if is_transient(&e) => {}
                    Err(e) => break EndReason::Socket(e.to_string()),
                },
                _ = sr_timer.tick() => {
                    let now = Instant::now();
                    if self.params.rtcp_timeout.is_some_and(|t| !self.rtcp.is_alive(self.started, now, t)) {
                        break EndReason::RtcpTimeout;
                    }
                    self.send_sender_report().await;
                }
                au = self.feed.recv() => match au {
                    Ok(au) => {
                        if let Err(reason) = self.send_picture(&au).await {
                            break reason;
                        }
                    }
                    Err(e) => break EndReason::Feed(e.to_string()),
                },
            }
        };
        self.send_bye().await;
        reason
    }

    async fn apply(&mut self, c: Control) -> Result<(), EndReason> {
        match c {
            Control::Reconfigure {
                width,
                height,
                fps,
                kbps,
            } => {
                let resize = (width, height, fps)
                    != (self.params.width, self.params.height, self.params.fps);
                self.params.width = width;
                self.params.height = height;
                self.params.fps = fps;
                self.params.kbps = kbps;
                if resize {
                    // A new feed at the new size; sequence numbers, timestamps and SRTP state
                    // carry on, so the receiver sees one continuous stream.
                    let request = request_for(&self.params);
                    let (feed, reason) = self
                        .camera
                        .open_video(&request, FEED_WAIT)
                        .await
                        .map_err(|e| EndReason::Feed(e.to_string()))?;
                    self.feed = feed;
                    if let Ok(mut s) = self.stats.lock() {
                        s.feed_reason = reason;
                    }
                } else {
                    self.feed.set_bitrate(kbps.saturating_mul(1000));
                }
                if let Ok(mut s) = self.stats.lock() {
                    s.width = width;
                    s.height = height;
                    s.fps = fps;
                    s.kbps = kbps;
                    s.transcoding = self.feed.is_transcoding();
                }
            }
            Control::Suspend => self.suspended = true,
            Control::Resume => {
                self.suspended = false;
                self.feed.request_keyframe();
            }
            Control::KeyFrame => self.feed.request_keyframe(),
        }
        Ok(())
    }

    async fn send_picture(&mut self, au: &AccessUnit) -> Result<(), EndReason> {
        if self.suspended {
            return Ok(());
        }
        // RTP time relative to the stream start (the packetizer adds its random offset).
        let ts = self.clock.rtp_time(au.timestamp_90k, self.params.fps) as u32;
        if let Some(ps) = &au.parameter_sets {
            self.packetizer
                .set_parameter_sets(ps.sps.clone(), ps.pps.clone());
        }
        self.packets.clear();
        self.packetizer
            .packetize(&au.nals, ts, &mut self.packets)
            .map_err(|e| EndReason::Feed(format!("packetize: {e}")))?;
        let mut bytes = 0u64;
        let count = self.packets.len() as u64;
        for packet in std::mem::take(&mut self.packets) {
            let protected = self
                .srtp
                .protect_rtp(&packet)
                .map_err(|e| EndReason::Feed(format!("SRTP: {e}")))?;
            bytes += protected.len() as u64;
            if let Err(e) = self
                .socket
                .send_to(&protected, self.params.destination)
                .await
            {
                if !is_transient(&e) {
                    return Err(EndReason::Socket(e.to_string()));
                }
                if let Ok(mut s) = self.stats.lock() {
                    s.stream.send_errors += 1;
                }
            }
        }
        let latency = au.received_at.elapsed();
        if let Ok(mut s) = self.stats.lock() {
            s.stream.record_frame(au.is_idr, count, bytes, latency);
            s.first_packet.get_or_insert_with(Instant::now);
            s.transcode = self.feed.transcode_stats();
        }
        Ok(())
    }

    fn on_rtcp(&mut self, data: &[u8], from: SocketAddr) -> Option<EndReason> {
        if from.ip() != self.params.destination.ip() {
            return None;
        }
        let Ok(plain) = self.srtp.unprotect_rtcp(data) else {
            if let Ok(mut s) = self.stats.lock() {
                s.stream.rtcp_errors += 1;
            }
            return None;
        };
        let Ok(packets) = parse_compound(&plain) else {
            return None;
        };
        if !self
            .rtcp
            .on_compound(&packets, self.params.ssrc, Instant::now(), ntp_now())
        {
            // Only our own SSRC's packets, reflected back: not the receiver's.
            return None;
        }
        if self.rtcp.take_key_frame_request() {
            self.feed.request_keyframe();
        }
        if let Ok(mut s) = self.stats.lock() {
            s.stream.rtcp_received += 1;
            s.fraction_lost = self.rtcp.fraction_lost;
            s.cumulative_lost = self.rtcp.cumulative_lost;
            s.jitter = self.rtcp.jitter;
            s.last_rtcp = Some(Instant::now());
        }
        self.rtcp.bye.then_some(EndReason::Bye)
    }

    async fn send_sender_report(&mut self) {
        let (packets, octets) = (
            self.packetizer.packet_count(),
            self.packetizer.payload_octets(),
        );
        if packets == 0 {
            return;
        }
        let sr = SenderReport {
            ssrc: self.params.ssrc,
            info: SenderInfo {
                ntp: ntp_now(),
                rtp_timestamp: self.packetizer.last_rtp_timestamp(),
                packet_count: packets as u32,
                octet_count: octets as u32,
            },
            reports: Vec::new(),
        };
        let mut out = Vec::new();
        sender_report_compound(&sr, crate::rtcp::CNAME, &mut out);
        if let Ok(protected) = self.srtp.protect_rtcp(&out) {
            let _ = self
                .socket
                .send_to(&protected, self.rtcp_destination())
                .await;
        }
    }

    /// Where RTCP goes: its own port when it is not multiplexed with RTP (RFC 3550 §11).
    fn rtcp_destination(&self) -> SocketAddr {
        self.params
            .rtcp_destination
            .unwrap_or(self.params.destination)
    }

    async fn send_bye(&mut self) {
        let mut out = Vec::new();
        crate::rtcp::write_bye(self.params.ssrc, &mut out);
        if let Ok(protected) = self.srtp.protect_rtcp(&out) {
            let _ = self
                .socket
                .send_to(&protected, self.rtcp_destination())
                .await;
        }
    }
}

fn request_for(params: &StreamParams) -> VideoRequest {
    VideoRequest {
        width: params.width,
        height: params.height,
        fps: params.fps,
        bitrate_bps: params.kbps.saturating_mul(1000),
        max_profile: params.max_profile,
        mode: params.mode,
    }
}

fn feed_error(camera: &Camera, detail: &str) -> crate::Error {
    crate::Error::new(crate::ErrorKind::Config, camera.main().name()).with_detail(detail, None)
}

fn ntp_now() -> NtpTimestamp {
    NtpTimestamp::from_unix(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default(),
    )
}

/// ICMP port unreachable from a receiver that is not listening yet shows up as a failed send or
/// receive on Linux; it is not fatal.
fn is_transient(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::WouldBlock
            | std::io::ErrorKind::Interrupted
    )
}

/// How long opening a feed waits for the source's first SPS.
const FEED_WAIT: Duration = Duration::from_secs(5);
/// Sender Reports never go out more often than this.
const MIN_RTCP_INTERVAL: Duration = Duration::from_millis(100);
/// Receive buffer for RTCP.
const RTCP_BUFFER: usize = 2048;

/// A backward step of the source clock larger than B-frame reordering explains (1 s): a new
/// source session.
const MAX_BACKWARD_90K: u64 = 90_000;
/// A forward leap of the source clock that is a new session rather than lost pictures (10 s).
const MAX_FORWARD_90K: u64 = 10 * 90_000;

/// Source timestamps (90 kHz) to the stream's RTP time, continuous across source sessions: a
/// camera that reconnects (or a feed that is reopened) restarts its clock, while a stream's
/// RTP timestamps advance with its sampling instants (RFC 3550 §5.1). On such a restart the
/// RTP time carries on one frame interval after the last picture sent.
#[derive(Debug, Default)]
struct RtpClock {
    /// (source time, RTP time) of the picture the current mapping started at.
    base: Option<(u64, u64)>,
    /// Source and RTP time of the latest picture (the highest, with reordering).
    last: (u64, u64),
}

impl RtpClock {
    fn rtp_time(&mut self, source: u64, fps: u32) -> u64 {
        let (last_in, last_out) = self.last;
        let (base_in, base_out) = match self.base {
            Some(b)
                if source + MAX_BACKWARD_90K >= last_in && source <= last_in + MAX_FORWARD_90K =>
            {
                b
            }
            Some(_) => {
                let step = 90_000 / u64::from(fps.max(1));
                let rebased = (source, last_out + step);
                self.base = Some(rebased);
                self.last = rebased;
                rebased
            }
            None => {
                self.base = Some((source, 0));
                (source, 0)
            }
        };
        // Reordered pictures may come before the base picture: saturate, never wrap.
        let out = (base_out + source).saturating_sub(base_in);
        if source >= self.last.0 {
            self.last = (source, out);
        }
        out
    }
}

#[cfg(test)]
mod clock_tests {
    use super::*;

    #[test]
    fn rtp_time_follows_the_source_and_carries_on_across_a_restart() {
        let mut c = RtpClock::default();
        assert_eq!(c.rtp_time(500_000, 30), 0);
        assert_eq!(c.rtp_time(503_000, 30), 3_000);
        // B-frame order: a picture shown before the last one.
        assert_eq!(c.rtp_time(509_000, 30), 9_000);
        assert_eq!(c.rtp_time(506_000, 30), 6_000);
        // The camera reconnected: its clock starts again near 0; RTP time goes on.
        assert_eq!(c.rtp_time(0, 30), 12_000);
        assert_eq!(c.rtp_time(3_000, 30), 15_000);
        // A leap of more than 10 s forward is a restart too.
        assert_eq!(c.rtp_time(3_000 + 20 * 90_000, 15), 21_000);
        assert_eq!(c.rtp_time(3_000 + 20 * 90_000 + 6_000, 15), 27_000);
        // Lost pictures (a 2 s gap) keep the mapping.
        assert_eq!(c.rtp_time(3_000 + 22 * 90_000 + 6_000, 15), 207_000);
    }
}
