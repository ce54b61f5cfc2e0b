//! Renewals asked for from outside the scheduler, each one call: renew one certificate now,
//! renew every certificate matching criteria, retry a failed job. Each enqueues through the
//! one-active-renewal index, counts the request, and wakes the dispatcher so the job starts at
//! once instead of at the next job-processor tick.

use actix::Addr;

use super::dispatcher::{RenewalDispatcher, Wake};
use crate::db::Db;
use crate::domain::audit::AuditActor;
use crate::error::DbError;
use crate::metrics::RENEWALS_REQUESTED_TOTAL;
use crate::queries::certificate_ops::{BulkCriteria, BulkRenew, BulkResult, RenewOutcome, RequestRenewal};
use crate::queries::jobs::{JobChange, RetryJob};

/// See the module docs. Cheap to clone.
#[derive(Clone)]
pub struct Renewals {
    /// Where the renewals are enqueued.
    db: Db,
    /// Woken after an enqueue, so the job starts at once instead of at the next job-processor tick.
    dispatcher: Addr<RenewalDispatcher>,
}

impl Renewals {
    pub(crate) fn new(db: Db, dispatcher: Addr<RenewalDispatcher>) -> Self {
        Renewals { db, dispatcher }
    }

    /// Enqueues a renewal of one certificate (`Pending`, due now).
    pub async fn renew(&self, certificate_id: &str, actor: AuditActor) -> Result<RenewOutcome, DbError> {
        let outcome = self.db.run(RequestRenewal { certificate_id: certificate_id.to_string(), actor }).await?;
        if matches!(outcome, RenewOutcome::Enqueued(_)) {
            metrics::counter!(RENEWALS_REQUESTED_TOTAL, "trigger" => "api").increment(1);
            self.dispatcher.do_send(Wake);
        }
        Ok(outcome)
    }

    /// Enqueues a renewal of every matching renewable certificate without an active one (one
    /// statement); `dry_run` only counts.
    pub async fn renew_matching(
        &self,
        criteria: BulkCriteria,
        dry_run: bool,
        actor: AuditActor,
    ) -> Result<BulkResult, DbError> {
        let result = self.db.run(BulkRenew { criteria, dry_run, actor }).await?;
        if !dry_run && result.total_done > 0 {
            metrics::counter!(RENEWALS_REQUESTED_TOTAL, "trigger" => "bulk").increment(result.total_done as u64);
            self.dispatcher.do_send(Wake);
        }
        Ok(result)
    }

    /// Queues a Failed or Cancelled issuance or renewal again, now.
    pub async fn retry_job(&self, job_id: &str, actor: AuditActor) -> Result<JobChange, DbError> {
        let change = self.db.run(RetryJob { id: job_id.to_string(), actor }).await?;
        if matches!(change, JobChange::Changed(_)) {
            self.dispatcher.do_send(Wake);
        }
        Ok(change)
    }
}
