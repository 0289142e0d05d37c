//! Command-line arguments.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// A native HomeKit bridge for IP cameras.
#[derive(Debug, Parser)]
#[command(name = "hap-bridge", version, about)]
pub(crate) struct Cli {
    /// Configuration file (TOML); without it a bridge with one test-pattern camera runs.
    #[arg(long, value_name = "FILE", global = true)]
    pub(crate) config: Option<PathBuf>,
    /// State directory (overrides bridge.data_dir).
    #[arg(long, value_name = "DIR", global = true)]
    pub(crate) data_dir: Option<PathBuf>,
    /// HAP TCP port of the bridge (overrides bridge.port).
    #[arg(long, value_name = "PORT")]
    pub(crate) hap_port: Option<u16>,
    /// Address of the admin API (the bridge listens there; `qr` and `pairings` connect there).
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub(crate) api_addr: SocketAddr,
    /// Admin API token for `qr` and `pairings` (or set `HAP_BRIDGE_API_TOKEN`).
    #[arg(long, value_name = "TOKEN", global = true)]
    pub(crate) api_token: Option<String>,
    /// Setup code `XXX-XX-XXX` to use instead of the stored one (applied while unpaired).
    #[arg(long, value_name = "CODE")]
    pub(crate) setup_code: Option<String>,
    /// Address the HAP server listens on (repeatable; overrides bridge.bind).
    #[arg(long, value_name = "ADDR")]
    pub(crate) bind: Vec<IpAddr>,
    /// What to do; without a command the bridge runs.
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Check a configuration file and print a summary (exit code 2 when invalid).
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
    /// Show or manage the pairings of the running bridge (through its admin API).
    Pairings {
        /// What to do with them.
        #[command(subcommand)]
        action: PairingsAction,
    },
    /// Print the bridge's (or a standalone camera's) setup code and QR code while unpaired.
    Qr {
        /// A standalone camera's id: its own code instead of the bridge's.
        #[arg(long, value_name = "ID")]
        camera: Option<String>,
    },
    /// Stream a camera over SRTP to HOST:PORT without HomeKit (benchmarks, trying a camera):
    /// runs until Ctrl-C or SIGTERM and prints the stream's figures.
    Stream(StreamArgs),
}

/// `pairings` actions.
/// `hap-bridge stream` options; `--srtp-key` is base64 of the 30-byte master key and salt, as
/// ffmpeg's `-srtp_out_params`.
#[derive(Debug, clap::Args)]
pub(crate) struct StreamArgs {
    /// RTSP URL of the camera, or `test-pattern`.
    #[arg(long, value_name = "URL")]
    pub(crate) rtsp: String,
    /// Where RTP (and, without --rtcp-port, RTCP) goes.
    #[arg(long, value_name = "HOST:PORT")]
    pub(crate) dest: SocketAddr,
    /// A separate RTCP port on the destination host (default: RTCP multiplexed on --dest).
    #[arg(long, value_name = "PORT")]
    pub(crate) rtcp_port: Option<u16>,
    /// SRTP master key + salt (AES_CM_128_HMAC_SHA1_80), base64.
    #[arg(long, value_name = "BASE64")]
    pub(crate) srtp_key: String,
    /// RTP SSRC.
    #[arg(long, value_name = "N")]
    pub(crate) ssrc: u32,
    /// RTP payload type.
    #[arg(long, value_name = "N", default_value_t = 99)]
    pub(crate) pt: u8,
    /// Requested picture size.
    #[arg(long, value_name = "WxH", default_value = "1280x720", value_parser = parse_size)]
    pub(crate) size: (u32, u32),
    /// Frames per second.
    #[arg(long, value_name = "N", default_value_t = 30)]
    pub(crate) fps: u32,
    /// Bit rate in kbit/s (for re-encoding).
    #[arg(long, value_name = "N", default_value_t = 2000)]
    pub(crate) kbps: u32,
    /// Largest UDP payload.
    #[arg(long, value_name = "N", default_value_t = 1378)]
    pub(crate) mtu: usize,
    /// Passthrough when the source fits (auto), always passthrough, or always transcode.
    #[arg(long, value_name = "MODE", default_value = "auto", value_parser = ["auto", "passthrough", "transcode"])]
    pub(crate) mode: String,
    /// Connect the camera first and start the stream only once the hub holds a GOP and this
    /// many seconds have passed (a warm, always-on hub, as in the bridge). The line
    /// `hap-bridge stream: session start` on stderr marks the moment the stream starts.
    #[arg(long, value_name = "SECS", default_value_t = 0.0)]
    pub(crate) warm_up: f64,
    /// Also send audio (Opus over SRTP) here. The test pattern sends its beep; other sources
    /// have no audio yet.
    #[arg(long, value_name = "HOST:PORT", requires_all = ["audio_srtp_key", "audio_ssrc"])]
    pub(crate) audio_dest: Option<SocketAddr>,
    /// Audio SRTP master key + salt (AES_CM_128_HMAC_SHA1_80), base64.
    #[arg(long, value_name = "BASE64")]
    pub(crate) audio_srtp_key: Option<String>,
    /// Audio RTP SSRC.
    #[arg(long, value_name = "N")]
    pub(crate) audio_ssrc: Option<u32>,
    /// Audio RTP payload type.
    #[arg(long, value_name = "N", default_value_t = 110)]
    pub(crate) audio_pt: u8,
    /// Audio sample rate (the RTP clock rate too).
    #[arg(long, value_name = "HZ", default_value_t = 24_000, value_parser = parse_audio_rate)]
    pub(crate) audio_rate: u32,
    /// Audio packet time.
    #[arg(long, value_name = "MS", default_value_t = 20, value_parser = parse_audio_ptime)]
    pub(crate) audio_ptime: u32,
}

