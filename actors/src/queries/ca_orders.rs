//! Orders with remote CAs (`ca_orders`, migration V12): the dispatcher's hand-over, the CA
//! poller's claims, and what a poll leads to (submission recorded, next poll, parking when the
//! budget runs out, cancellation when the job ended). Issuance and rejection are written by
//! [`super::job_writebacks`], in the same statement as the job's result.

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Client;
use serde::Serialize;
use tokio_postgres::types::Json;

use crate::db::DbQuery;
use crate::error::DbError;
use crate::etag_cache::Table;

/// Order states the poller still works on.
pub(crate) const LIVE_ORDER_STATES: &str = "('new', 'submitting', 'pending')";

/// A job handed to the CA poller.
#[derive(Clone, Debug, Serialize)]
pub struct OrderHandOver {
    pub job_id: String,
    pub attempts: i32,
    pub certificate_id: String,
    pub issuer_id: String,
    /// The new order's id (used only when the job has no live order yet).
    pub order_id: String,
    /// The connector's `OrderRequest`, JSON.
    pub request: serde_json::Value,
    pub csr_pem: String,
    /// The sealed server-generated key, base64.
    pub private_key_sealed: Option<String>,
}

/// Hands claimed jobs to the CA poller in one statement: each job still `Running` under its
/// attempt becomes `AwaitingCA` (no lease: the poller owns it now), and gets a new order intent,
/// or, when it already has a live order (its poll budget ran out before), that order is due again
/// under the new attempt: an order is never placed twice for one job. A job handed over without
/// a CSR (because it had a live order at its claim) whose order ended meanwhile stays `Running`,
/// and its lease brings it back.
pub struct HandOverOrders {
    pub items: Vec<OrderHandOver>,
}

/// What a hand-over did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HandedOver {
    /// New order intents.
    pub created: i64,
    /// Orders already placed, due to be polled again.
    pub resumed: i64,
}

impl DbQuery for HandOverOrders {
    type Output = HandedOver;
    const NAME: &'static str = "hand_over_orders";
    const TOUCHES: &'static [Table] = &[Table::Jobs];

    fn changed(output: &Self::Output) -> bool {
        output.created + output.resumed > 0
    }

    async fn run(self, client: &mut Client) -> Result<HandedOver, DbError> {
        let stmt = client
            .prepare_cached(&format!(
                "WITH input AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(job_id text, attempts int, \
                   certificate_id text, issuer_id text, order_id text, request jsonb, csr_pem text, \
                   private_key_sealed text)), \
                 moved AS ( \
                   UPDATE jobs j SET status = 'AwaitingCA', lease_expires_at = NULL, updated_at = now() \
                     FROM input i WHERE j.id = i.job_id AND j.status = 'Running' AND j.attempts = i.attempts \
                      AND (i.csr_pem <> '' OR EXISTS (SELECT 1 FROM ca_orders o \
                            WHERE o.job_id = i.job_id AND o.state IN {LIVE_ORDER_STATES})) \
                   RETURNING j.id), \
                 kept AS (SELECT i.* FROM input i JOIN moved m ON m.id = i.job_id), \
                 resumed AS ( \
                   UPDATE ca_orders o SET job_attempts = k.attempts, next_poll_at = now(), poll_interval = 0, \
                          handed_over_at = now(), updated_at = now() \
                     FROM kept k WHERE o.job_id = k.job_id AND o.state IN {LIVE_ORDER_STATES} \
                   RETURNING o.job_id), \
                 created AS ( \
                   INSERT INTO ca_orders (id, job_id, certificate_id, issuer_id, state, job_attempts, request, csr_pem, \
                          private_key_sealed, next_poll_at) \
                   SELECT k.order_id, k.job_id, k.certificate_id, k.issuer_id, 'new', k.attempts, k.request, k.csr_pem, \
                          decode(k.private_key_sealed, 'base64'), now() \
                     FROM kept k WHERE NOT EXISTS (SELECT 1 FROM resumed r WHERE r.job_id = k.job_id) \
                   RETURNING job_id) \
                 SELECT (SELECT count(*) FROM created), (SELECT count(*) FROM resumed)"
            ))
            .await?;
        let row = client.query_one(&stmt, &[&Json(&self.items)]).await?;
        Ok(HandedOver { created: row.try_get(0)?, resumed: row.try_get(1)? })
    }
}

