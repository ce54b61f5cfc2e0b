//! GlobalSign Atlas HVCA (Certificate Management API v2): mutual TLS with the client certificate
//! issued in Atlas, and a bearer token from `POST /login` (valid ten minutes: certctl logs in
//! again after nine, or when a call answers 401). A certificate is requested with the CSR as its
//! `public_key` and the subject and names given explicitly (`POST /certificates`, 201 with the
//! serial in `Location`), read back (`GET /certificates/{serial}`: 202 while not ready) and
//! completed with `GET /trustchain`. After a crash, a certificate issued for the CSR's key is found
//! among the last day's issuance statistics.
//!
//! Config: `api_url` (`https://emea.api.hvca.globalsign.com:8443/v2`), `api_key`, `api_secret`,
//! `client_cert_path`, `client_key_path` (all four required), `server_ca_path` / `tls_ca_file`,
//! `poll_max_wait_seconds`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde_json::{json, Value};

use super::connectors::{ConfigReader, ConnectorContext};
use super::http::CaHttp;
use super::remote::{Check, OrderRef, OrderRequest, OrderStatus, Placed, Polled, RemoteIssuer, RevokeRequest};
use super::{ErrorClass, IssueFailure};

const DEFAULT_API_URL: &str = "https://emea.api.hvca.globalsign.com:8443/v2";
/// A login token is used this long (GlobalSign's last ten minutes).
const TOKEN_LIFETIME: Duration = Duration::from_secs(9 * 60);
/// Issued certificates read when looking for one requested before a crash.
const RECOVERY_CANDIDATES: usize = 50;

pub struct GlobalsignIssuer {
    inner: Arc<Inner>,
}

struct Inner {
    api_url: String,
    api_key: String,
    api_secret: String,
    http: CaHttp,
    /// The login token and when it was obtained.
    token: tokio::sync::Mutex<Option<(String, Instant)>>,
}

impl GlobalsignIssuer {
    pub fn new(context: &ConnectorContext, _issuer_id: &str, config: &ConfigReader<'_>) -> Result<Self, IssueFailure> {
        if config.text("client_cert_path")?.is_none() && config.text("client_cert_pem")?.is_none() {
            return Err(config.error("client_cert_path and client_key_path are required (Atlas uses mutual TLS)"));
        }
        Ok(GlobalsignIssuer {
            inner: Arc::new(Inner {
                api_url: config.url("api_url", Some(DEFAULT_API_URL))?,
                api_key: config.required("api_key", "the Atlas API key")?,
                api_secret: config.required("api_secret", "the Atlas API secret")?,
                http: config.http(context.http)?,
                token: tokio::sync::Mutex::new(None),
            }),
        })
    }
}

/// The serial at the end of a `Location` header.
fn serial_from_location(location: &str) -> Option<String> {
    let serial = location.trim_end_matches('/').rsplit('/').next()?;
    (!serial.is_empty() && serial.chars().all(|c| c.is_ascii_hexdigit())).then(|| serial.to_owned())
}

impl Inner {
    /// A valid login token (logging in when there is none, it is old, or `fresh` asks).
    async fn token(&self, fresh: bool) -> Result<String, IssueFailure> {
        let mut slot = self.token.lock().await;
        if let Some((token, at)) = slot.as_ref() {
            if !fresh && at.elapsed() < TOKEN_LIFETIME {
                return Ok(token.clone());
            }
        }
        let login = self
            .http
            .client()
            .post(format!("{}/login", self.api_url))
            .json(&json!({"api_key": self.api_key, "api_secret": self.api_secret}));
        let answer: Value = self.http.json("login", login).await?;
        let token = answer["access_token"]
            .as_str()
            .ok_or_else(|| IssueFailure::new(ErrorClass::Upstream5xx, "login: Atlas answered no access_token"))?
            .to_owned();
        *slot = Some((token.clone(), Instant::now()));
        Ok(token)
    }

    /// Sends a request with the bearer token; a 401 logs in again once.
    async fn call(
        &self,
        endpoint: &'static str,
        build: impl Fn(&str) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, IssueFailure> {
        let built = |token: &str| build(token).build().map_err(|e| super::http::transport_failure(endpoint, &e));
        let mut response = self.http.exchange(endpoint, built(&self.token(false).await?)?).await?;
        if response.status() == reqwest::StatusCode::UNAUTHORIZED {
            response = self.http.exchange(endpoint, built(&self.token(true).await?)?).await?;
        }
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(super::http::answer_failure(endpoint, response).await)
        }
    }

