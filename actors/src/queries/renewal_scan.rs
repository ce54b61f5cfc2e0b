//! The renewal scan and the expiry sweep: set-based statements over the `renew_at` and live
//! expiry indexes, never a row-by-row loop.

use chrono::{DateTime, Utc};
use deadpool_postgres::Client;

use crate::db::DbQuery;
use crate::error::DbError;
use crate::etag_cache::Table;

/// The actor the scan's audit rows name.
pub const SCAN_ACTOR: &str = "renewal-scan";

/// Where the previous batch of a scan stopped (keyset on `(renew_at, id)`).
pub type ScanPosition = (DateTime<Utc>, String);

/// One batch of the renewal scan: up to `batch` certificates whose `renew_at` has come (after
/// `after`), enqueued as Issuance (never issued) or Renewal jobs in one
/// `INSERT … SELECT … ON CONFLICT DO NOTHING`. The partial unique index on active renewal jobs
/// makes a certificate that already has one a skip, whoever enqueued it. Enqueued certificates
/// become `RenewalInProgress` (which takes them out of the scan's index) with an audit row each.
/// Certificates under a policy that does not renew automatically get their `renew_at` cleared, so
/// the scan reads them once, not every tick (a policy update recomputes it).
pub struct EnqueueDueRenewals {
    pub now: DateTime<Utc>,
    pub after: Option<ScanPosition>,
    pub batch: i64,
}

/// What one batch did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanBatch {
    /// Certificates read from the index.
    pub scanned: i64,
    /// Of those, the ones whose policy renews automatically.
    pub due: i64,
    /// Jobs created.
    pub enqueued: i64,
    /// Where the next batch starts; `None` when this batch was the last.
    pub next: Option<ScanPosition>,
}

impl DbQuery for EnqueueDueRenewals {
    type Output = ScanBatch;
    const NAME: &'static str = "enqueue_due_renewals";
    const TOUCHES: &'static [Table] = &[Table::Certificates, Table::Jobs, Table::Audit];

    fn changed(output: &Self::Output) -> bool {
        output.enqueued > 0
    }

    async fn run(self, client: &mut Client) -> Result<ScanBatch, DbError> {
        // Two statement shapes (first batch, later batches), never `$2 IS NULL OR …`, so the
        // cached plan is an index range scan either way.
        let keyset = if self.after.is_some() { "AND (renew_at, id) > ($3, $4)" } else { "" };
        let sql = format!(
            "WITH scanned AS ( \
                   SELECT id, renew_at FROM managed_certificates \
                    WHERE status IN ('Pending', 'Active', 'Expiring', 'Expired') AND renew_at IS NOT NULL \
                      AND renew_at <= $1 {keyset} \
                    ORDER BY renew_at, id LIMIT {batch}), \
                 due AS ( \
                   SELECT m.id, m.expires_at, p.max_retries FROM scanned s \
                     JOIN managed_certificates m ON m.id = s.id \
                     JOIN renewal_policies p ON p.id = m.renewal_policy_id \
                    WHERE p.auto_renew), \
                 enqueued AS ( \
                   INSERT INTO jobs (id, type, certificate_id, status, max_attempts, scheduled_at) \
                   SELECT 'job-' || replace(gen_random_uuid()::text, '-', ''), \
                          CASE WHEN due.expires_at IS NULL THEN 'Issuance' ELSE 'Renewal' END, \
                          due.id, 'Pending', due.max_retries + 1, $1 \
                     FROM due ON CONFLICT DO NOTHING \
                   RETURNING id, type, certificate_id), \
                 marked AS ( \
                   UPDATE managed_certificates m SET status = 'RenewalInProgress', updated_at = now() \
                     FROM enqueued e WHERE m.id = e.certificate_id), \
                 parked AS ( \
                   UPDATE managed_certificates m SET renew_at = NULL FROM scanned s, renewal_policies p \
                    WHERE m.id = s.id AND p.id = m.renewal_policy_id AND NOT p.auto_renew), \
                 audited AS ( \
                   INSERT INTO audit_events (actor, actor_type, action, resource_type, resource_id, details) \
                   SELECT $2, 'system', 'job.enqueue', 'certificate', e.certificate_id, \
                          jsonb_build_object('job_id', e.id, 'type', e.type, 'trigger', 'renewal_scan') \
                     FROM enqueued e), \
                 last AS (SELECT renew_at, id FROM scanned ORDER BY renew_at DESC, id DESC LIMIT 1) \
                 SELECT (SELECT count(*) FROM scanned), (SELECT count(*) FROM due), (SELECT count(*) FROM enqueued), \
                        (SELECT renew_at FROM last), (SELECT id FROM last)",
            batch = self.batch
        );
        let stmt = client.prepare_cached(&sql).await?;
        let row = match &self.after {
            Some((at, id)) => client.query_one(&stmt, &[&self.now, &SCAN_ACTOR, at, id]).await?,
            None => client.query_one(&stmt, &[&self.now, &SCAN_ACTOR]).await?,
        };
        let scanned: i64 = row.try_get(0)?;
        let last_at: Option<DateTime<Utc>> = row.try_get(3)?;
        let last_id: Option<String> = row.try_get(4)?;
        Ok(ScanBatch {
            scanned,
            due: row.try_get(1)?,
            enqueued: row.try_get(2)?,
            next: match (last_at, last_id) {
                (Some(at), Some(id)) if scanned == self.batch => Some((at, id)),
                _ => None,
            },
        })
    }
}

/// Marks certificates whose `expires_at` has passed as `Expired`, touching only rows that
/// newly expired (the live-expiry partial index holds only Active and Expiring ones).
pub struct ExpireCertificates {
    pub now: DateTime<Utc>,
}

impl DbQuery for ExpireCertificates {
    type Output = u64;
    const NAME: &'static str = "expire_certificates";
    const TOUCHES: &'static [Table] = &[Table::Certificates, Table::Audit];

    fn changed(output: &Self::Output) -> bool {
        *output > 0
    }

    async fn run(self, client: &mut Client) -> Result<u64, DbError> {
        let stmt = client
            .prepare_cached(
                "WITH expired AS ( \
                   UPDATE managed_certificates SET status = 'Expired', updated_at = now() \
                    WHERE status IN ('Active', 'Expiring') AND expires_at <= $1 RETURNING id), \
                 audited AS ( \
                   INSERT INTO audit_events (actor, actor_type, action, resource_type, resource_id, details) \
                   SELECT 'expiry-sweep', 'system', 'certificate.expire', 'certificate', id, '{}'::jsonb FROM expired) \
                 SELECT count(*) FROM expired",
            )
            .await?;
        let n: i64 = client.query_one(&stmt, &[&self.now]).await?.try_get(0)?;
        Ok(n as u64)
    }
}
