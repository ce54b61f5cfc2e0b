//! Heartbeats: a buffer the HTTP handlers write into directly (a mutex shard per agent hash, no
//! actor mailbox per beat), and the supervised heartbeat aggregator actor that flushes it.
//!
//! The buffer keeps only the latest beat per agent. The aggregator flushes every
//! `CERTCTL_HEARTBEAT_FLUSH_INTERVAL`, or as soon as `CERTCTL_HEARTBEAT_FLUSH_BATCH` agents are
//! waiting, with one `UPDATE agents … FROM unnest(…)` per batch, so a fleet of 100,000 agents
//! costs the database a few statements per interval instead of 100,000 row writes with their
//! own round trips. A failed flush puts its beats back (unless a newer beat arrived meanwhile)
//! and is retried at the next one. The buffer is bounded: past its capacity a new agent's beat is
//! refused (the handler answers 503 with `Retry-After`) while agents already waiting still
//! update in place. At shutdown the buffer is flushed before the pool closes.
//!
//! The aggregator also refreshes the [agent directory](super::directory) from the database
//! every few seconds.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::{DateTime, Utc};

use super::directory::AgentDirectory;
use crate::db::Db;
use crate::domain::agent::HostInfo;
use crate::metrics::{
    ACTOR_RESTARTS_TOTAL, HEARTBEATS_RECEIVED_TOTAL, HEARTBEAT_BUFFER_SIZE, HEARTBEAT_FLUSH_DURATION_SECONDS,
    HEARTBEAT_FLUSH_FAILURES_TOTAL, HEARTBEAT_ROWS_FLUSHED_TOTAL,
};
use crate::queries::agents::{Beat, FlushHeartbeats, LoadAgentDirectory};

/// Mutex shards of the buffer: handlers on different workers rarely wait for each other.
const SHARDS: usize = 32;

/// How often the directory is refreshed from the database.
const DIRECTORY_REFRESH: Duration = Duration::from_secs(5);
/// How far before the previous read a refresh looks: a registration committed just after that
/// read, with a `registered_at` from before it, is still seen. (Registrations and retirements are
/// single short statements.)
const DIRECTORY_OVERLAP: chrono::Duration = chrono::Duration::seconds(10);

/// How the aggregator works.
#[derive(Clone, Copy, Debug)]
pub struct HeartbeatSettings {
    /// `CERTCTL_HEARTBEAT_FLUSH_INTERVAL`: a beat is in the database within this long.
    pub flush_interval: Duration,
    /// `CERTCTL_HEARTBEAT_FLUSH_BATCH`: agents per flush statement, and the count that starts a
    /// flush before the interval is over.
    pub flush_batch: usize,
    /// `CERTCTL_HEARTBEAT_BUFFER_MAX`: agents waiting at most.
    pub capacity: usize,
}

/// The buffer of latest beats; see the module docs.
pub struct HeartbeatBuffer {
    shards: Vec<Mutex<HashMap<Arc<str>, Beat>>>,
    hasher: std::collections::hash_map::RandomState,
    len: AtomicUsize,
    capacity: usize,
}

/// The buffer is full: the beat was not taken.
#[derive(Debug, PartialEq, Eq)]
pub struct BufferFull;

impl HeartbeatBuffer {
    pub fn new(capacity: usize) -> Self {
        HeartbeatBuffer {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: Default::default(),
            len: AtomicUsize::new(0),
            capacity: capacity.max(1),
        }
    }

    fn shard(&self, id: &str) -> &Mutex<HashMap<Arc<str>, Beat>> {
        &self.shards[self.hasher.hash_one(id) as usize % SHARDS]
    }

    /// Keeps `beat` as the agent's latest (an older one is replaced, a newer one kept). Returns
    /// how many agents are waiting, or [`BufferFull`].
    pub fn record(&self, id: Arc<str>, beat: Beat) -> Result<usize, BufferFull> {
        let mut shard = self.shard(&id).lock().unwrap_or_else(|e| e.into_inner());
        match shard.get_mut(&id) {
            Some(waiting) => {
                // Fields a beat leaves out keep what an earlier, unflushed beat said.
                let (older, newer) = if waiting.at <= beat.at { (&*waiting, beat) } else { (&beat, waiting.clone()) };
                let merged = Beat { at: newer.at, host: merge(newer.host, &older.host) };
                *waiting = merged;
                Ok(self.len.load(Ordering::Relaxed))
            }
            None => {
                if self.len.load(Ordering::Relaxed) >= self.capacity {
                    return Err(BufferFull);
                }
                shard.insert(id, beat);
                Ok(self.len.fetch_add(1, Ordering::Relaxed) + 1)
            }
        }
    }

