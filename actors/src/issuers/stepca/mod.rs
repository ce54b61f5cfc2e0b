//! step-ca through a JWK provisioner: each request carries a one-time token (a JWT signed with
//! the provisioner's private key, `aud` the CA's sign or revoke URL) and the CA signs at once
//! (`POST /1.0/sign`, 201 with the chain). Revocation is passive (`POST /1.0/revoke`, the token's
//! subject the decimal serial). There is no lookup by certctl's reference, so an order found
//! `submitting` after a crash fails rather than risk a second certificate (as with Vault).
//!
//! The provisioner key is the encrypted JWK `step` writes (`provisioner_key_path`, or inline
//! in `provisioner_jwk`, opened with `provisioner_password`), a plain private JWK, or, with
//! neither, the `encryptedKey` the CA publishes for the provisioner (`GET /provisioners`), as
//! `step ca token` does. It is opened once, on first use, on a blocking thread.
//!
//! Config: `ca_url`, `provisioner_name`, `provisioner_password` (required unless the key is a
//! plain JWK), `provisioner_key_path` / `provisioner_jwk`, `root_cert_path` (the CA's root:
//! trusted for its TLS, and its fingerprint goes into tokens as `step` puts it there),
//! `tls_ca_file`, `validity_days`.

mod jose;

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use super::connectors::{ConfigReader, ConnectorContext};
use super::http::CaHttp;
use super::remote::{Check, OrderRef, OrderRequest, OrderStatus, Placed, Polled, RemoteIssuer, RevokeRequest};
use super::{ErrorClass, IssueFailure};
use jose::ProvisionerKey;

/// How long a token is valid (step's default).
const TOKEN_LIFETIME: i64 = 5 * 60;
/// step-ca's default longest TLS certificate: a profile asking for less is asked for
/// explicitly, a longer one is left to the provisioner's own default.
const STEP_DEFAULT_MAX: Duration = Duration::from_secs(24 * 3600);

pub struct StepcaIssuer {
    inner: Arc<Inner>,
}

struct Inner {
    ca_url: String,
    /// `https://host[:port]`: what token audiences are built on (step-ca matches them by host).
    audience_base: String,
    provisioner: String,
    password: Option<String>,
    /// The key as configured (JWE or JWK text), `None` to fetch it from the CA.
    key_text: Option<String>,
    /// The opened key, once.
    key: OnceCell<Arc<ProvisionerKey>>,
    /// Hex SHA-256 of the root's DER (the token's `sha` claim), when the root is configured.
    root_fingerprint: Option<String>,
    /// The lifetime to ask for (`validity_days`).
    validity: Option<Duration>,
    http: CaHttp,
}

impl StepcaIssuer {
    pub fn new(context: &ConnectorContext, issuer_id: &str, config: &ConfigReader<'_>) -> Result<Self, IssueFailure> {
        let ca_url = config.url("ca_url", None)?;
        let parsed = reqwest::Url::parse(&ca_url).map_err(|e| config.error(format!("ca_url: {e}")))?;
        let audience_base = parsed.origin().ascii_serialization();
        let root_pem = config.pem("root_cert_pem", &["root_cert_path", "root_cert"])?;
        let root_fingerprint = match &root_pem {
            Some(pem) => Some(fingerprint(pem).ok_or_else(|| config.error("root_cert_path holds no PEM certificate"))?),
            None => None,
        };
        let mut tls = config.tls()?;
        tls.extra_roots_pem = match (tls.extra_roots_pem.take(), root_pem) {
            (Some(extra), Some(root)) => Some(format!("{extra}\n{root}")),
            (extra, root) => extra.or(root),
        };
        let key_text = match config.text("provisioner_jwk")? {
            Some(inline) => Some(inline),
            None => config.pem("provisioner_key_pem", &["provisioner_key_path"])?,
        };
        let http = CaHttp::new(issuer_id, &tls, context.http).map_err(|e| config.error(e))?;
        Ok(StepcaIssuer {
            inner: Arc::new(Inner {
                ca_url,
                audience_base,
                provisioner: config.required("provisioner_name", "the JWK provisioner's name")?,
                password: config.untrimmed("provisioner_password")?,
                key_text,
                key: OnceCell::new(),
                root_fingerprint,
                validity: config.number("validity_days")?.filter(|d| *d > 0).map(|d| Duration::from_secs(d * 86_400)),
                http,
            }),
        })
    }
}