/// What the poller does with a claimed order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderStep {
    /// Place it with the CA (it was a new intent).
    Submit,
    /// A submission may have reached the CA before a crash: find it by the CA's lookup.
    Recover,
    /// Ask the CA where it stands.
    Poll,
    /// Its job ended (cancelled, archived, revoked): stop.
    Cancel,
}

/// A claimed order with what working on it needs.
#[derive(Clone, Debug)]
pub struct ClaimedOrder {
    pub order_id: String,
    pub job_id: String,
    pub job_attempts: i32,
    pub job_type: String,
    pub certificate_id: String,
    pub issuer_id: String,
    pub step: OrderStep,
    pub request: serde_json::Value,
    pub csr_pem: String,
    pub private_key_sealed: Option<Vec<u8>>,
    pub external_id: Option<String>,
    pub external_state: serde_json::Value,
    pub polls: i32,
    /// The current backoff step.
    pub poll_interval: Duration,
    pub handed_over_at: DateTime<Utc>,
    pub submitted_at: Option<DateTime<Utc>>,
}

/// Claims due live orders, oldest first, skipping rows another replica holds, at most
/// `per_issuer` per issuer less what this replica already has in flight for it (`busy`). A
/// claim pushes `next_poll_at` out by `lease`, so an order whose poller dies is due again then;
/// a new intent becomes `submitting`.
pub struct ClaimDueOrders {
    pub limit: i64,
    pub lease: Duration,
    pub per_issuer: i64,
    /// `(issuer id, slots still free)` for the issuers with work in flight here.
    pub busy: Vec<(String, i64)>,
}

impl DbQuery for ClaimDueOrders {
    type Output = Vec<ClaimedOrder>;
    const NAME: &'static str = "claim_due_orders";

    async fn run(self, client: &mut Client) -> Result<Vec<ClaimedOrder>, DbError> {
        let stmt = client
            .prepare_cached(&format!(
                "WITH due AS ( \
                   SELECT d.id, row_number() OVER (PARTITION BY d.issuer_id ORDER BY d.next_poll_at, d.id) AS n, \
                          d.issuer_id \
                     FROM (SELECT id, issuer_id, next_poll_at FROM ca_orders \
                            WHERE state IN {LIVE_ORDER_STATES} AND next_poll_at <= now() \
                            ORDER BY next_poll_at LIMIT $1::bigint * 4) d), \
                 allowed AS ( \
                   SELECT due.id FROM due LEFT JOIN unnest($4::text[], $5::bigint[]) AS b(issuer_id, free) \
                       ON b.issuer_id = due.issuer_id \
                    WHERE due.n <= coalesce(b.free, $3::bigint)), \
                 picked AS ( \
                   SELECT o.id, o.state AS was FROM ca_orders o JOIN allowed a ON a.id = o.id \
                    WHERE o.state IN {LIVE_ORDER_STATES} AND o.next_poll_at <= now() \
                    ORDER BY o.next_poll_at, o.id LIMIT $1::bigint FOR UPDATE OF o SKIP LOCKED), \
                 claimed AS ( \
                   UPDATE ca_orders o SET state = CASE WHEN o.state = 'new' THEN 'submitting' ELSE o.state END, \
                          next_poll_at = now() + make_interval(secs => $2), updated_at = now() \
                     FROM picked p WHERE o.id = p.id \
                   RETURNING o.*, p.was) \
                 SELECT c.id, c.job_id, c.job_attempts, j.type, c.certificate_id, c.issuer_id, c.was, \
                        j.status = 'AwaitingCA' AND j.attempts = c.job_attempts, c.request, c.csr_pem, \
                        c.private_key_sealed, c.external_id, c.external_state, c.polls, c.poll_interval, \
                        c.handed_over_at, c.submitted_at \
                   FROM claimed c JOIN jobs j ON j.id = c.job_id"
            ))
            .await?;
        let (ids, free): (Vec<String>, Vec<i64>) = self.busy.into_iter().unzip();
        let rows =
            client.query(&stmt, &[&self.limit, &self.lease.as_secs_f64(), &self.per_issuer, &ids, &free]).await?;
        rows.iter()
            .map(|row| {
                let was: String = row.try_get(6)?;
                let job_live: bool = row.try_get(7)?;
                let step = match (job_live, was.as_str()) {
                    (false, _) => OrderStep::Cancel,
                    (true, "new") => OrderStep::Submit,
                    (true, "submitting") => OrderStep::Recover,
                    _ => OrderStep::Poll,
                };
                let interval: f64 = row.try_get(14)?;
                Ok(ClaimedOrder {
                    order_id: row.try_get(0)?,
                    job_id: row.try_get(1)?,
                    job_attempts: row.try_get(2)?,
                    job_type: row.try_get(3)?,
                    certificate_id: row.try_get(4)?,
                    issuer_id: row.try_get(5)?,
                    step,
                    request: row.try_get(8)?,
                    csr_pem: row.try_get(9)?,
                    private_key_sealed: row.try_get(10)?,
                    external_id: row.try_get(11)?,
                    external_state: row.try_get(12)?,
                    polls: row.try_get(13)?,
                    poll_interval: Duration::from_secs_f64(interval.max(0.0)),
                    handed_over_at: row.try_get(15)?,
                    submitted_at: row.try_get(16)?,
                })
            })
            .collect()
    }
}

