//! Sectigo Certificate Manager (SCM REST API, `login` / `password` / `customerUri` headers): a
//! certificate is enrolled with the CSR (`POST /ssl/v1/enroll`), its status polled
//! (`GET /ssl/v1/{sslId}`) until Sectigo issues it, then collected with its chain
//! (`GET /ssl/v1/collect/{sslId}?format=x509`). Enrollments carry `certctl order <id>` in their
//! comments; after a crash, one is found again among the common name's enrollments by those
//! comments.
//!
//! Config: `customer_uri`, `login`, `password`, `org_id`, `cert_type` (all required), `term`
//! (days, 365), `base_url` (`https://cert-manager.com/api`), `external_requester`, `tls_ca_file`,
//! `poll_max_wait_seconds`.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde_json::{json, Value};

use super::connectors::{ConfigReader, ConnectorContext};
use super::http::CaHttp;
use super::remote::{Check, OrderRef, OrderRequest, OrderStatus, Placed, Polled, RemoteIssuer, RevokeRequest};
use super::{ErrorClass, IssueFailure};

const DEFAULT_BASE_URL: &str = "https://cert-manager.com/api";
/// Sectigo's error code for "the certificate is not available for collection yet".
const NOT_READY_CODE: i64 = -183;
/// Candidate enrollments read when looking for one placed before a crash.
const RECOVERY_CANDIDATES: usize = 20;

pub struct SectigoIssuer {
    inner: Arc<Inner>,
}

struct Inner {
    base_url: String,
    customer_uri: String,
    login: String,
    password: String,
    org_id: u64,
    cert_type: u64,
    term: u64,
    external_requester: Option<String>,
    http: CaHttp,
    db: crate::db::Db,
    issuer_id: String,
}

impl SectigoIssuer {
    pub fn new(context: &ConnectorContext, issuer_id: &str, config: &ConfigReader<'_>) -> Result<Self, IssueFailure> {
        let number = |field: &str, what: &str| -> Result<u64, IssueFailure> {
            config.number(field)?.ok_or_else(|| config.error(format!("config field {field} is required ({what})")))
        };
        Ok(SectigoIssuer {
            inner: Arc::new(Inner {
                base_url: config.url("base_url", Some(DEFAULT_BASE_URL))?,
                customer_uri: config.required("customer_uri", "the SCM customer URI")?,
                login: config.required("login", "the SCM API user")?,
                password: config.required("password", "the SCM API user's password")?,
                org_id: number("org_id", "the SCM organization id")?,
                cert_type: number("cert_type", "the SCM certificate profile id")?,
                term: config.number("term")?.unwrap_or(365),
                external_requester: config.text("external_requester")?,
                http: config.http(context.http)?,
                db: context.db.clone(),
                issuer_id: issuer_id.to_owned(),
            }),
        })
    }
}

