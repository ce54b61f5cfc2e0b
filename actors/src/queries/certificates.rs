//! Managed certificate statements: create, get, patch, archive, bulk reassignment and bound targets.

use deadpool_postgres::Client;
use serde::Serialize;
use tokio_postgres::types::{Json, ToSql};
use tokio_postgres::Row;

use super::audit::AuditRecord;
use super::job_sql::cancel_open_jobs;
use crate::db::DbQuery;
use crate::domain::audit::{redact, AuditActor};
use crate::domain::certificate::{Certificate, CertificatePatch, CertificateStatus, NewCertificate};
use crate::domain::resources::target::Target;
use crate::domain::resources::Resource;
use crate::error::{DbError, ForeignKey};
use crate::etag_cache::Table;

/// The audit trail's `resource_type` for certificates.
pub(crate) const RESOURCE: &str = "certificate";

/// The column list every statement returns, in the order [`certificate_from_row`] reads it.
pub(crate) const COLUMNS: &str = "id, name, common_name, sans, environment, owner_id, team_id, issuer_id, \
    renewal_policy_id, certificate_profile_id, status, expires_at, tags, last_renewal_at, \
    last_deployment_at, revoked_at, revocation_reason, source, created_at, updated_at";

/// The target ids bound to the certificate of the current row (`c` or the table itself), sorted.
const TARGET_IDS: &str =
    "coalesce((SELECT array_agg(m.target_id ORDER BY m.target_id COLLATE \"C\") FROM certificate_target_mappings m \
    WHERE m.certificate_id = {row}.id), '{}'::text[])";

/// [`COLUMNS`] plus the bound target ids, for reads straight from the table.
pub(crate) fn read_columns() -> String {
    format!("{COLUMNS}, {} AS target_ids", TARGET_IDS.replace("{row}", "managed_certificates"))
}

