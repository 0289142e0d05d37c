//! The camera glue: one [`CameraRuntime`] per enabled camera (its media hubs, its snapshotter,
//! one stream slot per Camera RTP Stream Management service), the [`Routes`] each HAP server
//! uses to send camera writes and snapshot requests to them, and the [`CameraManager`] that owns
//! them all and knows every live stream (admin API, metrics, shutdown).
//!
//! Protocol mapping lives in [`negotiate`]; the stream lifecycle in [`slot`].

pub(crate) mod advert;
mod deferred;
mod host;
pub(crate) mod motion;
pub(crate) mod negotiate;
mod slot;
mod stream_task;
mod totals;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use hap_proto::db::services;
use hap_proto::db::{CharId, Database, HapStatus, HapType, WriteRequest, WriteResult};
use media::camera::Camera;
use media::hub::{ConnectMode, Hub, HubConfig};
use media::session::{LiveStats, StreamControl};
use media::snapshot::Snapshotter;
use media::source::{RtspConfig, SourceConfig, TestPatternConfig};
use tokio::sync::watch;

use crate::config::{CameraSettings, Source, Transcode};

use deferred::{Deferred, Job};
pub(crate) use host::{CameraHost, RequestOrigin};
pub(crate) use slot::Slot;
pub(crate) use totals::StreamTotals;

/// The characteristics of one Camera RTP Stream Management service (HAP §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StreamChars {
    /// Selected RTP Stream Configuration (`117`).
    pub(crate) selected: CharId,
    /// Setup Endpoints (`118`).
    pub(crate) setup: CharId,
    /// Streaming Status (`120`).
    pub(crate) status: CharId,
    /// Active (`B0`).
    pub(crate) active: Option<CharId>,
}

/// Where a camera sits in a database: its aid and its stream services in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Placement {
    /// The camera's accessory.
    pub(crate) aid: u64,
    /// One entry per Camera RTP Stream Management service.
    pub(crate) streams: Vec<StreamChars>,
    /// The Microphone service's Mute.
    pub(crate) mute: Option<CharId>,
}

impl Placement {
    /// Finds the stream services of accessory `aid` in `db`.
    pub(crate) fn find(db: &Database, aid: u64) -> Self {
        let apple = |t: u32| HapType::Apple(t);
        let streams = db
            .accessories()
            .iter()
            .filter(|a| a.aid == aid)
            .flat_map(|a| a.services.iter())
            .filter(|s| s.ty == apple(services::CAMERA_RTP_STREAM_MANAGEMENT))
            .filter_map(|s| {
                let find = |t: u32| {
                    s.characteristics
                        .iter()
                        .find(|c| c.ty == apple(t))
                        .map(|c| CharId::new(aid, c.iid))
                };
                Some(StreamChars {
                    selected: find(services::SELECTED_RTP_STREAM_CONFIGURATION)?,
                    setup: find(services::SETUP_ENDPOINTS)?,
                    status: find(services::STREAMING_STATUS)?,
                    active: find(services::ACTIVE),
                })
            })
            .collect();
        let mute = db
            .accessories()
            .iter()
            .filter(|a| a.aid == aid)
            .flat_map(|a| a.services.iter())
            .filter(|s| s.ty == apple(services::MICROPHONE))
            .flat_map(|s| s.characteristics.iter())
            .find(|c| c.ty == apple(services::MUTE))
            .map(|c| CharId::new(aid, c.iid));
        Self { aid, streams, mute }
    }
}

/// The cameras of one HAP server, by aid and by stream characteristic.
#[derive(Default)]
pub(crate) struct Routes {
    by_aid: BTreeMap<u64, Arc<CameraRuntime>>,
    by_char: HashMap<CharId, (Arc<CameraRuntime>, usize, CharKind)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CharKind {
    Selected,
    Setup,
    Active,
    /// The Microphone's Mute (the camera's, not one slot's).
    Mute,
}

impl Routes {
    /// Routes to these cameras (each placed in this server's database).
    pub(crate) fn new(cameras: &[Arc<CameraRuntime>]) -> Self {
        let mut routes = Self::default();
        for cam in cameras {
            routes.by_aid.insert(cam.placement.aid, cam.clone());
            for (i, slot) in cam.slots.iter().enumerate() {
                let c = slot.chars();
                routes
                    .by_char
                    .insert(c.selected, (cam.clone(), i, CharKind::Selected));
                routes
                    .by_char
                    .insert(c.setup, (cam.clone(), i, CharKind::Setup));
                if let Some(active) = c.active {
                    routes
                        .by_char
                        .insert(active, (cam.clone(), i, CharKind::Active));
                }
            }
            if let Some(mute) = cam.placement.mute {
                routes
                    .by_char
                    .insert(mute, (cam.clone(), 0, CharKind::Mute));
            }
        }
        routes
    }

