//! One Camera RTP Stream Management service and the stream session it carries (HAP §7.1):
//! Setup Endpoints prepares (UDP socket, SSRC), Start runs a `media` stream on a task, and the
//! stream ends on End, when the HAP connection that set it up closes, when the controller's RTCP
//! goes silent, when Active is switched off, when the camera is removed, and on shutdown. The
//! task owns the socket and the media session, so ending it leaves nothing behind.

use std::net::{IpAddr, SocketAddr, SocketAddrV6};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hap_proto::camera::{
    SelectedStreamConfig, SessionCommand, SetupEndpointsRequest, SetupEndpointsResponse,
    SetupStatus, StreamingStatus, encode_streaming_status,
};
use hap_proto::db::{HapStatus, Value, WriteResult};
use media::session::Control;
use rand::RngExt as _;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::deferred::Job;
use super::host::{CameraHost, RequestOrigin};
use super::negotiate::{self, Endpoints};
use super::stream_task::{Command, StreamTask};
use super::{CameraRuntime, StreamChars};

/// A stream service and its session state.
pub(crate) struct Slot {
    index: usize,
    chars: StreamChars,
    state: Mutex<State>,
    /// Active (`B0`): off refuses new sessions and reports the service unavailable.
    active: AtomicBool,
    /// The slot's one expiry timer is pending (see `arm_expiry`).
    expiry_armed: AtomicBool,
}

enum State {
    Idle,
    /// Setup Endpoints answered; waiting for Start.
    Prepared(Prepared),
    /// Start accepted; the task runs the stream.
    Running(Running),
}

struct Prepared {
    session_id: [u8; 16],
    conn: u64,
    endpoints: Endpoints,
    socket: Arc<UdpSocket>,
    since: Instant,
}

struct Running {
    session_id: [u8; 16],
    conn: u64,
    stream_id: u64,
    commands: mpsc::UnboundedSender<Command>,
}

impl State {
    fn session(&self) -> Option<([u8; 16], u64)> {
        match self {
            Self::Idle => None,
            Self::Prepared(p) => Some((p.session_id, p.conn)),
            Self::Running(r) => Some((r.session_id, r.conn)),
        }
    }
}

impl Slot {
    /// A free slot; `active` is the service's Active (`B0`) state (on for a new camera; a
    /// rebuilt runtime keeps what controllers set on the one it replaces).
    pub(crate) fn new(index: usize, chars: StreamChars, active: bool) -> Self {
        Self {
            index,
            chars,
            state: Mutex::new(State::Idle),
            active: AtomicBool::new(active),
            expiry_armed: AtomicBool::new(false),
        }
    }

    /// Whether the stream service is switched on (Active, `B0`).
    pub(crate) fn is_active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    /// Writes the slot's Active and Streaming Status into `server`'s database (notifying
    /// subscribers of a change). A database that was rebuilt or carried over from another
    /// runtime of the camera then says what this slot does.
    pub(crate) fn publish(&self, server: &dyn CameraHost) {
        if let Some(active) = self.chars.active {
            let _ = server.set_value(active, Value::Uint(u64::from(self.is_active())));
        }
        write_status(server, self);
    }

    pub(crate) fn chars(&self) -> &StreamChars {
        &self.chars
    }

    /// Whether a session holds the slot (Streaming Status "in use").
    pub(crate) fn in_use(&self) -> bool {
        !matches!(*self.lock(), State::Idle)
    }

