//! The database side of the engine.
//!
//! - [`DbQuery`]: one SQL statement (or transaction) as a typed value; running it is the only way
//!   to reach PostgreSQL once the server is up.
//! - [`actor::DbActor`]: owns the deadpool-postgres pool and runs queries; several instances, each
//!   on its own arbiter thread, share the one pool so the actor is not a single-thread bottleneck.
//! - [`Db`]: the cheap, cloneable handle components hold; it spreads messages over the instances.
//! - [`pool`]: pool construction and the warm/prune maintenance the actor's timer performs.
//! - [`constraints`]: constraint names turned into typed errors (kind of row, field).
//! - [`tls`]: the rustls connector for PostgreSQL connections (verification settings).
//! - [`bootstrap`]: what runs on a dedicated connection before the pool starts: database
//!   creation, migrations under an advisory lock, seed data.

pub mod actor;
pub mod bootstrap;
pub mod constraints;
pub mod pool;
pub mod tls;

use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use actix::{Addr, Arbiter, Message};
use deadpool_postgres::Client;

pub use actor::{DbActor, PoolStatus, Recycle};
pub use pool::{build_pool, PoolSettings};
pub use tls::{connector, DbTlsSettings, PgConnector};

use crate::error::DbError;
use crate::etag_cache::{Generations, Table};
use crate::metrics::{ACTOR_BACKLOG, DB_QUERIES_REFUSED_TOTAL};

/// One query: a typed message for the DB actor. Implementors hold their parameters and run their
/// SQL on a pooled connection with `prepare_cached`, mapping rows into types with errors.
pub trait DbQuery: Send + 'static {
    /// What the query produces.
    type Output: Send + 'static;
    /// A stable statement name: the `statement` label of the query-duration histogram.
    const NAME: &'static str;
    /// The cached lists' tables this statement may change. `Db::run` bumps their generations
    /// when it succeeds, before the caller sees the result, so this replica's next list shows the
    /// change (the tables' triggers tell the other replicas). Reads leave it empty.
    const TOUCHES: &'static [Table] = &[];
    /// Whether a successful result changed anything: a sweep or claim that found nothing to do
    /// bumps no generation (so a quiet system keeps its ETags). Writers whose result says how
    /// many rows they changed override it.
    fn changed(_output: &Self::Output) -> bool {
        true
    }
    /// Runs the query on a connection taken from the pool for this call alone.
    fn run(self, client: &mut Client) -> impl Future<Output = Result<Self::Output, DbError>>;
}

/// The message the DB actor receives: a query plus the caller's tracing span (so the query's logs
/// carry the request id), the time it was sent, and its place in the backlog.
pub struct Envelope<Q> {
    pub(crate) query: Q,
    pub(crate) span: tracing::Span,
    pub(crate) sent_at: Instant,
    pub(crate) ticket: BacklogTicket,
}

/// Queued messages the DB actors may hold per instance before callers get `Unavailable` at once
/// (a 503 at the HTTP edge) instead of waiting for mailbox space.
pub const MAX_BACKLOG_PER_ACTOR: usize = 4096;

/// A message's place in the backlog: counted while it waits, released when the handler starts
/// it or when it is dropped unprocessed, so the gauge never drifts.
pub(crate) struct BacklogTicket(Arc<AtomicUsize>);

impl BacklogTicket {
    fn take(counter: &Arc<AtomicUsize>) -> (BacklogTicket, usize) {
        let depth = counter.fetch_add(1, Ordering::Relaxed) + 1;
        metrics::gauge!(ACTOR_BACKLOG, "actor" => "db").set(depth as f64);
        (BacklogTicket(counter.clone()), depth)
    }
}

impl Drop for BacklogTicket {
    fn drop(&mut self) {
        let depth = self.0.fetch_sub(1, Ordering::Relaxed) - 1;
        metrics::gauge!(ACTOR_BACKLOG, "actor" => "db").set(depth as f64);
    }
}

impl<Q: DbQuery> Message for Envelope<Q> {
    type Result = Result<Q::Output, DbError>;
}

/// The handle every component uses to reach the database: a set of DB actor addresses sharing one
/// pool. Cloning is cheap.
#[derive(Clone)]
pub struct Db {
    inner: Arc<DbInner>,
}

