//! Certificates agents found on disk (certctl's `discovered_certificates`) and the scan reports
//! that bring them in. Triage: an Unmanaged certificate is claimed (becomes a managed
//! certificate) or dismissed.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::Row;

use super::validation::{FieldError, Violations};
use crate::error::DbError;

/// Discovered-certificate statuses.
pub const DISCOVERY_STATUSES: [&str; 3] = ["Unmanaged", "Managed", "Dismissed"];

/// Certificates one report may carry.
pub const MAX_REPORTED_CERTIFICATES: usize = 10_000;
/// Names one found certificate may list (public CAs issue at most 100; a report of more is not a
/// certificate anyone uses).
pub const MAX_REPORTED_SANS: usize = 1000;

/// One certificate as an agent reports it.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FoundCertificate {
    /// SHA-256 of the DER, lower-case hex.
    pub fingerprint_sha256: String,
    #[serde(default)]
    pub common_name: String,
    /// The subject alternative names.
    #[serde(default)]
    pub sans: Vec<String>,
    #[serde(default)]
    pub serial_number: String,
    #[serde(default)]
    pub issuer_dn: String,
    #[serde(default)]
    pub subject_dn: String,
    pub not_before: Option<DateTime<Utc>>,
    pub not_after: Option<DateTime<Utc>>,
    #[serde(default)]
    pub key_algorithm: String,
    /// Key size in bits.
    #[serde(default)]
    pub key_size: i32,
    #[serde(default)]
    pub is_ca: bool,
    /// The certificate, PEM (at most 64 KiB).
    #[serde(default)]
    pub pem_data: String,
    /// The file it was found in.
    pub source_path: String,
    /// `PEM` or `DER`.
    #[serde(default = "pem")]
    pub source_format: String,
}

fn pem() -> String {
    "PEM".into()
}

/// `POST /api/v1/agents/{id}/discoveries`: what one filesystem scan found.
#[derive(Clone, Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DiscoveryReport {
    /// The directories scanned (at most 100).
    #[serde(default)]
    pub directories: Vec<String>,
    /// What was found (at most 10 000 per report).
    #[serde(default)]
    pub certificates: Vec<FoundCertificate>,
    /// Files that could not be read or parsed, as messages.
    #[serde(default)]
    pub errors: Vec<String>,
    /// How long the scan took, in milliseconds.
    #[serde(default)]
    pub scan_duration_ms: i64,
}

impl DiscoveryReport {
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut v = Violations::default();
        if self.certificates.len() > MAX_REPORTED_CERTIFICATES {
            v.add("certificates", format!("at most {MAX_REPORTED_CERTIFICATES} per report; send several reports"));
        }
        if self.directories.len() > 100 {
            v.add("directories", "at most 100 directories");
        }
        if self.scan_duration_ms < 0 {
            v.add("scan_duration_ms", "must not be negative");
        }
        for (i, c) in self.certificates.iter().enumerate().take(MAX_REPORTED_CERTIFICATES) {
            if c.fingerprint_sha256.len() != 64 || !c.fingerprint_sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                v.add(format!("certificates[{i}].fingerprint_sha256"), "must be 64 hex digits (SHA-256 of the DER)");
            }
            v.text(&format!("certificates[{i}].source_path"), &c.source_path, 4096);
            if !matches!(c.source_format.as_str(), "PEM" | "DER") {
                v.add(format!("certificates[{i}].source_format"), "must be PEM or DER");
            }
            if c.pem_data.len() > 64 * 1024 {
                v.add(format!("certificates[{i}].pem_data"), "must be at most 64 KiB");
            }
            if c.sans.len() > MAX_REPORTED_SANS {
                v.add(format!("certificates[{i}].sans"), format!("must list at most {MAX_REPORTED_SANS} names"));
            }
            for (j, san) in c.sans.iter().enumerate().take(MAX_REPORTED_SANS) {
                v.optional_text(&format!("certificates[{i}].sans[{j}]"), san, 1024);
            }
            for (field, value) in
                [("common_name", &c.common_name), ("issuer_dn", &c.issuer_dn), ("subject_dn", &c.subject_dn)]
            {
                v.optional_text(&format!("certificates[{i}].{field}"), value, 1024);
            }
        }
        v.into_result()
    }

    /// Lower-cases fingerprints and drops repeats of one (fingerprint, path), keeping the last.
    pub fn normalize(&mut self) {
        let mut seen = std::collections::HashSet::new();
        for c in &mut self.certificates {
            c.fingerprint_sha256.make_ascii_lowercase();
        }
        let mut kept: Vec<FoundCertificate> = Vec::with_capacity(self.certificates.len());
        for c in self.certificates.drain(..).rev() {
            if seen.insert((c.fingerprint_sha256.clone(), c.source_path.clone())) {
                kept.push(c);
            }
        }
        kept.reverse();
        self.certificates = kept;
    }
}

/// A discovered certificate as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DiscoveredCertificate {
    pub id: String,
    /// SHA-256 of the DER, lower-case hex.
    pub fingerprint_sha256: String,
    pub common_name: String,
    pub sans: Vec<String>,
    pub serial_number: String,
    pub issuer_dn: String,
    pub subject_dn: String,
    pub not_before: Option<DateTime<Utc>>,
    pub not_after: Option<DateTime<Utc>>,
    pub key_algorithm: String,
    pub key_size: i32,
    pub is_ca: bool,
    pub pem_data: String,
    pub source_path: String,
    /// `PEM` or `DER`.
    pub source_format: String,
    /// The agent that found it.
    pub agent_id: String,
    /// The scan that last reported it.
    pub discovery_scan_id: Option<String>,
    /// The managed certificate it was claimed into; `null` unless Managed.
    pub managed_certificate_id: Option<String>,
    /// `Unmanaged`, `Managed` (claimed) or `Dismissed`.
    #[schema(example = "Unmanaged")]
    pub status: String,
    pub first_seen_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    /// When it was dismissed; `null` unless Dismissed.
    pub dismissed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The columns [`DiscoveredCertificate::from_row`] reads, in order.
pub const DISCOVERED_COLUMNS: &str = "id, fingerprint_sha256, common_name, sans, serial_number, issuer_dn, \
    subject_dn, not_before, not_after, key_algorithm, key_size, is_ca, pem_data, source_path, source_format, agent_id, \
    discovery_scan_id, managed_certificate_id, status, first_seen_at, last_seen_at, dismissed_at, created_at, updated_at";

impl DiscoveredCertificate {
    pub fn from_row(row: &Row) -> Result<Self, DbError> {
        Ok(DiscoveredCertificate {
            id: row.try_get(0)?,
            fingerprint_sha256: row.try_get(1)?,
            common_name: row.try_get(2)?,
            sans: row.try_get(3)?,
            serial_number: row.try_get(4)?,
            issuer_dn: row.try_get(5)?,
            subject_dn: row.try_get(6)?,
            not_before: row.try_get(7)?,
            not_after: row.try_get(8)?,
            key_algorithm: row.try_get(9)?,
            key_size: row.try_get(10)?,
            is_ca: row.try_get(11)?,
            pem_data: row.try_get(12)?,
            source_path: row.try_get(13)?,
            source_format: row.try_get(14)?,
            agent_id: row.try_get(15)?,
            discovery_scan_id: row.try_get(16)?,
            managed_certificate_id: row.try_get(17)?,
            status: row.try_get(18)?,
            first_seen_at: row.try_get(19)?,
            last_seen_at: row.try_get(20)?,
            dismissed_at: row.try_get(21)?,
            created_at: row.try_get(22)?,
            updated_at: row.try_get(23)?,
        })
    }
}
