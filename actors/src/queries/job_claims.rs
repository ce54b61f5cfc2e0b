//! The renewal dispatcher's claims: due issuance and renewal jobs taken with `FOR UPDATE SKIP
//! LOCKED` and a lease, claims that never started given back, and the queue counts for its gauges.
//! What happens to a claimed job's result is in [`super::job_writebacks`].

use deadpool_postgres::Client;
use std::time::Duration;

use super::agent_work::parse_key_algorithms;
use crate::db::DbQuery;
use crate::error::DbError;
use crate::etag_cache::Table;

/// The actor the dispatcher's audit rows name.
pub const DISPATCHER_ACTOR: &str = "renewal-dispatcher";

/// A claimed job with what issuing it needs.
#[derive(Clone, Debug)]
pub struct ClaimedJob {
    pub job_id: String,
    pub job_type: String,
    pub attempts: i32,
    pub certificate_id: String,
    pub common_name: String,
    pub sans: Vec<String>,
    pub issuer_id: String,
    /// The profile's extended key usages (`serverAuth` without a profile).
    pub ekus: Vec<String>,
    /// The profile's maximum lifetime.
    pub max_ttl: Option<Duration>,
    /// The profile's allowed key types as `(algorithm, min_size)`; empty without a profile.
    pub allowed_key_algorithms: Vec<(String, i32)>,
    /// `Running` (to issue now) or `AwaitingCSR` (waiting for an agent's CSR).
    pub status: String,
    /// The agent's CSR, when it answered one.
    pub csr_pem: Option<String>,
    /// The job already has an order with a remote CA (placed under an earlier attempt whose
    /// poll budget ran out): it is polled again, never placed again.
    pub order_live: bool,
}

/// Claims up to `limit` due Pending issuance/renewal jobs, oldest first, skipping rows another
/// replica holds (`FOR UPDATE SKIP LOCKED`). A job the server can issue now (server key
/// generation, or an agent's CSR is on it) becomes `Running` with a lease and counts an attempt;
/// the others become `AwaitingCSR` for an agent to answer.
pub struct ClaimRenewalJobs {
    pub limit: i64,
    pub lease: Duration,
    /// `CERTCTL_KEYGEN_MODE=server`: every job can be issued now.
    pub server_keygen: bool,
}

impl DbQuery for ClaimRenewalJobs {
    type Output = Vec<ClaimedJob>;
    const NAME: &'static str = "claim_renewal_jobs";
    const TOUCHES: &'static [Table] = &[Table::Jobs];

    fn changed(output: &Self::Output) -> bool {
        !output.is_empty()
    }

    async fn run(self, client: &mut Client) -> Result<Vec<ClaimedJob>, DbError> {
        let stmt = client
            .prepare_cached(
                "WITH picked AS ( \
                   SELECT id, ($3 OR csr_pem IS NOT NULL) AS now FROM jobs \
                    WHERE status = 'Pending' AND type IN ('Issuance', 'Renewal') AND scheduled_at <= now() \
                    ORDER BY scheduled_at, id LIMIT $1 FOR UPDATE SKIP LOCKED), \
                 claimed AS ( \
                   UPDATE jobs j SET status = CASE WHEN p.now THEN 'Running' ELSE 'AwaitingCSR' END, \
                          attempts = j.attempts + CASE WHEN p.now THEN 1 ELSE 0 END, \
                          started_at = CASE WHEN p.now THEN now() ELSE j.started_at END, \
                          lease_expires_at = CASE WHEN p.now THEN now() + make_interval(secs => $2) END, \
                          agent_id = CASE WHEN p.now THEN j.agent_id END, \
                          retry_at = NULL, updated_at = now() \
                     FROM picked p WHERE j.id = p.id \
                   RETURNING j.id, j.type, j.certificate_id, j.attempts, j.status, j.csr_pem) \
                 SELECT c.id, c.type, c.attempts, c.certificate_id, m.common_name, m.sans, m.issuer_id, \
                        coalesce(pr.allowed_ekus, '[\"serverAuth\"]'::jsonb), pr.max_ttl_seconds, \
                        coalesce(pr.allowed_key_algorithms, '[]'::jsonb), c.status, c.csr_pem, \
                        EXISTS (SELECT 1 FROM ca_orders o WHERE o.job_id = c.id \
                                   AND o.state IN ('new', 'submitting', 'pending')) \
                   FROM claimed c JOIN managed_certificates m ON m.id = c.certificate_id \
                   LEFT JOIN certificate_profiles pr ON pr.id = m.certificate_profile_id",
            )
            .await?;
        let rows = client.query(&stmt, &[&self.limit, &self.lease.as_secs_f64(), &self.server_keygen]).await?;
        rows.iter()
            .map(|row| {
                let ekus: serde_json::Value = row.try_get(7)?;
                let max_ttl: Option<i32> = row.try_get(8)?;
                let algorithms: serde_json::Value = row.try_get(9)?;
                Ok(ClaimedJob {
                    job_id: row.try_get(0)?,
                    job_type: row.try_get(1)?,
                    attempts: row.try_get(2)?,
                    certificate_id: row.try_get(3)?,
                    common_name: row.try_get(4)?,
                    sans: row.try_get(5)?,
                    issuer_id: row.try_get(6)?,
                    ekus: serde_json::from_value(ekus).unwrap_or_else(|_| vec!["serverAuth".into()]),
                    max_ttl: max_ttl.filter(|s| *s > 0).map(|s| Duration::from_secs(s as u64)),
                    allowed_key_algorithms: parse_key_algorithms(&algorithms),
                    status: row.try_get(10)?,
                    csr_pem: row.try_get(11)?,
                    order_live: row.try_get(12)?,
                })
            })
            .collect()
    }
}

