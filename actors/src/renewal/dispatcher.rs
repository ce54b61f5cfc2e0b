//! The renewal dispatcher: claims due issuance and renewal jobs, runs at most
//! `CERTCTL_RENEWAL_CONCURRENCY` issuances at once, and writes results back in batches.
//!
//! A round (started by the job processor's tick, or woken by the scan, a retry or an API call)
//! keeps a pipeline: up to the cap issuing, up to `max(cap, 256)` more claimed and ready, claims
//! topped up with `FOR UPDATE SKIP LOCKED` batches as work finishes. Results collect while a write-back
//! is in flight and go in the next one (one transaction each: versions, certificates, jobs,
//! deployment jobs, audit rows). No pool connection is held while an issuer works, and signing
//! runs on blocking threads inside the connector.
//!
//! At the round's deadline (the next tick boundary) nothing new starts: claimed jobs that never
//! started go back to `Pending` at once — cancelled, not abandoned — while started ones finish
//! and are written. If a write-back fails, its results are kept and written again; if the
//! process dies first, the jobs' leases run out and the reaper retries them.
//!
//! With `CERTCTL_KEYGEN_MODE=agent` a job without a CSR is claimed into `AwaitingCSR` for an
//! agent to answer; once an agent's CSR is on it (the job is Pending again), it is issued here for
//! the CSR's public key like any other.
//!
//! A job whose issuer is a remote CA is not issued here: it is handed to the CA poller as an
//! order (with the agent's CSR, or one made here for a key sealed with the order) and becomes
//! `AwaitingCA`, so a slow CA never holds an issuance slot.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use base64::Engine;

use crate::crypto::key_algorithm::{choose, KeyAlgorithm};
use crate::crypto::remote_leaf::make_csr;
use crate::crypto::seal::SealingKey;
use crate::db::Db;
use crate::issuers::registry::IssuerRegistry;
use crate::issuers::remote::OrderRequest;
use crate::issuers::{Connector, ErrorClass, IssueFailure, IssueRequest, KeySource};
use crate::metrics::{
    ACTOR_RESTARTS_TOTAL, DISPATCHER_CAP, DISPATCHER_IN_FLIGHT, DISPATCHER_WRITE_BATCH_SIZE, ISSUANCE_DURATION_SECONDS,
    ISSUANCE_FAILURES_TOTAL,
};
use crate::queries::ca_orders::{HandOverOrders, OrderHandOver};
use crate::queries::job_claims::{ClaimRenewalJobs, ClaimedJob, ReleaseJobs};
use crate::queries::job_writebacks::{CompleteRenewals, CompletedRenewal, FailRenewals, FailedRenewal};

/// Write-back transactions at once: results keep collecting while one commits, and two keep
/// PostgreSQL busy while the other waits on its commit. Batches touch disjoint rows.
const MAX_WRITES: usize = 2;

/// Jobs claimed ahead of the cap, at least: one claim statement per this many jobs.
const CLAIM_BATCH: usize = 256;

/// Who generates leaf keys (`CERTCTL_KEYGEN_MODE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeygenMode {
    /// The agent on the target generates the key and sends a CSR.
    Agent,
    /// The server generates the key and stores it sealed for the agent to fetch once.
    Server,
}

impl KeygenMode {
    pub fn parse(value: &str) -> Option<KeygenMode> {
        match value.to_ascii_lowercase().as_str() {
            "agent" => Some(KeygenMode::Agent),
            "server" => Some(KeygenMode::Server),
            _ => None,
        }
    }
}

/// How the dispatcher works.
#[derive(Clone, Debug)]
pub struct DispatcherSettings {
    /// Issuances at once (`CERTCTL_RENEWAL_CONCURRENCY`).
    pub concurrency: usize,
    pub keygen: KeygenMode,
    /// Key type for server-generated keys.
    pub key_algorithm: KeyAlgorithm,
    /// How long a claimed job is leased; an issuance still running then is timed out.
    pub lease: Duration,
    /// Longest a round may run when it was woken rather than started by the job processor.
    pub wake_budget: Duration,
}

