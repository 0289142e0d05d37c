//! hap-bridge: a native HomeKit bridge for IP cameras.
//!
//! `main` parses the command line and dispatches; [`bridge::run`] starts the HAP servers, the
//! mDNS records and the admin API and runs until Ctrl-C or SIGTERM.
#![forbid(unsafe_code)]

mod accessories;
mod admin_cli;
mod api;
mod bridge;
mod camera;
mod cli;
mod config;
mod hap;
mod mdns;
mod qr;
mod registry;
mod sensors;
mod servers;
mod setup_adapter;
mod store;
mod stream_cli;
#[cfg(test)]
mod testutil;

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;

use crate::cli::{Cli, Command};
use crate::config::{CameraMode, Config};

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colours only on a terminal: a log file or journald gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match &cli.command {
        Some(Command::CheckConfig { file }) => check_config(file),
        Some(Command::Pairings { action }) => report(admin_cli::pairings(&cli, action)),
        Some(Command::Qr { camera }) => {
            report(load_config(&cli).and_then(|c| admin_cli::qr(&cli, &c, camera.as_deref())))
        }
        Some(Command::Stream(args)) => report(stream_cli::run(args)),
        None => match run(&cli) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("hap-bridge: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hap-bridge: {e:#}");
            ExitCode::FAILURE
        }
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

/// The configuration file (or the default) with the command-line overrides applied.
fn load_config(cli: &Cli) -> anyhow::Result<Config> {
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
    Ok(config)
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let config = load_config(cli)?;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(RUNTIME_THREADS)
        .enable_all()
        .build()?
        .block_on(bridge::run(config, cli))
}

/// Async worker threads: the HAP and API tasks are light; media work has its own threads.
const RUNTIME_THREADS: usize = 2;

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
