//! The running HAP servers as one unit for the admin API: HomeKit on and off (persisted in the
//! store's enabled flag), the cameras at run time, and pairings management across the servers.
//!
//! Disabling stops serving HAP (listeners, connections and mDNS records go away) but keeps every
//! identity and pairing; enabling serves again on the same ports with the same state.
//!
//! # Cameras
//! Cameras come from two places: the configuration file's `[[cameras]]` ([`Origin::Config`],
//! read-only through the API: edit the file and restart) and the admin API ([`Origin::Api`],
//! kept in the state store, surviving restarts). Ids are unique across both; a configuration
//! camera shadows a stored one with the same id (logged at start). Every change goes through
//! [`Controller::apply_cameras`], which rebuilds the accessory databases, swaps them into the
//! running servers (bumping `c#` when the shape changed) and starts or stops standalone cameras'
//! servers.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};

use hap_proto::pairing::{Pairing, PairingId, PairingStore as _, Permissions};
use hap_proto::setup::Category;

use crate::accessories::{self, Built, SensorIds};
use crate::camera::{CameraManager, Routes};
use crate::config::{CameraConfig, CameraMode, Config, ConfigError, MAX_BRIDGED_CAMERAS};
use crate::hap::{Control, HapServer, Inner, ServerParams};
use crate::mdns::Advertiser;
use crate::sensors::Sensors;
use crate::setup_adapter;
use crate::store::{ServerKey, Store};

/// Owns the HAP servers: the bridge, and one per enabled standalone camera.
pub(crate) struct Controller {
    bridge: Arc<HapServer>,
    /// Standalone cameras' servers by camera id.
    standalone: RwLock<BTreeMap<String, Standalone>>,
    /// Every camera, enabled or not, configuration file first.
    cameras: RwLock<Vec<CameraEntry>>,
    runtime: Runtime,
    store: Arc<Store>,
    /// Serializes enable/disable and camera changes.
    op: tokio::sync::Mutex<()>,
}

/// A running standalone camera server and what it was built from.
struct Standalone {
    server: Arc<HapServer>,
    config: CameraConfig,
    sensors: SensorIds,
}

/// What [`Controller::apply_cameras`] needs besides the camera list.
pub(crate) struct Runtime {
    /// The configuration (bridge settings; its `cameras` are not read after start).
    pub(crate) config: Config,
    /// The mDNS responder.
    pub(crate) advertiser: Advertiser,
    /// The address standalone servers listen on.
    pub(crate) bind_ip: IpAddr,
    /// Camera sensors, re-pointed after every change.
    pub(crate) sensors: Arc<Sensors>,
    /// The cameras' media runtimes (hubs, stream slots) and live streams.
    pub(crate) manager: Arc<CameraManager>,
}

/// Where a camera is defined.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Origin {
    /// The configuration file's `[[cameras]]`: read-only through the API.
    Config,
    /// Added through the admin API, kept in the state store.
    Api,
}

/// A camera and where it is defined.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CameraEntry {
    /// The camera.
    pub(crate) config: CameraConfig,
    /// Where it comes from.
    pub(crate) origin: Origin,
}

/// What changed for HomeKit between two camera lists (disabled cameras count as absent).
#[derive(Debug, Default)]
pub(crate) struct CameraChanges {
    /// Cameras now exposed that were not.
    pub(crate) added: Vec<CameraConfig>,
    /// Exposed before and after, with a different configuration: (before, after).
    pub(crate) changed: Vec<(CameraConfig, CameraConfig)>,
    /// Exposed before, not any more (deleted or disabled).
    pub(crate) removed: Vec<CameraConfig>,
}

/// A refused or failed camera change; the message names the field where there is one.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CameraError {
    /// No camera with this id (404).
    #[error("id: no camera {0:?}")]
    NotFound(String),
    /// The camera comes from the configuration file (409).
    #[error("id: camera {0:?} is defined in the configuration file; edit the file and restart")]
    ReadOnly(String),
    /// The change conflicts with another camera or the bridge (409).
    #[error("{field}: {message}")]
    Conflict {
        /// The field.
        field: &'static str,
        /// Why.
        message: String,
    },
    /// A field is not acceptable (422).
    #[error("{0}")]
    Invalid(#[from] ConfigError),
    /// The change could not be applied or persisted (500); nothing was persisted.
    #[error("{0:#}")]
    Failed(anyhow::Error),
}

/// One pairing of one server, for listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PairingEntry {
    /// The server (`bridge` or `camera:<id>`).
    pub(crate) server: String,
    /// The controller's pairing identifier as text (see [`id_text`]).
    pub(crate) id: String,
    /// Admin or regular user.
    pub(crate) admin: bool,
}

/// What a removal did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Removed {
    /// Identifiers removed (with the ones removed because no admin was left, HAP §2.8).
    pub(crate) ids: Vec<String>,
    /// Servers that are unpaired now.
    pub(crate) now_unpaired: Vec<String>,
}

