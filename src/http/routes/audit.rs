//! `/api/v1/audit`: the audit trail, newest first, in keyset pages with filters; and one event
//! by its id.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use certctl_actors::domain::audit::AuditEvent;
use certctl_actors::queries::audit::{AuditFilter, GetAuditEvent, ListAuditEvents};

use crate::http::actor::Actor;
use crate::http::audit_read::audit_read;
use crate::http::cursor;
use crate::http::problem::ApiError;
use crate::http::AppState;

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 1000;

/// Query parameters of the audit list.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    limit: Option<i64>,
    cursor: Option<String>,
    /// certctl's offset paging (answers `total`).
    page: Option<i64>,
    per_page: Option<i64>,
    include_total: Option<bool>,
    actor: Option<String>,
    action: Option<String>,
    resource_type: Option<String>,
    resource_id: Option<String>,
    /// RFC 3339; events at or after it.
    since: Option<String>,
    /// RFC 3339; events before it.
    until: Option<String>,
}

/// Keyset mode: `{data, next_cursor, limit[, total]}`; page mode: `{data, total, page, per_page}`.
#[derive(Serialize)]
struct Page {
    data: Vec<AuditEvent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    page: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    per_page: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    total: Option<i64>,
}

fn rfc3339(name: &str, value: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    value
        .map(|v| {
            DateTime::parse_from_rfc3339(v).map(|t| t.with_timezone(&Utc)).map_err(|_| {
                ApiError::InvalidQuery(format!("{name} must be an RFC 3339 timestamp such as 2026-01-31T12:00:00Z"))
            })
        })
        .transpose()
}

/// `GET /api/v1/audit?actor=&action=&resource_type=&resource_id=&since=&until=&limit=&cursor=`
#[tracing::instrument(skip_all)]
pub async fn list(
    state: web::Data<AppState>,
    actor: Actor,
    params: web::Query<ListParams>,
) -> Result<HttpResponse, ApiError> {
    let p = params.into_inner();
    let summary = serde_json::to_value(&p).unwrap_or_default();
    let offset_mode = p.page.is_some() || p.per_page.is_some();
    if offset_mode && (p.limit.is_some() || p.cursor.is_some()) {
        return Err(ApiError::InvalidQuery("use either page/per_page or limit/cursor, not both".into()));
    }
    let (name, limit) = if offset_mode { ("per_page", p.per_page) } else { ("limit", p.limit) };
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::InvalidQuery(format!("{name} must be between 1 and {MAX_LIMIT} (got {limit})")));
    }
    let page = p.page.unwrap_or(1);
    if !(1..=i64::MAX / MAX_LIMIT).contains(&page) {
        return Err(ApiError::InvalidQuery(format!("page must be 1 or more (got {page})")));
    }
    let filter = AuditFilter {
        since: rfc3339("since", p.since.as_deref())?,
        until: rfc3339("until", p.until.as_deref())?,
        actor: p.actor,
        action: p.action,
        resource_type: p.resource_type,
        resource_id: p.resource_id,
    };
    let before = p.cursor.as_deref().map(cursor::decode_audit).transpose()?;
    let offset = offset_mode.then(|| (page - 1) * limit);
    let with_total = offset_mode || p.include_total.unwrap_or(false);
    let result = state.db.run(ListAuditEvents { filter, before, offset, limit, with_total }).await?;
    audit_read(&state, actor.0, "audit", "list", "*", serde_json::json!({ "query": summary })).await?;
    let body = if offset_mode {
        Page {
            data: result.items,
            next_cursor: None,
            limit: None,
            page: Some(page),
            per_page: Some(limit),
            total: result.total,
        }
    } else {
        Page {
            data: result.items,
            next_cursor: Some(result.next.map(cursor::encode_audit)),
            limit: Some(limit),
            page: None,
            per_page: None,
            total: result.total,
        }
    };
    Ok(HttpResponse::Ok().json(body))
}

/// `GET /api/v1/audit/{id}`: one event by its id.
#[tracing::instrument(skip_all)]
pub async fn get(state: web::Data<AppState>, actor: Actor, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let raw = id.into_inner();
    let id = raw
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::InvalidPath(format!("audit event ids are positive integers (got {raw:?})")))?;
    let event = state
        .db
        .run(GetAuditEvent { id })
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no audit event with id {id}")))?;
    audit_read(&state, actor.0, "audit", "read", &id.to_string(), serde_json::json!({})).await?;
    Ok(HttpResponse::Ok().json(event))
}
