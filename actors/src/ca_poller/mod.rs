//! The CA poller: the supervised actor that owns orders with remote CAs (`ca_orders`). The
//! renewal dispatcher hands a job over as an order intent and forgets it; the poller claims due
//! orders from the database (`FOR UPDATE SKIP LOCKED`, so pending orders survive restarts and
//! move between replicas), at most `CERTCTL_ASYNC_POLL_CONCURRENCY` at once per issuer, and
//! submits, recovers or polls each ([`order_work`]), scheduling the next poll by the backoff
//! ([`schedule`]). It also tells remote CAs about revocations until they accept them, and keeps
//! the pending-orders gauge.
//!
//! It sleeps until the next order is due (or [`IDLE_CHECK`] at most, for orders another replica
//! handed over), and wakes at once when this replica's dispatcher hands one over.

pub mod order_work;
pub mod revocations;
pub mod schedule;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use self::order_work::OrderDeps;
use self::schedule::{Backoff, PollBudgets};
use crate::db::Db;
use crate::issuers::registry::IssuerRegistry;
use crate::metrics::{ACTOR_RESTARTS_TOTAL, CA_ORDERS_PENDING};
use crate::queries::ca_orders::{ClaimDueOrders, EndOrphanedOrders, LiveOrdersByIssuer, NextOrderDue};
use crate::queries::job_writebacks::{CompleteRenewals, CompletedRenewal};

/// Longest the poller sleeps without looking for due orders.
pub const IDLE_CHECK: Duration = Duration::from_secs(5);
/// How often the pending-orders gauge is refreshed (and orphaned orders ended).
const GAUGE_REFRESH: Duration = Duration::from_secs(15);
/// Orders claimed per statement at most.
const CLAIM_LIMIT: usize = 256;

/// How the poller works.
#[derive(Clone, Debug)]
pub struct CaPollerSettings {
    /// Backoff between polls (`CERTCTL_ASYNC_POLL_INITIAL_INTERVAL`, `…_MAX_INTERVAL`).
    pub backoff: Backoff,
    /// Poll budgets from the environment.
    pub budgets: PollBudgets,
    /// Orders worked at once per issuer on this replica (`CERTCTL_ASYNC_POLL_CONCURRENCY`).
    pub per_issuer_concurrency: usize,
    /// How long a claimed order is held before another poller may take it: longer than any
    /// step can take (a CA request's timeout, several times over).
    pub claim_lease: Duration,
}

pub struct CaPoller {
    /// Where orders are claimed and written.
    db: Db,
    /// The connectors.
    registry: Arc<IssuerRegistry>,
    /// Backoff, budgets, caps.
    settings: CaPollerSettings,
    /// Orders being worked on now, by issuer id (each at most the per-issuer cap).
    in_flight: HashMap<String, usize>,
    /// True while a claim statement runs.
    claiming: bool,
    /// A claim was asked for while one ran: run another when it ends.
    again: bool,
    /// The timer for the next due order, replaced when an earlier one is known.
    next_wake: Option<SpawnHandle>,
    /// True while revocations are being told to CAs (one batch at a time).
    revoking: bool,
    /// Issuers the pending-orders gauge has a value for, so one that drains is set to zero.
    gauged: std::collections::HashSet<String>,
    /// Issued certificates waiting for the next batched write (kept for another try if one fails).
    completed: Vec<Completed>,
    /// True while a batch of completions is being written.
    writing: bool,
    /// This actor, for the order steps to hand their completions to.
    myself: Option<Recipient<Completed>>,
}

impl CaPoller {
    pub fn new(db: Db, registry: Arc<IssuerRegistry>, settings: CaPollerSettings) -> Self {
        CaPoller {
            db,
            registry,
            settings,
            in_flight: HashMap::new(),
            claiming: false,
            again: false,
            next_wake: None,
            revoking: false,
            gauged: Default::default(),
            completed: Vec::new(),
            writing: false,
            myself: None,
        }
    }

