//! The ACME connector (RFC 8555, on instant-acme): one account per issuer, created on first use
//! (with External Account Binding when `eab_kid` / `eab_hmac_key` are set) and stored sealed so
//! every replica uses it; orders for the certificate's names (with the issuer's `profile`),
//! challenges answered by http-01 (any replica's challenge listener serves the answer from the
//! database) or dns-01 (RFC 2136 updates with TSIG, or certctl's `dns_present_script` /
//! `dns_cleanup_script` hooks), finalized
//! with the order's CSR, the chain downloaded, and the CA's renewal window (RFC 9773 ARI) when its
//! directory offers `renewalInfo`.
//!
//! Each step is one poll: `submit` places the order and records its URL; each `poll` reads the
//! order and moves it on (answer the challenges, finalize, download), so nothing waits inside a
//! call and a restart resumes from the order's URL.
//!
//! Config: `directory_url` (required), `email`, `challenge_type` (`http-01`, the default, or
//! `dns-01`), `dns_update_server` and the TSIG fields of [`rfc2136`], or `dns_present_script` and
//! `dns_cleanup_script`, `dns_propagation_wait` (seconds),
//! `eab_kid`, `eab_hmac_key` (base64url, as CAs hand it out), `profile`, `preferred_chain` (the
//! common name that should have issued the chain's topmost certificate, see [`alternates`]),
//! `tls_ca_file`.

mod alternates;
mod challenges;
pub mod rfc2136;
pub mod transport;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use instant_acme::{
    Account, AuthorizationStatus, CertificateIdentifier, ExternalAccountKey, Identifier, NewAccount, NewOrder,
    RevocationReason, RevocationRequest,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use serde::{Deserialize, Serialize};

use self::challenges::{ChallengeKind, DnsRecord};
use self::transport::{transport_failure, AcmeTransport};
use super::connectors::{ConfigReader, ConnectorContext};
use super::http::CaHttp;
use super::remote::{Check, OrderRef, OrderRequest, OrderStatus, Placed, Polled, RemoteIssuer, RevokeRequest};
use super::{ErrorClass, IssueFailure};
use crate::crypto::seal::SealingKey;
use crate::db::Db;
use crate::queries::acme::{LoadAcmeAccount, StoreAcmeAccount, StoredAcmeAccount};

/// The ACME connector.
pub struct AcmeIssuer {
    inner: Arc<Inner>,
}

/// What the connector's futures share.
struct Inner {
    issuer_id: String,
    directory_url: String,
    /// Contact for the account (`mailto:`).
    email: Option<String>,
    challenge: ChallengeKind,
    /// External Account Binding: key id and HMAC key.
    eab: Option<(String, Vec<u8>)>,
    profile: Option<String>,
    /// The issuer common name the chain should end at (`preferred_chain`).
    preferred_chain: Option<String>,
    /// The alternate chains of certificate downloads, noted by the transport.
    alternates: Arc<alternates::Alternates>,
    http: CaHttp,
    db: Db,
    sealing: Arc<SealingKey>,
    /// The account, once loaded or created (one creation at a time).
    account: tokio::sync::Mutex<Option<Account>>,
}

/// What the connector keeps about an order between polls.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct OrderNotes {
    /// Authorizations whose challenge was answered and set ready.
    #[serde(default)]
    ready: Vec<String>,
    /// dns-01 records presented (removed once the order is done).
    #[serde(default)]
    records: Vec<DnsRecord>,
}

impl OrderNotes {
    fn read(state: &serde_json::Value) -> OrderNotes {
        serde_json::from_value(state.clone()).unwrap_or_default()
    }

