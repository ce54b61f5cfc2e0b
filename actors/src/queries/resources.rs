//! Generic statements for every [`Resource`]: create, get, keyset list, partial update and
//! delete, each mutation with its audit row in the same statement.

use std::marker::PhantomData;

use chrono::{DateTime, Utc};
use deadpool_postgres::Client;
use tokio_postgres::types::ToSql;

use super::audit::AuditRecord;
use super::certificate_list::like_prefix;
use super::paging::{count, limit_offset, where_clause};
use crate::db::DbQuery;
use crate::domain::audit::{redact, AuditActor};
use crate::domain::resources::Resource;
use crate::error::DbError;
use crate::etag_cache::Table;

fn audit<R: Resource>(actor: AuditActor, verb: &str, details: serde_json::Value) -> AuditRecord {
    AuditRecord { actor, action: format!("{}.{verb}", R::KIND), resource_type: R::KIND.into(), details }
}

/// Inserts a resource (id generated as `<prefix>-<uuid>` unless the client chose one).
pub struct CreateResource<R: Resource> {
    pub new: R::New,
    pub actor: AuditActor,
}

impl<R: Resource> DbQuery for CreateResource<R> {
    type Output = R;
    const NAME: &'static str = "create_resource";
    const TOUCHES: &'static [Table] = &[Table::Audit];

    async fn run(self, client: &mut Client) -> Result<R, DbError> {
        let record = audit::<R>(self.actor, "create", redact(serde_json::to_value(&self.new).unwrap_or_default()));
        let (id, columns) = R::insert_columns(self.new);
        let id = id.unwrap_or_else(|| format!("{}-{}", R::ID_PREFIX, uuid::Uuid::now_v7().simple()));
        let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
        let placeholders: Vec<String> = (2..columns.len() + 2).map(|n| format!("${n}")).collect();
        let sql = format!(
            "WITH c AS (INSERT INTO {} (id, {}) VALUES ($1, {}) RETURNING {}), a AS ({}) SELECT * FROM c",
            R::TABLE,
            names.join(", "),
            placeholders.join(", "),
            R::COLUMNS,
            AuditRecord::insert_from("c", columns.len() + 2)
        );
        let stmt = client.prepare_cached(&sql).await?;
        let audit_params = record.params();
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&id];
        params.extend(columns.iter().map(|(_, value)| value.as_ref() as &(dyn ToSql + Sync)));
        params.extend(audit_params.as_slice());
        R::from_row(&client.query_one(&stmt, &params).await?)
    }
}

/// One resource by id.
pub struct GetResource<R: Resource> {
    pub id: String,
    pub kind: PhantomData<R>,
}

impl<R: Resource> GetResource<R> {
    pub fn new(id: String) -> Self {
        GetResource { id, kind: PhantomData }
    }
}

impl<R: Resource> DbQuery for GetResource<R> {
    type Output = Option<R>;
    const NAME: &'static str = "get_resource";

    async fn run(self, client: &mut Client) -> Result<Option<R>, DbError> {
        let stmt = client.prepare_cached(&format!("SELECT {} FROM {} WHERE id = $1", R::COLUMNS, R::TABLE)).await?;
        client.query_opt(&stmt, &[&self.id]).await?.as_ref().map(R::from_row).transpose()
    }
}

/// A page in creation order, after `(created_at, id)` (keyset) or after skipping `offset` rows
/// (certctl's page/per_page), with exact-match filters on columns from `R::FILTERS` and an
/// optional name prefix.
pub struct ListResources<R: Resource> {
    pub filters: Vec<(&'static str, String)>,
    pub name_prefix: Option<String>,
    pub after: Option<(DateTime<Utc>, String)>,
    pub offset: Option<i64>,
    pub limit: i64,
    /// Also count every matching row.
    pub with_total: bool,
    pub kind: PhantomData<R>,
}

/// A page of resources, where the next one starts, and the total if asked.
pub struct ResourcePage<R> {
    pub items: Vec<R>,
    pub next: Option<(DateTime<Utc>, String)>,
    pub total: Option<i64>,
}

impl<R: Resource> DbQuery for ListResources<R> {
    type Output = ResourcePage<R>;
    const NAME: &'static str = "list_resources";