    fn deps(&mut self, ctx: &mut Context<Self>) -> OrderDeps {
        let completions = self.myself.get_or_insert_with(|| ctx.address().recipient()).clone();
        OrderDeps {
            db: self.db.clone(),
            registry: self.registry.clone(),
            backoff: self.settings.backoff,
            budgets: self.settings.budgets.clone(),
            completions,
        }
    }

    /// Writes the completions gathered so far in one statement (while one batch is written, the
    /// next gathers), then lets each connector clean up after its order.
    fn write_completions(&mut self, ctx: &mut Context<Self>) {
        if self.writing || self.completed.is_empty() {
            return;
        }
        self.writing = true;
        let batch = std::mem::take(&mut self.completed);
        let items: Vec<CompletedRenewal> = batch.iter().map(|c| c.done.clone()).collect();
        let db = self.db.clone();
        ctx.spawn(async move { db.run(CompleteRenewals { items }).await }.into_actor(self).map(
            move |result, act, ctx| {
                act.writing = false;
                match result {
                    Ok(written) => {
                        tracing::debug!(written = written.written, batch = batch.len(), "remote issuances written");
                        // An order whose job ended meanwhile was not written: its next claim ends it.
                        for c in batch {
                            actix::spawn(async move { c.connector.finished(c.reference, c.request).await });
                        }
                        act.write_completions(ctx);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, batch = batch.len(), "writing remote issuances failed; retrying");
                        act.completed.extend(batch);
                        ctx.run_later(Duration::from_secs(1), |act, ctx| act.write_completions(ctx));
                    }
                }
            },
        ));
    }

    /// Claims due orders this replica has room for and starts them.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        if self.claiming {
            self.again = true;
            return;
        }
        let cap = self.settings.per_issuer_concurrency.max(1);
        let busy: Vec<(String, i64)> =
            self.in_flight.iter().map(|(issuer, n)| (issuer.clone(), cap.saturating_sub(*n) as i64)).collect();
        let total: usize = self.in_flight.values().sum();
        let limit = CLAIM_LIMIT.saturating_sub(total);
        if limit == 0 {
            return;
        }
        self.claiming = true;
        self.again = false;
        let query =
            ClaimDueOrders { limit: limit as i64, lease: self.settings.claim_lease, per_issuer: cap as i64, busy };
        let db = self.db.clone();
        ctx.spawn(async move { db.run(query).await }.into_actor(self).map(move |result, act, ctx| {
            act.claiming = false;
            match result {
                Ok(orders) => {
                    let full = orders.len() >= limit;
                    for order in orders {
                        act.start(order, ctx);
                    }
                    if full || act.again {
                        act.pump(ctx);
                    } else {
                        act.sleep_until_due(ctx);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "claiming CA orders failed");
                    act.arm(IDLE_CHECK, ctx);
                }
            }
        }));
    }

    fn start(&mut self, order: crate::queries::ca_orders::ClaimedOrder, ctx: &mut Context<Self>) {
        let issuer = order.issuer_id.clone();
        *self.in_flight.entry(issuer.clone()).or_default() += 1;
        // A step never outlives its claim (hook scripts included: dropping the step kills them),
        // so no other replica takes the order while it runs.
        let limit = self.settings.claim_lease.mul_f64(0.9);
        let (order_id, deps) = (order.order_id.clone(), self.deps(ctx));
        let step = async move {
            if tokio::time::timeout(limit, order_work::work(deps, order)).await.is_err() {
                tracing::warn!(order_id, "an order's step outlived its claim and was stopped; it is due again");
            }
        };
        ctx.spawn(step.into_actor(self).map(move |(), act, ctx| {
            if let Some(n) = act.in_flight.get_mut(&issuer) {
                *n -= 1;
                if *n == 0 {
                    act.in_flight.remove(&issuer);
                }
            }
            // A slot is free: anything due for that issuer can start.
            act.pump(ctx);
        }));
    }

    /// Sleeps until the next order is due, [`IDLE_CHECK`] at most.
    fn sleep_until_due(&mut self, ctx: &mut Context<Self>) {
        let db = self.db.clone();
        ctx.spawn(async move { db.run(NextOrderDue).await }.into_actor(self).map(|due, act, ctx| {
            let wait = match due {
                Ok(Some(at)) => (at - chrono::Utc::now()).to_std().unwrap_or(Duration::ZERO).min(IDLE_CHECK),
                _ => IDLE_CHECK,
            };
            act.arm(wait, ctx);
        }));
    }

    fn arm(&mut self, wait: Duration, ctx: &mut Context<Self>) {
        if let Some(handle) = self.next_wake.take() {
            ctx.cancel_future(handle);
        }
        // Never spin: a due order that could not be claimed (its issuer at its cap) waits for a slot.
        let wait = wait.max(Duration::from_millis(20));
        self.next_wake = Some(ctx.run_later(wait, |act, ctx| {
            act.next_wake = None;
            act.pump(ctx);
            act.revoke(ctx);
        }));
    }

    /// Tells remote CAs about due revocations, one batch at a time.
    fn revoke(&mut self, ctx: &mut Context<Self>) {
        if self.revoking {
            return;
        }
        self.revoking = true;
        let work = revocations::notify_due(self.db.clone(), self.registry.clone(), self.settings.clone());
        ctx.spawn(work.into_actor(self).map(|(), act, _| act.revoking = false));
    }

    fn refresh_gauge(&mut self, ctx: &mut Context<Self>) {
        let db = self.db.clone();
        ctx.spawn(
            async move {
                if let Err(e) = db.run(EndOrphanedOrders).await {
                    tracing::warn!(error = %e, "ending orphaned CA orders failed");
                }
                db.run(LiveOrdersByIssuer).await
            }
            .into_actor(self)
            .map(|result, act, _| match result {
                Ok(counts) => {
                    for drained in act.gauged.iter().filter(|i| !counts.iter().any(|(c, _)| c == *i)) {
                        metrics::gauge!(CA_ORDERS_PENDING, "issuer" => drained.clone()).set(0.0);
                    }
                    act.gauged = counts.iter().map(|(issuer, _)| issuer.clone()).collect();
                    for (issuer, count) in counts {
                        metrics::gauge!(CA_ORDERS_PENDING, "issuer" => issuer).set(count as f64);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "counting pending CA orders failed"),
            }),
        );
    }
}

