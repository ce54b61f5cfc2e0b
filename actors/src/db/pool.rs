//! Building the deadpool-postgres pool and keeping it the right size.
//!
//! certctl's contract is "idle = max/5": about a fifth of the maximum stays connected so a burst
//! does not pay for connection set-up, and idle connections above that are closed once they have
//! been unused for `CERTCTL_DATABASE_IDLE_TIMEOUT`. The DB actor's timer calls [`maintain`].

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};

use super::tls::PgConnector;
use crate::metrics::{DB_POOL_AVAILABLE, DB_POOL_MAX, DB_POOL_PRUNED_TOTAL, DB_POOL_SIZE, DB_POOL_WAITING};

/// How the pool is sized and timed. Built from the server's settings.
#[derive(Clone, Debug)]
pub struct PoolSettings {
    /// Maximum open connections (`CERTCTL_DATABASE_MAX_CONNS`).
    pub max_size: usize,
    /// Connections kept warm (max/5, at least 1).
    pub min_idle: usize,
    /// Idle connections above `min_idle` unused this long are closed.
    pub idle_timeout: Duration,
    /// Bound on waiting for a free connection, on connecting and on recycling.
    pub pool_timeout: Duration,
    /// How often the maintenance timer runs.
    pub maintenance_interval: Duration,
}

impl PoolSettings {
    /// Settings following the "idle = max/5" contract.
    pub fn new(max_size: usize, idle_timeout: Duration, pool_timeout: Duration) -> Self {
        let max_size = max_size.max(1);
        let maintenance_interval = (idle_timeout / 2).clamp(Duration::from_millis(200), Duration::from_secs(30));
        PoolSettings { max_size, min_idle: (max_size / 5).max(1), idle_timeout, pool_timeout, maintenance_interval }
    }
}

/// Builds the pool. `pg` already carries every per-connection setting (statement timeout,
/// application name) as startup options, so each new connection is ready without a round trip.
pub fn build_pool(pg: tokio_postgres::Config, tls: PgConnector, settings: &PoolSettings) -> anyhow::Result<Pool> {
    // Fast recycling only checks that the connection is not closed: a broken connection is
    // replaced on the next checkout and the query then fails as `Unavailable` at worst once.
    let manager = Manager::from_config(pg, tls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
    let pool = Pool::builder(manager)
        .max_size(settings.max_size)
        .wait_timeout(Some(settings.pool_timeout))
        .create_timeout(Some(settings.pool_timeout))
        .recycle_timeout(Some(settings.pool_timeout))
        // LIFO hands out the most recently used connection, so under light load the rest stay
        // idle long enough to be pruned (FIFO would rotate through all of them and keep them warm).
        .queue_mode(deadpool_postgres::QueueMode::Lifo)
        .runtime(Runtime::Tokio1)
        .build()?;
    Ok(pool)
}

/// Closes idle connections above `min_idle` that have been unused for `idle_timeout`, publishes
/// the pool gauges, and returns how many connections are missing to reach `min_idle`.
pub fn maintain(pool: &Pool, settings: &PoolSettings) -> usize {
    // Connections used within the idle timeout always stay. Stale idle ones stay only as far as
    // needed to keep `min_idle` connections in all (busy ones count: they are warm too).
    let mut stale = 0usize;
    pool.retain(|_, metrics| {
        stale += usize::from(metrics.last_used() >= settings.idle_timeout);
        true
    });
    let mut stale_to_keep = settings.min_idle.saturating_sub(pool.status().size.saturating_sub(stale));
    let result = pool.retain(|_, metrics| {
        if metrics.last_used() < settings.idle_timeout {
            true
        } else if stale_to_keep > 0 {
            stale_to_keep -= 1;
            true
        } else {
            false
        }
    });
    if !result.removed.is_empty() {
        metrics::counter!(DB_POOL_PRUNED_TOTAL).increment(result.removed.len() as u64);
        tracing::debug!(pruned = result.removed.len(), "closed idle database connections");
    }
    publish_gauges(pool);
    settings.min_idle.saturating_sub(pool.status().size)
}

/// Publishes the pool's size, available, waiting and max gauges.
pub fn publish_gauges(pool: &Pool) {
    let status = pool.status();
    metrics::gauge!(DB_POOL_SIZE).set(status.size as f64);
    metrics::gauge!(DB_POOL_AVAILABLE).set(status.available as f64);
    metrics::gauge!(DB_POOL_WAITING).set(status.waiting as f64);
    metrics::gauge!(DB_POOL_MAX).set(status.max_size as f64);
}
