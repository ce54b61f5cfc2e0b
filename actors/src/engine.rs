//! The engine as one value: [`Engine::start`] checks what can fail (the sealing key against the
//! database, the agent directory's first load) and then starts every engine actor on the current
//! arbiter — audit retention, the certificate writer, the renewal dispatcher, the scheduler
//! loops, the heartbeat aggregator and the ETag cache — and hands out the services the shell
//! calls, one call per flow. [`Engine::shutdown`] gives up the loops' locks, flushes the
//! heartbeat buffer and closes the notification session.

use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use anyhow::Context as _;

use crate::agents::directory::AgentDirectory;
use crate::agents::heartbeats::{HeartbeatAggregator, HeartbeatSettings, Heartbeats};
use crate::agents::registry::AgentRegistry;
use crate::agents::work::AgentWork;
use crate::audit_retention::{AuditRetention, RetentionSettings};
use crate::ca_poller::{CaPoller, CaPollerSettings};
use crate::certificate_writer::Writer;
use crate::cursors::Cursors;
use crate::db::{Db, PgConnector};
use crate::discovery::DiscoveryTriage;
use crate::etag_cache::EtagCache;
use crate::inventory::Inventory;
use crate::issuers::connectors::ConnectorContext;
use crate::issuers::http::HttpSettings;
use crate::issuers::registry::{CaSource, IssuerRegistry};
use crate::issuers::remote::Check;
use crate::issuers::{Connector, IssueFailure};
use crate::queries::acme::Http01Answer;
use crate::queries::agents::LoadAgentDirectory;
use crate::queries::secrets::SealClearIssuerSecrets;
use crate::renewal::dispatcher::{DispatcherSettings, RenewalDispatcher};
use crate::renewal::requests::Renewals;
use crate::scheduler::loops::{Scheduler, SchedulerSettings};
use crate::secrets::{open_sealing_key, SecretsError};

/// Everything the engine needs from the settings. `Debug` never shows the passphrase.
pub struct EngineSettings {
    /// `CERTCTL_CONFIG_ENCRYPTION_KEY` (or the embedded set-up's key file).
    pub sealing_passphrase: String,
    /// Where local issuers get their CA.
    pub ca_source: CaSource,
    pub audit_retention: RetentionSettings,
    pub dispatcher: DispatcherSettings,
    /// The CA poller: backoff, budgets, per-issuer cap.
    pub ca_poller: CaPollerSettings,
    /// Timeouts of requests to remote CAs.
    pub ca_http: HttpSettings,
    pub scheduler: SchedulerSettings,
    pub heartbeats: HeartbeatSettings,
    /// `CERTCTL_AGENT_WORK_LEASE`.
    pub agent_work_lease: Duration,
    /// The session the ETag cache listens on: the pool's connection settings and TLS.
    pub notification_session: (tokio_postgres::Config, PgConnector),
    /// `CERTCTL_ENVIRONMENTS`: the environments a certificate may carry.
    pub environments: Vec<String>,
    /// `CERTCTL_AUDIT_READS`: whether successful reads add an audit row.
    pub audit_reads: bool,
    /// The ACME server (`CERTCTL_ACME_SERVER_*`).
    pub acme_server: crate::acme_server::service::AcmeServerSettings,
}

impl std::fmt::Debug for EngineSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineSettings")
            .field("sealing_passphrase", &"***")
            .field("ca_source", &self.ca_source)
            .field("dispatcher", &self.dispatcher)
            .field("scheduler", &self.scheduler)
            .field("heartbeats", &self.heartbeats)
            .finish_non_exhaustive()
    }
}

