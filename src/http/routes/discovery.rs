//! Discovery: agents report the certificates they find on disk
//! (`POST /api/v1/agents/{id}/discoveries`), operators triage them under
//! `/api/v1/discovered-certificates` (list with filters, get, claim into a managed certificate,
//! dismiss).

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use certctl_actors::discovery::{ClaimRequest, Triage};
use certctl_actors::domain::discovery::{DiscoveryReport, DISCOVERY_STATUSES};
use certctl_actors::queries::certificate_list::{Sort, SortKey};
use certctl_actors::queries::discovery::{DiscoveryFilters, GetDiscovered, ListDiscovered, RecordDiscoveryScan};

use crate::auth::Caller;
use crate::http::actor::Actor;
use crate::http::cursor;
use crate::http::etag;
use crate::http::json::ValidJson;
use crate::http::paging::{one_of, rfc3339};
use crate::http::path_id::Id;
use crate::http::problem::{ApiError, Conflict};
use crate::http::query::{ListQuery, QueryFields};
use crate::http::AppState;
use certctl_actors::etag_cache::Table;

/// Oldest first, the order of the list and its cursors.
const ORDER: Sort = Sort { key: SortKey::CreatedAt, descending: false };

/// `POST /api/v1/agents/{id}/discoveries`: one scan's findings, upserted in one statement.
#[tracing::instrument(skip_all, fields(agent_id))]
pub async fn report(
    state: web::Data<AppState>,
    caller: Caller,
    id: Id,
    body: ValidJson<DiscoveryReport>,
) -> Result<HttpResponse, ApiError> {
    let agent = super::agent_api::acting_agent(&state, &caller, &id)?;
    tracing::Span::current().record("agent_id", &*agent);
    let mut report = body.0;
    report.validate().map_err(ApiError::Validation)?;
    report.normalize();
    let recorded = state.db.run(RecordDiscoveryScan { agent_id: agent.to_string(), report }).await?;
    tracing::info!(
        agent_id = %agent,
        found = recorded.certificates_found,
        new = recorded.certificates_new,
        "discovery scan recorded"
    );
    Ok(HttpResponse::Created().json(recorded))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    agent_id: Option<String>,
    status: Option<String>,
    expiring_before: Option<String>,
}

impl QueryFields for ListParams {
    const FIELDS: &'static [&'static str] = &["agent_id", "status", "expiring_before"];
}

/// `GET /api/v1/discovered-certificates?agent_id=&status=&expiring_before=&limit=&cursor=`
#[tracing::instrument(skip_all)]
pub async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    query: ListQuery<ListParams>,
) -> Result<HttpResponse, ApiError> {
    let (paging, p) = (query.paging, query.params);
    let status = one_of("status", p.status, &DISCOVERY_STATUSES)?;
    let expiring_before = rfc3339("expiring_before", p.expiring_before.as_deref())?;
    let filters = DiscoveryFilters { agent_id: p.agent_id, status, expiring_before };
    let query = ListDiscovered {
        filters,
        window: cursor::time_window(state.engine.cursors(), "/api/v1/discovered-certificates", &paging, ORDER)?,
    };
    etag::time_list(
        &req,
        &state,
        &caller,
        "/api/v1/discovered-certificates",
        &[Table::Discovered],
        &paging,
        ORDER,
        query,
    )
    .await
}

/// `GET /api/v1/discovered-certificates/{id}`
pub async fn get(state: web::Data<AppState>, id: Id) -> Result<HttpResponse, ApiError> {
    let id = id.0;
    let found = state.db.run(GetDiscovered { id: id.clone() }).await?.ok_or_else(|| not_found(&id))?;
    Ok(HttpResponse::Ok().json(found))
}

/// `POST /api/v1/discovered-certificates/{id}/claim`: an Unmanaged certificate becomes a managed
/// certificate with its names (due for issuance at once) and is marked Managed.
#[tracing::instrument(skip_all, fields(discovered_id = %id.0))]
pub async fn claim(
    state: web::Data<AppState>,
    actor: Actor,
    id: Id,
    body: ValidJson<ClaimRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = id.0;
    match state.engine.discovery().claim(&id, body.0, actor.0).await? {
        Triage::Claimed(discovered, certificate) => {
            Ok(HttpResponse::Ok().json(serde_json::json!({ "discovered": discovered, "certificate": certificate })))
        }
        Triage::Invalid(errors) => Err(ApiError::Validation(errors)),
        other => Err(refusal(&id, other, "claimed")),
    }
}

/// `POST /api/v1/discovered-certificates/{id}/dismiss`
#[tracing::instrument(skip_all, fields(discovered_id = %id.0))]
pub async fn dismiss(state: web::Data<AppState>, actor: Actor, id: Id) -> Result<HttpResponse, ApiError> {
    let id = id.0;
    match state.engine.discovery().dismiss(&id, actor.0).await? {
        Triage::Dismissed(updated) => Ok(HttpResponse::Ok().json(updated)),
        other => Err(refusal(&id, other, "dismissed")),
    }
}

/// The problem for a triage that did not happen.
fn refusal(id: &str, outcome: Triage, verb: &str) -> ApiError {
    match outcome {
        Triage::NotUnmanaged(status) => ApiError::Conflict(
            Conflict::WrongState,
            format!("discovered certificate {id} is {status}; only Unmanaged ones are {verb}"),
        ),
        Triage::ChangedMeanwhile(created) => ApiError::Conflict(
            Conflict::ChangedMeanwhile,
            match created {
                Some(created) => format!(
                    "discovered certificate {id} was triaged meanwhile; managed certificate {created} was created anyway"
                ),
                None => format!("discovered certificate {id} was triaged meanwhile"),
            },
        ),
        Triage::Invalid(errors) => ApiError::Validation(errors),
        _ => not_found(id),
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("no discovered certificate with id {id}"))
}
