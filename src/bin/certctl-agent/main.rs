//! `certctl-agent`: runs on the servers that use certificates. It registers once (`register`,
//! with the bootstrap token; its key is saved 0600), then heartbeats, polls for work, answers
//! renewals with a locally generated key and CSR, installs issued certificates on its targets
//! (rolling back when the reload fails), and reports what it finds on disk.
//!
//! - [`config`]: flags and `CERTCTL_*` variables.
//! - [`client`]: the HTTPS calls to the server.
//! - [`keys`]: the agent's own key and the leaf keys it generates, on disk.
//! - [`renew`]: key generation and the CSR.
//! - [`deploy`]: file targets (and the nginx, apache, haproxy presets).
//! - [`discovery`]: filesystem scans.
//! - [`backoff`]: jittered intervals and exponential backoff.
//!
//! Exit codes: 0 on SIGINT/SIGTERM, 1 on a start-up error (a missing key, a non-https server URL,
//! an unreadable CA bundle), 2 on invalid flags (clap's usage error), 3 when the server says the
//! agent is retired (410).

mod backoff;
mod client;
mod config;
mod deploy;
mod discovery;
mod keys;
mod renew;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser as _;
use serde_json::{json, Value};

use client::{CallError, Server};
use config::{Cli, Command, Common, Register, Run, ID_FILE, KEY_FILE};
use keys::KeyStore;

