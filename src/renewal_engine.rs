//! Starting the renewal engine from settings: the sealing key (from
//! `CERTCTL_CONFIG_ENCRYPTION_KEY`, or a key file the embedded set-up generates once), where local
//! issuers get their CA (generated and stored sealed, or the sub-CA in `CERTCTL_CA_CERT_PATH` /
//! `CERTCTL_CA_KEY_PATH`), the issuer registry, the renewal dispatcher and the scheduler loops.

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;

use actix::Addr;
use anyhow::{bail, Context as _};
use base64::Engine;

use certctl_actors::crypto::local_ca::LocalCa;
use certctl_actors::crypto::seal::SealingKey;
use certctl_actors::issuers::registry::{CaSource, IssuerRegistry};
use certctl_actors::renewal::dispatcher::{DispatcherSettings, RenewalDispatcher};
use certctl_actors::scheduler::loops::{Scheduler, SchedulerSettings};
use certctl_actors::secrets::{open_sealing_key, SecretsError};
use certctl_actors::Db;

use crate::settings::Settings;

/// The running engine, for the HTTP layer.
#[derive(Clone)]
pub struct RenewalEngine {
    pub registry: Arc<IssuerRegistry>,
    /// Opens server-generated keys for the agents that deploy them.
    pub sealing: Arc<SealingKey>,
    pub dispatcher: Addr<RenewalDispatcher>,
    pub scheduler: Scheduler,
}

/// What the engine needs that can fail: checked before any actor starts, so a bad setting stops
/// start-up with its message and nothing half-started.
pub struct Prepared {
    sealing: Arc<SealingKey>,
    ca_source: CaSource,
}

/// Opens the sealing key (checking it against the database's) and reads the CA source.
pub async fn prepare(settings: &Settings, db: &Db) -> anyhow::Result<Prepared> {
    let passphrase = passphrase(settings)?;
    let ca_source = ca_source(settings)?;
    let sealing = open_sealing_key(db, &passphrase).await.map_err(|e| match e {
        SecretsError::Db(e) => anyhow::Error::new(e).context("reading the sealing parameters"),
        other => anyhow::anyhow!("{other}"),
    })?;
    Ok(Prepared { sealing, ca_source })
}

/// Starts the engine's actors on the current arbiter.
pub fn start(prepared: Prepared, settings: &Settings, db: &Db) -> RenewalEngine {
    let Prepared { sealing, ca_source } = prepared;
    let registry = IssuerRegistry::new(db.clone(), sealing.clone(), ca_source);
    let dispatcher_settings = DispatcherSettings {
        concurrency: settings.renewal_concurrency as usize,
        keygen: settings.keygen_mode,
        key_algorithm: settings.keygen_algorithm,
        lease: settings.renewal_lease,
        wake_budget: settings.scheduler_job_processor_interval,
    };
    let dispatcher = {
        let (db, registry, sealing) = (db.clone(), registry.clone(), sealing.clone());
        actix::Supervisor::start(move |_| RenewalDispatcher::new(db, registry, sealing, dispatcher_settings))
    };
    let scheduler_settings = SchedulerSettings {
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
    };
    let scheduler = Scheduler::start(db.clone(), dispatcher.clone(), &scheduler_settings);
    RenewalEngine { registry, sealing, dispatcher, scheduler }
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
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| anyhow::anyhow!("the system random source failed"))?;
    let key = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
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
            // The first certificate is the CA; any after it are the chain above it.
            let end = "-----END CERTIFICATE-----";
            let split = cert_pem.find(end).map(|i| i + end.len()).unwrap_or(cert_pem.len());
            let (first, parents) = cert_pem.split_at(split);
            let first = format!("{}\n", first.trim());
            let parents = parents.trim();
            let parents = if parents.is_empty() { String::new() } else { format!("{parents}\n") };
            LocalCa::from_pem(&first, &key_pem, &parents).map_err(|e| {
                anyhow::anyhow!(
                    "CERTCTL_CA_CERT_PATH={} with CERTCTL_CA_KEY_PATH={} is not a usable CA: {e}",
                    cert.display(),
                    key.display()
                )
            })?;
            Ok(CaSource::Files { cert_pem: first, parents_pem: parents, key_pem })
        }
        _ => bail!("CERTCTL_CA_CERT_PATH and CERTCTL_CA_KEY_PATH must be set together (a sub-CA needs both)"),
    }
}
