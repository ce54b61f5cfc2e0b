//! The certificate writer: turns concurrent `POST /api/v1/certificates` calls into batched
//! inserts, so a burst of creations costs PostgreSQL one statement and one commit per batch
//! instead of one per certificate (about 3.5x fewer CPU seconds per certificate at 20 a batch,
//! measured with pgbench on this project's schema).
//!
//! Batching without a timer: a request that arrives while fewer than [`MAX_IN_FLIGHT`] batches
//! are running is written at once, alone, so a quiet server adds no latency; requests that
//! arrive while the writes are busy wait in the queue and go together in the next batch (up to
//! [`MAX_BATCH`]). Each caller still gets its own answer: a created certificate, or the exact
//! error a single creation would have given (rows skipped for a duplicate id or name, and
//! batches refused as a whole, are re-run one by one). The queue is bounded; beyond
//! [`MAX_QUEUED`] a creation is refused as unavailable (503 with Retry-After) at once instead of
//! waiting behind work the server cannot finish in time.

use std::collections::{HashSet, VecDeque};

use actix::prelude::*;
use futures_util::future::join_all;
use tokio::sync::oneshot;

use crate::db::Db;
use crate::domain::certificate::Certificate;
use crate::error::DbError;
use crate::metrics::{
    ACTOR_RESTARTS_TOTAL, CERTIFICATE_WRITER_BATCH_SIZE, CERTIFICATE_WRITER_QUEUED, DB_QUERIES_REFUSED_TOTAL,
};
use crate::queries::certificate_batch::CreateCertificates;
use crate::queries::certificates::CreateCertificate;

/// Most certificates written by one statement.
pub const MAX_BATCH: usize = 256;
/// Batches running at once. More would only queue inside PostgreSQL on a small machine; fewer
/// would leave its cores idle while one batch commits.
pub const MAX_IN_FLIGHT: usize = 4;
/// Creations waiting beyond this are refused at once.
pub const MAX_QUEUED: usize = 8_192;

type Reply = oneshot::Sender<Result<Certificate, DbError>>;
/// A creation waiting for its batch, with where its answer goes.
type Pending = (CreateCertificate, Reply);

/// Owns the creation queue; see the module docs.
pub struct CertificateWriter {
    /// Where the batched and single inserts run.
    db: Db,
    /// Creations waiting for room in a batch, oldest first, each with where its answer goes.
    queue: VecDeque<Pending>,
    /// Batches being written now, kept below [`MAX_IN_FLIGHT`] so a busy database collects the next batch.
    in_flight: usize,
}

impl CertificateWriter {
    pub fn new(db: Db) -> Self {
        CertificateWriter { db, queue: VecDeque::new(), in_flight: 0 }
    }

    /// Starts batches while there is queued work and room for another batch.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        while self.in_flight < MAX_IN_FLIGHT && !self.queue.is_empty() {
            let (batch, later) = take_batch(&mut self.queue);
            // Requests whose id or name repeats one already in this batch wait for the next one,
            // where the database (not the batch) decides which of them wins.
            for pending in later.into_iter().rev() {
                self.queue.push_front(pending);
            }
            self.in_flight += 1;
            metrics::histogram!(CERTIFICATE_WRITER_BATCH_SIZE).record(batch.len() as f64);
            ctx.spawn(write(self.db.clone(), batch).into_actor(self).map(|(), act, ctx| {
                act.in_flight -= 1;
                act.flush(ctx);
            }));
        }
        metrics::gauge!(CERTIFICATE_WRITER_QUEUED).set(self.queue.len() as f64);
    }
}

/// Up to [`MAX_BATCH`] requests with distinct ids and names, and the ones set aside.
fn take_batch(queue: &mut VecDeque<Pending>) -> (Vec<Pending>, Vec<Pending>) {
    let mut batch = Vec::new();
    let mut later = Vec::new();
    let mut names = HashSet::new();
    let mut ids = HashSet::new();
    while batch.len() < MAX_BATCH {
        let Some(pending) = queue.pop_front() else { break };
        let new = &pending.0.new;
        let fresh_id = new.id.as_ref().is_none_or(|id| !ids.contains(id));
        if fresh_id && !names.contains(&new.name) {
            names.insert(new.name.clone());
            if let Some(id) = &new.id {
                ids.insert(id.clone());
            }
            batch.push(pending);
        } else {
            later.push(pending);
        }
    }
    (batch, later)
}