/// What a round did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RoundStats {
    pub claimed: u64,
    pub completed: u64,
    pub failed: u64,
    /// Claimed but not started before the deadline, given back to Pending.
    pub released: u64,
    /// Moved to AwaitingCSR (agent key generation).
    pub awaiting_csr: u64,
    pub deployments_enqueued: u64,
    /// Handed to the CA poller (remote CAs).
    pub handed_over: u64,
}

pub struct RenewalDispatcher {
    /// Where claims, releases and write-backs run.
    db: Db,
    /// Finds the issuer each claimed job names.
    registry: Arc<IssuerRegistry>,
    /// Seals server-generated private keys before they are stored.
    sealing: Arc<SealingKey>,
    /// Concurrency cap, key generation, lease and wake-up budget.
    settings: DispatcherSettings,
    /// Jobs claimed and waiting for an issuance slot, so the issuers stay busy while the next claim runs.
    ready: VecDeque<ClaimedJob>,
    /// Issuances running now, kept at or below the concurrency cap.
    in_flight: usize,
    /// Issued certificates waiting for the next write-back (kept for another try if one fails).
    completed: Vec<CompletedRenewal>,
    /// Failed issuances waiting for the next write-back (kept for another try if one fails).
    failed: Vec<FailedRenewal>,
    /// Jobs for remote CAs waiting to be handed to the CA poller in the next write-back.
    handed: Vec<OrderHandOver>,
    /// Told when orders were handed over, so it polls at once.
    poller: Option<Recipient<crate::ca_poller::Wake>>,
    /// True while a claim statement runs, so a pump doesn't start a second one.
    claiming: bool,
    /// Write-back transactions in flight (at most [`MAX_WRITES`]).
    writes: usize,
    /// True while unstarted jobs are being given back, so the round does not end before they are.
    releasing: bool,
    /// No due job was left at the last claim.
    exhausted: bool,
    /// A round is running.
    active: bool,
    /// After this the round starts nothing new and gives unstarted jobs back; `None` between rounds.
    deadline: Option<Instant>,
    /// What the running round has done so far, logged and answered when it ends.
    round: RoundStats,
    /// [`Dispatch`] callers waiting for the running round to end, each answered with its stats.
    waiters: Vec<tokio::sync::oneshot::Sender<RoundStats>>,
}

impl RenewalDispatcher {
    pub fn new(db: Db, registry: Arc<IssuerRegistry>, sealing: Arc<SealingKey>, settings: DispatcherSettings) -> Self {
        RenewalDispatcher {
            db,
            registry,
            sealing,
            settings,
            ready: VecDeque::new(),
            in_flight: 0,
            completed: Vec::new(),
            failed: Vec::new(),
            handed: Vec::new(),
            poller: None,
            claiming: false,
            writes: 0,
            releasing: false,
            exhausted: false,
            active: false,
            deadline: None,
            round: RoundStats::default(),
            waiters: Vec::new(),
        }
    }

    /// The CA poller to wake after a hand-over (set once both actors run).
    pub fn with_poller(mut self, poller: Recipient<crate::ca_poller::Wake>) -> Self {
        self.poller = Some(poller);
        self
    }

    fn has_results(&self) -> bool {
        !self.completed.is_empty() || !self.failed.is_empty() || !self.handed.is_empty()
    }

    fn cap(&self) -> usize {
        self.settings.concurrency.max(1)
    }