/// Hex SHA-256 of the first certificate's DER in `pem`.
fn fingerprint(pem: &str) -> Option<String> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).ok()?;
    Some(Sha256::digest(&block.contents).iter().map(|b| format!("{b:02x}")).collect())
}

/// A certificate's serial in decimal (how step-ca names certificates in revocations), from
/// the first certificate of `chain_pem`, else from its hex serial.
fn decimal_serial(chain_pem: &str, serial_hex: &str) -> Option<String> {
    use x509_parser::num_bigint::BigUint;
    let from_chain = x509_parser::pem::parse_x509_pem(chain_pem.as_bytes())
        .ok()
        .and_then(|(_, block)| block.parse_x509().ok().map(|cert| cert.tbs_certificate.serial.to_string()));
    from_chain.or_else(|| {
        let hex: String = serial_hex.chars().filter(|c| c.is_ascii_hexdigit()).collect();
        BigUint::parse_bytes(hex.as_bytes(), 16).map(|n| n.to_string())
    })
}

impl Inner {
    /// The opened provisioner key (opened once; a failure is retried on the next use).
    async fn key(&self) -> Result<Arc<ProvisionerKey>, IssueFailure> {
        self.key
            .get_or_try_init(|| async {
                let text = match &self.key_text {
                    Some(text) => text.clone(),
                    None => self.published_key().await?,
                };
                let password = self.password.clone();
                let opened = tokio::task::spawn_blocking(move || jose::provisioner_key(&text, password.as_deref()))
                    .await
                    .map_err(|e| {
                        IssueFailure::new(ErrorClass::Internal, format!("opening the provisioner key: {e}"))
                    })?;
                opened.map(Arc::new).map_err(|why| {
                    IssueFailure::new(
                        ErrorClass::Validation,
                        format!("step-ca provisioner {}: {why}", self.provisioner),
                    )
                })
            })
            .await
            .cloned()
    }

    /// The `encryptedKey` the CA lists for the provisioner (`GET /provisioners`, paged).
    async fn published_key(&self) -> Result<String, IssueFailure> {
        let mut cursor = String::new();
        for _ in 0..50 {
            let request = self
                .http
                .client()
                .get(format!("{}/1.0/provisioners", self.ca_url))
                .query(&[("limit", "100"), ("cursor", cursor.as_str())]);
            let page: Value = self.http.json("provisioners", request).await?;
            let found = page["provisioners"].as_array().into_iter().flatten().find(|p| {
                p["name"].as_str() == Some(self.provisioner.as_str())
                    && p["type"].as_str().is_some_and(|t| t.eq_ignore_ascii_case("jwk"))
            });
            if let Some(found) = found {
                return found["encryptedKey"].as_str().map(str::to_owned).ok_or_else(|| {
                    IssueFailure::new(
                        ErrorClass::Validation,
                        format!(
                            "step-ca publishes no encrypted key for provisioner {}; set provisioner_key_path",
                            self.provisioner
                        ),
                    )
                });
            }
            cursor = page["nextCursor"].as_str().unwrap_or_default().to_owned();
            if cursor.is_empty() {
                break;
            }
        }
        Err(IssueFailure::new(
            ErrorClass::Validation,
            format!("step-ca has no JWK provisioner named {}", self.provisioner),
        ))
    }

    /// A one-time token for `path` (`sign` or `revoke`) about `subject`.
    async fn token(&self, path: &str, subject: &str, sans: Option<&[String]>) -> Result<String, IssueFailure> {
        let key = self.key().await?;
        let now = chrono::Utc::now().timestamp();
        let jti: String = (0..32).map(|_| format!("{:02x}", rand_byte())).collect();
        let mut claims = json!({
            "iss": self.provisioner,
            "sub": subject,
            "aud": format!("{}/1.0/{path}", self.audience_base),
            "nbf": now,
            "iat": now,
            "exp": now + TOKEN_LIFETIME,
            "jti": jti,
        });
        if let Some(sans) = sans {
            claims["sans"] = json!(sans);
        }
        if let Some(sha) = &self.root_fingerprint {
            claims["sha"] = json!(sha);
        }
        key.sign(&claims).map_err(|why| IssueFailure::new(ErrorClass::Internal, why))
    }

