//! SQL plumbing shared by the list statements: the `WHERE` clause from collected conditions, the
//! `LIMIT`/`OFFSET` tail, and the optional `count(*)` over the same filters.

use deadpool_postgres::Client;
use tokio_postgres::types::ToSql;

use crate::error::DbError;

/// `WHERE a AND b…`, or nothing when there are no conditions.
pub(crate) fn where_clause(conditions: &[String]) -> String {
    if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    }
}

/// Pushes the row count to fetch (and the offset, when paging by offset) and returns the
/// ` LIMIT $n[ OFFSET $m]` tail that uses them.
pub(crate) fn limit_offset<'a>(
    params: &mut Vec<&'a (dyn ToSql + Sync)>,
    fetch: &'a i64,
    offset: Option<&'a i64>,
) -> String {
    params.push(fetch);
    let mut tail = format!(" LIMIT ${}", params.len());
    if let Some(offset) = offset {
        params.push(offset);
        tail.push_str(&format!(" OFFSET ${}", params.len()));
    }
    tail
}

/// `count(*)` of `table` under the filter `conditions` (whose parameters are `params`).
pub(crate) async fn count(
    client: &Client,
    table: &str,
    conditions: &[String],
    params: &[&(dyn ToSql + Sync)],
) -> Result<i64, DbError> {
    let stmt = client.prepare_cached(&format!("SELECT count(*) FROM {table} {}", where_clause(conditions))).await?;
    Ok(client.query_one(&stmt, params).await?.try_get(0)?)
}
