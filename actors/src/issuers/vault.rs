//! HashiCorp Vault PKI (`X-Vault-Token`): the CSR is signed at once by
//! `POST /v1/{mount}/sign/{role}`, so the order is issued at its submission. A renewable token is
//! renewed (`auth/token/renew-self`) once half its lifetime has passed, checked before each
//! signing; a token that cannot be renewed is used until it expires, and then the CA's 403 says
//! so. Vault's revocation takes no reason (its CRL entries carry none).
//!
//! Config: `addr` (required, the Vault URL), `token` (required), `mount` (`pki`), `role`
//! (required), `ttl` (`8760h`, never longer than the profile allows), `namespace`, `tls_ca_file`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde_json::{json, Value};

use super::connectors::{ConfigReader, ConnectorContext};
use super::http::CaHttp;
use super::remote::{Check, OrderRef, OrderRequest, OrderStatus, Placed, Polled, RemoteIssuer, RevokeRequest};
use super::{ErrorClass, IssueFailure};
use crate::metrics::VAULT_TOKEN_RENEWALS_TOTAL;

pub struct VaultIssuer {
    inner: Arc<Inner>,
}

struct Inner {
    addr: String,
    token: String,
    mount: String,
    role: String,
    ttl: Duration,
    namespace: Option<String>,
    http: CaHttp,
    /// When the token should next be renewed (`None`: not looked up yet; far future: not renewable).
    renew_at: tokio::sync::Mutex<Option<Instant>>,
}

/// `720h`, `30m`, `3600s` or a number of seconds.
fn parse_ttl(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let n: u64 = number.parse().ok()?;
    let seconds = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return None,
    };
    (seconds > 0).then(|| Duration::from_secs(seconds))
}

impl VaultIssuer {
    pub fn new(context: &ConnectorContext, _issuer_id: &str, config: &ConfigReader<'_>) -> Result<Self, IssueFailure> {
        let ttl = match config.text("ttl")? {
            Some(text) => parse_ttl(&text).ok_or_else(|| config.error("ttl must be a duration such as 720h"))?,
            None => Duration::from_secs(8760 * 3600),
        };
        Ok(VaultIssuer {
            inner: Arc::new(Inner {
                addr: config.url("addr", None)?,
                token: config.required("token", "a Vault token allowed to sign with the role")?,
                mount: config.text("mount")?.unwrap_or_else(|| "pki".into()).trim_matches('/').to_owned(),
                role: config.required("role", "the PKI role that signs")?,
                ttl,
                namespace: config.text("namespace")?,
                http: config.http(context.http)?,
                renew_at: tokio::sync::Mutex::new(None),
            }),
        })
    }
}

