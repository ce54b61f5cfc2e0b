//! Certificate versions: each certificate an issuer produced for a managed certificate.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// One issued certificate (certctl's `CertificateVersion`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CertificateVersion {
    pub id: String,
    pub certificate_id: String,
    pub serial_number: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    pub fingerprint_sha256: String,
    pub pem_chain: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub csr_pem: String,
    pub key_algorithm: String,
    pub key_size: i32,
    pub created_at: DateTime<Utc>,
}
