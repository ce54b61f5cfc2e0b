//! `/api/v1/audit`: the audit trail, newest first, in keyset pages with filters; and one event
//! by its id.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use certctl_actors::queries::audit::{AuditFilter, GetAuditEvent, ListAuditEvents};

use certctl_actors::etag_cache::Table;

use crate::auth::Caller;
use crate::http::actor::Actor;
use crate::http::audit_read::audit_read;
use crate::http::cursor;
use crate::http::etag::{self, revalidate, Revalidation};
use crate::http::paging::{rfc3339, PageRequest};
use crate::http::problem::ApiError;
use crate::http::query::{ListQuery, QueryFields};
use crate::http::AppState;

/// Query parameters of the audit list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    actor: Option<String>,
    action: Option<String>,
    resource_type: Option<String>,
    resource_id: Option<String>,
    /// RFC 3339; events at or after it.
    since: Option<String>,
    /// RFC 3339; events before it.
    until: Option<String>,
}

impl QueryFields for ListParams {
    const FIELDS: &'static [&'static str] = &["actor", "action", "resource_type", "resource_id", "since", "until"];
}

/// `GET /api/v1/audit?actor=&action=&resource_type=&resource_id=&since=&until=&limit=&cursor=`
#[tracing::instrument(skip_all)]
pub async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    actor: Actor,
    query: ListQuery<ListParams>,
) -> Result<HttpResponse, ApiError> {
    let (paging, p, summary) = (query.paging, query.params, query.raw);
    let filter = AuditFilter {
        since: rfc3339("since", p.since.as_deref())?,
        until: rfc3339("until", p.until.as_deref())?,
        actor: p.actor,
        action: p.action,
        resource_type: p.resource_type,
        resource_id: p.resource_id,
    };
    let before = match &paging {
        PageRequest::Keyset { cursor: Some(c), .. } => Some(cursor::decode_audit(state.engine.cursors(), c)?),
        _ => None,
    };
    let query = ListAuditEvents {
        filter,
        before,
        offset: paging.offset(),
        limit: paging.size(),
        with_total: paging.with_total(),
    };
    let etag = match revalidate(&req, &state, &caller, "/api/v1/audit", &[Table::Audit]) {
        Revalidation::NotModified(response) => return Ok(response),
        Revalidation::Fresh(etag) => etag,
    };
    let result = state.db.run(query).await?;
    audit_read(&state, actor.0, "audit", "list", "*", serde_json::json!({ "query": summary })).await?;
    let body =
        paging.page(result.items, result.next.map(|id| cursor::encode_audit(state.engine.cursors(), id)), result.total);
    let mut ok = HttpResponse::Ok();
    etag::headers(&mut ok, &etag);
    Ok(ok.json(body))
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
