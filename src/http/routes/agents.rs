//! `/api/v1/agents` for operators: registration (returns the agent's key once), the agent list,
//! one agent, and retirement. What agents themselves call is in [`super::agent_api`].

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use certctl_actors::agents::registry::{Registration, Retirement};
use certctl_actors::domain::agent::{NewAgent, AGENT_STATUSES};
use certctl_actors::etag_cache::Table;
use certctl_actors::queries::agents::{AgentFilters, GetAgent, ListAgents};
use certctl_actors::queries::certificate_list::{Sort, SortKey};

use crate::auth::{Admin, Caller};
use crate::http::actor::Actor;
use crate::http::cursor;
use crate::http::etag;
use crate::http::json::ValidJson;
use crate::http::paging::one_of;
use crate::http::path_id::Id;
use crate::http::problem::ApiError;
use crate::http::query::{ListQuery, Query, QueryFields};
use crate::http::AppState;

/// Oldest first, the order of the agent list and its cursors.
const ORDER: Sort = Sort { key: SortKey::CreatedAt, descending: false };

/// `POST /api/v1/agents`: the bootstrap token or an admin key registers an agent; the answer
/// carries its key, shown this once (only the key's hash is stored).
#[tracing::instrument(skip_all, fields(agent_id))]
pub async fn register(
    state: web::Data<AppState>,
    caller: Caller,
    actor: Actor,
    body: ValidJson<NewAgent>,
) -> Result<HttpResponse, ApiError> {
    if !caller.bootstrap && !caller.admin {
        return Err(ApiError::Forbidden(
            "registering an agent needs the agent bootstrap token (CERTCTL_AGENT_BOOTSTRAP_TOKEN) or an admin key"
                .into(),
        ));
    }
    let registered = match state.engine.agents().register(body.0, actor.0).await? {
        Registration::Done(registered) => registered,
        Registration::Invalid(errors) => return Err(ApiError::Validation(errors)),
    };
    let id = registered.agent.id.clone();
    tracing::Span::current().record("agent_id", id.as_str());
    tracing::info!(agent_id = %id, "agent registered");
    let mut body = serde_json::to_value(&registered.agent).map_err(|e| ApiError::Internal(e.into()))?;
    body["api_key"] = serde_json::Value::String(registered.api_key);
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/agents/{id}")))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(body))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    status: Option<String>,
    os: Option<String>,
    version: Option<String>,
}

impl QueryFields for ListParams {
    const FIELDS: &'static [&'static str] = &["status", "os", "version"];
}

/// `GET /api/v1/agents?status=&os=&version=&limit=&cursor=`
#[tracing::instrument(skip_all)]
pub async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    query: ListQuery<ListParams>,
) -> Result<HttpResponse, ApiError> {
    let (paging, p) = (query.paging, query.params);
    let status = one_of("status", p.status, &AGENT_STATUSES)?;
    let filters = AgentFilters { status, os: p.os, version: p.version };
    let query =
        ListAgents { filters, window: cursor::time_window(state.engine.cursors(), "/api/v1/agents", &paging, ORDER)? };
    etag::time_list(&req, &state, &caller, "/api/v1/agents", &[Table::Agents], &paging, ORDER, query).await
}

/// `GET /api/v1/agents/{id}`
#[tracing::instrument(skip_all, fields(agent_id = %id.0))]
pub async fn get(state: web::Data<AppState>, id: Id) -> Result<HttpResponse, ApiError> {
    let agent = state.db.run(GetAgent { id: id.0.clone() }).await?.ok_or_else(|| not_found(&id.0))?;
    Ok(HttpResponse::Ok().json(agent))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetireParams {
    reason: Option<String>,
}

impl QueryFields for RetireParams {
    const FIELDS: &'static [&'static str] = &["reason"];
}

/// `DELETE /api/v1/agents/{id}[?reason=]` (admin): retires the agent. Its key is refused from
/// now on (410), its open deployment jobs are cancelled, CSR jobs it held are freed.
#[tracing::instrument(skip_all, fields(agent_id = %id.0))]
pub async fn retire(
    state: web::Data<AppState>,
    _admin: Admin,
    actor: Actor,
    id: Id,
    params: Query<RetireParams>,
) -> Result<HttpResponse, ApiError> {
    let reason = params.0.reason.unwrap_or_default();
    match state.engine.agents().retire(&id.0, reason, actor.0).await? {
        Retirement::Done(agent, cancelled_jobs) => {
            tracing::info!(agent_id = %id.0, cancelled_jobs, "agent retired");
            let mut body = serde_json::to_value(&*agent).map_err(|e| ApiError::Internal(e.into()))?;
            body["cancelled_jobs"] = cancelled_jobs.into();
            Ok(HttpResponse::Ok().json(body))
        }
        Retirement::AlreadyRetired => Err(ApiError::Gone(format!("agent {} is already retired", id.0))),
        Retirement::NotFound => Err(not_found(&id.0)),
        Retirement::InvalidReason => {
            Err(ApiError::InvalidQuery("reason must be at most 500 characters, without control characters".into()))
        }
    }
}

/// No agent with this id.
pub(super) fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("no agent with id {id}"))
}
