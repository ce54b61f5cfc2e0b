//! Discovery statements: a scan report upserted in one statement, the discovered-certificate
//! list, and the claim / dismiss triage.

use chrono::{DateTime, Utc};
use deadpool_postgres::Client;
use serde::Serialize;
use tokio_postgres::types::{Json, ToSql};

use super::audit::AuditRecord;
use super::paging::{equal_filters, time_page, PageWindow, TimeKeyset, TimePage};
use crate::db::DbQuery;
use crate::domain::audit::AuditActor;
use crate::domain::discovery::{DiscoveredCertificate, DiscoveryReport, DISCOVERED_COLUMNS};
use crate::error::DbError;
use crate::etag_cache::Table;

/// What recording a scan did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ScanRecorded {
    /// The scan's id.
    pub scan_id: String,
    /// Certificates the report listed (after dropping repeats).
    pub certificates_found: i64,
    /// Of those, the ones not seen before.
    pub certificates_new: i64,
}

/// Records a scan: every reported certificate upserted on (fingerprint, agent, path) — new ones
/// inserted, known ones get `last_seen_at` — and the scan row with its counts, in one statement.
pub struct RecordDiscoveryScan {
    pub agent_id: String,
    pub report: DiscoveryReport,
}

impl DbQuery for RecordDiscoveryScan {
    type Output = ScanRecorded;
    const NAME: &'static str = "record_discovery_scan";
    const TOUCHES: &'static [Table] = &[Table::Discovered];

    async fn run(self, client: &mut Client) -> Result<ScanRecorded, DbError> {
        let scan_id = format!("ds-{}", uuid::Uuid::now_v7().simple());
        let r = &self.report;
        let stmt = client
            .prepare_cached(
                "WITH input AS ( \
                   SELECT * FROM jsonb_to_recordset($3::jsonb) AS x(fingerprint_sha256 text, common_name text, \
                     sans text[], serial_number text, issuer_dn text, subject_dn text, not_before timestamptz, \
                     not_after timestamptz, key_algorithm text, key_size int, is_ca boolean, pem_data text, \
                     source_path text, source_format text)), \
                 up AS ( \
                   INSERT INTO discovered_certificates (id, fingerprint_sha256, common_name, sans, serial_number, \
                          issuer_dn, subject_dn, not_before, not_after, key_algorithm, key_size, is_ca, pem_data, \
                          source_path, source_format, agent_id, discovery_scan_id) \
                   SELECT 'dc-' || replace(gen_random_uuid()::text, '-', ''), fingerprint_sha256, \
                          coalesce(common_name, ''), coalesce(sans, '{}'), coalesce(serial_number, ''), \
                          coalesce(issuer_dn, ''), coalesce(subject_dn, ''), not_before, not_after, \
                          coalesce(key_algorithm, ''), coalesce(key_size, 0), coalesce(is_ca, false), \
                          coalesce(pem_data, ''), source_path, coalesce(source_format, 'PEM'), $2, $1 \
                     FROM input \
                   ON CONFLICT (fingerprint_sha256, agent_id, source_path) DO UPDATE \
                      SET last_seen_at = now(), discovery_scan_id = EXCLUDED.discovery_scan_id, updated_at = now() \
                   RETURNING (xmax = 0) AS inserted), \
                 scan AS ( \
                   INSERT INTO discovery_scans (id, agent_id, directories, certificates_found, certificates_new, \
                          errors_count, scan_duration_ms, started_at) \
                   SELECT $1, $2, $4, (SELECT count(*) FROM up), (SELECT count(*) FROM up WHERE inserted), $5, $6::bigint, \
                          now() - make_interval(secs => $6::bigint / 1000.0) \
                   RETURNING certificates_found, certificates_new) \
                 SELECT certificates_found::bigint, certificates_new::bigint FROM scan",
            )
            .await?;
        let errors = r.errors.len() as i32;
        let row = client
            .query_one(
                &stmt,
                &[&scan_id, &self.agent_id, &Json(&r.certificates), &r.directories, &errors, &r.scan_duration_ms],
            )
            .await?;
        Ok(ScanRecorded { scan_id, certificates_found: row.try_get(0)?, certificates_new: row.try_get(1)? })
    }
}