/// What the poller learnt about an order that is still with the CA.
#[derive(Clone, Debug)]
pub struct OrderProgress {
    pub order_id: String,
    /// The CA's id, once it gave one (recorded with `submitted_at` the first time).
    pub external_id: Option<String>,
    /// The connector's notes, when they changed.
    pub external_state: Option<serde_json::Value>,
    /// When to ask again.
    pub next_poll_in: Duration,
    /// The backoff step reached.
    pub poll_interval: Duration,
    /// Whether the CA was asked (a poll counted).
    pub polled: bool,
    /// What the CA said, or the error that made this a later poll.
    pub note: String,
    /// The submission never reached the CA: the order is a new intent again.
    pub reopen: bool,
}

/// Records a submission or a poll that left the order pending, and when to poll it next.
pub struct RecordProgress {
    pub progress: OrderProgress,
}

impl DbQuery for RecordProgress {
    type Output = bool;
    const NAME: &'static str = "record_order_progress";

    async fn run(self, client: &mut Client) -> Result<bool, DbError> {
        let p = self.progress;
        let stmt = client
            .prepare_cached(&format!(
                "UPDATE ca_orders SET \
                   state = CASE WHEN $2::text IS NOT NULL THEN 'pending' WHEN $8 THEN 'new' ELSE state END, \
                   external_id = coalesce($2, external_id), \
                   submitted_at = CASE WHEN $2::text IS NOT NULL AND submitted_at IS NULL THEN now() \
                                       ELSE submitted_at END, \
                   external_state = coalesce($3, external_state), \
                   next_poll_at = now() + make_interval(secs => $4), poll_interval = $5, \
                   polls = polls + CASE WHEN $6 THEN 1 ELSE 0 END, last_error = $7, updated_at = now() \
                 WHERE id = $1 AND state IN {LIVE_ORDER_STATES}"
            ))
            .await?;
        let state = p.external_state.map(Json);
        let n = client
            .execute(
                &stmt,
                &[
                    &p.order_id,
                    &p.external_id,
                    &state,
                    &p.next_poll_in.as_secs_f64(),
                    &p.poll_interval.as_secs_f64(),
                    &p.polled,
                    &p.note,
                    &p.reopen,
                ],
            )
            .await?;
        Ok(n == 1)
    }
}

/// Parks an order whose poll budget ran out: the job goes back to `Pending` (claimable again after
/// `retry_in`) and the order keeps its CA id with no next poll, until the job is handed over again.
pub struct ParkOrder {
    pub order_id: String,
    pub job_id: String,
    pub job_attempts: i32,
    pub retry_in: Duration,
    pub message: String,
    /// The order's submission surely reached nothing: it is a new intent again.
    pub reopen: bool,
}

impl DbQuery for ParkOrder {
    type Output = bool;
    const NAME: &'static str = "park_order";
    const TOUCHES: &'static [Table] = &[Table::Jobs];

    fn changed(output: &Self::Output) -> bool {
        *output
    }

