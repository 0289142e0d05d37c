//! One source session per camera, shared by every consumer (live streams, transcoders,
//! snapshots).
//!
//! The hub keeps the current GOP (from the last IDR) so a new consumer starts on a keyframe at
//! once. Each consumer has a bounded queue; a consumer that falls [`QUEUE_CAPACITY`] pictures
//! behind loses its backlog and resumes at the next IDR (newest picture wins, counted in
//! [`Subscription::dropped`]). Publishing never waits on a consumer, so consumers slow neither
//! the source nor each other.
//!
//! A lazy hub connects on the first subscription and disconnects [`ConnectMode::Lazy`]'s
//! `idle_timeout` after the last one leaves; an always-on hub runs from creation.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};

use crate::error::{Error, ErrorKind};
use crate::frame::{AccessUnit, AudioChunk, SourceState};
use crate::h264::{SpsInfo, parse_sps};
use crate::source::{FrameSink, SourceConfig, rtsp, test_pattern};

/// Audio pieces a listener may fall behind before it skips (about 2 s of 20 ms pieces).
pub const AUDIO_QUEUE: usize = 100;

/// When the hub runs its source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectMode {
    /// Connect on the first subscription; disconnect this long after the last one ends.
    Lazy {
        /// Time with no consumer before the source is closed.
        idle_timeout: Duration,
    },
    /// Connect at creation and stay connected.
    AlwaysOn,
}

/// A hub's configuration.
#[derive(Clone, Debug)]
pub struct HubConfig {
    /// Camera name, used in logs and errors.
    pub name: String,
    /// What to ingest.
    pub source: SourceConfig,
    /// Lazy or always on.
    pub mode: ConnectMode,
    /// Expected picture size, used to pick between a camera's streams before the source's SPS
    /// has been seen (the SPS wins once known).
    pub size_hint: Option<(u32, u32)>,
}

/// What a hub reports about its source.
#[derive(Clone, Debug)]
pub struct HubStatus {
    /// Where the source is.
    pub state: SourceState,
    /// The error behind the last reconnect, kept until the next one.
    pub last_error: Option<Error>,
    /// Sessions re-established after a failure, end or stall (Reconnecting → Streaming).
    pub reconnects: u64,
    /// When `state` last changed.
    pub since: Instant,
    /// Pictures received since the hub was created.
    pub frames: u64,
    /// IDR pictures received since the hub was created.
    pub keyframes: u64,
    /// Bytes of NAL data received since the hub was created.
    pub bytes: u64,
    /// When the newest picture arrived.
    pub last_frame_at: Option<Instant>,
    /// Active subscriptions.
    pub consumers: usize,
    /// Profile, level and picture size from the newest SPS.
    pub video: Option<SpsInfo>,
}

/// A camera's hub; clones share it.
#[derive(Clone)]
pub struct Hub {
    shared: Arc<Shared>,
}