/// The running engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    /// The database handle, handed to the shell for the queries no service wraps.
    db: Db,
    /// The certificate writer's handle, so creations are batched.
    writer: Writer,
    /// The configured issuers, kept to answer CA chain requests.
    issuers: Arc<IssuerRegistry>,
    /// The renewal dispatcher, kept so tests can drive rounds through it.
    dispatcher: Addr<RenewalDispatcher>,
    /// The CA poller, kept so it can be woken.
    ca_poller: Addr<CaPoller>,
    /// The scheduler loops, kept for run-now and to give up their locks at shutdown.
    scheduler: Scheduler,
    /// Agent registration, retirement and key look-ups.
    agents: AgentRegistry,
    /// The agents' work flows.
    work: AgentWork,
    /// The heartbeat buffer, kept to flush it at shutdown.
    heartbeats: Heartbeats,
    /// Renewals asked for through the API.
    renewals: Renewals,
    /// The audit retention actor, kept so tests can ask for a pass.
    retention: Addr<AuditRetention>,
    /// The ETag cache actor, kept to close its notification session at shutdown.
    etag_cache: Addr<EtagCache>,
    /// Signs and opens the lists' keyset cursors.
    cursors: Cursors,
    /// Triage of discovered certificates.
    discovery: DiscoveryTriage,
    /// Certificates and reference resources, and audited reads.
    inventory: Inventory,
    /// The ACME server's flows.
    acme: crate::acme_server::service::AcmeServer,
}

impl Engine {
    /// Checks the sealing key and loads the agent directory, then starts every engine actor on
    /// the current arbiter. Nothing is started when a check fails.
    pub async fn start(db: Db, settings: EngineSettings) -> anyhow::Result<Engine> {
        let EngineSettings {
            sealing_passphrase,
            ca_source,
            audit_retention,
            dispatcher: dispatcher_settings,
            ca_poller: ca_poller_settings,
            ca_http,
            scheduler: scheduler_settings,
            heartbeats: heartbeat_settings,
            agent_work_lease,
            notification_session,
            environments,
            audit_reads,
            acme_server,
        } = settings;
        let sealing = open_sealing_key(&db, &sealing_passphrase).await.map_err(|e| match e {
            SecretsError::Db(e) => anyhow::Error::new(e).context("reading the sealing parameters"),
            other => anyhow::anyhow!("{other}"),
        })?;
        // Issuer secrets written before they were sealed (or straight into the database) are
        // sealed now, before anything reads them.
        let sealed = db
            .run(SealClearIssuerSecrets { sealing: sealing.clone() })
            .await
            .context("sealing issuer secrets stored in clear")?;
        if sealed > 0 {
            tracing::info!(issuers = sealed, "sealed issuer secrets that were stored in clear");
        }
        let directory = Arc::new(AgentDirectory::default());
        let known = db.run(LoadAgentDirectory { since: None }).await.context("loading the agent directory")?;
        directory.upsert(known.entries);

        let retention = {
            let db = db.clone();
            actix::Supervisor::start(move |_| AuditRetention::new(db, audit_retention))
        };
        let writer = Writer::start(db.clone());
        let context = ConnectorContext { db: db.clone(), sealing: sealing.clone(), http: ca_http };
        let issuers = IssuerRegistry::new(db.clone(), sealing.clone(), ca_source, context);
        let ca_poller = {
            let (db, issuers) = (db.clone(), issuers.clone());
            actix::Supervisor::start(move |_| CaPoller::new(db, issuers, ca_poller_settings))
        };
        let dispatcher = {
            let (db, issuers, sealing, poller) = (db.clone(), issuers.clone(), sealing.clone(), ca_poller.clone());
            actix::Supervisor::start(move |_| {
                RenewalDispatcher::new(db, issuers, sealing, dispatcher_settings).with_poller(poller.recipient())
            })
        };
        let scheduler = Scheduler::start(db.clone(), dispatcher.clone(), &scheduler_settings);
        let heartbeats = HeartbeatAggregator::start(db.clone(), directory.clone(), heartbeat_settings);
        let etag_cache = {
            let (generations, (config, tls)) = (db.generations().clone(), notification_session);
            actix::Supervisor::start(move |_| EtagCache::new(generations, config, tls))
        };
        // Let the actors run `started` (arming their timers) now, inside the runtime.
        tokio::task::yield_now().await;
        Ok(Engine {
            agents: AgentRegistry::new(db.clone(), directory),
            cursors: Cursors::new(sealing.clone()),
            inventory: Inventory::new(
                db.clone(),
                writer.clone(),
                environments.clone().into(),
                audit_reads,
                sealing.clone(),
            ),
            discovery: DiscoveryTriage::new(db.clone(), writer.clone(), environments),
            acme: crate::acme_server::service::AcmeServer::new(db.clone(), sealing.clone(), acme_server),
            work: AgentWork::new(db.clone(), dispatcher.clone(), sealing, agent_work_lease),
            renewals: Renewals::new(db.clone(), dispatcher.clone()),
            db,
            writer,
            issuers,
            dispatcher,
            ca_poller,
            scheduler,
            heartbeats,
            retention,
            etag_cache,
        })
    }