/// Gives claimed jobs that were never started back to `Pending` at once (the tick's deadline
/// came first): not an attempt, not a failure.
pub struct ReleaseJobs {
    /// `(job id, attempts at claim)`.
    pub jobs: Vec<(String, i32)>,
}

impl DbQuery for ReleaseJobs {
    type Output = u64;
    const NAME: &'static str = "release_jobs";
    const TOUCHES: &'static [Table] = &[Table::Jobs];

    fn changed(output: &Self::Output) -> bool {
        *output > 0
    }

    async fn run(self, client: &mut Client) -> Result<u64, DbError> {
        let (ids, attempts): (Vec<String>, Vec<i32>) = self.jobs.into_iter().unzip();
        let stmt = client
            .prepare_cached(
                "UPDATE jobs j SET status = 'Pending', attempts = j.attempts - 1, started_at = NULL, \
                        lease_expires_at = NULL, updated_at = now() \
                   FROM unnest($1::text[], $2::int[]) AS r(id, attempts) \
                  WHERE j.id = r.id AND j.attempts = r.attempts AND j.status = 'Running'",
            )
            .await?;
        Ok(client.execute(&stmt, &[&ids, &attempts]).await?)
    }
}

/// Issuance and renewal jobs by active status, for the queue-depth gauges. Each count reads a
/// partial index that holds only that status, so the cost follows the queue, not the history.
pub struct CountActiveJobs;

/// Active jobs by status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ActiveJobs {
    pub pending: i64,
    pub running: i64,
    pub awaiting_csr: i64,
    pub awaiting_approval: i64,
    pub awaiting_ca: i64,
    pub retry_waiting: i64,
}

impl DbQuery for CountActiveJobs {
    type Output = ActiveJobs;
    const NAME: &'static str = "count_active_jobs";

    async fn run(self, client: &mut Client) -> Result<ActiveJobs, DbError> {
        let stmt = client
            .prepare_cached(
                "SELECT (SELECT count(*) FROM jobs WHERE status = 'Pending' AND type IN ('Issuance', 'Renewal')), \
                        (SELECT count(*) FROM jobs WHERE status = 'Running' AND type IN ('Issuance', 'Renewal')), \
                        (SELECT count(*) FROM jobs WHERE status = 'AwaitingCSR'), \
                        (SELECT count(*) FROM jobs WHERE status = 'AwaitingApproval'), \
                        (SELECT count(*) FROM jobs WHERE status = 'Failed' AND retry_at IS NOT NULL \
                            AND type IN ('Issuance', 'Renewal')), \
                        (SELECT count(*) FROM jobs WHERE status = 'AwaitingCA')",
            )
            .await?;
        let row = client.query_one(&stmt, &[]).await?;
        Ok(ActiveJobs {
            pending: row.try_get(0)?,
            running: row.try_get(1)?,
            awaiting_csr: row.try_get(2)?,
            awaiting_approval: row.try_get(3)?,
            retry_waiting: row.try_get(4)?,
            awaiting_ca: row.try_get(5)?,
        })
    }
}