    /// The lifetime to ask for: `validity_days`, never past the profile's longest; without it,
    /// the profile's longest only when shorter than step-ca's default (a longer one would be
    /// refused by a provisioner left at its defaults).
    fn lifetime(&self, profile_max: Option<Duration>) -> Option<Duration> {
        match (self.validity, profile_max) {
            (Some(wanted), Some(max)) => Some(wanted.min(max)),
            (Some(wanted), None) => Some(wanted),
            (None, Some(max)) if max < STEP_DEFAULT_MAX => Some(max),
            _ => None,
        }
    }

    async fn submit(self: Arc<Self>, request: OrderRequest) -> Result<Placed, IssueFailure> {
        // Nothing has been sent until the token exists.
        let ott = self.token("sign", &request.common_name, Some(&request.sans)).await.map_err(IssueFailure::unsent)?;
        let mut body = json!({"csr": request.csr_pem, "ott": ott});
        if let Some(lifetime) = self.lifetime(request.max_lifetime()) {
            body["notAfter"] = json!(format!("{}s", lifetime.as_secs()));
        }
        let url = format!("{}/1.0/sign", self.ca_url);
        // A refusal (403: names or lifetime outside the provisioner's policy; 401: the token)
        // carries step-ca's own message in the failure.
        let answer: Value = self.http.json("sign", self.http.client().post(url).json(&body)).await?;
        let mut chain: Vec<String> = answer["certChain"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|pem| format!("{}\n", pem.trim()))
            .collect();
        if chain.is_empty() {
            let leaf = answer["crt"]
                .as_str()
                .ok_or_else(|| IssueFailure::new(ErrorClass::Upstream5xx, "sign: step-ca answered no certificate"))?;
            chain.push(format!("{}\n", leaf.trim()));
            chain.extend(answer["ca"].as_str().map(|ca| format!("{}\n", ca.trim())));
        }
        let serial = decimal_serial(&chain[0], "").unwrap_or_default();
        Ok(Placed {
            order: OrderRef { external_id: serial, state: json!({}) },
            status: OrderStatus::Issued { chain_pem: chain.concat(), renewal_window: None },
        })
    }

    async fn revoke(self: Arc<Self>, request: RevokeRequest) -> Result<(), IssueFailure> {
        let serial = decimal_serial(&request.chain_pem, &request.serial_hex).ok_or_else(|| {
            IssueFailure::new(ErrorClass::Internal, format!("serial {} is not a number", request.serial_hex))
        })?;
        let ott = self.token("revoke", &serial, None).await?;
        let body = json!({
            "serial": serial,
            "ott": ott,
            "reasonCode": request.reason,
            "reason": reason_name(request.reason),
            "passive": true,
        });
        let url = format!("{}/1.0/revoke", self.ca_url);
        let response = self.http.send("revoke", self.http.client().post(url).json(&body)).await;
        match response {
            Ok(_) => Ok(()),
            // Revoked already (by an operator at the CA, or an answer that was lost): done.
            Err(e) if e.message.contains("already revoked") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Intermediates (when the CA has any) then roots.
    async fn chain(&self) -> Result<String, IssueFailure> {
        let mut pems = Vec::new();
        let url = format!("{}/1.0/intermediates", self.ca_url);
        let built =
            self.http.client().get(url).build().map_err(|e| super::http::transport_failure("intermediates", &e))?;
        let response = self.http.exchange("intermediates", built).await?;
        if response.status().is_success() {
            let answer: Value =
                response.json().await.map_err(|e| super::http::transport_failure("intermediates", &e))?;
            pems.extend(answer["crts"].as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned));
        } else if !matches!(response.status().as_u16(), 404 | 501) {
            return Err(super::http::answer_failure("intermediates", response).await);
        }
        let roots: Value =
            self.http.json("roots", self.http.client().get(format!("{}/1.0/roots", self.ca_url))).await?;
        pems.extend(roots["crts"].as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned));
        if pems.is_empty() {
            return Err(IssueFailure::new(ErrorClass::Upstream5xx, "roots: step-ca answered no certificate"));
        }
        Ok(pems.iter().map(|p| format!("{}\n", p.trim())).collect())
    }

