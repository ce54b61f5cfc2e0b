//! Discovery: agents report the certificates they find on disk
//! (`POST /api/v1/agents/{id}/discoveries`), operators triage them under
//! `/api/v1/discovered-certificates` (list with filters, get, claim into a managed certificate,
//! dismiss).

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use certctl_actors::discovery::{ClaimRequest, Triage};
use certctl_actors::domain::certificate::Certificate;
use certctl_actors::domain::discovery::{DiscoveredCertificate, DiscoveryReport, DISCOVERY_STATUSES};
use certctl_actors::queries::certificate_list::{Sort, SortKey};
use certctl_actors::queries::discovery::{DiscoveryFilters, GetDiscovered, ListDiscovered, ScanRecorded};

use crate::auth::Caller;
use crate::http::actor::Actor;
use crate::http::cursor;
use crate::http::etag;
use crate::http::json::ValidJson;
use crate::http::paging::PagingParams;
use crate::http::paging::{one_of, rfc3339, Page};
use crate::http::path_id::Id;
use crate::http::problem::{checked, ApiError, Conflict};
use crate::http::query::{ListQuery, QueryFields};
use crate::http::AppState;
use certctl_actors::etag_cache::Table;

/// Oldest first, the order of the list and its cursors.
const ORDER: Sort = Sort { key: SortKey::CreatedAt, descending: false };

/// `POST /api/v1/agents/{id}/discoveries`: one scan's findings, upserted in one statement.
#[utoipa::path(
    post,
    path = "/api/v1/agents/{id}/discoveries",
    tags = ["agent-api", "discovery"],
    operation_id = "reportDiscoveries",
    params(("id" = String, Path, description = "The agent's id.")),
    request_body = DiscoveryReport,
    responses(
        (status = 201, description = "Recorded: the scan's id and counts.", body = ScanRecorded),
        (status = 403, description = "Neither the agent's own key nor an admin key (`forbidden`).", content_type = "application/problem+json", body = crate::http::problem::Problem),
        (status = 410, description = "The agent is retired: its key, or an admin key acting for it, is refused (`gone`).", content_type = "application/problem+json", body = crate::http::problem::Problem),
        (status = 422, description = "Invalid report: too many certificates or directories, a fingerprint that is not 64 hex digits, an unknown `source_format`… (`validation-failed`).", content_type = "application/problem+json", body = crate::http::problem::Problem),
    )
)]
#[tracing::instrument(skip_all, fields(agent_id))]
pub async fn report(
    state: web::Data<AppState>,
    caller: Caller,
    id: Id,
    body: ValidJson<DiscoveryReport>,
) -> Result<HttpResponse, ApiError> {
    let agent = super::agent_api::acting_agent(&state, &caller, &id)?;
    tracing::Span::current().record("agent_id", &*agent);
    let recorded = checked(state.engine.discovery().record_scan(&agent, body.0).await?)?;
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
#[utoipa::path(
    get,
    path = "/api/v1/discovered-certificates",
    tag = "discovery",
    operation_id = "listDiscoveredCertificates",
    params(
        ("agent_id" = Option<String>, Query, description = "Only certificates this agent found."),
        ("status" = Option<String>, Query, description = "Only certificates in this status: `Unmanaged`, `Managed` or `Dismissed`.",
            pattern = "^(Unmanaged|Managed|Dismissed)$"),
        ("expiring_before" = Option<String>, Query, format = DateTime, description = "Only certificates whose `not_after` is before this RFC 3339 time."),
        PagingParams,
    ),
    responses(
        (status = 200, description = "A page of discovered certificates, oldest first.", body = Page<DiscoveredCertificate>),
    )
)]
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
#[utoipa::path(
    get,
    path = "/api/v1/discovered-certificates/{id}",
    tag = "discovery",
    operation_id = "getDiscoveredCertificate",
    params(("id" = String, Path, description = "The discovered certificate's id.")),
    responses((status = 200, description = "The discovered certificate.", body = DiscoveredCertificate))
)]
pub async fn get(state: web::Data<AppState>, id: Id) -> Result<HttpResponse, ApiError> {
    let id = id.0;
    let found = state.db().run(GetDiscovered { id: id.clone() }).await?.ok_or_else(|| not_found(&id))?;
    Ok(HttpResponse::Ok().json(found))
}

/// `POST /api/v1/discovered-certificates/{id}/claim`: an Unmanaged certificate becomes a managed
/// certificate with its names (due for issuance at once) and is marked Managed.
#[utoipa::path(
    post,
    path = "/api/v1/discovered-certificates/{id}/claim",
    tag = "discovery",
    operation_id = "claimDiscoveredCertificate",
    params(("id" = String, Path, description = "The discovered certificate's id.")),
    request_body = ClaimRequest,
    responses(
        (status = 200, description = "Claimed: the discovered certificate (now Managed) and the managed certificate made of it.",
            body = ClaimedCertificate),
        (status = 409, description = "Not Unmanaged (`wrong-state`); triaged by someone else meanwhile (`changed-meanwhile`, the managed certificate was created anyway); or the managed certificate's id or name is taken (`already-exists`).", content_type = "application/problem+json", body = crate::http::problem::Problem),
        (status = 422, description = "Invalid fields, or a reference to something missing (`validation-failed`).", content_type = "application/problem+json", body = crate::http::problem::Problem),
    )
)]
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
            Ok(HttpResponse::Ok().json(ClaimedCertificate { discovered: *discovered, certificate: *certificate }))
        }
        Triage::Invalid(errors) => Err(ApiError::Validation(errors)),
        other => Err(refusal(&id, other, "claimed")),
    }
}

/// `POST /api/v1/discovered-certificates/{id}/claim`'s answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ClaimedCertificate {
    /// The discovered certificate, now Managed, naming the managed one.
    pub discovered: DiscoveredCertificate,
    /// The managed certificate made of it, due for issuance at once.
    pub certificate: Certificate,
}

/// `POST /api/v1/discovered-certificates/{id}/dismiss`
#[utoipa::path(
    post,
    path = "/api/v1/discovered-certificates/{id}/dismiss",
    tag = "discovery",
    operation_id = "dismissDiscoveredCertificate",
    params(("id" = String, Path, description = "The discovered certificate's id.")),
    responses(
        (status = 200, description = "Dismissed: the discovered certificate as it now is.", body = DiscoveredCertificate),
        (status = 409, description = "Not Unmanaged (`wrong-state`).", content_type = "application/problem+json", body = crate::http::problem::Problem),
    )
)]
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

/// This file's operations, for the OpenAPI document (`http::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(report, list, get, claim, dismiss))]
pub struct Doc;
