//! hap-bridge: a native HomeKit bridge for IP cameras.
//!
//! For now this wires configuration, the state store and the mDNS advertisement; the HAP server
//! comes next.
#![forbid(unsafe_code)]

mod cli;
mod config;
mod mdns;
mod setup_adapter;
// The HAP server (next) uses the rest of the store API: c#, IIDs, settings, cameras.
// TODO(lead): remove this allow once it is wired.
#[allow(dead_code)]
mod store;
#[cfg(test)]
mod testutil;

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser as _;
use hap_proto::mdns::{TxtParams, category, txt_record};
use hap_proto::pairing::PairingStore as _;

use crate::cli::{Cli, Command};
use crate::config::{CameraMode, Config};
use crate::store::{ServerKey, Store};

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match &cli.command {
        Some(Command::CheckConfig { file }) => check_config(file),
        Some(Command::Pairings { .. } | Command::Qr | Command::Stream { .. }) => {
            eprintln!("hap-bridge: this command is not implemented yet");
            ExitCode::FAILURE
        }
        None => match run(&cli) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("hap-bridge: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

/// `check-config FILE`: prints `OK` and a summary, or the error naming the field (exit code 2).
fn check_config(file: &Path) -> ExitCode {
    match Config::load(file) {
        Ok(config) => {
            print!("OK {}\n{}", file.display(), summary(&config));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

/// A human-readable summary; URLs are masked.
fn summary(config: &Config) -> String {
    let b = &config.bridge;
    let mut out = String::new();
    let binds: Vec<String> = b.bind.iter().map(ToString::to_string).collect();
    let mdns = if b.mdns_interfaces.is_empty() {
        "all interfaces".to_owned()
    } else {
        b.mdns_interfaces.join(", ")
    };
    let _ = writeln!(
        out,
        "bridge {:?}: port {}, bind {}, mdns on {mdns}",
        b.name,
        b.port,
        binds.join(", ")
    );
    let _ = writeln!(out, "state in {}", b.data_dir.display());
    for cam in &config.cameras {
        let mode = match (cam.mode, cam.port) {
            (CameraMode::Bridged, _) => "bridged".to_owned(),
            (CameraMode::Standalone, Some(port)) => format!("standalone on port {port}"),
            (CameraMode::Standalone, None) => "standalone".to_owned(),
        };
        let _ = writeln!(
            out,
            "camera {} {:?}: {}{}, {mode}, up to {} streams{}",
            cam.id,
            cam.name,
            cam.source,
            cam.substream
                .as_ref()
                .map(|s| format!(" (substream {s})"))
                .unwrap_or_default(),
            cam.max_streams,
            if cam.enabled { "" } else { ", disabled" },
        );
    }
    out
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let mut config = match &cli.config {
        Some(path) => Config::load(path)?,
        None => {
            tracing::info!("no --config given: one test-pattern camera");
            Config::default()
        }
    };
    if let Some(dir) = &cli.data_dir {
        config.bridge.data_dir.clone_from(dir);
    }
    if let Some(port) = cli.hap_port {
        config.bridge.port = port;
    }
    if !cli.bind.is_empty() {
        config.bridge.bind.clone_from(&cli.bind);
    }
    config
        .validate()
        .context("after applying command-line options")?;

    let store = Arc::new(Store::open(&config.bridge.data_dir)?);
    tracing::info!(path = %store.path().display(), "state store open");
    let mut rng = rand::rng();
    let bridge = store.server(&ServerKey::Bridge, &mut rng, setup_adapter::generate)?;
    if let Some(code) = &cli.setup_code {
        anyhow::ensure!(
            setup_adapter::is_valid_code(code),
            "--setup-code: not a valid XXX-XX-XXX code"
        );
        store.set_setup_code(&ServerKey::Bridge, code)?;
    }
    let pairings = store.pairing_store(&ServerKey::Bridge)?;
    let bridged: Vec<String> = config
        .cameras
        .iter()
        .filter(|c| c.mode == CameraMode::Bridged)
        .map(|c| format!("camera:{}", c.id))
        .collect();
    let keys: Vec<&str> = bridged.iter().map(String::as_str).collect();
    let aids = store.assign_aids(&ServerKey::Bridge, &keys)?;
    println!("state: {}", store.path().display());
    println!(
        "bridge {:?}: device id {}, setup id {}, {} pairing(s), c# {}",
        config.bridge.name,
        bridge.identity.device_id,
        bridge.setup.setup_id,
        pairings.pairings().len(),
        bridge.config_number
    );
    for (key, aid) in bridged.iter().zip(&aids) {
        println!("  {key}: aid {aid}");
    }
    for cam in config
        .cameras
        .iter()
        .filter(|c| c.mode == CameraMode::Standalone)
    {
        let rec = store.server(
            &ServerKey::Camera(cam.id.clone()),
            &mut rng,
            setup_adapter::generate,
        )?;
        println!(
            "camera {} (standalone): device id {}",
            cam.id, rec.identity.device_id
        );
    }

    let advertiser = mdns::Advertiser::new(&config.bridge.mdns_interfaces)?;
    let txt = txt_record(&TxtParams {
        model: config.bridge.model.clone(),
        device_id: bridge.identity.device_id,
        config_number: bridge.config_number,
        paired: pairings.is_paired(),
        category: category::BRIDGE,
        // TODO(lead): `hap_proto::setup::setup_hash(setup id, device id)` once it lands.
        setup_hash: None,
    });
    let spec = mdns::ServiceSpec {
        name: config.bridge.name.clone(),
        device_id: bridge.identity.device_id,
        port: config.bridge.port,
    };
    let registration = advertiser.register(&spec, &txt)?;
    println!(
        "advertising {:?}; Ctrl-C to stop (the HAP server is not wired yet)",
        registration.fullname()
    );
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(tokio::signal::ctrl_c())?;
    registration.unregister()?;
    advertiser.shutdown();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_masks_urls() {
        let text = "[[cameras]]\nid = \"front\"\nname = \"Front\"\n\
                    source = \"rtsp://admin:s3cret@cam/main\"\n\
                    substream = \"rtsp://admin:s3cret@cam/sub\"\nmode = \"standalone\"\nport = 5000\n";
        let config = Config::parse(text, "t").unwrap();
        let s = summary(&config);
        assert!(!s.contains("s3cret"), "{s}");
        assert!(s.contains("camera front \"Front\": rtsp://admin:***@cam/main (substream rtsp://admin:***@cam/sub), standalone on port 5000, up to 2 streams"), "{s}");
        assert!(
            s.contains("bridge \"HAP Bridge\": port 51826, bind 0.0.0.0, mdns on all interfaces"),
            "{s}"
        );
    }
}
