//! Certificate operations beyond CRUD: renew now, revoke, export the current chain, and the
//! bulk renew/revoke by criteria, each one set-based statement for any number of matches.
//!
//! Enqueueing goes through the same partial unique index as the renewal scan, so an API renewal,
//! a bulk renewal and the scan can never give one certificate two active renewals. Revocation
//! records the certificate's current version in `certificate_revocations`; for local issuers that
//! record is the issuer's own state (its CRL and OCSP answers are built from it), so it is marked
//! as notified in the same statement.

use chrono::{DateTime, Utc};
use deadpool_postgres::Client;
use tokio_postgres::types::ToSql;

use super::audit::AuditRecord;
use super::job_sql::{cancel_open_jobs, ACTIVE_STATUSES};
use super::paging::where_clause;
use crate::db::DbQuery;
use crate::domain::audit::AuditActor;
use crate::domain::job::{Job, JOB_COLUMNS};
use crate::domain::revocation::RevocationReason;
use crate::error::DbError;
use crate::etag_cache::Table;

/// The statuses of an issuance or renewal that is still going on.
const ACTIVE: &str = ACTIVE_STATUSES;

/// What a renew request found.
#[derive(Debug)]
pub enum RenewOutcome {
    Enqueued(Box<Job>),
    NotFound,
    /// Archived or revoked certificates are not renewed.
    NotRenewable(String),
    /// The certificate already has an active issuance or renewal: its id.
    AlreadyActive(String),
}

/// Enqueues a renewal (an issuance when the certificate was never issued) now.
pub struct RequestRenewal {
    pub certificate_id: String,
    pub actor: AuditActor,
}

impl DbQuery for RequestRenewal {
    type Output = RenewOutcome;
    const NAME: &'static str = "request_renewal";
    const TOUCHES: &'static [Table] = &[Table::Certificates, Table::Jobs, Table::Audit];

    async fn run(self, client: &mut Client) -> Result<RenewOutcome, DbError> {
        let audit = AuditRecord {
            details: serde_json::json!({ "trigger": "api" }),
            actor: self.actor,
            action: "certificate.renew_requested".into(),
            resource_type: "certificate".into(),
        };
        let sql = format!(
            "WITH cert AS ( \
               SELECT m.id, m.expires_at, p.max_retries FROM managed_certificates m \
                 JOIN renewal_policies p ON p.id = m.renewal_policy_id \
                WHERE m.id = $1 AND m.status NOT IN ('Archived', 'Revoked')), \
             c AS ( \
               INSERT INTO jobs (id, type, certificate_id, status, max_attempts) \
               SELECT 'job-' || replace(gen_random_uuid()::text, '-', ''), \
                      CASE WHEN expires_at IS NULL THEN 'Issuance' ELSE 'Renewal' END, id, 'Pending', max_retries + 1 \
                 FROM cert ON CONFLICT DO NOTHING RETURNING {JOB_COLUMNS}), \
             marked AS ( \
               UPDATE managed_certificates m SET status = 'RenewalInProgress', updated_at = now() FROM c \
                WHERE m.id = c.certificate_id), \
             r AS (SELECT certificate_id AS id FROM c), \
             a AS ({}) SELECT * FROM c",
            AuditRecord::insert_from("r", 2)
        );
        let stmt = client.prepare_cached(&sql).await?;
        let params = audit.params();
        let mut all: Vec<&(dyn ToSql + Sync)> = vec![&self.certificate_id];
        all.extend(params.as_slice());
        if let Some(row) = client.query_opt(&stmt, &all).await? {
            return Ok(RenewOutcome::Enqueued(Box::new(Job::from_row(&row)?)));
        }
        let stmt = client
            .prepare_cached(&format!(
                "SELECT m.status, (SELECT j.id FROM jobs j WHERE j.certificate_id = m.id \
                   AND j.type IN ('Issuance', 'Renewal') AND j.status IN {ACTIVE} LIMIT 1) \
                   FROM managed_certificates m WHERE m.id = $1"
            ))
            .await?;
        Ok(match client.query_opt(&stmt, &[&self.certificate_id]).await? {
            None => RenewOutcome::NotFound,
            Some(row) => match row.try_get::<_, Option<String>>(1)? {
                Some(job) => RenewOutcome::AlreadyActive(job),
                None => RenewOutcome::NotRenewable(row.try_get(0)?),
            },
        })
    }
}

