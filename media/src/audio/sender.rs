//! One audio stream: PCM from an [`AudioInput`], Opus-encoded, one RTP packet each packet time
//! (paced by the clock for the tone, by the camera for a camera's audio; the RTP timestamp
//! advancing by exactly one packet's samples), SRTP, and
//! a Sender Report each RTCP interval whose NTP time and RTP timestamp come from the same wall
//! clock the video's reports use, so a receiver can line the two up.
//!
//! It only sends: the receiver's RTCP for a camera stream arrives on the video session's socket
//! (one port for both, as the controller set up), where the video session reads it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::net::UdpSocket;
use tokio::sync::watch;

use super::decode::CameraAudioDecoder;
use super::opus::{OpusEncoder, OpusError};
use super::resample::MonoResampler;
use super::rtp::AudioPacketizer;
use super::samples_per_packet;
use crate::hub::Hub;
use crate::rtcp::{CNAME, NtpTimestamp, SenderInfo, SenderReport, sender_report_compound};
use crate::source::tone;
use crate::srtp::{SrtpContext, SrtpKeys};

/// Where the samples come from.
#[derive(Clone)]
pub enum AudioInput {
    /// The demo camera's beep (see [`tone`]), paced by the clock.
    Tone,
    /// A camera's own audio track from its hub (G.711, L16 or AAC-LC), decoded, resampled to
    /// the stream's rate and paced by the camera: a packet goes out as soon as the camera has
    /// delivered its samples. A camera without a usable audio track sends nothing.
    Camera(Hub),
}

impl std::fmt::Debug for AudioInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tone => f.write_str("Tone"),
            Self::Camera(hub) => write!(f, "Camera({})", hub.name()),
        }
    }
}

/// An audio stream's parameters, in media's own terms.
#[derive(Clone, Debug)]
pub struct AudioParams {
    /// Samples a second (the RTP clock rate too).
    pub sample_rate: u32,
    /// Each packet's duration (ms).
    pub packet_time_ms: u32,
    /// Encoder bit rate (bit/s).
    pub bitrate_bps: u32,
    /// RTP payload type.
    pub payload_type: u8,
    /// Our SSRC.
    pub ssrc: u32,
    /// SRTP suite and keys.
    pub srtp: SrtpKeys,
    /// Where RTP and RTCP go.
    pub destination: SocketAddr,
    /// Interval between Sender Reports.
    pub rtcp_interval: Duration,
    /// Random initial sequence number.
    pub initial_sequence: u16,
    /// Random initial RTP timestamp.
    pub initial_timestamp: u32,
    /// While set, silence is sent in place of the input (the timeline goes on).
    pub mute: Arc<AtomicBool>,
}

