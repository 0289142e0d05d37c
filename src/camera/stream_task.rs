//! A running stream's task: starts the media session, forwards the controller's commands to
//! it, registers it with the manager while it runs, and says why it ended.

use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Instant;

use media::audio::sender::{self as audio_sender, AudioInput, AudioParams};
use media::session::{self, Control, EndReason, StreamParams};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::{CameraRuntime, StreamEntry};

/// What the slot tells its running stream.
pub(super) enum Command {
    /// Suspend, resume, reconfigure.
    Control(Control),
    /// End it, and why.
    Stop(&'static str),
}

/// A running stream: starts the media session, forwards commands, and cleans up at the end.
pub(super) struct StreamTask {
    pub(super) cam: Arc<CameraRuntime>,
    pub(super) stream_id: u64,
    pub(super) params: StreamParams,
    /// The audio stream to send beside the video, if any.
    pub(super) audio: Option<(AudioInput, AudioParams)>,
    pub(super) socket: Arc<UdpSocket>,
    pub(super) rx: mpsc::UnboundedReceiver<Command>,
    /// Frees the slot once the stream is over (and updates Streaming Status).
    pub(super) on_end: Box<dyn FnOnce() + Send>,
}

impl StreamTask {
    pub(super) async fn run(mut self) {
        let controller = self.params.destination;
        let begun = Instant::now();
        let reason = self.stream(controller, begun).await;
        tracing::info!(camera = %self.cam.id, stream = self.stream_id, reason = %reason, secs = begun.elapsed().as_secs(), "stream ended");
        if let Some(m) = self.cam.manager.upgrade() {
            m.unregister(self.stream_id);
        }
        (self.on_end)();
    }

    async fn stream(&mut self, controller: SocketAddr, begun: Instant) -> String {
        let mut early = Vec::new();
        let start = session::start(
            self.cam.media().clone(),
            self.socket.clone(),
            self.params.clone(),
        );
        let mut start = pin!(start);
        // Commands that arrive while the feed opens are kept; a stop cancels the start.
        let started = loop {
            tokio::select! {
                r = &mut start => break r,
                cmd = self.rx.recv() => match cmd {
                    Some(Command::Control(c)) => early.push(c),
                    Some(Command::Stop(why)) => return format!("{why} (before the first frame)"),
                    None => return "stopped before the first frame".to_owned(),
                },
            }
        };
        let mut handle = match started {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(camera = %self.cam.id, stream = self.stream_id, error = %e, "stream could not start");
                return format!("start failed: {e}");
            }
        };
        let control = handle.controller();
        if let Some(m) = self.cam.manager.upgrade() {
            m.register(StreamEntry {
                id: self.stream_id,
                camera: self.cam.id.clone(),
                controller,
                started: begun,
                control: control.clone(),
            });
        }
        for c in early {
            control.control(c);
        }
        // Audio from the same socket (HomeKit answers one port for both); it ends with the
        // stream (dropped at the end of this function).
        let _audio = self.audio.take().and_then(|(input, params)| {
            let (rate, ptime) = (params.sample_rate, params.packet_time_ms);
            match audio_sender::start(input, self.socket.clone(), params) {
                Ok(h) => {
                    tracing::info!(camera = %self.cam.id, stream = self.stream_id, rate, ptime, "audio: Opus");
                    Some(h)
                }
                Err(e) => {
                    tracing::warn!(camera = %self.cam.id, stream = self.stream_id, error = %e, "audio could not start");
                    None
                }
            }
        });
        let mut wait = pin!(handle.wait());
        let mut stopping = false;
        let reason = loop {
            tokio::select! {
                reason = &mut wait => break reason,
                cmd = self.rx.recv(), if !stopping => match cmd {
                    Some(Command::Control(c)) => control.control(c),
                    Some(Command::Stop(why)) => {
                        tracing::debug!(camera = %self.cam.id, stream = self.stream_id, why, "stopping stream");
                        stopping = true;
                        control.stop();
                    }
                    None => {
                        stopping = true;
                        control.stop();
                    }
                },
            }
        };
        match reason {
            EndReason::Stopped => "stopped".to_owned(),
            EndReason::RtcpTimeout => "no RTCP from the controller (HAP §7.9)".to_owned(),
            EndReason::Bye => "RTCP BYE from the controller".to_owned(),
            EndReason::Feed(e) => format!("camera feed: {e}"),
            EndReason::Socket(e) => format!("UDP socket: {e}"),
        }
    }
}