/// Why the agent stops.
enum Stop {
    Retired(String),
    Signal(&'static str),
}

/// Base of the backoff after an error (it doubles per failure, up to five minutes).
const ERROR_BACKOFF: Duration = Duration::from_secs(2);

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.common.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a person at a terminal: a journal or a log file gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).init();
    let result = match cli.command {
        Some(Command::Register(register_args)) => register(&cli.common, register_args).await,
        None => run(&cli.common, cli.run).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("certctl-agent: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// What the agent says about its host.
fn host_info() -> Value {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into a buffer we own.
    let hostname = if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0 {
        let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        String::new()
    };
    json!({
        "hostname": hostname,
        "os": std::env::consts::OS,
        "architecture": std::env::consts::ARCH,
        "version": env!("CARGO_PKG_VERSION"),
    })
}

async fn register(common: &Common, args: Register) -> anyhow::Result<ExitCode> {
    let host = host_info();
    let name = args.name.unwrap_or_else(|| host["hostname"].as_str().unwrap_or("agent").to_owned());
    let server = Server::new(common, args.bootstrap_token, String::new())?;
    let (id, key) = server.register(&name, &host).await.context("registering with the server")?;
    keys::private_dir(&common.key_dir)?;
    keys::write_atomically(&common.key_dir.join(KEY_FILE), key.as_bytes(), 0o600)?;
    keys::write_atomically(&common.key_dir.join(ID_FILE), id.as_bytes(), 0o600)?;
    println!("{id}");
    tracing::info!(agent_id = %id, key_dir = %common.key_dir.display(), "registered; the agent's key is saved");
    Ok(ExitCode::SUCCESS)
}

fn saved(dir: &Path, file: &str, variable: &str) -> anyhow::Result<String> {
    let path = dir.join(file);
    std::fs::read_to_string(&path)
        .map(|s| s.trim().to_owned())
        .with_context(|| format!("set {variable}, or run `certctl-agent register` first (no {})", path.display()))
}

async fn run(common: &Common, args: Run) -> anyhow::Result<ExitCode> {
    let agent_id = match args.agent_id.clone() {
        Some(id) => id,
        None => saved(&common.key_dir, ID_FILE, "CERTCTL_AGENT_ID")?,
    };
    let key = match args.api_key.clone() {
        Some(key) => key,
        None => saved(&common.key_dir, KEY_FILE, "CERTCTL_API_KEY")?,
    };
    let server = Arc::new(Server::new(common, key, agent_id.clone())?);
    let keys = Arc::new(KeyStore::open(&common.key_dir)?);
    tracing::info!(agent_id = %agent_id, server = %common.server_url, "certctl agent started");
    let host = host_info();
    let stop = tokio::select! {
        stop = heartbeat_loop(server.clone(), host, args.heartbeat_interval) => stop,
        stop = work_loop(server.clone(), keys, args.poll_interval) => stop,
        stop = discovery_loop(server.clone(), args.discovery_dirs.clone(), args.discovery_interval) => stop,
        signal = signal() => Stop::Signal(signal),
    };
    match stop {
        Stop::Retired(detail) => {
            eprintln!("certctl-agent: agent {agent_id} is retired on the server ({detail}); stopping");
            Ok(ExitCode::from(3))
        }
        Stop::Signal(name) => {
            tracing::info!(signal = name, "stopping");
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
        (Ok(mut interrupt), Ok(mut terminate)) => tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        },
        _ => std::future::pending().await,
    }
}

/// Sleeps after an outcome: the jittered interval after success, backoff after an error.
/// Returns a stop for a retired agent.
async fn pace(outcome: Result<(), CallError>, interval: Duration, failures: &mut u32, what: &str) -> Option<Stop> {
    let wait = match outcome {
        Ok(()) => {
            *failures = 0;
            backoff::jittered(interval)
        }
        Err(CallError::Gone(detail)) => return Some(Stop::Retired(detail)),
        Err(e) => {
            *failures += 1;
            let wait = backoff::after_error(ERROR_BACKOFF.min(interval), *failures, e.retry_after());
            tracing::warn!(error = %e, failures = *failures, retry_in_ms = wait.as_millis() as u64, "{what} failed");
            wait
        }
    };
    tokio::time::sleep(wait).await;
    None
}

async fn heartbeat_loop(server: Arc<Server>, host: Value, interval: Duration) -> Stop {
    let mut failures = 0;
    loop {
        let outcome = server.heartbeat(&host).await;
        if let Some(stop) = pace(outcome, interval, &mut failures, "heartbeat").await {
            return stop;
        }
    }
}

async fn work_loop(server: Arc<Server>, keys: Arc<KeyStore>, interval: Duration) -> Stop {
    let mut failures = 0;
    loop {
        let (outcome, busy) = match server.work().await {
            Ok(items) => {
                let busy = !items.is_empty();
                (handle_work(&server, &keys, items).await, busy)
            }
            Err(e) => (Err(e), false),
        };
        // After work, look again soon: a CSR's certificate comes back as a deployment job.
        let interval = if busy { interval.min(Duration::from_secs(1)) } else { interval };
        if let Some(stop) = pace(outcome, interval, &mut failures, "work poll").await {
            return stop;
        }
    }
}

/// Handles one poll's items in order; a retired answer stops at once.
async fn handle_work(server: &Server, keys: &KeyStore, items: Vec<client::WorkItem>) -> Result<(), CallError> {
    for item in items {
        let result = match (item.job_type.as_str(), item.status.as_str()) {
            (_, "AwaitingCSR") => match renew::answer_csr(server, keys, &item).await {
                Ok(()) => Ok(()),
                Err(e) => match e.downcast::<CallError>() {
                    Ok(call) => Err(call),
                    Err(other) => {
                        tracing::warn!(job_id = %item.id, error = %format!("{other:#}"), "cannot answer the CSR request");
                        Ok(())
                    }
                },
            },
            ("Deployment", _) => deploy::deploy(server, keys, &item).await,
            (kind, status) => {
                tracing::warn!(job_id = %item.id, kind, status, "ignoring work this agent does not know");
                Ok(())
            }
        };
        match result {
            Err(CallError::Gone(detail)) => return Err(CallError::Gone(detail)),
            Err(e) => tracing::warn!(job_id = %item.id, error = %e, "reporting on a job failed"),
            Ok(()) => {}
        }
    }
    Ok(())
}

async fn discovery_loop(server: Arc<Server>, dirs: Vec<std::path::PathBuf>, interval: Duration) -> Stop {
    if dirs.is_empty() {
        return std::future::pending().await;
    }
    let mut failures = 0;
    loop {
        let scan_dirs = dirs.clone();
        let reports = match tokio::task::spawn_blocking(move || discovery::scan(&scan_dirs)).await {
            Ok(reports) => reports,
            Err(e) => {
                tracing::warn!(error = %e, "the discovery scan thread failed");
                tokio::time::sleep(backoff::jittered(interval)).await;
                continue;
            }
        };
        let mut outcome = Ok(());
        let (mut found, mut new) = (0, 0);
        for report in &reports {
            match server.discoveries(report).await {
                Ok(recorded) => {
                    found += recorded["certificates_found"].as_i64().unwrap_or(0);
                    new += recorded["certificates_new"].as_i64().unwrap_or(0);
                }
                Err(e) => {
                    outcome = Err(e);
                    break;
                }
            }
        }
        if outcome.is_ok() {
            tracing::info!(found, new, reports = reports.len(), "discovery scan reported");
        }
        if let Some(stop) = pace(outcome, interval, &mut failures, "discovery report").await {
            return stop;
        }
    }
}
