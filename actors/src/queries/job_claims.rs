//! The renewal dispatcher's statements: claiming due jobs with a lease, writing results back in
//! batches, releasing unstarted claims, and the retry and reaper sweeps.
//!
//! Results are matched on `(job id, attempts)` and only while the job is still `Running`: a job
//! whose lease ran out and was reaped, or that was cancelled meanwhile, does not get a late result
//! written over it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Client;
use serde::Serialize;
use tokio_postgres::types::Json;

use super::agent_work::parse_key_algorithms;
use super::job_sql::ACTIVE_STATUSES;
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
                        coalesce(pr.allowed_key_algorithms, '[]'::jsonb), c.status, c.csr_pem \
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
                })
            })
            .collect()
    }
}

/// A successful issuance to record.
#[derive(Clone, Debug, Serialize)]
pub struct CompletedRenewal {
    pub job_id: String,
    pub attempts: i32,
    pub certificate_id: String,
    pub issuer_id: String,
    pub version_id: String,
    pub serial_number: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    pub fingerprint_sha256: String,
    pub pem_chain: String,
    pub key_algorithm: String,
    pub key_size: i32,
    /// The sealed server-generated key, base64.
    pub private_key_sealed: Option<String>,
    /// The agent's CSR the leaf was issued for.
    pub csr_pem: Option<String>,
    /// The issuer's suggested renewal window (ARI), when it gave one.
    pub ari_window_start: Option<DateTime<Utc>>,
    pub ari_window_end: Option<DateTime<Utc>>,
}

/// What a write-back did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteBack {
    /// Results written (the others were for jobs no longer Running under that attempt).
    pub written: i64,
    /// Deployment jobs created (completions) or jobs failed for good (failures).
    pub follow_ups: i64,
}

/// Records a batch of issued certificates in one statement: the version rows, each
/// certificate's status, expiry and next `renew_at` (a random point in the issuer's ARI window
/// when it gave one, else the `certctl_renew_at` SQL function of migration V9), the job completed,
/// one Deployment job per bound target, and an audit row each.
pub struct CompleteRenewals {
    pub items: Vec<CompletedRenewal>,
}

impl DbQuery for CompleteRenewals {
    type Output = WriteBack;
    const NAME: &'static str = "complete_renewals";
    const TOUCHES: &'static [Table] = &[Table::Jobs, Table::Certificates, Table::Audit];

    fn changed(output: &Self::Output) -> bool {
        output.written > 0
    }

    async fn run(self, client: &mut Client) -> Result<WriteBack, DbError> {
        let stmt = client
            .prepare_cached(
                "WITH input AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(job_id text, attempts int, \
                   certificate_id text, issuer_id text, version_id text, serial_number text, not_before timestamptz, \
                   not_after timestamptz, fingerprint_sha256 text, pem_chain text, key_algorithm text, key_size int, \
                   private_key_sealed text, ari_window_start timestamptz, ari_window_end timestamptz, \
                   csr_pem text)), \
                 done AS ( \
                   UPDATE jobs j SET status = 'Completed', completed_at = now(), lease_expires_at = NULL, \
                          last_error = '', error_class = NULL, updated_at = now() \
                     FROM input i WHERE j.id = i.job_id AND j.status = 'Running' AND j.attempts = i.attempts \
                   RETURNING j.id, j.type), \
                 kept AS (SELECT i.*, d.type FROM input i JOIN done d ON d.id = i.job_id), \
                 versions AS ( \
                   INSERT INTO certificate_versions (id, certificate_id, serial_number, not_before, not_after, \
                          fingerprint_sha256, pem_chain, key_algorithm, key_size, private_key_sealed, issuer_id, \
                          csr_pem) \
                   SELECT version_id, certificate_id, serial_number, not_before, not_after, fingerprint_sha256, \
                          pem_chain, key_algorithm, key_size, decode(private_key_sealed, 'base64'), issuer_id, \
                          coalesce(csr_pem, '') FROM kept), \
                 certs AS ( \
                   UPDATE managed_certificates m SET status = 'Active', expires_at = k.not_after, \
                          last_renewal_at = now(), updated_at = now(), \
                          renew_at = CASE WHEN k.ari_window_end > k.ari_window_start \
                              THEN k.ari_window_start + (k.ari_window_end - k.ari_window_start) * random() \
                              ELSE certctl_renew_at(now(), k.not_after, p.renewal_window_days, p.renew_at_fraction) END \
                     FROM kept k, renewal_policies p \
                    WHERE m.id = k.certificate_id AND p.id = m.renewal_policy_id \
                      AND m.status NOT IN ('Archived', 'Revoked')), \
                 superseded AS ( \
                   UPDATE jobs j SET retry_at = NULL FROM kept k \
                    WHERE j.certificate_id = k.certificate_id AND j.status = 'Failed' AND j.retry_at IS NOT NULL), \
                 superseded_deploys AS ( \
                   UPDATE jobs j SET status = 'Cancelled', retry_at = NULL, completed_at = now(), updated_at = now(), \
                          last_error = 'superseded by a newer version' FROM kept k \
                    WHERE j.certificate_id = k.certificate_id AND j.type = 'Deployment' \
                      AND (j.status = 'Pending' OR (j.status = 'Failed' AND j.retry_at IS NOT NULL))), \
                 deploys AS ( \
                   INSERT INTO jobs (id, type, certificate_id, target_id, agent_id, status, certificate_version_id) \
                   SELECT 'job-' || replace(gen_random_uuid()::text, '-', ''), 'Deployment', k.certificate_id, t.id, \
                          t.agent_id, 'Pending', k.version_id \
                     FROM kept k JOIN certificate_target_mappings ctm ON ctm.certificate_id = k.certificate_id \
                     JOIN deployment_targets t ON t.id = ctm.target_id \
                    WHERE t.enabled AND NOT EXISTS ( \
                          SELECT 1 FROM agents a WHERE a.id = t.agent_id AND a.retired_at IS NOT NULL) \
                   RETURNING id), \
                 audited AS ( \
                   INSERT INTO audit_events (actor, actor_type, action, resource_type, resource_id, details) \
                   SELECT $2, 'system', CASE WHEN k.type = 'Issuance' THEN 'certificate.issue' ELSE 'certificate.renew' END, \
                          'certificate', k.certificate_id, \
                          jsonb_build_object('job_id', k.job_id, 'version_id', k.version_id, \
                                             'serial_number', k.serial_number, 'not_after', k.not_after) \
                     FROM kept k) \
                 SELECT (SELECT count(*) FROM kept), (SELECT count(*) FROM deploys)",
            )
            .await?;
        let row = client.query_one(&stmt, &[&Json(&self.items), &DISPATCHER_ACTOR]).await?;
        Ok(WriteBack { written: row.try_get(0)?, follow_ups: row.try_get(1)? })
    }
}

