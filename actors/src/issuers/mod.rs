//! Issuers: what the renewal dispatcher calls to get a certificate signed.
//!
//! - [`Issuer`]: the connector trait (issue, revoke, CA chain). Connectors are asynchronous;
//!   CPU work inside them runs on blocking threads.
//! - [`local`]: the local CA connector (`type = local`).
//! - [`registry`]: builds and caches one connector per issuer id, creating a local issuer's CA
//!   on first use and storing it sealed so every replica signs with the same CA.

pub mod local;
pub mod registry;

use std::time::Duration;

use futures_util::future::BoxFuture;

use crate::crypto::key_algorithm::KeyAlgorithm;

/// Why an issuance failed, as recorded on the job and in `certctl_issuance_failures_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    Timeout,
    RateLimited,
    Upstream5xx,
    Upstream4xx,
    /// The request itself is wrong (bad SAN, unknown EKU, disabled issuer): retrying will not help.
    Validation,
    Network,
    Internal,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Timeout => "timeout",
            ErrorClass::RateLimited => "rate_limited",
            ErrorClass::Upstream5xx => "upstream_5xx",
            ErrorClass::Upstream4xx => "upstream_4xx",
            ErrorClass::Validation => "validation",
            ErrorClass::Network => "network",
            ErrorClass::Internal => "internal",
        }
    }

    /// Whether a later attempt may succeed.
    pub fn retryable(self) -> bool {
        !matches!(self, ErrorClass::Validation)
    }
}

/// A failed issuance: its class and a message for the job's `last_error`.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{message}")]
pub struct IssueFailure {
    pub class: ErrorClass,
    pub message: String,
}

impl IssueFailure {
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        IssueFailure { class, message: message.into() }
    }
}

/// Where the leaf's key comes from.
#[derive(Clone, Debug)]
pub enum KeySource {
    /// The server generates it (`CERTCTL_KEYGEN_MODE=server`); the issued result carries it.
    Generate(KeyAlgorithm),
    /// An agent's CSR (PEM, already checked against the certificate when it was submitted): the
    /// leaf is issued for its public key, which the issuer verifies again.
    Csr(String),
}

/// What to issue.
#[derive(Clone, Debug)]
pub struct IssueRequest {
    pub common_name: String,
    pub sans: Vec<String>,
    pub ekus: Vec<String>,
    /// Longest lifetime the profile allows; the issuer may give less.
    pub max_lifetime: Option<Duration>,
    pub key: KeySource,
}

/// An issued certificate.
pub type Issued = crate::crypto::local_ca::IssuedLeaf;

/// An issuer connector.
pub trait Issuer: Send + Sync {
    /// The issuer's type (`local`, …), the `issuer_type` label of the issuance metrics.
    fn issuer_type(&self) -> &'static str;
    /// Issues a certificate.
    fn issue(&self, request: IssueRequest) -> BoxFuture<'static, Result<Issued, IssueFailure>>;
    /// Tells the issuer a certificate is revoked (`reason` is an RFC 5280 reason code).
    fn revoke(&self, serial_hex: String, reason: u8) -> BoxFuture<'static, Result<(), IssueFailure>>;
    /// The CA chain new certificates chain to, PEM, issuing CA first.
    fn ca_chain_pem(&self) -> String;
}