    /// Takes every waiting beat, sorted by agent id (the order flushes lock rows in).
    pub fn drain(&self) -> Vec<(String, Beat)> {
        let mut all = Vec::with_capacity(self.len());
        for shard in &self.shards {
            let taken = std::mem::take(&mut *shard.lock().unwrap_or_else(|e| e.into_inner()));
            self.len.fetch_sub(taken.len(), Ordering::Relaxed);
            all.extend(taken.into_iter().map(|(id, beat)| (id.to_string(), beat)));
        }
        all.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Puts beats of a failed flush back, unless a newer beat of the same agent came meanwhile.
    /// Capacity is not enforced: these beats were already accepted.
    pub fn restore(&self, beats: Vec<(String, Beat)>) {
        for (id, beat) in beats {
            let id: Arc<str> = Arc::from(id);
            let mut shard = self.shard(&id).lock().unwrap_or_else(|e| e.into_inner());
            match shard.get_mut(&id) {
                Some(newer) if newer.at >= beat.at => newer.host = merge(newer.host.clone(), &beat.host),
                Some(older) => *older = Beat { at: beat.at, host: merge(beat.host, &older.host) },
                None => {
                    shard.insert(id, beat);
                    self.len.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Agents waiting.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `newer` with the fields it leaves out taken from `older`.
fn merge(newer: HostInfo, older: &HostInfo) -> HostInfo {
    HostInfo {
        version: newer.version.or_else(|| older.version.clone()),
        hostname: newer.hostname.or_else(|| older.hostname.clone()),
        os: newer.os.or_else(|| older.os.clone()),
        architecture: newer.architecture.or_else(|| older.architecture.clone()),
        ip_address: newer.ip_address.or_else(|| older.ip_address.clone()),
    }
}

/// What handlers hold: the buffer, and the aggregator to nudge when a batch is full.
#[derive(Clone)]
pub struct Heartbeats {
    /// The buffer the handlers write beats into directly, shared with the aggregator.
    buffer: Arc<HeartbeatBuffer>,
    /// The aggregator to nudge when a batch is waiting or the buffer is full.
    aggregator: Addr<HeartbeatAggregator>,
    /// Agents waiting that start a flush before the interval is over.
    flush_batch: usize,
    /// Set once a flush has been asked for, so a full batch sends one [`FlushNow`], not one per beat.
    nudged: Arc<AtomicBool>,
}

impl Heartbeats {
    /// Records a beat (see [`HeartbeatBuffer::record`]); when a full batch is waiting, asks the
    /// aggregator to flush now (one message per batch, not per beat).
    pub fn record(
        &self,
        id: Arc<str>,
        at: DateTime<Utc>,
        host: crate::domain::agent::HostInfo,
    ) -> Result<(), BufferFull> {
        match self.buffer.record(id, Beat { at, host }) {
            Ok(waiting) => {
                metrics::counter!(HEARTBEATS_RECEIVED_TOTAL, "result" => "accepted").increment(1);
                if waiting >= self.flush_batch && !self.nudged.swap(true, Ordering::AcqRel) {
                    self.aggregator.do_send(FlushNow);
                }
                Ok(())
            }
            Err(full) => {
                metrics::counter!(HEARTBEATS_RECEIVED_TOTAL, "result" => "full").increment(1);
                self.aggregator.do_send(FlushNow);
                Err(full)
            }
        }
    }

    /// Flushes everything waiting and answers when it is written (or failed): for shutdown.
    pub async fn flush_all(&self) -> Result<u64, String> {
        self.aggregator.send(FlushAll).await.map_err(|_| "the heartbeat aggregator is not running".to_string())?
    }

    /// Agents with a beat waiting.
    pub fn waiting(&self) -> usize {
        self.buffer.len()
    }

    /// The aggregator's address.
    pub fn aggregator(&self) -> &Addr<HeartbeatAggregator> {
        &self.aggregator
    }
}

/// The supervised actor that flushes the buffer and refreshes the directory.
pub struct HeartbeatAggregator {
    /// Where the flushes and directory reads run.
    db: Db,
    /// The beats waiting to be written; shared with the handlers and kept across restarts.
    buffer: Arc<HeartbeatBuffer>,
    /// The agent directory the authenticator reads, kept current by the periodic refresh.
    directory: Arc<AgentDirectory>,
    /// Flush interval, batch size and buffer capacity.
    settings: HeartbeatSettings,
    /// The handlers' "flush asked for" flag, cleared at each flush so the next full batch nudges again.
    nudged: Arc<AtomicBool>,
    /// Held by every flush: a shutdown flush waits for one in flight, and flushes never overlap.
    flush_lock: Arc<tokio::sync::Mutex<()>>,
    /// True while a timer or nudged flush runs, so ticks and nudges don't start a second one.
    flushing: bool,
    /// True while a directory read runs, so a slow read doesn't pile up another each tick.
    refreshing: bool,
    /// The database's clock at the last directory read; `None` before the first.
    refreshed_at: Option<DateTime<Utc>>,
}

impl HeartbeatAggregator {
    /// Starts the aggregator (supervised, on the current arbiter) and returns the handlers' handle.
    pub fn start(db: Db, directory: Arc<AgentDirectory>, settings: HeartbeatSettings) -> Heartbeats {
        let buffer = Arc::new(HeartbeatBuffer::new(settings.capacity));
        let nudged = Arc::new(AtomicBool::new(false));
        let aggregator = {
            let (buffer, nudged) = (buffer.clone(), nudged.clone());
            actix::Supervisor::start(move |_| HeartbeatAggregator {
                db,
                buffer,
                directory,
                settings,
                nudged,
                flush_lock: Arc::default(),
                flushing: false,
                refreshing: false,
                refreshed_at: None,
            })
        };
        Heartbeats { buffer, aggregator, flush_batch: settings.flush_batch.max(1), nudged }
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        self.nudged.store(false, Ordering::Release);
        if self.flushing || self.buffer.is_empty() {
            return;
        }
        self.flushing = true;
        let work =
            flush_batches(self.db.clone(), self.buffer.clone(), self.settings.flush_batch, self.flush_lock.clone());
        ctx.spawn(work.into_actor(self).map(|_, act, ctx| {
            act.flushing = false;
            metrics::gauge!(HEARTBEAT_BUFFER_SIZE).set(act.buffer.len() as f64);
            // A full batch came in while this flush ran: go again now rather than next tick.
            if act.buffer.len() >= act.settings.flush_batch {
                act.flush(ctx);
            }
        }));
    }

    fn refresh_directory(&mut self, ctx: &mut Context<Self>) {
        if self.refreshing {
            return;
        }
        self.refreshing = true;
        // The first refresh reads everything: the authenticator's load at start may be a while ago.
        let since = self.refreshed_at.map(|at| at - DIRECTORY_OVERLAP);
        let db = self.db.clone();
        ctx.spawn(async move { db.run(LoadAgentDirectory { since }).await }.into_actor(self).map(
            move |result, act, _| {
                act.refreshing = false;
                match result {
                    Ok(load) => {
                        act.directory.upsert(load.entries);
                        act.refreshed_at = Some(load.read_at);
                    }
                    Err(e) => tracing::warn!(error = %e, "refreshing the agent directory failed; retrying"),
                }
            },
        ));
    }
}

/// Drains the buffer and writes it in batches of `batch` agents, one statement at a time; a
/// failed batch and every batch after it go back into the buffer. Returns the rows written.
async fn flush_batches(
    db: Db,
    buffer: Arc<HeartbeatBuffer>,
    batch: usize,
    lock: Arc<tokio::sync::Mutex<()>>,
) -> Result<u64, String> {
    let _flushing = lock.lock().await;
    let mut beats = buffer.drain();
    let mut written = 0u64;
    while !beats.is_empty() {
        let rest = beats.split_off(beats.len().min(batch.max(1)));
        let started = Instant::now();
        match db.run(FlushHeartbeats { beats: beats.clone() }).await {
            Ok(rows) => {
                metrics::histogram!(HEARTBEAT_FLUSH_DURATION_SECONDS).record(started.elapsed().as_secs_f64());
                metrics::counter!(HEARTBEAT_ROWS_FLUSHED_TOTAL).increment(rows);
                written += rows;
            }
            Err(e) => {
                metrics::counter!(HEARTBEAT_FLUSH_FAILURES_TOTAL).increment(1);
                tracing::warn!(error = %e, agents = beats.len() + rest.len(), "heartbeat flush failed; keeping the beats");
                beats.extend(rest);
                buffer.restore(beats);
                return Err(e.to_string());
            }
        }
        beats = rest;
    }
    tracing::debug!(written, "heartbeats flushed");
    Ok(written)
}

impl Actor for HeartbeatAggregator {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.settings.flush_interval, |act, ctx| act.flush(ctx));
        ctx.run_interval(DIRECTORY_REFRESH, |act, ctx| act.refresh_directory(ctx));
        ctx.run_interval(Duration::from_secs(1), |act, _| {
            metrics::gauge!(HEARTBEAT_BUFFER_SIZE).set(act.buffer.len() as f64)
        });
    }
}

impl Supervised for HeartbeatAggregator {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        // The buffer outlives the actor: beats waiting in it are flushed by the new instance.
        self.flushing = false;
        self.refreshing = false;
        metrics::counter!(ACTOR_RESTARTS_TOTAL, "actor" => "heartbeat_aggregator").increment(1);
        tracing::warn!(actor = "heartbeat_aggregator", "supervised actor restarting");
    }
}

/// A full batch is waiting: flush now.
#[derive(Message)]
#[rtype(result = "()")]
pub struct FlushNow;

impl Handler<FlushNow> for HeartbeatAggregator {
    type Result = ();

    fn handle(&mut self, _msg: FlushNow, ctx: &mut Self::Context) {
        self.flush(ctx);
    }
}

/// Flush everything now and answer with the rows written (shutdown, tests).
#[derive(Message)]
#[rtype(result = "Result<u64, String>")]
pub struct FlushAll;

impl Handler<FlushAll> for HeartbeatAggregator {
    type Result = ResponseFuture<Result<u64, String>>;

    fn handle(&mut self, _msg: FlushAll, _ctx: &mut Self::Context) -> Self::Result {
        // Waits for a timer flush in flight (the flush lock), then writes whatever is left.
        Box::pin(flush_batches(
            self.db.clone(),
            self.buffer.clone(),
            self.settings.flush_batch,
            self.flush_lock.clone(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_a_beat_leaves_out_keep_the_earlier_beats_values() {
        let buffer = HeartbeatBuffer::new(4);
        let host = |os: Option<&str>, version: Option<&str>| HostInfo {
            os: os.map(str::to_owned),
            version: version.map(str::to_owned),
            ..HostInfo::default()
        };
        let at = |s| DateTime::from_timestamp(s, 0).unwrap();
        buffer.record("a".into(), Beat { at: at(1), host: host(Some("linux"), Some("1")) }).unwrap();
        buffer.record("a".into(), Beat { at: at(2), host: host(None, Some("2")) }).unwrap();
        let beats = buffer.drain();
        assert_eq!(beats[0].1.host, host(Some("linux"), Some("2")));
        assert_eq!(beats[0].1.at, at(2));
    }

    fn beat(secs: i64) -> Beat {
        Beat { at: DateTime::from_timestamp(secs, 0).unwrap(), host: HostInfo::default() }
    }

    #[test]
    fn the_buffer_keeps_the_latest_beat_per_agent_and_is_bounded() {
        let buffer = HeartbeatBuffer::new(2);
        assert_eq!(buffer.record("a".into(), beat(10)), Ok(1));
        assert_eq!(buffer.record("a".into(), beat(5)), Ok(1), "an older beat does not replace a newer one");
        assert_eq!(buffer.record("b".into(), beat(7)), Ok(2));
        assert_eq!(buffer.record("c".into(), beat(7)), Err(BufferFull));
        assert_eq!(buffer.record("a".into(), beat(11)), Ok(2), "agents already waiting still update");
        let drained = buffer.drain();
        assert_eq!(
            drained.iter().map(|(id, b)| (id.as_str(), b.at.timestamp())).collect::<Vec<_>>(),
            [("a", 11), ("b", 7)]
        );
        assert!(buffer.is_empty());
        buffer.record("a".into(), beat(12)).unwrap();
        buffer.restore(drained);
        assert_eq!(buffer.len(), 2);
        let again = buffer.drain();
        assert_eq!(again[0].1.at.timestamp(), 12, "a restored beat does not overwrite a newer one");
    }
}
