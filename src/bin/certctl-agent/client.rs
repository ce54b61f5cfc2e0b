//! The agent's side of the API: one HTTPS client (the server's CA pinned when a bundle is given),
//! typed calls for each agent endpoint, and errors sorted by what the agent should do about them.

use std::time::Duration;

use anyhow::Context as _;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::config::Common;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// 410: the agent was retired. The agent stops.
    #[error("the server says this agent is retired: {0}")]
    Gone(String),
    /// 429 / 503: the server asks to come back later (after `Retry-After` when given).
    #[error("the server is busy: {1}")]
    Busy(Option<Duration>, String),
    /// Any other refusal, with the problem's detail.
    #[error("HTTP {0}: {1}")]
    Refused(u16, String),
    /// No answer: connection, TLS, timeout.
    #[error("cannot reach the server: {0}")]
    Transport(String),
}

impl CallError {
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            CallError::Busy(wait, _) => *wait,
            _ => None,
        }
    }
}

/// The server's answers the agent reads: the engine's own types, so both ends agree on the fields.
pub use certctl_actors::queries::agent_work::{IssuedChain, WorkItem};

/// The server, as one agent (or, for registration, the bootstrap token) talks to it.
pub struct Server {
    http: reqwest::Client,
    base: String,
    key: String,
    agent_id: String,
}

impl Server {
    pub fn new(common: &Common, key: String, agent_id: String) -> anyhow::Result<Server> {
        let base = common.server_url.trim_end_matches('/').to_string();
        if !base.starts_with("https://") {
            anyhow::bail!(
                "CERTCTL_SERVER_URL must be an https:// URL (got {base}): the agent sends its key and keys' CSRs"
            );
        }
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("certctl-agent/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &common.ca_bundle {
            let pem = std::fs::read(path)
                .with_context(|| format!("cannot read CERTCTL_SERVER_CA_BUNDLE_PATH={}", path.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).with_context(|| {
                format!("CERTCTL_SERVER_CA_BUNDLE_PATH={} is not a PEM certificate bundle", path.display())
            })?;
            if certs.is_empty() {
                anyhow::bail!("CERTCTL_SERVER_CA_BUNDLE_PATH={} holds no certificate", path.display());
            }
            builder = builder.tls_certs_only(certs);
        }
        let http = builder.build().context("building the HTTPS client")?;
        Ok(Server { http, base, key, agent_id })
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.key)
    }

    fn agent_path(&self, rest: &str) -> String {
        format!("/api/v1/agents/{}{rest}", self.agent_id)
    }

    async fn send(request: RequestBuilder) -> Result<reqwest::Response, CallError> {
        let response = request.send().await.map_err(|e| CallError::Transport(error_chain(&e)))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let detail = body.get("detail").and_then(Value::as_str).unwrap_or("no detail").to_string();
        Err(match status {
            StatusCode::GONE => CallError::Gone(detail),
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => CallError::Busy(retry_after, detail),
            other => CallError::Refused(other.as_u16(), detail),
        })
    }

    /// `POST /api/v1/agents` with the bootstrap token: the new agent's id and key.
    pub async fn register(&self, name: &str, host: &Value) -> Result<(String, String), CallError> {
        let mut body = host.clone();
        body["name"] = json!(name);
        let created: Value = Self::send(self.request(Method::POST, "/api/v1/agents").json(&body))
            .await?
            .json()
            .await
            .map_err(|e| CallError::Transport(e.to_string()))?;
        let field = |name: &str| created.get(name).and_then(Value::as_str).map(str::to_owned);
        match (field("id"), field("api_key")) {
            (Some(id), Some(key)) => Ok((id, key)),
            _ => Err(CallError::Refused(201, "the registration answer has no id or api_key".into())),
        }
    }

    pub async fn heartbeat(&self, host: &Value) -> Result<(), CallError> {
        Self::send(self.request(Method::POST, &self.agent_path("/heartbeat")).json(host)).await.map(drop)
    }

    pub async fn work(&self) -> Result<Vec<WorkItem>, CallError> {
        #[derive(Deserialize)]
        struct Work {
            jobs: Vec<WorkItem>,
        }
        let response = Self::send(self.request(Method::GET, &self.agent_path("/work"))).await?;
        let work: Work = response.json().await.map_err(|e| CallError::Transport(format!("reading work: {e}")))?;
        Ok(work.jobs)
    }

    pub async fn submit_csr(&self, certificate_id: &str, job_id: &str, csr_pem: &str) -> Result<(), CallError> {
        let body = json!({ "certificate_id": certificate_id, "job_id": job_id, "csr_pem": csr_pem });
        Self::send(self.request(Method::POST, &self.agent_path("/csr")).json(&body)).await.map(drop)
    }

    pub async fn certificate(&self, certificate_id: &str, version_id: Option<&str>) -> Result<IssuedChain, CallError> {
        // Ids are letters, digits and `.-_:` (the server refuses others), safe in a query as they are.
        let query = version_id.map(|v| format!("?version_id={v}")).unwrap_or_default();
        let request = self.request(Method::GET, &self.agent_path(&format!("/certificates/{certificate_id}{query}")));
        Self::send(request).await?.json().await.map_err(|e| CallError::Transport(format!("reading the chain: {e}")))
    }

    pub async fn report(
        &self,
        job_id: &str,
        completed: bool,
        error: &str,
        fingerprint: Option<&str>,
    ) -> Result<(), CallError> {
        let body = json!({
            "status": if completed { "Completed" } else { "Failed" },
            "error": error,
            "fingerprint": fingerprint,
        });
        let path = self.agent_path(&format!("/jobs/{job_id}/status"));
        Self::send(self.request(Method::POST, &path).json(&body)).await.map(drop)
    }

    pub async fn discoveries(&self, report: &Value) -> Result<Value, CallError> {
        Self::send(self.request(Method::POST, &self.agent_path("/discoveries")).json(report))
            .await?
            .json()
            .await
            .map_err(|e| CallError::Transport(e.to_string()))
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