    fn past_deadline(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Starts a round, or extends the running one to `deadline`.
    fn begin(&mut self, deadline: Instant, ctx: &mut Context<Self>) {
        self.exhausted = false;
        if !self.active {
            self.active = true;
            self.round = RoundStats::default();
        }
        if self.deadline.is_none_or(|d| d < deadline) {
            self.deadline = Some(deadline);
            ctx.run_later(deadline.saturating_duration_since(Instant::now()), |act, ctx| act.pump(ctx));
        }
        self.pump(ctx);
    }

    fn pump(&mut self, ctx: &mut Context<Self>) {
        if !self.active {
            return;
        }
        let cap = self.cap();
        if self.past_deadline() {
            self.release_unstarted(ctx);
        } else {
            while self.in_flight < cap {
                let Some(job) = self.ready.pop_front() else { break };
                self.start(job, ctx);
            }
            // Claimed-but-waiting jobs keep the issuers busy while the next claim runs; claims
            // come in batches of at least CLAIM_BATCH so a small cap does not mean tiny statements.
            let target = cap + cap.max(CLAIM_BATCH);
            let pipeline = self.ready.len() + self.in_flight;
            let room = target - pipeline.min(target);
            if !self.claiming && !self.exhausted && room > 0 && (room >= target / 4 || pipeline == 0) {
                self.claim(room, ctx);
            }
        }
        if self.writes < MAX_WRITES && self.has_results() {
            self.write(ctx);
        }
        metrics::gauge!(DISPATCHER_IN_FLIGHT).set(self.in_flight as f64);
        let idle =
            self.ready.is_empty() && self.in_flight == 0 && !self.claiming && self.writes == 0 && !self.releasing;
        if idle && !self.has_results() && (self.exhausted || self.past_deadline()) {
            self.finish();
        }
    }

    fn finish(&mut self) {
        self.active = false;
        self.deadline = None;
        let stats = self.round;
        if stats != RoundStats::default() {
            tracing::info!(
                claimed = stats.claimed,
                completed = stats.completed,
                failed = stats.failed,
                released = stats.released,
                awaiting_csr = stats.awaiting_csr,
                concurrency_cap = self.cap(),
                "job processing completed"
            );
        }
        for waiter in self.waiters.drain(..) {
            let _ = waiter.send(stats);
        }
    }

    fn claim(&mut self, limit: usize, ctx: &mut Context<Self>) {
        self.claiming = true;
        let server_keygen = self.settings.keygen == KeygenMode::Server;
        let query = ClaimRenewalJobs { limit: limit as i64, lease: self.settings.lease, server_keygen };
        let db = self.db.clone();
        ctx.spawn(async move { db.run(query).await }.into_actor(self).map(move |result, act, ctx| {
            act.claiming = false;
            match result {
                Ok(jobs) => {
                    act.exhausted = jobs.len() < limit;
                    act.round.claimed += jobs.len() as u64;
                    for job in jobs {
                        if job.status == "Running" {
                            act.ready.push_back(job);
                        } else {
                            act.round.awaiting_csr += 1;
                        }
                    }
                }
                Err(e) => {
                    // The next tick (or wake-up) claims again.
                    tracing::warn!(error = %e, "claiming renewal jobs failed");
                    act.exhausted = true;
                }
            }
            act.pump(ctx);
        }));
    }

    fn start(&mut self, job: ClaimedJob, ctx: &mut Context<Self>) {
        self.in_flight += 1;
        let work = issue_one(self.registry.clone(), self.sealing.clone(), job, self.settings.clone());
        ctx.spawn(work.into_actor(self).map(|outcome, act, ctx| {
            act.in_flight -= 1;
            match outcome {
                Outcome::Completed(done) => act.completed.push(done),
                Outcome::Failed(failed) => act.failed.push(failed),
                Outcome::HandedOver(order) => act.handed.push(order),
            }
            act.pump(ctx);
        }));
    }

    fn write(&mut self, ctx: &mut Context<Self>) {
        self.writes += 1;
        let completed = std::mem::take(&mut self.completed);
        let failed = std::mem::take(&mut self.failed);
        let handed = std::mem::take(&mut self.handed);
        metrics::histogram!(DISPATCHER_WRITE_BATCH_SIZE).record((completed.len() + failed.len() + handed.len()) as f64);
        let db = self.db.clone();
        let work = async move {
            let mut outcome = (Ok(Default::default()), Ok(Default::default()), Ok(Default::default()));
            if !completed.is_empty() {
                outcome.0 = db.run(CompleteRenewals { items: completed.clone() }).await;
            }
            if !failed.is_empty() {
                outcome.1 = db.run(FailRenewals { items: failed.clone() }).await;
            }
            if !handed.is_empty() {
                outcome.2 = db.run(HandOverOrders { items: handed.clone() }).await;
            }
            (outcome, completed, failed, handed)
        };
        ctx.spawn(work.into_actor(self).map(|((done, fail, hand), completed, failed, handed), act, ctx| {
            act.writes -= 1;
            let mut retry_later = false;
            match hand {
                Ok(written) => {
                    act.round.handed_over += (written.created + written.resumed) as u64;
                    if let Some(poller) = &act.poller {
                        poller.do_send(crate::ca_poller::Wake);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, jobs = handed.len(), "handing jobs to the CA poller failed; retrying");
                    act.handed.extend(handed);
                    retry_later = true;
                }
            }
            match done {
                Ok(written) => {
                    act.round.completed += written.written as u64;
                    act.round.deployments_enqueued += written.follow_ups as u64;
                }
                Err(e) => {
                    tracing::warn!(error = %e, results = completed.len(), "writing issued certificates failed; retrying");
                    act.completed.extend(completed);
                    retry_later = true;
                }
            }
            match fail {
                Ok(written) => act.round.failed += written.written as u64,
                Err(e) => {
                    tracing::warn!(error = %e, results = failed.len(), "writing failed issuances failed; retrying");
                    act.failed.extend(failed);
                    retry_later = true;
                }
            }
            if retry_later {
                // Nothing is lost: the results wait for the database (the jobs' leases are the
                // backstop if this process dies meanwhile).
                act.writes += 1;
                ctx.run_later(Duration::from_secs(1), |act, ctx| {
                    act.writes -= 1;
                    act.pump(ctx);
                });
            } else {
                act.pump(ctx);
            }
        }));
    }

    fn release_unstarted(&mut self, ctx: &mut Context<Self>) {
        if self.ready.is_empty() || self.releasing {
            return;
        }
        self.releasing = true;
        let jobs: Vec<(String, i32)> = self.ready.drain(..).map(|j| (j.job_id, j.attempts)).collect();
        let count = jobs.len() as u64;
        let db = self.db.clone();
        ctx.spawn(async move { db.run(ReleaseJobs { jobs }).await }.into_actor(self).map(move |result, act, ctx| {
            act.releasing = false;
            match result {
                Ok(n) => act.round.released += n,
                // Not released now, they come back when their leases run out.
                Err(e) => tracing::warn!(error = %e, jobs = count, "releasing unstarted renewal jobs failed"),
            }
            act.pump(ctx);
        }));
    }
}

/// What became of one claimed job.
enum Outcome {
    Completed(CompletedRenewal),
    Failed(FailedRenewal),
    /// For a remote CA: the order to hand to the CA poller.
    HandedOver(OrderHandOver),
}

/// A failure to write back, counted in the issuance failure metric.
fn failed(job: &ClaimedJob, failure: IssueFailure, issuer_type: &'static str) -> FailedRenewal {
    metrics::counter!(ISSUANCE_FAILURES_TOTAL, "issuer_type" => issuer_type, "error_class" => failure.class.as_str())
        .increment(1);
    FailedRenewal {
        job_id: job.job_id.clone(),
        attempts: job.attempts,
        error_class: failure.class.as_str(),
        retryable: failure.class.retryable(),
        message: failure.message,
        ends_order: false,
    }
}

/// Issues one claimed job (or hands it over for a remote CA); a failure carries its class for
/// the retry policy.
async fn issue_one(
    registry: Arc<IssuerRegistry>,
    sealing: Arc<SealingKey>,
    job: ClaimedJob,
    settings: DispatcherSettings,
) -> Outcome {
    let issuer = match registry.get(&job.issuer_id).await {
        Ok(Connector::InProcess(issuer)) => issuer,
        Ok(Connector::Remote(remote)) => {
            return match hand_over(&job, &sealing, &settings).await {
                Ok(order) => Outcome::HandedOver(order),
                Err(failure) => Outcome::Failed(failed(&job, failure, remote.issuer_type())),
            }
        }
        Err(failure) => return Outcome::Failed(failed(&job, failure, "unknown")),
    };
    match issue_in_process(issuer, sealing, job, settings).await {
        Ok(done) => Outcome::Completed(done),
        Err(failure) => Outcome::Failed(failure),
    }
}

/// The order for a remote CA: the agent's CSR, or a key generated and sealed here with a CSR
/// for it. A job whose order is already placed needs neither.
async fn hand_over(
    job: &ClaimedJob,
    sealing: &SealingKey,
    settings: &DispatcherSettings,
) -> Result<OrderHandOver, IssueFailure> {
    let sans = sans_with_common_name(job);
    let request = OrderRequest {
        order_id: format!("cao-{}", uuid::Uuid::now_v7().simple()),
        common_name: job.common_name.clone(),
        sans: sans.clone(),
        ekus: job.ekus.clone(),
        max_lifetime_secs: job.max_ttl.map(|d| d.as_secs()),
        csr_pem: String::new(),
    };
    let (csr_pem, private_key_sealed) = match (&job.csr_pem, job.order_live) {
        (_, true) => (String::new(), None),
        (Some(csr), false) => (csr.clone(), None),
        (None, false) => {
            let algorithm = choose(&job.allowed_key_algorithms, settings.key_algorithm).ok_or_else(no_key_type)?;
            let common_name = job.common_name.clone();
            let made = tokio::task::spawn_blocking(move || make_csr(&common_name, &sans, algorithm))
                .await
                .map_err(|e| IssueFailure::new(ErrorClass::Internal, format!("the key generation thread failed: {e}")))?
                .map_err(|e| IssueFailure::new(ErrorClass::Validation, e))?;
            let sealed = base64::engine::general_purpose::STANDARD.encode(sealing.seal(made.key_pem.as_bytes()));
            (made.csr_pem, Some(sealed))
        }
    };
    Ok(OrderHandOver {
        job_id: job.job_id.clone(),
        attempts: job.attempts,
        certificate_id: job.certificate_id.clone(),
        issuer_id: job.issuer_id.clone(),
        order_id: request.order_id.clone(),
        request: serde_json::to_value(&request).unwrap_or_default(),
        csr_pem,
        private_key_sealed,
    })
}

fn no_key_type() -> IssueFailure {
    IssueFailure::new(
        ErrorClass::Validation,
        "the certificate's profile allows no key type this server can generate (ECDSA P-256/P-384, RSA 2048-4096, \
         Ed25519)",
    )
}

/// Issues one claimed job with an in-process issuer.
async fn issue_in_process(
    issuer: Arc<dyn crate::issuers::Issuer>,
    sealing: Arc<SealingKey>,
    job: ClaimedJob,
    settings: DispatcherSettings,
) -> Result<CompletedRenewal, FailedRenewal> {
    let fail = |job: &ClaimedJob, failure: IssueFailure, issuer_type: &'static str| failed(job, failure, issuer_type);
    let issuer_type = issuer.issuer_type();
    let key = match &job.csr_pem {
        Some(csr) => KeySource::Csr(csr.clone()),
        None => match choose(&job.allowed_key_algorithms, settings.key_algorithm) {
            Some(algorithm) => KeySource::Generate(algorithm),
            None => return Err(fail(&job, no_key_type(), issuer_type)),
        },
    };
    let request = IssueRequest {
        common_name: job.common_name.clone(),
        sans: sans_with_common_name(&job),
        ekus: job.ekus.clone(),
        max_lifetime: job.max_ttl,
        key,
    };
    let started = Instant::now();
    let issued = match tokio::time::timeout(settings.lease, issuer.issue(request)).await {
        Ok(Ok(issued)) => issued,
        Ok(Err(failure)) => return Err(fail(&job, failure, issuer_type)),
        Err(_) => {
            let failure = IssueFailure::new(
                ErrorClass::Timeout,
                format!("the issuer did not answer within {:?}", settings.lease),
            );
            return Err(fail(&job, failure, issuer_type));
        }
    };
    metrics::histogram!(ISSUANCE_DURATION_SECONDS, "issuer_type" => issuer_type)
        .record(started.elapsed().as_secs_f64());
    let (family, size) = issued.key_algorithm.family_and_size();
    let sealed = issued
        .private_key_pem
        .as_ref()
        .map(|pem| base64::engine::general_purpose::STANDARD.encode(sealing.seal(pem.as_bytes())));
    Ok(CompletedRenewal {
        job_id: job.job_id,
        attempts: job.attempts,
        certificate_id: job.certificate_id,
        issuer_id: job.issuer_id,
        version_id: format!("cv-{}", uuid::Uuid::now_v7().simple()),
        serial_number: issued.serial_hex,
        not_before: issued.not_before,
        not_after: issued.not_after,
        fingerprint_sha256: issued.fingerprint_sha256,
        pem_chain: issued.chain_pem,
        key_algorithm: family.to_owned(),
        key_size: size,
        private_key_sealed: sealed,
        csr_pem: job.csr_pem,
        ari_window_start: issued.renewal_window.map(|(start, _)| start),
        ari_window_end: issued.renewal_window.map(|(_, end)| end),
    })
}

/// The certificate's SANs, with its common name added when missing: clients match names against
/// the SANs only (RFC 6125), so a CN outside them would be a name the certificate cannot serve.
fn sans_with_common_name(job: &ClaimedJob) -> Vec<String> {
    let mut sans = job.sans.clone();
    if !job.common_name.is_empty() && !sans.iter().any(|s| s.eq_ignore_ascii_case(&job.common_name)) {
        sans.insert(0, job.common_name.clone());
    }
    sans
}

impl Actor for RenewalDispatcher {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Self::Context) {
        metrics::gauge!(DISPATCHER_CAP).set(self.cap() as f64);
    }
}

