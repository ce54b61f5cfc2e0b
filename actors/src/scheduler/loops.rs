//! The renewal engine's loops and the [`Scheduler`] that starts them.
//!
//! | loop | what a tick does |
//! |---|---|
//! | `renewal_scan` | enqueues every certificate whose `renew_at` has come, in keyset batches |
//! | `job_processor` | runs a dispatcher round until the next tick; updates the queue gauges |
//! | `job_retry` | failed jobs whose backoff is over go back to Pending |
//! | `job_timeout` | expired leases and stale AwaitingCSR/AwaitingApproval jobs fail |
//! | `short_lived_expiry` | certificates past `expires_at` become Expired |
//! | `agent_health_check` | agents silent too long become Offline; the jobs they held are handed back |
//! | `acme_gc` | the ACME server's used nonces past their lifetime are deleted, in batches |

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde_json::json;

use super::leader::{lock_key, LeaderLocks};
use super::loop_actor::{LoopTask, LoopTiming, RunNow, SchedulerLoop, TickOutcome};
use crate::db::Db;
use crate::error::DbError;
use crate::metrics::{JOBS_QUEUE_DEPTH, RENEWALS_ENQUEUED_TOTAL};
use crate::queries::agents::MarkStaleAgents;
use crate::queries::job_claims::CountActiveJobs;
use crate::queries::job_sweeps::{ReapJobs, RetryDueJobs};
use crate::queries::renewal_scan::{EnqueueDueRenewals, ExpireCertificates};
use crate::renewal::dispatcher::{Dispatch, RenewalDispatcher, Wake};

/// Certificates read per scan statement.
pub const SCAN_BATCH: i64 = 5_000;
/// Failed jobs put back per retry statement.
const RETRY_BATCH: i64 = 5_000;

/// The loops' intervals and timeouts (`CERTCTL_SCHEDULER_*`, `CERTCTL_JOB_*`).
#[derive(Clone, Debug)]
pub struct SchedulerSettings {
    /// Arm the timers; when false, loops run only through [`Scheduler::run_now`].
    pub enabled: bool,
    pub jitter_percent: u8,
    pub renewal_check_interval: Duration,
    pub job_processor_interval: Duration,
    pub retry_interval: Duration,
    pub job_timeout_interval: Duration,
    pub awaiting_csr_timeout: Duration,
    pub awaiting_approval_timeout: Duration,
    pub short_lived_expiry_interval: Duration,
    pub agent_health_check_interval: Duration,
    /// An agent silent for longer than this is Offline (`CERTCTL_AGENT_OFFLINE_AFTER`).
    pub agent_offline_after: Duration,
    /// Between ACME garbage collections (`CERTCTL_ACME_SERVER_GC_INTERVAL`).
    pub acme_gc_interval: Duration,
}

/// The loop names the admin endpoint accepts, with their advisory lock indexes.
pub const LOOPS: [(&str, u16); 7] = [
    ("renewal_scan", 1),
    ("job_processor", 2),
    ("job_retry", 3),
    ("job_timeout", 4),
    ("short_lived_expiry", 5),
    ("agent_health_check", 6),
    ("acme_gc", 7),
];

/// The started loops, by name.
#[derive(Clone)]
pub struct Scheduler {
    /// Each loop's actor by name, so the admin endpoint can run one now.
    loops: BTreeMap<&'static str, Addr<SchedulerLoop>>,
    /// The loops' shared advisory locks, kept to give them up at shutdown.
    leader: Arc<LeaderLocks>,
}

