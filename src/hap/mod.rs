//! One HAP accessory server: a TCP listener, one task per connection driving
//! `hap_proto::server::Connection`, the shared state they lock per request, and the mDNS record.
//!
//! The bridge (aid 1 and its bridged cameras) is one server; each standalone camera is another,
//! with its own identity, port, pairings and mDNS record.

mod admission;
mod conn;
mod log_limit;
mod pairings;
mod serve;
#[cfg(test)]
mod tests;
mod unverified;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hap_proto::db::{Change, CharId, Database, HapStatus, Value};
use hap_proto::mdns::{TxtParams, txt_record};
use hap_proto::pairing::setup::PairSetupGate;
use hap_proto::pairing::{AccessoryIdentity, PairingId, PairingStore as _};
use hap_proto::setup::{Category, SetupCode, SetupId, setup_hash, setup_uri};
use rand::SeedableRng as _;
use rand::rngs::StdRng;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinSet;

use crate::camera::{CameraHost, CameraRuntime, Routes};
use crate::mdns::{Advertiser, ServiceSpec};
use crate::store::{ServerKey, ServerStore};

/// What a server is built from.
pub(crate) struct ServerParams {
    /// Which server in the store.
    pub(crate) key: ServerKey,
    /// Accessory name (mDNS instance name, `md`).
    pub(crate) name: String,
    /// Model, advertised as `md`.
    pub(crate) model: String,
    /// Bridge, IP camera or video doorbell.
    pub(crate) category: Category,
    /// Long-term identity.
    pub(crate) identity: AccessoryIdentity,
    /// The setup code.
    pub(crate) setup_code: SetupCode,
    /// The setup id.
    pub(crate) setup_id: SetupId,
    /// Pairings and the failed-attempt counter.
    pub(crate) store: ServerStore,
    /// The database.
    pub(crate) db: Database,
    /// The configuration number for this database shape.
    pub(crate) config_number: u16,
    /// The cameras placed in the database.
    pub(crate) cameras: Routes,
}

/// State shared by a server's connections; locked for the duration of one request.
struct Shared {
    store: ServerStore,
    gate: PairSetupGate,
    db: Database,
    rng: StdRng,
    /// Camera writes and snapshots go here.
    cameras: Routes,
    /// Who may start pair-setup and pair-verify now.
    limits: admission::PeerLimits,
}

/// Messages to every connection task of a server.
#[derive(Clone, Debug)]
pub(crate) enum ConnectionCommand {
    /// Close the connections of these controllers (their pairing was removed).
    CloseControllers(Arc<Vec<PairingId>>),
    /// The server is shutting down.
    Shutdown,
}

/// Pairing-state changes that the mDNS task re-announces (HAP §8.4).
#[derive(Clone, Copy, Debug)]
enum Announce {
    Paired(bool),
    /// The database shape changed at run time (admin API): the new `c#` (HAP §6.5).
    ConfigNumber(u16),
}

/// A HAP server. It can stop serving (listener, connections and mDNS record gone) and resume
/// with the same shared state, so that everything holding its [`ServerState`] stays valid.
pub(crate) struct HapServer {
    inner: Arc<ServerState>,
    /// The listener and mDNS tasks while serving.
    tasks: Mutex<Option<JoinSet<()>>>,
    /// The listener bound at creation, taken by the first [`HapServer::resume`].
    listener: Mutex<Option<TcpListener>>,
    advertiser: Option<Advertiser>,
    spec: ServiceSpec,
    txt: TxtParams,
}

