//! Applying a camera list to the running servers: the admin API's camera changes (checked by
//! [`crate::registry`], applied, then persisted, undone when persisting fails) and the reconcile
//! that makes the servers expose exactly the enabled cameras of a list.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::start::{attach, exposed, start_standalone};
use super::{Servers, Standalone, read, write};
use crate::accessories::{self, SensorIds};
use crate::camera::CameraHost;
use crate::config::{CameraMode, CameraSettings};
use crate::hap::HapServer;
use crate::registry::{self, CameraChanges, CameraEntry, CameraError, needs_restart};
use crate::store::{ServerKey, Store};

impl Servers {
    /// Adds a camera through the API and persists it.
    pub(crate) async fn add_camera(&self, camera: CameraSettings) -> Result<(), CameraError> {
        let _op = self.op.lock().await;
        let next = registry::with_added(&self.cameras(), camera.clone())?;
        self.change_cameras(next, |store| store_camera(store, &camera))
            .await
    }

    /// Replaces an API camera: `edit` gets the current configuration and returns the new one
    /// (its id must stay).
    pub(crate) async fn update_camera(
        &self,
        id: &str,
        edit: impl FnOnce(&CameraSettings) -> Result<CameraSettings, CameraError>,
    ) -> Result<CameraSettings, CameraError> {
        let _op = self.op.lock().await;
        let (next, camera) = registry::with_updated(&self.cameras(), id, edit)?;
        self.change_cameras(next, |store| store_camera(store, &camera))
            .await?;
        Ok(camera)
    }

    /// Removes an API camera for good: a bridged camera's AID is not handed out again, a
    /// standalone camera's identity and pairings are forgotten.
    pub(crate) async fn remove_camera(&self, id: &str) -> Result<CameraSettings, CameraError> {
        let _op = self.op.lock().await;
        let (next, removed) = registry::without(&self.cameras(), id)?;
        self.change_cameras(next, |store| {
            Ok(store.remove_camera(id, &accessories::accessory_key(id))?)
        })
        .await?;
        Ok(removed)
    }

    /// Checks `next` as a whole, applies it, then persists with `persist`; when persisting
    /// fails the previous cameras are applied again. The caller holds `self.op`.
    async fn change_cameras(
        &self,
        next: Vec<CameraEntry>,
        persist: impl FnOnce(&Store) -> anyhow::Result<()>,
    ) -> Result<(), CameraError> {
        registry::check(&next, self.bridge().local_addr().port())?;
        let before = self.cameras();
        self.apply_cameras(next, None)
            .await
            .map_err(CameraError::Failed)?;
        if let Err(e) = persist(&self.store) {
            tracing::error!(error = %e, "camera change not persisted: undoing it");
            if let Err(undo) = self.apply_cameras(before, None).await {
                tracing::error!(error = %undo, "undoing the camera change failed");
            }
            return Err(CameraError::Failed(e));
        }
        Ok(())
    }

