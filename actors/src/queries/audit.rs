//! Audit statements: the row every mutation adds (as a fragment of the mutation's own statement,
//! so change and record commit together), audited reads, keyset pages, and retention batches.

use chrono::{DateTime, Utc};
use deadpool_postgres::Client;
use tokio_postgres::types::{Json, ToSql};
use tokio_postgres::Row;

use super::paging::{count, limit_offset, where_clause};
use crate::db::DbQuery;
use crate::domain::audit::{AuditActor, AuditEvent};
use crate::error::DbError;
use crate::etag_cache::Table;

const COLUMNS: &str = "id, occurred_at, actor, actor_type, action, resource_type, resource_id, request_id, details";

fn event_from_row(row: &Row) -> Result<AuditEvent, DbError> {
    let actor_type: &str = row.try_get("actor_type")?;
    let actor_type = AuditEvent::actor_type_from_db(actor_type)
        .ok_or_else(|| DbError::Unexpected(anyhow::anyhow!("unknown actor_type {actor_type:?} in audit_events")))?;
    let details: Json<serde_json::Value> = row.try_get("details")?;
    Ok(AuditEvent {
        id: row.try_get("id")?,
        timestamp: row.try_get("occurred_at")?,
        actor: row.try_get("actor")?,
        actor_type,
        action: row.try_get("action")?,
        resource_type: row.try_get("resource_type")?,
        resource_id: row.try_get("resource_id")?,
        request_id: row.try_get("request_id")?,
        details: details.0,
    })
}

/// What an audit row records besides the resource id (which comes from the changed row).
pub struct AuditRecord {
    pub actor: AuditActor,
    /// `<resource>.<verb>`, e.g. `certificate.create`.
    pub action: String,
    pub resource_type: String,
    /// A redacted summary of the request.
    pub details: serde_json::Value,
}

impl AuditRecord {
    /// `INSERT INTO audit_events … SELECT … FROM <cte>`: one audit row per row of `cte` (whose
    /// `id` column is the resource id), with parameters numbered from `first`.
    pub(crate) fn insert_from(cte: &str, first: usize) -> String {
        format!(
            "INSERT INTO audit_events (actor, actor_type, action, resource_type, resource_id, request_id, details) \
             SELECT ${}, ${}, ${}, ${}, {cte}.id, ${}, ${} FROM {cte}",
            first,
            first + 1,
            first + 2,
            first + 3,
            first + 4,
            first + 5
        )
    }

    /// The six parameters [`AuditRecord::insert_from`] expects, in order.
    pub(crate) fn params(&self) -> AuditParams<'_> {
        AuditParams {
            actor: &self.actor.name,
            actor_type: self.actor.actor_type.as_str(),
            action: &self.action,
            resource_type: &self.resource_type,
            request_id: self.actor.request_id.as_deref(),
            details: Json(&self.details),
        }
    }
}

/// Borrowed audit parameters, kept alive while a statement runs.
pub(crate) struct AuditParams<'a> {
    actor: &'a str,
    actor_type: &'a str,
    action: &'a String,
    resource_type: &'a String,
    request_id: Option<&'a str>,
    details: Json<&'a serde_json::Value>,
}

impl AuditParams<'_> {
    pub(crate) fn as_slice(&self) -> [&(dyn ToSql + Sync); 6] {
        [&self.actor, &self.actor_type, &self.action, &self.resource_type, &self.request_id, &self.details]
    }
}

/// Records an event that is not part of a mutation (audited reads).
pub struct InsertAuditEvent {
    pub record: AuditRecord,
    pub resource_id: String,
}

impl DbQuery for InsertAuditEvent {
    type Output = ();
    const NAME: &'static str = "insert_audit_event";
    const TOUCHES: &'static [Table] = &[Table::Audit];

    async fn run(self, client: &mut Client) -> Result<(), DbError> {
        let sql = format!("WITH r AS (SELECT $7::text AS id) {}", AuditRecord::insert_from("r", 1));
        let stmt = client.prepare_cached(&sql).await?;
        let params = self.record.params();
        let mut all: Vec<&(dyn ToSql + Sync)> = params.as_slice().to_vec();
        all.push(&self.resource_id);
        client.execute(&stmt, &all).await?;
        Ok(())
    }
}

