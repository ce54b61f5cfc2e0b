//! The operating-system side of the embedded cluster: directories and their owners, `initdb`,
//! spawning `postgres`, reading `postmaster.pid`, and shutting down an orphaned cluster.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::binaries::{Binaries, RunAs};
use super::{EmbeddedOptions, DB_USER};

/// The port number only names the socket file (`.s.PGSQL.5432`); no TCP port is opened.
pub const PORT: u16 = 5432;

/// Unix socket paths are limited to 107 bytes on Linux.
const MAX_SOCKET_PATH: usize = 107;

/// Paths under the data dir.
#[derive(Clone, Debug)]
pub struct Layout {
    pub data_dir: PathBuf,
    pub pgdata: PathBuf,
    pub socket_dir: PathBuf,
    pub log_file: PathBuf,
}

impl Layout {
    /// Creates the data dir when missing (mode 0711: others may pass through to the cluster's
    /// own directories, but not list or read the server's files) and resolves it to an absolute
    /// path.
    pub fn new(data_dir: &Path) -> Result<Layout, String> {
        if !data_dir.exists() {
            std::fs::create_dir_all(data_dir)
                .map_err(|e| format!("cannot create CERTCTL_DATA_DIR={}: {e}", data_dir.display()))?;
            let _ = std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o711));
        }
        let data_dir = data_dir
            .canonicalize()
            .map_err(|e| format!("cannot resolve CERTCTL_DATA_DIR={}: {e}", data_dir.display()))?;
        let layout = Layout {
            pgdata: data_dir.join("postgres"),
            socket_dir: data_dir.join("run"),
            log_file: data_dir.join("postgres.log"),
            data_dir,
        };
        let socket = layout.socket_dir.join(format!(".s.PGSQL.{PORT}"));
        if socket.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(format!(
                "CERTCTL_DATA_DIR={} is too deep: the socket path {} exceeds the {MAX_SOCKET_PATH}-byte limit of Unix sockets; choose a shorter path",
                layout.data_dir.display(),
                socket.display()
            ));
        }
        Ok(layout)
    }

    /// Takes an exclusive lock on `certctl.lock`, held for the server's lifetime.
    pub fn lock_data_dir(&self) -> Result<File, String> {
        let path = self.data_dir.join("certctl.lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        // SAFETY: flock on a file descriptor we own.
        if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&file), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(format!(
                "another certctl-server is already using CERTCTL_DATA_DIR={} (lock {} is held)",
                self.data_dir.display(),
                path.display()
            ));
        }
        Ok(file)
    }

    /// Creates `postgres/` and `run/` (mode 0700), owned by the account the cluster runs as.
    pub fn prepare_dirs(&self, run_as: Option<RunAs>) -> Result<(), String> {
        for dir in [&self.pgdata, &self.socket_dir] {
            std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| format!("cannot set permissions on {}: {e}", dir.display()))?;
            if let Some(user) = run_as {
                std::os::unix::fs::chown(dir, Some(user.uid), Some(user.gid))
                    .map_err(|e| format!("cannot hand {} to the postgres user: {e}", dir.display()))?;
            }
        }
        if run_as.is_some() {
            // The postgres user must be able to walk down to its directories.
            for ancestor in self.data_dir.ancestors() {
                let mode = std::fs::metadata(ancestor).map(|m| m.permissions().mode()).unwrap_or(0);
                if mode & 0o001 == 0 {
                    return Err(format!(
                        "the embedded PostgreSQL runs as the postgres user, which cannot enter {} (mode {:o}); \
                         choose a CERTCTL_DATA_DIR under directories others may traverse, such as /var/lib/certctl",
                        ancestor.display(),
                        mode & 0o7777
                    ));
                }
            }
        }
        Ok(())
    }

    /// The last `lines` lines of the cluster's log, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let Ok(mut file) = File::open(&self.log_file) else {
            return String::from("(no log)");
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = file.seek(SeekFrom::Start(len.saturating_sub(8192)));
        let mut text = String::new();
        let _ = file.read_to_string(&mut text);
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// A command for a PostgreSQL binary, run as `run_as` when set. The environment is cleared: the
/// server's holds plaintext API keys and database URLs that the cluster's account must not see.
fn pg_command(program: &Path, run_as: Option<RunAs>, cwd: &Path) -> Command {
    let mut command = Command::new(program);
    command.current_dir(cwd).env_clear().env("LC_ALL", "C").env("TZ", "UTC");
    if let Some(path) = std::env::var_os("PATH") {
        command.env("PATH", path);
    }
    if let Some(user) = run_as {
        command.uid(user.uid).gid(user.gid);
    }
    command
}