    fn value(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

impl AcmeIssuer {
    pub fn new(
        context: &ConnectorContext,
        issuer_id: &str,
        config: &ConfigReader<'_>,
    ) -> Result<AcmeIssuer, IssueFailure> {
        let directory_url = config.url("directory_url", None)?;
        let challenge = ChallengeKind::from_config(config)?;
        let eab = match (config.text("eab_kid")?, config.text("eab_hmac_key")?) {
            (Some(kid), Some(key)) => {
                let key = decode_eab_key(&key).ok_or_else(|| config.error("eab_hmac_key must be base64url"))?;
                Some((kid, key))
            }
            (None, None) => None,
            _ => return Err(config.error("eab_kid and eab_hmac_key go together")),
        };
        Ok(AcmeIssuer {
            inner: Arc::new(Inner {
                issuer_id: issuer_id.to_owned(),
                directory_url,
                email: config.text("email")?,
                challenge,
                eab,
                profile: config.text("profile")?,
                preferred_chain: config.text("preferred_chain")?,
                alternates: Arc::default(),
                http: config.http(context.http)?,
                db: context.db.clone(),
                sealing: context.sealing.clone(),
                account: tokio::sync::Mutex::new(None),
            }),
        })
    }
}

/// An EAB HMAC key as CAs hand it out: base64url, padded or not (plain base64 accepted too).
fn decode_eab_key(key: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    let trimmed = key.trim().trim_end_matches('=');
    URL_SAFE_NO_PAD.decode(trimmed).ok().or_else(|| STANDARD.decode(key.trim()).ok()).filter(|k| !k.is_empty())
}

/// An instant-acme error as a classified failure, prefixed with what was being done.
fn failure(what: &str, error: instant_acme::Error) -> IssueFailure {
    if let Some(inner) = transport_failure(&error) {
        let mut failure = inner.clone();
        failure.message = format!("{what}: {}", inner.message);
        return failure;
    }
    match error {
        instant_acme::Error::Api(problem) => {
            let kind = problem.r#type.as_deref().unwrap_or("").rsplit(':').next().unwrap_or("").to_owned();
            let class = match kind.as_str() {
                "rateLimited" => ErrorClass::RateLimited,
                // A stale nonce or a server hiccup: the next poll simply tries again.
                "badNonce" | "serverInternal" => ErrorClass::Upstream5xx,
                _ if problem.status.is_some_and(|s| s >= 500) => ErrorClass::Upstream5xx,
                _ => ErrorClass::Upstream4xx,
            };
            let detail = problem.detail.clone().unwrap_or_default();
            IssueFailure::new(class, format!("{what}: the ACME server answered {kind}: {detail}"))
        }
        instant_acme::Error::Timeout(_) => {
            IssueFailure::new(ErrorClass::Timeout, format!("{what}: the ACME server did not answer in time"))
        }
        instant_acme::Error::Unsupported(feature) => {
            IssueFailure::new(ErrorClass::Validation, format!("{what}: the ACME server does not support {feature}"))
        }
        instant_acme::Error::Crypto | instant_acme::Error::KeyRejected => {
            IssueFailure::new(ErrorClass::Internal, format!("{what}: {error}"))
        }
        other => IssueFailure::new(
            ErrorClass::Upstream5xx,
            format!("{what}: the ACME server's answer could not be read: {other}"),
        ),
    }
}

impl Inner {
    fn transport(&self) -> Box<AcmeTransport> {
        Box::new(AcmeTransport { http: self.http.clone(), alternates: self.alternates.clone() })
    }

    /// The issuer's account: loaded from the database, or created at the CA and stored sealed.
    /// Every failure here happens before an order is placed (so a submission may be retried).
    async fn account(&self) -> Result<Account, IssueFailure> {
        let mut slot = self.account.lock().await;
        if let Some(account) = slot.as_ref() {
            return Ok(account.clone());
        }
        let internal = |what: &str, e: &dyn std::fmt::Display| {
            IssueFailure::new(
                ErrorClass::Internal,
                format!("the ACME account of issuer {}: {what}: {e}", self.issuer_id),
            )
        };
        let stored = self
            .db
            .run(LoadAcmeAccount { issuer_id: self.issuer_id.clone() })
            .await
            .map_err(|e| internal("reading it", &e).unsent())?
            .filter(|stored| stored.directory_url == self.directory_url);
        let stored = match stored {
            Some(stored) => stored,
            None => {
                let contact = self.email.as_ref().map(|e| format!("mailto:{e}"));
                let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
                let new = NewAccount { contact: &contacts, terms_of_service_agreed: true, only_return_existing: false };
                let eab = self.eab.as_ref().map(|(kid, key)| ExternalAccountKey::new(kid.clone(), key));
                let (account, credentials) = Account::builder_with_http(self.transport())
                    .create(&new, self.directory_url.clone(), eab.as_ref())
                    .await
                    .map_err(|e| failure("creating the ACME account", e).unsent())?;
                let json = serde_json::to_vec(&credentials).map_err(|e| internal("serialising it", &e).unsent())?;
                let created = StoredAcmeAccount {
                    directory_url: self.directory_url.clone(),
                    account_url: account.id().to_owned(),
                    credentials_sealed: self.sealing.seal(&json),
                };
                tracing::info!(issuer_id = %self.issuer_id, account = %created.account_url, "created an ACME account");
                self.db
                    .run(StoreAcmeAccount { issuer_id: self.issuer_id.clone(), account: created })
                    .await
                    .map_err(|e| internal("storing it", &e).unsent())?
            }
        };
        let json = self.sealing.open(&stored.credentials_sealed).map_err(|e| internal("opening it", &e).unsent())?;
        let credentials = serde_json::from_slice(&json).map_err(|e| internal("reading it", &e).unsent())?;
        let account = Account::builder_with_http(self.transport())
            .from_credentials(credentials)
            .await
            .map_err(|e| failure("loading the ACME account", e).unsent())?;
        *slot = Some(account.clone());
        Ok(account)
    }

    async fn submit(self: Arc<Self>, request: OrderRequest) -> Result<Placed, IssueFailure> {
        let account = self.account().await?;
        let identifiers: Vec<Identifier> = request
            .sans
            .iter()
            .map(|name| match name.parse::<std::net::IpAddr>() {
                Ok(ip) => Identifier::Ip(ip),
                Err(_) => Identifier::Dns(name.clone()),
            })
            .collect();
        let mut new = NewOrder::new(&identifiers);
        if let Some(profile) = &self.profile {
            new = new.profile(profile);
        }
        let order = account.new_order(&new).await.map_err(|e| failure("placing the ACME order", e))?;
        Ok(Placed {
            order: OrderRef { external_id: order.url().to_owned(), state: OrderNotes::default().value() },
            // Answer the challenges at once, in the next step.
            status: OrderStatus::Pending { retry_after: Some(Duration::ZERO), detail: "order placed".into() },
        })
    }

    async fn poll(self: Arc<Self>, order_ref: OrderRef, request: OrderRequest) -> Result<Polled, IssueFailure> {
        let account = self.account().await?;
        let mut order =
            account.order(order_ref.external_id.clone()).await.map_err(|e| failure("reading the ACME order", e))?;
        let mut notes = OrderNotes::read(&order_ref.state);
        let status = order.state().status;
        match status {
            instant_acme::OrderStatus::Pending => {
                let mut wait: Option<Duration> = None;
                let mut authorizations = order.authorizations();
                while let Some(authorization) = authorizations.next().await {
                    let mut authorization = authorization.map_err(|e| failure("reading an authorization", e))?;
                    let url = authorization.url().to_owned();
                    match authorization.status {
                        AuthorizationStatus::Pending if notes.ready.contains(&url) => {}
                        AuthorizationStatus::Pending => {
                            let identifier = authorization.identifier().to_string();
                            let Some(mut challenge) = authorization.challenge(self.challenge.acme_type()) else {
                                return Ok(Polled::status(OrderStatus::Rejected {
                                    reason: format!(
                                        "the ACME server offers no {} challenge for {identifier}",
                                        self.challenge.name()
                                    ),
                                }));
                            };
                            match self
                                .challenge
                                .present(&self.db, &request.order_id, &identifier, &challenge, &mut notes)
                                .await?
                            {
                                Some(remaining) => wait = Some(wait.map_or(remaining, |w| w.max(remaining))),
                                None => {
                                    challenge.set_ready().await.map_err(|e| failure("answering a challenge", e))?;
                                    notes.ready.push(url);
                                }
                            }
                        }
                        AuthorizationStatus::Valid => {}
                        other => {
                            let why = authorization
                                .challenges
                                .iter()
                                .find_map(|c| c.error.as_ref().and_then(|p| p.detail.clone()))
                                .unwrap_or_else(|| format!("its authorization is {other:?}"));
                            return Ok(Polled::status(OrderStatus::Rejected {
                                reason: format!("{}: {why}", authorization.identifier()),
                            }));
                        }
                    }
                }
                let detail = match wait {
                    Some(_) => "waiting for the DNS records to propagate",
                    None => "the CA is validating the challenges",
                };
                Ok(Polled {
                    status: OrderStatus::Pending { retry_after: wait, detail: detail.into() },
                    state: Some(notes.value()),
                })
            }
            instant_acme::OrderStatus::Ready => {
                let csr = request.csr_der()?;
                order.finalize_csr(&csr).await.map_err(|e| failure("finalizing the ACME order", e))?;
                self.download(&account, &mut order).await
            }
            instant_acme::OrderStatus::Processing | instant_acme::OrderStatus::Valid => {
                self.download(&account, &mut order).await
            }
            instant_acme::OrderStatus::Invalid => {
                let mut reason = order.state().error.as_ref().and_then(|p| p.detail.clone());
                if reason.is_none() {
                    let mut authorizations = order.authorizations();
                    while let Some(Ok(authorization)) = authorizations.next().await {
                        if let Some(detail) = authorization
                            .challenges
                            .iter()
                            .find_map(|c| c.error.as_ref().and_then(|p| p.detail.clone()))
                        {
                            reason = Some(format!("{}: {detail}", authorization.identifier()));
                            break;
                        }
                    }
                }
                Ok(Polled::status(OrderStatus::Rejected {
                    reason: reason.unwrap_or_else(|| "the ACME server marked the order invalid".into()),
                }))
            }
        }
    }

    /// The certificate once the order is valid (`Pending` while the CA is still processing),
    /// with the CA's renewal window when it offers ARI.
    async fn download(&self, account: &Account, order: &mut instant_acme::Order) -> Result<Polled, IssueFailure> {
        let Some(chain_pem) = order.certificate().await.map_err(|e| failure("downloading the certificate", e))? else {
            return Ok(Polled::status(OrderStatus::Pending {
                retry_after: None,
                detail: "the CA is issuing the certificate".into(),
            }));
        };
        let chain_pem = match (&self.preferred_chain, order.state().certificate.clone()) {
            (Some(preferred), Some(url)) => self.preferred(chain_pem, preferred, &url).await,
            _ => chain_pem,
        };
        let renewal_window = self.renewal_window(account, &chain_pem).await;
        Ok(Polled::status(OrderStatus::Issued { chain_pem, renewal_window }))
    }

    /// The first of the default chain and its alternates whose topmost certificate was issued
    /// by `preferred`; the default when none was, or the alternates cannot be read (logged).
    async fn preferred(&self, default: String, preferred: &str, certificate_url: &str) -> String {
        let offered = self.alternates.take(certificate_url);
        if alternates::top_issued_by(&default, preferred) || offered.is_empty() {
            return default;
        }
        let signer = match self.account_signer().await {
            Ok(signer) => signer,
            Err(e) => {
                tracing::warn!(issuer_id = %self.issuer_id, error = %e.message, "cannot read the alternate chains");
                return default;
            }
        };
        for url in offered {
            match alternates::fetch(&self.http, &self.directory_url, &signer, &url).await {
                Ok(chain) if alternates::top_issued_by(&chain, preferred) => return chain,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(issuer_id = %self.issuer_id, url = %url, error = %e.message, "reading an alternate chain failed");
                }
            }
        }
        tracing::info!(issuer_id = %self.issuer_id, preferred, "no chain the CA offers ends at the preferred issuer; keeping its default");
        default
    }

    /// The account's key and URL, for the requests certctl signs itself.
    async fn account_signer(&self) -> Result<alternates::AccountSigner, IssueFailure> {
        let internal = |what: String| IssueFailure::new(ErrorClass::Internal, what);
        let stored = self
            .db
            .run(LoadAcmeAccount { issuer_id: self.issuer_id.clone() })
            .await
            .map_err(|e| internal(format!("reading the ACME account: {e}")))?
            .ok_or_else(|| internal("the ACME account is not stored".into()))?;
        let json = self.sealing.open(&stored.credentials_sealed).map_err(|e| internal(format!("opening it: {e}")))?;
        let credentials: serde_json::Value =
            serde_json::from_slice(&json).map_err(|e| internal(format!("reading it: {e}")))?;
        alternates::AccountSigner::from_credentials(&credentials, &stored.account_url).map_err(internal)
    }

    /// The CA's suggested renewal window for the leaf of `chain_pem` (RFC 9773), if its directory
    /// offers `renewalInfo`; any failure only loses the window.
    async fn renewal_window(
        &self,
        account: &Account,
        chain_pem: &str,
    ) -> Option<(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)> {
        let leaf = CertificateDer::from_pem_slice(chain_pem.as_bytes()).ok()?;
        let id = CertificateIdentifier::try_from(&leaf).ok()?;
        match account.renewal_info(&id).await {
            Ok((info, _)) => {
                let at = |t: time::OffsetDateTime| chrono::DateTime::from_timestamp(t.unix_timestamp(), 0);
                Some((at(info.suggested_window.start)?, at(info.suggested_window.end)?))
            }
            Err(instant_acme::Error::Unsupported(_)) => None,
            Err(e) => {
                tracing::warn!(issuer_id = %self.issuer_id, error = %e, "reading the ACME renewal window failed");
                None
            }
        }
    }

    async fn revoke(self: Arc<Self>, request: RevokeRequest) -> Result<(), IssueFailure> {
        let account = self.account().await?;
        let leaf = CertificateDer::from_pem_slice(request.chain_pem.as_bytes()).map_err(|e| {
            IssueFailure::new(ErrorClass::Internal, format!("the certificate to revoke is not PEM: {e}"))
        })?;
        let reason = match request.reason {
            1 => RevocationReason::KeyCompromise,
            2 => RevocationReason::CaCompromise,
            3 => RevocationReason::AffiliationChanged,
            4 => RevocationReason::Superseded,
            5 => RevocationReason::CessationOfOperation,
            6 => RevocationReason::CertificateHold,
            9 => RevocationReason::PrivilegeWithdrawn,
            10 => RevocationReason::AaCompromise,
            _ => RevocationReason::Unspecified,
        };
        match account.revoke(&RevocationRequest { certificate: &leaf, reason: Some(reason) }).await {
            Ok(()) => Ok(()),
            // Revoked already (by us before a crash, or by someone else): the goal is reached.
            Err(instant_acme::Error::Api(p)) if p.r#type.as_deref().is_some_and(|t| t.ends_with(":alreadyRevoked")) => {
                Ok(())
            }
            Err(e) => Err(failure("revoking the certificate", e)),
        }
    }