/// Filters of the discovered-certificate list.
#[derive(Clone, Debug, Default)]
pub struct DiscoveryFilters {
    pub agent_id: Option<String>,
    pub status: Option<String>,
    pub expiring_before: Option<DateTime<Utc>>,
}

/// One page of discovered certificates, oldest first.
pub struct ListDiscovered {
    pub filters: DiscoveryFilters,
    pub window: PageWindow,
}

impl DbQuery for ListDiscovered {
    type Output = TimePage<DiscoveredCertificate>;
    const NAME: &'static str = "list_discovered";

    async fn run(self, client: &mut Client) -> Result<TimePage<DiscoveredCertificate>, DbError> {
        let f = &self.filters;
        let (mut conditions, mut params) = (Vec::new(), Vec::new());
        equal_filters(&mut conditions, &mut params, &[("agent_id", &f.agent_id), ("status", &f.status)]);
        if let Some(before) = &f.expiring_before {
            params.push(before);
            conditions.push(format!("not_after < ${}", params.len()));
        }
        let keyset = TimeKeyset {
            table: "discovered_certificates",
            columns: DISCOVERED_COLUMNS,
            descending: false,
            window: &self.window,
        };
        let key = |d: &DiscoveredCertificate| (d.created_at, d.id.clone());
        time_page(client, keyset, conditions, params, DiscoveredCertificate::from_row, key).await
    }
}

/// One discovered certificate by id.
pub struct GetDiscovered {
    pub id: String,
}

impl DbQuery for GetDiscovered {
    type Output = Option<DiscoveredCertificate>;
    const NAME: &'static str = "get_discovered";

    async fn run(self, client: &mut Client) -> Result<Option<DiscoveredCertificate>, DbError> {
        let stmt = client
            .prepare_cached(&format!("SELECT {DISCOVERED_COLUMNS} FROM discovered_certificates WHERE id = $1"))
            .await?;
        client.query_opt(&stmt, &[&self.id]).await?.as_ref().map(DiscoveredCertificate::from_row).transpose()
    }
}

/// Triage of an Unmanaged discovered certificate: dismissed, or managed as the certificate
/// `managed_certificate_id` (already created). `None` when it is not Unmanaged (any more).
pub struct TriageDiscovered {
    pub id: String,
    /// `Some`: claimed as this managed certificate; `None`: dismissed.
    pub managed_certificate_id: Option<String>,
    pub actor: AuditActor,
}

impl DbQuery for TriageDiscovered {
    type Output = Option<DiscoveredCertificate>;
    const NAME: &'static str = "triage_discovered";
    const TOUCHES: &'static [Table] = &[Table::Discovered, Table::Audit];

    async fn run(self, client: &mut Client) -> Result<Option<DiscoveredCertificate>, DbError> {
        let claimed = self.managed_certificate_id.is_some();
        let audit = AuditRecord {
            details: serde_json::json!({ "managed_certificate_id": self.managed_certificate_id }),
            actor: self.actor,
            action: if claimed { "discovery.claim" } else { "discovery.dismiss" }.into(),
            resource_type: "discovered_certificate".into(),
        };
        let sql = format!(
            "WITH c AS ( \
               UPDATE discovered_certificates SET \
                      status = CASE WHEN $2::text IS NULL THEN 'Dismissed' ELSE 'Managed' END, \
                      managed_certificate_id = $2, \
                      dismissed_at = CASE WHEN $2::text IS NULL THEN now() END, updated_at = now() \
                WHERE id = $1 AND status = 'Unmanaged' RETURNING {DISCOVERED_COLUMNS}), \
             a AS ({}) SELECT * FROM c",
            AuditRecord::insert_from("c", 3)
        );
        let stmt = client.prepare_cached(&sql).await?;
        let params = audit.params();
        let mut all: Vec<&(dyn ToSql + Sync)> = vec![&self.id, &self.managed_certificate_id];
        all.extend(params.as_slice());
        client.query_opt(&stmt, &all).await?.as_ref().map(DiscoveredCertificate::from_row).transpose()
    }
}
