//! One controller connection: reads the socket, drives `hap_proto::server::Connection` under the
//! server lock, writes what it transmits, forwards events, and closes on protocol errors, on
//! removal of its controller's pairing, on idle plaintext and on slow peers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hap_proto::db::{HapStatus, HapType, WriteHandler, WriteRequest, WriteResult};
use hap_proto::pairing::setup::ConnectionId;
use hap_proto::server::{Connection, ConnectionEvent, ServerContext, SnapshotRequest};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::Notify;
use tokio::sync::broadcast::error::RecvError;

use super::admission::ForPeer;
use super::{ConnectionCommand, ServerState};
use crate::camera::{RequestOrigin, Routes};

/// A connection as its handlers see it: its server, and where it comes from (as cameras see it).
struct Link<'a> {
    inner: &'a Arc<ServerState>,
    origin: RequestOrigin,
}

/// Serves one connection; the accept loop has already counted it in `inner.connections`.
pub(super) async fn run(
    inner: Arc<ServerState>,
    socket: TcpStream,
    peer: SocketAddr,
    id: u64,
    evict: Arc<Notify>,
) {
    tracing::debug!(server = %inner.name, %peer, conn = id, "connection opened");
    let local = socket.local_addr().unwrap_or_else(|_| inner.local_addr);
    // Releases what the connection holds when it ends, also when shutdown aborts its task (a
    // snapshot or a peer that does not read can outlast the shutdown grace).
    let mut closed = Closed {
        inner: Arc::clone(&inner),
        peer,
        id,
        verified: false,
        reason: "aborted",
    };
    let link = Link {
        inner: &inner,
        origin: RequestOrigin {
            host: inner.clone(),
            conn: id,
            local,
            peer,
        },
    };
    closed.reason = serve(&link, socket, &evict, &mut closed.verified).await;
}

/// A connection's cleanup, run on drop.
struct Closed {
    inner: Arc<ServerState>,
    peer: SocketAddr,
    id: u64,
    /// Counted in `inner.verified`.
    verified: bool,
    reason: &'static str,
}

impl Drop for Closed {
    fn drop(&mut self) {
        let (inner, id) = (&self.inner, self.id);
        let cameras = {
            let mut shared = inner.lock();
            shared.gate.connection_closed(ConnectionId(id));
            shared.cameras.cameras()
        };
        // Streams set up over this connection end with it (HAP §7.1 step 4).
        for cam in cameras {
            cam.connection_closed(id, inner.as_ref());
        }
        if self.verified {
            inner.verified.fetch_sub(1, Ordering::Relaxed);
        }
        inner.unverified.remove(id);
        inner.connections.fetch_sub(1, Ordering::Relaxed);
        tracing::debug!(server = %inner.key.as_db(), peer = %self.peer, conn = id, reason = self.reason, "connection closed");
    }
}