impl Inner {
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut request =
            self.http.client().request(method, format!("{}/v1/{path}", self.addr)).header("X-Vault-Token", &self.token);
        if let Some(namespace) = &self.namespace {
            request = request.header("X-Vault-Namespace", namespace);
        }
        request
    }

    /// Renews the token when half its lifetime has passed (looked up the first time).
    async fn keep_token_fresh(&self) -> Result<(), IssueFailure> {
        let mut renew_at = self.renew_at.lock().await;
        if renew_at.is_some_and(|at| Instant::now() < at) {
            return Ok(());
        }
        let looked_up: Value =
            self.http.json("token_lookup", self.request(reqwest::Method::GET, "auth/token/lookup-self")).await?;
        let data = &looked_up["data"];
        let ttl = data["ttl"].as_u64().unwrap_or(0);
        let creation_ttl = data["creation_ttl"].as_u64().unwrap_or(ttl);
        let renewable = data["renewable"].as_bool().unwrap_or(false);
        if !renewable || ttl == 0 {
            // A token without expiry (ttl 0) needs nothing; one that cannot be renewed is used
            // until Vault refuses it. Either is looked at again in an hour.
            if ttl > 0 {
                metrics::counter!(VAULT_TOKEN_RENEWALS_TOTAL, "result" => "not_renewable").increment(1);
            }
            *renew_at = Some(Instant::now() + Duration::from_secs(3600));
            return Ok(());
        }
        if ttl * 2 > creation_ttl {
            *renew_at = Some(Instant::now() + Duration::from_secs(ttl - creation_ttl / 2));
            return Ok(());
        }
        let renewed: Result<Value, IssueFailure> = self
            .http
            .json("token_renew", self.request(reqwest::Method::POST, "auth/token/renew-self").json(&json!({})))
            .await;
        match renewed {
            Ok(answer) => {
                metrics::counter!(VAULT_TOKEN_RENEWALS_TOTAL, "result" => "success").increment(1);
                let lease = answer["auth"]["lease_duration"].as_u64().unwrap_or(creation_ttl).max(2);
                *renew_at = Some(Instant::now() + Duration::from_secs(lease / 2));
                Ok(())
            }
            Err(e) => {
                metrics::counter!(VAULT_TOKEN_RENEWALS_TOTAL, "result" => "failure").increment(1);
                tracing::warn!(error = %e.message, "renewing the Vault token failed; it is used as it is");
                Ok(())
            }
        }
    }

    async fn submit(self: Arc<Self>, request: OrderRequest) -> Result<Placed, IssueFailure> {
        self.keep_token_fresh().await.map_err(IssueFailure::unsent)?;
        let (ips, names): (Vec<&String>, Vec<&String>) =
            request.sans.iter().partition(|n| n.parse::<std::net::IpAddr>().is_ok());
        let ttl = request.max_lifetime().map_or(self.ttl, |max| max.min(self.ttl));
        let body = json!({
            "csr": request.csr_pem,
            "common_name": request.common_name,
            "alt_names": names.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(","),
            "ip_sans": ips.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(","),
            "ttl": format!("{}s", ttl.as_secs()),
            "format": "pem",
        });
        let path = format!("{}/sign/{}", self.mount, self.role);
        let answer: Value = self.http.json("sign", self.request(reqwest::Method::POST, &path).json(&body)).await?;
        let data = &answer["data"];
        let certificate = data["certificate"]
            .as_str()
            .ok_or_else(|| IssueFailure::new(ErrorClass::Upstream5xx, "sign: Vault's answer has no certificate"))?;
        let mut chain_pem = format!("{}\n", certificate.trim());
        match data["ca_chain"].as_array().filter(|c| !c.is_empty()) {
            Some(cas) => {
                cas.iter().filter_map(Value::as_str).for_each(|ca| chain_pem.push_str(&format!("{}\n", ca.trim())))
            }
            None => {
                if let Some(issuing) = data["issuing_ca"].as_str() {
                    chain_pem.push_str(&format!("{}\n", issuing.trim()));
                }
            }
        }
        let serial = data["serial_number"].as_str().unwrap_or_default().to_owned();
        Ok(Placed {
            order: OrderRef { external_id: serial.clone(), state: json!({"serial_number": serial}) },
            status: OrderStatus::Issued { chain_pem, renewal_window: None },
        })
    }

    async fn revoke(self: Arc<Self>, request: RevokeRequest) -> Result<(), IssueFailure> {
        // Vault names serials as colon-separated hex pairs.
        let hex = request.serial_hex.to_ascii_lowercase();
        let hex = if hex.len() % 2 == 1 { format!("0{hex}") } else { hex };
        let serial: Vec<&str> = (0..hex.len()).step_by(2).map(|i| &hex[i..i + 2]).collect();
        let body = json!({"serial_number": serial.join(":")});
        self.http
            .send("revoke", self.request(reqwest::Method::POST, &format!("{}/revoke", self.mount)).json(&body))
            .await?;
        Ok(())
    }

    async fn ca_chain(self: Arc<Self>) -> Result<String, IssueFailure> {
        let response =
            self.http.send("ca_chain", self.request(reqwest::Method::GET, &format!("{}/ca_chain", self.mount))).await?;
        response.text().await.map_err(|e| super::http::transport_failure("ca_chain", &e))
    }

    async fn test(self: Arc<Self>) -> Vec<Check> {
        let mut checks = Vec::new();
        let health = self.http.client().get(format!("{}/v1/sys/health", self.addr)).query(&[("standbyok", "true")]);
        match self.http.json::<Value>("health", health).await {
            Ok(h) if h["sealed"] == false => checks
                .push(Check::passed("health", format!("Vault {} is unsealed", h["version"].as_str().unwrap_or("")))),
            Ok(_) => checks.push(Check::failed("health", "Vault is sealed")),
            Err(e) => {
                checks.push(Check::failed("health", e.message));
                return checks;
            }
        }
        match self
            .http
            .json::<Value>("token_lookup", self.request(reqwest::Method::GET, "auth/token/lookup-self"))
            .await
        {
            Ok(t) => checks.push(Check::passed(
                "token",
                format!("the token is valid (ttl {}s, renewable: {})", t["data"]["ttl"], t["data"]["renewable"]),
            )),
            Err(e) => checks.push(Check::failed("token", e.message)),
        }
        let role = format!("{}/roles/{}", self.mount, self.role);
        match self.http.send("role", self.request(reqwest::Method::GET, &role)).await {
            Ok(_) => checks.push(Check::passed("role", format!("role {} exists on mount {}", self.role, self.mount))),
            Err(e) => checks.push(Check::failed("role", e.message)),
        }
        checks
    }
}

impl RemoteIssuer for VaultIssuer {
    fn issuer_type(&self) -> &'static str {
        "vault"
    }

    fn submit(&self, request: OrderRequest) -> BoxFuture<'static, Result<Placed, IssueFailure>> {
        self.inner.clone().submit(request).boxed()
    }

    fn poll(&self, _order: OrderRef, _request: OrderRequest) -> BoxFuture<'static, Result<Polled, IssueFailure>> {
        // Signing is synchronous: an order is never left pending at Vault.
        async { Err(IssueFailure::new(ErrorClass::Internal, "Vault orders are issued when they are placed")) }.boxed()
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
    fn ttls_read_like_vaults() {
        assert_eq!(parse_ttl("720h"), Some(Duration::from_secs(720 * 3600)));
        assert_eq!(parse_ttl("30m"), Some(Duration::from_secs(1800)));
        assert_eq!(parse_ttl("3600"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_ttl("3600s"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_ttl("2w"), None);
        assert_eq!(parse_ttl("0"), None);
    }
}
