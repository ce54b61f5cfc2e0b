//! Discovery: agents report the certificates they find on disk
//! (`POST /api/v1/agents/{id}/discoveries`), operators triage them under
//! `/api/v1/discovered-certificates` (list with filters, get, claim into a managed certificate,
//! dismiss).

use std::collections::BTreeMap;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use certctl_actors::domain::certificate::NewCertificate;
use certctl_actors::domain::discovery::{DiscoveryReport, DISCOVERY_STATUSES};
use certctl_actors::queries::certificate_list::{Sort, SortKey};
use certctl_actors::queries::certificates::CreateCertificate;
use certctl_actors::queries::discovery::{
    DiscoveryFilters, GetDiscovered, ListDiscovered, RecordDiscoveryScan, TriageDiscovered,
};

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

/// What claiming needs besides the discovered names: where the managed certificate belongs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimBody {
    id: Option<String>,
    /// Default: the discovered common name.
    name: Option<String>,
    #[serde(default)]
    environment: String,
    owner_id: String,
    team_id: String,
    issuer_id: String,
    renewal_policy_id: String,
    certificate_profile_id: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    #[serde(default)]
    target_ids: Vec<String>,
}

/// `POST /api/v1/discovered-certificates/{id}/claim`: an Unmanaged certificate becomes a managed
/// certificate with its names (due for issuance at once) and is marked Managed.
#[tracing::instrument(skip_all, fields(discovered_id))]
pub async fn claim(
    state: web::Data<AppState>,
    actor: Actor,
    id: Id,
    body: ValidJson<ClaimBody>,
) -> Result<HttpResponse, ApiError> {
    let id = id.0;
    let found = state.db.run(GetDiscovered { id: id.clone() }).await?.ok_or_else(|| not_found(&id))?;
    if found.status != "Unmanaged" {
        return Err(ApiError::Conflict(
            Conflict::WrongState,
            format!("discovered certificate {id} is {}; only Unmanaged ones are claimed", found.status),
        ));
    }
    let b = body.0;
    let common_name = if found.common_name.is_empty() {
        found.sans.first().cloned().unwrap_or_default()
    } else {
        found.common_name.clone()
    };
    let mut new = NewCertificate {
        id: b.id,
        name: b.name.unwrap_or_else(|| common_name.clone()),
        common_name,
        sans: found.sans.clone(),
        environment: b.environment,
        owner_id: b.owner_id,
        team_id: b.team_id,
        issuer_id: b.issuer_id,
        renewal_policy_id: b.renewal_policy_id,
        certificate_profile_id: b.certificate_profile_id,
        tags: b.tags,
        target_ids: b.target_ids,
    };
    new.normalize();
    new.validate(&state.environments).map_err(ApiError::Validation)?;
    let created = state.engine.certificates().create(CreateCertificate { new, actor: actor.0.clone() }).await?;
    let triaged = TriageDiscovered { id: id.clone(), managed_certificate_id: Some(created.id.clone()), actor: actor.0 };
    let updated = state.db.run(triaged).await?.ok_or_else(|| {
        ApiError::Conflict(
            Conflict::ChangedMeanwhile,
            format!(
                "discovered certificate {id} was triaged meanwhile; managed certificate {} was created anyway",
                created.id
            ),
        )
    })?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "discovered": updated, "certificate": created })))
}

/// `POST /api/v1/discovered-certificates/{id}/dismiss`
pub async fn dismiss(state: web::Data<AppState>, actor: Actor, id: Id) -> Result<HttpResponse, ApiError> {
    let id = id.0;
    match state.db.run(TriageDiscovered { id: id.clone(), managed_certificate_id: None, actor: actor.0 }).await? {
        Some(updated) => Ok(HttpResponse::Ok().json(updated)),
        None => match state.db.run(GetDiscovered { id: id.clone() }).await? {
            Some(found) => Err(ApiError::Conflict(
                Conflict::WrongState,
                format!("discovered certificate {id} is {}; only Unmanaged ones are dismissed", found.status),
            )),
            None => Err(not_found(&id)),
        },
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("no discovered certificate with id {id}"))
}
