//! DigiCert CertCentral (Services API v2, `X-DC-DEVKEY`): an order is placed with the CSR
//! (`POST /order/certificate/{product}`), polled (`GET /order/certificate/{id}`) until DigiCert
//! issues it, then the certificate is downloaded as one PEM bundle
//! (`GET /certificate/{id}/download/format/pem_all`). Orders carry `certctl order <id>` in their
//! comments; after a crash, an order is found again by listing the common name's orders and
//! comparing the CSR DigiCert stored with the one certctl sent.
//!
//! Config: `api_key` (required), `org_id` (required for OV/EV products), `product_type`
//! (`ssl_basic`), `base_url` (`https://www.digicert.com/services/v2`), `container_id`,
//! `tls_ca_file`, `poll_max_wait_seconds`.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde::Deserialize;
use serde_json::{json, Value};

use super::connectors::{ConfigReader, ConnectorContext};
use super::http::CaHttp;
use super::remote::{Check, OrderRef, OrderRequest, OrderStatus, Placed, Polled, RemoteIssuer, RevokeRequest};
use super::{ErrorClass, IssueFailure};

/// Default API base.
const DEFAULT_BASE_URL: &str = "https://www.digicert.com/services/v2";
/// Candidate orders read when looking for one placed before a crash.
const RECOVERY_CANDIDATES: usize = 20;

pub struct DigicertIssuer {
    inner: Arc<Inner>,
}

struct Inner {
    base_url: String,
    api_key: String,
    org_id: Option<u64>,
    product_type: String,
    container_id: Option<u64>,
    http: CaHttp,
    db: crate::db::Db,
    issuer_id: String,
}

/// What `GET /order/certificate/{id}` answers (the fields certctl reads).
#[derive(Debug, Deserialize)]
struct OrderInfo {
    status: String,
    #[serde(default)]
    certificate: Option<CertificateInfo>,
}

#[derive(Debug, Deserialize)]
struct CertificateInfo {
    #[serde(default)]
    id: Option<u64>,
    #[serde(default)]
    csr: Option<String>,
}

impl DigicertIssuer {
    pub fn new(context: &ConnectorContext, issuer_id: &str, config: &ConfigReader<'_>) -> Result<Self, IssueFailure> {
        Ok(DigicertIssuer {
            inner: Arc::new(Inner {
                base_url: config.url("base_url", Some(DEFAULT_BASE_URL))?,
                api_key: config.required("api_key", "the CertCentral API key")?,
                org_id: config.number("org_id")?,
                product_type: config.text("product_type")?.unwrap_or_else(|| "ssl_basic".into()),
                container_id: config.number("container_id")?,
                http: config.http(context.http)?,
                db: context.db.clone(),
                issuer_id: issuer_id.to_owned(),
            }),
        })
    }
}

/// A CSR compared across encodings: only its base64 body matters.
fn csr_body(pem: &str) -> String {
    pem.lines().filter(|l| !l.starts_with("-----")).flat_map(|l| l.chars()).filter(|c| !c.is_whitespace()).collect()
}