    /// The camera of accessory `aid`.
    pub(crate) fn camera(&self, aid: u64) -> Option<&Arc<CameraRuntime>> {
        self.by_aid.get(&aid)
    }

    /// Every camera of the server.
    pub(crate) fn cameras(&self) -> Vec<Arc<CameraRuntime>> {
        self.by_aid.values().cloned().collect()
    }

    /// The manager of these cameras (`None` for a server without cameras).
    pub(crate) fn manager(&self) -> Option<Arc<CameraManager>> {
        self.by_aid.values().find_map(|c| c.manager.upgrade())
    }

    /// Handles a write to a camera characteristic; `None` when the write is not for a camera.
    /// Runs under the server lock: it never touches the database, and defers Streaming Status
    /// updates to a task.
    pub(crate) fn write(
        &self,
        request: &WriteRequest<'_>,
        origin: &RequestOrigin,
    ) -> Option<WriteResult> {
        let (cam, index, kind) = self.by_char.get(&request.id)?;
        if *kind == CharKind::Mute {
            // Every audio stream of the camera sends silence while muted (its timeline goes
            // on); the value is stored as written.
            return Some(match request.value {
                hap_proto::db::Value::Bool(muted) => {
                    cam.muted.store(*muted, Ordering::Relaxed);
                    WriteResult::Store
                }
                _ => WriteResult::Fail(HapStatus::INVALID_VALUE),
            });
        }
        let slot = cam.slots.get(*index)?;
        Some(match (kind, request.value) {
            (CharKind::Setup, hap_proto::db::Value::Tlv8(bytes)) => {
                slot.setup_endpoints(cam, bytes, origin)
            }
            (CharKind::Selected, hap_proto::db::Value::Tlv8(bytes)) => {
                slot.selected_configuration(cam, bytes, origin)
            }
            (CharKind::Active, value) => {
                slot.set_active(cam, !matches!(value, hap_proto::db::Value::Uint(0)), origin);
                WriteResult::Store
            }
            _ => WriteResult::Fail(HapStatus::INVALID_VALUE),
        })
    }
}

/// One camera while it is enabled: media hubs, snapshots, stream slots.
pub(crate) struct CameraRuntime {
    /// The camera id of the config.
    pub(crate) id: String,
    media: Arc<Camera>,
    snapshots: Snapshotter,
    sub_snapshots: Option<(Snapshotter, Hub)>,
    placement: Placement,
    slots: Vec<Slot>,
    manager: Weak<CameraManager>,
    /// When streams re-encode (the camera's `transcode` setting).
    transcode: Transcode,
    /// Motion detection from the pictures, when on; taken when the camera stops.
    motion: Mutex<Option<motion::MotionRuntime>>,
    /// The camera is the built-in test pattern (which has sound).
    test_pattern: bool,
    /// The Microphone's Mute: audio streams send silence while it is set.
    pub(crate) muted: Arc<std::sync::atomic::AtomicBool>,
}

impl CameraRuntime {
    /// A JPEG of about `width`×`height` from the camera's newest picture (HAP §11.5). Small
    /// requests are served from the substream when there is one.
    pub(crate) async fn snapshot(&self, width: u32, height: u32) -> Result<Vec<u8>, media::Error> {
        let snapshotter = match &self.sub_snapshots {
            Some((sub, hub)) => {
                let (sw, sh) = hub.video_size().unwrap_or(SUBSTREAM_SIZE_GUESS);
                if width <= sw && height <= sh {
                    sub
                } else {
                    &self.snapshots
                }
            }
            None => &self.snapshots,
        };
        let shot = snapshotter.snapshot(width, height).await?;
        if let Some(m) = self.manager.upgrade() {
            m.snapshots.fetch_add(1, Ordering::Relaxed);
        }
        Ok(shot.jpeg.to_vec())
    }

    /// What the camera's audio comes from: the test pattern's beep, or an RTSP camera's own
    /// audio track through its main stream's hub (nothing is sent when it has none).
    pub(crate) fn audio_input(&self) -> Option<media::audio::sender::AudioInput> {
        use media::audio::sender::AudioInput;
        Some(if self.test_pattern {
            AudioInput::Tone
        } else {
            AudioInput::Camera(self.media.main().clone())
        })
    }

