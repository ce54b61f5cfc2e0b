//! SQL plumbing shared by the list statements: the `WHERE` clause from collected conditions, the
//! `LIMIT`/`OFFSET` tail (row counts written into the SQL so plans can be cached), and the optional `count(*)` over the same filters.

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
