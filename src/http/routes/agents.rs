//! `/api/v1/agents` for operators: registration (returns the agent's key once), the agent list,
//! one agent, and retirement. What agents themselves call is in [`super::agent_api`].

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use certctl_actors::agents::registry::{Registered, Registration, Retirement};
use certctl_actors::domain::agent::{Agent, NewAgent, AGENT_STATUSES};
use certctl_actors::etag_cache::Table;
use certctl_actors::queries::agents::{AgentFilters, GetAgent, ListAgents};
use certctl_actors::queries::certificate_list::{Sort, SortKey};

use crate::auth::{Admin, Caller};
use crate::http::actor::Actor;
use crate::http::cursor;
use crate::http::etag;
use crate::http::json::ValidJson;
use crate::http::paging::PagingParams;
use crate::http::paging::{one_of, Page};
use crate::http::path_id::Id;
use crate::http::problem::ApiError;
use crate::http::query::{ListQuery, Query, QueryFields};
use crate::http::AppState;

/// Oldest first, the order of the agent list and its cursors.
const ORDER: Sort = Sort { key: SortKey::CreatedAt, descending: false };

/// `POST /api/v1/agents`'s answer: the agent, and its key, shown this once.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RegisteredAgent {
    #[serde(flatten)]
    pub agent: Agent,
    /// The agent's key (`cctl_agent_…`), shown this once: only its SHA-256 is stored.
    #[schema(example = "cctl_agent_0123456789abcdef")]
    pub api_key: String,
}

/// `DELETE /api/v1/agents/{id}`'s answer: the agent as retired, and what it cancelled.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RetiredAgent {
    #[serde(flatten)]
    pub agent: Agent,
    /// How many of the agent's open deployment jobs were cancelled.
    pub cancelled_jobs: i64,
}

/// `POST /api/v1/agents`: the bootstrap token or an admin key registers an agent; the answer
/// carries its key, shown this once (only the key's hash is stored).
#[utoipa::path(
    post,
    path = "/api/v1/agents",
    tag = "agents",
    operation_id = "registerAgent",
    request_body = NewAgent,
    responses(
        (status = 201, description = "Registered; the answer carries the agent's key, shown this once.", body = RegisteredAgent,
            headers(
                ("Location" = String, description = "The agent's path, `/api/v1/agents/{id}`."),
                ("Cache-Control" = String, description = "`no-store`: the answer carries a key."),
            )),
        (status = 403, description = "Neither the agent bootstrap token (`CERTCTL_AGENT_BOOTSTRAP_TOKEN`) nor an admin key (`forbidden`).",
            content_type = "application/problem+json", body = crate::http::problem::Problem),
        (status = 409, description = "An agent with this id exists (`already-exists`).",
            content_type = "application/problem+json", body = crate::http::problem::Problem),
        (status = 422, description = "Invalid fields (`validation-failed`).",
            content_type = "application/problem+json", body = crate::http::problem::Problem),
    )
)]
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
    let Registered { agent, api_key } = *registered;
    let id = agent.id.clone();
    tracing::Span::current().record("agent_id", id.as_str());
    tracing::info!(agent_id = %id, "agent registered");
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/agents/{id}")))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(RegisteredAgent { agent, api_key }))
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
#[utoipa::path(
    get,
    path = "/api/v1/agents",
    tag = "agents",
    operation_id = "listAgents",
    params(
        ("status" = Option<String>, Query, description = "Only agents in this status: `Online`, `Offline` or `Retired`.",
            pattern = "^(Online|Offline|Retired)$"),
        ("os" = Option<String>, Query, description = "Only agents on this operating system (exact match)."),
        ("version" = Option<String>, Query, description = "Only agents of this version (exact match)."),
        PagingParams,
    ),
    responses(
        (status = 200, description = "A page of agents, oldest first.", body = Page<Agent>),
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
    let status = one_of("status", p.status, &AGENT_STATUSES)?;
    let filters = AgentFilters { status, os: p.os, version: p.version };
    let query =
        ListAgents { filters, window: cursor::time_window(state.engine.cursors(), "/api/v1/agents", &paging, ORDER)? };
    etag::time_list(&req, &state, &caller, "/api/v1/agents", &[Table::Agents], &paging, ORDER, query).await
}

/// `GET /api/v1/agents/{id}`
#[utoipa::path(
    get,
    path = "/api/v1/agents/{id}",
    tag = "agents",
    operation_id = "getAgent",
    params(("id" = String, Path, description = "The agent's id.")),
    responses((status = 200, description = "The agent.", body = Agent))
)]
#[tracing::instrument(skip_all, fields(agent_id = %id.0))]
pub async fn get(state: web::Data<AppState>, id: Id) -> Result<HttpResponse, ApiError> {
    let agent = state.db().run(GetAgent { id: id.0.clone() }).await?.ok_or_else(|| not_found(&id.0))?;
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
#[utoipa::path(
    delete,
    path = "/api/v1/agents/{id}",
    tag = "agents",
    operation_id = "retireAgent",
    params(
        ("id" = String, Path, description = "The agent's id."),
        ("reason" = Option<String>, Query, max_length = 500, description = "Why it is retired (at most 500 characters, no control characters); kept as `retired_reason`."),
    ),
    responses(
        (status = 200, description = "Retired: its key is refused from now on, its open deployment jobs are cancelled, the CSR jobs it held are freed.",
            body = RetiredAgent),
        (status = 403, description = "Not an admin key; an agent cannot retire itself (`forbidden`).",
            content_type = "application/problem+json", body = crate::http::problem::Problem),
        (status = 410, description = "The agent is already retired (`gone`).",
            content_type = "application/problem+json", body = crate::http::problem::Problem),
    )
)]
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
            Ok(HttpResponse::Ok().json(RetiredAgent { agent: *agent, cancelled_jobs }))
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

/// This file's operations, for the OpenAPI document (`http::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(register, list, get, retire), modifiers(&ClosedNewAgent))]
pub struct Doc;

/// Writes the `NewAgent` schema as one closed object. utoipa renders its flattened host fields
/// as `allOf: [HostInfo, {id, name}]`, and `HostInfo`, closed by its `deny_unknown_fields`,
/// forbids `name`, which the other part requires: no body could match. The body's fields are
/// the two parts' properties side by side, and nothing else (serde refuses any other).
struct ClosedNewAgent;

impl utoipa::Modify for ClosedNewAgent {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Schema, Type};
        use utoipa::openapi::RefOr;

        let Some(components) = doc.components.as_mut() else { return };
        let Some(RefOr::T(Schema::AllOf(all_of))) = components.schemas.get("NewAgent") else { return };
        let mut object = ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(all_of.description.clone())
            .additional_properties(Some(AdditionalProperties::FreeForm(false)));
        for item in &all_of.items {
            let part = match item {
                RefOr::Ref(reference) => {
                    let name = reference.ref_location.rsplit('/').next().unwrap_or_default();
                    components.schemas.get(name)
                }
                part => Some(part),
            };
            let Some(RefOr::T(Schema::Object(part))) = part else { return };
            for (name, property) in &part.properties {
                object = object.property(name, property.clone());
            }
            for name in &part.required {
                object = object.required(name);
            }
        }
        components.schemas.insert("NewAgent".into(), RefOr::T(Schema::Object(object.build())));
    }
}