/// Runs `initdb` when the cluster does not exist yet; checks the version when it does.
pub fn init_cluster(binaries: &Binaries, layout: &Layout, run_as: Option<RunAs>) -> Result<(), String> {
    let version_file = layout.pgdata.join("PG_VERSION");
    if let Ok(existing) = std::fs::read_to_string(&version_file) {
        let existing = existing.trim();
        if let Some(major) = binaries.major_version() {
            if existing != major.to_string() {
                return Err(format!(
                    "the cluster in {} was made by PostgreSQL {existing} but the binaries found are version {major}; \
                     point CERTCTL_POSTGRES_BIN_DIR at PostgreSQL {existing} (or upgrade the cluster with pg_upgrade)",
                    layout.pgdata.display()
                ));
            }
        }
        return Ok(());
    }
    let leftovers = std::fs::read_dir(&layout.pgdata).map(|mut d| d.next().is_some()).unwrap_or(false);
    if leftovers {
        return Err(format!(
            "{} exists but holds no complete cluster (no PG_VERSION); move it aside to let certctl create a new one",
            layout.pgdata.display()
        ));
    }
    // initdb writes into a scratch directory that is renamed into place only when it succeeded,
    // so an interrupted first start never leaves a half-made cluster behind.
    let scratch = layout.data_dir.join("postgres.initdb");
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir(&scratch).map_err(|e| format!("cannot create {}: {e}", scratch.display()))?;
    std::fs::set_permissions(&scratch, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("cannot set permissions on {}: {e}", scratch.display()))?;
    if let Some(user) = run_as {
        std::os::unix::fs::chown(&scratch, Some(user.uid), Some(user.gid))
            .map_err(|e| format!("cannot hand {} to the postgres user: {e}", scratch.display()))?;
    }
    tracing::info!(pgdata = %layout.pgdata.display(), "initialising the embedded PostgreSQL cluster");
    let output = pg_command(&binaries.initdb, run_as, &scratch)
        .arg("-D")
        .arg(&scratch)
        .args(["--username", DB_USER, "--auth", "trust", "--encoding", "UTF8", "--locale", "C"])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", binaries.initdb.display()))?;
    if !output.status.success() {
        let _ = std::fs::remove_dir_all(&scratch);
        return Err(format!("initdb failed ({}): {}", output.status, String::from_utf8_lossy(&output.stderr).trim()));
    }
    // Renaming onto the empty placeholder directory replaces it atomically.
    std::fs::rename(&scratch, &layout.pgdata)
        .map_err(|e| format!("cannot move the new cluster into {}: {e}", layout.pgdata.display()))?;
    Ok(())
}