    /// A Setup Endpoints write (HAP §7.5): prepares a session and answers with our endpoint,
    /// or with status busy / error.
    pub(crate) fn setup_endpoints(
        &self,
        cam: &Arc<CameraRuntime>,
        bytes: &[u8],
        origin: &RequestOrigin,
    ) -> WriteResult {
        let request = match SetupEndpointsRequest::decode(bytes) {
            Ok(r) => r,
            Err(e) => {
                tracing::info!(camera = %cam.id, slot = self.index, peer = %origin.peer, error = %e, "Setup Endpoints refused: malformed");
                return WriteResult::Fail(HapStatus::INVALID_VALUE);
            }
        };
        let answer = |status| {
            WriteResult::Answer(Value::Tlv8(
                SetupEndpointsResponse::status_only(request.session_id, status).encode(),
            ))
        };
        if !self.active.load(Ordering::Relaxed) {
            tracing::info!(camera = %cam.id, slot = self.index, peer = %origin.peer, "Setup Endpoints refused: stream service switched off");
            return answer(SetupStatus::BUSY);
        }
        let mut state = self.lock();
        let free = match &*state {
            State::Idle => true,
            // A session that was never started may be replaced by its own connection or once
            // it is stale; a running one never is (HAP §7.5: busy).
            State::Prepared(p) => p.conn == origin.conn || p.since.elapsed() > PREPARE_TIMEOUT,
            State::Running(_) => false,
        };
        if !free {
            tracing::info!(camera = %cam.id, slot = self.index, peer = %origin.peer, "Setup Endpoints refused: stream service busy");
            return answer(SetupStatus::BUSY);
        }
        if let Err(e) = negotiate::check_advertised_suites(&request) {
            // The controller's choice, not a failure of ours (HAP §7.4).
            tracing::info!(camera = %cam.id, slot = self.index, peer = %origin.peer, error = %e, "Setup Endpoints refused: SRTP suite not advertised");
            return answer(SetupStatus::ERROR);
        }
        let prepared = (|| {
            let ip = negotiate::local_ip_for(origin.local.ip(), request.controller.ip)?;
            let mut rng = rand::rng();
            let (ssrc, audio_ssrc) = (nonzero(&mut rng), nonzero(&mut rng));
            let mut endpoints = Endpoints::from_request(&request, ssrc, audio_ssrc)?;
            // Keep the connection's IPv6 scope (link-local addresses need it to send).
            if let (SocketAddr::V6(local), SocketAddr::V6(dest)) =
                (origin.local, &mut endpoints.destination)
                && IpAddr::V6(*local.ip()) == ip
                && dest.scope_id() == 0
            {
                dest.set_scope_id(local.scope_id());
            }
            let bind = stream_bind_address(origin.local);
            // Bound ahead of time (see `deferred`): no socket call under the server lock.
            let socket = cam
                .manager
                .upgrade()
                .and_then(|m| m.deferred.take_socket(bind))
                .ok_or_else(|| negotiate::NegotiateError(format!("no UDP socket ready on {ip}")))?;
            let local = socket
                .local_addr()
                .map_err(|e| negotiate::NegotiateError(format!("UDP socket on {ip}: {e}")))?;
            let response = negotiate::setup_response(&request, local, ssrc, audio_ssrc);
            Ok::<_, negotiate::NegotiateError>((endpoints, socket, local, response))
        })();
        match prepared {
            Ok((endpoints, socket, local, response)) => {
                tracing::info!(camera = %cam.id, slot = self.index, peer = %origin.peer, controller = %endpoints.destination, %local, "stream endpoints set up");
                let session_id = request.session_id;
                *state = State::Prepared(Prepared {
                    session_id,
                    conn: origin.conn,
                    endpoints,
                    socket: Arc::new(socket),
                    since: Instant::now(),
                });
                drop(state);
                self.sync_status_later(cam, &origin.host);
                // One expiry timer per slot, however many Setup Endpoints come: it re-arms itself
                // for the session prepared last.
                if !self.expiry_armed.swap(true, Ordering::Relaxed) {
                    arm_expiry(cam, &origin.host, self.index, PREPARE_TIMEOUT);
                }
                WriteResult::Answer(Value::Tlv8(response.encode()))
            }
            Err(e) => {
                tracing::warn!(camera = %cam.id, slot = self.index, peer = %origin.peer, error = %e, "Setup Endpoints failed");
                answer(SetupStatus::ERROR)
            }
        }
    }

