//! One controller connection: reads the socket, drives `hap_proto::server::Connection` under the
//! server lock, writes what it transmits, forwards events, and closes on protocol errors, on
//! removal of its controller's pairing, on idle plaintext and on slow peers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hap_proto::db::{HapType, WriteHandler, WriteRequest, WriteResult};
use hap_proto::pairing::setup::ConnectionId;
use hap_proto::server::{Connection, ConnectionEvent, ServerContext};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::broadcast::error::RecvError;

use super::{Control, Inner};

/// Serves one connection; the accept loop has already counted it in `inner.connections`.
pub(super) async fn run(inner: Arc<Inner>, socket: TcpStream, peer: SocketAddr, id: u64) {
    tracing::debug!(server = %inner.name, %peer, conn = id, "connection opened");
    let reason = serve(&inner, socket, peer, id).await;
    inner.lock().gate.connection_closed(ConnectionId(id));
    inner.connections.fetch_sub(1, Ordering::Relaxed);
    tracing::debug!(server = %inner.key.as_db(), %peer, conn = id, reason, "connection closed");
}

async fn serve(inner: &Arc<Inner>, socket: TcpStream, peer: SocketAddr, id: u64) -> &'static str {
    let mut conn = Connection::new(ConnectionId(id));
    let mut changes = inner.changes.subscribe();
    let mut control = inner.control.subscribe();
    let (mut rd, mut wr) = socket.into_split();
    let mut buf = vec![0u8; READ_BUFFER];
    let mut last_input = Instant::now();
    let mut verified = false;
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
                let events = {
                    let mut shared = inner.lock();
                    let shared = &mut *shared;
                    let mut writes = Writes { server: &inner.name, peer };
                    let mut cx = ServerContext {
                        identity: &shared.identity,
                        setup_code: &shared.setup_code,
                        store: &mut shared.store,
                        gate: &mut shared.gate,
                        db: &mut shared.db,
                        handler: &mut writes,
                        now: Instant::now(),
                        rng: &mut shared.rng,
                    };
                    if let Err(e) = conn.handle_input(input, &mut cx) {
                        tracing::info!(server = %inner.name, %peer, error = %e, "closing: session error");
                        break "session error";
                    }
                    std::iter::from_fn(|| conn.poll_event()).collect::<Vec<_>>()
                };
                if !flush(&mut conn, &mut wr).await {
                    break "write failed";
                }
                for event in events {
                    handle_event(inner, &mut conn, event, peer, id, &mut verified);
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
                Ok(Control::CloseControllers(ids)) => {
                    if conn.close_if_controller(&ids) {
                        break "pairing removed";
                    }
                }
                Ok(Control::Shutdown) | Err(RecvError::Closed) => break "shutdown",
                Err(RecvError::Lagged(_)) => {}
            },
            () = sleep_until(wake) => conn.handle_timeout(Instant::now()),
            () = sleep_until(idle_deadline) => break "idle before pair-verify",
        }
        if !flush(&mut conn, &mut wr).await {
            break "write failed";
        }
        if conn.closing().is_some() {
            break "closed by protocol";
        }
    };
    if verified {
        inner.verified.fetch_sub(1, Ordering::Relaxed);
    }
    let _ = flush(&mut conn, &mut wr).await;
    let _ = wr.shutdown().await;
    reason
}

fn handle_event(
    inner: &Arc<Inner>,
    conn: &mut Connection,
    event: ConnectionEvent,
    peer: SocketAddr,
    id: u64,
    verified: &mut bool,
) {
    match event {
        ConnectionEvent::Verified { controller } => {
            tracing::info!(server = %inner.name, %peer, %controller, "pair-verify complete");
            if !*verified {
                *verified = true;
                inner.verified.fetch_add(1, Ordering::Relaxed);
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
            let _ = inner
                .control
                .send(Control::CloseControllers(Arc::new(removed)));
            if now_unpaired {
                inner.pairing_changed(false);
            }
        }
        ConnectionEvent::Changes(changes) => {
            for change in changes {
                let _ = inner.changes.send((Some(id), change));
            }
        }
        ConnectionEvent::PairSetupRefused { error } => {
            tracing::warn!(server = %inner.name, %peer, %error, "pair-setup refused");
        }
        ConnectionEvent::Identify => {
            tracing::info!(server = %inner.name, %peer, "identify requested (unpaired)");
        }
        ConnectionEvent::Snapshot(request) => {
            // Snapshots arrive with the camera pipeline; until then the request is answered
            // with "resource does not exist" rather than left hanging.
            tracing::debug!(server = %inner.name, ?request, "snapshot requested");
            let mut shared = inner.lock();
            let shared = &mut *shared;
            let mut writes = Writes {
                server: &inner.name,
                peer,
            };
            let mut cx = ServerContext {
                identity: &shared.identity,
                setup_code: &shared.setup_code,
                store: &mut shared.store,
                gate: &mut shared.gate,
                db: &mut shared.db,
                handler: &mut writes,
                now: Instant::now(),
                rng: &mut shared.rng,
            };
            let image = Err(hap_proto::db::HapStatus::RESOURCE_DOES_NOT_EXIST);
            if image.is_ok() {
                // Counted for the admin API's /metrics.
                inner.snapshots_served.fetch_add(1, Ordering::Relaxed);
            }
            conn.respond_resource(image, &mut cx);
        }
    }
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

/// Side effects of characteristic writes on the bridge.
struct Writes<'a> {
    server: &'a str,
    peer: SocketAddr,
}

impl WriteHandler for Writes<'_> {
    fn write(&mut self, request: &WriteRequest<'_>) -> WriteResult {
        if *request.ty == HapType::Apple(IDENTIFY) {
            tracing::info!(server = %self.server, peer = %self.peer, aid = request.id.aid, "identify");
        }
        WriteResult::Store
    }
}

/// Identify (HAP §6.6).
const IDENTIFY: u32 = 0x14;
/// Bytes read from the socket at a time.
const READ_BUFFER: usize = 16 * 1024;
/// A peer that does not take our bytes within this time is disconnected.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection that has not completed pair-verify is closed after this long without input.
const PLAINTEXT_IDLE: Duration = Duration::from_secs(120);
