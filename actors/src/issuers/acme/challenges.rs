//! Answering ACME challenges. http-01: the key authorization is published in the database, where
//! every replica's challenge listener (`CERTCTL_ACME_HTTP01_LISTEN`) finds it, and withdrawn when
//! the order is done. dns-01: the `_acme-challenge` TXT record is created and removed by an RFC
//! 2136 update signed with TSIG ([`super::rfc2136`]) or by certctl's hook scripts, which get
//! `CERTCTL_DNS_DOMAIN`, `CERTCTL_DNS_FQDN`, `CERTCTL_DNS_VALUE`, `CERTCTL_DNS_TOKEN` and `PATH`
//! (nothing else of the server's environment); the challenge is set ready `dns_propagation_wait`
//! seconds after the record was created.

use std::time::Duration;

use instant_acme::{ChallengeHandle, ChallengeType};
use serde::{Deserialize, Serialize};

use super::rfc2136::DynamicUpdate;
use super::OrderNotes;
use crate::db::Db;
use crate::issuers::connectors::ConfigReader;
use crate::issuers::{ErrorClass, IssueFailure};
use crate::queries::acme::{DeleteHttp01Answers, PutHttp01Answer};

/// Longest a hook script may run.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

/// How an issuer answers challenges.
#[derive(Clone, Debug)]
pub enum ChallengeKind {
    Http01,
    Dns01 {
        /// How records are written: an RFC 2136 update, or the hook scripts.
        writer: DnsWriter,
        /// Wait between creating the record and asking the CA to look.
        propagation_wait: Duration,
    },
}

/// How dns-01 records are created and removed.
#[derive(Clone, Debug)]
pub enum DnsWriter {
    /// RFC 2136 dynamic update with TSIG to the zone's primary.
    Update(Box<DynamicUpdate>),
    /// certctl's hook scripts.
    Scripts { present: String, cleanup: Option<String> },
}

/// A dns-01 record presented for an order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DnsRecord {
    pub authorization: String,
    pub domain: String,
    pub fqdn: String,
    pub value: String,
    pub token: String,
    /// When the present script succeeded (Unix seconds).
    pub presented_at: i64,
}