/// `--audio-rate`: the rates HomeKit's Opus uses.
fn parse_audio_rate(s: &str) -> Result<u32, String> {
    match s {
        "16000" => Ok(16_000),
        "24000" => Ok(24_000),
        _ => Err("expected 16000 or 24000".into()),
    }
}

/// `--audio-ptime`: the packet times iOS asks for.
fn parse_audio_ptime(s: &str) -> Result<u32, String> {
    match s {
        "20" => Ok(20),
        "60" => Ok(60),
        _ => Err("expected 20 or 60".into()),
    }
}

fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or("expected WxH, e.g. 1280x720")?;
    let w: u32 = w.parse().map_err(|_| "width is not a number")?;
    let h: u32 = h.parse().map_err(|_| "height is not a number")?;
    if !(16..=4096).contains(&w) || !(16..=4096).contains(&h) {
        return Err("width and height must be 16..=4096".into());
    }
    Ok((w, h))
}

#[derive(Debug, Subcommand)]
pub(crate) enum PairingsAction {
    /// List the pairings of every HAP server.
    List,
    /// Remove one pairing by controller identifier.
    Remove {
        /// The controller's pairing identifier, exactly as listed.
        id: String,
    },
    /// Remove every pairing (the accessories become unpaired).
    Reset {
        /// Confirm: without it nothing is removed.
        #[arg(long)]
        yes: bool,
    },
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_options_and_subcommands() {
        let cli = Cli::try_parse_from([
            "hap-bridge",
            "--config",
            "c.toml",
            "--data-dir",
            "/d",
            "--hap-port",
            "5000",
            "--api-addr",
            "0.0.0.0:9000",
            "--setup-code",
            "031-45-154",
            "--bind",
            "127.0.0.1",
            "--bind",
            "::1",
        ])
        .unwrap();
        assert_eq!(cli.config, Some(PathBuf::from("c.toml")));
        assert_eq!(cli.data_dir, Some(PathBuf::from("/d")));
        assert_eq!(cli.hap_port, Some(5000));
        assert_eq!(cli.api_addr.port(), 9000);
        assert_eq!(cli.setup_code.as_deref(), Some("031-45-154"));
        assert_eq!(cli.bind.len(), 2);
        assert!(cli.command.is_none());

        let cli = Cli::try_parse_from(["hap-bridge", "check-config", "x.toml"]).unwrap();
        assert!(
            matches!(cli.command, Some(Command::CheckConfig { file }) if file == Path::new("x.toml"))
        );
        let cli = Cli::try_parse_from(["hap-bridge", "pairings", "remove", "ABC"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Pairings { action: PairingsAction::Remove { id } }) if id == "ABC"
        ));
        // Port 0: the OS picks one (tests); the bound port is printed.
        assert_eq!(
            Cli::try_parse_from(["hap-bridge", "--hap-port", "0"])
                .unwrap()
                .hap_port,
            Some(0)
        );
        assert!(Cli::try_parse_from(["hap-bridge", "--hap-port", "70000"]).is_err());
        assert!(Cli::try_parse_from(["hap-bridge", "--bind", "nope"]).is_err());
    }
}