    /// Starts a standalone camera's server again with the configuration it had (after a failed
    /// change); a failure is logged.
    async fn restore_standalone(&self, config: CameraSettings, serve: bool) {
        let fresh = |_: &str| true;
        match start_standalone(&self.store, &config, &self.parts, &fresh, serve).await {
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

    /// THE run-time reconfiguration: makes the servers expose exactly the enabled cameras of
    /// `next`. Rebuilds the bridge's database (AIDs and IIDs stay, from the store) and swaps it
    /// in, bumping `c#` (and its mDNS TXT record) when the shape changed; starts servers for new
    /// standalone cameras, restarts those whose name, port or kind changed (same identity and
    /// pairings), swaps the database of the others, stops the ones removed; re-points the
    /// sensors. Returns what changed. The caller holds `self.op`.
    ///
    /// `bridge_sensors` is `Some` at start-up, when the bridge's database was just built for
    /// `next` (these are its sensors) and is not rebuilt.
    ///
    /// A standalone server that cannot start (its port taken) fails the call before anything
    /// else changed.
    pub(super) async fn apply_cameras(
        &self,
        next: Vec<CameraEntry>,
        bridge_sensors: Option<BTreeMap<String, SensorIds>>,
    ) -> anyhow::Result<CameraChanges> {
        let changes = registry::diff(&self.cameras(), &next);
        let serve = self.enabled();
        // Cameras that need a new media runtime; the others keep theirs and their live streams.
        let fresh_ids: BTreeSet<&str> = changes
            .added
            .iter()
            .map(|c| c.id.as_str())
            .chain(
                changes
                    .changed
                    .iter()
                    .filter(|(a, b)| registry::media_changed(a, b))
                    .map(|(_, b)| b.id.as_str()),
            )
            .collect();
        let fresh = |id: &str| fresh_ids.contains(id);

        let started = self
            .start_standalone_servers(&changes, &fresh, serve)
            .await?;
        let bridge_sensors = match bridge_sensors {
            Some(sensors) => sensors,
            None => self.rebuild_bridge(&next, &fresh)?,
        };
        self.swap_standalone(&changes, &next, started, &fresh)
            .await?;
        // Sensors follow the new databases.
        let bridge: Arc<dyn CameraHost> = self.bridge().clone();
        let mut sensors: Vec<(String, Arc<dyn CameraHost>, SensorIds)> = bridge_sensors
            .into_iter()
            .map(|(id, ids)| (id, bridge.clone(), ids))
            .collect();
        sensors.extend(read(&self.standalone).iter().map(|(id, s)| {
            let host: Arc<dyn CameraHost> = s.server.state().clone();
            (id.clone(), host, s.sensors)
        }));
        self.parts.sensors.replace(sensors);
        // Media: cameras no longer exposed lose their runtime and live streams (new and
        // changed ones were attached with their database, see `attach`).
        for cam in &changes.removed {
            self.parts.manager.detach(&cam.id);
        }
        *write(&self.cameras) = next;
        Ok(changes)
    }

    /// Standalone servers to (re)start, first, so that a failure changes nothing: the servers
    /// started here are stopped and the ones they replaced are started again.
    async fn start_standalone_servers(
        &self,
        changes: &CameraChanges,
        fresh: &(dyn Fn(&str) -> bool + Sync),
        serve: bool,
    ) -> anyhow::Result<Vec<(CameraSettings, HapServer, SensorIds)>> {
        let mut started: Vec<(CameraSettings, HapServer, SensorIds)> = Vec::new();
        let mut replaced: Vec<Standalone> = Vec::new();
        let restarted = changes
            .changed
            .iter()
            .filter(|(a, b)| needs_restart(a, b))
            .map(|(_, b)| b);
        for cam in changes
            .added
            .iter()
            .chain(restarted)
            .filter(|c| c.mode == CameraMode::Standalone)
        {
            // A restarted camera keeps its port: stop the old server first.
            let old = write(&self.standalone).remove(&cam.id);
            if let Some(old) = old {
                old.server.shutdown().await;
                replaced.push(old);
            }
            match start_standalone(&self.store, cam, &self.parts, fresh, serve).await {
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
        Ok(started)
    }

    /// Rebuilds the bridge's database for the enabled bridged cameras of `next` and swaps it
    /// in; returns where its cameras' sensors are.
    fn rebuild_bridge(
        &self,
        next: &[CameraEntry],
        fresh: &(dyn Fn(&str) -> bool + Sync),
    ) -> anyhow::Result<BTreeMap<String, SensorIds>> {
        let bridge_config = exposed(&self.parts.config, next);
        let built = accessories::build_bridge(&bridge_config, &self.store)?;
        let routes = attach(&self.parts.manager, &built, &bridge_config.cameras, fresh)?;
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
        Ok(built.sensors)
    }

    /// Standalone servers: new ones in, changed databases swapped, removed ones out.
    async fn swap_standalone(
        &self,
        changes: &CameraChanges,
        next: &[CameraEntry],
        started: Vec<(CameraSettings, HapServer, SensorIds)>,
        fresh: &(dyn Fn(&str) -> bool + Sync),
    ) -> anyhow::Result<()> {
        let manufacturer = &self.parts.config.bridge.manufacturer;
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
                let routes = attach(
                    &self.parts.manager,
                    &built,
                    std::slice::from_ref(cam),
                    fresh,
                )?;
                let number = self
                    .store
                    .update_config_number(&key, &accessories::config_hash(&built.db))?;
                entry
                    .server
                    .state()
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
            tracing::info!(server = %server.state().key().as_db(), "standalone camera stopped");
            server.shutdown().await;
        }
        Ok(())
    }
}

fn store_camera(store: &Store, camera: &CameraSettings) -> anyhow::Result<()> {
    store.put_runtime_camera(&camera.id, &registry::stored_json(camera)?)?;
    Ok(())
}