    async fn run(self, client: &mut Client) -> Result<bool, DbError> {
        let stmt = client
            .prepare_cached(&format!(
                "WITH job AS ( \
                   UPDATE jobs SET status = 'Pending', scheduled_at = now() + make_interval(secs => $4), \
                          last_error = $5, error_class = 'timeout', updated_at = now() \
                    WHERE id = $2 AND status = 'AwaitingCA' AND attempts = $3 RETURNING id) \
                 UPDATE ca_orders SET next_poll_at = NULL, last_error = $5, updated_at = now(), \
                        state = CASE WHEN $6 THEN 'new' ELSE state END \
                  WHERE id = $1 AND state IN {LIVE_ORDER_STATES} AND EXISTS (SELECT 1 FROM job)"
            ))
            .await?;
        let n = client
            .execute(
                &stmt,
                &[
                    &self.order_id,
                    &self.job_id,
                    &self.job_attempts,
                    &self.retry_in.as_secs_f64(),
                    &self.message,
                    &self.reopen,
                ],
            )
            .await?;
        Ok(n == 1)
    }
}

/// Ends an order whose job ended without it (cancelled, archived, revoked): nothing polls it again.
pub struct CancelOrder {
    pub order_id: String,
}

impl DbQuery for CancelOrder {
    type Output = bool;
    const NAME: &'static str = "cancel_order";

    async fn run(self, client: &mut Client) -> Result<bool, DbError> {
        let stmt = client
            .prepare_cached(&format!(
                "UPDATE ca_orders SET state = 'cancelled', next_poll_at = NULL, \
                        last_error = 'its job ended before the CA decided', updated_at = now() \
                  WHERE id = $1 AND state IN {LIVE_ORDER_STATES}"
            ))
            .await?;
        Ok(client.execute(&stmt, &[&self.order_id]).await? == 1)
    }
}

/// Live orders by issuer, for the `certctl_ca_orders_pending` gauge (over the partial index of
/// live orders, which holds only what is with a CA now).
pub struct LiveOrdersByIssuer;

impl DbQuery for LiveOrdersByIssuer {
    type Output = Vec<(String, i64)>;
    const NAME: &'static str = "live_orders_by_issuer";

    async fn run(self, client: &mut Client) -> Result<Vec<(String, i64)>, DbError> {
        let stmt = client
            .prepare_cached(&format!(
                "SELECT issuer_id, count(*) FROM ca_orders WHERE state IN {LIVE_ORDER_STATES} GROUP BY issuer_id"
            ))
            .await?;
        client.query(&stmt, &[]).await?.iter().map(|row| Ok((row.try_get(0)?, row.try_get(1)?))).collect()
    }
}

/// When the next live order is due (`None`: none is), so the poller sleeps until then.
pub struct NextOrderDue;

impl DbQuery for NextOrderDue {
    type Output = Option<DateTime<Utc>>;
    const NAME: &'static str = "next_order_due";

    async fn run(self, client: &mut Client) -> Result<Option<DateTime<Utc>>, DbError> {
        let stmt = client
            .prepare_cached(&format!(
                "SELECT min(next_poll_at) FROM ca_orders WHERE state IN {LIVE_ORDER_STATES} AND next_poll_at IS NOT NULL"
            ))
            .await?;
        Ok(client.query_one(&stmt, &[]).await?.try_get(0)?)
    }
}

/// The chain of the newest version an issuer issued.
pub struct LastIssuedChain {
    pub issuer_id: String,
}

impl DbQuery for LastIssuedChain {
    type Output = Option<String>;
    const NAME: &'static str = "last_issued_chain";

    async fn run(self, client: &mut Client) -> Result<Option<String>, DbError> {
        // ca_orders' serial index holds only what remote CAs issued; its newest row names the version.
        let stmt = client
            .prepare_cached(
                "SELECT v.pem_chain FROM ca_orders o JOIN certificate_versions v ON v.id = o.version_id \
                  WHERE o.issuer_id = $1 AND o.state = 'issued' ORDER BY o.issued_at DESC LIMIT 1",
            )
            .await?;
        Ok(client.query_opt(&stmt, &[&self.issuer_id]).await?.map(|row| row.try_get(0)).transpose()?)
    }
}

/// A revocation to tell the remote CA that issued the certificate.
#[derive(Clone, Debug)]
pub struct PendingRevocation {
    pub revocation_id: String,
    pub issuer_id: String,
    pub serial_number: String,
    /// The RFC 5280 name as stored.
    pub reason: String,
    pub notify_attempts: i32,
    /// The revoked version's chain, PEM.
    pub chain_pem: Option<String>,
    /// The order that issued it, when certctl placed it.
    pub external_id: Option<String>,
    pub external_state: Option<serde_json::Value>,
}

