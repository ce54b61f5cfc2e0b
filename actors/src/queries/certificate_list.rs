//! Listing certificates: filters, four sort orders (each served by an index ending in `id`),
//! keyset pages (the default) or offset pages with a total (certctl's `page`/`per_page`).

use chrono::{DateTime, Utc};
use deadpool_postgres::Client;
use tokio_postgres::types::ToSql;

use super::certificates::{certificate_from_row, read_columns};
use super::paging::{count, limit_offset, where_clause};
use crate::db::DbQuery;
use crate::domain::certificate::{Certificate, CertificateStatus};
use crate::error::DbError;

/// What the list can be ordered by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortKey {
    CreatedAt,
    UpdatedAt,
    /// Certificates without an expiry sort after every dated one.
    ExpiresAt,
    Name,
}

impl SortKey {
    /// The SQL expression, identical to the one its index is built on.
    fn expression(self) -> &'static str {
        match self {
            SortKey::CreatedAt => "created_at",
            SortKey::UpdatedAt => "updated_at",
            SortKey::ExpiresAt => "coalesce(expires_at, '9999-12-31 23:59:59+00'::timestamptz)",
            SortKey::Name => "name",
        }
    }
}

/// A sort order: a key and a direction (`id` breaks ties in the same direction).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sort {
    pub key: SortKey,
    pub descending: bool,
}

impl Default for Sort {
    /// Creation order, oldest first (certctl's default).
    fn default() -> Self {
        Sort { key: SortKey::CreatedAt, descending: false }
    }
}

/// The sort key's value of the last row of a page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SortValue {
    Time(DateTime<Utc>),
    Text(String),
}

/// Where the next keyset page starts: after this row, in this sort order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SortCursor {
    pub sort: Sort,
    pub value: SortValue,
    pub id: String,
}

/// Filters; every one is optional and they combine with AND.
#[derive(Clone, Debug, Default)]
pub struct CertificateFilters {
    pub status: Option<CertificateStatus>,
    pub environment: Option<String>,
    pub owner_id: Option<String>,
    pub team_id: Option<String>,
    pub issuer_id: Option<String>,
    pub profile_id: Option<String>,
    pub expires_before: Option<DateTime<Utc>>,
    pub expires_after: Option<DateTime<Utc>>,
    pub updated_after: Option<DateTime<Utc>>,
    /// Prefix of the name or the common name.
    pub q: Option<String>,
}

/// How to page.
#[derive(Clone, Debug)]
pub enum Paging {
    /// Keyset: `limit` rows after `after` (the first page when `None`).
    Keyset { after: Option<SortCursor>, limit: i64 },
    /// Offset (compatibility): `limit` rows after skipping `offset`.
    Offset { offset: i64, limit: i64 },
}

/// A page of certificates.
pub struct ListCertificates {
    pub filters: CertificateFilters,
    pub sort: Sort,
    pub paging: Paging,
    /// Also count every matching row (a second statement; only when asked).
    pub with_total: bool,
}

/// The rows, the cursor of the next keyset page when more rows follow, and the total if asked.
#[derive(Debug)]
pub struct CertificatePage {
    pub items: Vec<Certificate>,
    pub next: Option<SortCursor>,
    pub total: Option<i64>,
}

/// Escapes LIKE's wildcards so a prefix matches literally.
pub(crate) fn like_prefix(prefix: &str) -> String {
    let mut escaped = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped.push('%');
    escaped
}

impl DbQuery for ListCertificates {
    type Output = CertificatePage;
    const NAME: &'static str = "list_certificates";