/// A failed pairing change.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PairingError {
    /// No server has a pairing with this identifier.
    #[error("id: no pairing {0:?}")]
    Unknown(String),
    /// The store refused the write; the pairing is unchanged.
    #[error("the state store failed while removing pairings ({0}); see the log")]
    Store(&'static str),
}

impl Controller {
    /// Takes over the bridge's server; [`Controller::start_cameras`] adds the cameras.
    pub(crate) fn new(bridge: HapServer, store: Arc<Store>, runtime: Runtime) -> Self {
        Self {
            bridge: Arc::new(bridge),
            standalone: RwLock::new(BTreeMap::new()),
            cameras: RwLock::new(Vec::new()),
            runtime,
            store,
            op: tokio::sync::Mutex::new(()),
        }
    }

    /// The bridge's server state.
    pub(crate) fn bridge(&self) -> &Arc<Inner> {
        self.bridge.inner()
    }

    /// Every server, the bridge first.
    pub(crate) fn servers(&self) -> Vec<Arc<HapServer>> {
        let standalone = read(&self.standalone);
        std::iter::once(self.bridge.clone())
            .chain(standalone.values().map(|s| s.server.clone()))
            .collect()
    }

    /// Every camera, enabled or not: the configuration file's first, then the API's.
    pub(crate) fn cameras(&self) -> Vec<CameraEntry> {
        read(&self.cameras).clone()
    }

    /// The AID of a camera in the bridge's database (1 for a standalone camera), while exposed.
    pub(crate) fn camera_aid(&self, id: &str) -> Option<u64> {
        if read(&self.standalone).contains_key(id) {
            return Some(1);
        }
        let key = accessories::accessory_key(id);
        self.store
            .aid(&ServerKey::Bridge, &key)
            .ok()
            .flatten()
            .filter(|_| {
                read(&self.cameras)
                    .iter()
                    .any(|c| c.config.id == id && c.config.enabled)
            })
    }

    /// A standalone camera's setup code and `X-HM://` URI while its server is unpaired.
    pub(crate) fn standalone_setup(&self, id: &str) -> Option<(String, String)> {
        let server = read(&self.standalone).get(id).map(|s| s.server.clone())?;
        server.inner().setup_info()
    }

    /// Whether HomeKit is enabled (the persisted flag; `true` when it cannot be read).
    pub(crate) fn enabled(&self) -> bool {
        self.store.bridge_enabled().unwrap_or(true)
    }

    /// Whether the bridge's server accepts connections now.
    pub(crate) fn running(&self) -> bool {
        self.bridge.is_serving()
    }

    /// Serves every server and persists "enabled".
    pub(crate) async fn enable(&self) -> anyhow::Result<()> {
        let _op = self.op.lock().await;
        for server in self.servers() {
            server.resume().await?;
        }
        // Persisted once serving: a failed start leaves the flag as it was.
        self.store.set_bridge_enabled(true)?;
        tracing::info!("HomeKit enabled");
        Ok(())
    }

    /// Persists "disabled" and stops serving; identities and pairings stay.
    pub(crate) async fn disable(&self) -> anyhow::Result<()> {
        let _op = self.op.lock().await;
        self.store.set_bridge_enabled(false)?;
        for server in self.servers() {
            server.shutdown().await;
        }
        tracing::info!("HomeKit disabled");
        Ok(())
    }

    /// Stops every server (process exit).
    pub(crate) async fn shutdown(&self) {
        let _op = self.op.lock().await;
        for server in self.servers() {
            server.shutdown().await;
        }
    }

    /// Starts with the configuration file's cameras and the ones stored through the API (see
    /// [`load_cameras`]).
    pub(crate) async fn start_cameras(&self, cameras: Vec<CameraEntry>) -> anyhow::Result<()> {
        let _op = self.op.lock().await;
        self.apply_cameras(cameras).await.map(drop)
    }

    /// Adds a camera through the API and persists it.
    pub(crate) async fn add_camera(&self, camera: CameraConfig) -> Result<(), CameraError> {
        let _op = self.op.lock().await;
        let mut next = self.cameras();
        if next.iter().any(|c| c.config.id == camera.id) {
            return Err(CameraError::Conflict {
                field: "id",
                message: format!("a camera {:?} exists already", camera.id),
            });
        }
        next.push(CameraEntry {
            config: camera.clone(),
            origin: Origin::Api,
        });
        self.change_cameras(next, |store| store_camera(store, &camera))
            .await
    }