impl Hub {
    /// Creates the hub. Must be called inside a tokio runtime (RTSP ingest and idle timers run on
    /// it). An always-on hub starts its source at once.
    pub fn new(config: HubConfig) -> Result<Self, Error> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| Error::new(ErrorKind::Config, &config.name).with_detail(e, None))?;
        let (status_tx, _) = watch::channel(HubStatus {
            state: SourceState::Idle,
            last_error: None,
            reconnects: 0,
            since: Instant::now(),
            frames: 0,
            keyframes: 0,
            bytes: 0,
            last_frame_at: None,
            consumers: 0,
            video: None,
        });
        let shared = Arc::new(Shared {
            config,
            runtime,
            inner: Mutex::new(Inner {
                gop: Vec::new(),
                consumers: Vec::new(),
                source: None,
                epoch: 0,
                idle_generation: 0,
            }),
            status: status_tx,
            last_sps: Mutex::new(bytes::Bytes::new()),
            audio: tokio::sync::broadcast::channel(AUDIO_QUEUE).0,
        });
        if shared.config.mode == ConnectMode::AlwaysOn {
            let mut inner = shared.lock();
            shared.start_source(&mut inner)?;
            drop(inner);
        }
        Ok(Self { shared })
    }

    /// Listens to the camera's audio from now on. It does not start or keep the source
    /// running: a video subscription does (audio goes with a live stream). A listener that
    /// falls more than [`AUDIO_QUEUE`] pieces behind skips to the newest.
    pub fn subscribe_audio(&self) -> tokio::sync::broadcast::Receiver<Arc<AudioChunk>> {
        self.shared.audio.subscribe()
    }

    /// Subscribes: the queue starts with the current GOP (an IDR first) when there is one, then
    /// receives every new picture. Starts a lazy hub's source.
    pub fn subscribe(&self) -> Result<Subscription, Error> {
        let queue = Arc::new(ConsumerQueue::default());
        {
            let mut inner = self.shared.lock();
            inner.idle_generation += 1;
            if inner.source.is_none() {
                self.shared.start_source(&mut inner)?;
            }
            {
                let mut q = queue.lock();
                // Strictly fewer: a full queue would drop its backlog at the next push.
                if !inner.gop.is_empty() && inner.gop.len() < QUEUE_CAPACITY {
                    q.frames.extend(inner.gop.iter().cloned());
                    q.started = true;
                } else {
                    q.waiting_for_idr = true;
                }
            }
            inner.consumers.push(Arc::downgrade(&queue));
            let n = inner.live_consumers();
            self.shared.status.send_modify(|s| s.consumers = n);
        }
        Ok(Subscription {
            queue,
            hub: self.clone(),
        })
    }

    /// The pictures from the last IDR to the newest (empty before the first IDR).
    pub fn gop(&self) -> Vec<Arc<AccessUnit>> {
        self.shared.lock().gop.clone()
    }

    /// The current status.
    pub fn status(&self) -> HubStatus {
        self.shared.status.borrow().clone()
    }

    /// A receiver that sees every status change (state, errors; counters update with them).
    pub fn watch_status(&self) -> watch::Receiver<HubStatus> {
        self.shared.status.subscribe()
    }

    /// The camera name.
    pub fn name(&self) -> &str {
        &self.shared.config.name
    }

    /// The configuration.
    pub fn config(&self) -> &HubConfig {
        &self.shared.config
    }

    /// The picture size: from the source's SPS once seen, else the test pattern's configured
    /// size or the configured hint.
    pub fn video_size(&self) -> Option<(u32, u32)> {
        if let Some(sps) = self.status().video {
            return Some((sps.width, sps.height));
        }
        match &self.shared.config.source {
            SourceConfig::TestPattern(p) => Some((p.width, p.height)),
            SourceConfig::Rtsp(_) => self.shared.config.size_hint,
        }
    }
}

/// One consumer's view of a hub. Dropping it unsubscribes.
pub struct Subscription {
    queue: Arc<ConsumerQueue>,
    hub: Hub,
}

impl Subscription {
    /// The next picture, waiting for it. Fails only when the hub's source has stopped for good.
    pub async fn recv(&mut self) -> Result<Arc<AccessUnit>, Error> {
        loop {
            let notified = self.queue.notify.notified();
            if let Some(r) = self.try_next() {
                return r;
            }
            notified.await;
        }
    }

