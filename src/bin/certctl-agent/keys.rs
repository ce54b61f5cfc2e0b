//! The agent's private keys on disk: its API key and id (written by `register`), and the leaf keys
//! it generates, one file per key named by the SHA-256 of its public key, so a deployment finds
//! the key of the certificate it installs by the certificate's own public key, whatever job or
//! restart came in between. Directories are 0700, files 0600, written atomically.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use sha2::{Digest, Sha256};

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Creates `dir` (and parents) with mode 0700 when missing.
pub fn private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

/// Writes `contents` to `path` atomically: a temporary file in the same directory with `mode`,
/// fsynced, renamed over `path`, and the directory fsynced.
pub fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let temp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&temp)
        .with_context(|| format!("creating {}", temp.display()))?;
    // The mode given at creation is filtered by the umask; set it exactly.
    file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    file.write_all(contents).with_context(|| format!("writing {}", temp.display()))?;
    file.sync_all().with_context(|| format!("syncing {}", temp.display()))?;
    drop(file);
    std::fs::rename(&temp, path).with_context(|| format!("renaming {} to {}", temp.display(), path.display()))?;
    if let Ok(dir) = std::fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// The leaf keys this agent generated.
pub struct KeyStore {
    dir: PathBuf,
}

impl KeyStore {
    pub fn open(key_dir: &Path) -> anyhow::Result<KeyStore> {
        let dir = key_dir.join("leaf");
        private_dir(&dir)?;
        Ok(KeyStore { dir })
    }

    fn path_for(&self, spki_der: &[u8]) -> PathBuf {
        self.dir.join(format!("{}.key.pem", hex(&Sha256::digest(spki_der))))
    }

    /// Keeps a private key (PEM) under its public key (DER SubjectPublicKeyInfo).
    pub fn save(&self, spki_der: &[u8], private_pem: &str) -> anyhow::Result<()> {
        write_atomically(&self.path_for(spki_der), private_pem.as_bytes(), 0o600)
    }

    /// The private key (PEM) of a public key, when this agent generated it.
    pub fn load(&self, spki_der: &[u8]) -> Option<String> {
        std::fs::read_to_string(self.path_for(spki_der)).ok()
    }
}