async fn serve(
    link: &Link<'_>,
    socket: TcpStream,
    evict: &Notify,
    verified: &mut bool,
) -> &'static str {
    let (inner, peer, id) = (link.inner, link.origin.peer, link.origin.conn);
    let mut conn = Connection::new(ConnectionId(id));
    let mut changes = inner.changes.subscribe();
    let mut control = inner.commands.subscribe();
    let stops_seen = inner.stops();
    let (mut rd, mut wr) = socket.into_split();
    let mut buf = vec![0u8; READ_BUFFER];
    let mut last_input = Instant::now();
    let reason = loop {
        let wake = conn.poll_timeout();
        let idle_deadline = (!conn.is_encrypted()).then(|| last_input + PLAINTEXT_IDLE);
        tokio::select! {
            read = rd.read(&mut buf) => {
                let n = match read {
                    Ok(0) => break "peer closed",
                    Ok(n) => n,
                    Err(_) => break "read error",
                };
                last_input = Instant::now();
                let input = buf.get(..n).unwrap_or_default();
                let plaintext = !conn.is_encrypted();
                let handled = off_the_runtime_if(plaintext, || {
                    with_context(link, |cx| {
                        conn.handle_input(input, cx)?;
                        Ok::<_, hap_proto::Error>(take_events(link, &mut conn))
                    })
                });
                let events = match handled {
                    Ok(events) => events,
                    Err(e) => {
                        tracing::info!(server = %inner.name, %peer, error = %e, "closing: session error");
                        break "session error";
                    }
                };
                if let Err(reason) = answer(link, &mut conn, &mut wr, events, verified).await {
                    break reason;
                }
                // Requests beyond one turn's bound wait in the connection: the lock is released
                // between turns and other tasks run (hap_proto::server::MAX_REQUESTS_PER_TURN).
                if let Err(reason) = drain_backlog(link, &mut conn, &mut wr, verified).await {
                    break reason;
                }
            }
            change = changes.recv() => match change {
                Ok((origin, change)) => {
                    if origin != Some(id) {
                        conn.notify(&change, Instant::now());
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(server = %inner.name, %peer, missed = n, "slow connection missed events");
                }
                Err(RecvError::Closed) => break "server stopped",
            },
            msg = control.recv() => match msg {
                Ok(ConnectionCommand::CloseControllers(ids)) => {
                    if conn.close_if_controller(&ids) {
                        break "pairing removed";
                    }
                }
                Ok(ConnectionCommand::Shutdown) | Err(RecvError::Closed) => break "shutdown",
                // Control messages were dropped: act on what they could have said.
                Err(RecvError::Lagged(_)) => {
                    if let Some(reason) = inner.missed_control(conn.controller(), stops_seen) {
                        break reason;
                    }
                }
            },
            () = sleep_until(wake) => conn.handle_timeout(Instant::now()),
            () = sleep_until(idle_deadline) => break "idle before pair-verify",
            // Only a connection not yet verified closes for room (see `unverified`); one
            // signalled just as it completed pair-verify stays.
            () = evict.notified(), if !conn.is_encrypted() => break "closed for room at the connection cap",
        }
        if !flush(&mut conn, &mut wr).await {
            break "write failed";
        }
        if conn.closing().is_some() {
            break "closed by protocol";
        }
    };
    let _ = flush(&mut conn, &mut wr).await;
    let _ = wr.shutdown().await;
    reason
}

/// Handles the requests a read brought beyond one turn, a turn at a time, letting other tasks
/// (and other connections' requests) run between turns.
async fn drain_backlog(
    link: &Link<'_>,
    conn: &mut Connection,
    wr: &mut OwnedWriteHalf,
    verified: &mut bool,
) -> Result<(), &'static str> {
    while conn.has_backlog() {
        tokio::task::yield_now().await;
        let plaintext = !conn.is_encrypted();
        let events = off_the_runtime_if(plaintext, || {
            with_context(link, |cx| {
                conn.resume(cx);
                take_events(link, conn)
            })
        });
        answer(link, conn, wr, events, verified).await?;
    }
    Ok(())
}

/// Writes what the connection transmits and acts on its events. A snapshot's answer lets the
/// requests queued behind it run; their events are handled in turn.
async fn answer(
    link: &Link<'_>,
    conn: &mut Connection,
    wr: &mut OwnedWriteHalf,
    mut events: Vec<ConnectionEvent>,
    verified: &mut bool,
) -> Result<(), &'static str> {
    loop {
        let flushed = flush(conn, wr).await;
        let mut next = Vec::new();
        for event in events {
            match event {
                ConnectionEvent::Snapshot(request) => {
                    if flushed {
                        next = snapshot(link, conn, request).await;
                    }
                }
                // Acted on even when the reply could not be written: the store and the
                // database have changed, so the removed controllers' sessions still close
                // (HAP §2.8 in our reference) and subscribers still hear of the writes.
                event => handle_event(link, event, verified),
            }
        }
        if !flushed {
            return Err("write failed");
        }
        if next.is_empty() {
            return Ok(());
        }
        events = next;
    }
}