impl Supervised for RenewalDispatcher {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        // Work in flight was dropped with the old context; its jobs come back via their leases.
        self.in_flight = 0;
        self.claiming = false;
        self.writes = 0;
        self.releasing = false;
        self.active = false;
        self.deadline = None;
        self.ready.clear();
        metrics::counter!(ACTOR_RESTARTS_TOTAL, "actor" => "renewal_dispatcher").increment(1);
        tracing::warn!(actor = "renewal_dispatcher", "supervised actor restarting");
    }
}

/// Runs (or joins) a round that starts nothing after `deadline`; answers when it is over.
#[derive(Message)]
#[rtype(result = "RoundStats")]
pub struct Dispatch {
    pub deadline: Instant,
}

impl Handler<Dispatch> for RenewalDispatcher {
    type Result = ResponseFuture<RoundStats>;

    fn handle(&mut self, msg: Dispatch, ctx: &mut Self::Context) -> Self::Result {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.waiters.push(reply);
        self.begin(msg.deadline, ctx);
        Box::pin(async move { answer.await.unwrap_or_default() })
    }
}

/// New work may be due (the scan enqueued, a retry came, the API asked): claim it now rather
/// than at the next job-processor tick.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Wake;

impl Handler<Wake> for RenewalDispatcher {
    type Result = ();

    fn handle(&mut self, _msg: Wake, ctx: &mut Self::Context) {
        let deadline = Instant::now() + self.settings.wake_budget;
        self.begin(deadline, ctx);
    }
}