    async fn submit(self: Arc<Self>, request: OrderRequest) -> Result<Placed, IssueFailure> {
        let (ips, dns): (Vec<&String>, Vec<&String>) =
            request.sans.iter().partition(|n| n.parse::<std::net::IpAddr>().is_ok());
        let ekus: Vec<&str> = request
            .ekus
            .iter()
            .filter_map(|e| match e.as_str() {
                "serverAuth" => Some("1.3.6.1.5.5.7.3.1"),
                "clientAuth" => Some("1.3.6.1.5.5.7.3.2"),
                _ => None,
            })
            .collect();
        let now = chrono::Utc::now().timestamp();
        let not_after = request.max_lifetime_secs.map_or(0, |secs| now + secs as i64);
        let body = json!({
            "validity": {"not_before": now, "not_after": not_after},
            "subject_dn": {"common_name": request.common_name},
            "san": {"dns_names": dns, "ip_addresses": ips},
            "extended_key_usages": ekus,
            "public_key": request.csr_pem,
        });
        // The token is fetched first: a failure there means nothing was sent.
        self.token(false).await.map_err(IssueFailure::unsent)?;
        let url = format!("{}/certificates", self.api_url);
        let response =
            self.call("certificate", |token| self.http.client().post(&url).bearer_auth(token).json(&body)).await?;
        let location = response.headers().get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or("");
        let serial = serial_from_location(location).ok_or_else(|| {
            IssueFailure::new(
                ErrorClass::Upstream5xx,
                format!("certificate: Atlas answered no serial (Location {location:?})"),
            )
        })?;
        Ok(Placed {
            order: OrderRef { external_id: serial, state: json!({}) },
            status: OrderStatus::Pending { retry_after: None, detail: "Atlas accepted the request".into() },
        })
    }

    async fn poll(self: Arc<Self>, order: OrderRef) -> Result<Polled, IssueFailure> {
        let url = format!("{}/certificates/{}", self.api_url, order.external_id);
        let response = self.call("certificate_status", |token| self.http.client().get(&url).bearer_auth(token)).await?;
        if response.status() == reqwest::StatusCode::ACCEPTED {
            return Ok(Polled::status(OrderStatus::Pending { retry_after: None, detail: "Atlas is issuing".into() }));
        }
        let body: Value =
            response.json().await.map_err(|e| super::http::transport_failure("certificate_status", &e))?;
        match body["status"].as_str().unwrap_or("") {
            "ISSUED" => {
                let leaf = body["certificate"].as_str().unwrap_or_default().trim().to_owned();
                let chain = self.trust_chain().await?;
                let chain_pem = std::iter::once(leaf).chain(chain).map(|p| format!("{}\n", p.trim())).collect();
                Ok(Polled::status(OrderStatus::Issued { chain_pem, renewal_window: None }))
            }
            "REVOKED" => Ok(Polled::status(OrderStatus::Rejected {
                reason: format!("Atlas certificate {} is revoked", order.external_id),
            })),
            other => {
                Ok(Polled::status(OrderStatus::Pending { retry_after: None, detail: format!("Atlas says {other}") }))
            }
        }
    }

    /// The issuing CA first, the root last.
    async fn trust_chain(&self) -> Result<Vec<String>, IssueFailure> {
        let url = format!("{}/trustchain", self.api_url);
        let response = self.call("trustchain", |token| self.http.client().get(&url).bearer_auth(token)).await?;
        let chain: Vec<String> = response.json().await.map_err(|e| super::http::transport_failure("trustchain", &e))?;
        Ok(chain)
    }