/// One server's state, shared by its connections, its cameras and sensors (through
/// [`CameraHost`]) and the server set; locked per request.
pub(crate) struct ServerState {
    key: ServerKey,
    name: String,
    /// Long-term identity (never changes while the server exists).
    identity: AccessoryIdentity,
    /// The setup code (applied at start).
    setup_code: SetupCode,
    /// Whether any pairing exists, kept in step with the store (read without the lock by the
    /// admin API, which must not wait for a pairing's cryptography).
    paired: AtomicBool,
    /// Accessories in the database (same reason).
    accessories: AtomicUsize,
    shared: Mutex<Shared>,
    changes: broadcast::Sender<(Option<u64>, Change)>,
    commands: broadcast::Sender<ConnectionCommand>,
    announce: Mutex<mpsc::UnboundedSender<Announce>>,
    local_addr: SocketAddr,
    setup_id: SetupId,
    category: Category,
    /// The configuration number (`c#`) advertised for this database shape; see
    /// [`ServerState::replace_database`].
    config_number: AtomicU16,
    next_conn: AtomicU64,
    connections: AtomicUsize,
    verified: AtomicUsize,
    /// Connections that have not completed pair-verify (closed first for room at the cap).
    unverified: unverified::Unverified,
    /// Snapshots answered with an image (`POST /resource`, HAP §11.5).
    snapshots_served: AtomicU64,
    /// How many times the server stopped serving: a connection that missed its `Shutdown`
    /// (a lagged control receiver) sees it changed.
    stops: AtomicU64,
    /// Log lines about refused pair-setups, rate-limited.
    refusals_logged: Mutex<log_limit::LogLimiter>,
}

/// A server's figures for the admin API and metrics.
#[derive(Clone, Debug)]
pub(crate) struct ServerStats {
    /// Which server (`bridge`, `camera:<id>`).
    pub(crate) server: String,
    /// Open connections.
    pub(crate) connections: usize,
    /// Connections that completed pair-verify.
    pub(crate) verified: usize,
    /// Stored pairings.
    pub(crate) pairings: usize,
    /// Accessories in the database.
    pub(crate) accessories: usize,
    /// Snapshots answered with an image.
    pub(crate) snapshots: u64,
}

impl HapServer {
    /// Binds the listener (fixing the port) but does not serve until [`HapServer::resume`].
    pub(crate) async fn create(
        params: ServerParams,
        bind: SocketAddr,
        advertiser: Option<&Advertiser>,
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(bind)
            .await
            .map_err(|e| anyhow::anyhow!("{}: cannot listen on {bind}: {e}", params.key.as_db()))?;
        let local_addr = listener.local_addr()?;
        let paired = params.store.is_paired();
        let (changes, _) = broadcast::channel(CHANGE_QUEUE);
        let (commands, _) = broadcast::channel(CONTROL_QUEUE);
        let (announce, _) = mpsc::unbounded_channel();
        let txt_params = TxtParams {
            model: params.model.clone(),
            device_id: params.identity.device_id,
            config_number: params.config_number,
            paired,
            category: params.category.0,
            setup_hash: Some(setup_hash(&params.setup_id, &params.identity.device_id)),
        };
        let spec = ServiceSpec {
            name: params.name.clone(),
            device_id: params.identity.device_id,
            port: local_addr.port(),
        };
        let accessories = params.db.accessories().len();
        let inner = Arc::new(ServerState {
            key: params.key,
            name: params.name,
            identity: params.identity,
            setup_code: params.setup_code,
            paired: AtomicBool::new(paired),
            accessories: AtomicUsize::new(accessories),
            shared: Mutex::new(Shared {
                store: params.store,
                gate: PairSetupGate::new(),
                db: params.db,
                rng: StdRng::from_rng(&mut rand::rng()),
                cameras: params.cameras,
                limits: admission::PeerLimits::default(),
            }),
            changes,
            commands,
            announce: Mutex::new(announce),
            local_addr,
            setup_id: params.setup_id,
            category: params.category,
            config_number: AtomicU16::new(params.config_number),
            next_conn: AtomicU64::new(1),
            connections: AtomicUsize::new(0),
            verified: AtomicUsize::new(0),
            unverified: unverified::Unverified::default(),
            snapshots_served: AtomicU64::new(0),
            stops: AtomicU64::new(0),
            refusals_logged: Mutex::new(log_limit::LogLimiter::new()),
        });
        // A fresh database may serve a camera runtime that outlived its previous server.
        inner.publish_cameras();
        Ok(Self {
            inner,
            tasks: Mutex::new(None),
            listener: Mutex::new(Some(listener)),
            advertiser: advertiser.cloned(),
            spec,
            txt: txt_params,
        })
    }