impl Scheduler {
    /// Starts every loop as a supervised actor on the current arbiter.
    pub fn start(db: Db, dispatcher: Addr<RenewalDispatcher>, settings: &SchedulerSettings) -> Scheduler {
        let leader = Arc::new(LeaderLocks::new(db.clone()));
        let timing = |interval: Duration| LoopTiming {
            interval,
            timers: settings.enabled,
            jitter_percent: settings.jitter_percent,
            // A tick may use the whole interval, and never less than a minute.
            budget: interval.max(Duration::from_secs(60)),
        };
        let tasks: [(&'static str, LoopTiming, Arc<dyn LoopTask>); 7] = [
            (
                "renewal_scan",
                timing(settings.renewal_check_interval),
                Arc::new(RenewalScan { db: db.clone(), dispatcher: dispatcher.clone() }),
            ),
            (
                "job_processor",
                timing(settings.job_processor_interval),
                Arc::new(JobProcessor { db: db.clone(), dispatcher: dispatcher.clone() }),
            ),
            (
                "job_retry",
                timing(settings.retry_interval),
                Arc::new(JobRetry { db: db.clone(), dispatcher: dispatcher.clone() }),
            ),
            (
                "job_timeout",
                timing(settings.job_timeout_interval),
                Arc::new(JobTimeout {
                    db: db.clone(),
                    awaiting_csr_timeout: settings.awaiting_csr_timeout,
                    awaiting_approval_timeout: settings.awaiting_approval_timeout,
                }),
            ),
            (
                "short_lived_expiry",
                timing(settings.short_lived_expiry_interval),
                Arc::new(ExpirySweep { db: db.clone() }),
            ),
            (
                "agent_health_check",
                timing(settings.agent_health_check_interval),
                Arc::new(AgentHealthCheck { db: db.clone(), offline_after: settings.agent_offline_after }),
            ),
            ("acme_gc", timing(settings.acme_gc_interval), Arc::new(AcmeGc { db })),
        ];
        let mut loops = BTreeMap::new();
        for (name, timing, task) in tasks {
            let index = LOOPS.iter().find(|(n, _)| *n == name).map_or(0, |(_, i)| *i);
            let leader = leader.clone();
            let addr =
                actix::Supervisor::start(move |_| SchedulerLoop::new(name, lock_key(index), timing, task, leader));
            loops.insert(name, addr);
        }
        Scheduler { loops, leader }
    }

    /// Runs one tick of `name` now; `None` when there is no such loop.
    pub async fn run_now(&self, name: &str) -> Option<TickOutcome> {
        let addr = self.loops.get(name)?;
        Some(addr.send(RunNow).await.unwrap_or(TickOutcome::Failed("the loop is not running".into())))
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.loops.keys().copied()
    }

    /// Releases this replica's loop locks (at shutdown).
    pub async fn release_leadership(&self) {
        self.leader.release_all().await;
    }
}

/// Used-nonce rows deleted per statement.
const NONCE_SWEEP_BATCH: i64 = 10_000;

struct AcmeGc {
    db: Db,
}

impl LoopTask for AcmeGc {
    fn tick(&self, deadline: Instant) -> BoxFuture<'static, Result<serde_json::Value, DbError>> {
        let db = self.db.clone();
        async move {
            let mut nonces_deleted = 0u64;
            loop {
                let deleted = db.run(crate::queries::acme_server::SweepUsedNonces { batch: NONCE_SWEEP_BATCH }).await?;
                nonces_deleted += deleted;
                if deleted < NONCE_SWEEP_BATCH as u64 || Instant::now() >= deadline {
                    break;
                }
            }
            if nonces_deleted > 0 {
                tracing::info!(nonces_deleted, "ACME garbage collected");
            }
            Ok(json!({ "nonces_deleted": nonces_deleted }))
        }
        .boxed()
    }
}

struct RenewalScan {
    db: Db,
    dispatcher: Addr<RenewalDispatcher>,
}

impl LoopTask for RenewalScan {
    fn tick(&self, deadline: Instant) -> BoxFuture<'static, Result<serde_json::Value, DbError>> {
        let (db, dispatcher) = (self.db.clone(), self.dispatcher.clone());
        async move {
            let started = Instant::now();
            let now = chrono::Utc::now();
            let (mut scanned, mut due, mut enqueued, mut batches) = (0i64, 0i64, 0i64, 0u32);
            let mut after = None;
            let complete = loop {
                let batch = db.run(EnqueueDueRenewals { now, after, batch: SCAN_BATCH }).await?;
                scanned += batch.scanned;
                due += batch.due;
                enqueued += batch.enqueued;
                batches += 1;
                match batch.next {
                    None => break true,
                    Some(next) if Instant::now() < deadline => after = Some(next),
                    Some(_) => break false,
                }
            };
            metrics::counter!(RENEWALS_ENQUEUED_TOTAL).increment(enqueued as u64);
            if enqueued > 0 {
                dispatcher.do_send(Wake);
            }
            let skipped = scanned - enqueued;
            let duration_ms = started.elapsed().as_millis() as u64;
            tracing::info!(scanned, due, enqueued, skipped, batches, complete, duration_ms, "renewal scan complete");
            Ok(json!({
                "scanned": scanned, "due": due, "enqueued": enqueued, "skipped": skipped,
                "complete": complete, "duration_ms": duration_ms
            }))
        }
        .boxed()
    }
}

struct JobProcessor {
    db: Db,
    dispatcher: Addr<RenewalDispatcher>,
}