    /// Replaces an API camera: `edit` gets the current configuration and returns the new one
    /// (its id must stay).
    pub(crate) async fn update_camera(
        &self,
        id: &str,
        edit: impl FnOnce(&CameraConfig) -> Result<CameraConfig, CameraError>,
    ) -> Result<CameraConfig, CameraError> {
        let _op = self.op.lock().await;
        let mut next = self.cameras();
        let entry = next
            .iter_mut()
            .find(|c| c.config.id == id)
            .ok_or_else(|| CameraError::NotFound(id.to_owned()))?;
        if entry.origin == Origin::Config {
            return Err(CameraError::ReadOnly(id.to_owned()));
        }
        let camera = edit(&entry.config)?;
        entry.config = camera.clone();
        self.change_cameras(next, |store| store_camera(store, &camera))
            .await?;
        Ok(camera)
    }

    /// Removes an API camera for good: a bridged camera's AID is not handed out again, a
    /// standalone camera's identity and pairings are forgotten.
    pub(crate) async fn remove_camera(&self, id: &str) -> Result<CameraConfig, CameraError> {
        let _op = self.op.lock().await;
        let mut next = self.cameras();
        let at = next
            .iter()
            .position(|c| c.config.id == id)
            .ok_or_else(|| CameraError::NotFound(id.to_owned()))?;
        if next.get(at).is_some_and(|c| c.origin == Origin::Config) {
            return Err(CameraError::ReadOnly(id.to_owned()));
        }
        let removed = next.remove(at);
        self.change_cameras(next, |store| {
            Ok(store.remove_camera(id, &accessories::accessory_key(id))?)
        })
        .await?;
        Ok(removed.config)
    }

    /// Starts a standalone camera's server again with the configuration it had (after a failed
    /// change); a failure is logged.
    async fn restore_standalone(&self, config: CameraConfig, serve: bool) {
        let manufacturer = &self.runtime.config.bridge.manufacturer;
        let fresh = |_: &str| true;
        match start_standalone(
            &self.store,
            &config,
            manufacturer,
            &self.runtime,
            &fresh,
            serve,
        )
        .await
        {
            Ok((server, sensors)) => {
                let server = Arc::new(server);
                write(&self.standalone).insert(
                    config.id.clone(),
                    Standalone {
                        server,
                        config,
                        sensors,
                    },
                );
            }
            Err(e) => {
                tracing::error!(camera = %config.id, error = %format!("{e:#}"), "cannot restart the standalone camera after a failed change");
            }
        }
    }

    /// Checks `next` as a whole, applies it, then persists with `persist`; when persisting
    /// fails the previous cameras are applied again.
    async fn change_cameras(
        &self,
        next: Vec<CameraEntry>,
        persist: impl FnOnce(&Store) -> anyhow::Result<()>,
    ) -> Result<(), CameraError> {
        check_cameras(&next, self.bridge().local_addr.port())?;
        let before = self.cameras();
        self.apply_cameras(next)
            .await
            .map_err(CameraError::Failed)?;
        if let Err(e) = persist(&self.store) {
            tracing::error!(error = %e, "camera change not persisted: undoing it");
            if let Err(undo) = self.apply_cameras(before).await {
                tracing::error!(error = %undo, "undoing the camera change failed");
            }
            return Err(CameraError::Failed(e));
        }
        Ok(())
    }