    /// A certificate issued in the last day for the CSR's public key.
    async fn recover(self: Arc<Self>, request: OrderRequest) -> Result<Option<Placed>, IssueFailure> {
        let csr = crate::crypto::csr::verify_csr(&request.csr_pem)
            .map_err(|e| IssueFailure::new(ErrorClass::Internal, format!("the order's CSR: {e}")))?;
        let now = chrono::Utc::now().timestamp();
        let url = format!("{}/stats/issued", self.api_url);
        let range = [("from", (now - 86_400).to_string()), ("to", now.to_string())];
        // Oldest first, paged: the count (`Total-Count`) says which page holds the newest.
        let counted = self
            .call("stats_issued", |token| {
                self.http.client().get(&url).bearer_auth(token).query(&range).query(&[("page", 1), ("per_page", 1)])
            })
            .await?;
        let total: u64 = counted
            .headers()
            .get("Total-Count")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let per_page = RECOVERY_CANDIDATES as u64;
        let last = total.div_ceil(per_page).max(1);
        let mut issued: Vec<Value> = Vec::new();
        // The newest page, and the one before it when the newest is short.
        for page in [last.saturating_sub(1), last]
            .into_iter()
            .filter(|p| *p >= 1 && (*p == last || !total.is_multiple_of(per_page)))
        {
            let response = self
                .call("stats_issued", |token| {
                    let paging = [("page", page), ("per_page", per_page)];
                    self.http.client().get(&url).bearer_auth(token).query(&range).query(&paging)
                })
                .await?;
            let items: Vec<Value> =
                response.json().await.map_err(|e| super::http::transport_failure("stats_issued", &e))?;
            issued.extend(items);
        }
        for item in issued.iter().rev().take(RECOVERY_CANDIDATES) {
            let Some(serial) = item["serial_number"].as_str() else { continue };
            let url = format!("{}/certificates/{serial}", self.api_url);
            let response =
                self.call("certificate_status", |token| self.http.client().get(&url).bearer_auth(token)).await?;
            let Ok(body) = response.json::<Value>().await else { continue };
            let Some(pem) = body["certificate"].as_str() else { continue };
            let same_key = x509_parser::pem::parse_x509_pem(pem.as_bytes())
                .ok()
                .and_then(|(_, p)| p.parse_x509().ok().map(|c| c.public_key().raw == csr.spki_der.as_slice()))
                .unwrap_or(false);
            if same_key {
                return Ok(Some(Placed {
                    order: OrderRef { external_id: serial.to_owned(), state: json!({}) },
                    status: OrderStatus::Pending { retry_after: Some(Duration::ZERO), detail: "found again".into() },
                }));
            }
        }
        Ok(None)
    }

    async fn revoke(self: Arc<Self>, request: RevokeRequest) -> Result<(), IssueFailure> {
        let reason = match request.reason {
            1 => "keyCompromise",
            3 => "affiliationChanged",
            4 => "superseded",
            5 => "cessationOfOperation",
            9 => "privilegeWithdrawn",
            _ => "unspecified",
        };
        let serial = request.order.map(|o| o.external_id).unwrap_or(request.serial_hex);
        let url = format!("{}/certificates/{serial}", self.api_url);
        let body = json!({"revocation_reason": reason, "revocation_time": 0});
        self.call("revoke", |token| self.http.client().patch(&url).bearer_auth(token).json(&body)).await?;
        Ok(())
    }

    async fn ca_chain(self: Arc<Self>) -> Result<String, IssueFailure> {
        Ok(self.trust_chain().await?.iter().map(|p| format!("{}\n", p.trim())).collect())
    }

    async fn test(self: Arc<Self>) -> Vec<Check> {
        match self.token(true).await {
            Ok(_) => {
                let url = format!("{}/validationpolicy", self.api_url);
                let policy =
                    self.call("validationpolicy", |token| self.http.client().get(&url).bearer_auth(token)).await;
                vec![
                    Check::passed("login", format!("{} accepts the client certificate and API key", self.api_url)),
                    match policy {
                        Ok(_) => Check::passed("validation_policy", "the account's validation policy is readable"),
                        Err(e) => Check::failed("validation_policy", e.message),
                    },
                ]
            }
            Err(e) => vec![Check::failed("login", e.message)],
        }
    }
}

impl RemoteIssuer for GlobalsignIssuer {
    fn issuer_type(&self) -> &'static str {
        "globalsign"
    }

    fn submit(&self, request: OrderRequest) -> BoxFuture<'static, Result<Placed, IssueFailure>> {
        self.inner.clone().submit(request).boxed()
    }

    fn poll(&self, order: OrderRef, _request: OrderRequest) -> BoxFuture<'static, Result<Polled, IssueFailure>> {
        self.inner.clone().poll(order).boxed()
    }

    fn recover(&self, request: OrderRequest) -> BoxFuture<'static, Result<Option<Placed>, IssueFailure>> {
        self.inner.clone().recover(request).boxed()
    }

    fn revoke(&self, request: RevokeRequest) -> BoxFuture<'static, Result<(), IssueFailure>> {
        self.inner.clone().revoke(request).boxed()
    }

    fn ca_chain(&self) -> BoxFuture<'static, Result<String, IssueFailure>> {
        self.inner.clone().ca_chain().boxed()
    }

    fn test(&self) -> BoxFuture<'static, Vec<Check>> {
        self.inner.clone().test().boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_serial_is_the_last_segment_of_the_location() {
        assert_eq!(serial_from_location("https://h/v2/certificates/01AB23").as_deref(), Some("01AB23"));
        assert_eq!(serial_from_location("/v2/certificates/01AB23/").as_deref(), Some("01AB23"));
        assert_eq!(serial_from_location("/v2/certificates/"), None);
        assert_eq!(serial_from_location(""), None);
    }
}