/// A failed issuance to record.
#[derive(Clone, Debug, Serialize)]
pub struct FailedRenewal {
    pub job_id: String,
    pub attempts: i32,
    pub error_class: &'static str,
    pub message: String,
    pub retryable: bool,
}

/// Longest wait between two attempts, however many have failed.
pub const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(6 * 3600);

/// Records a batch of failures: the job `Failed` with its error and class, and a `retry_at`
/// from the policy (`retry_interval_seconds` doubling per attempt, capped) while attempts are
/// left and the failure is retryable; otherwise it failed for good and so has the certificate.
pub struct FailRenewals {
    pub items: Vec<FailedRenewal>,
}

impl DbQuery for FailRenewals {
    type Output = WriteBack;
    const NAME: &'static str = "fail_renewals";
    const TOUCHES: &'static [Table] = &[Table::Jobs, Table::Certificates, Table::Audit];

    fn changed(output: &Self::Output) -> bool {
        output.written > 0
    }

    async fn run(self, client: &mut Client) -> Result<WriteBack, DbError> {
        let stmt = client
            .prepare_cached(
                "WITH input AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(job_id text, attempts int, \
                   error_class text, message text, retryable boolean)), \
                 failed AS ( \
                   UPDATE jobs j SET status = 'Failed', last_error = i.message, error_class = i.error_class, \
                          lease_expires_at = NULL, completed_at = now(), updated_at = now(), \
                          retry_at = CASE WHEN i.retryable AND j.attempts < j.max_attempts THEN now() + make_interval( \
                              secs => least(p.retry_interval_seconds * power(2, greatest(j.attempts - 1, 0)), $3)) END \
                     FROM input i, managed_certificates m, renewal_policies p \
                    WHERE j.id = i.job_id AND j.status = 'Running' AND j.attempts = i.attempts \
                      AND m.id = j.certificate_id AND p.id = m.renewal_policy_id \
                   RETURNING j.id, j.certificate_id, j.retry_at, i.error_class, i.message), \
                 certs AS ( \
                   UPDATE managed_certificates m SET status = 'Failed', updated_at = now() FROM failed f \
                    WHERE m.id = f.certificate_id AND f.retry_at IS NULL AND m.status = 'RenewalInProgress'), \
                 audited AS ( \
                   INSERT INTO audit_events (actor, actor_type, action, resource_type, resource_id, details) \
                   SELECT $2, 'system', 'job.fail', 'certificate', f.certificate_id, \
                          jsonb_build_object('job_id', f.id, 'error_class', f.error_class, 'error', f.message, \
                                             'retry_at', f.retry_at, 'final', f.retry_at IS NULL) \
                     FROM failed f) \
                 SELECT count(*), count(*) FILTER (WHERE retry_at IS NULL) FROM failed",
            )
            .await?;
        let cap = MAX_RETRY_BACKOFF.as_secs_f64();
        let row = client.query_one(&stmt, &[&Json(&self.items), &DISPATCHER_ACTOR, &cap]).await?;
        Ok(WriteBack { written: row.try_get(0)?, follow_ups: row.try_get(1)? })
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
            .prepare_cached(
                "WITH expired AS ( \
                   UPDATE jobs j SET status = 'Failed', error_class = 'timeout', \
                          last_error = CASE WHEN j.type = 'Deployment' \
                              THEN 'the lease expired before the agent reported the deployment' \
                              ELSE 'the lease expired before the issuance finished' END, \
                          lease_expires_at = NULL, completed_at = $1, updated_at = now(), \
                          retry_at = CASE WHEN j.attempts < j.max_attempts THEN $1 + make_interval( \
                              secs => least(p.retry_interval_seconds * power(2, greatest(j.attempts - 1, 0)), $5)) END \
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
            )
            .await?;
        let row = client
            .query_one(
                &stmt,
                &[
                    &self.now,
                    &self.awaiting_csr_timeout.as_secs_f64(),
                    &self.awaiting_approval_timeout.as_secs_f64(),
                    &"job-reaper",
                    &MAX_RETRY_BACKOFF.as_secs_f64(),
                ],
            )
            .await?;
        Ok(Reaped { lease_expired: row.try_get(0)?, awaiting_csr: row.try_get(1)?, awaiting_approval: row.try_get(2)? })
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
                            AND type IN ('Issuance', 'Renewal'))",
            )
            .await?;
        let row = client.query_one(&stmt, &[]).await?;
        Ok(ActiveJobs {
            pending: row.try_get(0)?,
            running: row.try_get(1)?,
            awaiting_csr: row.try_get(2)?,
            awaiting_approval: row.try_get(3)?,
            retry_waiting: row.try_get(4)?,
        })
    }
}
