//! Paging shared by every list endpoint: the two request modes (keyset `limit`/`cursor`, the
//! default, and certctl's `page`/`per_page`), their validation (400, never a silent cap), the
//! response envelope, and RFC 3339 time parameters.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::problem::ApiError;

/// Default and largest page sizes.
pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 1000;

/// How a list request pages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PageRequest {
    /// `limit` rows after the (still encoded) `cursor`; a count only when asked.
    Keyset { limit: i64, cursor: Option<String>, include_total: bool },
    /// certctl's offset pages, always with a total.
    Offset { page: i64, per_page: i64 },
}

impl PageRequest {
    /// Validates the raw paging parameters of a request.
    pub fn parse(
        limit: Option<i64>,
        cursor: Option<String>,
        page: Option<i64>,
        per_page: Option<i64>,
        include_total: Option<bool>,
    ) -> Result<PageRequest, ApiError> {
        if page.is_some() || per_page.is_some() {
            if limit.is_some() || cursor.is_some() {
                return Err(ApiError::InvalidQuery("use either page/per_page or limit/cursor, not both".into()));
            }
            let page = page.unwrap_or(1);
            if !(1..=i64::MAX / MAX_LIMIT).contains(&page) {
                return Err(ApiError::InvalidQuery(format!("page must be 1 or more (got {page})")));
            }
            return Ok(PageRequest::Offset { page, per_page: size("per_page", per_page)? });
        }
        Ok(PageRequest::Keyset { limit: size("limit", limit)?, cursor, include_total: include_total.unwrap_or(false) })
    }

    /// Rows per page.
    pub fn size(&self) -> i64 {
        match self {
            PageRequest::Keyset { limit, .. } => *limit,
            PageRequest::Offset { per_page, .. } => *per_page,
        }
    }

    /// Rows to skip (offset mode only).
    pub fn offset(&self) -> Option<i64> {
        match self {
            PageRequest::Offset { page, per_page } => Some((page - 1) * per_page),
            PageRequest::Keyset { .. } => None,
        }
    }

    /// Whether the response carries a total.
    pub fn with_total(&self) -> bool {
        matches!(self, PageRequest::Offset { .. } | PageRequest::Keyset { include_total: true, .. })
    }

    /// The response envelope for `data`: keyset `{data, next_cursor, limit[, total]}` or offset
    /// `{data, total, page, per_page}`.
    pub fn page<T: Serialize>(&self, data: Vec<T>, next_cursor: Option<String>, total: Option<i64>) -> Page<T> {
        match self {
            PageRequest::Keyset { limit, .. } => {
                Page { data, next_cursor: Some(next_cursor), limit: Some(*limit), page: None, per_page: None, total }
            }
            PageRequest::Offset { page, per_page } => {
                Page { data, next_cursor: None, limit: None, page: Some(*page), per_page: Some(*per_page), total }
            }
        }
    }
}

/// A page size within 1..=MAX_LIMIT (default DEFAULT_LIMIT).
fn size(name: &str, value: Option<i64>) -> Result<i64, ApiError> {
    let size = value.unwrap_or(DEFAULT_LIMIT);
    if (1..=MAX_LIMIT).contains(&size) {
        Ok(size)
    } else {
        Err(ApiError::InvalidQuery(format!("{name} must be between 1 and {MAX_LIMIT} (got {size})")))
    }
}

/// The list envelope: keyset pages carry `next_cursor` and `limit`, offset pages `page`,
/// `per_page` and `total`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Page<T: Serialize> {
    /// The rows.
    pub data: Vec<T>,
    /// Keyset mode: the next page's cursor, `null` on the last page. Absent in offset mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub next_cursor: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_page: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<i64>,
}

/// A filter value that must be one of `accepted` (exactly), or a 400 naming them.
pub fn one_of(name: &str, value: Option<String>, accepted: &[&str]) -> Result<Option<String>, ApiError> {
    match value {
        Some(v) if !accepted.contains(&v.as_str()) => {
            Err(ApiError::InvalidQuery(format!("{name} must be one of {} (got {v})", accepted.join(", "))))
        }
        other => Ok(other),
    }
}

/// An optional RFC 3339 time parameter.
pub fn rfc3339(name: &str, value: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    value
        .map(|v| {
            DateTime::parse_from_rfc3339(v).map(|t| t.with_timezone(&Utc)).map_err(|_| {
                ApiError::InvalidQuery(format!("{name} must be an RFC 3339 timestamp such as 2026-01-31T12:00:00Z"))
            })
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_modes_are_exclusive_and_bounded() {
        assert_eq!(
            PageRequest::parse(None, None, None, None, None).unwrap(),
            PageRequest::Keyset { limit: 50, cursor: None, include_total: false }
        );
        assert_eq!(PageRequest::parse(None, None, Some(3), Some(20), None).unwrap().offset(), Some(40));
        assert!(PageRequest::parse(Some(10), None, Some(1), None, None).is_err());
        assert!(PageRequest::parse(Some(1001), None, None, None, None).is_err());
        assert!(PageRequest::parse(None, None, Some(0), None, None).is_err());
    }
}

/// The paging parameters every list takes, as the OpenAPI document describes them ([`PageRequest::parse`]
/// reads them).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PagingParams {
    /// Rows per keyset page (default 50).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// certctl's offset pages: the page number (from 1); not with `limit`/`cursor`.
    #[param(minimum = 1)]
    pub page: Option<i64>,
    /// certctl's offset pages: rows per page (default 50); not with `limit`/`cursor`.
    #[param(minimum = 1, maximum = 1000)]
    pub per_page: Option<i64>,
    /// Whether a keyset page carries `total` (offset pages always do).
    pub include_total: Option<bool>,
}
