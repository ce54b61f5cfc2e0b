//! Finding the PostgreSQL server binaries (`initdb`, `postgres`) and the user to run them as.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the server binaries live.
#[derive(Clone, Debug)]
pub struct Binaries {
    pub initdb: PathBuf,
    pub postgres: PathBuf,
}

/// What to tell an operator who has no PostgreSQL server installed.
pub const INSTALL_HINT: &str = "no PostgreSQL server binaries (initdb, postgres) found on PATH, via \
`pg_config --bindir` or under /usr/lib/postgresql/*/bin. Install them (Debian/Ubuntu: \
`apt-get install postgresql`; Fedora: `dnf install postgresql-server`), \
point CERTCTL_POSTGRES_BIN_DIR at their directory, or set CERTCTL_DATABASE_URL to use an existing database";

impl Binaries {
    /// Looks in `explicit` only when given; otherwise PATH, `pg_config --bindir`, then the newest
    /// `/usr/lib/postgresql/<version>/bin`.
    pub fn locate(explicit: Option<&Path>) -> Result<Binaries, String> {
        if let Some(dir) = explicit {
            return Self::in_dir(dir).ok_or_else(|| {
                format!("CERTCTL_POSTGRES_BIN_DIR={} does not contain initdb and postgres", dir.display())
            });
        }
        let from_path =
            std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect::<Vec<_>>()).unwrap_or_default();
        let from_pg_config = Command::new("pg_config")
            .arg("--bindir")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
        let candidates: Vec<PathBuf> = from_path.into_iter().chain(from_pg_config).collect();
        Self::search(&candidates, Path::new("/usr/lib/postgresql"))
    }

    /// The first of `candidates` holding both binaries, else the newest `<versioned>/<n>/bin`.
    fn search(candidates: &[PathBuf], versioned_root: &Path) -> Result<Binaries, String> {
        let mut versioned: Vec<(u32, PathBuf)> = std::fs::read_dir(versioned_root)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| Some((e.file_name().to_str()?.parse::<u32>().ok()?, e.path().join("bin"))))
            .collect();
        versioned.sort_by_key(|(version, _)| std::cmp::Reverse(*version));
        candidates
            .iter()
            .chain(versioned.iter().map(|(_, p)| p))
            .find_map(|dir| Self::in_dir(dir))
            .ok_or_else(|| INSTALL_HINT.to_string())
    }

    fn in_dir(dir: &Path) -> Option<Binaries> {
        let initdb = dir.join("initdb");
        let postgres = dir.join("postgres");
        (initdb.is_file() && postgres.is_file()).then_some(Binaries { initdb, postgres })
    }

    /// The major version the binaries report (`postgres --version`), e.g. 15.
    pub fn major_version(&self) -> Option<u32> {
        let out = Command::new(&self.postgres).arg("--version").output().ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        text.split_whitespace().find_map(|w| w.split('.').next()?.parse::<u32>().ok())
    }
}

/// The account the cluster runs as: PostgreSQL refuses to run as root, so a root server runs it
/// as the `postgres` system user; anyone else runs it as themselves.
#[derive(Clone, Copy, Debug)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
}

impl RunAs {
    /// `None` when not root (run as ourselves); the `postgres` user's ids when root.
    pub fn resolve() -> Result<Option<RunAs>, String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Ok(None);
        }
        let name = c"postgres";
        // SAFETY: getpwnam reads a static NUL-terminated name and returns a pointer into static
        // storage (or null), which we read at once on this thread.
        let pw = unsafe { libc::getpwnam(name.as_ptr()) };
        if pw.is_null() {
            return Err(
                "running as root, but there is no `postgres` system user to run the embedded \
                        PostgreSQL as (PostgreSQL refuses to run as root): create one \
                        (`useradd --system postgres`), run certctl-server as another user, or set CERTCTL_DATABASE_URL"
                    .into(),
            );
        }
        // SAFETY: pw is non-null and points to a valid passwd record.
        let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
        Ok(Some(RunAs { uid, gid }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_install(dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        for name in ["initdb", "postgres"] {
            std::fs::write(dir.join(name), "").unwrap();
        }
    }

    #[test]
    fn nothing_found_says_how_to_install_or_use_a_url() {
        let empty = std::env::temp_dir().join(format!("certctl-nopg-{}", std::process::id()));
        std::fs::create_dir_all(&empty).unwrap();
        let error = Binaries::search(std::slice::from_ref(&empty), &empty.join("none")).unwrap_err();
        assert!(error.contains("apt-get install postgresql") && error.contains("CERTCTL_DATABASE_URL"), "{error}");
        std::fs::remove_dir_all(&empty).unwrap();
    }

    #[test]
    fn the_newest_versioned_install_wins_after_the_candidates() {
        let root = std::env::temp_dir().join(format!("certctl-pgver-{}", std::process::id()));
        fake_install(&root.join("14/bin"));
        fake_install(&root.join("16/bin"));
        let found = Binaries::search(&[root.join("missing")], &root).unwrap();
        assert_eq!(found.postgres, root.join("16/bin/postgres"));
        fake_install(&root.join("first"));
        let found = Binaries::search(&[root.join("first")], &root).unwrap();
        assert_eq!(found.initdb, root.join("first/initdb"));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