impl Inner {
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .client()
            .request(method, format!("{}{path}", self.base_url))
            .header("login", &self.login)
            .header("password", &self.password)
            .header("customerUri", &self.customer_uri)
    }

    async fn submit(self: Arc<Self>, request: OrderRequest) -> Result<Placed, IssueFailure> {
        let mut body = json!({
            "orgId": self.org_id,
            "certType": self.cert_type,
            "term": self.term,
            "csr": request.csr_pem,
            "subjAltNames": request.sans.join(","),
            "comments": format!("certctl order {}", request.order_id),
        });
        if let Some(requester) = &self.external_requester {
            body["externalRequester"] = json!(requester);
        }
        let answer: Value =
            self.http.json("enroll", self.request(reqwest::Method::POST, "/ssl/v1/enroll").json(&body)).await?;
        let ssl_id = answer["sslId"]
            .as_u64()
            .ok_or_else(|| IssueFailure::new(ErrorClass::Upstream5xx, "enroll: Sectigo's answer has no sslId"))?;
        Ok(Placed {
            order: OrderRef { external_id: ssl_id.to_string(), state: json!({}) },
            status: OrderStatus::Pending { retry_after: None, detail: "Sectigo accepted the enrollment".into() },
        })
    }

    async fn poll(self: Arc<Self>, order: OrderRef) -> Result<Polled, IssueFailure> {
        let id = &order.external_id;
        let details: Value =
            self.http.json("details", self.request(reqwest::Method::GET, &format!("/ssl/v1/{id}"))).await?;
        let status = details["status"].as_str().unwrap_or("").to_owned();
        match status.as_str() {
            "Issued" => self.collect(id).await,
            "Declined" | "Rejected" | "Invalid" | "Revoked" | "Expired" | "Replaced" => {
                Ok(Polled::status(OrderStatus::Rejected { reason: format!("Sectigo enrollment {id} is {status}") }))
            }
            // Requested, Approved, Applied, SA Approved, Init, Awaiting Approval…
            _ => {
                Ok(Polled::status(OrderStatus::Pending { retry_after: None, detail: format!("Sectigo says {status}") }))
            }
        }
    }

    /// The issued certificate with its chain; "not available yet" is still pending.
    async fn collect(&self, id: &str) -> Result<Polled, IssueFailure> {
        let request = self.request(reqwest::Method::GET, &format!("/ssl/v1/collect/{id}")).query(&[("format", "x509")]);
        let request = request.build().map_err(|e| super::http::transport_failure("collect", &e))?;
        let response = self.http.exchange("collect", request).await?;
        if response.status().is_success() {
            let chain_pem = response.text().await.map_err(|e| super::http::transport_failure("collect", &e))?;
            return Ok(Polled::status(OrderStatus::Issued { chain_pem, renewal_window: None }));
        }
        let status = response.status();
        if status == reqwest::StatusCode::BAD_REQUEST || status == reqwest::StatusCode::NOT_FOUND {
            let body = response.text().await.unwrap_or_default();
            let code = serde_json::from_str::<Value>(&body).ok().and_then(|v| v["code"].as_i64());
            if code == Some(NOT_READY_CODE) {
                return Ok(Polled::status(OrderStatus::Pending {
                    retry_after: None,
                    detail: "issued, not yet available for collection".into(),
                }));
            }
            return Err(IssueFailure::new(
                ErrorClass::Upstream4xx,
                format!("collect: Sectigo refused (HTTP {status}): {body}"),
            ));
        }
        Err(super::http::answer_failure("collect", response).await)
    }

    /// An enrollment made for `request` before a crash: the common name's enrollments whose
    /// comments name certctl's order.
    async fn recover(self: Arc<Self>, request: OrderRequest) -> Result<Option<Placed>, IssueFailure> {
        let list = self.request(reqwest::Method::GET, "/ssl/v1").query(&[("commonName", request.common_name.as_str())]);
        let listed: Value = self.http.json("list", list).await?;
        let marker = format!("certctl order {}", request.order_id);
        for candidate in listed.as_array().cloned().unwrap_or_default().iter().take(RECOVERY_CANDIDATES) {
            let Some(id) = candidate["sslId"].as_u64() else { continue };
            let details: Value =
                self.http.json("details", self.request(reqwest::Method::GET, &format!("/ssl/v1/{id}"))).await?;
            if details["comments"].as_str().is_some_and(|c| c.contains(&marker)) {
                return Ok(Some(Placed {
                    order: OrderRef { external_id: id.to_string(), state: json!({}) },
                    status: OrderStatus::Pending {
                        retry_after: Some(std::time::Duration::ZERO),
                        detail: "found again".into(),
                    },
                }));
            }
        }
        Ok(None)
    }

    async fn revoke(self: Arc<Self>, request: RevokeRequest) -> Result<(), IssueFailure> {
        // Sectigo takes the reasons of the Mozilla policy only (0, 1, 3, 4, 5).
        let code = match request.reason {
            1 | 3 | 4 | 5 => request.reason,
            _ => 0,
        };
        let body = json!({"reasonCode": code.to_string(), "reason": "revoked by certctl"});
        let path = match &request.order {
            Some(order) => format!("/ssl/v1/revoke/{}", order.external_id),
            None => format!("/ssl/v1/revoke/serial/{}", request.serial_hex),
        };
        self.http.send("revoke", self.request(reqwest::Method::POST, &path).json(&body)).await?;
        Ok(())
    }

    async fn test(self: Arc<Self>) -> Vec<Check> {
        match self.http.json::<Value>("types", self.request(reqwest::Method::GET, "/ssl/v1/types")).await {
            Ok(types) => {
                let offered = types.as_array().map(|t| t.iter().any(|p| p["id"].as_u64() == Some(self.cert_type)));
                let profile = match offered {
                    Some(true) => Check::passed("cert_type", format!("profile {} is offered", self.cert_type)),
                    _ => Check::failed(
                        "cert_type",
                        format!("profile {} is not among the account's types", self.cert_type),
                    ),
                };
                vec![Check::passed("credentials", format!("{} accepts the credentials", self.base_url)), profile]
            }
            Err(e) => vec![Check::failed("credentials", e.message)],
        }
    }
}

impl RemoteIssuer for SectigoIssuer {
    fn issuer_type(&self) -> &'static str {
        "sectigo"
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
        super::remote::chain_of_last_issued(self.inner.db.clone(), self.inner.issuer_id.clone()).boxed()
    }

    fn test(&self) -> BoxFuture<'static, Vec<Check>> {
        self.inner.clone().test().boxed()
    }
}