impl ChallengeKind {
    pub fn from_config(config: &ConfigReader<'_>) -> Result<ChallengeKind, IssueFailure> {
        match config.text("challenge_type")?.as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("http-01") => Ok(ChallengeKind::Http01),
            Some("dns-01") => {
                let writer = match DynamicUpdate::from_config(config)? {
                    Some(update) => DnsWriter::Update(Box::new(update)),
                    None => DnsWriter::Scripts {
                        present: config.required(
                            "dns_present_script",
                            "the hook that creates the TXT record, or dns_update_server for RFC 2136 updates",
                        )?,
                        cleanup: config.text("dns_cleanup_script")?,
                    },
                };
                Ok(ChallengeKind::Dns01 {
                    writer,
                    propagation_wait: config.seconds("dns_propagation_wait")?.unwrap_or_default(),
                })
            }
            Some(other) => Err(config.error(format!("challenge_type {other:?} is not one of http-01, dns-01"))),
        }
    }

    pub fn acme_type(&self) -> ChallengeType {
        match self {
            ChallengeKind::Http01 => ChallengeType::Http01,
            ChallengeKind::Dns01 { .. } => ChallengeType::Dns01,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            ChallengeKind::Http01 => "http-01",
            ChallengeKind::Dns01 { .. } => "dns-01",
        }
    }

    /// Sets up the answer to `challenge`. `None`: ready for the CA to check now; `Some(wait)`:
    /// check again after `wait` (a DNS record still propagating).
    pub async fn present(
        &self,
        db: &Db,
        order_id: &str,
        identifier: &str,
        challenge: &ChallengeHandle<'_>,
        notes: &mut OrderNotes,
    ) -> Result<Option<Duration>, IssueFailure> {
        let key_authorization = challenge.key_authorization();
        match self {
            ChallengeKind::Http01 => {
                let put = PutHttp01Answer {
                    token: challenge.token.clone(),
                    key_authorization: key_authorization.as_str().to_owned(),
                    order_id: order_id.to_owned(),
                };
                db.run(put).await.map_err(|e| {
                    IssueFailure::new(ErrorClass::Internal, format!("publishing the http-01 answer: {e}"))
                })?;
                Ok(None)
            }
            ChallengeKind::Dns01 { writer, propagation_wait } => {
                let now = chrono::Utc::now().timestamp();
                let domain = identifier.trim_start_matches("*.").to_owned();
                let presented = match notes.records.iter().find(|r| r.token == challenge.token) {
                    Some(record) => record.presented_at,
                    None => {
                        let record = DnsRecord {
                            authorization: challenge.url.clone(),
                            fqdn: format!("_acme-challenge.{domain}"),
                            domain,
                            value: key_authorization.dns_value(),
                            token: challenge.token.clone(),
                            presented_at: now,
                        };
                        match writer {
                            DnsWriter::Update(update) => update.set(&record.fqdn, &record.value, true).await?,
                            DnsWriter::Scripts { present, .. } => {
                                run_hook("dns_present_script", present, &record).await?
                            }
                        }
                        notes.records.push(record);
                        now
                    }
                };
                let ready_at = presented + propagation_wait.as_secs() as i64;
                Ok((ready_at > now).then(|| Duration::from_secs((ready_at - now) as u64)))
            }
        }
    }

    /// Removes what was set up for an order (errors are logged: a stale record or row only costs
    /// a little space).
    pub async fn clean_up(&self, db: &Db, order_id: &str, records: &[DnsRecord]) {
        match self {
            ChallengeKind::Http01 => {
                if let Err(e) = db.run(DeleteHttp01Answers { order_id: order_id.to_owned() }).await {
                    tracing::warn!(order_id, error = %e, "withdrawing the http-01 answers failed");
                }
            }
            ChallengeKind::Dns01 { writer, .. } => {
                for record in records {
                    let removed = match writer {
                        DnsWriter::Update(update) => update.set(&record.fqdn, &record.value, false).await,
                        DnsWriter::Scripts { cleanup: Some(script), .. } => {
                            run_hook("dns_cleanup_script", script, record).await
                        }
                        DnsWriter::Scripts { cleanup: None, .. } => Ok(()),
                    };
                    if let Err(e) = removed {
                        tracing::warn!(order_id, fqdn = %record.fqdn, error = %e.message, "removing a dns-01 record failed");
                    }
                }
            }
        }
    }
}

/// Runs a hook script with the record in its environment; a failure quotes its stderr.
async fn run_hook(field: &str, script: &str, record: &DnsRecord) -> Result<(), IssueFailure> {
    // The hook gets the record and a search path, not the server's environment (which holds the
    // sealing passphrase and the database URL).
    let run = tokio::process::Command::new(script)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()))
        .env("CERTCTL_DNS_DOMAIN", &record.domain)
        .env("CERTCTL_DNS_FQDN", &record.fqdn)
        .env("CERTCTL_DNS_VALUE", &record.value)
        .env("CERTCTL_DNS_TOKEN", &record.token)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = match tokio::time::timeout(SCRIPT_TIMEOUT, run).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => {
            return Err(IssueFailure::new(ErrorClass::Validation, format!("{field} {script:?} cannot be run: {e}")))
        }
        Err(_) => {
            return Err(IssueFailure::new(
                ErrorClass::Timeout,
                format!("{field} {script:?} did not finish within {}s", SCRIPT_TIMEOUT.as_secs()),
            ))
        }
    };
    if output.status.success() {
        return Ok(());
    }
    let stderr: String = String::from_utf8_lossy(&output.stderr).trim().chars().take(300).collect();
    // A failing hook (a DNS API down, say) is tried again at the next poll.
    Err(IssueFailure::new(ErrorClass::Upstream5xx, format!("{field} {script:?} failed ({}): {stderr}", output.status)))
}