    /// A Selected RTP Stream Configuration write (HAP §7.6).
    pub(crate) fn selected_configuration(
        &self,
        cam: &Arc<CameraRuntime>,
        bytes: &[u8],
        origin: &RequestOrigin,
    ) -> WriteResult {
        let selected = match SelectedStreamConfig::decode(bytes) {
            Ok(s) => s,
            Err(e) => {
                tracing::info!(camera = %cam.id, slot = self.index, peer = %origin.peer, error = %e, "stream configuration refused: malformed");
                return WriteResult::Fail(HapStatus::INVALID_VALUE);
            }
        };
        let mut state = self.lock();
        if state.session().map(|(id, _)| id) != Some(selected.session_id) {
            if selected.command == SessionCommand::END {
                // Ending a session that is already gone is not an error.
                return WriteResult::Store;
            }
            tracing::info!(camera = %cam.id, slot = self.index, peer = %origin.peer, command = selected.command.0, "stream configuration refused: unknown session id");
            return WriteResult::Fail(HapStatus::INVALID_VALUE);
        }
        let result = match selected.command {
            SessionCommand::START => self.start(cam, &mut state, &selected, origin),
            SessionCommand::END => {
                if let State::Running(r) = &*state {
                    let _ = r.commands.send(Command::Stop("End command"));
                }
                *state = State::Idle;
                drop(state);
                self.sync_status_later(cam, &origin.host);
                return WriteResult::Store;
            }
            SessionCommand::SUSPEND => send(&state, Control::Suspend),
            SessionCommand::RESUME => send(&state, Control::Resume),
            SessionCommand::RECONFIGURE => {
                match selected.video.as_ref().map(negotiate::reconfigure) {
                    Some(Ok(control)) => send(&state, control),
                    Some(Err(e)) => {
                        tracing::info!(camera = %cam.id, peer = %origin.peer, error = %e, "reconfigure refused");
                        Err(HapStatus::INVALID_VALUE)
                    }
                    None => Err(HapStatus::INVALID_VALUE),
                }
            }
            _ => Err(HapStatus::INVALID_VALUE),
        };
        match result {
            Ok(()) => WriteResult::Store,
            Err(status) => WriteResult::Fail(status),
        }
    }

