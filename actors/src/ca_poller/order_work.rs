//! One claimed order, one step: submit it, recover it after a crash, or poll it; then record
//! what happened (the next poll, the CA's refusal, or the end of the budget), or hand the issued
//! certificate, its chain checked, to the poller's batched write. Runs outside the actor: it
//! holds no actor state, only what it was given.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;

use super::schedule::{Backoff, PollBudgets};
use crate::crypto::remote_leaf::check_issued_chain;
use crate::db::Db;
use crate::issuers::registry::IssuerRegistry;
use crate::issuers::remote::{OrderRef, OrderRequest, OrderStatus, Placed, RemoteIssuer};
use crate::issuers::{Connector, ErrorClass, IssueFailure};
use crate::metrics::{CA_ISSUANCE_SECONDS, CA_POLLS_TOTAL, CA_POLL_BUDGET_EXPIRIES_TOTAL, ISSUANCE_FAILURES_TOTAL};
use crate::queries::ca_orders::{CancelOrder, ClaimedOrder, OrderProgress, OrderStep, ParkOrder, RecordProgress};
use crate::queries::job_writebacks::{CompletedRenewal, FailRenewals, FailedRenewal};

/// What an order's step needs.
#[derive(Clone)]
pub struct OrderDeps {
    pub db: Db,
    pub registry: Arc<IssuerRegistry>,
    pub backoff: Backoff,
    pub budgets: PollBudgets,
    /// The poller, which writes issued certificates in batches.
    pub completions: actix::Recipient<super::Completed>,
}

/// Works one claimed order; every outcome is written before it returns (a failed write leaves
/// the claim to run out, and the order is due again), but for an issued certificate, which the
/// poller writes in its next batch.
pub async fn work(deps: OrderDeps, order: ClaimedOrder) {
    if order.step == OrderStep::Cancel {
        if let Err(e) = deps.db.run(CancelOrder { order_id: order.order_id.clone() }).await {
            tracing::warn!(order_id = %order.order_id, error = %e, "cancelling an order failed");
            return;
        }
        return clean_up_cancelled(&deps, &order).await;
    }
    let entry = match deps.registry.entry(&order.issuer_id).await {
        Ok(entry) => entry,
        // Deleted, disabled, or a config that cannot make a connector: the job fails with why.
        Err(failure) if !failure.class.transient() && failure.class != ErrorClass::Internal => {
            return end_with_failure(&deps, &order, "unknown", failure).await;
        }
        // Nothing was sent: an intent stays new (the claim marked it submitting).
        Err(failure) => {
            let budget = deps.budgets.resolve("", None);
            let reopen = order.step == OrderStep::Submit;
            return later(&deps, &order, failure.retry_after, failure.message, reopen, budget).await;
        }
    };
    let Connector::Remote(connector) = entry.connector else {
        let failure =
            IssueFailure::new(ErrorClass::Validation, format!("issuer {} is no longer a remote CA", order.issuer_id));
        return end_with_failure(&deps, &order, "local", failure).await;
    };
    let budget = deps.budgets.resolve(connector.issuer_type(), entry.poll_max_wait);
    let mut request: OrderRequest = match serde_json::from_value(order.request.clone()) {
        Ok(request) => request,
        Err(e) => {
            let failure = IssueFailure::new(ErrorClass::Internal, format!("the order's request does not read: {e}"));
            return end_with_failure(&deps, &order, connector.issuer_type(), failure).await;
        }
    };
    request.csr_pem = order.csr_pem.clone();
    match order.step {
        OrderStep::Submit => submit(&deps, &order, connector, request, budget).await,
        OrderStep::Recover => recover(&deps, &order, connector, request, budget).await,
        OrderStep::Poll => {
            let reference = OrderRef {
                external_id: order.external_id.clone().unwrap_or_default(),
                state: order.external_state.clone(),
            };
            let result = connector.poll(reference.clone(), request.clone()).await;
            match result {
                Ok(polled) => {
                    let reference = OrderRef { state: polled.state.clone().unwrap_or(reference.state), ..reference };
                    settle(&deps, &order, &connector, request, reference, polled.state, polled.status, budget, None)
                        .await
                }
                Err(failure) => failed_call(&deps, &order, &connector, failure, budget, (reference, request)).await,
            }
        }
        OrderStep::Cancel => {}
    }
}

/// What the connector set up for a placed order whose job was cancelled (challenge answers, DNS
/// records) goes with it; an order never placed has nothing to remove.
async fn clean_up_cancelled(deps: &OrderDeps, order: &ClaimedOrder) {
    let Some(external_id) = order.external_id.clone() else { return };
    let Ok(entry) = deps.registry.entry(&order.issuer_id).await else { return };
    let Connector::Remote(connector) = entry.connector else { return };
    let Ok(mut request) = serde_json::from_value::<OrderRequest>(order.request.clone()) else { return };
    request.csr_pem = order.csr_pem.clone();
    connector.finished(OrderRef { external_id, state: order.external_state.clone() }, request).await;
}