    async fn run(self, client: &mut Client) -> Result<ResourcePage<R>, DbError> {
        let mut conditions: Vec<String> = Vec::new();
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
        for (column, value) in &self.filters {
            params.push(value);
            conditions.push(format!("{column} = ${}", params.len()));
        }
        let prefix = self.name_prefix.as_deref().map(like_prefix);
        if let Some(prefix) = &prefix {
            params.push(prefix);
            conditions.push(format!("name LIKE ${}", params.len()));
        }
        let (filter_params, filter_conditions) = (params.len(), conditions.clone());
        if let Some((created_at, id)) = &self.after {
            params.push(created_at);
            params.push(id);
            conditions.push(format!("(created_at, id) > (${}, ${})", params.len() - 1, params.len()));
        }
        let fetch = self.limit + 1;
        let tail = limit_offset(&mut params, fetch, self.offset.as_ref());
        let sql = format!(
            "SELECT {}, created_at AS page_created_at FROM {} {} ORDER BY created_at, id{tail}",
            R::COLUMNS,
            R::TABLE,
            where_clause(&conditions)
        );
        let stmt = client.prepare_cached(&sql).await?;
        let rows = client.query(&stmt, &params).await?;
        let total = if self.with_total {
            Some(count(client, R::TABLE, &filter_conditions, &params[..filter_params]).await?)
        } else {
            None
        };
        let more = rows.len() as i64 > self.limit;
        let rows = &rows[..rows.len().min(self.limit as usize)];
        let next = match (more, rows.last(), self.offset) {
            (true, Some(last), None) => Some((last.try_get("page_created_at")?, last.try_get("id")?)),
            _ => None,
        };
        let items = rows.iter().map(R::from_row).collect::<Result<Vec<_>, _>>()?;
        Ok(ResourcePage { items, next, total })
    }
}

/// Applies a partial update (the columns the patch sets) and returns the resource, or `None`
/// when no resource has that id.
pub struct UpdateResource<R: Resource> {
    pub id: String,
    pub patch: R::Patch,
    pub actor: AuditActor,
}

impl<R: Resource> DbQuery for UpdateResource<R> {
    type Output = Option<R>;
    const NAME: &'static str = "update_resource";
    const TOUCHES: &'static [Table] = &[Table::Certificates, Table::Audit];

    async fn run(self, client: &mut Client) -> Result<Option<R>, DbError> {
        let record = audit::<R>(self.actor, "update", redact(serde_json::to_value(&self.patch).unwrap_or_default()));
        let columns = R::update_columns(self.patch);
        let sets: Vec<String> = columns
            .iter()
            .enumerate()
            .map(|(i, (name, _))| format!("{name} = {}", R::set_expression(name, i + 2)))
            .collect();
        let follow_up = R::UPDATE_FOLLOW_UP.map(|cte| format!(", {cte}")).unwrap_or_default();
        let sql = format!(
            "WITH c AS (UPDATE {} SET {}, updated_at = now() WHERE id = $1 RETURNING {}){follow_up}, a AS ({}) \
             SELECT * FROM c",
            R::TABLE,
            sets.join(", "),
            R::COLUMNS,
            AuditRecord::insert_from("c", columns.len() + 2)
        );
        let stmt = client.prepare_cached(&sql).await?;
        let audit_params = record.params();
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&self.id];
        params.extend(columns.iter().map(|(_, value)| value.as_ref() as &(dyn ToSql + Sync)));
        params.extend(audit_params.as_slice());
        client.query_opt(&stmt, &params).await?.as_ref().map(R::from_row).transpose()
    }
}

/// Deletes a resource; false when no resource has that id. Rows that still reference it make
/// the delete fail as [`DbError::StillReferenced`].
pub struct DeleteResource<R: Resource> {
    pub id: String,
    pub actor: AuditActor,
    pub kind: PhantomData<R>,
}

impl<R: Resource> DbQuery for DeleteResource<R> {
    type Output = bool;
    const NAME: &'static str = "delete_resource";
    const TOUCHES: &'static [Table] = &[Table::Audit, Table::Jobs];

    async fn run(self, client: &mut Client) -> Result<bool, DbError> {
        let record = audit::<R>(self.actor, "delete", serde_json::json!({}));
        let sql = format!(
            "WITH c AS (DELETE FROM {} WHERE id = $1 RETURNING id), a AS ({}) SELECT id FROM c",
            R::TABLE,
            AuditRecord::insert_from("c", 2)
        );
        let stmt = client.prepare_cached(&sql).await?;
        let audit_params = record.params();
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&self.id];
        params.extend(audit_params.as_slice());
        match client.query_opt(&stmt, &params).await {
            Ok(row) => Ok(row.is_some()),
            Err(e) => Err(match DbError::from(e) {
                DbError::ForeignKey(key) => DbError::StillReferenced { by: key.child },
                other => other,
            }),
        }
    }
}