    /// The accessory id of the camera in its server's database.
    pub(crate) fn aid(&self) -> u64 {
        self.placement.aid
    }

    /// Writes every stream service's Active and Streaming Status into `server`'s database.
    pub(crate) fn publish(&self, server: &dyn CameraHost) {
        for slot in &self.slots {
            slot.publish(server);
        }
    }

    /// Ends every stream of the camera and its motion detection (it is being removed or
    /// reconfigured, or the bridge stops).
    pub(crate) fn stop_all(&self, why: &'static str) {
        for slot in &self.slots {
            slot.stop(why);
        }
        drop(lock(&self.motion).take());
    }

    /// The motion detection's figures, when it runs.
    pub(crate) fn motion_status(&self) -> Option<motion::MotionStatus> {
        lock(&self.motion)
            .as_ref()
            .map(motion::MotionRuntime::status)
    }

    /// The motion detector's last picture, drawn, when it runs and has analysed one.
    pub(crate) fn motion_picture(&self) -> Option<media::motion::render::Rgb> {
        lock(&self.motion)
            .as_ref()
            .and_then(motion::MotionRuntime::picture)
    }

    /// Ends the streams set up by connection `conn` (it closed, HAP §7.1 step 4).
    pub(crate) fn connection_closed(self: &Arc<Self>, conn: u64, server: &dyn CameraHost) {
        for slot in &self.slots {
            slot.connection_closed(self, conn, server);
        }
    }

    /// RTSP sessions re-established after failures (main stream and substream).
    pub(crate) fn reconnects(&self) -> u64 {
        let sub = self.media.sub().map_or(0, |h| h.status().reconnects);
        self.media.main().status().reconnects + sub
    }

    fn media(&self) -> &Arc<Camera> {
        &self.media
    }

    /// Queues work that must not run under the server lock (see [`deferred`]).
    fn defer(&self, job: Job) {
        if let Some(m) = self.manager.upgrade() {
            m.deferred.push(job);
        }
    }
}

/// A live stream as the admin API and metrics see it.
#[derive(Clone)]
pub(crate) struct StreamEntry {
    /// Stream id, unique while the process runs.
    pub(crate) id: u64,
    /// Camera id.
    pub(crate) camera: String,
    /// Where the video goes.
    pub(crate) controller: SocketAddr,
    /// When the Start arrived.
    pub(crate) started: Instant,
    control: StreamControl,
}

impl StreamEntry {
    /// The stream's figures now.
    pub(crate) fn stats(&self) -> LiveStats {
        self.control.stats()
    }

    /// Ends the stream.
    pub(crate) fn stop(&self) {
        self.control.stop();
    }
}

/// All camera runtimes and live streams of the process.
pub(crate) struct CameraManager {
    cameras: Mutex<BTreeMap<String, Arc<CameraRuntime>>>,
    streams: Mutex<BTreeMap<u64, StreamEntry>>,
    next_stream: AtomicU64,
    /// Stream tasks alive (starting, running or winding down).
    tasks: watch::Sender<usize>,
    /// Streams started since the process started.
    pub(crate) streams_started: AtomicU64,
    /// Snapshots served.
    pub(crate) snapshots: AtomicU64,
    /// The figures of the streams that ended, folded in as each ends. Locked only while
    /// `streams` is held, so a stream moves from live to ended in one step for every reader.
    ended: Mutex<StreamTotals>,
    /// Work camera writes queue instead of doing under the server lock.
    deferred: Deferred,
    /// Where motion detection sets Motion Detected.
    sensors: Arc<dyn motion::MotionSink>,
    /// Motion figures per camera id, over the process's life.
    motion_totals: Mutex<BTreeMap<String, Arc<motion::MotionTotals>>>,
}

impl CameraManager {
    /// An empty manager; motion detection sets Motion Detected through `sensors`.
    pub(crate) fn new(sensors: Arc<dyn motion::MotionSink>) -> Arc<Self> {
        Arc::new(Self {
            cameras: Mutex::new(BTreeMap::new()),
            streams: Mutex::new(BTreeMap::new()),
            next_stream: AtomicU64::new(1),
            tasks: watch::channel(0).0,
            streams_started: AtomicU64::new(0),
            snapshots: AtomicU64::new(0),
            ended: Mutex::new(StreamTotals::default()),
            deferred: Deferred::start(),
            sensors,
            motion_totals: Mutex::new(BTreeMap::new()),
        })
    }