    async fn test(self: Arc<Self>) -> Vec<Check> {
        let mut checks = Vec::new();
        let directory =
            self.http.json::<serde_json::Value>("directory", self.http.client().get(&self.directory_url)).await;
        match directory {
            Ok(dir) if dir.get("newOrder").is_some() => {
                let ari = if dir.get("renewalInfo").is_some() { "offers" } else { "does not offer" };
                let profiles = dir
                    .pointer("/meta/profiles")
                    .and_then(|p| p.as_object())
                    .map(|p| p.keys().cloned().collect::<Vec<_>>().join(", "))
                    .filter(|p| !p.is_empty())
                    .map(|p| format!("; profiles: {p}"))
                    .unwrap_or_default();
                checks.push(Check::passed(
                    "directory",
                    format!("{} answers; it {ari} renewal information (ARI){profiles}", self.directory_url),
                ));
            }
            Ok(_) => checks.push(Check::failed(
                "directory",
                format!("{} is not an ACME directory (no newOrder)", self.directory_url),
            )),
            Err(e) => {
                checks.push(Check::failed("directory", e.message));
                return checks;
            }
        }
        match self.account().await {
            Ok(account) => checks.push(Check::passed("account", format!("account {}", account.id()))),
            Err(e) => checks.push(Check::failed("account", e.message)),
        }
        checks
    }

