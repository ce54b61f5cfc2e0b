//! HTTP to remote CAs: one pooled reqwest client per issuer, on rustls with the process's
//! aws-lc-rs provider, trusting the system roots plus the issuer's `tls_ca_file`, presenting a
//! client certificate where the vendor requires mutual TLS, with timeouts. Every request is
//! measured by issuer and endpoint, and every failure classified for the poller: rate limits,
//! server errors, timeouts and broken connections are "ask again later", the rest are answers.

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use reqwest::{RequestBuilder, Response, StatusCode};
use rustls::crypto::aws_lc_rs;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::{ErrorClass, IssueFailure};
use crate::metrics::{CA_REQUEST_DURATION_SECONDS, CA_REQUEST_ERRORS_TOTAL};

/// Timeouts for requests to CAs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpSettings {
    /// Longest a request may take, connection included (`CERTCTL_CA_REQUEST_TIMEOUT`).
    pub timeout: Duration,
    /// Longest the connection may take.
    pub connect_timeout: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings { timeout: Duration::from_secs(30), connect_timeout: Duration::from_secs(10) }
    }
}

/// The TLS side of an issuer's client: extra roots and a client certificate.
#[derive(Clone, Debug, Default)]
pub struct TlsOptions {
    /// PEM certificates trusted for this issuer's API in addition to the system roots.
    pub extra_roots_pem: Option<String>,
    /// Client certificate chain and key, PEM (mutual TLS).
    pub client_identity_pem: Option<(String, String)>,
}

/// The system roots, read once per process (file reads: not on every connector build).
fn system_roots() -> &'static Vec<CertificateDer<'static>> {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| rustls_native_certs::load_native_certs().certs)
}

/// A rustls client configuration for `options`; the error names what is wrong.
pub fn client_tls(options: &TlsOptions) -> Result<ClientConfig, String> {
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(system_roots().iter().cloned());
    if let Some(pem) = &options.extra_roots_pem {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("tls_ca_file is not PEM: {e}"))?;
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err("tls_ca_file holds no usable certificate".into());
        }
    }
    let builder = ClientConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("configuring TLS: {e}"))?
        .with_root_certificates(roots);
    match &options.client_identity_pem {
        None => Ok(builder.with_no_client_auth()),
        Some((cert_pem, key_pem)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|e| format!("the client certificate is not PEM: {e}"))?;
            if chain.is_empty() {
                return Err("the client certificate file holds no certificate".into());
            }
            let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
                .map_err(|e| format!("the client key is not a PEM private key: {e}"))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| format!("the client certificate and key: {e}"))
        }
    }
}

/// Reads a PEM file named in an issuer's config (done while the connector is built, on a
/// blocking thread).
pub fn read_pem_file(field: &str, path: &str) -> Result<String, String> {
    std::fs::read_to_string(Path::new(path)).map_err(|e| format!("{field} {path:?} cannot be read: {e}"))
}

/// One issuer's HTTP client.
#[derive(Clone, Debug)]
pub struct CaHttp {
    client: reqwest::Client,
    /// The issuer's id, the `issuer` label of the request metrics.
    issuer_id: Arc<str>,
}