    /// THE run-time reconfiguration: makes the servers expose exactly the enabled cameras of
    /// `next`. Rebuilds the bridge's database (AIDs and IIDs stay, from the store) and swaps it
    /// in, bumping `c#` (and its mDNS TXT record) when the shape changed; starts servers for new
    /// standalone cameras, restarts those whose name, port or kind changed (same identity and
    /// pairings), swaps the database of the others, stops the ones removed; re-points the
    /// sensors. Returns what changed. The caller holds `self.op`.
    ///
    /// A standalone server that cannot start (its port taken) fails the call before anything
    /// else changed.
    pub(crate) async fn apply_cameras(
        &self,
        next: Vec<CameraEntry>,
    ) -> anyhow::Result<CameraChanges> {
        let changes = diff(&self.cameras(), &next);
        let serve = self.enabled();
        let rt = &self.runtime;
        let manufacturer = &rt.config.bridge.manufacturer;
        // Cameras that need a new media runtime; the others keep theirs and their live streams.
        let fresh_ids: BTreeSet<&str> = changes
            .added
            .iter()
            .map(|c| c.id.as_str())
            .chain(
                changes
                    .changed
                    .iter()
                    .filter(|(a, b)| media_changed(a, b))
                    .map(|(_, b)| b.id.as_str()),
            )
            .collect();
        let fresh = |id: &str| fresh_ids.contains(id);

        // 1. Standalone servers to (re)start, first, so that a failure changes nothing: the
        //    servers started here are stopped and the ones they replaced are started again.
        let mut started: Vec<(CameraConfig, HapServer, SensorIds)> = Vec::new();
        let mut replaced: Vec<Standalone> = Vec::new();
        for cam in changes
            .added
            .iter()
            .chain(
                changes
                    .changed
                    .iter()
                    .filter(|(a, b)| needs_restart(a, b))
                    .map(|(_, b)| b),
            )
            .filter(|c| c.mode == CameraMode::Standalone)
        {
            // A restarted camera keeps its port: stop the old server first.
            let old = write(&self.standalone).remove(&cam.id);
            if let Some(old) = old {
                old.server.shutdown().await;
                replaced.push(old);
            }
            match start_standalone(&self.store, cam, manufacturer, rt, &fresh, serve).await {
                Ok((server, sensors)) => started.push((cam.clone(), server, sensors)),
                Err(e) => {
                    for (_, server, _) in started {
                        server.shutdown().await;
                    }
                    for old in replaced {
                        self.restore_standalone(old.config, serve).await;
                    }
                    return Err(e.context(format!("camera {:?}", cam.id)));
                }
            }
        }
        // 2. The bridge's database.
        let exposed: Vec<CameraConfig> = next
            .iter()
            .filter(|c| c.config.enabled)
            .map(|c| c.config.clone())
            .collect();
        let bridge_config = Config {
            cameras: exposed,
            ..rt.config.clone()
        };
        let built = accessories::build_bridge(&bridge_config, &self.store)?;
        let routes = attach(&rt.manager, &built, &bridge_config.cameras, &fresh)?;
        let number = self
            .store
            .update_config_number(&ServerKey::Bridge, &accessories::config_hash(&built.db))?;
        let before = self.bridge().config_number();
        self.bridge().replace_database(built.db, routes, number);
        if number != before {
            tracing::info!(
                server = "bridge",
                config_number = number,
                "accessory database changed"
            );
        }
        // 3. Standalone servers: new ones in, changed databases swapped, removed ones out.
        let mut stopped = Vec::new();
        {
            let mut standalone = write(&self.standalone);
            for (cam, server, sensors) in started {
                let server = Arc::new(server);
                standalone.insert(
                    cam.id.clone(),
                    Standalone {
                        server,
                        config: cam,
                        sensors,
                    },
                );
            }
            for (_, cam) in changes.changed.iter().filter(|(a, b)| !needs_restart(a, b)) {
                if cam.mode != CameraMode::Standalone {
                    continue;
                }
                let Some(entry) = standalone.get_mut(&cam.id) else {
                    continue;
                };
                let key = ServerKey::Camera(cam.id.clone());
                let built = accessories::build_standalone(cam, manufacturer, &self.store)?;
                let routes = attach(&rt.manager, &built, std::slice::from_ref(cam), &fresh)?;
                let number = self
                    .store
                    .update_config_number(&key, &accessories::config_hash(&built.db))?;
                entry
                    .server
                    .inner()
                    .replace_database(built.db, routes, number);
                entry.config = cam.clone();
                entry.sensors = built.sensors.get(&cam.id).copied().unwrap_or_default();
            }
            let gone: Vec<String> = standalone
                .keys()
                .filter(|id| {
                    !next.iter().any(|c| {
                        &c.config.id == *id
                            && c.config.enabled
                            && c.config.mode == CameraMode::Standalone
                    })
                })
                .cloned()
                .collect();
            for id in gone {
                if let Some(s) = standalone.remove(&id) {
                    stopped.push(s.server);
                }
            }
        }
        for server in stopped {
            tracing::info!(server = %server.inner().key.as_db(), "standalone camera stopped");
            server.shutdown().await;
        }
        // 4. Sensors follow the new databases.
        let mut sensors: Vec<(String, Arc<Inner>, SensorIds)> = built
            .sensors
            .into_iter()
            .map(|(id, ids)| (id, self.bridge().clone(), ids))
            .collect();
        sensors.extend(
            read(&self.standalone)
                .iter()
                .map(|(id, s)| (id.clone(), s.server.inner().clone(), s.sensors)),
        );
        rt.sensors.replace(sensors);
        // 5. Media: cameras no longer exposed lose their runtime and live streams (new and
        //    changed ones were attached with their database above, see `attach`).
        for cam in &changes.removed {
            rt.manager.detach(&cam.id);
        }
        *write(&self.cameras) = next;
        Ok(changes)
    }

    /// Every pairing of every server, also of standalone cameras that are switched off.
    pub(crate) fn pairings(&self) -> Vec<PairingEntry> {
        let entry = |server: &ServerKey, p: Pairing| PairingEntry {
            server: server.as_db(),
            id: id_text(&p.id),
            admin: p.permissions == Permissions::Admin,
        };
        let mut out: Vec<PairingEntry> = self
            .servers()
            .iter()
            .flat_map(|s| {
                let inner = s.inner();
                let pairings = inner.lock().store.pairings();
                pairings.into_iter().map(|p| entry(&inner.key, p))
            })
            .collect();
        for key in self.dormant_servers() {
            match self.store.pairings(&key) {
                Ok(pairings) => out.extend(pairings.into_iter().map(|p| entry(&key, p))),
                Err(e) => {
                    tracing::warn!(server = %key.as_db(), error = %e, "cannot read the pairings of a switched-off camera")
                }
            }
        }
        out
    }

