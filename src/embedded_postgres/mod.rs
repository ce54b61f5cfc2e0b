//! The PostgreSQL cluster the server manages itself when `CERTCTL_DATABASE_URL` is unset.
//!
//! Layout under the data dir: `postgres/` (the cluster, made by `initdb` on first start),
//! `run/` (the Unix socket; the cluster listens on no TCP port), `postgres.log`, and
//! `certctl.lock`, an exclusive lock that keeps a second server off the same data dir.
//!
//! A keeper thread owns the `postgres` child: it waits on it and restarts it if it dies (bounded:
//! more than `max_restarts` deaths in five minutes make [`EmbeddedPostgres::failed`] resolve, and
//! the server exits with that message). A `postgres` left running by a server that was killed is
//! found through `postmaster.pid` and shut down before ours starts, so two never share a data dir.
//! The child runs in its own process group (a terminal's Ctrl-C reaches only the server, which
//! then stops the cluster in order) and gets SIGINT if the server process dies.
//!
//! - [`binaries`]: finding `initdb`/`postgres` and the user to run them as.
//! - [`process`]: data-dir preparation, `initdb`, spawning, readiness and orphan handling.

pub mod binaries;
mod process;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use self::binaries::{Binaries, RunAs};
use self::process::Layout;

/// How to run the embedded cluster.
#[derive(Clone, Debug)]
pub struct EmbeddedOptions {
    /// The server's data dir (`CERTCTL_DATA_DIR`).
    pub data_dir: PathBuf,
    /// Where initdb/postgres live (`CERTCTL_POSTGRES_BIN_DIR`); searched for when `None`.
    pub bin_dir: Option<PathBuf>,
    /// PostgreSQL's `max_connections` (the pool's maximum plus headroom).
    pub max_connections: u32,
    /// Extra `-c name=value` settings (tests turn off fsync).
    pub extra_settings: Vec<(String, String)>,
    /// Deaths within five minutes tolerated before giving up.
    pub max_restarts: usize,
}

impl EmbeddedOptions {
    /// Defaults for a data dir: 5 restarts, max_connections 100.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        EmbeddedOptions {
            data_dir: data_dir.into(),
            bin_dir: None,
            max_connections: 100,
            extra_settings: Vec::new(),
            max_restarts: 5,
        }
    }
}

/// Why the embedded cluster could not start.
#[derive(Debug, thiserror::Error)]
#[error("embedded PostgreSQL: {0}")]
pub struct EmbeddedError(pub String);

/// The database user and database name the server uses inside its own cluster.
pub const DB_USER: &str = "certctl";
pub const DB_NAME: &str = "certctl";

/// A running embedded cluster. Stop it with [`EmbeddedPostgres::stop`] (waits for the shutdown);
/// dropping it only asks for the shutdown.
pub struct EmbeddedPostgres {
    layout: Layout,
    shared: Arc<Shared>,
    keeper: Option<JoinHandle<()>>,
    failed: watch::Receiver<Option<String>>,
    _lock: std::fs::File,
}

#[derive(Default)]
struct State {
    pid: Option<i32>,
    /// Incremented on every spawn, so readiness waits can tell restarts apart.
    generation: u64,
    exited: bool,
    stopping: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means another thread panicked mid-update of plain fields; the
        // values are still usable for shutdown decisions.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl EmbeddedPostgres {
    /// Prepares the data dir (initdb on first start), shuts down an orphaned cluster, starts
    /// `postgres` and waits until it accepts connections. Blocking: call it from
    /// `spawn_blocking` in async code.
    pub fn start(options: EmbeddedOptions) -> Result<EmbeddedPostgres, EmbeddedError> {
        let binaries = Binaries::locate(options.bin_dir.as_deref()).map_err(EmbeddedError)?;
        let run_as = RunAs::resolve().map_err(EmbeddedError)?;
        let layout = Layout::new(&options.data_dir).map_err(EmbeddedError)?;
        let lock = layout.lock_data_dir().map_err(EmbeddedError)?;
        layout.prepare_dirs(run_as).map_err(EmbeddedError)?;
        process::init_cluster(&binaries, &layout, run_as).map_err(EmbeddedError)?;
        process::stop_orphan(&layout).map_err(EmbeddedError)?;

        let shared = Arc::new(Shared::default());
        let (failed_tx, failed) = watch::channel(None);
        let keeper = {
            let shared = shared.clone();
            let layout = layout.clone();
            std::thread::Builder::new()
                .name("embedded-postgres".into())
                .spawn(move || keep_running(binaries, layout, run_as, options, shared, failed_tx))
                .map_err(|e| EmbeddedError(format!("could not start the keeper thread: {e}")))?
        };
        let embedded = EmbeddedPostgres { layout, shared, keeper: Some(keeper), failed, _lock: lock };
        embedded.wait_ready(1, Duration::from_secs(60))?;
        tracing::info!(data_dir = %embedded.layout.data_dir.display(), pid = embedded.pid(), "embedded PostgreSQL ready");
        Ok(embedded)
    }

