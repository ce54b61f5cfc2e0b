//! The DB actor: owns the deadpool-postgres pool and runs every query.
//!
//! Messages: [`Envelope<Q>`](super::Envelope) for any [`DbQuery`] (runs it on a pooled
//! connection), [`PoolStatus`] (the pool's current numbers) and [`Recycle`] (stop so the
//! supervisor restarts this instance with fresh state).
//!
//! Queries run as detached futures on the actor's arbiter thread (`ResponseFuture`), so a slow
//! query never blocks the mailbox; the pool's size, not the actor, bounds concurrency. The
//! instance created with `maintains_pool` also runs the pool maintenance timer (warm to max/5,
//! prune idle connections, publish the pool gauges).

use std::time::Instant;

use actix::prelude::*;
use deadpool_postgres::Pool;
use tracing::Instrument;

use super::pool::{self, PoolSettings};
use super::MAX_BACKLOG_PER_ACTOR;
use super::{DbQuery, Envelope};
use crate::error::DbError;
use crate::metrics::{
    ACTOR_INFLIGHT, ACTOR_RESTARTS_TOTAL, DB_POOL_WAIT_SECONDS, DB_QUERIES_REFUSED_TOTAL, DB_QUERY_DURATION_SECONDS,
};

/// Owns the pool; see the module docs for its messages.
pub struct DbActor {
    /// The connection pool shared by every instance; queries take their connection from it.
    pool: Pool,
    /// Pool sizing and maintenance cadence, read by the maintenance timer.
    settings: PoolSettings,
    /// True on the one instance that runs the maintenance timer, so the others don't repeat it.
    maintains_pool: bool,
    /// How many instances share the pool (sizes the mailbox).
    instances: usize,
    /// True while a warm-up batch of connections is being opened (so ticks don't pile them up).
    warming: bool,
}

impl DbActor {
    /// A DB actor over `pool`; `maintains_pool` makes this instance run the maintenance timer.
    pub fn new(pool: Pool, settings: PoolSettings, maintains_pool: bool, instances: usize) -> Self {
        DbActor { pool, settings, maintains_pool, instances, warming: false }
    }

    fn maintain(&mut self, ctx: &mut Context<Self>) {
        let missing = pool::maintain(&self.pool, &self.settings);
        if missing == 0 || self.warming {
            return;
        }
        self.warming = true;
        let pool = self.pool.clone();
        let target = self.settings.min_idle;
        let warm = async move {
            // Holding `min_idle` connections at once forces the pool to at least that size (idle
            // ones are handed out first, so asking only for the missing count might open none);
            // dropping them leaves them idle in the pool.
            let opened = futures_util::future::join_all((0..target).map(|_| pool.get())).await;
            let failed = opened.iter().filter(|c| c.is_err()).count();
            if failed > 0 {
                tracing::debug!(failed, "could not open warm database connections; retrying next tick");
            }
        };
        ctx.spawn(warm.into_actor(self).map(|_, act, _| {
            act.warming = false;
            pool::publish_gauges(&act.pool);
        }));
    }
}

impl Actor for DbActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Bursts queue here; `Db::run` refuses new work once the backlog reaches this depth, so
        // callers get a 503 rather than waiting for mailbox space.
        // Sized for the whole backlog, so one slow or restarting instance cannot fill its own
        // mailbox (and make callers wait) before `Db::run`'s global limit refuses work.
        ctx.set_mailbox_capacity(MAX_BACKLOG_PER_ACTOR * self.instances);
        if self.maintains_pool {
            self.maintain(ctx);
            ctx.run_interval(self.settings.maintenance_interval, |act, ctx| act.maintain(ctx));
            // Gauges refresh every second, independent of the (slower) pruning cadence.
            ctx.run_interval(std::time::Duration::from_secs(1), |act, _| pool::publish_gauges(&act.pool));
        }
    }
}

impl Supervised for DbActor {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        // The pool is shared state that outlives the actor; only per-instance state is reset.
        self.warming = false;
        metrics::counter!(ACTOR_RESTARTS_TOTAL, "actor" => "db").increment(1);
        tracing::warn!(actor = "db", "supervised actor restarting");
    }
}

/// Decrements the in-flight gauge when a query's future ends, even if it is dropped early.
struct InflightGuard;

impl InflightGuard {
    fn enter() -> Self {
        metrics::gauge!(ACTOR_INFLIGHT, "actor" => "db").increment(1.0);
        InflightGuard
    }
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        metrics::gauge!(ACTOR_INFLIGHT, "actor" => "db").decrement(1.0);
    }
}

impl<Q: DbQuery> Handler<Envelope<Q>> for DbActor {
    type Result = ResponseFuture<Result<Q::Output, DbError>>;

    fn handle(&mut self, msg: Envelope<Q>, _ctx: &mut Self::Context) -> Self::Result {
        drop(msg.ticket);
        let guard = InflightGuard::enter();
        let pool = self.pool.clone();
        let queued = msg.sent_at.elapsed();
        let span = tracing::info_span!(parent: &msg.span, "db_query", statement = Q::NAME);
        let query = msg.query;
        Box::pin(
            async move {
                let _guard = guard;
                let waiting = Instant::now();
                let result = match pool.get().await {
                    Ok(mut client) => {
                        metrics::histogram!(DB_POOL_WAIT_SECONDS).record(waiting.elapsed().as_secs_f64());
                        let started = Instant::now();
                        let result = query.run(&mut client).await;
                        let outcome = match &result {
                            Ok(_) => "ok",
                            Err(e) => e.kind(),
                        };
                        metrics::histogram!(DB_QUERY_DURATION_SECONDS, "statement" => Q::NAME, "outcome" => outcome)
                            .record(started.elapsed().as_secs_f64());
                        result
                    }
                    Err(e) => {
                        // No connection: the query never ran, so it has no duration to record.
                        metrics::counter!(DB_QUERIES_REFUSED_TOTAL, "reason" => "pool").increment(1);
                        Err(DbError::from(e))
                    }
                };
                match &result {
                    Err(e @ DbError::Unexpected(_)) => {
                        tracing::error!(error.cause_chain = %crate::error::cause_chain(e), "query failed");
                    }
                    Err(e @ DbError::Unavailable { .. }) => {
                        tracing::warn!(error.cause_chain = %crate::error::cause_chain(e), queued_ms = queued.as_millis() as u64, "database unavailable");
                    }
                    Err(e) => tracing::debug!(error = %e, "query refused by a constraint"),
                    Ok(_) => {}
                }
                result
            }
            .instrument(span),
        )
    }
}

/// Asks for the pool's current numbers.
#[derive(Message)]
#[rtype(result = "deadpool_postgres::Status")]
pub struct PoolStatus;

impl Handler<PoolStatus> for DbActor {
    type Result = MessageResult<PoolStatus>;

    fn handle(&mut self, _msg: PoolStatus, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.pool.status())
    }
}

/// Stops this instance so its supervisor restarts it with fresh per-instance state. Queries
/// already running finish; queued ones are served after the restart.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Recycle;

impl Handler<Recycle> for DbActor {
    type Result = ();

    fn handle(&mut self, _msg: Recycle, ctx: &mut Self::Context) {
        tracing::info!(actor = "db", "recycling supervised actor");
        ctx.stop();
    }
}
