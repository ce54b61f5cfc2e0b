//! Issuers: the connectors that get certificates signed.
//!
//! - [`Issuer`]: an in-process issuer (the local CA), called by the renewal dispatcher. CPU work
//!   inside it runs on blocking threads.
//! - [`remote::RemoteIssuer`]: a CA over the network, driven by the CA poller through orders.
//! - [`Connector`]: either, as the registry hands it out.
//! - [`local`]: the local CA connector (`type = local`).
//! - [`registry`]: builds and caches one connector per issuer id, creating a local issuer's CA
//!   on first use and storing it sealed so every replica signs with the same CA.
//! - [`sealed_config`]: issuers' secret config fields, sealed at rest.
//! - [`connectors`]: building a remote connector from its row; [`http`]: their HTTP client.
//! - [`acme`], [`digicert`], [`entrust`], [`globalsign`], [`sectigo`], [`stepca`], [`vault`]: the
//!   remote connectors, one per CA.

pub mod acme;
pub mod connectors;
pub mod digicert;
pub mod entrust;
pub mod globalsign;
pub mod http;
pub mod local;
pub mod registry;
pub mod remote;
pub mod sealed_config;
pub mod sectigo;
pub mod stepca;
pub mod vault;

use std::sync::Arc;

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

    /// Whether a remote CA's answer of this class means "ask again later" rather than "no": rate
    /// limits, server errors, timeouts and broken connections.
    pub fn transient(self) -> bool {
        matches!(self, ErrorClass::Timeout | ErrorClass::RateLimited | ErrorClass::Upstream5xx | ErrorClass::Network)
    }
}

/// A failed issuance: its class and a message for the job's `last_error`.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{message}")]
pub struct IssueFailure {
    pub class: ErrorClass,
    pub message: String,
    /// When the CA said to come back (`Retry-After`).
    pub retry_after: Option<Duration>,
    /// The request never reached the CA (the connection was refused, the name did not resolve):
    /// a submission that failed so can be placed again without risking a second order.
    pub unsent: bool,
}

impl IssueFailure {
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        IssueFailure { class, message: message.into(), retry_after: None, unsent: false }
    }

    /// The same failure, marked as never having reached the CA.
    pub fn unsent(mut self) -> Self {
        self.unsent = true;
        self
    }

    /// The same failure with the CA's `Retry-After`.
    pub fn with_retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.retry_after = retry_after;
        self
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

/// An in-process issuer connector.
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

/// A connector as the registry hands it out.
#[derive(Clone)]
pub enum Connector {
    /// Signs in this process: the dispatcher calls it.
    InProcess(Arc<dyn Issuer>),
    /// A CA over the network: the dispatcher hands the job to the CA poller as an order.
    Remote(Arc<dyn remote::RemoteIssuer>),
}

impl Connector {
    /// The issuer's type, the `issuer_type` label of the metrics.
    pub fn issuer_type(&self) -> &'static str {
        match self {
            Connector::InProcess(issuer) => issuer.issuer_type(),
            Connector::Remote(issuer) => issuer.issuer_type(),
        }
    }

    /// The CA chain new certificates chain to, PEM, issuing CA first.
    pub async fn ca_chain_pem(&self) -> Result<String, IssueFailure> {
        match self {
            Connector::InProcess(issuer) => Ok(issuer.ca_chain_pem()),
            Connector::Remote(issuer) => issuer.ca_chain().await,
        }
    }
}