/// Starts `postgres` on the Unix socket only, logging to `postgres.log`.
pub fn spawn_postgres(
    binaries: &Binaries,
    layout: &Layout,
    run_as: Option<RunAs>,
    options: &EmbeddedOptions,
) -> Result<Child, String> {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(&layout.log_file)
        .map_err(|e| format!("cannot open {}: {e}", layout.log_file.display()))?;
    let log_err = log.try_clone().map_err(|e| format!("cannot open {}: {e}", layout.log_file.display()))?;
    let mut command = pg_command(&binaries.postgres, run_as, &layout.pgdata);
    command
        .arg("-D")
        .arg(&layout.pgdata)
        .arg("-k")
        .arg(&layout.socket_dir)
        .args(["-p", &PORT.to_string()])
        .args(["-c", "listen_addresses="])
        .args(["-c", "unix_socket_permissions=0700"])
        .args(["-c", &format!("max_connections={}", options.max_connections)])
        // The log keeps what went wrong, never the data it went wrong with: no statement text
        // (which carries parameters and JSON bodies, secrets among them) and no DETAIL or CONTEXT
        // lines (which quote the refused value). The server logs its own side of every error.
        .args(["-c", "log_min_error_statement=panic", "-c", "log_error_verbosity=terse"])
        .args(["-c", "log_parameter_max_length_on_error=0", "-c", "log_parameter_max_length=0"]);
    for (name, value) in &options.extra_settings {
        command.args(["-c", &format!("{name}={value}")]);
    }
    command.stdin(Stdio::null()).stdout(log).stderr(log_err);
    // Its own process group: a terminal's Ctrl-C goes to the server alone, which then stops the
    // cluster in order instead of racing it.
    command.process_group(0);
    // SAFETY: prctl and getppid are async-signal-safe; this runs in the child between fork and
    // exec (after the uid change, which would otherwise clear the setting). If the server died
    // before prctl took effect, the parent is already gone: refuse to start.
    let parent = std::process::id() as libc::pid_t;
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGINT as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                return Err(std::io::Error::other("the server exited while starting postgres"));
            }
            Ok(())
        });
    }
    command.spawn().map_err(|e| format!("cannot start {}: {e}", binaries.postgres.display()))
}

/// Whether `postmaster.pid` shows `pid` ready for connections.
pub fn reports_ready(layout: &Layout, pid: i32) -> bool {
    let Ok(text) = std::fs::read_to_string(layout.pgdata.join("postmaster.pid")) else {
        return false;
    };
    let lines: Vec<&str> = text.lines().collect();
    lines.first().and_then(|l| l.trim().parse::<i32>().ok()) == Some(pid)
        && lines.get(7).is_some_and(|status| status.trim() == "ready")
}

/// Sends `signal` to `pid`, ignoring a process that is already gone.
pub fn signal(pid: i32, signal: libc::c_int) {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// Whether `pid` is a live process (zombies count as gone).
fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence and permission.
    let exists =
        unsafe { libc::kill(pid, 0) } == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with('Z')))
        .unwrap_or(false);
    exists && !zombie
}

/// Whether `pid` is the postmaster of *this* cluster: a PostgreSQL process whose working directory
/// is our data directory (the postmaster chdirs into it). A recycled pid, or another cluster's
/// postmaster, is never signalled.
fn is_our_postmaster(pid: i32, pgdata: &Path) -> bool {
    let is_postgres = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|cmd| {
            let argv0 = cmd.split(|b| *b == 0).next().unwrap_or_default();
            String::from_utf8_lossy(argv0).contains("postgres")
        })
        .unwrap_or(false);
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok();
    let ours = pgdata.canonicalize().ok();
    is_postgres && cwd.is_some() && cwd == ours
}

/// Shuts down a `postgres` still running on this cluster from a server that was killed. We hold
/// the data-dir lock, so no live server owns it.
pub fn stop_orphan(layout: &Layout) -> Result<(), String> {
    let Ok(text) = std::fs::read_to_string(layout.pgdata.join("postmaster.pid")) else {
        return Ok(());
    };
    let Some(pid) = text.lines().next().and_then(|l| l.trim().parse::<i32>().ok()) else {
        return Ok(());
    };
    if pid <= 0 || !alive(pid) {
        return Ok(());
    }
    if !is_our_postmaster(pid, &layout.pgdata) {
        // A stale pid file whose pid now belongs to an unrelated process (or one we may not
        // inspect, which cannot be our cluster: it runs as us, or as postgres under a root
        // server that can inspect anything). PostgreSQL itself ignores such a file.
        return Ok(());
    }
    tracing::warn!(
        pid,
        "found an orphaned PostgreSQL on the data dir (left by a server that was killed); shutting it down"
    );
    for (sig, wait) in [(libc::SIGINT, Duration::from_secs(30)), (libc::SIGQUIT, Duration::from_secs(10))] {
        signal(pid, sig);
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if !alive(pid) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Err(format!("the orphaned PostgreSQL (pid {pid}) on {} did not shut down", layout.pgdata.display()))
}