/// Why an audio stream could not start.
#[derive(Debug, thiserror::Error)]
pub enum AudioStartError {
    /// The encoder refused the parameters.
    #[error("audio encoder: {0}")]
    Encoder(#[from] OpusError),
    /// The SRTP keys are unusable.
    #[error("audio SRTP keys: {0}")]
    Srtp(String),
}

/// An audio stream's figures.
#[derive(Clone, Copy, Debug, Default)]
pub struct AudioStats {
    /// RTP packets sent.
    pub packets: u64,
    /// Payload octets sent.
    pub octets: u64,
    /// Packets that could not be sent (socket errors).
    pub send_errors: u64,
    /// Time spent encoding.
    pub encode_time: Duration,
}

/// A running audio stream; it stops when this is dropped.
pub struct AudioHandle {
    stop: watch::Sender<bool>,
    stats: Arc<Mutex<AudioStats>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl AudioHandle {
    /// The figures so far.
    pub fn stats(&self) -> AudioStats {
        self.stats.lock().map(|s| *s).unwrap_or_default()
    }

    /// Stops the stream (after a BYE-less last report) and waits for its task.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for AudioHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Starts sending `input` as `params` say, over `socket`.
pub fn start(
    input: AudioInput,
    socket: Arc<UdpSocket>,
    params: AudioParams,
) -> Result<AudioHandle, AudioStartError> {
    let encoder = OpusEncoder::new(
        params.sample_rate,
        params.packet_time_ms,
        params.bitrate_bps,
    )?;
    let srtp = SrtpContext::new(params.srtp.suite, &params.srtp.key, &params.srtp.salt)
        .map_err(|e| AudioStartError::Srtp(e.to_string()))?;
    let stats = Arc::new(Mutex::new(AudioStats::default()));
    let (stop, stop_rx) = watch::channel(false);
    let sender = AudioSender {
        input,
        packetizer: AudioPacketizer::new(
            params.ssrc,
            params.payload_type,
            params.initial_sequence,
            params.initial_timestamp,
        ),
        encoder,
        srtp,
        socket,
        params,
        stats: stats.clone(),
        packet: Vec::new(),
    };
    let task = tokio::spawn(sender.run(stop_rx));
    Ok(AudioHandle {
        stop,
        stats,
        task: Some(task),
    })
}

struct AudioSender {
    input: AudioInput,
    packetizer: AudioPacketizer,
    encoder: OpusEncoder,
    srtp: SrtpContext,
    socket: Arc<UdpSocket>,
    params: AudioParams,
    stats: Arc<Mutex<AudioStats>>,
    /// The RTP packet being written (kept to reuse its allocation).
    packet: Vec<u8>,
}

impl AudioSender {
    async fn run(self, stop: watch::Receiver<bool>) {
        match self.input.clone() {
            AudioInput::Tone => self.run_tone(stop).await,
            AudioInput::Camera(hub) => self.run_camera(&hub, stop).await,
        }
    }

    async fn run_tone(mut self, mut stop: watch::Receiver<bool>) {
        let ptime = Duration::from_millis(u64::from(self.params.packet_time_ms));
        let samples = samples_per_packet(self.params.sample_rate, self.params.packet_time_ms);
        // One clock for everything: packet k covers [wall0 + k·ptime, +ptime) and carries RTP
        // timestamp initial + k·samples; Sender Reports map now to the same line.
        let started = Instant::now();
        let wall0 = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let mut pacer = tokio::time::interval_at(tokio::time::Instant::from_std(started), ptime);
        // A late tick sends its packet at once: the receiver's timeline has no gap.
        pacer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut reports = self.report_timer();
        let mut pcm = vec![0i16; samples as usize];
        let mut k: u32 = 0;
        loop {
            tokio::select! {
                biased;
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        break;
                    }
                }
                _ = pacer.tick() => {
                    tone::fill(&mut pcm, self.params.sample_rate, wall0 + ptime * k);
                    k = k.wrapping_add(1);
                    self.send_packet(&pcm, samples).await;
                }
                _ = reports.tick() => self.send_report(started, wall0).await,
            }
        }
    }