/// What a revoke request found.
#[derive(Debug)]
pub enum RevokeOutcome {
    /// The revocation's serial number.
    Revoked {
        serial_number: String,
        revoked_at: DateTime<Utc>,
    },
    NotFound,
    /// Already revoked, or archived.
    NotRevocable(String),
    /// Never issued: nothing to revoke.
    NeverIssued,
}

/// Revokes a certificate's current version: the revocation row, the certificate `Revoked`, its
/// active jobs cancelled, an audit row.
pub struct RevokeCertificate {
    pub certificate_id: String,
    pub reason: RevocationReason,
    pub actor: AuditActor,
}

impl DbQuery for RevokeCertificate {
    type Output = RevokeOutcome;
    const NAME: &'static str = "revoke_certificate";
    const TOUCHES: &'static [Table] = &[Table::Certificates, Table::Jobs, Table::Audit];

    async fn run(self, client: &mut Client) -> Result<RevokeOutcome, DbError> {
        let audit = AuditRecord {
            details: serde_json::json!({ "reason": self.reason.as_str() }),
            actor: self.actor,
            action: "certificate.revoke".into(),
            resource_type: "certificate".into(),
        };
        let sql = format!(
            "WITH v AS ( \
               SELECT cv.certificate_id, cv.serial_number, coalesce(cv.issuer_id, m.issuer_id) AS issuer_id \
                 FROM certificate_versions cv JOIN managed_certificates m ON m.id = cv.certificate_id \
                WHERE cv.certificate_id = $1 AND m.status NOT IN ('Revoked', 'Archived') \
                ORDER BY cv.created_at DESC, cv.id DESC LIMIT 1), \
             rev AS ( \
               INSERT INTO certificate_revocations (id, certificate_id, serial_number, reason, revoked_by, issuer_id, \
                      issuer_notified) \
               SELECT 'rev-' || replace(gen_random_uuid()::text, '-', ''), v.certificate_id, v.serial_number, $2, $3, \
                      v.issuer_id, EXISTS (SELECT 1 FROM issuers i WHERE i.id = v.issuer_id AND i.type = 'local') \
                 FROM v ON CONFLICT (issuer_id, serial_number) DO NOTHING \
               RETURNING certificate_id AS id, serial_number, revoked_at), \
             marked AS ( \
               UPDATE managed_certificates m SET status = 'Revoked', revoked_at = rev.revoked_at, \
                      revocation_reason = $2, updated_at = now() FROM rev WHERE m.id = rev.id), \
             cancelled AS ({}), \
             a AS ({}) SELECT serial_number, revoked_at FROM rev",
            cancel_open_jobs("rev", "rev.id"),
            AuditRecord::insert_from("rev", 4)
        );
        let stmt = client.prepare_cached(&sql).await?;
        let params = audit.params();
        let reason = self.reason.as_str();
        let mut all: Vec<&(dyn ToSql + Sync)> = vec![&self.certificate_id, &reason, &audit.actor.name];
        all.extend(params.as_slice());
        if let Some(row) = client.query_opt(&stmt, &all).await? {
            return Ok(RevokeOutcome::Revoked { serial_number: row.try_get(0)?, revoked_at: row.try_get(1)? });
        }
        let stmt = client
            .prepare_cached(
                "SELECT m.status, EXISTS (SELECT 1 FROM certificate_versions v WHERE v.certificate_id = m.id) \
                   FROM managed_certificates m WHERE m.id = $1",
            )
            .await?;
        Ok(match client.query_opt(&stmt, &[&self.certificate_id]).await? {
            None => RevokeOutcome::NotFound,
            Some(row) if !row.try_get::<_, bool>(1)? => RevokeOutcome::NeverIssued,
            Some(row) => RevokeOutcome::NotRevocable(row.try_get(0)?),
        })
    }
}

/// The current (newest) version's chain and the certificate's name, for export.
pub struct CurrentChain {
    pub certificate_id: String,
}

/// `None` when the certificate does not exist; `Some((name, None))` when it was never issued.
pub type ChainLookup = Option<(String, Option<String>)>;

impl DbQuery for CurrentChain {
    type Output = ChainLookup;
    const NAME: &'static str = "current_chain";

    async fn run(self, client: &mut Client) -> Result<ChainLookup, DbError> {
        let stmt = client
            .prepare_cached(
                "SELECT m.name, (SELECT v.pem_chain FROM certificate_versions v WHERE v.certificate_id = m.id \
                                  ORDER BY v.created_at DESC, v.id DESC LIMIT 1) \
                   FROM managed_certificates m WHERE m.id = $1",
            )
            .await?;
        Ok(match client.query_opt(&stmt, &[&self.certificate_id]).await? {
            None => None,
            Some(row) => Some((row.try_get(0)?, row.try_get(1)?)),
        })
    }
}

