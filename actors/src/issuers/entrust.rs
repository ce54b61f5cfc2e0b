//! Entrust CA Gateway (the REST API in front of Entrust's CAs: PKIaaS, Security Manager, ECS):
//! mutual TLS only, no auth header. An enrollment (`POST
//! /v1/certificate-authorities/{caId}/enrollments`, the CSR as base64 DER, `requiredFormat`
//! X509) answers the certificate at once when the profile needs no approval. When it does, the
//! answer has no certificate yet, and the gateway documents no endpoint that reads an enrollment
//! back: certctl then follows the CA's certificate events (`GET …/certificate-events`, from the
//! submission on) for a certificate carrying the CSR's key, and reads it by serial from there
//! (`GET …/certificates/{serial}`). The same search finds an enrollment placed before a crash.
//! Revocation is a `RevokeAction` on the certificate; the chain comes from the CA resource.
//!
//! Config: `api_url` (with the gateway's context path, e.g.
//! `https://cagw.pkiaas.entrust.com/cagw`), `ca_id`, `profile_id`, `client_cert_path`,
//! `client_key_path` (all required), `tls_ca_file`, `poll_max_wait_seconds`.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde_json::{json, Value};

use super::connectors::{ConfigReader, ConnectorContext};
use super::http::CaHttp;
use super::remote::{Check, OrderRef, OrderRequest, OrderStatus, Placed, Polled, RemoteIssuer, RevokeRequest};
use super::{ErrorClass, IssueFailure};

/// Certificate-event pages read per search (the gateway pages them by 50 or so).
const EVENT_PAGES: usize = 20;
/// How far back a search for an order placed before a crash looks.
const RECOVERY_WINDOW: chrono::Duration = chrono::Duration::days(1);

pub struct EntrustIssuer {
    inner: Arc<Inner>,
}

struct Inner {
    /// `{api_url}/v1/certificate-authorities/{ca_id}`, the root of every call.
    ca_url: String,
    profile_id: String,
    http: CaHttp,
}

impl EntrustIssuer {
    pub fn new(context: &ConnectorContext, _issuer_id: &str, config: &ConfigReader<'_>) -> Result<Self, IssueFailure> {
        if config.text("client_cert_path")?.is_none() && config.text("client_cert_pem")?.is_none() {
            return Err(config.error("client_cert_path and client_key_path are required (CA Gateway uses mutual TLS)"));
        }
        let api_url = config.url("api_url", None)?;
        let ca_id = config.required("ca_id", "the CA's id in CA Gateway")?;
        Ok(EntrustIssuer {
            inner: Arc::new(Inner {
                ca_url: format!("{api_url}/v1/certificate-authorities/{}", path_segment(&ca_id)),
                profile_id: config.required("profile_id", "the enrollment profile's id")?,
                http: config.http(context.http)?,
            }),
        })
    }
}

/// `id` as one URL path segment (PKIaaS CA ids hold `~`, which stays as it is).
fn path_segment(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Base64 DER (how the gateway answers certificates) as a PEM block.
fn pem_of(base64_der: &str) -> Option<String> {
    let compact: String = base64_der.chars().filter(|c| !c.is_whitespace()).collect();
    let der = STANDARD.decode(compact).ok()?;
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap_or_default()).collect();
    Some(format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", lines.join("\n")))
}

/// The public key (SubjectPublicKeyInfo, DER) of a base64 DER certificate.
fn public_key_of(base64_der: &str) -> Option<Vec<u8>> {
    let compact: String = base64_der.chars().filter(|c| !c.is_whitespace()).collect();
    let der = STANDARD.decode(compact).ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).ok()?;
    Some(cert.public_key().raw.to_vec())
}

/// The certificate data of an event, a chain item or a certificate resource: base64 DER, given
/// as a string or as `{certificateData}`.
fn certificate_data(value: &Value) -> Option<&str> {
    value.as_str().or_else(|| value["certificateData"].as_str()).filter(|s| !s.trim().is_empty())
}

/// What a search of the certificate events found.
enum Search {
    /// The serial of the certificate with the CSR's key.
    Found(String),
    /// Nothing yet; the newest event date read, where the next search may start.
    NotYet { latest: Option<chrono::DateTime<chrono::FixedOffset>> },
}