    /// The next picture, blocking the calling (non-async) thread for at most `timeout`;
    /// `Ok(None)` on timeout. For worker threads such as the transcoder.
    pub fn recv_blocking(&mut self, timeout: Duration) -> Result<Option<Arc<AccessUnit>>, Error> {
        let deadline = Instant::now() + timeout;
        let mut q = self.queue.lock();
        loop {
            if let Some(au) = q.frames.pop_front() {
                return Ok(Some(au));
            }
            if q.closed {
                return Err(self.closed_error());
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            q = match self.queue.condvar.wait_timeout(q, deadline - now) {
                Ok((g, _)) => g,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// The next queued picture without waiting.
    pub fn try_recv(&mut self) -> Option<Result<Arc<AccessUnit>, Error>> {
        self.try_next()
    }

    /// Pictures this consumer lost by falling behind.
    pub fn dropped(&self) -> u64 {
        self.queue.lock().dropped
    }

    /// Pictures waiting in the queue.
    pub fn pending(&self) -> usize {
        self.queue.lock().frames.len()
    }

    /// The hub this subscription belongs to.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    fn try_next(&self) -> Option<Result<Arc<AccessUnit>, Error>> {
        let mut q = self.queue.lock();
        if let Some(au) = q.frames.pop_front() {
            return Some(Ok(au));
        }
        q.closed.then(|| Err(self.closed_error()))
    }

    fn closed_error(&self) -> Error {
        let status = self.hub.status();
        status
            .last_error
            .unwrap_or_else(|| Error::new(ErrorKind::Shutdown, self.hub.name()))
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.shared.unsubscribe(&self.queue);
    }
}

struct Shared {
    config: HubConfig,
    runtime: tokio::runtime::Handle,
    inner: Mutex<Inner>,
    status: watch::Sender<HubStatus>,
    /// The SPS behind `HubStatus::video`, to parse only changes.
    last_sps: Mutex<bytes::Bytes>,
    /// The camera's audio, to whoever listens (newest wins: a slow listener skips).
    audio: tokio::sync::broadcast::Sender<Arc<AudioChunk>>,
}

struct Inner {
    /// From the last IDR to the newest picture.
    gop: Vec<Arc<AccessUnit>>,
    consumers: Vec<Weak<ConsumerQueue>>,
    source: Option<RunningSource>,
    /// Incremented on every source start; a stopped source's late output is ignored.
    epoch: u64,
    /// Incremented on every subscription; an idle timer fires only if it is unchanged.
    idle_generation: u64,
}

impl Inner {
    fn live_consumers(&mut self) -> usize {
        self.consumers.retain(|w| w.strong_count() > 0);
        self.consumers.len()
    }
}

enum RunningSource {
    Task(tokio::task::JoinHandle<()>),
    Thread(Arc<AtomicBool>),
}

impl RunningSource {
    fn stop(self) {
        match self {
            Self::Task(task) => task.abort(),
            Self::Thread(stop) => stop.store(true, Ordering::Release),
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn start_source(self: &Arc<Self>, inner: &mut Inner) -> Result<(), Error> {
        inner.epoch += 1;
        let sink: Arc<dyn FrameSink> = Arc::new(HubSink {
            shared: Arc::downgrade(self),
            epoch: inner.epoch,
        });
        let name = &self.config.name;
        tracing::info!(camera = %name, "starting source");
        inner.source = Some(match &self.config.source {
            SourceConfig::Rtsp(config) => {
                let task = self
                    .runtime
                    .spawn(rtsp::run(name.clone(), config.clone(), sink));
                RunningSource::Task(task)
            }
            SourceConfig::TestPattern(config) => {
                let stop = Arc::new(AtomicBool::new(false));
                test_pattern::spawn(name, config.clone(), sink, Arc::clone(&stop)).map_err(
                    |e| {
                        Error::new(ErrorKind::Config, name)
                            .with_detail(format!("thread: {e}"), None)
                    },
                )?;
                RunningSource::Thread(stop)
            }
        });
        Ok(())
    }

    fn stop_source(&self, inner: &mut Inner, state: SourceState) {
        if let Some(source) = inner.source.take() {
            source.stop();
        }
        inner.epoch += 1;
        inner.gop.clear();
        self.status.send_modify(|s| {
            if state == SourceState::Streaming
                && matches!(s.state, SourceState::Reconnecting { .. })
            {
                s.reconnects += 1;
            }
            s.state = state;
            s.since = Instant::now();
        });
    }

    fn unsubscribe(self: &Arc<Self>, queue: &Arc<ConsumerQueue>) {
        let mut inner = self.lock();
        let gone = Arc::downgrade(queue);
        inner.consumers.retain(|w| !w.ptr_eq(&gone));
        let n = inner.live_consumers();
        self.status.send_modify(|s| s.consumers = n);
        let ConnectMode::Lazy { idle_timeout } = self.config.mode else {
            return;
        };
        if n > 0 || inner.source.is_none() {
            return;
        }
        let generation = inner.idle_generation;
        let weak = Arc::downgrade(self);
        self.runtime.spawn(async move {
            tokio::time::sleep(idle_timeout).await;
            let Some(shared) = weak.upgrade() else { return };
            let mut inner = shared.lock();
            if inner.idle_generation == generation && inner.live_consumers() == 0 {
                tracing::info!(camera = %shared.config.name, "no consumers; closing source");
                shared.stop_source(&mut inner, SourceState::Idle);
            }
        });
    }

    fn publish(&self, epoch: u64, au: AccessUnit) {
        let au = Arc::new(au);
        let mut inner = self.lock();
        if inner.epoch != epoch {
            return;
        }
        if au.is_idr {
            inner.gop.clear();
        }
        if (au.is_idr || !inner.gop.is_empty()) && inner.gop.len() < MAX_GOP_FRAMES {
            inner.gop.push(Arc::clone(&au));
        }
        inner.consumers.retain(|w| match w.upgrade() {
            Some(queue) => {
                queue.push(&au);
                true
            }
            None => false,
        });
        drop(inner);
        let video = au.parameter_sets.as_ref().and_then(|ps| {
            let known = self.status.borrow().video.is_some();
            let mut last = self
                .last_sps
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if known && *last == ps.sps {
                return None;
            }
            last.clone_from(&ps.sps);
            parse_sps(&ps.sps).ok()
        });
        let bytes = au.byte_len() as u64;
        self.status.send_modify(|s| {
            if video.is_some() {
                s.video = video;
            }
            s.frames += 1;
            s.keyframes += u64::from(au.is_idr);
            s.bytes += bytes;
            s.last_frame_at = Some(au.received_at);
        });
    }

    fn set_state(&self, epoch: u64, state: SourceState, error: Option<Error>) {
        let mut inner = self.lock();
        if inner.epoch != epoch {
            return;
        }
        if matches!(
            state,
            SourceState::Reconnecting { .. } | SourceState::Stopped
        ) {
            // The next session starts on a fresh IDR; old pictures cannot be continued, by the
            // GOP kept for new consumers nor in the queues of those watching (a camera may
            // start the new session mid-GOP, with pictures that refer to ones never sent).
            inner.gop.clear();
            for queue in inner.consumers.iter().filter_map(Weak::upgrade) {
                queue.restart_at_idr();
            }
        }
        if state == SourceState::Stopped {
            inner.source = None;
            for queue in inner.consumers.iter().filter_map(Weak::upgrade) {
                queue.close();
            }
        }
        drop(inner);
        self.status.send_modify(|s| {
            if state == SourceState::Streaming
                && matches!(s.state, SourceState::Reconnecting { .. })
            {
                s.reconnects += 1;
            }
            s.state = state;
            s.since = Instant::now();
            if error.is_some() {
                s.last_error = error;
            }
        });
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let inner = self
            .inner
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(source) = inner.source.take() {
            source.stop();
        }
    }
}

/// The sink a source writes to: a weak link, so a running source does not keep a dropped hub
/// alive, tagged with the epoch of the source start.
struct HubSink {
    shared: Weak<Shared>,
    epoch: u64,
}

impl FrameSink for HubSink {
    fn publish(&self, au: AccessUnit) {
        if let Some(shared) = self.shared.upgrade() {
            shared.publish(self.epoch, au);
        }
    }

    fn publish_audio(&self, chunk: AudioChunk) {
        if let Some(shared) = self.shared.upgrade()
            && shared.lock().epoch == self.epoch
        {
            // No listener is not an error.
            let _ = shared.audio.send(Arc::new(chunk));
        }
    }

    fn set_state(&self, state: SourceState, error: Option<Error>) {
        if let Some(shared) = self.shared.upgrade() {
            shared.set_state(self.epoch, state, error);
        }
    }
}

#[derive(Default)]
struct ConsumerQueue {
    inner: Mutex<QueueInner>,
    notify: Notify,
    condvar: Condvar,
}

#[derive(Default)]
struct QueueInner {
    frames: VecDeque<Arc<AccessUnit>>,
    dropped: u64,
    waiting_for_idr: bool,
    /// Whether the consumer has been given a picture (drops count only after that).
    started: bool,
    closed: bool,
}

impl ConsumerQueue {
    fn lock(&self) -> MutexGuard<'_, QueueInner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn push(&self, au: &Arc<AccessUnit>) {
        let mut q = self.lock();
        if q.frames.len() >= QUEUE_CAPACITY {
            // Too far behind: drop the backlog and restart at the next IDR.
            q.dropped += q.frames.len() as u64;
            q.frames.clear();
            q.waiting_for_idr = true;
        }
        if q.waiting_for_idr {
            if !au.is_idr {
                // Pictures before a new consumer's first IDR are not losses.
                q.dropped += u64::from(q.started);
                return;
            }
            q.waiting_for_idr = false;
        }
        q.started = true;
        q.frames.push_back(Arc::clone(au));
        drop(q);
        self.notify.notify_one();
        self.condvar.notify_one();
    }

    /// Takes no more pictures until the next IDR (the pictures queued stay).
    fn restart_at_idr(&self) {
        self.lock().waiting_for_idr = true;
    }

    fn close(&self) {
        self.lock().closed = true;
        self.notify.notify_one();
        self.condvar.notify_one();
    }
}

/// Pictures a consumer may fall behind before it loses its backlog (about 4 s at 30 fps).
pub const QUEUE_CAPACITY: usize = 120;
/// Longest GOP kept for new consumers; longer GOPs are not prebuffered past this.
pub const MAX_GOP_FRAMES: usize = 300;