    async fn run(self, client: &mut Client) -> Result<CertificatePage, DbError> {
        // Statements are built per filter shape (never `$1 IS NULL OR …`), so every cached plan
        // can use the index that matches its sort.
        let f = &self.filters;
        let status = f.status.map(|s| s.as_str());
        // A prefix as an explicit byte-wise range (`~>=~`, `~<~`, the text_pattern_ops operators)
        // so even a generic cached plan can use the prefix indexes; LIKE keeps the match exact.
        let q = f.q.as_deref().map(|p| (p.to_string(), format!("{p}\u{10FFFF}"), like_prefix(p)));
        let mut conditions: Vec<String> = Vec::new();
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
        // Appends a condition whose `?` placeholders all take `value`.
        macro_rules! add {
            ($condition:expr, $value:expr) => {{
                params.push($value);
                conditions.push($condition.replace('?', &format!("${}", params.len())));
            }};
        }
        if let Some(v) = &status {
            add!("status = ?", v);
        }
        if let Some(v) = &f.environment {
            add!("environment = ?", v);
        }
        if let Some(v) = &f.owner_id {
            add!("owner_id = ?", v);
        }
        if let Some(v) = &f.team_id {
            add!("team_id = ?", v);
        }
        if let Some(v) = &f.issuer_id {
            add!("issuer_id = ?", v);
        }
        if let Some(v) = &f.profile_id {
            add!("certificate_profile_id = ?", v);
        }
        if let Some(v) = &f.expires_before {
            add!("expires_at < ?", v);
        }
        if let Some(v) = &f.expires_after {
            add!("expires_at > ?", v);
        }
        if let Some(v) = &f.updated_after {
            add!("updated_at > ?", v);
        }
        if let Some((lower, upper, like)) = &q {
            params.push(lower);
            params.push(upper);
            params.push(like);
            let (l, u, k) = (params.len() - 2, params.len() - 1, params.len());
            conditions.push(format!(
                "((name ~>=~ ${l} AND name ~<~ ${u} AND name LIKE ${k}) \
                 OR (common_name ~>=~ ${l} AND common_name ~<~ ${u} AND common_name LIKE ${k}))"
            ));
        }
        let filter_count = params.len();
        let where_filters = conditions.clone();

        let key = self.sort.key.expression();
        let (direction, comparison) = if self.sort.descending { ("DESC", "<") } else { ("ASC", ">") };
        let (limit, offset, after) = match &self.paging {
            Paging::Keyset { after, limit } => (*limit, None, after.as_ref()),
            Paging::Offset { offset, limit } => (*limit, Some(*offset), None),
        };
        let after_time;
        let after_text;
        if let Some(cursor) = after {
            match &cursor.value {
                SortValue::Time(t) => {
                    after_time = *t;
                    params.push(&after_time);
                }
                SortValue::Text(t) => {
                    after_text = t.clone();
                    params.push(&after_text);
                }
            }
            params.push(&cursor.id);
            let n = params.len();
            conditions.push(format!("({key}, id) {comparison} (${}, ${n})", n - 1));
        }
        let fetch = limit + 1;
        let tail = limit_offset(&mut params, fetch, offset.as_ref());
        let sql = format!(
            "SELECT {} FROM managed_certificates {} ORDER BY {key} {direction}, id {direction}{tail}",
            read_columns(),
            where_clause(&conditions)
        );
        let stmt = client.prepare_cached(&sql).await?;
        let rows = client.query(&stmt, &params).await?;
        let mut items = rows.iter().map(certificate_from_row).collect::<Result<Vec<_>, _>>()?;
        let more = items.len() as i64 > limit;
        items.truncate(limit as usize);
        let next = match (&self.paging, more, items.last()) {
            (Paging::Keyset { .. }, true, Some(last)) => {
                Some(SortCursor { sort: self.sort, value: sort_value(self.sort.key, last), id: last.id.clone() })
            }
            _ => None,
        };

        let total = if self.with_total {
            Some(count(client, "managed_certificates", &where_filters, &params[..filter_count]).await?)
        } else {
            None
        };
        Ok(CertificatePage { items, next, total })
    }
}

/// The value of `key` in `certificate`, as the sort expression sees it.
fn sort_value(key: SortKey, certificate: &Certificate) -> SortValue {
    match key {
        SortKey::CreatedAt => SortValue::Time(certificate.created_at),
        SortKey::UpdatedAt => SortValue::Time(certificate.updated_at),
        SortKey::ExpiresAt => SortValue::Time(certificate.expires_at.unwrap_or_else(far_future)),
        SortKey::Name => SortValue::Text(certificate.name.clone()),
    }
}

/// The stand-in for "no expiry" in the expiry sort (matches the index expression).
pub fn far_future() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("9999-12-31T23:59:59Z")
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_prefixes_match_wildcards_literally() {
        assert_eq!(like_prefix("api_%x"), "api\\_\\%x%");
        assert_eq!(like_prefix(""), "%");
    }
}
