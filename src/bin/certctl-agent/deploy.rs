//! Installing a certificate on a `file` target (and the nginx, apache and haproxy presets of it):
//! fetch the chain, find the key this agent generated for it (or take the one the server generated), write `cert.pem`, `chain.pem`,
//! `fullchain.pem` and `privkey.pem` (0600) atomically, keep the previous set as `*.prev`, run
//! the target's reload command with a timeout, and on failure put the previous files back
//! (reloading again) and report Failed. Success reports Completed with the installed leaf's
//! SHA-256 fingerprint.
//!
//! A file target's config: `directory` (required), optional `cert_file`, `chain_file`,
//! `fullchain_file`, `key_file`, `combined_file` (leaf, chain and key in one file, as haproxy
//! wants), `file_mode` (octal, default `0644`; keys are always 0600), `owner` and `group` (names or
//! numbers), `reload_command` (run with `sh -c`) and `reload_timeout_seconds` (default 60).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::client::{Server, WorkItem};
use crate::keys::{hex, write_atomically, KeyStore};

/// Longest output of a failed reload command quoted in the job's error.
const OUTPUT_TAIL: usize = 500;

/// Where and how a target's files go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileTarget {
    pub directory: PathBuf,
    pub cert_file: String,
    pub chain_file: String,
    pub fullchain_file: String,
    pub key_file: String,
    pub combined_file: Option<String>,
    pub file_mode: u32,
    pub owner: Option<String>,
    pub group: Option<String>,
    pub reload_command: Option<String>,
    pub reload_timeout: Duration,
}

impl FileTarget {
    /// The target's settings from its type and config; presets fill what the config leaves out.
    pub fn from_config(target_type: &str, config: &Value) -> anyhow::Result<FileTarget> {
        let (default_reload, default_combined) = match target_type {
            "file" => (None, None),
            "nginx" => (Some("nginx -s reload"), None),
            "apache" => (Some("apachectl graceful"), None),
            "haproxy" => (Some("systemctl reload haproxy"), Some("haproxy.pem")),
            other => {
                bail!("target type {other} is not deployed by this agent (it deploys file, nginx, apache, haproxy)")
            }
        };
        let text = |key: &str| config.get(key).and_then(Value::as_str).map(str::to_owned).filter(|s| !s.is_empty());
        let name = |key: &str, default: &str| -> anyhow::Result<String> {
            let value = text(key).unwrap_or_else(|| default.to_owned());
            if value.contains('/') || value == "." || value == ".." {
                bail!("target config {key} must be a file name inside directory (got {value})");
            }
            Ok(value)
        };
        let directory = text("directory").ok_or_else(|| anyhow!("the target's config has no directory"))?;
        for (key, expected) in [
            ("directory", "a string"),
            ("cert_file", "a string"),
            ("chain_file", "a string"),
            ("fullchain_file", "a string"),
            ("key_file", "a string"),
            ("combined_file", "a string"),
            ("file_mode", "a string of octal digits such as \"0644\""),
            ("owner", "a string"),
            ("group", "a string"),
            ("reload_command", "a string"),
        ] {
            if config.get(key).is_some_and(|v| !v.is_string() && !v.is_null()) {
                bail!("target config {key} must be {expected}");
            }
        }
        let file_mode = match text("file_mode") {
            Some(mode) => u32::from_str_radix(mode.trim_start_matches("0o"), 8)
                .ok()
                .filter(|m| *m <= 0o777)
                .ok_or_else(|| anyhow!("target config file_mode must be octal such as 0644 (got {mode})"))?,
            None => 0o644,
        };
        let reload_timeout = match config.get("reload_timeout_seconds") {
            None | Some(Value::Null) => 60,
            Some(v) => v
                .as_u64()
                .filter(|s| (1..=3600).contains(s))
                .ok_or_else(|| anyhow!("target config reload_timeout_seconds must be a whole number from 1 to 3600"))?,
        };
        let combined_file = match text("combined_file").or(default_combined.map(str::to_owned)) {
            Some(file) => Some(name("combined_file", &file)?),
            None => None,
        };
        Ok(FileTarget {
            directory: PathBuf::from(directory),
            cert_file: name("cert_file", "cert.pem")?,
            chain_file: name("chain_file", "chain.pem")?,
            fullchain_file: name("fullchain_file", "fullchain.pem")?,
            key_file: name("key_file", "privkey.pem")?,
            combined_file,
            file_mode,
            owner: text("owner"),
            group: text("group"),
            reload_command: text("reload_command").or(default_reload.map(str::to_owned)),
            reload_timeout: Duration::from_secs(reload_timeout),
        })
    }
}

