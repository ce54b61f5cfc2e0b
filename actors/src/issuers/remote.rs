//! The connector trait of CAs reached over the network (ACME, DigiCert, Sectigo, Entrust,
//! GlobalSign, Vault PKI, step-ca). The dispatcher never calls them: it hands the job over as an
//! order, and the CA poller (`crate::ca_poller`) submits it, polls it and collects the chain, so
//! a slow CA holds neither a dispatcher slot nor a pool connection.
//!
//! A CA that signs at once (Vault, step-ca) answers `Issued` to the submission; an asynchronous
//! one answers `Pending` with its order id and is polled until it decides.

use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::IssueFailure;

/// What the CA is asked to sign: the names and usages of the certificate, and the CSR (made by
/// an agent, or by the server with a key it keeps sealed with the order).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OrderRequest {
    /// certctl's id of the order (`cao-…`): the client reference where a CA takes one.
    pub order_id: String,
    pub common_name: String,
    /// Every DNS name or IP address the certificate must carry (the common name included).
    pub sans: Vec<String>,
    /// The profile's extended key usages.
    pub ekus: Vec<String>,
    /// The longest lifetime the profile allows, seconds.
    pub max_lifetime_secs: Option<u64>,
    /// The CSR, PEM (stored in its own column of the order, not in the request's JSON).
    #[serde(skip)]
    pub csr_pem: String,
}

impl OrderRequest {
    /// The longest lifetime as a duration.
    pub fn max_lifetime(&self) -> Option<Duration> {
        self.max_lifetime_secs.map(Duration::from_secs)
    }

    /// The CSR as DER.
    pub fn csr_der(&self) -> Result<Vec<u8>, IssueFailure> {
        let (_, pem) = x509_parser::pem::parse_x509_pem(self.csr_pem.as_bytes())
            .map_err(|e| IssueFailure::new(super::ErrorClass::Internal, format!("the order's CSR is not PEM: {e}")))?;
        Ok(pem.contents)
    }
}

/// An order the CA has accepted: its id there and whatever else the connector needs to follow it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OrderRef {
    /// The CA's id for the order (DigiCert order id, Sectigo sslId, ACME order URL…).
    pub external_id: String,
    /// The connector's own notes (a DigiCert certificate id, the ACME authorizations…).
    pub state: serde_json::Value,
}

/// Where an order stands at the CA.
#[derive(Clone, Debug, PartialEq)]
pub enum OrderStatus {
    /// Issued: the chain, PEM, leaf first, and the CA's suggested renewal window (ACME ARI).
    Issued { chain_pem: String, renewal_window: Option<(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)> },
    /// Not decided yet; `retry_after` is the CA's own hint (`Retry-After`), `detail` what it said.
    Pending { retry_after: Option<Duration>, detail: String },
    /// The CA refused the order for good (rejected, denied, invalid), in its own words.
    Rejected { reason: String },
}

/// A submission's answer: the order's reference at the CA and where it stands.
#[derive(Clone, Debug, PartialEq)]
pub struct Placed {
    pub order: OrderRef,
    pub status: OrderStatus,
}

/// A poll's answer: where the order stands, and its reference when the connector changed it.
#[derive(Clone, Debug, PartialEq)]
pub struct Polled {
    pub status: OrderStatus,
    /// New connector notes to keep (`None`: unchanged).
    pub state: Option<serde_json::Value>,
}

impl Polled {
    pub fn status(status: OrderStatus) -> Polled {
        Polled { status, state: None }
    }
}

/// A certificate to revoke at the CA that issued it.
#[derive(Clone, Debug)]
pub struct RevokeRequest {
    /// Serial number, hex.
    pub serial_hex: String,
    /// The issued chain, PEM (ACME revokes by the certificate itself).
    pub chain_pem: String,
    /// RFC 5280 reason code.
    pub reason: u8,
    /// The order that issued it, when certctl placed it.
    pub order: Option<OrderRef>,
}

/// One thing a connection test found (`POST /api/v1/issuers/{id}/test`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Check {
    /// What was checked (`directory`, `account`, `credentials`, `role`…).
    pub name: String,
    /// Whether it passed.
    pub ok: bool,
    /// What the CA answered, or why it failed.
    pub detail: String,
}

impl Check {
    pub fn passed(name: &str, detail: impl Into<String>) -> Check {
        Check { name: name.into(), ok: true, detail: detail.into() }
    }

    pub fn failed(name: &str, detail: impl Into<String>) -> Check {
        Check { name: name.into(), ok: false, detail: detail.into() }
    }
}

/// A connector to a CA over the network.
pub trait RemoteIssuer: Send + Sync {
    /// The issuer's type (`acme`, `digicert`…): the `issuer_type` label of the metrics.
    fn issuer_type(&self) -> &'static str;

    /// Places an order.
    fn submit(&self, request: OrderRequest) -> BoxFuture<'static, Result<Placed, IssueFailure>>;

    /// Asks where a placed order stands (and collects the chain once it is issued).
    fn poll(&self, order: OrderRef, request: OrderRequest) -> BoxFuture<'static, Result<Polled, IssueFailure>>;

    /// Finds an order certctl may have placed before it stopped without recording the CA's
    /// answer, by the CA's own lookup. `Ok(None)`: not found, or the CA's API cannot look orders
    /// up by certctl's reference (then the job fails rather than risk a second order).
    fn recover(&self, _request: OrderRequest) -> BoxFuture<'static, Result<Option<Placed>, IssueFailure>> {
        Box::pin(async { Ok(None) })
    }

    /// Revokes a certificate at the CA.
    fn revoke(&self, request: RevokeRequest) -> BoxFuture<'static, Result<(), IssueFailure>>;

    /// The CA chain new certificates chain to, PEM, issuing CA first.
    fn ca_chain(&self) -> BoxFuture<'static, Result<String, IssueFailure>>;

    /// Checks credentials and reachability with harmless calls.
    fn test(&self) -> BoxFuture<'static, Vec<Check>>;

    /// Called once an order has left `Pending` (issued or rejected): the connector removes what
    /// it set up for it (ACME challenge answers). Failures are logged, never fatal.
    fn finished(&self, _order: OrderRef, _request: OrderRequest) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}

/// The CA chain of the last certificate an issuer issued (everything after the leaf), for CAs
/// whose API has no endpoint for it (ACME): a validation failure until it has issued one.
pub async fn chain_of_last_issued(db: crate::db::Db, issuer_id: String) -> Result<String, IssueFailure> {
    let chain =
        db.run(crate::queries::ca_orders::LastIssuedChain { issuer_id: issuer_id.clone() }).await.map_err(|e| {
            IssueFailure::new(super::ErrorClass::Internal, format!("reading issuer {issuer_id}'s chain: {e}"))
        })?;
    let parents = chain.as_deref().and_then(|pem| {
        let end = "-----END CERTIFICATE-----";
        pem.find(end).map(|i| pem[i + end.len()..].trim().to_owned())
    });
    match parents.filter(|p| !p.is_empty()) {
        Some(parents) => Ok(format!("{parents}\n")),
        None => Err(IssueFailure::new(
            super::ErrorClass::Validation,
            format!(
                "issuer {issuer_id}'s CA publishes no chain of its own; it is known once it has issued a certificate"
            ),
        )),
    }
}