pub(crate) fn certificate_from_row(row: &Row) -> Result<Certificate, DbError> {
    let status: &str = row.try_get("status")?;
    let status = CertificateStatus::parse(status)
        .ok_or_else(|| DbError::Unexpected(anyhow::anyhow!("unknown certificate status {status:?} in the database")))?;
    let tags: Json<std::collections::BTreeMap<String, String>> = row.try_get("tags")?;
    Ok(Certificate {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        common_name: row.try_get("common_name")?,
        sans: row.try_get("sans")?,
        environment: row.try_get("environment")?,
        owner_id: row.try_get("owner_id")?,
        team_id: row.try_get("team_id")?,
        issuer_id: row.try_get("issuer_id")?,
        renewal_policy_id: row.try_get("renewal_policy_id")?,
        certificate_profile_id: row.try_get("certificate_profile_id")?,
        status,
        expires_at: row.try_get("expires_at")?,
        tags: tags.0,
        target_ids: row.try_get("target_ids")?,
        last_renewal_at: row.try_get("last_renewal_at")?,
        last_deployment_at: row.try_get("last_deployment_at")?,
        revoked_at: row.try_get("revoked_at")?,
        revocation_reason: row.try_get("revocation_reason")?,
        source: row.try_get("source")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// A new id in certctl's style: `mc-` and a time-ordered UUID, so ids sort roughly by creation.
pub(crate) fn new_certificate_id() -> String {
    format!("mc-{}", uuid::Uuid::now_v7().simple())
}

/// Inserts a certificate in status `Pending` and returns it; its audit row commits with it.
#[derive(Clone, Debug)]
pub struct CreateCertificate {
    pub new: NewCertificate,
    pub actor: AuditActor,
}

impl DbQuery for CreateCertificate {
    type Output = Certificate;
    const NAME: &'static str = "create_certificate";
    const TOUCHES: &'static [Table] = &[Table::Certificates, Table::TargetMappings, Table::Audit];

    async fn run(self, client: &mut Client) -> Result<Certificate, DbError> {
        let audit = AuditRecord {
            details: redact(serde_json::to_value(&self.new).unwrap_or_default()),
            actor: self.actor,
            action: "certificate.create".into(),
            resource_type: RESOURCE.into(),
        };
        let c = self.new;
        let id = c.id.unwrap_or_else(new_certificate_id);
        let sql = format!(
            "WITH c AS (INSERT INTO managed_certificates (id, name, common_name, sans, environment, owner_id, team_id, \
             issuer_id, renewal_policy_id, certificate_profile_id, tags, status, source) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'Pending', 'API') RETURNING {COLUMNS}), \
             m AS (INSERT INTO certificate_target_mappings (certificate_id, target_id) \
                   SELECT c.id, t FROM c, unnest($12::text[]) t), \
             a AS ({}) SELECT c.*, $12::text[] AS target_ids FROM c",
            AuditRecord::insert_from("c", 13)
        );
        let stmt = client.prepare_cached(&sql).await?;
        let tags = Json(&c.tags);
        let audit_params = audit.params();
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![
            &id,
            &c.name,
            &c.common_name,
            &c.sans,
            &c.environment,
            &c.owner_id,
            &c.team_id,
            &c.issuer_id,
            &c.renewal_policy_id,
            &c.certificate_profile_id,
            &tags,
            &c.target_ids,
        ];
        params.extend(audit_params.as_slice());
        let row = client.query_one(&stmt, &params).await?;
        certificate_from_row(&row)
    }
}

/// One certificate by id (archived ones included).
pub struct GetCertificate {
    pub id: String,
}

impl DbQuery for GetCertificate {
    type Output = Option<Certificate>;
    const NAME: &'static str = "get_certificate";

    async fn run(self, client: &mut Client) -> Result<Option<Certificate>, DbError> {
        let stmt = client
            .prepare_cached(&format!("SELECT {} FROM managed_certificates WHERE id = $1", read_columns()))
            .await?;
        client.query_opt(&stmt, &[&self.id]).await?.as_ref().map(certificate_from_row).transpose()
    }
}

/// What a patch or archive found.
#[derive(Debug)]
pub enum ChangeOutcome {
    /// The certificate after the change.
    Changed(Box<Certificate>),
    /// No certificate has that id.
    NotFound,
    /// The certificate is archived and can no longer be edited.
    Archived,
}

/// Applies a partial update; absent fields keep their value. Archived certificates are refused.
/// A new renewal policy moves `renew_at` as a policy update does.
/// The audit row (with the fields sent) commits with the change.
pub struct UpdateCertificate {
    pub id: String,
    pub patch: CertificatePatch,
    pub actor: AuditActor,
}

impl DbQuery for UpdateCertificate {
    type Output = ChangeOutcome;
    const NAME: &'static str = "update_certificate";
    const TOUCHES: &'static [Table] = &[Table::Certificates, Table::TargetMappings, Table::Audit];

    async fn run(self, client: &mut Client) -> Result<ChangeOutcome, DbError> {
        let audit = AuditRecord {
            details: redact(serde_json::to_value(&self.patch).unwrap_or_default()),
            actor: self.actor,
            action: "certificate.update".into(),
            resource_type: RESOURCE.into(),
        };
        let p = self.patch;
        let sql = format!(
            "WITH c AS (UPDATE managed_certificates m SET \
               name = coalesce($2, name), common_name = coalesce($3, common_name), \
               sans = coalesce($4, sans), environment = coalesce($5, environment), \
               owner_id = coalesce($6, owner_id), team_id = coalesce($7, team_id), \
               issuer_id = coalesce($8, issuer_id), renewal_policy_id = coalesce($9, renewal_policy_id), \
               certificate_profile_id = coalesce($10, certificate_profile_id), tags = coalesce($11, tags), \
               renew_at = CASE WHEN $9::text IS NULL THEN renew_at ELSE ( \
                   SELECT CASE WHEN NOT p.auto_renew THEN NULL \
                               WHEN m.expires_at IS NULL THEN coalesce(m.renew_at, now()) \
                               ELSE certctl_renew_at(coalesce(m.last_renewal_at, m.created_at), m.expires_at, \
                                                     p.renewal_window_days, p.renew_at_fraction) END \
                     FROM renewal_policies p WHERE p.id = $9) END, \
               updated_at = now() \
             WHERE id = $1 AND status <> 'Archived' RETURNING {COLUMNS}), \
             d AS (DELETE FROM certificate_target_mappings m USING c \
                   WHERE m.certificate_id = c.id AND $12::text[] IS NOT NULL AND NOT (m.target_id = ANY($12))), \
             i AS (INSERT INTO certificate_target_mappings (certificate_id, target_id) \
                   SELECT c.id, t FROM c, unnest(coalesce($12::text[], '{{}}')) t ON CONFLICT DO NOTHING), \
             a AS ({}) SELECT c.*, coalesce($12::text[], {}) AS target_ids FROM c",
            AuditRecord::insert_from("c", 13),
            TARGET_IDS.replace("{row}", "c")
        );
        let stmt = client.prepare_cached(&sql).await?;
        let tags = p.tags.as_ref().map(Json);
        let audit_params = audit.params();
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![
            &self.id,
            &p.name,
            &p.common_name,
            &p.sans,
            &p.environment,
            &p.owner_id,
            &p.team_id,
            &p.issuer_id,
            &p.renewal_policy_id,
            &p.certificate_profile_id,
            &tags,
            &p.target_ids,
        ];
        params.extend(audit_params.as_slice());
        match client.query_opt(&stmt, &params).await? {
            Some(row) => Ok(ChangeOutcome::Changed(Box::new(certificate_from_row(&row)?))),
            None => not_changed(client, &self.id).await,
        }
    }
}

/// Tells apart "no such certificate" and "archived" after an update matched no row.
async fn not_changed(client: &mut Client, id: &str) -> Result<ChangeOutcome, DbError> {
    let stmt = client.prepare_cached("SELECT status FROM managed_certificates WHERE id = $1").await?;
    Ok(match client.query_opt(&stmt, &[&id]).await? {
        None => ChangeOutcome::NotFound,
        Some(_) => ChangeOutcome::Archived,
    })
}

/// Archives a certificate (certctl's `DELETE`): the row stays for history with status
/// `Archived`, and the audit row commits with the change. Archiving an archived certificate
/// changes nothing, records nothing, and reports the certificate as it is.
pub struct ArchiveCertificate {
    pub id: String,
    pub actor: AuditActor,
}

impl DbQuery for ArchiveCertificate {
    type Output = ChangeOutcome;
    const NAME: &'static str = "archive_certificate";
    const TOUCHES: &'static [Table] = &[Table::Certificates, Table::Jobs, Table::Audit];

    async fn run(self, client: &mut Client) -> Result<ChangeOutcome, DbError> {
        let audit = AuditRecord {
            details: serde_json::json!({}),
            actor: self.actor,
            action: "certificate.archive".into(),
            resource_type: RESOURCE.into(),
        };
        let sql = format!(
            "WITH c AS (UPDATE managed_certificates SET status = 'Archived', updated_at = now() \
             WHERE id = $1 AND status <> 'Archived' RETURNING {COLUMNS}), \
             j AS ({}), \
             a AS ({}) SELECT c.*, {} AS target_ids FROM c",
            cancel_open_jobs("c", "c.id"),
            AuditRecord::insert_from("c", 2),
            TARGET_IDS.replace("{row}", "c")
        );
        let stmt = client.prepare_cached(&sql).await?;
        let audit_params = audit.params();
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&self.id];
        params.extend(audit_params.as_slice());
        if let Some(row) = client.query_opt(&stmt, &params).await? {
            return Ok(ChangeOutcome::Changed(Box::new(certificate_from_row(&row)?)));
        }
        let stmt = client
            .prepare_cached(&format!("SELECT {} FROM managed_certificates WHERE id = $1", read_columns()))
            .await?;
        match client.query_opt(&stmt, &[&self.id]).await? {
            Some(row) => Ok(ChangeOutcome::Changed(Box::new(certificate_from_row(&row)?))),
            None => Ok(ChangeOutcome::NotFound),
        }
    }
}

/// The targets a certificate is bound to, or `None` when the certificate does not exist.
pub struct CertificateTargets {
    pub certificate_id: String,
}

impl DbQuery for CertificateTargets {
    type Output = Option<Vec<Target>>;
    const NAME: &'static str = "certificate_targets";

    async fn run(self, client: &mut Client) -> Result<Option<Vec<Target>>, DbError> {
        let exists = client.prepare_cached("SELECT 1 FROM managed_certificates WHERE id = $1").await?;
        if client.query_opt(&exists, &[&self.certificate_id]).await?.is_none() {
            return Ok(None);
        }
        let columns: Vec<String> = Target::COLUMNS.split(", ").map(|c| format!("t.{c}")).collect();
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {} FROM deployment_targets t JOIN certificate_target_mappings m ON m.target_id = t.id \
                 WHERE m.certificate_id = $1 ORDER BY t.id COLLATE \"C\"",
                columns.join(", ")
            ))
            .await?;
        let rows = client.query(&stmt, &[&self.certificate_id]).await?;
        Ok(Some(rows.iter().map(Target::from_row).collect::<Result<_, _>>()?))
    }
}