    /// The standalone cameras that are switched off: no server runs for them, but their
    /// identity and pairings stay in the store for when they are switched on again.
    fn dormant_servers(&self) -> Vec<ServerKey> {
        let running = read(&self.standalone);
        self.cameras()
            .into_iter()
            .filter(|c| {
                c.config.mode == CameraMode::Standalone && !running.contains_key(&c.config.id)
            })
            .map(|c| ServerKey::Camera(c.config.id))
            .collect()
    }

    /// Removes `id` (or, with `None`, every pairing) from the stored pairings of a switched-off
    /// standalone camera, and every other pairing when no admin is left (HAP §2.8). No session
    /// is open to close. `Ok(None)` when `id` is not paired there.
    fn remove_dormant(
        &self,
        key: &ServerKey,
        id: Option<&PairingId>,
    ) -> Result<Option<Vec<PairingId>>, PairingError> {
        let store_err = |e: crate::store::Error| {
            tracing::error!(server = %key.as_db(), error = %e, "pairings of a switched-off camera");
            PairingError::Store("a switched-off camera's pairings")
        };
        let all = self.store.pairings(key).map_err(store_err)?;
        let (gone, left): (Vec<Pairing>, Vec<Pairing>) = all
            .into_iter()
            .partition(|p| id.is_none_or(|id| p.id == *id));
        if gone.is_empty() {
            return Ok(None);
        }
        let gone = if left.iter().any(|p| p.permissions == Permissions::Admin) {
            gone
        } else {
            gone.into_iter().chain(left).collect()
        };
        let mut removed = Vec::with_capacity(gone.len());
        for pairing in gone {
            self.store
                .remove_pairing(key, &pairing.id)
                .map_err(store_err)?;
            removed.push(pairing.id);
        }
        Ok(Some(removed))
    }

    /// Records the removal of `removed` from the switched-off camera `key` in `out`.
    fn dormant_removed(&self, key: &ServerKey, removed: Vec<PairingId>, out: &mut Removed) {
        tracing::info!(server = %key.as_db(), removed = removed.len(), "pairings of a switched-off camera removed through the admin API");
        out.ids.extend(removed.iter().map(id_text));
        if self.store.pairings(key).is_ok_and(|left| left.is_empty()) {
            out.now_unpaired.push(key.as_db());
        }
    }

    /// Removes the pairing `id` from every server that has it; its sessions close at once. A
    /// server left without an admin loses every pairing (HAP §2.8).
    pub(crate) async fn remove_pairing(&self, id: &str) -> Result<Removed, PairingError> {
        // Not while a camera change starts or stops a standalone server.
        let _op = self.op.lock().await;
        let id = parse_id(id);
        let mut out = Removed::default();
        let mut found = false;
        for server in &self.servers() {
            let inner = server.inner();
            let removed = {
                let mut shared = inner.lock();
                if shared.store.pairing(&id).is_none() {
                    continue;
                }
                found = true;
                let mut removed = Vec::new();
                shared
                    .store
                    .remove_pairing(&id)
                    .map_err(|e| PairingError::Store(e.what))?;
                removed.push(id.clone());
                let left = shared.store.pairings();
                if !left.iter().any(|p| p.permissions == Permissions::Admin) {
                    removed.extend(remove_all(&mut shared.store, left)?);
                }
                removed
            };
            after_removal(inner, removed, &mut out);
        }
        for key in self.dormant_servers() {
            if let Some(removed) = self.remove_dormant(&key, Some(&id))? {
                found = true;
                self.dormant_removed(&key, removed, &mut out);
            }
        }
        if found {
            Ok(out)
        } else {
            Err(PairingError::Unknown(id_text(&id)))
        }
    }

    /// Removes every pairing of every server: the accessories become unpaired.
    pub(crate) async fn reset_pairings(&self) -> Result<Removed, PairingError> {
        let _op = self.op.lock().await;
        let mut out = Removed::default();
        for server in &self.servers() {
            let inner = server.inner();
            let removed = {
                let mut shared = inner.lock();
                let all = shared.store.pairings();
                remove_all(&mut shared.store, all)?
            };
            if !removed.is_empty() {
                after_removal(inner, removed, &mut out);
            }
        }
        for key in self.dormant_servers() {
            if let Some(removed) = self.remove_dormant(&key, None)? {
                self.dormant_removed(&key, removed, &mut out);
            }
        }
        Ok(out)
    }
}