    fn start(
        &self,
        cam: &Arc<CameraRuntime>,
        state: &mut MutexGuard<'_, State>,
        selected: &SelectedStreamConfig,
        origin: &RequestOrigin,
    ) -> Result<(), HapStatus> {
        let State::Prepared(prepared) = &**state else {
            // Started already: a repeated Start changes nothing.
            return if matches!(**state, State::Running(_)) {
                Ok(())
            } else {
                Err(HapStatus::NOT_ALLOWED_IN_CURRENT_STATE)
            };
        };
        let Some(video) = &selected.video else {
            tracing::info!(camera = %cam.id, peer = %origin.peer, "Start without video parameters refused");
            return Err(HapStatus::INVALID_VALUE);
        };
        let mut rng = rand::rng();
        let mut params = negotiate::stream_params(
            &prepared.endpoints,
            video,
            rng.random(),
            rng.random(),
        )
        .map_err(|e| {
            tracing::info!(camera = %cam.id, peer = %origin.peer, error = %e, "Start refused");
            HapStatus::INVALID_VALUE
        })?;
        params.mode = negotiate::feed_mode(cam.transcode);
        // Audio goes with the video when the camera has sound and the controller asked for a
        // stream we can send; otherwise the video starts alone (logged).
        let audio = match (
            &selected.audio,
            &prepared.endpoints.audio,
            cam.audio_input(),
        ) {
            (Some(asked), Some(endpoint), Some(input)) => {
                match negotiate::audio_params(endpoint, asked, rng.random(), rng.random()) {
                    Ok(mut p) => {
                        p.mute = cam.muted.clone();
                        Some((input, p))
                    }
                    Err(e) => {
                        tracing::info!(camera = %cam.id, peer = %origin.peer, error = %e, "stream without audio");
                        None
                    }
                }
            }
            (Some(_), _, None) => {
                tracing::debug!(camera = %cam.id, "stream without audio: the camera has none yet");
                None
            }
            _ => None,
        };
        let Some(manager) = cam.manager.upgrade() else {
            return Err(HapStatus::SERVICE_COMMUNICATION_FAILURE);
        };
        let stream_id = manager.next_stream_id();
        let (commands, rx) = mpsc::unbounded_channel();
        let socket = prepared.socket.clone();
        tracing::info!(
            camera = %cam.id, slot = self.index, stream = stream_id, peer = %origin.peer,
            size = %format_args!("{}x{}@{}", params.width, params.height, params.fps),
            kbps = params.kbps, "stream starting"
        );
        let guard = manager.task_started();
        let (weak_cam, host, index) = (
            Arc::downgrade(cam),
            Arc::downgrade(&origin.host),
            self.index,
        );
        let run = StreamTask {
            cam: cam.clone(),
            stream_id,
            params,
            audio,
            socket,
            rx,
            // The slot is free again, and Streaming Status says so.
            on_end: Box::new(move || {
                if let Some(cam) = weak_cam.upgrade()
                    && let Some(slot) = cam.slots.get(index)
                {
                    slot.finished(stream_id);
                    if let Some(host) = host.upgrade() {
                        sync_status(&*host, &cam, slot);
                    }
                }
            }),
        };
        // Spawned by the camera task, not here under the server lock.
        manager.deferred.push(Job::Spawn(Box::pin(async move {
            let _guard = guard;
            run.run().await;
        })));
        **state = State::Running(Running {
            session_id: selected.session_id,
            conn: origin.conn,
            stream_id,
            commands,
        });
        Ok(())
    }

    /// Active (`B0`) written: off ends the running session.
    pub(crate) fn set_active(&self, cam: &Arc<CameraRuntime>, on: bool, origin: &RequestOrigin) {
        if self.active.swap(on, Ordering::Relaxed) == on {
            return;
        }
        tracing::info!(camera = %cam.id, slot = self.index, on, "stream service switched");
        if !on {
            self.stop("Active switched off");
        }
        self.sync_status_later(cam, &origin.host);
    }

    /// Ends the session, whatever its state.
    pub(crate) fn stop(&self, why: &'static str) {
        let mut state = self.lock();
        if let State::Running(r) = &*state {
            let _ = r.commands.send(Command::Stop(why));
        }
        *state = State::Idle;
    }

    /// The connection that set the session up closed.
    pub(crate) fn connection_closed(
        &self,
        cam: &Arc<CameraRuntime>,
        conn: u64,
        server: &dyn CameraHost,
    ) {
        let mine = self.lock().session().is_some_and(|(_, c)| c == conn);
        if mine {
            tracing::info!(camera = %cam.id, slot = self.index, conn, "HAP connection closed: ending its stream");
            self.stop("HAP connection closed");
            sync_status(server, cam, self);
        }
    }

    /// Streaming Status follows the slot; the update is queued for the camera task, which runs
    /// it once the server lock (held by the write that got us here) is released. The value is
    /// read from the slot when the job runs, so the order of such jobs does not matter.
    fn sync_status_later(&self, cam: &Arc<CameraRuntime>, host: &Arc<dyn CameraHost>) {
        let (weak_cam, host) = (Arc::downgrade(cam), Arc::downgrade(host));
        let index = self.index;
        cam.defer(Job::Now(Box::new(move || {
            if let (Some(cam), Some(host)) = (weak_cam.upgrade(), host.upgrade())
                && let Some(slot) = cam.slots.get(index)
            {
                sync_status(&*host, &cam, slot);
            }
        })));
    }