/// The connection's events, taken while the server lock is held: value changes are queued for
/// the other connections at once, so they hear of changes in the order the database took them
/// (a change queued after the lock is released could overtake a later one and leave
/// subscribers on a stale value); the rest is returned.
fn take_events(link: &Link<'_>, conn: &mut Connection) -> Vec<ConnectionEvent> {
    let mut rest = Vec::new();
    while let Some(event) = conn.poll_event() {
        match event {
            ConnectionEvent::Changes(changes) => {
                for change in changes {
                    let _ = link.inner.changes.send((Some(link.origin.conn), change));
                }
            }
            event => {
                // The pairing state readers see without the lock follows the store at once
                // (before the reply is written, so a controller that reads /status right after
                // M6 sees itself paired); mDNS follows after the reply.
                match &event {
                    ConnectionEvent::Paired { .. } => {
                        link.inner.paired.store(true, Ordering::Relaxed)
                    }
                    ConnectionEvent::PairingsRemoved {
                        now_unpaired: true, ..
                    } => link.inner.paired.store(false, Ordering::Relaxed),
                    _ => {}
                }
                rest.push(event);
            }
        }
    }
    rest
}

fn handle_event(link: &Link<'_>, event: ConnectionEvent, verified: &mut bool) {
    let (inner, peer, id) = (link.inner, link.origin.peer, link.origin.conn);
    match event {
        ConnectionEvent::Verified { controller } => {
            tracing::info!(server = %inner.name, %peer, %controller, "pair-verify complete");
            if !*verified {
                *verified = true;
                inner.verified.fetch_add(1, Ordering::Relaxed);
                inner.unverified.remove(id);
            }
            // Stream sockets for this controller's Setup Endpoints, bound now, outside the
            // server lock (its writes are handled under it).
            let cameras = inner.lock().cameras.manager();
            if let Some(cameras) = cameras {
                cameras.prepare_stream_sockets(link.origin.local);
            }
        }
        ConnectionEvent::Paired { pairing } => {
            tracing::info!(server = %inner.name, %peer, controller = %pairing.id, "paired");
            // The M6 reply has been written: now announce sf=0 (HAP §8.4).
            inner.pairing_changed(true);
        }
        ConnectionEvent::PairingsRemoved {
            removed,
            now_unpaired,
        } => {
            tracing::info!(server = %inner.name, %peer, removed = removed.len(), now_unpaired, "pairings removed");
            inner.pairings_removed(&removed, now_unpaired);
        }
        ConnectionEvent::Changes(changes) => {
            // Queued by `take_events` already; kept for any caller that did not.
            for change in changes {
                let _ = inner.changes.send((Some(id), change));
            }
        }
        ConnectionEvent::PairSetupRefused { error } => inner.log_refusal(peer, &error),
        ConnectionEvent::Identify => {
            tracing::info!(server = %inner.name, %peer, "identify requested (unpaired)");
        }
        ConnectionEvent::Snapshot(_) => {}
    }
}