    async fn finished(self: Arc<Self>, order: OrderRef, order_id: String) {
        let notes = OrderNotes::read(&order.state);
        self.challenge.clean_up(&self.db, &order_id, &notes.records).await;
    }
}

impl RemoteIssuer for AcmeIssuer {
    fn issuer_type(&self) -> &'static str {
        "acme"
    }

    fn submit(&self, request: OrderRequest) -> BoxFuture<'static, Result<Placed, IssueFailure>> {
        self.inner.clone().submit(request).boxed()
    }

    fn poll(&self, order: OrderRef, request: OrderRequest) -> BoxFuture<'static, Result<Polled, IssueFailure>> {
        self.inner.clone().poll(order, request).boxed()
    }

    fn revoke(&self, request: RevokeRequest) -> BoxFuture<'static, Result<(), IssueFailure>> {
        self.inner.clone().revoke(request).boxed()
    }

    fn ca_chain(&self) -> BoxFuture<'static, Result<String, IssueFailure>> {
        super::remote::chain_of_last_issued(self.inner.db.clone(), self.inner.issuer_id.clone()).boxed()
    }

    fn test(&self) -> BoxFuture<'static, Vec<Check>> {
        self.inner.clone().test().boxed()
    }

    fn finished(&self, order: OrderRef, request: OrderRequest) -> BoxFuture<'static, ()> {
        self.inner.clone().finished(order, request.order_id).boxed()
    }
}
