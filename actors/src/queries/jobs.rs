//! Jobs through the API: list (filters, newest first, keyset or offset pages), get, cancel and
//! retry. Every change writes its audit row in the same statement.

use deadpool_postgres::Client;
use tokio_postgres::types::ToSql;

use super::audit::AuditRecord;
use super::job_sql::open_job;
use super::paging::{equal_filters, time_page, PageWindow, TimeKeyset, TimePage};
use crate::db::DbQuery;
use crate::domain::audit::AuditActor;
use crate::domain::job::{Job, JOB_COLUMNS};
use crate::error::DbError;
use crate::etag_cache::Table;

/// Filters of the job list (all optional, combined with AND).
#[derive(Clone, Debug, Default)]
pub struct JobFilters {
    pub status: Option<String>,
    pub job_type: Option<String>,
    pub certificate_id: Option<String>,
    pub agent_id: Option<String>,
}

/// One page of jobs, newest first.
pub struct ListJobs {
    pub filters: JobFilters,
    pub window: PageWindow,
}

impl DbQuery for ListJobs {
    type Output = TimePage<Job>;
    const NAME: &'static str = "list_jobs";

    async fn run(self, client: &mut Client) -> Result<TimePage<Job>, DbError> {
        let f = &self.filters;
        let (mut conditions, mut params) = (Vec::new(), Vec::new());
        equal_filters(
            &mut conditions,
            &mut params,
            &[
                ("status", &f.status),
                ("type", &f.job_type),
                ("certificate_id", &f.certificate_id),
                ("agent_id", &f.agent_id),
            ],
        );
        let keyset = TimeKeyset { table: "jobs", columns: JOB_COLUMNS, descending: true, window: &self.window };
        time_page(client, keyset, conditions, params, Job::from_row, |j| (j.created_at, j.id.clone())).await
    }
}

/// One job by id.
pub struct GetJob {
    pub id: String,
}

impl DbQuery for GetJob {
    type Output = Option<Job>;
    const NAME: &'static str = "get_job";

    async fn run(self, client: &mut Client) -> Result<Option<Job>, DbError> {
        let stmt = client.prepare_cached(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1")).await?;
        client.query_opt(&stmt, &[&self.id]).await?.as_ref().map(Job::from_row).transpose()
    }
}

/// What a cancel or retry found.
#[derive(Debug)]
pub enum JobChange {
    Changed(Box<Job>),
    NotFound,
    /// The job is in a status the change does not apply to.
    WrongStatus(String),
    /// Retrying would make a second active renewal of the certificate.
    AlreadyActive,
    /// The job's certificate is archived or revoked (its status).
    CertificateClosed(String),
}

/// Runs a job change statement (`$1` the job id, the audit parameters from `$2`) with its audit
/// row; the changed job's row, or `None` when the job was not in a state the change applies to.
async fn change_job(
    client: &Client,
    sql: &str,
    id: &String,
    actor: AuditActor,
    action: &str,
) -> Result<Option<tokio_postgres::Row>, tokio_postgres::Error> {
    let audit =
        AuditRecord { details: serde_json::json!({}), actor, action: action.into(), resource_type: "job".into() };
    let stmt = client.prepare_cached(sql).await?;
    let params = audit.params();
    let mut all: Vec<&(dyn ToSql + Sync)> = vec![id];
    all.extend(params.as_slice());
    client.query_opt(&stmt, &all).await
}

/// The status a certificate returns to when its renewal stops without a result.
const RESTORED_STATUS: &str =
    "CASE WHEN m.expires_at IS NULL THEN 'Pending' WHEN m.expires_at <= now() THEN 'Expired' ELSE 'Active' END";

/// Cancels a job that has not finished (Pending, AwaitingCSR, AwaitingApproval, AwaitingCA,
/// Running, or Failed with a retry planned); a cancelled job's order with a remote CA is no
/// longer polled. A Running job's late result is discarded by the dispatcher's
/// write-back, which only accepts results for Running jobs. The certificate leaves
/// RenewalInProgress.
pub struct CancelJob {
    pub id: String,
    pub actor: AuditActor,
}

impl DbQuery for CancelJob {
    type Output = JobChange;
    const NAME: &'static str = "cancel_job";
    const TOUCHES: &'static [Table] = &[Table::Jobs, Table::Certificates, Table::Audit];

