//! The audit retention actor: deletes audit events older than `CERTCTL_AUDIT_RETENTION_DAYS` in
//! bounded batches, once per `CERTCTL_AUDIT_RETENTION_INTERVAL`, so the append-only table stays
//! bounded without one huge delete holding locks or bloating WAL.
//!
//! Messages: [`PurgeNow`] runs one pass at once and answers with the number deleted (the admin
//! and the tests use it instead of waiting for the timer). A tick that arrives while a pass is
//! still running is skipped, never stacked.

use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::db::Db;
use crate::error::DbError;
use crate::metrics::{ACTOR_INFLIGHT, ACTOR_RESTARTS_TOTAL, AUDIT_EVENTS_PURGED_TOTAL, AUDIT_RETENTION_SKIPPED_TOTAL};
use crate::queries::audit::PurgeAuditEvents;

/// How long events are kept and how the deletion is paced.
#[derive(Clone, Debug)]
pub struct RetentionSettings {
    /// Events older than this are deleted; `None` keeps them forever.
    pub keep_for: Option<Duration>,
    /// Time between passes.
    pub interval: Duration,
    /// Rows deleted per statement.
    pub batch: i64,
    /// A pass stops after this long even if older rows remain (the next pass continues).
    pub pass_budget: Duration,
}

impl RetentionSettings {
    /// `days` = 0 keeps events forever.
    pub fn new(days: u32, interval: Duration) -> Self {
        RetentionSettings {
            keep_for: (days > 0).then(|| Duration::from_secs(u64::from(days) * 86_400)),
            interval,
            batch: 5_000,
            pass_budget: Duration::from_secs(60),
        }
    }
}

/// Owns the retention timer; see the module docs.
pub struct AuditRetention {
    /// Where the purge statements run.
    db: Db,
    /// How long events are kept and how each pass is paced; `started` reads it to decide whether to run the timer.
    settings: RetentionSettings,
    /// True while a pass (timer or [`PurgeNow`]) is running, so a tick arriving meanwhile is skipped, not stacked.
    running: bool,
}

impl AuditRetention {
    pub fn new(db: Db, settings: RetentionSettings) -> Self {
        AuditRetention { db, settings, running: false }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.running {
            metrics::counter!(AUDIT_RETENTION_SKIPPED_TOTAL).increment(1);
            tracing::warn!("audit retention still running, skipping tick");
            return;
        }
        self.running = true;
        let pass = purge_pass(self.db.clone(), self.settings.clone());
        ctx.spawn(pass.into_actor(self).map(|result, act, _| {
            act.running = false;
            if let Err(e) = result {
                tracing::warn!(error.cause_chain = %crate::error::cause_chain(&e), "audit retention pass failed; the next tick retries");
            }
        }));
    }
}

/// One pass: batches until no old rows remain or the budget is spent.
async fn purge_pass(db: Db, settings: RetentionSettings) -> Result<u64, DbError> {
    let Some(keep_for) = settings.keep_for else { return Ok(0) };
    let started = Instant::now();
    let before = chrono::Utc::now() - chrono::Duration::from_std(keep_for).unwrap_or(chrono::Duration::MAX);
    metrics::gauge!(ACTOR_INFLIGHT, "actor" => "audit_retention").set(1.0);
    let mut deleted = 0u64;
    let result = loop {
        match db.run(PurgeAuditEvents { before, batch: settings.batch }).await {
            Ok(n) => {
                deleted += n;
                metrics::counter!(AUDIT_EVENTS_PURGED_TOTAL).increment(n);
                if (n as i64) < settings.batch || started.elapsed() > settings.pass_budget {
                    break Ok(deleted);
                }
            }
            Err(e) => break Err(e),
        }
    };
    metrics::gauge!(ACTOR_INFLIGHT, "actor" => "audit_retention").set(0.0);
    tracing::info!(deleted, duration_ms = started.elapsed().as_millis() as u64, %before, "audit retention pass complete");
    result
}

impl Actor for AuditRetention {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if self.settings.keep_for.is_some() {
            ctx.run_interval(self.settings.interval, |act, ctx| act.tick(ctx));
        }
    }
}

impl Supervised for AuditRetention {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        // A pass in flight was cancelled with the old context.
        self.running = false;
        metrics::counter!(ACTOR_RESTARTS_TOTAL, "actor" => "audit_retention").increment(1);
        tracing::warn!(actor = "audit_retention", "supervised actor restarting");
    }
}

/// Runs one retention pass now; answers with the number of events deleted.
#[derive(Message)]
#[rtype(result = "Result<u64, DbError>")]
pub struct PurgeNow;

impl Handler<PurgeNow> for AuditRetention {
    type Result = ResponseActFuture<Self, Result<u64, DbError>>;

    fn handle(&mut self, _msg: PurgeNow, _ctx: &mut Self::Context) -> Self::Result {
        // Marked running like a timer pass, so a tick arriving meanwhile is skipped.
        self.running = true;
        Box::pin(purge_pass(self.db.clone(), self.settings.clone()).into_actor(self).map(|result, act, _| {
            act.running = false;
            result
        }))
    }
}