    /// Starts serving: listens (again) on the same address, registers the mDNS record with the
    /// current pairing state and accepts connections. Does nothing while serving.
    pub(crate) async fn resume(&self) -> anyhow::Result<()> {
        if self.is_serving() {
            return Ok(());
        }
        let bound = self.listener.lock().ok().and_then(|mut l| l.take());
        let listener = match bound {
            Some(listener) => listener,
            None => {
                let addr = self.inner.local_addr;
                TcpListener::bind(addr).await.map_err(|e| {
                    anyhow::anyhow!("{}: cannot listen on {addr}: {e}", self.inner.key.as_db())
                })?
            }
        };
        let mut txt = self.txt.clone();
        txt.paired = self.inner.lock().store.is_paired();
        txt.config_number = self.inner.config_number();
        let registration = match &self.advertiser {
            Some(adv) => Some(adv.register(&self.spec, &txt_record(&txt))?),
            None => None,
        };
        let (announce, announce_rx) = mpsc::unbounded_channel();
        *self
            .inner
            .announce
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = announce;
        let mut tasks = JoinSet::new();
        tasks.spawn(serve::accept_loop(self.inner.clone(), listener));
        tasks.spawn(serve::announce_loop(
            registration,
            txt,
            announce_rx,
            self.inner.commands.subscribe(),
        ));
        if let Ok(mut slot) = self.tasks.lock() {
            *slot = Some(tasks);
        }
        Ok(())
    }

    /// Whether the server accepts connections now.
    pub(crate) fn is_serving(&self) -> bool {
        self.tasks.lock().is_ok_and(|t| t.is_some())
    }

    /// The state shared with connections, cameras and sensors.
    pub(crate) fn state(&self) -> &Arc<ServerState> {
        &self.inner
    }

    /// Stops accepting, closes every connection and withdraws the mDNS record; the shared state
    /// stays, and [`HapServer::resume`] serves again.
    pub(crate) async fn shutdown(&self) {
        // A listener bound but never served would still complete TCP handshakes: close it.
        drop(self.listener.lock().ok().and_then(|mut l| l.take()));
        self.inner.stops.fetch_add(1, Ordering::Relaxed);
        let _ = self.inner.commands.send(ConnectionCommand::Shutdown);
        let tasks = self.tasks.lock().ok().and_then(|mut t| t.take());
        if let Some(mut tasks) = tasks {
            let deadline = tokio::time::sleep(SHUTDOWN_GRACE);
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    next = tasks.join_next() => if next.is_none() { break },
                    () = &mut deadline => { tasks.abort_all(); break }
                }
            }
        }
    }
}

impl ServerState {
    /// Locks the shared state. A poisoned lock (a panic elsewhere) is recovered: the state is
    /// only ever mutated through hap-proto calls that leave it consistent.
    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Which server this is in the store.
    pub(crate) fn key(&self) -> &ServerKey {
        &self.key
    }

    /// The address the server listens on.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Open connections and verified sessions now.
    pub(crate) fn connection_counts(&self) -> (usize, usize) {
        (
            self.connections.load(Ordering::Relaxed),
            self.verified.load(Ordering::Relaxed),
        )
    }

    /// The server's figures now.
    pub(crate) fn stats(&self) -> ServerStats {
        let (pairings, accessories) = {
            let shared = self.lock();
            (shared.store.pairings().len(), shared.db.accessories().len())
        };
        let (connections, verified) = self.connection_counts();
        ServerStats {
            server: self.key.as_db(),
            connections,
            verified,
            pairings,
            accessories,
            snapshots: self.snapshots_served.load(Ordering::Relaxed),
        }
    }

    /// Logs a refused pair-setup, rate-limited per server (see [`log_limit`]): a peer can cause
    /// hundreds a second.
    fn log_refusal(&self, peer: SocketAddr, error: &hap_proto::Error) {
        let verdict = self
            .refusals_logged
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .admit(std::time::Instant::now());
        if let log_limit::Verdict::Log { suppressed } = verdict {
            if suppressed > 0 {
                tracing::warn!(server = %self.name, suppressed, "more pair-setups refused (not logged: at most {} lines per {:?})", log_limit::LINES_PER_INTERVAL, log_limit::INTERVAL);
            }
            tracing::warn!(server = %self.name, %peer, %error, "pair-setup refused");
        }
    }