/// Answers `POST /resource` (HAP §11.5) with a JPEG from the camera's hub. The connection
/// processes nothing else meanwhile (HTTP/1.1 without pipelining), but the server lock is not
/// held while the picture is made. Returns the events of the requests that ran after it.
async fn snapshot(
    link: &Link<'_>,
    conn: &mut Connection,
    request: SnapshotRequest,
) -> Vec<ConnectionEvent> {
    let inner = link.inner;
    // A standalone camera is aid 1 and controllers may leave `aid` out.
    let camera = inner
        .lock()
        .cameras
        .camera(request.aid.unwrap_or(1))
        .cloned();
    let image = match camera {
        None => {
            tracing::debug!(server = %inner.name, ?request, "snapshot of no camera");
            Err(HapStatus::RESOURCE_DOES_NOT_EXIST)
        }
        Some(cam) => {
            let started = Instant::now();
            match tokio::time::timeout(
                SNAPSHOT_TIMEOUT,
                cam.snapshot(request.width, request.height),
            )
            .await
            {
                Ok(Ok(jpeg)) => {
                    tracing::debug!(camera = %cam.id, width = request.width, height = request.height, ms = started.elapsed().as_millis(), "snapshot");
                    // Counted for the admin API's /metrics.
                    inner.snapshots_served.fetch_add(1, Ordering::Relaxed);
                    Ok(jpeg)
                }
                Ok(Err(e)) => {
                    tracing::info!(camera = %cam.id, error = %e, "snapshot failed");
                    Err(HapStatus::SERVICE_COMMUNICATION_FAILURE)
                }
                Err(_) => {
                    tracing::info!(camera = %cam.id, "snapshot timed out after {SNAPSHOT_TIMEOUT:?}");
                    Err(HapStatus::OPERATION_TIMED_OUT)
                }
            }
        }
    };
    with_context(link, |cx| {
        conn.respond_resource(image, cx);
        take_events(link, conn)
    })
}

/// Runs `f`, when `costly`, on a thread the runtime gives up for it (`block_in_place`): the
/// input of a connection that has not completed pair-verify may hold pair-setup or pair-verify
/// cryptography (bounded per peer, see `admission`), which must not keep the async workers
/// from the admin API, streams and verified sessions. Verified sessions' requests are cheap and
/// run in place.
fn off_the_runtime_if<R>(costly: bool, f: impl FnOnce() -> R) -> R {
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    // A single-threaded runtime (tests) has no other worker to hand its tasks to.
    if costly && multi_thread {
        tokio::task::block_in_place(f)
    } else {
        f()
    }
}

/// Runs `f` with the server state locked and borrowed as a [`ServerContext`].
fn with_context<R>(link: &Link<'_>, f: impl FnOnce(&mut ServerContext<'_>) -> R) -> R {
    let mut shared = link.inner.lock();
    let shared = &mut *shared;
    let mut writes = Writes {
        link,
        routes: &shared.cameras,
    };
    let mut cx = ServerContext {
        identity: &link.inner.identity,
        setup_code: &link.inner.setup_code,
        store: &mut shared.store,
        gate: &mut shared.gate,
        db: &mut shared.db,
        handler: &mut writes,
        now: Instant::now(),
        rng: &mut shared.rng,
        admission: &mut ForPeer {
            limits: &mut shared.limits,
            peer: link.origin.peer.ip(),
        },
    };
    f(&mut cx)
}

/// Writes everything the connection transmits; a peer that does not read within
/// [`WRITE_TIMEOUT`] is cut off.
async fn flush(conn: &mut Connection, wr: &mut OwnedWriteHalf) -> bool {
    while let Some(out) = conn.poll_transmit() {
        match tokio::time::timeout(WRITE_TIMEOUT, wr.write_all(&out)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => return false,
        }
    }
    true
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// Side effects of characteristic writes on the bridge: cameras (HAP §7) and Identify.
struct Writes<'a> {
    link: &'a Link<'a>,
    routes: &'a Routes,
}

impl WriteHandler for Writes<'_> {
    fn write(&mut self, request: &WriteRequest<'_>) -> WriteResult {
        if let Some(result) = self.routes.write(request, &self.link.origin) {
            return result;
        }
        if *request.ty == HapType::Apple(IDENTIFY) {
            tracing::info!(server = %self.link.inner.name, peer = %self.link.origin.peer, aid = request.id.aid, "identify");
        }
        WriteResult::Store
    }
}

/// Identify (HAP §6.6).
const IDENTIFY: u32 = 0x14;
/// Bytes read from the socket at a time.
const READ_BUFFER: usize = 16 * 1024;
/// A snapshot that takes longer is answered with "operation timed out".
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(4);
/// A peer that does not take our bytes within this time is disconnected.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection that has not completed pair-verify is closed after this long without input.
const PLAINTEXT_IDLE: Duration = Duration::from_secs(120);
