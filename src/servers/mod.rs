//! The set of HAP servers the bridge runs: the bridge's own, and one per enabled standalone
//! camera. HomeKit on and off (persisted in the store's enabled flag), the camera list they
//! expose ([`apply`]), pairing administration across them ([`pairings`]) and their start-up
//! ([`start`]).
//!
//! Disabling stops serving HAP (listeners, connections and mDNS records go away) but keeps every
//! identity and pairing; enabling serves again on the same ports with the same state.

mod apply;
mod pairings;
mod start;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};

use hap_proto::setup::Category;

pub(crate) use pairings::{PairingError, Removed};

use crate::accessories::{self, SensorIds};
use crate::camera::CameraManager;
use crate::config::{CameraSettings, Config};
use crate::hap::{HapServer, ServerState};
use crate::mdns::Advertiser;
use crate::registry::{self, CameraEntry};
use crate::sensors::Sensors;
use crate::store::{ServerKey, Store};

/// The HAP servers: the bridge, and one per enabled standalone camera.
pub(crate) struct Servers {
    bridge: Arc<HapServer>,
    /// Standalone cameras' servers by camera id.
    standalone: RwLock<BTreeMap<String, Standalone>>,
    /// Every camera, enabled or not, configuration file first.
    cameras: RwLock<Vec<CameraEntry>>,
    parts: BridgeParts,
    store: Arc<Store>,
    /// Serializes enable/disable, camera changes and pairing changes.
    op: tokio::sync::Mutex<()>,
}

/// A running standalone camera server and what it was built from.
struct Standalone {
    server: Arc<HapServer>,
    config: CameraSettings,
    sensors: SensorIds,
}

/// What the servers are built with besides the camera list.
pub(crate) struct BridgeParts {
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

impl Servers {
    /// Takes over the bridge's server, which serves `cameras` already (see
    /// [`Servers::start`]).
    fn new(
        bridge: HapServer,
        store: Arc<Store>,
        parts: BridgeParts,
        cameras: Vec<CameraEntry>,
    ) -> Self {
        Self {
            bridge: Arc::new(bridge),
            standalone: RwLock::new(BTreeMap::new()),
            cameras: RwLock::new(cameras),
            parts,
            store,
            op: tokio::sync::Mutex::new(()),
        }
    }

    /// The bridge's server state.
    pub(crate) fn bridge(&self) -> &Arc<ServerState> {
        self.bridge.state()
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
        server.state().setup_info()
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
}

impl Servers {
    /// Starts the bridge's server and the standalone cameras' with the configuration file's
    /// cameras and the ones stored through the API. `setup_code` replaces the bridge's stored
    /// setup code (applied while unpaired).
    pub(crate) async fn start(
        store: Arc<Store>,
        parts: BridgeParts,
        setup_code: Option<&str>,
    ) -> anyhow::Result<Self> {
        let config = &parts.config;
        let cameras = registry::load(config, store.runtime_cameras()?);
        let serve = store.bridge_enabled()?;
        let bridge_config = start::exposed(config, &cameras);
        let built = accessories::build_bridge(&bridge_config, &store)?;
        let all_fresh = |_: &str| true;
        let routes = start::attach(&parts.manager, &built, &bridge_config.cameras, &all_fresh)?;
        let bridge = start::start_server(
            &store,
            ServerKey::Bridge,
            &config.bridge.name,
            &config.bridge.model,
            Category::BRIDGE,
            built.db,
            routes,
            SocketAddr::new(parts.bind_ip, config.bridge.port),
            setup_code,
            &parts.advertiser,
            serve,
        )
        .await?;
        let servers = Self::new(bridge, store, parts, Vec::new());
        {
            let _op = servers.op.lock().await;
            // The bridge's database is current: only standalone servers and sensors follow.
            servers.apply_cameras(cameras, Some(built.sensors)).await?;
        }
        Ok(servers)
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