    /// Sets a characteristic from the bridge side and notifies subscribed connections. The
    /// change is queued under the lock, so subscribers hear of changes in the order the
    /// database took them and end on its value.
    pub(crate) fn set_value(&self, id: CharId, value: Value) -> Result<bool, HapStatus> {
        let mut shared = self.lock();
        let change = shared.db.set_value(id, value)?;
        Ok(match change {
            Some(change) => {
                let _ = self.changes.send((None, change));
                true
            }
            None => false,
        })
    }

    /// The setup code and `X-HM://` URI while unpaired (never once paired).
    pub(crate) fn setup_info(&self) -> Option<(String, String)> {
        if self.paired.load(Ordering::Relaxed) {
            return None;
        }
        let uri = setup_uri(&self.setup_code, &self.setup_id, self.category);
        Some((self.setup_code.as_str().to_owned(), uri))
    }

    /// The configuration number (`c#`) advertised now.
    pub(crate) fn config_number(&self) -> u16 {
        self.config_number.load(Ordering::Relaxed)
    }

    /// Writes each camera's stream service state (Active, Streaming Status) into the database.
    fn publish_cameras(&self) {
        let cameras = self.lock().cameras.cameras();
        for cam in cameras {
            cam.publish(self);
        }
    }

    /// Swaps in a rebuilt database (cameras added, changed or removed at run time) with its
    /// cameras' routes and its `c#`, and re-announces the TXT record when `c#` changed (HAP §6.5, §8.4). Values of
    /// characteristics present in both databases are carried over; open connections stay.
    pub(crate) fn replace_database(&self, mut db: Database, cameras: Routes, config_number: u16) {
        {
            let mut shared = self.lock();
            let carried: Vec<(CharId, Value)> = db
                .accessories()
                .iter()
                .flat_map(|a| {
                    a.services
                        .iter()
                        .flat_map(|s| &s.characteristics)
                        .map(move |c| (CharId::new(a.aid, c.iid), c))
                })
                .filter_map(|(id, new)| {
                    let old = shared.db.characteristic(id)?;
                    (old.ty == new.ty && old.format == new.format && !old.is_immediate())
                        .then(|| (id, old.value.clone()))
                })
                .collect();
            for (id, value) in carried {
                let _ = db.set_value(id, value);
            }
            self.accessories
                .store(db.accessories().len(), Ordering::Relaxed);
            shared.db = db;
            shared.cameras = cameras;
        }
        // The carried values are those of the runtimes before; a camera's runtime may be a new
        // one (free slots): its stream services say what they do now.
        self.publish_cameras();
        if self.config_number.swap(config_number, Ordering::Relaxed) != config_number {
            let announce = self
                .announce
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let _ = announce.send(Announce::ConfigNumber(config_number));
        }
    }

    /// The number of accessories in the database.
    pub(crate) fn accessory_count(&self) -> usize {
        self.accessories.load(Ordering::Relaxed)
    }

    fn next_connection_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    fn pairing_changed(&self, paired: bool) {
        self.paired.store(paired, Ordering::Relaxed);
        let announce = self
            .announce
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = announce.send(Announce::Paired(paired));
    }
}

impl CameraHost for ServerState {
    fn set_value(&self, id: CharId, value: Value) -> Result<bool, HapStatus> {
        Self::set_value(self, id, value)
    }

    fn serves(&self, cam: &CameraRuntime) -> bool {
        self.lock()
            .cameras
            .camera(cam.aid())
            .is_some_and(|current| std::ptr::eq(Arc::as_ptr(current), cam))
    }
}

/// Value changes queued per connection before a slow one starts missing them.
const CHANGE_QUEUE: usize = 1024;
/// Control messages queued per connection.
const CONTROL_QUEUE: usize = 64;
/// Concurrent connections per server; more are refused.
const MAX_CONNECTIONS: usize = 256;
/// How long shutdown waits for connection tasks.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