    /// Motion figures per camera id (cameras whose detection ran since the process started),
    /// with the running detections' latest counts folded in.
    pub(crate) fn motion_totals(&self) -> Vec<(String, Arc<motion::MotionTotals>)> {
        for cam in self.lock_cameras().values() {
            if let Some(m) = lock(&cam.motion).as_ref() {
                m.fold();
            }
        }
        lock(&self.motion_totals)
            .iter()
            .map(|(id, t)| (id.clone(), t.clone()))
            .collect()
    }

    /// Starts `cam`'s motion detection on its substream (or main stream) when it is on. A
    /// failure leaves the camera streaming without it (logged).
    fn start_motion(&self, cam: &CameraSettings, media: &Camera) -> Option<motion::MotionRuntime> {
        if !cam.motion_detection.enabled {
            return None;
        }
        let (hub, stream) = match media.sub() {
            Some(sub) => (sub, "substream"),
            None => (media.main(), "main"),
        };
        let totals = lock(&self.motion_totals)
            .entry(cam.id.clone())
            .or_default()
            .clone();
        match motion::MotionRuntime::start(
            &cam.id,
            hub,
            stream,
            &cam.motion_detection,
            self.sensors.clone(),
            totals,
        ) {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::warn!(camera = %cam.id, error = %e, "motion detection not started");
                None
            }
        }
    }

    /// Timers of camera work waiting (stream endpoints expiring): at most one per stream slot.
    pub(crate) fn pending_timers(&self) -> usize {
        self.deferred.pending_timers()
    }

    /// Binds stream sockets on the address a controller's HAP connection arrived at (`local`),
    /// so that its Setup Endpoints writes find one ready. Not under a server lock.
    pub(crate) fn prepare_stream_sockets(&self, local: SocketAddr) {
        self.deferred.prepare(slot::stream_bind_address(local));
    }

    /// Creates the runtime of `cam` placed at `placement` (its hubs start as configured),
    /// replacing and stopping a previous runtime of the same id.
    pub(crate) fn attach(
        self: &Arc<Self>,
        cam: &CameraSettings,
        placement: Placement,
    ) -> anyhow::Result<Arc<CameraRuntime>> {
        let mode = if cam.always_on {
            ConnectMode::AlwaysOn
        } else {
            ConnectMode::Lazy {
                idle_timeout: LAZY_IDLE,
            }
        };
        let hub = |source: &Source, tag: &str| {
            Hub::new(HubConfig {
                name: format!("{}{tag}", cam.id),
                source: source_config(source),
                mode,
                size_hint: None,
            })
            .map_err(|e| anyhow::anyhow!("camera {}: {e}", cam.id))
        };
        let main = hub(&cam.source, "")?;
        let sub = cam.substream.as_ref().map(|s| hub(s, "/sub")).transpose()?;
        let snapshots = Snapshotter::new(main.clone(), SNAPSHOT_MAX_AGE);
        let sub_snapshots = sub
            .as_ref()
            .map(|s| (Snapshotter::new(s.clone(), SNAPSHOT_MAX_AGE), s.clone()));
        // A controller's Active switch (B0) outlives a rebuild of the camera's runtime.
        let previous = self.camera(&cam.id);
        let was_active = |i: usize| {
            previous
                .as_ref()
                .and_then(|p| p.slots.get(i))
                .is_none_or(|s| s.is_active())
        };
        let slots = placement
            .streams
            .iter()
            .enumerate()
            .map(|(i, chars)| Slot::new(i, *chars, was_active(i)))
            .collect();
        let media = Arc::new(Camera::new(main, sub));
        let motion = self.start_motion(cam, &media);
        let runtime = Arc::new(CameraRuntime {
            id: cam.id.clone(),
            media,
            snapshots,
            sub_snapshots,
            placement,
            slots,
            manager: Arc::downgrade(self),
            transcode: cam.transcode,
            motion: Mutex::new(motion),
            test_pattern: cam.source == Source::TestPattern,
            muted: previous
                .as_ref()
                .map_or_else(Default::default, |p| p.muted.clone()),
        });
        let old = self.lock_cameras().insert(cam.id.clone(), runtime.clone());
        if let Some(old) = old {
            old.stop_all("camera reconfigured");
        }
        Ok(runtime)
    }