/// RFC 5280 reason codes as the gateway's `RevokeAction` reasons.
fn revoke_reason(code: u8) -> &'static str {
    match code {
        1 => "keyCompromise",
        2 => "caCompromise",
        3 => "affiliationChanged",
        4 => "superseded",
        5 => "cessationOfOperation",
        9 => "privilegeWithdrawn",
        _ => "unspecified",
    }
}

impl Inner {
    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.client().get(format!("{}{path}", self.ca_url)).header(reqwest::header::ACCEPT, "application/json")
    }

    async fn submit(self: Arc<Self>, request: OrderRequest) -> Result<Placed, IssueFailure> {
        let sans: Vec<Value> = request
            .sans
            .iter()
            .map(|name| {
                let kind = if name.parse::<std::net::IpAddr>().is_ok() { "iPAddress" } else { "dNSName" };
                json!({"type": kind, "value": name})
            })
            .collect();
        let mut body = json!({
            "profileId": self.profile_id,
            "requiredFormat": {"format": "X509"},
            "csr": STANDARD.encode(request.csr_der()?),
            "subjectVariables": [{"type": "cn", "value": request.common_name}],
            "subjectAltNames": sans,
            "includeCa": true,
        });
        if let Some(secs) = request.max_lifetime_secs {
            body["optionalCertificateRequestDetails"] = json!({"validityPeriod": format!("PT{secs}S")});
        }
        let submitted_at = chrono::Utc::now() - chrono::Duration::minutes(5);
        let url = format!("{}/enrollments", self.ca_url);
        let answer: Value = self.http.json("enrollment", self.http.client().post(url).json(&body)).await?;
        let enrollment = &answer["enrollment"];
        let status = enrollment["status"].as_str().unwrap_or("").to_owned();
        let serial = enrollment["serialNumber"].as_str().unwrap_or("").to_owned();
        let id = enrollment["id"].as_str().map(str::to_owned).filter(|s| !s.is_empty());
        let state = json!({
            "enrollment_id": id,
            "serial": (!serial.is_empty()).then_some(&serial),
            // Events are searched from a little before the submission (the CA's clock may lag).
            "since": submitted_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        });
        let external_id =
            id.clone().or_else(|| (!serial.is_empty()).then(|| serial.clone())).unwrap_or(request.order_id);
        let order = OrderRef { external_id, state };
        if matches!(status.to_ascii_uppercase().as_str(), "REJECTED" | "DENIED" | "FAILED") {
            let said = answer["message"]["message"].as_str().unwrap_or("");
            return Ok(Placed {
                order,
                status: OrderStatus::Rejected { reason: format!("Entrust says {status}: {said}") },
            });
        }
        let status = match enrollment["body"].as_str().filter(|b| !b.trim().is_empty()) {
            Some(body) => {
                let leaf = pem_of(body).ok_or_else(|| {
                    IssueFailure::new(ErrorClass::Upstream5xx, "enrollment: the certificate is not base64 DER")
                })?;
                let inline: Vec<String> = enrollment["chain"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(certificate_data)
                    .filter_map(pem_of)
                    .collect();
                self.issued(leaf, inline).await?
            }
            None => OrderStatus::Pending {
                retry_after: None,
                detail: format!("Entrust accepted the enrollment ({status}); the certificate is not issued yet"),
            },
        };
        Ok(Placed { order, status })
    }

    /// The leaf and its CA chain (the enrollment's own, or the CA resource's).
    async fn issued(&self, leaf: String, inline_chain: Vec<String>) -> Result<OrderStatus, IssueFailure> {
        let chain = if inline_chain.is_empty() { self.chain().await? } else { inline_chain };
        let chain_pem = std::iter::once(leaf).chain(chain).collect();
        Ok(OrderStatus::Issued { chain_pem, renewal_window: None })
    }

    async fn poll(self: Arc<Self>, order: OrderRef, request: OrderRequest) -> Result<Polled, IssueFailure> {
        if let Some(serial) = order.state["serial"].as_str() {
            return self.read_certificate(serial).await.map(Polled::status);
        }
        let csr = crate::crypto::csr::verify_csr(&request.csr_pem)
            .map_err(|e| IssueFailure::new(ErrorClass::Internal, format!("the order's CSR: {e}")))?;
        let since = order.state["since"].as_str().unwrap_or_default().to_owned();
        let mut state = order.state.clone();
        match self.find_by_key(&since, &csr.spki_der).await? {
            Search::Found(serial) => {
                let status = self.read_certificate(&serial).await?;
                state["serial"] = json!(serial);
                Ok(Polled { status, state: Some(state) })
            }
            Search::NotYet { latest } => {
                // The next search starts near the newest event read (less the same margin), so a
                // busy CA's events are not read again from the submission on at every poll.
                let moved = latest
                    .map(|at| at - chrono::Duration::minutes(5))
                    .filter(|at| chrono::DateTime::parse_from_rfc3339(&since).map_or(true, |since| *at > since));
                if let Some(at) = moved {
                    state["since"] = json!(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
                }
                Ok(Polled {
                    status: OrderStatus::Pending {
                        retry_after: None,
                        detail:
                            "no certificate for the CSR's key among Entrust's certificate events yet (approval pending)"
                                .into(),
                    },
                    state: moved.map(|_| state),
                })
            }
        }
    }

    /// A certificate by serial: issued (with its chain), revoked (the order failed), or not
    /// there yet.
    async fn read_certificate(&self, serial: &str) -> Result<OrderStatus, IssueFailure> {
        let request = self.get(&format!("/certificates/{}", path_segment(serial)));
        let response = self
            .http
            .exchange("certificate", request.build().map_err(|e| super::http::transport_failure("certificate", &e))?)
            .await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(OrderStatus::Pending {
                retry_after: None,
                detail: format!("Entrust has no certificate {serial} yet"),
            });
        }
        if !response.status().is_success() {
            return Err(super::http::answer_failure("certificate", response).await);
        }
        let body: Value = response.json().await.map_err(|e| super::http::transport_failure("certificate", &e))?;
        let certificate = &body["certificate"];
        match certificate["status"].as_str().map(str::to_ascii_lowercase).as_deref() {
            Some("revoked") | Some("held") | Some("suspended") => {
                return Ok(OrderStatus::Rejected {
                    reason: format!("Entrust certificate {serial} is {}", certificate["status"].as_str().unwrap_or("")),
                })
            }
            _ => {}
        }
        let leaf = certificate_data(certificate).and_then(pem_of).ok_or_else(|| {
            IssueFailure::new(
                ErrorClass::Upstream5xx,
                format!("certificate: Entrust answered no certificate data for {serial}"),
            )
        })?;
        let inline: Vec<String> =
            body["chain"].as_array().into_iter().flatten().filter_map(certificate_data).filter_map(pem_of).collect();
        self.issued(leaf, inline).await
    }

    /// The serial of a certificate with public key `spki` among the CA's certificate events since
    /// `since` (RFC 3339), newest pages last.
    async fn find_by_key(&self, since: &str, spki: &[u8]) -> Result<Search, IssueFailure> {
        let mut next_page: Option<String> = None;
        let mut latest: Option<chrono::DateTime<chrono::FixedOffset>> = None;
        for _ in 0..EVENT_PAGES {
            let mut request =
                self.get("/certificate-events").query(&[("startDate", since), ("preferredPageSize", "50")]);
            if let Some(page) = &next_page {
                request = request.query(&[("nextPageIndex", page.as_str())]);
            }
            let page: Value = self.http.json("certificate_events", request).await?;
            for event in page["events"].as_array().into_iter().flatten() {
                let at = event["eventDate"].as_str().and_then(|d| chrono::DateTime::parse_from_rfc3339(d).ok());
                latest = latest.max(at);
                if event["action"].as_str().is_some_and(|a| a.eq_ignore_ascii_case("revoked")) {
                    continue;
                }
                let matches =
                    certificate_data(&event["certificate"]).and_then(public_key_of).is_some_and(|k| k == spki);
                if let (true, Some(serial)) = (matches, event["serialNumber"].as_str()) {
                    return Ok(Search::Found(serial.to_owned()));
                }
            }
            let more = page["morePages"].as_bool().unwrap_or(false);
            next_page = match &page["nextPageIndex"] {
                Value::String(s) if more && !s.is_empty() => Some(s.clone()),
                Value::Number(n) if more => Some(n.to_string()),
                _ => None,
            };
            if next_page.is_none() {
                break;
            }
        }
        Ok(Search::NotYet { latest })
    }

    async fn recover(self: Arc<Self>, request: OrderRequest) -> Result<Option<Placed>, IssueFailure> {
        let csr = crate::crypto::csr::verify_csr(&request.csr_pem)
            .map_err(|e| IssueFailure::new(ErrorClass::Internal, format!("the order's CSR: {e}")))?;
        let since = (chrono::Utc::now() - RECOVERY_WINDOW).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let Search::Found(serial) = self.find_by_key(&since, &csr.spki_der).await? else { return Ok(None) };
        Ok(Some(Placed {
            order: OrderRef { external_id: serial.clone(), state: json!({"serial": serial, "since": since}) },
            status: OrderStatus::Pending { retry_after: Some(Duration::ZERO), detail: "found again".into() },
        }))
    }

    async fn revoke(self: Arc<Self>, request: RevokeRequest) -> Result<(), IssueFailure> {
        let serial = request
            .order
            .as_ref()
            .and_then(|o| o.state["serial"].as_str().map(str::to_owned))
            .unwrap_or(request.serial_hex);
        let url = format!("{}/certificates/{}/actions", self.ca_url, path_segment(&serial));
        let body = json!({"action": {"type": "RevokeAction", "reason": revoke_reason(request.reason),
                                     "comment": "revoked through certctl"}});
        let answer: Value = self.http.json("revoke", self.http.client().post(url).json(&body)).await?;
        match answer["action"]["status"].as_str() {
            Some(status) if status.eq_ignore_ascii_case("REJECTED") => Err(IssueFailure::new(
                ErrorClass::Upstream4xx,
                format!("revoke: Entrust rejected the revocation of {serial}: {}", answer["action"]),
            )),
            _ => Ok(()),
        }
    }

    /// The CA's certificate and the ones above it, issuing CA first.
    async fn chain(&self) -> Result<Vec<String>, IssueFailure> {
        let request = self.get("").query(&[("$fields", "ca.certificate,ca.chain")]);
        let answer: Value = self.http.json("ca", request).await?;
        let ca = &answer["ca"];
        let chain: Vec<String> = certificate_data(&ca["certificate"])
            .into_iter()
            .chain(ca["chain"].as_array().into_iter().flatten().filter_map(certificate_data))
            .filter_map(pem_of)
            .collect();
        if chain.is_empty() {
            return Err(IssueFailure::new(ErrorClass::Upstream5xx, "ca: Entrust answered no CA certificate"));
        }
        Ok(chain)
    }

    async fn ca_chain(self: Arc<Self>) -> Result<String, IssueFailure> {
        Ok(self.chain().await?.concat())
    }

    async fn test(self: Arc<Self>) -> Vec<Check> {
        let mut checks = Vec::new();
        match self.http.json::<Value>("ca_status", self.get("/status")).await {
            Ok(answer) => {
                let status = answer["status"].as_str().unwrap_or("");
                checks.push(if status.eq_ignore_ascii_case("UP") {
                    Check::passed("ca", "CA Gateway accepts the client certificate; the CA is UP")
                } else {
                    Check::failed("ca", format!("CA Gateway accepts the client certificate; the CA is {status:?}"))
                });
            }
            Err(e) => return vec![Check::failed("ca", e.message)],
        }
        let profile = self.get(&format!("/profiles/{}", path_segment(&self.profile_id)));
        checks.push(match self.http.json::<Value>("profile", profile).await {
            Ok(_) => Check::passed("profile", format!("profile {} exists", self.profile_id)),
            Err(e) => Check::failed("profile", e.message),
        });
        checks
    }
}