async fn submit(
    deps: &OrderDeps,
    order: &ClaimedOrder,
    connector: Arc<dyn RemoteIssuer>,
    request: OrderRequest,
    budget: Duration,
) {
    match connector.submit(request.clone()).await {
        Ok(placed) => placed_order(deps, order, connector, request, placed, budget).await,
        // Nothing reached the CA, or it answered "not now" (429): the intent stays new and is
        // submitted again later.
        Err(failure) if failure.class.transient() && (failure.unsent || failure.class == ErrorClass::RateLimited) => {
            metrics::counter!(CA_POLLS_TOTAL, "issuer_type" => connector.issuer_type(), "outcome" => "error")
                .increment(1);
            later(deps, order, failure.retry_after, failure.message, true, budget).await
        }
        Err(failure) if failure.class.transient() => {
            // It may have reached the CA: the next step looks it up instead of placing it again.
            metrics::counter!(CA_POLLS_TOTAL, "issuer_type" => connector.issuer_type(), "outcome" => "error")
                .increment(1);
            later(deps, order, failure.retry_after, failure.message, false, budget).await
        }
        Err(failure) => end_with_failure(deps, order, connector.issuer_type(), failure).await,
    }
}

async fn recover(
    deps: &OrderDeps,
    order: &ClaimedOrder,
    connector: Arc<dyn RemoteIssuer>,
    request: OrderRequest,
    budget: Duration,
) {
    match connector.recover(request.clone()).await {
        Ok(Some(placed)) => {
            tracing::info!(order_id = %order.order_id, external_id = %placed.order.external_id, "found an order placed before a restart");
            placed_order(deps, order, connector, request, placed, budget).await
        }
        Ok(None) => {
            let failure = IssueFailure::new(
                ErrorClass::Validation,
                format!(
                    "certctl may have placed order {} with the CA before it stopped, and the CA ({}) cannot look \
                     it up by certctl's reference; it is not placed twice. Retry the job to place a new order",
                    order.order_id,
                    connector.issuer_type()
                ),
            );
            end_with_failure(deps, order, connector.issuer_type(), failure).await
        }
        Err(failure) if failure.class.transient() => {
            later(deps, order, failure.retry_after, failure.message, false, budget).await
        }
        Err(failure) => end_with_failure(deps, order, connector.issuer_type(), failure).await,
    }
}

async fn placed_order(
    deps: &OrderDeps,
    order: &ClaimedOrder,
    connector: Arc<dyn RemoteIssuer>,
    request: OrderRequest,
    placed: Placed,
    budget: Duration,
) {
    let external_id = Some(placed.order.external_id.clone());
    let state = Some(placed.order.state.clone());
    settle(deps, order, &connector, request, placed.order, state, placed.status, budget, external_id).await
}

/// Acts on where an order stands.
#[allow(clippy::too_many_arguments)]
async fn settle(
    deps: &OrderDeps,
    order: &ClaimedOrder,
    connector: &Arc<dyn RemoteIssuer>,
    request: OrderRequest,
    reference: OrderRef,
    state: Option<serde_json::Value>,
    status: OrderStatus,
    budget: Duration,
    external_id: Option<String>,
) {
    let issuer_type = connector.issuer_type();
    match status {
        OrderStatus::Pending { retry_after, detail } => {
            metrics::counter!(CA_POLLS_TOTAL, "issuer_type" => issuer_type, "outcome" => "pending").increment(1);
            pending(deps, order, issuer_type, external_id, state, retry_after, detail, budget).await
        }
        OrderStatus::Rejected { reason } => {
            metrics::counter!(CA_POLLS_TOTAL, "issuer_type" => issuer_type, "outcome" => "rejected").increment(1);
            if external_id.is_some() {
                record(deps, order, external_id, state, reason.clone()).await;
            }
            let failure = IssueFailure::new(ErrorClass::Upstream4xx, format!("the CA refused the order: {reason}"));
            end_with_failure(deps, order, issuer_type, failure).await;
            connector.finished(reference, request).await;
        }
        OrderStatus::Issued { chain_pem, renewal_window } => {
            metrics::counter!(CA_POLLS_TOTAL, "issuer_type" => issuer_type, "outcome" => "issued").increment(1);
            if external_id.is_some() {
                // The CA's id is kept even if the write below fails, so the next step polls it.
                record(deps, order, external_id, state, "issued".into()).await;
            }
            complete(deps, order, connector.clone(), chain_pem, renewal_window, reference, request).await;
        }
    }
}

