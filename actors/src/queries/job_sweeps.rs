//! The job sweeps the scheduler loops run: failed jobs whose retry is due put back in the queue,
//! and the reaper that fails jobs whose lease ran out (retried by the policy's backoff) or that
//! waited too long for a CSR or an approval.

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Client;

use super::job_sql::{next_retry, ACTIVE_STATUSES};
use crate::db::DbQuery;
use crate::error::DbError;
use crate::etag_cache::Table;

/// Failed jobs whose `retry_at` has come go back to `Pending`, up to `limit` of each kind per
/// statement: issuances and renewals one per certificate (others for the same certificate are
/// superseded), deployments for their agent's next poll.
pub struct RetryDueJobs {
    pub now: DateTime<Utc>,
    pub limit: i64,
}

impl DbQuery for RetryDueJobs {
    type Output = u64;
    const NAME: &'static str = "retry_due_jobs";
    const TOUCHES: &'static [Table] = &[Table::Jobs, Table::Certificates, Table::Audit];

    fn changed(output: &Self::Output) -> bool {
        *output > 0
    }

    async fn run(self, client: &mut Client) -> Result<u64, DbError> {
        let stmt = client
            .prepare_cached(&format!(
                "WITH due AS ( \
                   SELECT DISTINCT ON (j.certificate_id) j.id, j.certificate_id FROM jobs j \
                    WHERE j.status = 'Failed' AND j.retry_at <= $1 AND j.type IN ('Issuance', 'Renewal') \
                      AND NOT EXISTS (SELECT 1 FROM jobs a WHERE a.certificate_id = j.certificate_id \
                            AND a.type IN ('Issuance', 'Renewal') \
                            AND a.status IN {ACTIVE_STATUSES}) \
                    ORDER BY j.certificate_id, j.retry_at LIMIT $2), \
                 retried AS ( \
                   UPDATE jobs j SET status = 'Pending', retry_at = NULL, scheduled_at = now(), updated_at = now() \
                     FROM due WHERE j.id = due.id RETURNING j.id, j.certificate_id), \
                 superseded AS ( \
                   UPDATE jobs j SET retry_at = NULL FROM due \
                    WHERE j.certificate_id = due.certificate_id AND j.id <> due.id AND j.status = 'Failed' \
                      AND j.retry_at IS NOT NULL), \
                 certs AS ( \
                   UPDATE managed_certificates m SET status = 'RenewalInProgress', updated_at = now() FROM retried r \
                    WHERE m.id = r.certificate_id AND m.status NOT IN ('Archived', 'Revoked')), \
                 deployments AS ( \
                   UPDATE jobs j SET status = 'Pending', retry_at = NULL, scheduled_at = now(), updated_at = now() \
                    WHERE j.id IN (SELECT id FROM jobs WHERE status = 'Failed' AND retry_at <= $1 \
                                     AND type = 'Deployment' ORDER BY retry_at LIMIT $2) \
                   RETURNING j.id, j.certificate_id), \
                 audited AS ( \
                   INSERT INTO audit_events (actor, actor_type, action, resource_type, resource_id, details) \
                   SELECT 'job-retry', 'system', 'job.retry', 'job', r.id, \
                          jsonb_build_object('certificate_id', r.certificate_id) \
                     FROM (SELECT * FROM retried UNION ALL SELECT * FROM deployments) r) \
                 SELECT (SELECT count(*) FROM retried) + (SELECT count(*) FROM deployments)"
            ))
            .await?;
        let n: i64 = client.query_one(&stmt, &[&self.now, &self.limit]).await?.try_get(0)?;
        Ok(n as u64)
    }
}

/// The timeout reaper: Running jobs whose lease ran out fail as `timeout` (and are retried per
/// the policy); AwaitingCSR and AwaitingApproval jobs past their timeouts fail for good.
pub struct ReapJobs {
    pub now: DateTime<Utc>,
    pub awaiting_csr_timeout: Duration,
    pub awaiting_approval_timeout: Duration,
}

/// What the reaper did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reaped {
    pub lease_expired: i64,
    pub awaiting_csr: i64,
    pub awaiting_approval: i64,
}

impl DbQuery for ReapJobs {
    type Output = Reaped;
    const NAME: &'static str = "reap_jobs";
    const TOUCHES: &'static [Table] = &[Table::Jobs, Table::Certificates, Table::Audit];

    fn changed(output: &Self::Output) -> bool {
        output.lease_expired + output.awaiting_csr + output.awaiting_approval > 0
    }

    async fn run(self, client: &mut Client) -> Result<Reaped, DbError> {
        let stmt = client
            .prepare_cached(&format!(
                "WITH expired AS ( \
                   UPDATE jobs j SET status = 'Failed', error_class = 'timeout', \
                          last_error = CASE WHEN j.type = 'Deployment' \
                              THEN 'the lease expired before the agent reported the deployment' \
                              ELSE 'the lease expired before the issuance finished' END, \
                          lease_expires_at = NULL, completed_at = $1, updated_at = now(), \
                          retry_at = CASE WHEN j.attempts < j.max_attempts THEN {retry} END \
                     FROM managed_certificates m, renewal_policies p \
                    WHERE j.status = 'Running' AND j.lease_expires_at < $1 \
                      AND m.id = j.certificate_id AND p.id = m.renewal_policy_id \
                   RETURNING j.id, j.type, j.certificate_id, j.retry_at), \
                 stale AS ( \
                   UPDATE jobs j SET status = 'Failed', error_class = 'timeout', retry_at = NULL, completed_at = $1, \
                          updated_at = now(), \
                          last_error = CASE WHEN j.status = 'AwaitingCSR' THEN 'no CSR arrived in time' \
                                            ELSE 'no approval decision in time' END \
                    WHERE (j.status = 'AwaitingCSR' AND j.updated_at < $1 - make_interval(secs => $2)) \
                       OR (j.status = 'AwaitingApproval' AND j.updated_at < $1 - make_interval(secs => $3)) \
                   RETURNING j.id, j.certificate_id, j.last_error), \
                 certs AS ( \
                   UPDATE managed_certificates m SET status = 'Failed', updated_at = now() \
                    WHERE m.status = 'RenewalInProgress' AND m.id IN ( \
                          SELECT certificate_id FROM expired \
                           WHERE retry_at IS NULL AND type IN ('Issuance', 'Renewal') \
                          UNION ALL SELECT certificate_id FROM stale)), \
                 audited AS ( \
                   INSERT INTO audit_events (actor, actor_type, action, resource_type, resource_id, details) \
                   SELECT $4, 'system', 'job.timeout', 'certificate', certificate_id, \
                          jsonb_build_object('job_id', id, 'retry_at', retry_at) FROM expired \
                   UNION ALL \
                   SELECT $4, 'system', 'job.timeout', 'certificate', certificate_id, \
                          jsonb_build_object('job_id', id, 'error', last_error) FROM stale) \
                 SELECT (SELECT count(*) FROM expired), \
                        (SELECT count(*) FROM stale WHERE last_error = 'no CSR arrived in time'), \
                        (SELECT count(*) FROM stale WHERE last_error <> 'no CSR arrived in time')",
                retry = next_retry("$1")
            ))
            .await?;
        let row = client
            .query_one(
                &stmt,
                &[
                    &self.now,
                    &self.awaiting_csr_timeout.as_secs_f64(),
                    &self.awaiting_approval_timeout.as_secs_f64(),
                    &"job-reaper",
                ],
            )
            .await?;
        Ok(Reaped { lease_expired: row.try_get(0)?, awaiting_csr: row.try_get(1)?, awaiting_approval: row.try_get(2)? })
    }
}
