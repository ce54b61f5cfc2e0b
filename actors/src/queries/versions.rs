//! Certificate versions: newest-first keyset pages per certificate.

use chrono::{DateTime, Utc};
use deadpool_postgres::Client;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::paging::limit_offset;
use crate::db::DbQuery;
use crate::domain::version::CertificateVersion;
use crate::error::DbError;

const COLUMNS: &str = "id, certificate_id, serial_number, not_before, not_after, fingerprint_sha256, pem_chain, \
    csr_pem, key_algorithm, key_size, created_at";

fn version_from_row(row: &Row) -> Result<CertificateVersion, DbError> {
    Ok(CertificateVersion {
        id: row.try_get("id")?,
        certificate_id: row.try_get("certificate_id")?,
        serial_number: row.try_get("serial_number")?,
        not_before: row.try_get("not_before")?,
        not_after: row.try_get("not_after")?,
        fingerprint_sha256: row.try_get("fingerprint_sha256")?,
        pem_chain: row.try_get("pem_chain")?,
        csr_pem: row.try_get("csr_pem")?,
        key_algorithm: row.try_get("key_algorithm")?,
        key_size: row.try_get("key_size")?,
        created_at: row.try_get("created_at")?,
    })
}

/// A newest-first page of a certificate's versions, continuing below `(created_at, id)`; `None`
/// when the certificate does not exist.
pub struct ListVersions {
    pub certificate_id: String,
    pub before: Option<(DateTime<Utc>, String)>,
    pub limit: i64,
}

/// A page of versions and where the next one starts.
pub struct VersionPage {
    pub items: Vec<CertificateVersion>,
    pub next: Option<(DateTime<Utc>, String)>,
}

impl DbQuery for ListVersions {
    type Output = Option<VersionPage>;
    const NAME: &'static str = "list_certificate_versions";

    async fn run(self, client: &mut Client) -> Result<Option<VersionPage>, DbError> {
        let exists = client.prepare_cached("SELECT 1 FROM managed_certificates WHERE id = $1").await?;
        if client.query_opt(&exists, &[&self.certificate_id]).await?.is_none() {
            return Ok(None);
        }
        let fetch = self.limit + 1;
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&self.certificate_id];
        let mut filter = String::new();
        if let Some((created_at, id)) = &self.before {
            params.push(created_at);
            params.push(id);
            filter = " AND (created_at, id) < ($2, $3)".into();
        }
        let tail = limit_offset(&mut params, fetch, None);
        let sql = format!(
            "SELECT {COLUMNS} FROM certificate_versions WHERE certificate_id = $1{filter} \
             ORDER BY created_at DESC, id DESC{tail}"
        );
        let stmt = client.prepare_cached(&sql).await?;
        let rows = client.query(&stmt, &params).await?;
        let mut items = rows.iter().map(version_from_row).collect::<Result<Vec<_>, _>>()?;
        let next = if items.len() as i64 > self.limit {
            items.truncate(self.limit as usize);
            items.last().map(|v| (v.created_at, v.id.clone()))
        } else {
            None
        };
        Ok(Some(VersionPage { items, next }))
    }
}