/// Which certificates a bulk operation applies to (at least one criterion; combined with AND).
#[derive(Clone, Debug, Default)]
pub struct BulkCriteria {
    pub profile_id: Option<String>,
    pub owner_id: Option<String>,
    pub team_id: Option<String>,
    pub issuer_id: Option<String>,
    /// Certificates bound to a target of this agent.
    pub agent_id: Option<String>,
    pub certificate_ids: Option<Vec<String>>,
    pub expiring_before: Option<DateTime<Utc>>,
}

impl BulkCriteria {
    pub fn is_empty(&self) -> bool {
        self.profile_id.is_none()
            && self.owner_id.is_none()
            && self.team_id.is_none()
            && self.issuer_id.is_none()
            && self.agent_id.is_none()
            && self.certificate_ids.is_none()
            && self.expiring_before.is_none()
    }

    /// The `WHERE` over `managed_certificates m`, its parameters appended to `params`.
    fn conditions<'a>(&'a self, params: &mut Vec<&'a (dyn ToSql + Sync)>) -> String {
        let mut conditions = Vec::new();
        let mut add = |sql: &str, value: &'a (dyn ToSql + Sync)| {
            params.push(value);
            conditions.push(sql.replace('?', &format!("${}", params.len())));
        };
        if let Some(v) = &self.profile_id {
            add("m.certificate_profile_id = ?", v);
        }
        if let Some(v) = &self.owner_id {
            add("m.owner_id = ?", v);
        }
        if let Some(v) = &self.team_id {
            add("m.team_id = ?", v);
        }
        if let Some(v) = &self.issuer_id {
            add("m.issuer_id = ?", v);
        }
        if let Some(v) = &self.agent_id {
            add(
                "EXISTS (SELECT 1 FROM certificate_target_mappings ctm JOIN deployment_targets t ON t.id = ctm.target_id \
                 WHERE ctm.certificate_id = m.id AND t.agent_id = ?)",
                v,
            );
        }
        if let Some(v) = &self.certificate_ids {
            add("m.id = ANY(?)", v);
        }
        if let Some(v) = &self.expiring_before {
            add("m.expires_at < ?", v);
        }
        where_clause(&conditions)
    }
}

/// Counts of a bulk operation (certctl's field names).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct BulkResult {
    pub total_matched: i64,
    /// Renewals enqueued, or certificates revoked.
    pub total_done: i64,
}

/// Enqueues a renewal for every matching certificate that is renewable and has none active, in
/// one statement; `dry_run` only counts.
pub struct BulkRenew {
    pub criteria: BulkCriteria,
    pub dry_run: bool,
    pub actor: AuditActor,
}

impl DbQuery for BulkRenew {
    type Output = BulkResult;
    const NAME: &'static str = "bulk_renew";
    const TOUCHES: &'static [Table] = &[Table::Certificates, Table::Jobs, Table::Audit];

    async fn run(self, client: &mut Client) -> Result<BulkResult, DbError> {
        let actor_type = self.actor.actor_type.as_str();
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
        if !self.dry_run {
            params.extend([&self.actor.name as &(dyn ToSql + Sync), &actor_type, &self.actor.request_id]);
        }
        let filter = self.criteria.conditions(&mut params);
        let eligible = format!(
            "m.status NOT IN ('Archived', 'Revoked') AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.certificate_id = m.id \
             AND j.type IN ('Issuance', 'Renewal') AND j.status IN {ACTIVE})"
        );
        let sql = if self.dry_run {
            format!("SELECT count(*), count(*) FILTER (WHERE {eligible}) FROM managed_certificates m {filter}")
        } else {
            format!(
                "WITH matched AS (SELECT m.id, m.status, m.expires_at, m.renewal_policy_id FROM managed_certificates m {filter}), \
                 c AS ( \
                   INSERT INTO jobs (id, type, certificate_id, status, max_attempts) \
                   SELECT 'job-' || replace(gen_random_uuid()::text, '-', ''), \
                          CASE WHEN x.expires_at IS NULL THEN 'Issuance' ELSE 'Renewal' END, x.id, 'Pending', \
                          p.max_retries + 1 \
                     FROM matched x JOIN renewal_policies p ON p.id = x.renewal_policy_id \
                    WHERE x.status NOT IN ('Archived', 'Revoked') \
                      AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.certificate_id = x.id \
                            AND j.type IN ('Issuance', 'Renewal') AND j.status IN {ACTIVE}) \
                   ON CONFLICT DO NOTHING RETURNING id, certificate_id), \
                 marked AS ( \
                   UPDATE managed_certificates m SET status = 'RenewalInProgress', updated_at = now() FROM c \
                    WHERE m.id = c.certificate_id), \
                 a AS ( \
                   INSERT INTO audit_events (actor, actor_type, action, resource_type, resource_id, request_id, details) \
                   SELECT $1, $2, 'certificate.renew_requested', 'certificate', c.certificate_id, $3, \
                          jsonb_build_object('job_id', c.id, 'trigger', 'bulk') FROM c) \
                 SELECT (SELECT count(*) FROM matched), (SELECT count(*) FROM c)"
            )
        };
        let stmt = client.prepare_cached(&sql).await?;
        let row = client.query_one(&stmt, &params).await?;
        Ok(BulkResult { total_matched: row.try_get(0)?, total_done: row.try_get(1)? })
    }
}