    /// Removes a camera: its streams end, its hubs close when the last user lets go.
    pub(crate) fn detach(&self, id: &str) {
        let old = self.lock_cameras().remove(id);
        if let Some(old) = old {
            old.stop_all("camera removed");
        }
    }

    /// The runtime of camera `id`.
    pub(crate) fn camera(&self, id: &str) -> Option<Arc<CameraRuntime>> {
        self.lock_cameras().get(id).cloned()
    }

    /// RTSP reconnects per camera.
    pub(crate) fn reconnects(&self) -> Vec<(String, u64)> {
        self.lock_cameras()
            .values()
            .map(|c| (c.id.clone(), c.reconnects()))
            .collect()
    }

    /// Live streams, oldest first.
    pub(crate) fn streams(&self) -> Vec<StreamEntry> {
        self.lock_streams().values().cloned().collect()
    }

    /// The figures of every stream since the process started: the ended ones and the live ones
    /// as they are now. Each figure only grows from one call to the next.
    pub(crate) fn stream_totals(&self) -> StreamTotals {
        let live = self.lock_streams();
        let mut totals = lock(&self.ended).clone();
        for entry in live.values() {
            totals.add(&entry.stats().stream);
        }
        totals
    }

    /// The number of live streams.
    pub(crate) fn active_streams(&self) -> usize {
        self.lock_streams().len()
    }

    /// Ends stream `id`; false when there is no such stream.
    pub(crate) fn stop_stream(&self, id: u64) -> bool {
        match self.lock_streams().get(&id) {
            Some(s) => {
                s.stop();
                true
            }
            None => false,
        }
    }

    /// Ends every stream and waits (bounded) until their tasks, sockets and threads are gone.
    pub(crate) async fn shutdown(&self) {
        let cameras: Vec<_> = self.lock_cameras().values().cloned().collect();
        for cam in &cameras {
            cam.stop_all("shutdown");
        }
        let mut tasks = self.tasks.subscribe();
        let done = tasks.wait_for(|n| *n == 0);
        if tokio::time::timeout(SHUTDOWN_GRACE, done).await.is_err() {
            tracing::warn!("camera streams still ending after {SHUTDOWN_GRACE:?}");
        }
    }

    fn next_stream_id(&self) -> u64 {
        self.next_stream.fetch_add(1, Ordering::Relaxed)
    }

    fn register(&self, entry: StreamEntry) {
        self.streams_started.fetch_add(1, Ordering::Relaxed);
        self.lock_streams().insert(entry.id, entry);
    }

    /// Forgets an ended stream, folding its final figures into the ended totals under the
    /// same lock (a reader sees it live or ended, never neither nor both).
    fn unregister(&self, id: u64) {
        let mut live = self.lock_streams();
        if let Some(entry) = live.remove(&id) {
            lock(&self.ended).add(&entry.stats().stream);
        }
    }

    fn task_started(self: &Arc<Self>) -> TaskGuard {
        self.tasks.send_modify(|n| *n += 1);
        TaskGuard(Arc::downgrade(self))
    }

    fn lock_cameras(&self) -> MutexGuard<'_, BTreeMap<String, Arc<CameraRuntime>>> {
        lock(&self.cameras)
    }

    fn lock_streams(&self) -> MutexGuard<'_, BTreeMap<u64, StreamEntry>> {
        lock(&self.streams)
    }
}

/// Locks `m`, also after a panic elsewhere (the data stay usable: plain maps and sums).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Counts a stream task as alive until dropped (also when the task is cancelled).
struct TaskGuard(Weak<CameraManager>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        if let Some(m) = self.0.upgrade() {
            m.tasks.send_modify(|n| *n = n.saturating_sub(1));
        }
    }
}

fn source_config(source: &Source) -> SourceConfig {
    match source {
        Source::TestPattern => SourceConfig::TestPattern(TestPatternConfig::default()),
        Source::Rtsp(url) => SourceConfig::Rtsp(RtspConfig::new(url.expose())),
    }
}

/// A lazy hub closes its RTSP session this long after its last viewer.
const LAZY_IDLE: Duration = Duration::from_secs(30);
/// A snapshot is reused for this long (the Home app asks for every tile on each open).
const SNAPSHOT_MAX_AGE: Duration = Duration::from_secs(2);
/// Assumed substream size until its SPS has been seen.
const SUBSTREAM_SIZE_GUESS: (u32, u32) = (640, 360);
/// How long shutdown waits for streams to end.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