/// Still with the CA: the next poll, or, past the budget, back to the scheduler.
#[allow(clippy::too_many_arguments)]
async fn pending(
    deps: &OrderDeps,
    order: &ClaimedOrder,
    issuer_type: &'static str,
    external_id: Option<String>,
    state: Option<serde_json::Value>,
    retry_after: Option<Duration>,
    detail: String,
    budget: Duration,
) {
    let elapsed = (chrono::Utc::now() - order.handed_over_at).to_std().unwrap_or_default();
    if elapsed >= budget {
        if external_id.is_some() {
            record(deps, order, external_id, state, detail.clone()).await;
        }
        metrics::counter!(CA_POLL_BUDGET_EXPIRIES_TOTAL, "issuer_type" => issuer_type).increment(1);
        let message = format!(
            "the CA has not issued order {} within its poll budget of {}s ({detail}); the job is retried later and \
             the same order polled again",
            order.order_id,
            budget.as_secs()
        );
        return park(deps, order, message, false).await;
    }
    let step = deps.backoff.next_step(order.poll_interval);
    // Never sleep past the budget: the last poll happens when it ends.
    let wait = deps.backoff.wait(step, retry_after).min(budget - elapsed);
    progress(deps, order, external_id, state, wait, step, detail, true).await
}

/// Past its budget: the job goes back to the scheduler (claimable again after the longest poll
/// interval) and the order is parked until then (`reopen`: as a new intent).
async fn park(deps: &OrderDeps, order: &ClaimedOrder, message: String, reopen: bool) {
    let park = ParkOrder {
        order_id: order.order_id.clone(),
        job_id: order.job_id.clone(),
        job_attempts: order.job_attempts,
        retry_in: deps.backoff.max,
        message,
        reopen,
    };
    if let Err(e) = deps.db.run(park).await {
        tracing::warn!(order_id = %order.order_id, error = %e, "parking an order failed");
    }
}

/// A poll that failed: transient failures poll again, the others end the job, and the connector
/// removes what it set up for the order (challenge answers, DNS records).
async fn failed_call(
    deps: &OrderDeps,
    order: &ClaimedOrder,
    connector: &Arc<dyn RemoteIssuer>,
    failure: IssueFailure,
    budget: Duration,
    (reference, request): (OrderRef, OrderRequest),
) {
    let issuer_type = connector.issuer_type();
    if failure.class.transient() {
        metrics::counter!(CA_POLLS_TOTAL, "issuer_type" => issuer_type, "outcome" => "error").increment(1);
        return pending(deps, order, issuer_type, None, None, failure.retry_after, failure.message, budget).await;
    }
    metrics::counter!(CA_POLLS_TOTAL, "issuer_type" => issuer_type, "outcome" => "failed").increment(1);
    end_with_failure(deps, order, issuer_type, failure).await;
    connector.finished(reference, request).await;
}

/// Records the next try of a submission or recovery that got no answer (`reopen`: it surely
/// reached nothing, so the intent is new again); past the budget, the job goes back to the
/// scheduler like a pending order's.
async fn later(
    deps: &OrderDeps,
    order: &ClaimedOrder,
    retry_after: Option<Duration>,
    note: String,
    reopen: bool,
    budget: Duration,
) {
    let elapsed = (chrono::Utc::now() - order.handed_over_at).to_std().unwrap_or_default();
    if elapsed >= budget {
        let message = format!(
            "the CA could not be reached for order {} within its poll budget of {}s ({note}); the job is retried later",
            order.order_id,
            budget.as_secs()
        );
        return park(deps, order, message, reopen).await;
    }
    let step = deps.backoff.next_step(order.poll_interval);
    let wait = deps.backoff.wait(step, retry_after);
    let progress = OrderProgress {
        order_id: order.order_id.clone(),
        external_id: None,
        external_state: None,
        next_poll_in: wait,
        poll_interval: step,
        polled: false,
        note,
        reopen,
    };
    if let Err(e) = deps.db.run(RecordProgress { progress }).await {
        tracing::warn!(order_id = %order.order_id, error = %e, "recording an order's next poll failed");
    }
}

#[allow(clippy::too_many_arguments)]
async fn progress(
    deps: &OrderDeps,
    order: &ClaimedOrder,
    external_id: Option<String>,
    state: Option<serde_json::Value>,
    wait: Duration,
    step: Duration,
    note: String,
    polled: bool,
) {
    let progress = OrderProgress {
        order_id: order.order_id.clone(),
        external_id,
        external_state: state,
        next_poll_in: wait,
        poll_interval: step,
        polled,
        note,
        reopen: false,
    };
    if let Err(e) = deps.db.run(RecordProgress { progress }).await {
        tracing::warn!(order_id = %order.order_id, error = %e, "recording an order's progress failed");
    }
}