/// Filters of the audit list; every one is optional.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// A newest-first page of audit events, continuing below event id `before`.
pub struct ListAuditEvents {
    pub filter: AuditFilter,
    /// Keyset: continue below this event id.
    pub before: Option<i64>,
    /// Offset paging (certctl's page/per_page) instead of `before`.
    pub offset: Option<i64>,
    pub limit: i64,
    /// Also count every matching event.
    pub with_total: bool,
}

/// A page and the id to continue below, when more rows follow.
#[derive(Debug)]
pub struct AuditPage {
    pub items: Vec<AuditEvent>,
    pub next: Option<i64>,
    pub total: Option<i64>,
}

impl DbQuery for ListAuditEvents {
    type Output = AuditPage;
    const NAME: &'static str = "list_audit_events";

    async fn run(self, client: &mut Client) -> Result<AuditPage, DbError> {
        let f = &self.filter;
        let mut conditions: Vec<String> = Vec::new();
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
        for (column, value) in [
            ("actor", &f.actor),
            ("action", &f.action),
            ("resource_type", &f.resource_type),
            ("resource_id", &f.resource_id),
        ] {
            if let Some(value) = value {
                params.push(value);
                conditions.push(format!("{column} = ${}", params.len()));
            }
        }
        if let Some(since) = &f.since {
            params.push(since);
            conditions.push(format!("occurred_at >= ${}", params.len()));
        }
        if let Some(until) = &f.until {
            params.push(until);
            conditions.push(format!("occurred_at < ${}", params.len()));
        }
        let (filter_params, filter_conditions) = (params.len(), conditions.clone());
        if let Some(before) = &self.before {
            params.push(before);
            conditions.push(format!("id < ${}", params.len()));
        }
        let fetch = self.limit + 1;
        let tail = limit_offset(&mut params, fetch, self.offset.as_ref());
        let sql = format!("SELECT {COLUMNS} FROM audit_events {} ORDER BY id DESC{tail}", where_clause(&conditions));
        let stmt = client.prepare_cached(&sql).await?;
        let rows = client.query(&stmt, &params).await?;
        let mut items = rows.iter().map(event_from_row).collect::<Result<Vec<_>, _>>()?;
        let next = if items.len() as i64 > self.limit {
            items.truncate(self.limit as usize);
            items.last().map(|e| e.id).filter(|_| self.offset.is_none())
        } else {
            None
        };
        let total = if self.with_total {
            Some(count(client, "audit_events", &filter_conditions, &params[..filter_params]).await?)
        } else {
            None
        };
        Ok(AuditPage { items, next, total })
    }
}

/// One audit event by its id.
pub struct GetAuditEvent {
    pub id: i64,
}

impl DbQuery for GetAuditEvent {
    type Output = Option<AuditEvent>;
    const NAME: &'static str = "get_audit_event";

    async fn run(self, client: &mut Client) -> Result<Option<AuditEvent>, DbError> {
        let stmt = client.prepare_cached(&format!("SELECT {COLUMNS} FROM audit_events WHERE id = $1")).await?;
        client.query_opt(&stmt, &[&self.id]).await?.as_ref().map(event_from_row).transpose()
    }
}

/// Deletes at most `batch` events older than `before` (oldest first) and returns how many. The
/// only statement allowed past the append-only trigger, through a transaction-local setting.
pub struct PurgeAuditEvents {
    pub before: DateTime<Utc>,
    pub batch: i64,
}

impl DbQuery for PurgeAuditEvents {
    type Output = u64;
    const NAME: &'static str = "purge_audit_events";
    const TOUCHES: &'static [Table] = &[Table::Audit];

    fn changed(output: &Self::Output) -> bool {
        *output > 0
    }

    async fn run(self, client: &mut Client) -> Result<u64, DbError> {
        let tx = client.transaction().await?;
        tx.batch_execute("SET LOCAL certctl.audit_retention = 'on'").await?;
        let stmt = tx
            .prepare_cached(
                "DELETE FROM audit_events WHERE id IN \
                 (SELECT id FROM audit_events WHERE occurred_at < $1 ORDER BY id LIMIT $2)",
            )
            .await?;
        let deleted = tx.execute(&stmt, &[&self.before, &self.batch]).await?;
        tx.commit().await?;
        Ok(deleted)
    }
}
