//! Building a remote CA's connector from its issuer row: what every connector shares (the
//! database, the sealing key, HTTP timeouts), reading its config with errors that name the field,
//! and the switch from `type` to connector.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::http::{read_pem_file, CaHttp, HttpSettings, TlsOptions};
use super::remote::RemoteIssuer;
use super::{ErrorClass, IssueFailure};
use crate::crypto::seal::SealingKey;
use crate::db::Db;

/// What every remote connector is built with.
#[derive(Clone)]
pub struct ConnectorContext {
    /// For what a connector keeps in the database (ACME accounts and http-01 answers).
    pub db: Db,
    /// Seals what a connector keeps secret (ACME account keys).
    pub sealing: Arc<SealingKey>,
    /// Timeouts of requests to CAs.
    pub http: HttpSettings,
}

/// An issuer's config, read field by field; every error names the issuer and the field.
pub struct ConfigReader<'a> {
    issuer_id: &'a str,
    issuer_type: &'a str,
    config: &'a Value,
}

impl<'a> ConfigReader<'a> {
    pub fn new(issuer_id: &'a str, issuer_type: &'a str, config: &'a Value) -> Self {
        ConfigReader { issuer_id, issuer_type, config }
    }

    /// A config error: the issuer cannot be used until its config is fixed.
    pub fn error(&self, message: impl std::fmt::Display) -> IssueFailure {
        IssueFailure::new(
            ErrorClass::Validation,
            format!("issuer {} ({}): {message}", self.issuer_id, self.issuer_type),
        )
    }

    /// An optional text field (absent, null or empty: `None`).
    pub fn text(&self, field: &str) -> Result<Option<String>, IssueFailure> {
        match self.config.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.trim().to_owned())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => Err(self.error(format!("config field {field} must be a string"))),
        }
    }

    /// An optional secret as it was given, spaces included (a password may hold them).
    pub fn untrimmed(&self, field: &str) -> Result<Option<String>, IssueFailure> {
        match self.config.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(self.error(format!("config field {field} must be a string"))),
        }
    }

    /// A required text field.
    pub fn required(&self, field: &str, what: &str) -> Result<String, IssueFailure> {
        self.text(field)?.ok_or_else(|| self.error(format!("config field {field} is required ({what})")))
    }

    /// An optional whole number.
    pub fn number(&self, field: &str) -> Result<Option<u64>, IssueFailure> {
        match self.config.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => {
                n.as_u64().map(Some).ok_or_else(|| self.error(format!("config field {field} must be a whole number")))
            }
            Some(Value::String(s)) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| self.error(format!("config field {field} must be a whole number"))),
            Some(_) => Err(self.error(format!("config field {field} must be a whole number"))),
        }
    }

    /// An optional boolean.
    pub fn flag(&self, field: &str) -> Result<Option<bool>, IssueFailure> {
        match self.config.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(_) => Err(self.error(format!("config field {field} must be true or false"))),
        }
    }

    /// An http or https base URL, without a trailing slash.
    pub fn url(&self, field: &str, default: Option<&str>) -> Result<String, IssueFailure> {
        let url = match (self.text(field)?, default) {
            (Some(url), _) => url,
            (None, Some(default)) => default.to_owned(),
            (None, None) => return Err(self.error(format!("config field {field} is required (the CA's URL)"))),
        };
        let parsed = reqwest::Url::parse(&url).map_err(|e| self.error(format!("config field {field}: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(self.error(format!("config field {field} must be an http or https URL")));
        }
        Ok(url.trim_end_matches('/').to_owned())
    }

    /// PEM text given inline (`<field>_pem`) or as a file (`<field>_path` / `<field>_file`).
    pub fn pem(&self, inline: &str, paths: &[&str]) -> Result<Option<String>, IssueFailure> {
        if let Some(pem) = self.text(inline)? {
            return Ok(Some(pem));
        }
        for field in paths {
            if let Some(path) = self.text(field)? {
                return read_pem_file(field, &path).map(Some).map_err(|e| self.error(e));
            }
        }
        Ok(None)
    }

    /// The TLS options every HTTP connector takes: `tls_ca_file` and, where the vendor uses
    /// mutual TLS, `client_cert_path` / `client_key_path` (or `client_cert_pem` / `client_key_pem`).
    pub fn tls(&self) -> Result<TlsOptions, IssueFailure> {
        let extra_roots_pem = self.pem("tls_ca_pem", &["tls_ca_file", "server_ca_path"])?;
        let cert = self.pem("client_cert_pem", &["client_cert_path"])?;
        let key = self.pem("client_key_pem", &["client_key_path"])?;
        let client_identity_pem = match (cert, key) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => return Err(self.error("client_cert_path and client_key_path go together")),
        };
        Ok(TlsOptions { extra_roots_pem, client_identity_pem })
    }

    /// A pooled HTTP client with this issuer's TLS options.
    pub fn http(&self, settings: HttpSettings) -> Result<CaHttp, IssueFailure> {
        CaHttp::new(self.issuer_id, &self.tls()?, settings).map_err(|e| self.error(e))
    }

    /// A duration in seconds.
    pub fn seconds(&self, field: &str) -> Result<Option<Duration>, IssueFailure> {
        Ok(self.number(field)?.map(Duration::from_secs))
    }
}

/// Builds the connector for a remote issuer (file reads and TLS set-up run on a blocking thread).
pub async fn build_remote(
    context: &ConnectorContext,
    issuer_id: &str,
    issuer_type: &str,
    config: &Value,
) -> Result<Arc<dyn RemoteIssuer>, IssueFailure> {
    let (context, issuer_id, issuer_type, config) =
        (context.clone(), issuer_id.to_owned(), issuer_type.to_owned(), config.clone());
    tokio::task::spawn_blocking(move || {
        let reader = ConfigReader::new(&issuer_id, &issuer_type, &config);
        let connector: Arc<dyn RemoteIssuer> = match issuer_type.as_str() {
            "acme" => Arc::new(super::acme::AcmeIssuer::new(&context, &issuer_id, &reader)?),
            "digicert" => Arc::new(super::digicert::DigicertIssuer::new(&context, &issuer_id, &reader)?),
            "sectigo" => Arc::new(super::sectigo::SectigoIssuer::new(&context, &issuer_id, &reader)?),
            "globalsign" => Arc::new(super::globalsign::GlobalsignIssuer::new(&context, &issuer_id, &reader)?),
            "vault" => Arc::new(super::vault::VaultIssuer::new(&context, &issuer_id, &reader)?),
            "entrust" => Arc::new(super::entrust::EntrustIssuer::new(&context, &issuer_id, &reader)?),
            "stepca" => Arc::new(super::stepca::StepcaIssuer::new(&context, &issuer_id, &reader)?),
            other => {
                return Err(IssueFailure::new(
                    ErrorClass::Validation,
                    format!(
                        "issuer {issuer_id} is of type {other}, which this version of certctl cannot issue with yet"
                    ),
                ))
            }
        };
        Ok(connector)
    })
    .await
    .map_err(|e| IssueFailure::new(ErrorClass::Internal, format!("building the connector failed: {e}")))?
}