    /// Waits until spawn number `generation` reports ready in `postmaster.pid`.
    fn wait_ready(&self, generation: u64, timeout: Duration) -> Result<(), EmbeddedError> {
        let deadline = Instant::now() + timeout;
        loop {
            let (pid, exited) = {
                let state = self.shared.lock();
                if state.generation > generation || (state.generation == generation && state.exited) {
                    (None, true)
                } else if state.generation == generation {
                    (state.pid, false)
                } else {
                    (None, false)
                }
            };
            if exited {
                return Err(EmbeddedError(format!(
                    "postgres exited during start-up; its log says:\n{}",
                    self.layout.log_tail(20)
                )));
            }
            if let Some(pid) = pid {
                if process::reports_ready(&self.layout, pid) {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(EmbeddedError(format!(
                    "postgres did not become ready within {}s; its log says:\n{}",
                    timeout.as_secs(),
                    self.layout.log_tail(20)
                )));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Connection settings for database `dbname` as the server's database user, over the socket.
    pub fn connect_config(&self, dbname: &str) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        // PostgreSQL offers no TLS on Unix sockets; skip the negotiation round trip.
        config
            .host_path(&self.layout.socket_dir)
            .port(process::PORT)
            .user(DB_USER)
            .dbname(dbname)
            .ssl_mode(tokio_postgres::config::SslMode::Disable);
        config
    }

    /// The current `postgres` process id (None while restarting).
    pub fn pid(&self) -> Option<i32> {
        self.shared.lock().pid
    }

    /// The data dir this cluster lives in.
    pub fn data_dir(&self) -> &Path {
        &self.layout.data_dir
    }

    /// Resolves with a message once the cluster has died too often to be restarted.
    pub async fn failed(&self) -> String {
        let mut rx = self.failed.clone();
        let message = rx.wait_for(|v| v.is_some()).await.map(|m| m.clone().unwrap_or_default());
        match message {
            Ok(message) => message,
            // The keeper ended without a failure (a clean stop): never resolve.
            Err(_) => std::future::pending().await,
        }
    }

    /// Shuts the cluster down (fast shutdown: open sessions are ended, data is safe) and waits for
    /// it. Blocking; idempotent.
    pub fn stop(&mut self) {
        let Some(keeper) = self.keeper.take() else {
            return;
        };
        let pid = {
            let mut state = self.shared.lock();
            state.stopping = true;
            self.shared.changed.notify_all();
            state.pid
        };
        if let Some(pid) = pid {
            process::signal(pid, libc::SIGINT);
            let exited = {
                let state = self.shared.lock();
                let (state, _) = self
                    .shared
                    .changed
                    .wait_timeout_while(state, Duration::from_secs(30), |s| !s.exited)
                    .unwrap_or_else(|p| p.into_inner());
                state.exited
            };
            if !exited {
                tracing::warn!(pid, "embedded PostgreSQL ignored fast shutdown; sending SIGQUIT");
                process::signal(pid, libc::SIGQUIT);
            }
        }
        let _ = keeper.join();
        tracing::info!("embedded PostgreSQL stopped");
    }
}

impl Drop for EmbeddedPostgres {
    /// Dropping without [`EmbeddedPostgres::stop`] (an error path) asks the cluster to shut down
    /// without waiting for it, so no async thread blocks here; the keeper thread finishes the job.
    fn drop(&mut self) {
        if self.keeper.take().is_none() {
            return;
        }
        let mut state = self.shared.lock();
        state.stopping = true;
        if let Some(pid) = state.pid {
            process::signal(pid, libc::SIGINT);
        }
        self.shared.changed.notify_all();
    }
}

/// The keeper thread: spawn, wait, restart with backoff, give up after too many deaths.
fn keep_running(
    binaries: Binaries,
    layout: Layout,
    run_as: Option<RunAs>,
    options: EmbeddedOptions,
    shared: Arc<Shared>,
    failed: watch::Sender<Option<String>>,
) {
    let window = Duration::from_secs(300);
    let mut deaths: Vec<Instant> = Vec::new();
    loop {
        let mut child = match process::spawn_postgres(&binaries, &layout, run_as, &options) {
            Ok(child) => child,
            Err(message) => {
                let _ = failed.send(Some(message));
                let mut state = shared.lock();
                state.exited = true;
                shared.changed.notify_all();
                return;
            }
        };
        {
            let mut state = shared.lock();
            state.pid = Some(child.id() as i32);
            state.generation += 1;
            state.exited = false;
            // A stop requested while this child was being spawned saw no pid to signal.
            if state.stopping {
                process::signal(child.id() as i32, libc::SIGINT);
            }
            shared.changed.notify_all();
        }
        let status = child.wait();
        let stopping = {
            let mut state = shared.lock();
            state.pid = None;
            state.exited = true;
            shared.changed.notify_all();
            state.stopping
        };
        if stopping {
            return;
        }
        let status = status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
        deaths.retain(|t| t.elapsed() < window);
        deaths.push(Instant::now());
        if deaths.len() > options.max_restarts {
            let message = format!(
                "embedded PostgreSQL died {} times within 5 minutes (last: {status}); giving up. See {}",
                deaths.len(),
                layout.log_file.display()
            );
            tracing::error!("{message}");
            let _ = failed.send(Some(message));
            return;
        }
        // Exponential backoff (1 s, 2 s, 4 s…, at most 30 s): after a crash, backends of the dead
        // postmaster can hold its shared memory for a while, and retrying at once only fails again.
        let backoff = Duration::from_secs(1u64 << (deaths.len() - 1).min(5)).min(Duration::from_secs(30));
        tracing::error!(%status, restart_in_ms = backoff.as_millis() as u64, "embedded PostgreSQL exited unexpectedly; restarting");
        // Sleep, but wake at once if a stop is requested meanwhile.
        let state = shared.lock();
        let (state, _) =
            shared.changed.wait_timeout_while(state, backoff, |s| !s.stopping).unwrap_or_else(|p| p.into_inner());
        if state.stopping {
            return;
        }
    }
}
