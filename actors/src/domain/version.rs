//! Certificate versions: each certificate an issuer produced for a managed certificate.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// One issued certificate (certctl's `CertificateVersion`).
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CertificateVersion {
    /// The version's id.
    pub id: String,
    /// The managed certificate it belongs to.
    pub certificate_id: String,
    /// The certificate's serial number (hex).
    pub serial_number: String,
    /// Start of validity.
    pub not_before: DateTime<Utc>,
    /// End of validity.
    pub not_after: DateTime<Utc>,
    /// SHA-256 of the DER, lower-case hex.
    pub fingerprint_sha256: String,
    /// The chain, leaf first, as PEM.
    pub pem_chain: String,
    /// The CSR it was issued for; absent when none was kept.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub csr_pem: String,
    /// The key algorithm (e.g. `ECDSA`, `RSA`).
    pub key_algorithm: String,
    /// The key size in bits.
    pub key_size: i32,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
}