/// The cameras to start with: the configuration file's, then the ones added through the API
/// (kept in the store). A stored camera that is unreadable, invalid or shadowed by a
/// configuration camera with the same id is skipped with a warning (and left in the store).
pub(crate) fn load_cameras(config: &Config, store: &Store) -> anyhow::Result<Vec<CameraEntry>> {
    let mut out: Vec<CameraEntry> = config
        .cameras
        .iter()
        .map(|c| CameraEntry {
            config: c.clone(),
            origin: Origin::Config,
        })
        .collect();
    for (id, json) in store.runtime_cameras()? {
        let camera = match serde_json::from_str::<CameraConfig>(&json) {
            Ok(camera) if camera.id == id => camera,
            Ok(_) => {
                tracing::warn!(camera = %id, "stored camera has another id inside: skipped");
                continue;
            }
            Err(e) => {
                tracing::warn!(camera = %id, error = %e, "stored camera is unreadable: skipped");
                continue;
            }
        };
        if out.iter().any(|c| c.config.id == id) {
            tracing::warn!(camera = %id, "a camera in the configuration file has the id of one added through the API: the file's is used");
            continue;
        }
        out.push(CameraEntry {
            config: camera,
            origin: Origin::Api,
        });
        if let Err(e) = check_cameras(&out, config.bridge.port) {
            tracing::warn!(camera = %id, error = %e, "stored camera is not valid with the others: skipped");
            out.pop();
        }
    }
    Ok(out)
}

/// Checks a whole camera list: each camera's fields, unique ids, ports not used twice (nor the
/// bridge's), and how many cameras a bridge may hold.
fn check_cameras(cameras: &[CameraEntry], bridge_port: u16) -> Result<(), CameraError> {
    let mut ports = BTreeMap::new();
    let mut bridged = 0usize;
    for (i, entry) in cameras.iter().enumerate() {
        let cam = &entry.config;
        cam.validate("")?;
        if cameras.iter().take(i).any(|c| c.config.id == cam.id) {
            return Err(CameraError::Conflict {
                field: "id",
                message: format!("a camera {:?} exists already", cam.id),
            });
        }
        if let Some(port) = cam.port {
            if port == bridge_port {
                return Err(CameraError::Conflict {
                    field: "port",
                    message: format!("port {port} is the bridge's HAP port"),
                });
            }
            if let Some(other) = ports.insert(port, cam.id.clone()) {
                return Err(CameraError::Conflict {
                    field: "port",
                    message: format!("port {port} is already used by camera {other:?}"),
                });
            }
        }
        if cam.mode == CameraMode::Bridged {
            bridged += 1;
        }
    }
    if bridged > MAX_BRIDGED_CAMERAS {
        return Err(CameraError::Conflict {
            field: "mode",
            message: format!("a bridge holds at most {MAX_BRIDGED_CAMERAS} bridged cameras"),
        });
    }
    Ok(())
}

fn store_camera(store: &Store, camera: &CameraConfig) -> anyhow::Result<()> {
    store.put_runtime_camera(&camera.id, &serde_json::to_string(camera)?)?;
    Ok(())
}

/// What changed for HomeKit from `before` to `after` (only enabled cameras are exposed).
fn diff(before: &[CameraEntry], after: &[CameraEntry]) -> CameraChanges {
    let exposed = |list: &[CameraEntry]| -> BTreeMap<String, CameraConfig> {
        list.iter()
            .filter(|c| c.config.enabled)
            .map(|c| (c.config.id.clone(), c.config.clone()))
            .collect()
    };
    let (old, new) = (exposed(before), exposed(after));
    let mut changes = CameraChanges::default();
    for (id, cam) in &new {
        match old.get(id) {
            None => changes.added.push(cam.clone()),
            Some(prev) if prev != cam => changes.changed.push((prev.clone(), cam.clone())),
            Some(_) => {}
        }
    }
    changes.removed = old
        .into_iter()
        .filter(|(id, _)| !new.contains_key(id))
        .map(|(_, cam)| cam)
        .collect();
    changes
}

/// Whether a change needs the camera's standalone server restarted (its mDNS name, port,
/// category or mode change); otherwise its database is swapped in place.
fn needs_restart(before: &CameraConfig, after: &CameraConfig) -> bool {
    before.mode != after.mode
        || before.name != after.name
        || before.port != after.port
        || before.sensors.doorbell != after.sensors.doorbell
}

/// Whether a change needs a new media runtime (hubs, stream slots): the source, the stream
/// services or the accessory moved.
fn media_changed(before: &CameraConfig, after: &CameraConfig) -> bool {
    before.source != after.source
        || before.substream != after.substream
        || before.always_on != after.always_on
        || before.max_streams != after.max_streams
        || before.mode != after.mode
}

/// The media side of a built database: the runtimes of the cameras placed in it (attached
/// anew when `fresh` says so or when the camera has none, else kept with their live streams),
/// as the routes its server sends camera writes and snapshots through.
fn attach(
    manager: &Arc<CameraManager>,
    built: &Built,
    cameras: &[CameraConfig],
    fresh: &(dyn Fn(&str) -> bool + Sync),
) -> anyhow::Result<Routes> {
    let mut runtimes = Vec::with_capacity(built.cameras.len());
    for (id, placement) in &built.cameras {
        let kept = if fresh(id) { None } else { manager.camera(id) };
        let runtime = match kept {
            Some(runtime) => runtime,
            None => {
                let cam = cameras
                    .iter()
                    .find(|c| &c.id == id)
                    .ok_or_else(|| anyhow::anyhow!("camera {id} placed but not configured"))?;
                manager.attach(cam, placement.clone())?
            }
        };
        runtimes.push(runtime);
    }
    Ok(Routes::new(&runtimes))
}

