//! Starting servers: a standalone camera's, one HAP server as such (identity from the store,
//! mDNS, and how to pair printed while unpaired), and the cameras' media runtimes attached to a
//! built database.

use std::net::SocketAddr;
use std::sync::Arc;

use hap_proto::setup::Category;

use super::BridgeParts;
use crate::accessories::{self, Built, SensorIds};
use crate::camera::{CameraManager, Routes};
use crate::config::{CameraSettings, Config};
use crate::hap::{HapServer, ServerParams};
use crate::mdns::Advertiser;
use crate::registry::CameraEntry;
use crate::setup_adapter;
use crate::store::{ServerKey, Store};

/// `config` with the enabled cameras of `cameras` as its camera list.
pub(super) fn exposed(config: &Config, cameras: &[CameraEntry]) -> Config {
    Config {
        cameras: cameras
            .iter()
            .filter(|c| c.config.enabled)
            .map(|c| c.config.clone())
            .collect(),
        ..config.clone()
    }
}

/// Starts a standalone camera's server (serving only when `serve`); its media runtime is
/// attached anew when `fresh` says so.
pub(super) async fn start_standalone(
    store: &Arc<Store>,
    cam: &CameraSettings,
    parts: &BridgeParts,
    fresh: &(dyn Fn(&str) -> bool + Sync),
    serve: bool,
) -> anyhow::Result<(HapServer, SensorIds)> {
    let manufacturer = &parts.config.bridge.manufacturer;
    let built = accessories::build_standalone(cam, manufacturer, store)?;
    let sensors = built.sensors.get(&cam.id).copied().unwrap_or_default();
    let routes = attach(&parts.manager, &built, std::slice::from_ref(cam), fresh)?;
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
        SocketAddr::new(parts.bind_ip, cam.port.unwrap_or(0)),
        None,
        &parts.advertiser,
        serve,
    )
    .await?;
    Ok((server, sensors))
}

/// Starts one HAP server (serving only when `serve`) and prints how to pair with it while
/// unpaired.
#[allow(clippy::too_many_arguments)] // one call per server kind; a struct would only rename them
pub(super) async fn start_server(
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
    let state = server.state();
    if !serve {
        server.shutdown().await;
        println!(
            "hap-bridge: HAP server {} disabled on {}",
            key.as_db(),
            state.local_addr()
        );
        return Ok(server);
    }
    server.resume().await?;
    println!(
        "hap-bridge: HAP server {} listening on {}",
        key.as_db(),
        state.local_addr()
    );
    tracing::info!(server = %key.as_db(), config_number, "accessory database ready");
    match state.setup_info() {
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

/// The media side of a built database: the runtimes of the cameras placed in it (attached
/// anew when `fresh` says so or when the camera has none, else kept with their live streams),
/// as the routes its server sends camera writes and snapshots through.
pub(super) fn attach(
    manager: &Arc<CameraManager>,
    built: &Built,
    cameras: &[CameraSettings],
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
