//! The HTTPS certificate: the operator's (`CERTCTL_SERVER_TLS_CERT_PATH`/`_KEY_PATH`) or, when
//! none is configured, a self-signed ECDSA P-256 certificate made with rcgen on first start and
//! kept in `<data dir>/tls/`. The self-signed one is made again when it nears expiry or no longer
//! names the configured host. One crypto provider everywhere: aws-lc-rs.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context as _};
use rustls::crypto::aws_lc_rs;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::settings::Settings;

/// Days of validity for the self-signed certificate (825: the longest clients still accept).
const SELF_SIGNED_DAYS: i64 = 825;
/// Regenerate the self-signed certificate when fewer days than this remain.
const RENEW_BEFORE_DAYS: i64 = 30;

/// The loaded certificate and where it came from.
pub struct TlsMaterial {
    pub config: rustls::ServerConfig,
    /// The certificate file clients can trust (`curl --cacert`).
    pub cert_path: PathBuf,
    pub self_signed: bool,
}

/// Loads the configured certificate, or the self-signed one (made when needed).
pub fn load(settings: &Settings) -> anyhow::Result<TlsMaterial> {
    let (cert_path, key_path, self_signed) = match (&settings.server_tls_cert_path, &settings.server_tls_key_path) {
        (Some(cert), Some(key)) => (cert.clone(), key.clone(), false),
        _ => {
            let dir = settings.data_dir.join("tls");
            let cert = dir.join("server.crt");
            let key = dir.join("server.key");
            ensure_self_signed(&dir, &cert, &key, &settings.server_host)?;
            (cert, key, true)
        }
    };
    let config = server_config(&cert_path, &key_path)?;
    Ok(TlsMaterial { config, cert_path, self_signed })
}

/// A rustls server config (TLS 1.2 and 1.3, HTTP/2 and HTTP/1.1 by ALPN) from PEM files.
pub fn server_config(cert_path: &Path, key_path: &Path) -> anyhow::Result<rustls::ServerConfig> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
        .with_context(|| format!("reading CERTCTL_SERVER_TLS_CERT_PATH={}", cert_path.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing the PEM certificates in {}", cert_path.display()))?;
    if chain.is_empty() {
        bail!("CERTCTL_SERVER_TLS_CERT_PATH={} holds no PEM certificate", cert_path.display());
    }
    let key = PrivateKeyDer::from_pem_file(key_path).with_context(|| {
        format!("reading a PEM private key from CERTCTL_SERVER_TLS_KEY_PATH={}", key_path.display())
    })?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .context("configuring TLS versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the TLS certificate and private key do not match or are unsupported")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Makes the self-signed certificate unless a current one naming `host` exists.
fn ensure_self_signed(dir: &Path, cert: &Path, key: &Path, host: &str) -> anyhow::Result<()> {
    let names = san_names(host);
    if cert.exists() && key.exists() && still_good(cert, key, &names) {
        return Ok(());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    // The directory and certificate are public (clients pin the certificate); the key is 0600.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    let key_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).context("generating the TLS key")?;
    let mut params = rcgen::CertificateParams::new(names).context("building the self-signed certificate")?;
    params.distinguished_name.push(rcgen::DnType::CommonName, "certctl self-signed server certificate");
    params.distinguished_name.push(rcgen::DnType::OrganizationName, "certctl");
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(SELF_SIGNED_DAYS);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let certificate = params.self_signed(&key_pair).context("signing the self-signed certificate")?;
    // Each file is written whole to a temporary name and renamed, key first: a crash leaves the
    // old pair, or a new key beside an old certificate, which `still_good` rejects next start.
    write_atomically(key, key_pair.serialize_pem().as_bytes(), 0o600)?;
    // The certificate is public: local users may point `curl --cacert` at it.
    write_atomically(cert, certificate.pem().as_bytes(), 0o644)?;
    tracing::info!(cert = %cert.display(), "generated a self-signed TLS certificate");
    Ok(())
}

/// The names the certificate covers: localhost, 127.0.0.1, ::1 and the configured host.
fn san_names(host: &str) -> Vec<String> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
    let unspecified = host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_unspecified());
    if !unspecified && !names.iter().any(|n| n == host) {
        names.push(host.to_string());
    }
    names
}

/// Whether the existing certificate matches its key, is valid for another month and names every
/// host in `names`.
fn still_good(cert: &Path, key: &Path, names: &[String]) -> bool {
    // A certificate and key that do not belong together (an interrupted regeneration) are remade.
    if server_config(cert, key).is_err() {
        return false;
    }
    let Ok(pem_bytes) = std::fs::read(cert) else {
        return false;
    };
    let Ok((_, pem)) = x509_parser::pem::parse_x509_pem(&pem_bytes) else {
        return false;
    };
    let Ok(parsed) = pem.parse_x509() else {
        return false;
    };
    let remaining = parsed.validity().not_after.timestamp() - time::OffsetDateTime::now_utc().unix_timestamp();
    if remaining < RENEW_BEFORE_DAYS * 86_400 {
        return false;
    }
    let Ok(Some(san)) = parsed.subject_alternative_name() else {
        return false;
    };
    let present: Vec<String> = san
        .value
        .general_names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
            x509_parser::extensions::GeneralName::IPAddress(bytes) => match bytes.len() {
                4 => Some(std::net::IpAddr::from(<[u8; 4]>::try_from(*bytes).ok()?).to_string()),
                16 => Some(std::net::IpAddr::from(<[u8; 16]>::try_from(*bytes).ok()?).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    names.iter().all(|n| present.contains(n))
}

/// Writes a file with `mode`, atomically (temporary file, fsync, rename).
fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(mode)
        .open(&temporary)
        .with_context(|| format!("writing {}", temporary.display()))?;
    // The mode above applies only to a new file; make sure of it for a leftover one.
    file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    file.write_all(contents)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}