/// A certificate ready to install.
struct Material {
    leaf: String,
    chain: String,
    key: String,
    fingerprint: String,
}

/// PEM blocks of a chain, each with its END line.
fn pem_blocks(chain: &str) -> Vec<String> {
    let end = "-----END CERTIFICATE-----";
    chain
        .split_inclusive(end)
        .map(str::trim)
        .filter(|b| b.contains("BEGIN CERTIFICATE"))
        .map(|b| format!("{b}\n"))
        .collect()
}

fn material(pem_chain: &str, server_key: Option<&str>, keys: &KeyStore) -> anyhow::Result<Material> {
    let blocks = pem_blocks(pem_chain);
    let leaf = blocks.first().ok_or_else(|| anyhow!("the server's chain holds no certificate"))?.clone();
    let (_, pem) =
        x509_parser::pem::parse_x509_pem(leaf.as_bytes()).map_err(|e| anyhow!("the leaf is not PEM: {e}"))?;
    let cert = pem.parse_x509().map_err(|e| anyhow!("the leaf does not parse: {e}"))?;
    let spki = cert.tbs_certificate.subject_pki.raw;
    // A key the server generated is kept like one generated here: a later deployment of the same
    // version finds it without asking again.
    if let Some(pem) = server_key {
        keys.save(spki, pem)?;
    }
    let key = keys.load(spki).ok_or_else(|| {
        anyhow!("this agent has no private key for the certificate (its key was generated by another agent)")
    })?;
    Ok(Material { leaf, chain: blocks[1..].concat(), key, fingerprint: hex(&Sha256::digest(&pem.contents)) })
}

/// One file of the set: where, what, which mode, and whether a previous version was kept.
struct Placed {
    path: PathBuf,
    previous: Option<PathBuf>,
    /// The owner and group the target wants, given back to restored files too.
    owner: (Option<u32>, Option<u32>),
}

/// Deploys a Deployment job and reports how it went. Errors are reported as Failed; only a failed
/// report itself is returned.
pub async fn deploy(server: &Server, keys: &KeyStore, item: &WorkItem) -> Result<(), crate::client::CallError> {
    match install(server, keys, item).await {
        Ok(fingerprint) => {
            let target = item.target_id.as_deref().unwrap_or("");
            tracing::info!(job_id = %item.id, certificate_id = %item.certificate_id, target, %fingerprint, "certificate deployed");
            server.report(&item.id, true, "", Some(&fingerprint)).await
        }
        Err(e) => {
            let message = one_line(&format!("{e:#}"));
            tracing::warn!(job_id = %item.id, error = %message, "deployment failed");
            server.report(&item.id, false, &message, None).await
        }
    }
}