/// Claims revocations not yet accepted by their CA and due for another try (the local CA's are
/// recorded as notified when they are made), pushing their next try out by `lease`.
pub struct ClaimRevocations {
    pub limit: i64,
    pub lease: Duration,
}

impl DbQuery for ClaimRevocations {
    type Output = Vec<PendingRevocation>;
    const NAME: &'static str = "claim_revocations";

    async fn run(self, client: &mut Client) -> Result<Vec<PendingRevocation>, DbError> {
        let stmt = client
            .prepare_cached(
                "WITH picked AS ( \
                   SELECT id FROM certificate_revocations WHERE NOT issuer_notified AND next_notify_at <= now() \
                    ORDER BY next_notify_at LIMIT $1 FOR UPDATE SKIP LOCKED), \
                 claimed AS ( \
                   UPDATE certificate_revocations r SET next_notify_at = now() + make_interval(secs => $2) \
                     FROM picked p WHERE r.id = p.id \
                   RETURNING r.id, r.issuer_id, r.serial_number, r.reason, r.notify_attempts, r.certificate_id) \
                 SELECT c.id, c.issuer_id, c.serial_number, c.reason, c.notify_attempts, v.pem_chain, o.external_id, \
                        o.external_state \
                   FROM claimed c \
                   LEFT JOIN LATERAL (SELECT pem_chain FROM certificate_versions v \
                                       WHERE v.certificate_id = c.certificate_id AND v.serial_number = c.serial_number \
                                       LIMIT 1) v ON true \
                   LEFT JOIN LATERAL (SELECT external_id, external_state FROM ca_orders o \
                                       WHERE o.issuer_id = c.issuer_id AND o.serial_number = c.serial_number \
                                       LIMIT 1) o ON true",
            )
            .await?;
        let rows = client.query(&stmt, &[&self.limit, &self.lease.as_secs_f64()]).await?;
        rows.iter()
            .map(|row| {
                Ok(PendingRevocation {
                    revocation_id: row.try_get(0)?,
                    issuer_id: row.try_get(1)?,
                    serial_number: row.try_get(2)?,
                    reason: row.try_get(3)?,
                    notify_attempts: row.try_get(4)?,
                    chain_pem: row.try_get(5)?,
                    external_id: row.try_get(6)?,
                    external_state: row.try_get(7)?,
                })
            })
            .collect()
    }
}

/// Records the CA's answer to a revocation: accepted, or the error and when to try again.
pub struct RecordRevocation {
    pub revocation_id: String,
    /// `None`: the CA accepted it.
    pub error: Option<String>,
    pub retry_in: Duration,
}

impl DbQuery for RecordRevocation {
    type Output = ();
    const NAME: &'static str = "record_revocation";

    async fn run(self, client: &mut Client) -> Result<(), DbError> {
        let stmt = client
            .prepare_cached(
                "UPDATE certificate_revocations SET issuer_notified = $2::text IS NULL, \
                        notify_attempts = notify_attempts + 1, notify_error = coalesce($2, ''), \
                        next_notify_at = now() + make_interval(secs => $3) \
                  WHERE id = $1",
            )
            .await?;
        client.execute(&stmt, &[&self.revocation_id, &self.error, &self.retry_in.as_secs_f64()]).await?;
        Ok(())
    }
}

/// Ends orders left parked by jobs that ended while their budget had run out (cancelled,
/// archived, revoked): nothing will hand them over again.
pub struct EndOrphanedOrders;

impl DbQuery for EndOrphanedOrders {
    type Output = u64;
    const NAME: &'static str = "end_orphaned_orders";

    async fn run(self, client: &mut Client) -> Result<u64, DbError> {
        let stmt = client
            .prepare_cached(&format!(
                "UPDATE ca_orders o SET state = 'cancelled', last_error = 'its job ended', updated_at = now() \
                   FROM jobs j \
                  WHERE o.state IN {LIVE_ORDER_STATES} AND o.next_poll_at IS NULL AND j.id = o.job_id \
                    AND j.status NOT IN ('Pending', 'Running', 'AwaitingCA', 'Failed')"
            ))
            .await?;
        Ok(client.execute(&stmt, &[]).await?)
    }
}