/// Revokes the current version of every matching certificate that is issued and not yet revoked
/// or archived, in one statement; `dry_run` only counts.
pub struct BulkRevoke {
    pub criteria: BulkCriteria,
    pub reason: RevocationReason,
    pub dry_run: bool,
    pub actor: AuditActor,
}

impl DbQuery for BulkRevoke {
    type Output = BulkResult;
    const NAME: &'static str = "bulk_revoke";
    const TOUCHES: &'static [Table] = &[Table::Certificates, Table::Jobs, Table::Audit];

    async fn run(self, client: &mut Client) -> Result<BulkResult, DbError> {
        let actor_type = self.actor.actor_type.as_str();
        let reason = self.reason.as_str();
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
        if !self.dry_run {
            params.extend([&self.actor.name as &(dyn ToSql + Sync), &actor_type, &self.actor.request_id, &reason]);
        }
        let filter = self.criteria.conditions(&mut params);
        let revocable = "m.status NOT IN ('Revoked', 'Archived') \
                         AND EXISTS (SELECT 1 FROM certificate_versions v WHERE v.certificate_id = m.id)";
        let sql = if self.dry_run {
            format!("SELECT count(*), count(*) FILTER (WHERE {revocable}) FROM managed_certificates m {filter}")
        } else {
            format!(
                "WITH matched AS (SELECT m.id, m.status, m.issuer_id FROM managed_certificates m {filter}), \
                 latest AS ( \
                   SELECT DISTINCT ON (v.certificate_id) v.certificate_id, v.serial_number, \
                          coalesce(v.issuer_id, x.issuer_id) AS issuer_id \
                     FROM matched x JOIN certificate_versions v ON v.certificate_id = x.id \
                    WHERE x.status NOT IN ('Revoked', 'Archived') \
                    ORDER BY v.certificate_id, v.created_at DESC, v.id DESC), \
                 rev AS ( \
                   INSERT INTO certificate_revocations (id, certificate_id, serial_number, reason, revoked_by, issuer_id, \
                          issuer_notified) \
                   SELECT 'rev-' || replace(gen_random_uuid()::text, '-', ''), l.certificate_id, l.serial_number, $4, $1, \
                          l.issuer_id, coalesce(i.type = 'local', false) \
                     FROM latest l LEFT JOIN issuers i ON i.id = l.issuer_id \
                   ON CONFLICT (issuer_id, serial_number) DO NOTHING RETURNING certificate_id, revoked_at), \
                 marked AS ( \
                   UPDATE managed_certificates m SET status = 'Revoked', revoked_at = rev.revoked_at, \
                          revocation_reason = $4, updated_at = now() FROM rev WHERE m.id = rev.certificate_id), \
                 cancelled AS ({cancel}), \
                 a AS ( \
                   INSERT INTO audit_events (actor, actor_type, action, resource_type, resource_id, request_id, details) \
                   SELECT $1, $2, 'certificate.revoke', 'certificate', rev.certificate_id, $3, \
                          jsonb_build_object('reason', $4::text, 'trigger', 'bulk') FROM rev) \
                 SELECT (SELECT count(*) FROM matched), (SELECT count(*) FROM rev)",
                cancel = cancel_open_jobs("rev", "rev.certificate_id")
            )
        };
        let stmt = client.prepare_cached(&sql).await?;
        let row = client.query_one(&stmt, &params).await?;
        Ok(BulkResult { total_matched: row.try_get(0)?, total_done: row.try_get(1)? })
    }
}
