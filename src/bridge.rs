//! Runs the bridge: opens the state store, builds the accessory databases, starts the HAP
//! servers (the bridge and each standalone camera) with their mDNS records, the admin API, and
//! waits for Ctrl-C or SIGTERM to shut everything down.

use std::sync::Arc;
use std::time::Duration;

use crate::api::{self, ApiState, Transcoder};
use crate::camera::CameraManager;
use crate::cli::Cli;
use crate::config::Config;
use crate::mdns::Advertiser;
use crate::sensors::Sensors;
use crate::servers::{BridgeParts, Servers};
use crate::store::Store;

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
    if media::transcode::OPENH264_ASSEMBLY {
        tracing::info!("transcoder: openh264 with its assembly");
    } else {
        tracing::warn!(
            "transcoder: openh264 was built without its assembly (nasm was not found at build \
             time): transcoding costs about 2.5x as much; install nasm and rebuild"
        );
    }
    let timings = config.timings;
    let sensors = Arc::new(Sensors::new(
        Vec::new(),
        Duration::from_secs(u64::from(timings.motion_reset_seconds)),
        Duration::from_secs(u64::from(timings.max_motion_duration)),
    ));
    let manager = CameraManager::new(sensors.clone());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let token = api::resolve_token(config.api.token.as_deref(), cli.api_addr, &store)?;
    // The bridge's server and the standalone cameras' start here, with the configuration file's
    // cameras and the ones added through the admin API; the sensors are wired to them.
    let parts = BridgeParts {
        config: config.clone(),
        advertiser: advertiser.clone(),
        bind_ip,
        sensors: sensors.clone(),
        manager: manager.clone(),
    };
    let servers = Arc::new(Servers::start(store.clone(), parts, cli.setup_code.as_deref()).await?);
    let api_state = Arc::new(ApiState {
        servers: servers.clone(),
        sensors,
        bridge_name: config.bridge.name.clone(),
        streams: manager.clone(),
        // openh264 is built into the binary (no external encoder to find).
        transcoder: Transcoder {
            engine: "openh264",
            available: true,
            assembly: media::transcode::OPENH264_ASSEMBLY,
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
    servers.shutdown().await;
    let _ = tokio::time::timeout(Duration::from_secs(2), api_task).await;
    advertiser.shutdown();
    drop(stop_rx);
    Ok(())
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
