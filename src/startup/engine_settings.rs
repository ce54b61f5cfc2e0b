//! The engine's settings from the server's: the sealing passphrase (from
//! `CERTCTL_CONFIG_ENCRYPTION_KEY`, or a key file the embedded set-up generates once), where local
//! issuers get their CA (generated and stored sealed, or the sub-CA in `CERTCTL_CA_CERT_PATH` /
//! `CERTCTL_CA_KEY_PATH`), and the actors' intervals, caps and leases.

use certctl_actors::acme_server::service::AcmeServerSettings;
use std::io::Write as _;
use std::path::Path;

use anyhow::{bail, Context as _};

use certctl_actors::agents::heartbeats::HeartbeatSettings;
use certctl_actors::audit_retention::RetentionSettings;
use certctl_actors::ca_poller::schedule::{Backoff, PollBudgets};
use certctl_actors::ca_poller::CaPollerSettings;
use certctl_actors::db::PgConnector;
use certctl_actors::issuers::http::HttpSettings;
use certctl_actors::issuers::registry::CaSource;
use certctl_actors::renewal::dispatcher::DispatcherSettings;
use certctl_actors::scheduler::loops::SchedulerSettings;
use certctl_actors::EngineSettings;

use crate::settings::Settings;

/// The engine's settings from the server's: every duration and size, the sealing passphrase
/// (the setting, or the embedded set-up's key file), the CA source (files read and checked now,
/// so a bad file stops start-up naming its variable) and the notification session.
pub fn engine_settings(
    settings: &Settings,
    notification_session: (tokio_postgres::Config, PgConnector),
) -> anyhow::Result<EngineSettings> {
    Ok(EngineSettings {
        sealing_passphrase: passphrase(settings)?,
        ca_source: ca_source(settings)?,
        audit_retention: RetentionSettings::new(settings.audit_retention_days, settings.audit_retention_interval),
        dispatcher: DispatcherSettings {
            concurrency: settings.renewal_concurrency as usize,
            keygen: settings.keygen_mode,
            key_algorithm: settings.keygen_algorithm,
            lease: settings.renewal_lease,
            wake_budget: settings.scheduler_job_processor_interval,
        },
        ca_poller: CaPollerSettings {
            backoff: Backoff { initial: settings.async_poll_initial_interval, max: settings.async_poll_max_interval },
            budgets: poll_budgets(settings),
            per_issuer_concurrency: settings.async_poll_concurrency as usize,
            // A step makes a few CA requests; its claim outlasts them all.
            claim_lease: settings.ca_request_timeout * 4,
        },
        ca_http: HttpSettings {
            timeout: settings.ca_request_timeout,
            connect_timeout: settings.ca_request_timeout.min(std::time::Duration::from_secs(10)),
        },
        scheduler: SchedulerSettings {
            enabled: settings.scheduler_enabled,
            jitter_percent: settings.scheduler_jitter_percent,
            renewal_check_interval: settings.scheduler_renewal_check_interval,
            job_processor_interval: settings.scheduler_job_processor_interval,
            retry_interval: settings.scheduler_retry_interval,
            job_timeout_interval: settings.job_timeout_interval,
            awaiting_csr_timeout: settings.job_awaiting_csr_timeout,
            awaiting_approval_timeout: settings.job_awaiting_approval_timeout,
            short_lived_expiry_interval: settings.short_lived_expiry_check_interval,
            agent_health_check_interval: settings.scheduler_agent_health_check_interval,
            agent_offline_after: settings.agent_offline_after,
            acme_gc_interval: settings.acme_server_gc_interval,
        },
        heartbeats: HeartbeatSettings {
            flush_interval: settings.heartbeat_flush_interval,
            flush_batch: settings.heartbeat_flush_batch as usize,
            capacity: settings.heartbeat_buffer_max as usize,
        },
        agent_work_lease: settings.agent_work_lease,
        notification_session,
        environments: settings.environments.0.clone(),
        audit_reads: settings.audit_reads,
        acme_server: AcmeServerSettings {
            enabled: settings.acme_server_enabled,
            default_profile_id: settings.acme_server_default_profile_id.clone(),
            nonce_ttl: settings.acme_server_nonce_ttl,
            terms_of_service: settings.acme_server_tos_url.clone(),
            website: settings.acme_server_website.clone(),
            caa_identities: settings.acme_server_caa_identities.0.clone(),
            ari_enabled: settings.acme_server_ari_enabled,
            ari_poll_interval: settings.acme_server_ari_poll_interval,
        },
    })
}

/// The poll budgets the environment sets: the global one and one per asynchronous connector.
fn poll_budgets(settings: &Settings) -> PollBudgets {
    let seconds = std::time::Duration::from_secs;
    let per_type = [
        ("digicert", settings.digicert_poll_max_wait_seconds),
        ("sectigo", settings.sectigo_poll_max_wait_seconds),
        ("globalsign", settings.globalsign_poll_max_wait_seconds),
        ("entrust", settings.entrust_poll_max_wait_seconds),
    ]
    .into_iter()
    .filter_map(|(t, s)| s.map(|s| (t, seconds(s))))
    .collect();
    PollBudgets { global: settings.async_poll_max_wait_seconds.map(seconds), per_type }
}

/// The sealing passphrase: the setting, or with the embedded PostgreSQL a key file generated on
/// first start (the cluster and the key live and die together in the data dir).
fn passphrase(settings: &Settings) -> anyhow::Result<String> {
    if let Some(key) = &settings.config_encryption_key {
        return Ok(key.expose().clone());
    }
    if !settings.embedded_database() {
        bail!(
            "CERTCTL_CONFIG_ENCRYPTION_KEY is required with CERTCTL_DATABASE_URL: local CA keys are sealed under it, \
             and every replica must use the same value (at least 16 characters, e.g. `openssl rand -base64 32`)"
        );
    }
    key_file(&settings.data_dir.join("secrets").join("config-encryption.key"))
}

fn key_file(path: &Path) -> anyhow::Result<String> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Ok(existing) = std::fs::read_to_string(path) {
        return Ok(existing.trim().to_owned());
    }
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    // 32 random bytes in base64url, made like every other key the server hands out.
    let key = certctl_actors::domain::api_key::generate_key("")?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(key.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
    tracing::info!(path = %path.display(), "generated the sealing key for the embedded database");
    Ok(key)
}

/// Where local issuers get their CA; a sub-CA from files is checked now so a bad file stops
/// start-up with the variable's name rather than failing the first renewal.
fn ca_source(settings: &Settings) -> anyhow::Result<CaSource> {
    match (&settings.ca_cert_path, &settings.ca_key_path) {
        (None, None) => Ok(CaSource::Generate(settings.ca_key_algorithm)),
        (Some(cert), Some(key)) => {
            let cert_pem = std::fs::read_to_string(cert)
                .with_context(|| format!("cannot read CERTCTL_CA_CERT_PATH={}", cert.display()))?;
            let key_pem = std::fs::read_to_string(key)
                .with_context(|| format!("cannot read CERTCTL_CA_KEY_PATH={}", key.display()))?;
            CaSource::from_files(&cert_pem, &key_pem).map_err(|e| {
                anyhow::anyhow!(
                    "CERTCTL_CA_CERT_PATH={} with CERTCTL_CA_KEY_PATH={} is not a usable CA: {e}",
                    cert.display(),
                    key.display()
                )
            })
        }
        _ => bail!("CERTCTL_CA_CERT_PATH and CERTCTL_CA_KEY_PATH must be set together (a sub-CA needs both)"),
    }
}