    /// The ACME server's flows.
    pub fn acme(&self) -> &crate::acme_server::service::AcmeServer {
        &self.acme
    }

    /// The database handle.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Certificates and reference resources created and changed, and audited reads.
    pub fn inventory(&self) -> &Inventory {
        &self.inventory
    }

    /// Certificate creations (batched by the certificate writer).
    pub fn certificates(&self) -> &Writer {
        &self.writer
    }

    /// Agent registration, retirement and key look-ups.
    pub fn agents(&self) -> &AgentRegistry {
        &self.agents
    }

    /// The agents' work flows.
    pub fn agent_work(&self) -> &AgentWork {
        &self.work
    }

    /// Triage of discovered certificates.
    pub fn discovery(&self) -> &DiscoveryTriage {
        &self.discovery
    }

    /// Signs and opens the lists' keyset cursors.
    pub fn cursors(&self) -> &Cursors {
        &self.cursors
    }

    /// The heartbeat buffer.
    pub fn heartbeats(&self) -> &Heartbeats {
        &self.heartbeats
    }

    /// Renewals asked for through the API.
    pub fn renewals(&self) -> &Renewals {
        &self.renewals
    }

    /// The scheduler loops (run one now, their names).
    pub fn scheduler(&self) -> &Scheduler {
        &self.scheduler
    }

    /// The renewal dispatcher (tests drive rounds through it).
    pub fn dispatcher(&self) -> &Addr<RenewalDispatcher> {
        &self.dispatcher
    }

    /// The audit retention actor (tests ask it for a pass instead of waiting for its timer).
    pub fn audit_retention(&self) -> &Addr<AuditRetention> {
        &self.retention
    }

    /// The PEM chain an issuer's certificates chain to (a local issuer's CA is created on first
    /// use); `None` when there is no such issuer, a `validation` failure when it cannot be used.
    pub async fn issuer_ca_chain(&self, issuer_id: &str) -> Result<Option<String>, IssueFailure> {
        match self.issuers.lookup(issuer_id).await? {
            Some(entry) => Ok(Some(entry.connector.ca_chain_pem().await?)),
            None => Ok(None),
        }
    }

    /// Checks an issuer's credentials and reachability with harmless calls (`None`: no such
    /// issuer). A local issuer's check is that its CA loads.
    pub async fn test_issuer(&self, issuer_id: &str) -> Result<Option<Vec<Check>>, IssueFailure> {
        let Some(entry) = self.issuers.lookup(issuer_id).await? else { return Ok(None) };
        Ok(Some(match entry.connector {
            Connector::Remote(connector) => connector.test().await,
            Connector::InProcess(issuer) => {
                vec![Check::passed(
                    "ca",
                    format!(
                        "the local CA signs; its chain holds {} certificate(s)",
                        issuer.ca_chain_pem().matches("-----BEGIN CERTIFICATE-----").count()
                    ),
                )]
            }
        }))
    }

    /// The key authorization for an ACME http-01 token any issuer published (`None`: unknown).
    pub async fn acme_http01_answer(&self, token: &str) -> Result<Option<String>, crate::error::DbError> {
        self.db.run(Http01Answer { token: token.to_owned() }).await
    }

    /// Asks the CA poller to look for due orders and revocations now.
    pub fn wake_ca_poller(&self) {
        self.ca_poller.do_send(crate::ca_poller::Wake);
    }

    /// Stops the engine's work for a clean exit: another replica takes the loops over at its
    /// next tick, beats accepted so far reach the database, and the notification session closes.
    pub async fn shutdown(&self) {
        self.scheduler.release_leadership().await;
        match self.heartbeats.flush_all().await {
            Ok(written) => tracing::info!(written, "heartbeats flushed at shutdown"),
            Err(e) => {
                tracing::warn!(error = %e, waiting = self.heartbeats.waiting(), "heartbeats could not be flushed at shutdown")
            }
        }
        let _ = self.etag_cache.send(crate::etag_cache::Shutdown).await;
    }
}