struct DbInner {
    actors: Vec<Addr<DbActor>>,
    next: AtomicUsize,
    backlog: Arc<AtomicUsize>,
    arbiters: Vec<Arbiter>,
    /// Kept for [`Db::detached_connection`] only; queries go through the actors.
    pool: deadpool_postgres::Pool,
    /// The cached lists' table generations, bumped by successful writes.
    generations: Arc<Generations>,
    /// Queries sent to the DB actors since start (tests and benchmarks count them).
    sent: AtomicU64,
}

impl Db {
    /// Starts `instances` supervised DB actors, each on an arbiter (thread) of its own, sharing
    /// `pool`. The first instance also runs the pool's maintenance timer.
    pub fn start(pool: deadpool_postgres::Pool, settings: PoolSettings, instances: usize) -> Db {
        let instances = instances.max(1);
        let mut actors = Vec::with_capacity(instances);
        let mut arbiters = Vec::with_capacity(instances);
        for index in 0..instances {
            let arbiter = Arbiter::new();
            let pool_for_actor = pool.clone();
            let settings = settings.clone();
            let addr = actix::Supervisor::start_in_arbiter(&arbiter.handle(), move |_| {
                DbActor::new(pool_for_actor, settings, index == 0, instances)
            });
            actors.push(addr);
            arbiters.push(arbiter);
        }
        Db {
            inner: Arc::new(DbInner {
                actors,
                next: AtomicUsize::new(0),
                backlog: Arc::default(),
                arbiters,
                pool,
                generations: Arc::default(),
                sent: AtomicU64::new(0),
            }),
        }
    }

    /// Sends `query` to the next DB actor and waits for its result. An overloaded backlog or a
    /// DB actor that is gone (its arbiter stopped) answers as an unavailable database at once,
    /// never as a wait or a panic.
    pub async fn run<Q: DbQuery>(&self, query: Q) -> Result<Q::Output, DbError> {
        let (ticket, depth) = BacklogTicket::take(&self.inner.backlog);
        if depth > MAX_BACKLOG_PER_ACTOR * self.inner.actors.len() {
            metrics::counter!(DB_QUERIES_REFUSED_TOTAL, "reason" => "backlog").increment(1);
            tracing::warn!(backlog = depth, statement = Q::NAME, "database backlog full; refusing the query");
            return Err(DbError::unavailable("too many queries are waiting for the database"));
        }
        let index = self.inner.next.fetch_add(1, Ordering::Relaxed) % self.inner.actors.len();
        let envelope = Envelope { query, span: tracing::Span::current(), sent_at: Instant::now(), ticket };
        self.inner.sent.fetch_add(1, Ordering::Relaxed);
        match self.inner.actors[index].send(envelope).await {
            Ok(result) => {
                if result.as_ref().is_ok_and(Q::changed) {
                    for table in Q::TOUCHES {
                        self.inner.generations.bump(*table);
                    }
                }
                result
            }
            Err(_mailbox) => {
                metrics::counter!(DB_QUERIES_REFUSED_TOTAL, "reason" => "actor_gone").increment(1);
                Err(DbError::unavailable("the database actor is not running"))
            }
        }
    }

    /// A connection taken out of the pool for good (it no longer counts against the pool's
    /// size), for state that lives as long as a session: the scheduler's advisory locks. It
    /// has the pool's settings (statement timeout, TLS).
    pub async fn detached_connection(&self) -> Result<deadpool_postgres::ClientWrapper, DbError> {
        let object = self.inner.pool.get().await.map_err(DbError::from)?;
        Ok(deadpool_postgres::Object::take(object))
    }

    /// The cached lists' table generations (the ETag cache actor and the list handlers share them).
    pub fn generations(&self) -> &Arc<Generations> {
        &self.inner.generations
    }

    /// Queries sent to the DB actors since start.
    pub fn queries_sent(&self) -> u64 {
        self.inner.sent.load(Ordering::Relaxed)
    }

    /// The addresses of the DB actor instances (tests use them to recycle an actor).
    pub fn actors(&self) -> &[Addr<DbActor>] {
        &self.inner.actors
    }

    /// Stops every DB actor's arbiter. Queries sent afterwards fail as `Unavailable`.
    pub fn stop(&self) {
        for arbiter in &self.inner.arbiters {
            arbiter.stop();
        }
    }
}
