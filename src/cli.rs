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
    /// Print the bridge's setup code and QR code while unpaired.
    Qr,
    /// Stream a camera to a file or UDP target for testing (not implemented yet).
    Stream {
        /// Arguments, reserved.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// `pairings` actions.
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