    async fn run_camera(mut self, hub: &Hub, mut stop: watch::Receiver<bool>) {
        let samples = samples_per_packet(self.params.sample_rate, self.params.packet_time_ms);
        let started = Instant::now();
        let wall0 = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let mut reports = self.report_timer();
        let mut audio = hub.subscribe_audio();
        // Audio comes with the main stream; keep it connected while audio streams (the video
        // may come from the substream). Its pictures are not read: the hub drops them.
        let _keep_connected = hub.subscribe().ok();
        let mut decoder: Option<(CameraAudioDecoder, MonoResampler)> = None;
        let mut refused = false;
        let (mut decoded, mut ready) = (Vec::new(), Vec::new());
        let mut pcm = vec![0i16; samples as usize];
        loop {
            tokio::select! {
                biased;
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        break;
                    }
                }
                chunk = audio.recv() => {
                    let chunk = match chunk {
                        Ok(c) => c,
                        // Fell behind: the skipped audio is lost, the timeline goes on.
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                    };
                    if decoder.as_ref().is_none_or(|(d, _)| !d.fits(&chunk)) {
                        let made = CameraAudioDecoder::new(&chunk).map_err(|e| e.to_string()).and_then(|d| {
                            let r = MonoResampler::new(d.sample_rate(), self.params.sample_rate)
                                .map_err(|e| e.to_string())?;
                            Ok((d, r))
                        });
                        match made {
                            Ok(made) => decoder = Some(made),
                            Err(e) => {
                                if !refused {
                                    refused = true;
                                    tracing::warn!(camera = %hub.name(), error = %e, "camera audio cannot be decoded; sending none");
                                }
                                continue;
                            }
                        }
                    }
                    let Some((d, r)) = decoder.as_mut() else { continue };
                    decoded.clear();
                    d.decode(&chunk, &mut decoded);
                    r.push(&decoded, &mut ready);
                    let n = samples as usize;
                    while ready.len() >= n {
                        for (dst, &src) in pcm.iter_mut().zip(&ready[..n]) {
                            *dst = (src.clamp(-1.0, 1.0) * f32::from(i16::MAX)) as i16;
                        }
                        ready.drain(..n);
                        self.send_packet(&pcm, samples).await;
                    }
                }
                _ = reports.tick() => self.send_report(started, wall0).await,
            }
        }
    }

    fn report_timer(&self) -> tokio::time::Interval {
        let mut reports = tokio::time::interval(self.params.rtcp_interval.max(MIN_RTCP_INTERVAL));
        reports.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        reports
    }

    /// Encodes one packet's samples and sends it.
    async fn send_packet(&mut self, pcm: &[i16], samples: u32) {
        let t = Instant::now();
        let silence;
        let pcm = if self.params.mute.load(Ordering::Relaxed) {
            silence = vec![0i16; pcm.len()];
            &silence[..]
        } else {
            pcm
        };
        let Ok(encoded) = self.encoder.encode(pcm) else {
            return;
        };
        let mut packet = std::mem::take(&mut self.packet);
        self.packetizer.packetize(encoded, samples, &mut packet);
        let encode_time = t.elapsed();
        let sent = match self.srtp.protect_rtp(&packet) {
            Ok(wire) => self
                .socket
                .send_to(&wire, self.params.destination)
                .await
                .is_ok(),
            Err(_) => false,
        };
        self.packet = packet;
        if let Ok(mut s) = self.stats.lock() {
            s.packets = self.packetizer.packet_count();
            s.octets = self.packetizer.payload_octets();
            s.send_errors += u64::from(!sent);
            s.encode_time += encode_time;
        }
    }

    /// A Sender Report: now on the wall clock, and the RTP timestamp of now on the stream's
    /// timeline.
    async fn send_report(&mut self, started: Instant, wall0: Duration) {
        if self.packetizer.packet_count() == 0 {
            return;
        }
        let elapsed = started.elapsed();
        let ticks = (elapsed.as_secs_f64() * f64::from(self.params.sample_rate)) as u64;
        let sr = SenderReport {
            ssrc: self.params.ssrc,
            info: SenderInfo {
                ntp: NtpTimestamp::from_unix(wall0 + elapsed),
                rtp_timestamp: self.params.initial_timestamp.wrapping_add(ticks as u32),
                packet_count: self.packetizer.packet_count() as u32,
                octet_count: self.packetizer.payload_octets() as u32,
            },
            reports: Vec::new(),
        };
        let mut out = Vec::new();
        sender_report_compound(&sr, CNAME, &mut out);
        if let Ok(wire) = self.srtp.protect_rtcp(&out) {
            let _ = self.socket.send_to(&wire, self.params.destination).await;
        }
    }
}

/// Sender Reports no closer than this.
const MIN_RTCP_INTERVAL: Duration = Duration::from_millis(100);
