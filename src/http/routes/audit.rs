//! `/api/v1/audit`: the audit trail, newest first, in keyset pages with filters; and one event
//! by its id.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use certctl_actors::domain::audit::AuditEvent;
use certctl_actors::queries::audit::{AuditFilter, GetAuditEvent, ListAuditEvents};

use certctl_actors::etag_cache::Table;

use crate::auth::Caller;
use crate::http::actor::Actor;
use crate::http::cursor;
use crate::http::etag::{self, revalidate, Revalidation};
use crate::http::paging::PagingParams;
use crate::http::paging::{rfc3339, Page, PageRequest};
use crate::http::problem::ApiError;
use crate::http::query::{ListQuery, QueryFields};
use crate::http::AppState;
use certctl_actors::inventory::AuditedRead;

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
#[utoipa::path(
    get,
    path = "/api/v1/audit",
    tag = "audit",
    operation_id = "listAuditEvents",
    params(
        ("actor" = Option<String>, Query, description = "Only events of this actor (a key's name, an agent's id, a server component)."),
        ("action" = Option<String>, Query, description = "Only events of this action, such as `create` or `renew`."),
        ("resource_type" = Option<String>, Query, description = "Only events on this kind of resource, such as `certificate` or `agent`."),
        ("resource_id" = Option<String>, Query, description = "Only events on the resource with this id."),
        ("since" = Option<String>, Query, format = DateTime, description = "Only events at or after this RFC 3339 time."),
        ("until" = Option<String>, Query, format = DateTime, description = "Only events before this RFC 3339 time."),
        PagingParams,
    ),
    responses(
        (status = 200, description = "A page of audit events, newest first.", body = Page<AuditEvent>),
    )
)]
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
    let read = AuditedRead::of(actor.0, "audit", "list", "*").with_details(serde_json::json!({ "query": summary }));
    let result = state.engine.inventory().read(query, read).await?;
    let body =
        paging.page(result.items, result.next.map(|id| cursor::encode_audit(state.engine.cursors(), id)), result.total);
    let mut ok = HttpResponse::Ok();
    etag::headers(&mut ok, &etag);
    Ok(ok.json(body))
}

/// `GET /api/v1/audit/{id}`: one event by its id.
#[utoipa::path(
    get,
    path = "/api/v1/audit/{id}",
    tag = "audit",
    operation_id = "getAuditEvent",
    params(("id" = i64, Path, minimum = 1, description = "The event's id, a positive integer.")),
    responses((status = 200, description = "The audit event.", body = AuditEvent))
)]
#[tracing::instrument(skip_all)]
pub async fn get(state: web::Data<AppState>, actor: Actor, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let raw = id.into_inner();
    let id = raw
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::InvalidPath(format!("audit event ids are positive integers (got {raw:?})")))?;
    let read = AuditedRead::of(actor.0, "audit", "read", &id.to_string());
    let event = state
        .engine
        .inventory()
        .read_one(GetAuditEvent { id }, read)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no audit event with id {id}")))?;
    Ok(HttpResponse::Ok().json(event))
}

/// This file's operations, for the OpenAPI document (`http::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(list, get))]
pub struct Doc;
