//! Discovery scans: certificates in PEM or DER files under the configured directories, reported
//! to the server with their fingerprint, names, issuer, validity and path. Symbolic links are not
//! followed into directories, depth is bounded, and large files are skipped, so a scan of a
//! careless path stays cheap.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

use crate::keys::hex;

/// Deepest directory level scanned below a configured directory.
const MAX_DEPTH: usize = 8;
/// Files larger than this are not certificates worth reading.
const MAX_FILE_BYTES: u64 = 1 << 20;
/// Certificates per report: with their PEM, a report stays far below the server's default 1 MiB
/// body limit. A scan that finds more sends several reports.
const PER_REPORT: usize = 200;

/// Scans `dirs` and returns the report bodies for `POST /agents/{id}/discoveries` (one per
/// [`PER_REPORT`] certificates; the errors go with the first).
pub fn scan(dirs: &[PathBuf]) -> Vec<Value> {
    let started = Instant::now();
    let (mut certificates, mut errors) = (Vec::new(), Vec::new());
    for dir in dirs {
        walk(dir, 0, &mut certificates, &mut errors);
    }
    errors.truncate(1000);
    let directories: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    let elapsed = started.elapsed().as_millis() as i64;
    let mut chunks: Vec<Vec<Value>> = certificates.chunks(PER_REPORT).map(<[Value]>::to_vec).collect();
    if chunks.is_empty() {
        chunks.push(Vec::new());
    }
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, certificates)| {
            json!({
                "directories": directories,
                "certificates": certificates,
                "errors": if i == 0 { std::mem::take(&mut errors) } else { Vec::new() },
                "scan_duration_ms": elapsed,
            })
        })
        .collect()
}

fn walk(dir: &Path, depth: usize, found: &mut Vec<Value>, errors: &mut Vec<String>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            errors.push(format!("{}: {e}", dir.display()));
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else { continue };
        if kind.is_dir() {
            if depth < MAX_DEPTH {
                walk(&path, depth + 1, found, errors);
            }
        } else if kind.is_file() || kind.is_symlink() {
            let Ok(meta) = std::fs::metadata(&path) else { continue };
            if !meta.is_file() || meta.len() > MAX_FILE_BYTES {
                continue;
            }
            read_file(&path, found, errors);
        }
    }
}

fn read_file(path: &Path, found: &mut Vec<Value>, errors: &mut Vec<String>) {
    let Ok(bytes) = std::fs::read(path) else { return };
    let source = path.display().to_string();
    if bytes.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
        for pem in x509_parser::pem::Pem::iter_from_buffer(&bytes).flatten() {
            if pem.label != "CERTIFICATE" {
                continue;
            }
            match X509Certificate::from_der(&pem.contents) {
                Ok((_, cert)) => found.push(describe(&cert, &pem.contents, &source, "PEM")),
                Err(e) => errors.push(format!("{source}: a PEM certificate does not parse: {e}")),
            }
        }
    } else if matches!(path.extension().and_then(|e| e.to_str()), Some("der" | "cer" | "crt")) {
        // Not every .crt/.cer is DER: what does not parse is skipped (PEM was handled above).
        if let Ok((_, cert)) = X509Certificate::from_der(&bytes) {
            found.push(describe(&cert, &bytes, &source, "DER"));
        }
    }
}

fn describe(cert: &X509Certificate<'_>, der: &[u8], path: &str, format: &str) -> Value {
    let pem = format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", base64_lines(der));
    let mut sans = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(d) => sans.push(d.to_string()),
                GeneralName::RFC822Name(e) => sans.push(e.to_string()),
                GeneralName::IPAddress(ip) if ip.len() == 4 => {
                    sans.push(std::net::IpAddr::from(<[u8; 4]>::try_from(*ip).unwrap_or_default()).to_string())
                }
                GeneralName::IPAddress(ip) if ip.len() == 16 => {
                    sans.push(std::net::IpAddr::from(<[u8; 16]>::try_from(*ip).unwrap_or_default()).to_string())
                }
                _ => {}
            }
        }
    }
    let spki = cert.public_key();
    let key_algorithm = match spki.algorithm.algorithm.to_id_string().as_str() {
        "1.2.840.113549.1.1.1" => "RSA",
        "1.2.840.10045.2.1" => "ECDSA",
        "1.3.101.112" => "Ed25519",
        _ => "unknown",
    };
    let key_size = spki.parsed().map(|k| k.key_size()).unwrap_or(0);
    let time =
        |t: x509_parser::time::ASN1Time| chrono::DateTime::from_timestamp(t.timestamp(), 0).map(|d| d.to_rfc3339());
    json!({
        "fingerprint_sha256": hex(&Sha256::digest(der)),
        "common_name": cert.subject().iter_common_name().next().and_then(|c| c.as_str().ok()).unwrap_or(""),
        "sans": sans,
        "serial_number": cert.raw_serial_as_string().replace(':', ""),
        "issuer_dn": cert.issuer().to_string(),
        "subject_dn": cert.subject().to_string(),
        "not_before": time(cert.validity().not_before),
        "not_after": time(cert.validity().not_after),
        "key_algorithm": key_algorithm,
        "key_size": if key_algorithm == "Ed25519" { 256 } else { key_size },
        "is_ca": cert.is_ca(),
        "pem_data": pem,
        "source_path": path,
        "source_format": format,
    })
}

fn base64_lines(der: &[u8]) -> String {
    use base64::Engine as _;
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    text.as_bytes().chunks(64).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join("\n")
}