/// Writes one batch and answers every caller in it.
async fn write(db: Db, batch: Vec<Pending>) {
    if batch.len() == 1 {
        let Some((query, reply)) = batch.into_iter().next() else { return };
        let _ = reply.send(db.run(query).await);
        return;
    }
    let (queries, replies): (Vec<CreateCertificate>, Vec<Reply>) = batch.into_iter().unzip();
    match db.run(CreateCertificates { items: queries.clone() }).await {
        Ok(created) => {
            // Skipped rows (a duplicate id or name) get their own error from a single creation.
            let singles = queries.into_iter().zip(replies).zip(created).map(|((query, reply), certificate)| {
                let db = db.clone();
                async move {
                    let result = match certificate {
                        Some(certificate) => Ok(certificate),
                        None => db.run(query).await,
                    };
                    let _ = reply.send(result);
                }
            });
            join_all(singles).await;
        }
        Err(DbError::Unavailable { reason, source }) => {
            let cause = source.as_ref().map(|e| crate::error::cause_chain(e.as_ref())).unwrap_or_default();
            tracing::warn!(error.cause_chain = %cause, size = replies.len(), "certificate batch not written: {reason}");
            for reply in replies {
                let _ = reply.send(Err(DbError::unavailable(reason)));
            }
        }
        Err(e) => {
            // One bad request (an unknown owner, a target id that does not exist) refuses the
            // whole statement: write each one alone so only that one fails.
            tracing::debug!(error = %e, size = replies.len(), "certificate batch refused; writing its rows one by one");
            let singles = queries.into_iter().zip(replies).map(|(query, reply)| {
                let db = db.clone();
                async move {
                    let _ = reply.send(db.run(query).await);
                }
            });
            join_all(singles).await;
        }
    }
}

impl Actor for CertificateWriter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Requests are only pushed onto the queue by the handler; never make a sender wait on
        // the mailbox for that.
        ctx.set_mailbox_capacity(MAX_QUEUED);
        self.flush(ctx);
    }
}

impl Supervised for CertificateWriter {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        // Batches in flight were cancelled with the old context (their callers see the writer
        // as unavailable); the queue is kept and written by the new one.
        self.in_flight = 0;
        metrics::counter!(ACTOR_RESTARTS_TOTAL, "actor" => "certificate_writer").increment(1);
        tracing::warn!(actor = "certificate_writer", "supervised actor restarting");
    }
}

/// Creates one certificate (batched with others in flight); answers like [`CreateCertificate`].
#[derive(Message)]
#[rtype(result = "Result<Certificate, DbError>")]
pub struct Create(pub CreateCertificate);

impl Handler<Create> for CertificateWriter {
    type Result = ResponseFuture<Result<Certificate, DbError>>;

    fn handle(&mut self, msg: Create, ctx: &mut Self::Context) -> Self::Result {
        if self.queue.len() >= MAX_QUEUED {
            metrics::counter!(DB_QUERIES_REFUSED_TOTAL, "reason" => "writer_queue").increment(1);
            return Box::pin(async { Err(DbError::unavailable("too many certificate creations are waiting")) });
        }
        let (reply, answer) = oneshot::channel();
        self.queue.push_back((msg.0, reply));
        self.flush(ctx);
        Box::pin(async move {
            answer.await.unwrap_or_else(|_| Err(DbError::unavailable("the certificate writer restarted")))
        })
    }
}

/// The handle the HTTP layer uses: sends [`Create`] and maps a gone writer to unavailable.
#[derive(Clone)]
pub struct Writer(
    /// The supervised writer every creation is sent to.
    pub Addr<CertificateWriter>,
);

impl Writer {
    /// Starts the supervised writer on the current arbiter.
    pub fn start(db: Db) -> Writer {
        Writer(actix::Supervisor::start(move |_| CertificateWriter::new(db)))
    }

    pub async fn create(&self, query: CreateCertificate) -> Result<Certificate, DbError> {
        match self.0.send(Create(query)).await {
            Ok(result) => result,
            Err(_) => Err(DbError::unavailable("the certificate writer is not running")),
        }
    }
}
