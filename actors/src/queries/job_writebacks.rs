//! The renewal dispatcher's write-backs: a batch of completions (versions, certificates, the
//! next `renew_at`, deployment jobs, audit rows) or of failures (retry by the policy's backoff, or
//! failed for good) in one statement each.
//!
//! Results are matched on `(job id, attempts)` and only while the job is still `Running` (the
//! dispatcher's) or `AwaitingCA` (the CA poller's): a job whose lease ran out and was reaped, or
//! that was cancelled meanwhile, does not get a late result written over it. A result from a
//! remote CA also ends the job's live order (`ca_orders`).

use chrono::{DateTime, Utc};
use deadpool_postgres::Client;
use serde::Serialize;
use tokio_postgres::types::Json;

use super::job_claims::DISPATCHER_ACTOR;
use super::job_sql::next_retry;
use crate::db::DbQuery;
use crate::error::DbError;
use crate::etag_cache::Table;

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
                     FROM input i WHERE j.id = i.job_id AND j.status IN ('Running', 'AwaitingCA') \
                      AND j.attempts = i.attempts \
                   RETURNING j.id, j.type), \
                 kept AS (SELECT i.*, d.type FROM input i JOIN done d ON d.id = i.job_id), \
                 orders AS ( \
                   UPDATE ca_orders o SET state = 'issued', issued_at = now(), serial_number = k.serial_number, \
                          version_id = k.version_id, next_poll_at = NULL, last_error = '', updated_at = now() \
                     FROM kept k WHERE o.job_id = k.job_id AND o.state IN ('new', 'submitting', 'pending')), \
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
    /// The CA refused the job's order for good: the order ends with the job, so a retry places
    /// a new one.
    pub ends_order: bool,
}

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
            .prepare_cached(&format!(
                "WITH input AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(job_id text, attempts int, \
                   error_class text, message text, retryable boolean, ends_order boolean)), \
                 failed AS ( \
                   UPDATE jobs j SET status = 'Failed', last_error = i.message, error_class = i.error_class, \
                          lease_expires_at = NULL, completed_at = now(), updated_at = now(), \
                          retry_at = CASE WHEN i.retryable AND j.attempts < j.max_attempts THEN {} END \
                     FROM input i, managed_certificates m, renewal_policies p \
                    WHERE j.id = i.job_id AND j.status IN ('Running', 'AwaitingCA') AND j.attempts = i.attempts \
                      AND m.id = j.certificate_id AND p.id = m.renewal_policy_id \
                   RETURNING j.id, j.certificate_id, j.retry_at, i.error_class, i.message, i.ends_order), \
                 orders AS ( \
                   UPDATE ca_orders o SET state = 'failed', next_poll_at = NULL, last_error = f.message, \
                          updated_at = now() \
                     FROM failed f WHERE f.ends_order AND o.job_id = f.id \
                      AND o.state IN ('new', 'submitting', 'pending')), \
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
                next_retry("now()")
            ))
            .await?;
        let row = client.query_one(&stmt, &[&Json(&self.items), &DISPATCHER_ACTOR]).await?;
        Ok(WriteBack { written: row.try_get(0)?, follow_ups: row.try_get(1)? })
    }
}
