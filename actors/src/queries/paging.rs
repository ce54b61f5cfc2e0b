//! SQL plumbing shared by the list statements: the `WHERE` clause from collected conditions, the
//! `LIMIT`/`OFFSET` tail (row counts written into the SQL so plans can be cached), the optional
//! `count(*)` over the same filters, and [`time_page`], one page of a list ordered by
//! `(created_at, id)` (jobs, agents, discovered certificates).

use chrono::{DateTime, Utc};
use deadpool_postgres::Client;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use crate::error::DbError;

/// `WHERE a AND b…`, or nothing when there are no conditions.
pub(crate) fn where_clause(conditions: &[String]) -> String {
    if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    }
}

/// Row counts a page fetches, one more than the page sizes clients use most. Callers ask for
/// `limit + 1` rows and get the smallest of these that is at least that.
const FETCH_SIZES: [i64; 9] = [11, 21, 26, 51, 101, 201, 251, 501, 1001];

/// The ` LIMIT n[ OFFSET $m]` tail for fetching at least `fetch` rows (and the offset, when paging
/// by offset, as a parameter).
///
/// The row count is written into the SQL, not passed as a parameter: PostgreSQL cannot cost a
/// generic plan for `LIMIT $n`, so it would re-plan every execution of the cached statement (a
/// third of a list's database time). Rounding up to one of [`FETCH_SIZES`] keeps the number of
/// cached statements per filter shape small; callers truncate to their page size, so fetching a
/// few rows more changes nothing but the read.
pub(crate) fn limit_offset<'a>(
    params: &mut Vec<&'a (dyn ToSql + Sync)>,
    fetch: i64,
    offset: Option<&'a i64>,
) -> String {
    let fetch = FETCH_SIZES.iter().copied().find(|size| *size >= fetch).unwrap_or(fetch);
    let mut tail = format!(" LIMIT {fetch}");
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

/// One page of a list ordered by `(created_at, id)`, and the key the next page starts after.
pub struct TimePage<T> {
    pub items: Vec<T>,
    pub next: Option<(DateTime<Utc>, String)>,
    pub total: Option<i64>,
}

/// `column = $n` for each filter that is set, appended to `conditions` and `params`.
pub(crate) fn equal_filters<'a>(
    conditions: &mut Vec<String>,
    params: &mut Vec<&'a (dyn ToSql + Sync)>,
    filters: &[(&str, &'a Option<String>)],
) {
    for (column, value) in filters {
        if let Some(value) = value {
            params.push(value);
            conditions.push(format!("{column} = ${}", params.len()));
        }
    }
}

/// Which page of a list ordered by `(created_at, id)` a request asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PageWindow {
    /// Keyset: rows after this key in the list's order.
    pub cursor: Option<(DateTime<Utc>, String)>,
    /// Offset paging instead (no next key then).
    pub offset: Option<i64>,
    pub limit: i64,
    pub with_total: bool,
}

/// The table a `(created_at, id)` page is read from, and in which direction.
pub(crate) struct TimeKeyset<'a> {
    pub table: &'static str,
    /// The select list `read` expects.
    pub columns: &'static str,
    /// Newest first when true.
    pub descending: bool,
    pub window: &'a PageWindow,
}

/// Reads one page of `keyset.table` under the filter `conditions` (parameters `params`): one row
/// more than the page to know whether another follows, the next key from the last row kept, and the
/// optional `count(*)` under the same filters.
pub(crate) async fn time_page<'a, T>(
    client: &Client,
    keyset: TimeKeyset<'a>,
    mut conditions: Vec<String>,
    mut params: Vec<&'a (dyn ToSql + Sync)>,
    read: impl Fn(&Row) -> Result<T, DbError>,
    key: impl Fn(&T) -> (DateTime<Utc>, String),
) -> Result<TimePage<T>, DbError> {
    let (filter_params, filter_conditions) = (params.len(), conditions.clone());
    let (order, after) = if keyset.descending { ("DESC", "<") } else { ("", ">") };
    let window = keyset.window;
    if let Some((created_at, id)) = &window.cursor {
        params.push(created_at);
        params.push(id);
        conditions.push(format!("(created_at, id) {after} (${}, ${})", params.len() - 1, params.len()));
    }
    let tail = limit_offset(&mut params, window.limit + 1, window.offset.as_ref());
    let sql = format!(
        "SELECT {} FROM {} {} ORDER BY created_at {order}, id {order}{tail}",
        keyset.columns,
        keyset.table,
        where_clause(&conditions)
    );
    let stmt = client.prepare_cached(&sql).await?;
    let rows = client.query(&stmt, &params).await?;
    let mut items = rows.iter().map(read).collect::<Result<Vec<_>, _>>()?;
    let next = if items.len() as i64 > window.limit {
        items.truncate(window.limit as usize);
        items.last().filter(|_| window.offset.is_none()).map(key)
    } else {
        None
    };
    let total = if window.with_total {
        Some(count(client, keyset.table, &filter_conditions, &params[..filter_params]).await?)
    } else {
        None
    };
    Ok(TimePage { items, next, total })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_counts_round_up_to_a_few_fixed_sizes() {
        let mut params = Vec::new();
        assert_eq!(limit_offset(&mut params, 51, None), " LIMIT 51");
        assert_eq!(limit_offset(&mut params, 52, None), " LIMIT 101");
        assert_eq!(limit_offset(&mut params, 2, None), " LIMIT 11");
        assert_eq!(limit_offset(&mut params, 1001, None), " LIMIT 1001");
        assert!(params.is_empty(), "the row count is not a parameter");
        let offset = 40;
        assert_eq!(limit_offset(&mut params, 21, Some(&offset)), " LIMIT 21 OFFSET $1");
        assert_eq!(params.len(), 1);
    }
}
