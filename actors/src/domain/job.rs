//! Jobs (certctl's `jobs`): an issuance, renewal or deployment of one certificate, with its
//! attempts, lease and failure record.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::Row;

use crate::error::DbError;

/// Job types certctl knows.
pub const JOB_TYPES: [&str; 4] = ["Issuance", "Renewal", "Deployment", "Validation"];
/// Job statuses certctl knows.
pub const JOB_STATUSES: [&str; 8] =
    ["Pending", "AwaitingCSR", "AwaitingApproval", "AwaitingCA", "Running", "Completed", "Failed", "Cancelled"];

/// A job as the API shows it (certctl's field names, plus the lease, retry time and failure class).
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Job {
    /// The job's id.
    pub id: String,
    /// `Issuance`, `Renewal`, `Deployment` or `Validation`.
    #[serde(rename = "type")]
    pub job_type: String,
    /// The certificate the job is for.
    pub certificate_id: String,
    /// A deployment's target; `null` for other jobs.
    pub target_id: Option<String>,
    /// The agent doing the job; `null` when none.
    pub agent_id: Option<String>,
    /// `Pending`, `AwaitingCSR`, `AwaitingApproval`, `AwaitingCA` (its order is with a remote CA),
    /// `Running`, `Completed`, `Failed` or `Cancelled`.
    pub status: String,
    /// Attempts made so far.
    pub attempts: i32,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// The last attempt's error; empty when none.
    pub last_error: String,
    /// The kind of the last failure; `null` when none.
    pub error_class: Option<String>,
    /// When the job is (or was) due.
    pub scheduled_at: DateTime<Utc>,
    /// When a failed attempt is retried; `null` when no retry is planned.
    pub retry_at: Option<DateTime<Utc>>,
    /// When the current lease runs out; `null` when not leased.
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// When work on it started; `null` before.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended; `null` before.
    pub completed_at: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// The version a deployment installs.
    pub certificate_version_id: Option<String>,
    /// The fingerprint the agent reported after installing.
    pub verification_fingerprint: Option<String>,
    /// What the agent reported about the deployment.
    pub deployment_result: Option<serde_json::Value>,
}

/// The columns [`Job::from_row`] reads, in order.
pub const JOB_COLUMNS: &str = "id, type, certificate_id, target_id, agent_id, status, attempts, max_attempts, \
    last_error, error_class, scheduled_at, retry_at, lease_expires_at, started_at, completed_at, created_at, updated_at, \
    certificate_version_id, verification_fingerprint, deployment_result";

impl Job {
    pub fn from_row(row: &Row) -> Result<Job, DbError> {
        Ok(Job {
            id: row.try_get(0)?,
            job_type: row.try_get(1)?,
            certificate_id: row.try_get(2)?,
            target_id: row.try_get(3)?,
            agent_id: row.try_get(4)?,
            status: row.try_get(5)?,
            attempts: row.try_get(6)?,
            max_attempts: row.try_get(7)?,
            last_error: row.try_get(8)?,
            error_class: row.try_get(9)?,
            scheduled_at: row.try_get(10)?,
            retry_at: row.try_get(11)?,
            lease_expires_at: row.try_get(12)?,
            started_at: row.try_get(13)?,
            completed_at: row.try_get(14)?,
            created_at: row.try_get(15)?,
            updated_at: row.try_get(16)?,
            certificate_version_id: row.try_get(17)?,
            verification_fingerprint: row.try_get(18)?,
            deployment_result: row.try_get(19)?,
        })
    }
}
