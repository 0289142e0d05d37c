//! Runs the bridge: opens the state store, builds the accessory databases, starts the HAP
//! servers (the bridge and each standalone camera) with their mDNS records, the admin API, and
//! waits for Ctrl-C or SIGTERM to shut everything down.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hap_proto::setup::Category;

use crate::accessories::{self, Built};
use crate::api::{self, ApiState, CameraInfo, Transcoder};
use crate::camera::{CameraManager, Routes};
use crate::cli::Cli;
use crate::config::{CameraMode, Config};
use crate::control::Controller;
use crate::hap::{HapServer, ServerParams};
use crate::mdns::Advertiser;
use crate::sensors::Sensors;
use crate::setup_adapter;
use crate::store::{ServerKey, Store};

/// Runs until Ctrl-C or SIGTERM.
pub(crate) async fn run(config: Config, cli: &Cli) -> anyhow::Result<()> {
    let store = Arc::new(Store::open(&config.bridge.data_dir)?);
    tracing::info!(path = %store.path().display(), "state store open");
    if let Some(code) = &cli.setup_code {
        hap_proto::setup::SetupCode::parse(code)
            .map_err(|e| anyhow::anyhow!("--setup-code: {e}"))?;
    }
    let advertiser = Advertiser::new(&config.bridge.mdns_interfaces)?;
    // HomeKit disabled through the admin API: the servers are set up but do not serve.
    let serve = store.bridge_enabled()?;
    if !serve {
        println!("hap-bridge: HomeKit is disabled; enable it with POST /api/v1/homekit/enable");
    }

    let bind_ip = config
        .bridge
        .bind
        .first()
        .copied()
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    if config.bridge.bind.len() > 1 {
        tracing::warn!("bridge.bind: only the first address is used: {bind_ip}");
    }
    let manager = CameraManager::new();
    let built = accessories::build_bridge(&config, &store)?;
    let routes = attach_cameras(&manager, &config, &built)?;
    let bridge = start_server(
        &store,
        ServerKey::Bridge,
        &config.bridge.name,
        &config.bridge.model,
        Category::BRIDGE,
        built.db,
        routes,
        SocketAddr::new(bind_ip, config.bridge.port),
        cli.setup_code.as_deref(),
        &advertiser,
        serve,
    )
    .await?;
    let mut sensor_list: Vec<_> = built
        .sensors
        .into_iter()
        .map(|(id, ids)| (id, bridge.inner().clone(), ids))
        .collect();

    let mut servers = vec![bridge];
    for cam in config
        .cameras
        .iter()
        .filter(|c| c.enabled && c.mode == CameraMode::Standalone)
    {
        let built = accessories::build_standalone(cam, &config.bridge.manufacturer, &store)?;
        let routes = attach_cameras(&manager, &config, &built)?;
        let Built { db, sensors, .. } = built;
        let category = if cam.sensors.doorbell {
            Category::VIDEO_DOORBELL
        } else {
            Category::IP_CAMERA
        };
        let server = start_server(
            &store,
            ServerKey::Camera(cam.id.clone()),
            &cam.name,
            "Camera",
            category,
            db,
            routes,
            SocketAddr::new(bind_ip, cam.port.unwrap_or(0)),
            None,
            &advertiser,
            serve,
        )
        .await?;
        sensor_list.extend(
            sensors
                .into_iter()
                .map(|(id, ids)| (id, server.inner().clone(), ids)),
        );
        servers.push(server);
    }
    let timings = config.timings;
    let sensors = Arc::new(Sensors::new(
        sensor_list,
        Duration::from_secs(u64::from(timings.motion_reset_seconds)),
        Duration::from_secs(u64::from(timings.max_motion_duration)),
    ));

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let token = api::resolve_token(config.api.token.as_deref(), cli.api_addr, &store)?;
    let mut servers = servers.into_iter();
    let bridge_server = servers
        .next()
        .ok_or_else(|| anyhow::anyhow!("the bridge's HAP server is missing"))?;
    let control = Arc::new(Controller::new(
        bridge_server,
        servers.collect(),
        store.clone(),
    ));
    let api_state = Arc::new(ApiState {
        control: control.clone(),
        sensors,
        bridge_name: config.bridge.name.clone(),
        cameras: config.cameras.iter().map(camera_info).collect(),
        streams: manager.clone(),
        // openh264 is built into the binary (no external encoder to find).
        transcoder: Transcoder {
            engine: "openh264",
            available: true,
        },
        token,
    });
    let mut api_stop = stop_rx.clone();
    let (api_addr, api_task) = api::serve(cli.api_addr, api_state, async move {
        let _ = api_stop.wait_for(|s| *s).await;
    })
    .await?;
    println!("hap-bridge: admin API listening on http://{api_addr}");

    shutdown_signal().await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    manager.shutdown().await;
    control.shutdown().await;
    let _ = tokio::time::timeout(Duration::from_secs(2), api_task).await;
    advertiser.shutdown();
    drop(stop_rx);
    Ok(())
}

/// Creates the runtimes (hubs, stream slots) of the cameras placed in `built` and the routes
/// their server sends camera writes and snapshots through.
fn attach_cameras(
    manager: &Arc<CameraManager>,
    config: &Config,
    built: &Built,
) -> anyhow::Result<Routes> {
    let mut runtimes = Vec::with_capacity(built.cameras.len());
    for (id, placement) in &built.cameras {
        let cam = config
            .cameras
            .iter()
            .find(|c| &c.id == id)
            .ok_or_else(|| anyhow::anyhow!("camera {id} placed but not configured"))?;
        runtimes.push(manager.attach(cam, placement.clone())?);
    }
    Ok(Routes::new(&runtimes))
}

/// Starts one HAP server and prints how to pair with it while unpaired.
#[allow(clippy::too_many_arguments)] // one call per server kind; a struct would only rename them
async fn start_server(
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
    let mut rng = rand::rng();
    let record = store.server(&key, &mut rng, setup_adapter::generate)?;
    if let Some(code) = setup_code_override {
        store.set_setup_code(&key, code)?;
    }
    let record = store.server_record(&key)?.unwrap_or(record);
    tracing::debug!(server = %key.as_db(), stored_config_number = record.config_number, "identity loaded");
    let (setup_code, setup_id) = setup_adapter::parse(&record.setup, key.as_db().as_str())?;
    let config_number = store.update_config_number(&key, &db.shape_hash())?;
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

fn camera_info(cam: &crate::config::CameraConfig) -> CameraInfo {
    let s = &cam.sensors;
    CameraInfo {
        id: cam.id.clone(),
        name: cam.name.clone(),
        mode: match cam.mode {
            CameraMode::Bridged => "bridged",
            CameraMode::Standalone => "standalone",
        },
        enabled: cam.enabled,
        sensors: [
            (s.motion, "motion"),
            (s.occupancy, "occupancy"),
            (s.doorbell, "doorbell"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect(),
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            let _ = ctrl_c.await;
            return;
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