async fn start_standalone(
    store: &Arc<Store>,
    cam: &CameraConfig,
    manufacturer: &str,
    rt: &Runtime,
    fresh: &(dyn Fn(&str) -> bool + Sync),
    serve: bool,
) -> anyhow::Result<(HapServer, SensorIds)> {
    let built = accessories::build_standalone(cam, manufacturer, store)?;
    let sensors = built.sensors.get(&cam.id).copied().unwrap_or_default();
    let routes = attach(&rt.manager, &built, std::slice::from_ref(cam), fresh)?;
    let category = if cam.sensors.doorbell {
        Category::VIDEO_DOORBELL
    } else {
        Category::IP_CAMERA
    };
    let server = start_server(
        store,
        ServerKey::Camera(cam.id.clone()),
        &cam.name,
        "Camera",
        category,
        built.db,
        routes,
        SocketAddr::new(rt.bind_ip, cam.port.unwrap_or(0)),
        None,
        &rt.advertiser,
        serve,
    )
    .await?;
    Ok((server, sensors))
}

/// Starts one HAP server (serving only when `serve`) and prints how to pair with it while
/// unpaired.
#[allow(clippy::too_many_arguments)] // one call per server kind; a struct would only rename them
pub(crate) async fn start_server(
    store: &Arc<Store>,
    key: ServerKey,
    name: &str,
    model: &str,
    category: Category,
    db: hap_proto::db::Database,
    cameras: Routes,
    bind: SocketAddr,
    setup_code_override: Option<&str>,
    advertiser: &Advertiser,
    serve: bool,
) -> anyhow::Result<HapServer> {
    // The thread-local RNG is not Send: keep it out of the awaits below.
    let record = store.server(&key, &mut rand::rng(), setup_adapter::generate)?;
    if let Some(code) = setup_code_override {
        store.set_setup_code(&key, code)?;
    }
    let record = store.server_record(&key)?.unwrap_or(record);
    tracing::debug!(server = %key.as_db(), stored_config_number = record.config_number, "identity loaded");
    let (setup_code, setup_id) = setup_adapter::parse(&record.setup, key.as_db().as_str())?;
    let config_number = store.update_config_number(&key, &accessories::config_hash(&db))?;
    let pairings = store.pairing_store(&key)?;
    let params = ServerParams {
        key: key.clone(),
        name: name.to_owned(),
        model: model.to_owned(),
        category,
        identity: record.identity,
        setup_code,
        setup_id,
        store: pairings,
        db,
        config_number,
        cameras,
    };
    let server = HapServer::create(params, bind, Some(advertiser)).await?;
    let inner = server.inner();
    if !serve {
        server.shutdown().await;
        println!(
            "hap-bridge: HAP server {} disabled on {}",
            key.as_db(),
            inner.local_addr
        );
        return Ok(server);
    }
    server.resume().await?;
    println!(
        "hap-bridge: HAP server {} listening on {}",
        key.as_db(),
        inner.local_addr
    );
    tracing::info!(server = %key.as_db(), config_number, "accessory database ready");
    match inner.setup_info() {
        Some((code, uri)) => {
            println!(
                "{name}: not paired. Setup code {code}, or scan this QR code with the Home app:"
            );
            println!("{}", crate::qr::terminal(&uri));
            println!("{uri}");
        }
        None => println!("{name}: paired"),
    }
    Ok(server)
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn remove_all(
    store: &mut crate::store::ServerStore,
    pairings: Vec<Pairing>,
) -> Result<Vec<PairingId>, PairingError> {
    let mut removed = Vec::with_capacity(pairings.len());
    for pairing in pairings {
        store
            .remove_pairing(&pairing.id)
            .map_err(|e| PairingError::Store(e.what))?;
        removed.push(pairing.id);
    }
    Ok(removed)
}

/// Closes the removed controllers' sessions and re-announces `sf=1` when unpaired (HAP §8.4).
fn after_removal(inner: &Arc<Inner>, removed: Vec<PairingId>, out: &mut Removed) {
    let now_unpaired = !inner.lock().store.is_paired();
    tracing::info!(server = %inner.key.as_db(), removed = removed.len(), now_unpaired, "pairings removed through the admin API");
    out.ids.extend(removed.iter().map(id_text));
    let _ = inner
        .control
        .send(Control::CloseControllers(Arc::new(removed)));
    if now_unpaired {
        out.now_unpaired.push(inner.key.as_db());
        inner.pairing_changed(false);
    }
}

/// A pairing identifier as text: itself when it is printable UTF-8 (controllers use UUIDs),
/// else `hex:` and its bytes in hex.
pub(crate) fn id_text(id: &PairingId) -> String {
    match std::str::from_utf8(&id.0) {
        Ok(s) if !s.is_empty() && !s.starts_with("hex:") && !s.chars().any(char::is_control) => {
            s.to_owned()
        }
        _ => {
            let hex: String = id.0.iter().map(|b| format!("{b:02x}")).collect();
            format!("hex:{hex}")
        }
    }
}

/// The inverse of [`id_text`]; text that is not valid `hex:` is taken as it is.
pub(crate) fn parse_id(text: &str) -> PairingId {
    if let Some(hex) = text.strip_prefix("hex:") {
        let bytes: Option<Vec<u8>> = (0..hex.len())
            .step_by(2)
            .map(|i| {
                hex.get(i..i + 2)
                    .and_then(|b| u8::from_str_radix(b, 16).ok())
            })
            .collect();
        if let Some(bytes) = bytes.filter(|b| !b.is_empty()) {
            return PairingId(bytes);
        }
    }
    PairingId(text.as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn camera(id: &str, mode: CameraMode, port: Option<u16>) -> CameraEntry {
        let mut config = Config::default().cameras.remove(0);
        config.id = id.to_owned();
        config.mode = mode;
        config.port = port;
        CameraEntry {
            config,
            origin: Origin::Api,
        }
    }

    #[test]
    fn camera_changes_count_only_enabled_cameras() {
        let a = camera("a", CameraMode::Bridged, None);
        let b = camera("b", CameraMode::Standalone, None);
        let mut b2 = b.clone();
        b2.config.sensors.occupancy = true;
        let mut a_off = a.clone();
        a_off.config.enabled = false;
        let c = camera("c", CameraMode::Bridged, None);

        let d = diff(&[a.clone(), b], &[a_off, b2.clone(), c]);
        let ids = |v: &[CameraConfig]| v.iter().map(|c| c.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&d.added), ["c"]);
        assert_eq!(ids(&d.removed), ["a"], "disabled counts as removed");
        assert_eq!(d.changed.len(), 1);
        assert!(
            !needs_restart(&d.changed[0].0, &d.changed[0].1),
            "sensors: swap in place"
        );
        let mut renamed = b2.config.clone();
        renamed.name = "Other".to_owned();
        assert!(needs_restart(&b2.config, &renamed));
        let mut doorbell = b2.config.clone();
        doorbell.sensors.doorbell = true;
        assert!(needs_restart(&b2.config, &doorbell), "category changes");
        assert!(
            diff(std::slice::from_ref(&a), std::slice::from_ref(&a))
                .added
                .is_empty()
        );
    }

    #[test]
    fn camera_lists_are_checked_as_a_whole() {
        let ok = [
            camera("a", CameraMode::Bridged, None),
            camera("b", CameraMode::Standalone, Some(5000)),
        ];
        assert!(check_cameras(&ok, 51826).is_ok());
        let message = |list: &[CameraEntry], port| match check_cameras(list, port) {
            Err(e) => e.to_string(),
            Ok(()) => String::new(),
        };
        assert_eq!(
            message(&ok, 5000),
            "port: port 5000 is the bridge's HAP port"
        );
        let mut twice = ok.to_vec();
        twice.push(camera("c", CameraMode::Standalone, Some(5000)));
        assert_eq!(
            message(&twice, 1),
            "port: port 5000 is already used by camera \"b\""
        );
        let dup = [ok[0].clone(), ok[0].clone()];
        assert_eq!(message(&dup, 1), "id: a camera \"a\" exists already");
        let mut bad = ok.to_vec();
        bad[0].config.max_streams = 0;
        assert_eq!(message(&bad, 1), "max_streams: must be 1..=8");
        let many: Vec<CameraEntry> = (0..=MAX_BRIDGED_CAMERAS)
            .map(|i| camera(&format!("c{i}"), CameraMode::Bridged, None))
            .collect();
        assert!(message(&many, 1).starts_with("mode: a bridge holds at most 149"));
    }

    #[test]
    fn pairing_ids_round_trip_as_text() {
        for bytes in [
            b"D3A9C1E2-0B7F-4C55-9E3A-1B2C3D4E5F60".to_vec(),
            vec![0, 1, 0xff],
            b"hex:41".to_vec(),
            b"tab\there".to_vec(),
        ] {
            let id = PairingId(bytes);
            let text = id_text(&id);
            assert_eq!(parse_id(&text), id, "{text}");
        }
        assert_eq!(
            id_text(&PairingId(b"ABC".to_vec())),
            "ABC",
            "printable ids are shown as they are"
        );
        assert_eq!(id_text(&PairingId(vec![0, 0xab])), "hex:00ab");
        assert_eq!(parse_id("hex:zz"), PairingId(b"hex:zz".to_vec()));
    }
}