impl RemoteIssuer for EntrustIssuer {
    fn issuer_type(&self) -> &'static str {
        "entrust"
    }

    fn submit(&self, request: OrderRequest) -> BoxFuture<'static, Result<Placed, IssueFailure>> {
        self.inner.clone().submit(request).boxed()
    }

    fn poll(&self, order: OrderRef, request: OrderRequest) -> BoxFuture<'static, Result<Polled, IssueFailure>> {
        self.inner.clone().poll(order, request).boxed()
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
    fn ids_are_one_path_segment() {
        assert_eq!(path_segment("ecsmcn158emsuw~1sw46hf1g0wrdc"), "ecsmcn158emsuw~1sw46hf1g0wrdc");
        assert_eq!(path_segment("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn base64_der_becomes_pem_and_garbage_does_not() {
        let pem = pem_of("MAMCAQE=").unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\nMAMCAQE=\n"), "{pem}");
        assert_eq!(pem_of("not base64!"), None);
    }

    #[test]
    fn certificate_data_is_a_string_or_an_object() {
        assert_eq!(certificate_data(&json!("MAMC")), Some("MAMC"));
        assert_eq!(certificate_data(&json!({"certificateData": "MAMC"})), Some("MAMC"));
        assert_eq!(certificate_data(&json!({"certificateData": ""})), None);
    }
}