/// Reassigns certificates to an owner (and optionally a team) in one statement, with an audit row
/// per certificate changed. Archived certificates and those already assigned are skipped.
pub struct BulkReassign {
    pub certificate_ids: Vec<String>,
    pub owner_id: String,
    pub team_id: Option<String>,
    pub actor: AuditActor,
}

/// What a bulk reassignment did (certctl's result fields).
#[derive(Debug, Serialize)]
pub struct BulkReassignResult {
    pub total_matched: i64,
    pub total_reassigned: i64,
    pub total_skipped: i64,
    pub total_failed: i64,
    /// Ids that matched no certificate.
    pub not_found: Vec<String>,
}

impl DbQuery for BulkReassign {
    type Output = BulkReassignResult;
    const NAME: &'static str = "bulk_reassign_certificates";
    const TOUCHES: &'static [Table] = &[Table::Certificates, Table::Audit];

    async fn run(self, client: &mut Client) -> Result<BulkReassignResult, DbError> {
        let audit = AuditRecord {
            details: serde_json::json!({ "owner_id": self.owner_id, "team_id": self.team_id, "bulk": true }),
            actor: self.actor,
            action: "certificate.reassign".into(),
            resource_type: RESOURCE.into(),
        };
        let sql = format!(
            "WITH ids AS (SELECT DISTINCT unnest($1::text[]) AS id), \
             found AS (SELECT m.id FROM managed_certificates m JOIN ids USING (id)), \
             c AS (UPDATE managed_certificates m SET owner_id = $2, team_id = coalesce($3, m.team_id), updated_at = now() \
                   FROM ids WHERE m.id = ids.id AND m.status <> 'Archived' \
                   AND (m.owner_id <> $2 OR ($3::text IS NOT NULL AND m.team_id <> $3)) RETURNING m.id), \
             a AS ({}) \
             SELECT (SELECT count(*) FROM found), (SELECT count(*) FROM c), \
                    EXISTS (SELECT 1 FROM owners WHERE id = $2), \
                    ($3::text IS NULL OR EXISTS (SELECT 1 FROM teams WHERE id = $3)), \
                    coalesce((SELECT array_agg(id ORDER BY id) FROM ids WHERE id NOT IN (SELECT id FROM found)), '{{}}')",
            AuditRecord::insert_from("c", 4)
        );
        let stmt = client.prepare_cached(&sql).await?;
        let audit_params = audit.params();
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&self.certificate_ids, &self.owner_id, &self.team_id];
        params.extend(audit_params.as_slice());
        let row = client.query_one(&stmt, &params).await?;
        // Missing owner or team: refused like the foreign key would, even when no row changed.
        if !row.try_get::<_, bool>(2)? {
            return Err(DbError::ForeignKey(ForeignKey { field: "owner_id", child: "certificates" }));
        }
        if !row.try_get::<_, bool>(3)? {
            return Err(DbError::ForeignKey(ForeignKey { field: "team_id", child: "certificates" }));
        }
        let matched: i64 = row.try_get(0)?;
        let reassigned: i64 = row.try_get(1)?;
        let not_found: Vec<String> = row.try_get(4)?;
        Ok(BulkReassignResult {
            total_matched: matched,
            total_reassigned: reassigned,
            total_skipped: matched - reassigned,
            total_failed: not_found.len() as i64,
            not_found,
        })
    }
}