async fn install(server: &Server, keys: &KeyStore, item: &WorkItem) -> anyhow::Result<String> {
    let target_type = item.target_type.as_deref().unwrap_or("file");
    let target = FileTarget::from_config(target_type, item.target_config.as_ref().unwrap_or(&Value::Null))?;
    let issued = server
        .certificate(&item.certificate_id, item.certificate_version_id.as_deref())
        .await
        .context("fetching the certificate")?;
    tracing::debug!(job_id = %item.id, version_id = %issued.version_id, "installing");
    let material = material(&issued.pem_chain, issued.private_key_pem.as_deref(), keys)?;
    if !material.fingerprint.eq_ignore_ascii_case(&issued.fingerprint_sha256) {
        bail!("the chain's leaf does not match the version's fingerprint {}", issued.fingerprint_sha256);
    }
    let fingerprint = material.fingerprint.clone();
    let placed = tokio::task::spawn_blocking({
        let target = target.clone();
        move || write_set(&target, &material)
    })
    .await
    .context("the file writing thread failed")?
    .with_context(|| format!("writing into {}", target.directory.display()))?;
    if let Err(reload_error) = reload(&target).await {
        let rollback = match tokio::task::spawn_blocking(move || roll_back(placed)).await {
            Ok(Ok(())) => "the previous files were restored".to_string(),
            Ok(Err(e)) => format!("restoring the previous files failed too: {e:#}"),
            Err(e) => format!("restoring the previous files failed too: {e}"),
        };
        // The service goes back to the old files; this reload's result is only logged.
        if let Err(e) = reload(&target).await {
            tracing::warn!(error = %format!("{e:#}"), "reloading after the rollback failed");
        }
        return Err(reload_error.context(rollback));
    }
    Ok(fingerprint)
}

/// The error as the server accepts it: one line (control characters, such as a reload command's
/// line breaks, become spaces), at most 4,000 characters.
fn one_line(message: &str) -> String {
    let flat: String = message.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    flat.chars().take(4000).collect()
}

/// Writes the new set, keeping each existing file as `<name>.prev` first.
fn write_set(target: &FileTarget, m: &Material) -> anyhow::Result<Vec<Placed>> {
    std::fs::create_dir_all(&target.directory).with_context(|| format!("creating {}", target.directory.display()))?;
    let fullchain = format!("{}{}", m.leaf, m.chain);
    let mut files: Vec<(&str, String, u32)> = vec![
        (&target.cert_file, m.leaf.clone(), target.file_mode),
        (&target.chain_file, m.chain.clone(), target.file_mode),
        (&target.fullchain_file, fullchain.clone(), target.file_mode),
        (&target.key_file, m.key.clone(), 0o600),
    ];
    if let Some(combined) = &target.combined_file {
        files.push((combined, format!("{fullchain}{}", m.key), 0o600));
    }
    let (uid, gid) = (lookup_user(target.owner.as_deref())?, lookup_group(target.group.as_deref())?);
    let mut placed = Vec::new();
    for (name, contents, mode) in files {
        let path = target.directory.join(name);
        let previous = if path.exists() {
            let prev = target.directory.join(format!("{name}.prev"));
            std::fs::copy(&path, &prev).with_context(|| format!("keeping {} as {}", path.display(), prev.display()))?;
            Some(prev)
        } else {
            None
        };
        placed.push(Placed { path: path.clone(), previous, owner: (uid, gid) });
        if let Err(e) = write_atomically(&path, contents.as_bytes(), mode).and_then(|()| chown(&path, uid, gid)) {
            let _ = roll_back(placed);
            return Err(e);
        }
    }
    Ok(placed)
}

/// Puts every kept `.prev` back (atomically) and removes files that did not exist before.
fn roll_back(placed: Vec<Placed>) -> anyhow::Result<()> {
    let mut first_error = None;
    for file in placed.into_iter().rev() {
        let result = match &file.previous {
            Some(prev) => std::fs::read(prev)
                .and_then(|bytes| {
                    let mode =
                        std::fs::metadata(prev).map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()))?;
                    write_atomically(&file.path, &bytes, mode & 0o777)
                        .and_then(|()| chown(&file.path, file.owner.0, file.owner.1))
                        .map_err(std::io::Error::other)
                })
                .with_context(|| format!("restoring {}", file.path.display())),
            None => std::fs::remove_file(&file.path).with_context(|| format!("removing {}", file.path.display())),
        };
        if let Err(e) = result {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Runs the reload command with its timeout; a non-zero exit or the timeout is an error quoting
/// the end of its output.
async fn reload(target: &FileTarget) -> anyhow::Result<()> {
    let Some(command) = &target.reload_command else { return Ok(()) };
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(&target.directory)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting the reload command `{command}`"))?;
    let output = match tokio::time::timeout(target.reload_timeout, child.wait_with_output()).await {
        Ok(output) => output.with_context(|| format!("running the reload command `{command}`"))?,
        Err(_) => bail!("the reload command `{command}` did not finish within {:?}", target.reload_timeout),
    };
    if output.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&output.stderr).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stdout));
    let text = text.trim();
    let tail: String = text.chars().rev().take(OUTPUT_TAIL).collect::<Vec<_>>().into_iter().rev().collect();
    bail!("the reload command `{command}` failed ({}): {tail}", output.status)
}