    async fn run(self, client: &mut Client) -> Result<JobChange, DbError> {
        let sql = format!(
            "WITH c AS ( \
               UPDATE jobs j SET status = 'Cancelled', retry_at = NULL, lease_expires_at = NULL, completed_at = now(), \
                      updated_at = now() \
                WHERE j.id = $1 AND {open} \
               RETURNING {JOB_COLUMNS}), \
             m AS ( \
               UPDATE managed_certificates m SET status = {RESTORED_STATUS}, updated_at = now() FROM c \
                WHERE m.id = c.certificate_id AND c.type IN ('Issuance', 'Renewal') \
                  AND m.status IN ('RenewalInProgress', 'Failed')), \
             a AS ({}) SELECT * FROM c",
            AuditRecord::insert_from("c", 2),
            open = open_job("j")
        );
        if let Some(row) = change_job(client, &sql, &self.id, self.actor, "job.cancel").await? {
            return Ok(JobChange::Changed(Box::new(Job::from_row(&row)?)));
        }
        Ok(match (GetJob { id: self.id }).run(client).await? {
            None => JobChange::NotFound,
            Some(job) => JobChange::WrongStatus(job.status),
        })
    }
}

/// Puts a Failed (or Cancelled) issuance or renewal back in the queue now, with a fresh set of
/// attempts from its policy; refused while the certificate has another active renewal, and for
/// archived or revoked certificates. The attempt counter keeps counting (the allowance grows
/// instead), so a late result of an abandoned attempt can never be taken for the new one.
pub struct RetryJob {
    pub id: String,
    pub actor: AuditActor,
}

impl DbQuery for RetryJob {
    type Output = JobChange;
    const NAME: &'static str = "retry_job";
    const TOUCHES: &'static [Table] = &[Table::Jobs, Table::Certificates, Table::Audit];

    async fn run(self, client: &mut Client) -> Result<JobChange, DbError> {
        let sql = format!(
            "WITH c AS ( \
               UPDATE jobs j SET status = 'Pending', max_attempts = j.attempts + p.max_retries + 1, retry_at = NULL, \
                      csr_pem = NULL, \
                      scheduled_at = now(), completed_at = NULL, updated_at = now() \
                 FROM managed_certificates m, renewal_policies p \
                WHERE j.id = $1 AND j.status IN ('Failed', 'Cancelled') AND j.type IN ('Issuance', 'Renewal') \
                  AND m.id = j.certificate_id AND m.status NOT IN ('Archived', 'Revoked') \
                  AND p.id = m.renewal_policy_id \
               RETURNING j.id, j.type, j.certificate_id, j.target_id, j.agent_id, j.status, j.attempts, \
                         j.max_attempts, j.last_error, j.error_class, j.scheduled_at, j.retry_at, j.lease_expires_at, \
                         j.started_at, j.completed_at, j.created_at, j.updated_at, j.certificate_version_id, \
                         j.verification_fingerprint, j.deployment_result), \
             m AS ( \
               UPDATE managed_certificates m SET status = 'RenewalInProgress', updated_at = now() FROM c \
                WHERE m.id = c.certificate_id AND m.status NOT IN ('Archived', 'Revoked')), \
             a AS ({}) SELECT * FROM c",
            AuditRecord::insert_from("c", 2)
        );
        match change_job(client, &sql, &self.id, self.actor, "job.retry").await {
            Ok(Some(row)) => Ok(JobChange::Changed(Box::new(Job::from_row(&row)?))),
            Ok(None) => Ok(match (GetJob { id: self.id }).run(client).await? {
                None => JobChange::NotFound,
                Some(job) if !matches!(job.job_type.as_str(), "Issuance" | "Renewal") => {
                    JobChange::WrongStatus(format!("a {} job ({})", job.job_type, job.status))
                }
                Some(job) if matches!(job.status.as_str(), "Failed" | "Cancelled") => {
                    let stmt = client.prepare_cached("SELECT status FROM managed_certificates WHERE id = $1").await?;
                    let status: String = client.query_one(&stmt, &[&job.certificate_id]).await?.try_get(0)?;
                    JobChange::CertificateClosed(status)
                }
                Some(job) => JobChange::WrongStatus(job.status),
            }),
            Err(e) => match DbError::from(e) {
                DbError::RenewalActive => Ok(JobChange::AlreadyActive),
                other => Err(other),
            },
        }
    }
}