    async fn test(self: Arc<Self>) -> Vec<Check> {
        let health = self.http.json::<Value>("health", self.http.client().get(format!("{}/health", self.ca_url))).await;
        let mut checks = vec![match health {
            Ok(answer) if answer["status"] == "ok" => Check::passed("health", format!("{} is healthy", self.ca_url)),
            Ok(answer) => Check::failed("health", format!("step-ca says {answer}")),
            Err(e) => return vec![Check::failed("health", e.message)],
        }];
        let key = match self.key().await {
            Ok(key) => key,
            Err(e) => {
                checks.push(Check::failed("provisioner_key", e.message));
                return checks;
            }
        };
        checks.push(Check::passed(
            "provisioner_key",
            format!("the key of provisioner {} opens (kid {})", self.provisioner, key.kid),
        ));
        // The CA must know this key under this name, or every token is refused with a 401.
        let url = format!("{}/1.0/provisioners/{}/encrypted-key", self.ca_url, key.kid);
        let known = self.http.client().get(url).build().map_err(|e| super::http::transport_failure("provisioner", &e));
        let answer = match known {
            Ok(request) => self.http.exchange("provisioner", request).await.map(|r| r.status()),
            Err(e) => Err(e),
        };
        checks.push(match answer {
            Ok(status) if status.is_success() => {
                Check::passed("provisioner", format!("step-ca knows a provisioner with key {}", key.kid))
            }
            // A provisioner created with its key kept elsewhere has no encrypted key to serve.
            Ok(status) if status == reqwest::StatusCode::NOT_FOUND => Check::failed(
                "provisioner",
                format!(
                    "step-ca has no encrypted key for kid {}: the key does not belong to provisioner {}, or the CA keeps none",
                    key.kid, self.provisioner
                ),
            ),
            Ok(status) => Check::failed("provisioner", format!("step-ca answered HTTP {status}")),
            Err(e) => Check::failed("provisioner", e.message),
        });
        checks
    }
}

/// The RFC 5280 name of a reason code (free text to step-ca, kept in its database).
fn reason_name(code: u8) -> &'static str {
    use crate::domain::revocation::RevocationReason;
    RevocationReason::ALL.into_iter().find(|r| r.code() == code).unwrap_or(RevocationReason::Unspecified).as_str()
}

/// One random byte for token ids.
fn rand_byte() -> u8 {
    let mut byte = [0u8; 1];
    // The system RNG does not fail on the platforms aws-lc-rs supports; a zero byte would
    // only make the token id less random, never invalid.
    let _ = aws_lc_rs::rand::fill(&mut byte);
    byte[0]
}

impl RemoteIssuer for StepcaIssuer {
    fn issuer_type(&self) -> &'static str {
        "stepca"
    }

    fn submit(&self, request: OrderRequest) -> BoxFuture<'static, Result<Placed, IssueFailure>> {
        self.inner.clone().submit(request).boxed()
    }

    fn poll(&self, order: OrderRef, _request: OrderRequest) -> BoxFuture<'static, Result<Polled, IssueFailure>> {
        // Never pending: step-ca answers the submission with the certificate or a refusal.
        Box::pin(async move {
            Err(IssueFailure::new(
                ErrorClass::Internal,
                format!("step-ca order {} cannot be polled: step-ca signs at once", order.external_id),
            ))
        })
    }

    fn revoke(&self, request: RevokeRequest) -> BoxFuture<'static, Result<(), IssueFailure>> {
        self.inner.clone().revoke(request).boxed()
    }

    fn ca_chain(&self) -> BoxFuture<'static, Result<String, IssueFailure>> {
        let inner = self.inner.clone();
        async move { inner.chain().await }.boxed()
    }

    fn test(&self) -> BoxFuture<'static, Vec<Check>> {
        self.inner.clone().test().boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_are_decimal() {
        assert_eq!(decimal_serial("", "0a:ff").as_deref(), Some("2815"));
        assert_eq!(decimal_serial("", "1f2e3d4c5b6a79880102030405060708090a0b0c").unwrap().len(), 48);
    }
}