fn lookup_user(name: Option<&str>) -> anyhow::Result<Option<u32>> {
    let Some(name) = name else { return Ok(None) };
    if let Ok(uid) = name.parse() {
        return Ok(Some(uid));
    }
    let c = std::ffi::CString::new(name).context("owner")?;
    // SAFETY: getpwnam with a valid C string; the result is read at once, before another call.
    let entry = unsafe { libc::getpwnam(c.as_ptr()) };
    if entry.is_null() {
        bail!("target config owner {name} is not a user on this host");
    }
    // SAFETY: non-null pointer returned by getpwnam.
    Ok(Some(unsafe { (*entry).pw_uid }))
}

fn lookup_group(name: Option<&str>) -> anyhow::Result<Option<u32>> {
    let Some(name) = name else { return Ok(None) };
    if let Ok(gid) = name.parse() {
        return Ok(Some(gid));
    }
    let c = std::ffi::CString::new(name).context("group")?;
    // SAFETY: getgrnam with a valid C string; the result is read at once, before another call.
    let entry = unsafe { libc::getgrnam(c.as_ptr()) };
    if entry.is_null() {
        bail!("target config group {name} is not a group on this host");
    }
    // SAFETY: non-null pointer returned by getgrnam.
    Ok(Some(unsafe { (*entry).gr_gid }))
}

fn chown(path: &Path, uid: Option<u32>, gid: Option<u32>) -> anyhow::Result<()> {
    if uid.is_none() && gid.is_none() {
        return Ok(());
    }
    std::os::unix::fs::chown(path, uid, gid).with_context(|| format!("changing the owner of {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn presets_fill_what_the_config_leaves_out() {
        let haproxy = FileTarget::from_config("haproxy", &json!({"directory": "/etc/haproxy/certs"})).unwrap();
        assert_eq!(haproxy.combined_file.as_deref(), Some("haproxy.pem"));
        assert_eq!(haproxy.reload_command.as_deref(), Some("systemctl reload haproxy"));
        let file = FileTarget::from_config("file", &json!({"directory": "/x", "file_mode": "0640"})).unwrap();
        assert_eq!((file.file_mode, file.reload_command, file.key_file.as_str()), (0o640, None, "privkey.pem"));
        assert!(FileTarget::from_config("file", &json!({})).is_err(), "directory is required");
        assert!(FileTarget::from_config("file", &json!({"directory": "/x", "cert_file": "../etc/passwd"})).is_err());
        assert!(FileTarget::from_config("f5", &json!({"directory": "/x"})).is_err());
        assert!(
            FileTarget::from_config("file", &json!({"directory": "/x", "file_mode": 644})).is_err(),
            "not a string"
        );
        let slow = json!({"directory": "/x", "reload_timeout_seconds": "60"});
        assert!(FileTarget::from_config("file", &slow).is_err(), "not a number");
    }

    #[test]
    fn errors_are_reported_on_one_line() {
        assert_eq!(one_line("reload failed:\nline 1\tline 2"), "reload failed: line 1 line 2");
        assert_eq!(one_line(&"x".repeat(5000)).len(), 4000);
    }
}