/// Records the CA's id and notes before the final write, so that if the write fails, the next
/// step (after [`RECORD_HOLD`]) polls the order instead of placing it again.
async fn record(
    deps: &OrderDeps,
    order: &ClaimedOrder,
    external_id: Option<String>,
    state: Option<serde_json::Value>,
    note: String,
) {
    progress(deps, order, external_id, state, RECORD_HOLD, order.poll_interval, note, true).await
}

/// How long an order whose outcome is being written waits before it is due again.
const RECORD_HOLD: Duration = Duration::from_secs(60);

/// The issued chain checked, and handed to the poller to write through the same completion as the
/// dispatcher's.
async fn complete(
    deps: &OrderDeps,
    order: &ClaimedOrder,
    connector: Arc<dyn RemoteIssuer>,
    chain_pem: String,
    renewal_window: Option<(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)>,
    reference: OrderRef,
    request: OrderRequest,
) {
    let issuer_type = connector.issuer_type();
    let csr = order.csr_pem.clone();
    let checked = tokio::task::spawn_blocking(move || check_issued_chain(&chain_pem, &csr)).await;
    let leaf = match checked {
        Ok(Ok(leaf)) => leaf,
        Ok(Err(why)) => {
            let failure =
                IssueFailure::new(ErrorClass::Upstream4xx, format!("the CA's certificate was refused: {why}"));
            end_with_failure(deps, order, issuer_type, failure).await;
            return connector.finished(reference, request).await;
        }
        Err(e) => {
            let failure = IssueFailure::new(ErrorClass::Internal, format!("the chain check thread failed: {e}"));
            return end_with_failure(deps, order, issuer_type, failure).await;
        }
    };
    let since = order.submitted_at.unwrap_or(order.handed_over_at);
    metrics::histogram!(CA_ISSUANCE_SECONDS, "issuer_type" => issuer_type)
        .record((chrono::Utc::now() - since).to_std().unwrap_or_default().as_secs_f64());
    let (family, size) = leaf.key_algorithm.family_and_size();
    let server_key = order.private_key_sealed.as_ref();
    let done = CompletedRenewal {
        job_id: order.job_id.clone(),
        attempts: order.job_attempts,
        certificate_id: order.certificate_id.clone(),
        issuer_id: order.issuer_id.clone(),
        version_id: format!("cv-{}", uuid::Uuid::now_v7().simple()),
        serial_number: leaf.serial_hex,
        not_before: leaf.not_before,
        not_after: leaf.not_after,
        fingerprint_sha256: leaf.fingerprint_sha256,
        pem_chain: leaf.chain_pem,
        key_algorithm: family.to_owned(),
        key_size: size,
        private_key_sealed: server_key.map(|key| base64::engine::general_purpose::STANDARD.encode(key)),
        // The agent's CSR is kept with the version; a server-made one is not (its key is).
        csr_pem: server_key.is_none().then(|| order.csr_pem.clone()),
        ari_window_start: renewal_window.map(|(start, _)| start),
        ari_window_end: renewal_window.map(|(_, end)| end),
    };
    // Written in the poller's next batch (one statement for many orders), then `finished`.
    deps.completions.do_send(super::Completed {
        done,
        connector,
        reference,
        request,
        order_id: order.order_id.clone(),
    });
}

/// Ends the job (and its order) with the CA's reason.
async fn end_with_failure(deps: &OrderDeps, order: &ClaimedOrder, issuer_type: &'static str, failure: IssueFailure) {
    metrics::counter!(ISSUANCE_FAILURES_TOTAL, "issuer_type" => issuer_type, "error_class" => failure.class.as_str())
        .increment(1);
    let failed = FailedRenewal {
        job_id: order.job_id.clone(),
        attempts: order.job_attempts,
        error_class: failure.class.as_str(),
        message: failure.message,
        // The CA's "no" (or a config it cannot work with) is final; an operator's retry places a
        // new order. Anything else is retried by the policy, with a new order too.
        retryable: !matches!(failure.class, ErrorClass::Upstream4xx | ErrorClass::Validation),
        ends_order: true,
    };
    match deps.db.run(FailRenewals { items: vec![failed] }).await {
        Ok(written) if written.written == 0 => {
            let _ = deps.db.run(CancelOrder { order_id: order.order_id.clone() }).await;
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(order_id = %order.order_id, error = %e, "writing a failed order failed"),
    }
}