impl Inner {
    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.client().get(format!("{}{path}", self.base_url)).header("X-DC-DEVKEY", &self.api_key)
    }

    fn send_json(&self, method: reqwest::Method, path: &str, body: &Value) -> reqwest::RequestBuilder {
        self.http
            .client()
            .request(method, format!("{}{path}", self.base_url))
            .header("X-DC-DEVKEY", &self.api_key)
            .json(body)
    }

    async fn submit(self: Arc<Self>, request: OrderRequest) -> Result<Placed, IssueFailure> {
        let dns_names: Vec<&String> = request.sans.iter().filter(|n| n.parse::<std::net::IpAddr>().is_err()).collect();
        // Public TLS certificates live at most 397 days; a shorter profile lifetime asks for days.
        let validity = match request.max_lifetime_secs {
            Some(secs) if secs < 365 * 86_400 => json!({"days": (secs / 86_400).max(1)}),
            _ => json!({"years": 1}),
        };
        let mut body = json!({
            "certificate": {
                "common_name": request.common_name,
                "dns_names": dns_names,
                "csr": request.csr_pem,
                "signature_hash": "sha256",
                "server_platform": {"id": -1},
            },
            "order_validity": validity,
            "skip_approval": true,
            "payment_method": "balance",
            "comments": format!("certctl order {}", request.order_id),
        });
        if let Some(org) = self.org_id {
            body["organization"] = json!({"id": org});
        }
        if let Some(container) = self.container_id {
            body["container"] = json!({"id": container});
        }
        let path = format!("/order/certificate/{}", self.product_type);
        let answer: Value = self.http.json("order", self.send_json(reqwest::Method::POST, &path, &body)).await?;
        let order_id = answer["id"]
            .as_u64()
            .ok_or_else(|| IssueFailure::new(ErrorClass::Upstream5xx, "order: DigiCert's answer has no order id"))?;
        let state = json!({"certificate_id": answer["certificate_id"]});
        // Some products issue at once and return the chain with the order.
        let status = match answer["certificate_chain"].as_array().filter(|c| !c.is_empty()) {
            Some(chain) => OrderStatus::Issued {
                chain_pem: chain.iter().filter_map(|c| c["pem"].as_str()).map(|p| format!("{}\n", p.trim())).collect(),
                renewal_window: None,
            },
            None => OrderStatus::Pending { retry_after: None, detail: "DigiCert accepted the order".into() },
        };
        Ok(Placed { order: OrderRef { external_id: order_id.to_string(), state }, status })
    }

    async fn poll(self: Arc<Self>, order: OrderRef) -> Result<Polled, IssueFailure> {
        let info: OrderInfo =
            self.http.json("order_info", self.get(&format!("/order/certificate/{}", order.external_id))).await?;
        let status = info.status.to_ascii_lowercase();
        match status.as_str() {
            "issued" => {
                let certificate_id =
                    info.certificate.and_then(|c| c.id).or_else(|| order.state["certificate_id"].as_u64()).ok_or_else(
                        || {
                            IssueFailure::new(
                                ErrorClass::Upstream5xx,
                                "order_info: an issued order without a certificate id",
                            )
                        },
                    )?;
                let response = self
                    .http
                    .send("download", self.get(&format!("/certificate/{certificate_id}/download/format/pem_all")))
                    .await?;
                let chain_pem = response.text().await.map_err(|e| super::http::transport_failure("download", &e))?;
                Ok(Polled {
                    status: OrderStatus::Issued { chain_pem, renewal_window: None },
                    state: Some(json!({"certificate_id": certificate_id})),
                })
            }
            "rejected" | "denied" | "canceled" | "cancelled" | "revoked" | "expired" => {
                Ok(Polled::status(OrderStatus::Rejected {
                    reason: format!("DigiCert order {} is {status}", order.external_id),
                }))
            }
            // pending, processing, needs_approval, waiting_pickup, reissue_pending, approved…
            _ => Ok(Polled::status(OrderStatus::Pending {
                retry_after: None,
                detail: format!("DigiCert says {status}"),
            })),
        }
    }

    /// An order placed for `request` before a crash: the common name's recent orders, matched by CSR.
    async fn recover(self: Arc<Self>, request: OrderRequest) -> Result<Option<Placed>, IssueFailure> {
        let list = self.get("/order/certificate").query(&[
            ("filters[common_name]", request.common_name.as_str()),
            ("sort", "-date_created"),
            ("limit", "20"),
        ]);
        let listed: Value = self.http.json("order_list", list).await?;
        let wanted = csr_body(&request.csr_pem);
        let candidates = listed["orders"].as_array().cloned().unwrap_or_default();
        for candidate in candidates.iter().take(RECOVERY_CANDIDATES) {
            let Some(id) = candidate["id"].as_u64() else { continue };
            let info: OrderInfo = self.http.json("order_info", self.get(&format!("/order/certificate/{id}"))).await?;
            let csr = info.certificate.as_ref().and_then(|c| c.csr.as_deref()).map(csr_body);
            if csr.as_deref() == Some(wanted.as_str()) {
                let certificate_id = info.certificate.and_then(|c| c.id);
                return Ok(Some(Placed {
                    order: OrderRef { external_id: id.to_string(), state: json!({"certificate_id": certificate_id}) },
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
        // The certificate id when certctl placed the order; DigiCert also takes the serial.
        let target = request
            .order
            .as_ref()
            .and_then(|o| o.state["certificate_id"].as_u64())
            .map(|id| id.to_string())
            .unwrap_or_else(|| request.serial_hex.clone());
        let reason = match request.reason {
            1 => "key_compromise",
            3 => "affiliation_changed",
            4 => "superseded",
            5 => "cessation_of_operation",
            _ => "unspecified",
        };
        let body = json!({"skip_approval": true, "comments": "revoked by certctl", "revocation_reason": reason});
        self.http
            .send("revoke", self.send_json(reqwest::Method::PUT, &format!("/certificate/{target}/revoke"), &body))
            .await?;
        Ok(())
    }

    async fn test(self: Arc<Self>) -> Vec<Check> {
        match self.http.json::<Value>("user_me", self.get("/user/me")).await {
            Ok(user) => {
                let who = user["username"].as_str().or(user["email"].as_str()).unwrap_or("the key's user");
                vec![Check::passed("credentials", format!("{} accepts the API key ({who})", self.base_url))]
            }
            Err(e) => vec![Check::failed("credentials", e.message)],
        }
    }
}

impl RemoteIssuer for DigicertIssuer {
    fn issuer_type(&self) -> &'static str {
        "digicert"
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