    fn finished(&self, stream_id: u64) {
        let mut state = self.lock();
        if matches!(&*state, State::Running(r) if r.stream_id == stream_id) {
            *state = State::Idle;
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn send(state: &State, control: Control) -> Result<(), HapStatus> {
    match state {
        State::Running(r) => {
            let _ = r.commands.send(Command::Control(control));
            Ok(())
        }
        _ => Err(HapStatus::NOT_ALLOWED_IN_CURRENT_STATE),
    }
}

/// Checks slot `index` for an unstarted prepared session `after` from now (see [`expire`]).
fn arm_expiry(cam: &Arc<CameraRuntime>, host: &Arc<dyn CameraHost>, index: usize, after: Duration) {
    let (weak_cam, weak_host) = (Arc::downgrade(cam), Arc::downgrade(host));
    cam.defer(Job::After(
        after,
        Box::new(move || {
            if let (Some(cam), Some(host)) = (weak_cam.upgrade(), weak_host.upgrade()) {
                expire(&host, &cam, index);
            }
        }),
    ));
}

/// Drops slot `index`'s prepared session if it was never started within [`PREPARE_TIMEOUT`];
/// a session prepared since then gets the timer again for the rest of its time.
fn expire(host: &Arc<dyn CameraHost>, cam: &Arc<CameraRuntime>, index: usize) {
    let Some(slot) = cam.slots.get(index) else {
        return;
    };
    let (expired, rearm) = {
        let mut state = slot.lock();
        match &*state {
            State::Prepared(p) if p.since.elapsed() >= PREPARE_TIMEOUT => {
                *state = State::Idle;
                (true, None)
            }
            State::Prepared(p) => (
                false,
                Some(PREPARE_TIMEOUT.saturating_sub(p.since.elapsed())),
            ),
            _ => (false, None),
        }
    };
    match rearm {
        Some(left) => arm_expiry(cam, host, index, left),
        None => slot.expiry_armed.store(false, Ordering::Relaxed),
    }
    if expired {
        tracing::info!(camera = %cam.id, slot = index, "stream endpoints expired without a Start");
        sync_status(&**host, cam, slot);
    }
}

/// The local address stream sockets bind to for a HAP connection arriving at `local`: its IP
/// (an IPv4-mapped IPv6 address as IPv4), with the IPv6 scope, any port.
pub(super) fn stream_bind_address(local: SocketAddr) -> SocketAddr {
    match local {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), 0),
            None => SocketAddr::V6(SocketAddrV6::new(*v6.ip(), 0, 0, v6.scope_id())),
        },
        SocketAddr::V4(v4) => SocketAddr::new(IpAddr::V4(*v4.ip()), 0),
    }
}

/// Sets Streaming Status from the slot's state, unless `cam` is no longer the runtime `server`
/// serves for that accessory (a task of a replaced runtime ending late must not overwrite what
/// the new runtime's slot says).
fn sync_status(server: &dyn CameraHost, cam: &CameraRuntime, slot: &Slot) {
    if server.serves(cam) {
        write_status(server, slot);
    }
}

/// Sets Streaming Status from the slot's state (notifying subscribers on a change).
fn write_status(server: &dyn CameraHost, slot: &Slot) {
    let status = if !slot.active.load(Ordering::Relaxed) {
        StreamingStatus::UNAVAILABLE
    } else if slot.in_use() {
        StreamingStatus::IN_USE
    } else {
        StreamingStatus::AVAILABLE
    };
    let _ = server.set_value(
        slot.chars.status,
        Value::Tlv8(encode_streaming_status(status)),
    );
}

fn nonzero(rng: &mut impl rand::Rng) -> u32 {
    loop {
        let v: u32 = rng.random();
        if v != 0 {
            return v;
        }
    }
}

/// A session prepared by Setup Endpoints but never started is dropped after this long.
const PREPARE_TIMEOUT: Duration = Duration::from_secs(30);
