//! One periodic loop as a supervised actor: a jittered timer, a tick skipped (never stacked)
//! while the previous one runs, leadership checked on every tick, a per-tick budget, and the
//! loop's metrics. What a tick does is the loop's [`LoopTask`].

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use futures_util::future::BoxFuture;

use super::leader::LeaderLocks;
use super::ticker::jittered;
use crate::error::DbError;
use crate::metrics::{
    ACTOR_RESTARTS_TOTAL, SCHEDULER_LAST_SUCCESS_TIMESTAMP, SCHEDULER_SKIPPED_TICKS_TOTAL, SCHEDULER_TICKS_TOTAL,
    SCHEDULER_TICK_DURATION_SECONDS,
};

/// The work of one loop. `tick` gets the moment by which it should stop starting new work (the
/// next tick boundary or the budget, whichever comes first) and answers with its counts, which
/// the admin run-now endpoint returns; it logs its own completion line.
pub trait LoopTask: Send + Sync + 'static {
    fn tick(&self, deadline: Instant) -> BoxFuture<'static, Result<serde_json::Value, DbError>>;
}

/// Timing of one loop.
#[derive(Clone, Copy, Debug)]
pub struct LoopTiming {
    pub interval: Duration,
    /// Tick on the timer; when false the loop only runs on [`RunNow`].
    pub timers: bool,
    pub jitter_percent: u8,
    /// Longest a tick may run before it is abandoned (its future dropped).
    pub budget: Duration,
}

/// How a tick ended.
#[derive(Clone, Debug, PartialEq)]
pub enum TickOutcome {
    /// The tick ran; its counts.
    Completed(serde_json::Value),
    /// Another replica leads this loop.
    NotLeader,
    /// The previous tick was still running.
    AlreadyRunning,
    /// The tick failed or ran out of budget; the next one tries again.
    Failed(String),
}

pub struct SchedulerLoop {
    /// The loop's name, for its metrics, logs and the admin endpoint.
    name: &'static str,
    /// The advisory lock whose holder runs this loop, so only one replica ticks it.
    lock_key: i64,
    /// Interval, jitter and budget of the ticks, and whether the timer runs at all.
    timing: LoopTiming,
    /// What a tick does.
    task: Arc<dyn LoopTask>,
    /// This replica's loop locks, shared by every loop, checked at the start of each tick.
    leader: Arc<LeaderLocks>,
    /// True while a tick runs, so a timer tick or [`RunNow`] arriving meanwhile is skipped, not stacked.
    running: bool,
}

impl SchedulerLoop {
    pub fn new(
        name: &'static str,
        lock_key: i64,
        timing: LoopTiming,
        task: Arc<dyn LoopTask>,
        leader: Arc<LeaderLocks>,
    ) -> Self {
        SchedulerLoop { name, lock_key, timing, task, leader, running: false }
    }

    fn schedule_next(&self, ctx: &mut Context<Self>, delay: Duration) {
        ctx.run_later(delay, |act, ctx| {
            act.start_tick(ctx, None);
            act.schedule_next(ctx, jittered(act.timing.interval, act.timing.jitter_percent));
        });
    }

    fn start_tick(&mut self, ctx: &mut Context<Self>, reply: Option<tokio::sync::oneshot::Sender<TickOutcome>>) {
        if self.running {
            metrics::counter!(SCHEDULER_SKIPPED_TICKS_TOTAL, "loop" => self.name).increment(1);
            tracing::warn!(r#loop = self.name, "{} still running, skipping tick", self.name);
            if let Some(reply) = reply {
                let _ = reply.send(TickOutcome::AlreadyRunning);
            }
            return;
        }
        self.running = true;
        let (name, key, budget, interval) = (self.name, self.lock_key, self.timing.budget, self.timing.interval);
        let (task, leader) = (self.task.clone(), self.leader.clone());
        let work = async move {
            let started = Instant::now();
            match leader.try_lead(key).await {
                Ok(true) => {}
                Ok(false) => return (TickOutcome::NotLeader, started.elapsed()),
                Err(e) => return (TickOutcome::Failed(format!("checking leadership: {e}")), started.elapsed()),
            }
            let deadline = started + budget.min(interval);
            let outcome = match tokio::time::timeout(budget, task.tick(deadline)).await {
                Ok(Ok(report)) => TickOutcome::Completed(report),
                Ok(Err(e)) => TickOutcome::Failed(e.to_string()),
                Err(_) => TickOutcome::Failed(format!("the tick ran past its budget of {budget:?}")),
            };
            (outcome, started.elapsed())
        };
        ctx.spawn(work.into_actor(self).map(move |(outcome, took), act, _| {
            act.running = false;
            let label = match &outcome {
                TickOutcome::Completed(_) => "ok",
                TickOutcome::NotLeader => "not_leader",
                TickOutcome::AlreadyRunning => "skipped",
                TickOutcome::Failed(_) => "error",
            };
            metrics::counter!(SCHEDULER_TICKS_TOTAL, "loop" => name, "outcome" => label).increment(1);
            if !matches!(outcome, TickOutcome::NotLeader) {
                metrics::histogram!(SCHEDULER_TICK_DURATION_SECONDS, "loop" => name).record(took.as_secs_f64());
            }
            match &outcome {
                TickOutcome::Completed(_) => {
                    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64();
                    metrics::gauge!(SCHEDULER_LAST_SUCCESS_TIMESTAMP, "loop" => name).set(now);
                }
                TickOutcome::Failed(error) => {
                    tracing::warn!(r#loop = name, error = %error, "{name} tick failed; the next tick retries")
                }
                _ => {}
            }
            if let Some(reply) = reply {
                let _ = reply.send(outcome);
            }
        }));
    }
}

impl Actor for SchedulerLoop {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if !self.timing.timers {
            return;
        }
        // The first tick comes soon after start (within the jitter band of a short delay), so a
        // restart does not leave due work waiting a whole interval.
        let first = jittered(Duration::from_secs(1), self.timing.jitter_percent).min(self.timing.interval);
        self.schedule_next(ctx, first);
    }
}

impl Supervised for SchedulerLoop {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        self.running = false;
        metrics::counter!(ACTOR_RESTARTS_TOTAL, "actor" => self.name).increment(1);
        tracing::warn!(actor = self.name, "supervised actor restarting");
    }
}

/// Runs one tick now (the admin endpoint and tests use it instead of waiting for the timer).
#[derive(Message)]
#[rtype(result = "TickOutcome")]
pub struct RunNow;

impl Handler<RunNow> for SchedulerLoop {
    type Result = ResponseFuture<TickOutcome>;

    fn handle(&mut self, _msg: RunNow, ctx: &mut Self::Context) -> Self::Result {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.start_tick(ctx, Some(reply));
        Box::pin(async move { answer.await.unwrap_or(TickOutcome::Failed("the loop restarted".into())) })
    }
}
