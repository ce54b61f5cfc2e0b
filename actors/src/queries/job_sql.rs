//! SQL fragments about jobs that several statements share, so "active", "open" and "when is the
//! next attempt" mean the same thing everywhere.

use std::time::Duration;

/// Longest wait between two attempts, however many have failed.
pub const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(6 * 3600);

/// When a failed job is tried again, counted from `from` (a SQL time expression): the policy's
/// `retry_interval_seconds`, doubled per attempt already made, capped at [`MAX_RETRY_BACKOFF`].
/// `j` is the job row and `p` its certificate's renewal policy.
pub(crate) fn next_retry(from: &str) -> String {
    format!(
        "{from} + make_interval(secs => least(p.retry_interval_seconds * power(2, greatest(j.attempts - 1, 0)), {}))",
        MAX_RETRY_BACKOFF.as_secs()
    )
}

/// Statuses of an issuance or renewal that is still going on (the partial unique index on active
/// renewals uses the same list).
pub(crate) const ACTIVE_STATUSES: &str = "('Pending', 'AwaitingCSR', 'AwaitingApproval', 'AwaitingCA', 'Running')";

/// A job that has not ended: active, or failed with a retry planned (`j` is the job row).
pub(crate) fn open_job(j: &str) -> String {
    format!("({j}.status IN {ACTIVE_STATUSES} OR ({j}.status = 'Failed' AND {j}.retry_at IS NOT NULL))")
}

/// The `UPDATE` (for a data-modifying CTE) that cancels every open job of the certificates whose
/// id is `certificate_id` in the rows of `from`: archiving and revoking end a certificate's work.
pub(crate) fn cancel_open_jobs(from: &str, certificate_id: &str) -> String {
    format!(
        "UPDATE jobs j SET status = 'Cancelled', retry_at = NULL, lease_expires_at = NULL, completed_at = now(), \
         updated_at = now() FROM {from} WHERE j.certificate_id = {certificate_id} AND {}",
        open_job("j")
    )
}