impl Actor for CaPoller {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(GAUGE_REFRESH, |act, ctx| act.refresh_gauge(ctx));
        self.arm(Duration::ZERO, ctx);
    }
}

impl Supervised for CaPoller {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        // Orders in flight were dropped with the old context; their claims run out and they are
        // due again.
        self.in_flight.clear();
        self.claiming = false;
        self.again = false;
        self.next_wake = None;
        self.revoking = false;
        // Completions not yet written stay for the new context; a write in flight died with the old.
        self.writing = false;
        self.myself = None;
        metrics::counter!(ACTOR_RESTARTS_TOTAL, "actor" => "ca_poller").increment(1);
        tracing::warn!(actor = "ca_poller", "supervised actor restarting");
    }
}

/// An order the CA issued, its chain checked, to be written in the next batch.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Completed {
    /// The version and the job's completion.
    pub done: CompletedRenewal,
    /// The order's connector, told once it is written (`finished`).
    pub connector: Arc<dyn crate::issuers::remote::RemoteIssuer>,
    pub reference: crate::issuers::remote::OrderRef,
    pub request: crate::issuers::remote::OrderRequest,
    pub order_id: String,
}

impl Handler<Completed> for CaPoller {
    type Result = ();

    fn handle(&mut self, msg: Completed, ctx: &mut Self::Context) {
        self.completed.push(msg);
        self.write_completions(ctx);
    }
}

/// Orders were handed over (or revocations made): look now rather than at the next timer.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Wake;

impl Handler<Wake> for CaPoller {
    type Result = ();

    fn handle(&mut self, _msg: Wake, ctx: &mut Self::Context) {
        self.pump(ctx);
        self.revoke(ctx);
    }
}
