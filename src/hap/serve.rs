//! A server while it serves: the accept loop (the connection cap, one task per connection) and
//! the mDNS record kept in step with the pairing state and `c#` (HAP §8.4, §6.5).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hap_proto::mdns::{TxtParams, txt_record};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinSet;

use super::{Announce, ConnectionCommand, MAX_CONNECTIONS, SHUTDOWN_GRACE, ServerState, conn};
use crate::mdns::Registration;

pub(super) async fn accept_loop(inner: Arc<ServerState>, listener: TcpListener) {
    let mut control = inner.commands.subscribe();
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    if inner.connections.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
                        if inner.unverified.evict_oldest() {
                            tracing::info!(server = %inner.name, %peer, "at the connection cap: the oldest connection not yet verified closes to make room");
                        } else {
                            tracing::warn!(server = %inner.name, %peer, "too many verified sessions: connection refused");
                            drop(socket);
                            continue;
                        }
                    }
                    let _ = socket.set_nodelay(true);
                    // Counted here, not in the task, so that a burst of connections cannot pass
                    // the cap before their tasks run; the task releases it.
                    inner.connections.fetch_add(1, Ordering::Relaxed);
                    let id = inner.next_connection_id();
                    let evict = inner.unverified.add(id);
                    conns.spawn(conn::run(inner.clone(), socket, peer, id, evict));
                }
                Err(e) => {
                    tracing::warn!(server = %inner.name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            msg = control.recv() => {
                if matches!(msg, Ok(ConnectionCommand::Shutdown) | Err(broadcast::error::RecvError::Closed)) {
                    break;
                }
            }
        }
    }
    drop(listener);
    let deadline = Instant::now() + SHUTDOWN_GRACE;
    while !conns.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if tokio::time::timeout(left, conns.join_next()).await.is_err() {
            conns.abort_all();
            break;
        }
    }
}

pub(super) async fn announce_loop(
    registration: Option<Registration>,
    mut txt: TxtParams,
    mut rx: mpsc::UnboundedReceiver<Announce>,
    mut control: broadcast::Receiver<ConnectionCommand>,
) {
    let mut registration = registration;
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(Announce::Paired(paired)) => {
                    if txt.paired != paired {
                        txt.paired = paired;
                        if let Some(Err(e)) = registration.as_mut().map(|r| r.update(&txt_record(&txt))) {
                            tracing::warn!(error = %e, "mDNS update failed");
                        }
                    }
                }
                Some(Announce::ConfigNumber(number)) => {
                    if txt.config_number != number {
                        txt.config_number = number;
                        if let Some(Err(e)) = registration.as_mut().map(|r| r.update(&txt_record(&txt))) {
                            tracing::warn!(error = %e, "mDNS update failed");
                        }
                    }
                }
                None => break,
            },
            msg = control.recv() => {
                if matches!(msg, Ok(ConnectionCommand::Shutdown) | Err(broadcast::error::RecvError::Closed)) {
                    break;
                }
            }
        }
    }
    if let Some(Err(e)) = registration.map(Registration::unregister) {
        tracing::warn!(error = %e, "mDNS unregister failed");
    }
}