impl LoopTask for JobProcessor {
    fn tick(&self, deadline: Instant) -> BoxFuture<'static, Result<serde_json::Value, DbError>> {
        let (db, dispatcher) = (self.db.clone(), self.dispatcher.clone());
        async move {
            let stats = dispatcher
                .send(Dispatch { deadline })
                .await
                .map_err(|_| DbError::unavailable("the renewal dispatcher is not running"))?;
            let depth = db.run(CountActiveJobs).await?;
            for (status, n) in [
                ("Pending", depth.pending),
                ("Running", depth.running),
                ("AwaitingCSR", depth.awaiting_csr),
                ("AwaitingApproval", depth.awaiting_approval),
                ("AwaitingCA", depth.awaiting_ca),
                ("RetryWaiting", depth.retry_waiting),
            ] {
                metrics::gauge!(JOBS_QUEUE_DEPTH, "status" => status).set(n as f64);
            }
            Ok(json!({
                "claimed": stats.claimed, "completed": stats.completed, "failed": stats.failed,
                "released": stats.released, "awaiting_csr": stats.awaiting_csr, "handed_over": stats.handed_over,
                "deployments_enqueued": stats.deployments_enqueued,
                "queue": {"pending": depth.pending, "running": depth.running, "awaiting_csr": depth.awaiting_csr,
                          "awaiting_approval": depth.awaiting_approval, "awaiting_ca": depth.awaiting_ca,
                          "retry_waiting": depth.retry_waiting}
            }))
        }
        .boxed()
    }
}

struct JobRetry {
    db: Db,
    dispatcher: Addr<RenewalDispatcher>,
}

impl LoopTask for JobRetry {
    fn tick(&self, deadline: Instant) -> BoxFuture<'static, Result<serde_json::Value, DbError>> {
        let (db, dispatcher) = (self.db.clone(), self.dispatcher.clone());
        async move {
            let now = chrono::Utc::now();
            let mut retried = 0u64;
            loop {
                let n = db.run(RetryDueJobs { now, limit: RETRY_BATCH }).await?;
                retried += n;
                if (n as i64) < RETRY_BATCH || Instant::now() >= deadline {
                    break;
                }
            }
            if retried > 0 {
                dispatcher.do_send(Wake);
            }
            tracing::info!(retried, "failed jobs retry completed");
            Ok(json!({ "retried": retried }))
        }
        .boxed()
    }
}

struct JobTimeout {
    db: Db,
    awaiting_csr_timeout: Duration,
    awaiting_approval_timeout: Duration,
}

impl LoopTask for JobTimeout {
    fn tick(&self, _deadline: Instant) -> BoxFuture<'static, Result<serde_json::Value, DbError>> {
        let query = ReapJobs {
            now: chrono::Utc::now(),
            awaiting_csr_timeout: self.awaiting_csr_timeout,
            awaiting_approval_timeout: self.awaiting_approval_timeout,
        };
        let db = self.db.clone();
        async move {
            let reaped = db.run(query).await?;
            tracing::info!(
                lease_expired = reaped.lease_expired,
                awaiting_csr = reaped.awaiting_csr,
                awaiting_approval = reaped.awaiting_approval,
                "job timeout reaper completed"
            );
            Ok(json!({
                "lease_expired": reaped.lease_expired, "awaiting_csr": reaped.awaiting_csr,
                "awaiting_approval": reaped.awaiting_approval
            }))
        }
        .boxed()
    }
}

struct ExpirySweep {
    db: Db,
}

impl LoopTask for ExpirySweep {
    fn tick(&self, _deadline: Instant) -> BoxFuture<'static, Result<serde_json::Value, DbError>> {
        let db = self.db.clone();
        async move {
            let expired = db.run(ExpireCertificates { now: chrono::Utc::now() }).await?;
            if expired > 0 {
                tracing::info!(expired, "expiry sweep completed");
            }
            Ok(json!({ "expired": expired }))
        }
        .boxed()
    }
}

struct AgentHealthCheck {
    db: Db,
    offline_after: Duration,
}

impl LoopTask for AgentHealthCheck {
    fn tick(&self, _deadline: Instant) -> BoxFuture<'static, Result<serde_json::Value, DbError>> {
        let query = MarkStaleAgents { now: chrono::Utc::now(), offline_after: self.offline_after };
        let db = self.db.clone();
        async move {
            let swept = db.run(query).await?;
            if swept.marked_offline > 0 {
                tracing::info!(
                    marked_offline = swept.marked_offline,
                    jobs_released = swept.jobs_released,
                    csr_jobs_freed = swept.csr_jobs_freed,
                    "stale agents marked offline"
                );
            }
            Ok(json!({
                "marked_offline": swept.marked_offline, "jobs_released": swept.jobs_released,
                "csr_jobs_freed": swept.csr_jobs_freed
            }))
        }
        .boxed()
    }
}
