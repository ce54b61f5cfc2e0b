//! The agent's configuration: flags and `CERTCTL_*` environment variables (the reference agent's
//! names), and the `register` subcommand's options.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "certctl-agent", version, about = "certctl agent: renews and installs certificates on this host")]
pub struct Cli {
    #[command(flatten)]
    pub common: Common,
    /// Without a subcommand the agent runs: heartbeats, work polling, discovery scans.
    #[command(flatten)]
    pub run: Run,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Registers this host with the server using the bootstrap token, saves the agent's key
    /// (0600) and id under CERTCTL_KEY_DIR, and prints the id.
    Register(Register),
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct Common {
    /// The certctl server's URL (https://…).
    #[arg(long = "server", env = "CERTCTL_SERVER_URL")]
    pub server_url: String,

    /// PEM bundle of the CA(s) the server's certificate chains to; when set, only these are trusted.
    #[arg(long = "ca-bundle", env = "CERTCTL_SERVER_CA_BUNDLE_PATH")]
    pub ca_bundle: Option<PathBuf>,

    /// Directory for the agent's key, its id and the private keys it generates (created 0700).
    #[arg(long = "key-dir", env = "CERTCTL_KEY_DIR", default_value = "/var/lib/certctl/keys")]
    pub key_dir: PathBuf,

    /// Log level: error, warn, info, debug or trace.
    #[arg(long = "log-level", env = "CERTCTL_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
}

#[derive(Debug, Args)]
pub struct Register {
    /// The agent's name (unique on the server). Default: this host's name.
    #[arg(long = "name", env = "CERTCTL_AGENT_NAME")]
    pub name: Option<String>,

    /// The server's CERTCTL_AGENT_BOOTSTRAP_TOKEN (an admin key also works).
    #[arg(long = "bootstrap-token", env = "CERTCTL_AGENT_BOOTSTRAP_TOKEN", hide_env_values = true)]
    pub bootstrap_token: String,
}

#[derive(Debug, Args)]
pub struct Run {
    /// The agent's id. Default: the id `register` saved in CERTCTL_KEY_DIR.
    #[arg(long = "agent-id", env = "CERTCTL_AGENT_ID")]
    pub agent_id: Option<String>,

    /// The agent's key. Default: the key `register` saved in CERTCTL_KEY_DIR.
    #[arg(long = "api-key", env = "CERTCTL_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,

    /// Directories scanned for certificates (comma-separated); none: no discovery scans.
    #[arg(long = "discovery-dirs", env = "CERTCTL_DISCOVERY_DIRS", value_delimiter = ',')]
    pub discovery_dirs: Vec<PathBuf>,

    /// Time between heartbeats.
    #[arg(long = "heartbeat-interval", env = "CERTCTL_AGENT_HEARTBEAT_INTERVAL", default_value = "30s", value_parser = duration)]
    pub heartbeat_interval: Duration,

    /// Time between work polls.
    #[arg(long = "poll-interval", env = "CERTCTL_AGENT_POLL_INTERVAL", default_value = "30s", value_parser = duration)]
    pub poll_interval: Duration,

    /// Time between discovery scans.
    #[arg(long = "discovery-interval", env = "CERTCTL_AGENT_DISCOVERY_INTERVAL", default_value = "6h", value_parser = duration)]
    pub discovery_interval: Duration,
}

fn duration(value: &str) -> Result<Duration, String> {
    let parsed = humantime::parse_duration(value).map_err(|e| format!("expected a duration such as 30s or 5m: {e}"))?;
    if parsed < Duration::from_millis(100) {
        return Err("must be at least 100ms".into());
    }
    Ok(parsed)
}

/// File names under the key dir.
pub const KEY_FILE: &str = "agent.key";
pub const ID_FILE: &str = "agent.id";