impl CaHttp {
    /// A pooled client with `options`' TLS and `settings`' timeouts.
    pub fn new(issuer_id: &str, options: &TlsOptions, settings: HttpSettings) -> Result<CaHttp, String> {
        let tls = client_tls(options)?;
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(settings.timeout)
            .connect_timeout(settings.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .user_agent(concat!("certctl/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("building the HTTP client: {e}"))?;
        Ok(CaHttp { client, issuer_id: issuer_id.into() })
    }

    /// The client, to build requests with.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends `request` (the call named `endpoint` in metrics and messages) and returns the
    /// response when its status is a success; any other answer, or none, is a classified failure
    /// carrying the CA's own words.
    pub async fn send(&self, endpoint: &'static str, request: RequestBuilder) -> Result<Response, IssueFailure> {
        let started = Instant::now();
        let result = request.send().await;
        let issuer = self.issuer_id.to_string();
        metrics::histogram!(CA_REQUEST_DURATION_SECONDS, "issuer" => issuer.clone(), "endpoint" => endpoint)
            .record(started.elapsed().as_secs_f64());
        let failure = match result {
            Ok(response) if response.status().is_success() => return Ok(response),
            Ok(response) => answer_failure(endpoint, response).await,
            Err(e) => transport_failure(endpoint, &e),
        };
        metrics::counter!(CA_REQUEST_ERRORS_TOTAL, "issuer" => issuer, "endpoint" => endpoint,
            "error_class" => failure.class.as_str())
        .increment(1);
        Err(failure)
    }

    /// Sends `request` and returns whatever the CA answered (for clients that read error
    /// bodies themselves, like the ACME client); only a request that got no answer is a failure.
    pub async fn exchange(&self, endpoint: &'static str, request: reqwest::Request) -> Result<Response, IssueFailure> {
        let started = Instant::now();
        let result = self.client.execute(request).await;
        let issuer = self.issuer_id.to_string();
        metrics::histogram!(CA_REQUEST_DURATION_SECONDS, "issuer" => issuer.clone(), "endpoint" => endpoint)
            .record(started.elapsed().as_secs_f64());
        let class = match &result {
            Ok(response) if response.status().is_client_error() || response.status().is_server_error() => {
                Some(status_class(response.status()))
            }
            Ok(_) => None,
            Err(e) => Some(transport_failure(endpoint, e).class),
        };
        if let Some(class) = class {
            metrics::counter!(CA_REQUEST_ERRORS_TOTAL, "issuer" => issuer, "endpoint" => endpoint,
                "error_class" => class.as_str())
            .increment(1);
        }
        result.map_err(|e| transport_failure(endpoint, &e))
    }

    /// [`CaHttp::send`], then the body as JSON of type `T`.
    pub async fn json<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: &'static str,
        request: RequestBuilder,
    ) -> Result<T, IssueFailure> {
        let response = self.send(endpoint, request).await?;
        let bytes = response.bytes().await.map_err(|e| transport_failure(endpoint, &e))?;
        serde_json::from_slice(&bytes).map_err(|e| {
            IssueFailure::new(
                ErrorClass::Upstream5xx,
                format!("{endpoint}: the CA's answer is not the JSON expected: {e}"),
            )
        })
    }
}

/// Longest part of a CA's error body kept in a message.
const BODY_EXCERPT: usize = 400;

/// A non-success answer as a failure: its class from the status, the CA's `Retry-After`, and an
/// excerpt of its body (vendors put their reason there).
pub async fn answer_failure(endpoint: &str, response: Response) -> IssueFailure {
    let status = response.status();
    let retry_after =
        response.headers().get(reqwest::header::RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(parse_retry_after);
    let body = response.text().await.unwrap_or_default();
    let excerpt: String = body.trim().chars().take(BODY_EXCERPT).collect();
    let class = status_class(status);
    let what = match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => "the CA refused the credentials",
        StatusCode::TOO_MANY_REQUESTS => "the CA is rate limiting",
        _ if status.is_server_error() => "the CA failed",
        _ => "the CA refused the request",
    };
    IssueFailure::new(class, format!("{endpoint}: {what} (HTTP {}): {excerpt}", status.as_u16()))
        .with_retry_after(retry_after)
}

/// The class of a non-success status.
pub fn status_class(status: StatusCode) -> ErrorClass {
    match status {
        StatusCode::TOO_MANY_REQUESTS => ErrorClass::RateLimited,
        StatusCode::REQUEST_TIMEOUT => ErrorClass::Timeout,
        s if s.is_server_error() => ErrorClass::Upstream5xx,
        _ => ErrorClass::Upstream4xx,
    }
}

/// A request that got no answer: timed out, refused, reset. A connection that never opened
/// means the request was not sent.
pub fn transport_failure(endpoint: &str, error: &reqwest::Error) -> IssueFailure {
    // The error's source chain says why (DNS, refused, TLS); the URL is not a secret here.
    let mut why = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        why = format!("{why}: {cause}");
        source = cause.source();
    }
    if error.is_timeout() {
        IssueFailure::new(ErrorClass::Timeout, format!("{endpoint}: the CA did not answer in time ({why})"))
    } else if error.is_connect() {
        IssueFailure::new(ErrorClass::Network, format!("{endpoint}: cannot connect to the CA ({why})")).unsent()
    } else {
        IssueFailure::new(ErrorClass::Network, format!("{endpoint}: the connection to the CA failed ({why})"))
    }
}

/// `Retry-After` as seconds or an HTTP date (RFC 9110 §10.2.3).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(parse_retry_after("120"), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO), "a past date: now");
        let later = (chrono::Utc::now() + chrono::Duration::seconds(90)).to_rfc2822();
        let wait = parse_retry_after(&later).unwrap();
        assert!(wait > Duration::from_secs(80) && wait <= Duration::from_secs(90), "{wait:?}");
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn statuses_are_classified() {
        assert_eq!(status_class(StatusCode::TOO_MANY_REQUESTS), ErrorClass::RateLimited);
        assert_eq!(status_class(StatusCode::BAD_GATEWAY), ErrorClass::Upstream5xx);
        assert_eq!(status_class(StatusCode::UNAUTHORIZED), ErrorClass::Upstream4xx);
        assert!(status_class(StatusCode::SERVICE_UNAVAILABLE).transient());
        assert!(!status_class(StatusCode::BAD_REQUEST).transient());
    }
}
