//! What agents call, under `/api/v1/agents/{id}/…`: heartbeat, work, CSR, certificate pickup and
//! deployment reports. Each handler decodes, makes one engine call and encodes its outcome.
//!
//! Agent keys reach only their own agent's paths (checked by the auth middleware); an admin key
//! may act for any agent that exists and is not retired. Heartbeats never touch the database on
//! the request path: they go into the heartbeat aggregator's buffer.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use certctl_actors::agents::work::{CsrOutcome, Pickup, ReportOutcome};
use certctl_actors::domain::agent::HostInfo;
use certctl_actors::domain::agent_work::{CsrSubmission, StatusReport};
use certctl_actors::domain::job::Job;
use certctl_actors::domain::validation::{FieldError, Violations};
use certctl_actors::queries::agent_work::{IssuedChain, WorkItem};

use super::agents::not_found;
use crate::auth::Caller;
use crate::http::actor::Actor;
use crate::http::json::{OptionalJson, ValidJson};
use crate::http::path_id::{CertId, Id, JobId};
use crate::http::problem::{ApiError, Conflict};
use crate::http::query::{Query, QueryFields};
use crate::http::AppState;

/// The agent a request acts as: the caller's own (checked by the middleware), or for an admin key
/// the agent in the path, which must exist and not be retired.
pub(super) fn acting_agent(state: &AppState, caller: &Caller, id: &Id) -> Result<Arc<str>, ApiError> {
    let id = &id.0;
    if let Some(own) = caller.agent_id.as_ref().filter(|own| ***own == **id) {
        return Ok(own.clone());
    }
    // Only an admin acts for an agent: another key could otherwise get certificates issued for
    // keys it chose, or take an agent's work.
    if !caller.admin {
        return Err(ApiError::Forbidden(format!(
            "only agent {id}'s own key or an admin key may use its agent endpoints"
        )));
    }
    match state.engine.agents().by_id(id) {
        Some(agent) if agent.retired => Err(ApiError::Gone(format!("agent {id} is retired"))),
        Some(agent) => Ok(agent.id),
        None => Err(not_found(id)),
    }
}

/// `POST /api/v1/agents/{id}/heartbeat` (`{version, hostname, os, architecture, ip_address}`,
/// every field and the body itself optional): 204 at once; the beat is written within
/// `CERTCTL_HEARTBEAT_FLUSH_INTERVAL`. 503 with `Retry-After` when the buffer is full.
#[utoipa::path(
    post,
    path = "/api/v1/agents/{id}/heartbeat",
    tag = "agent-api",
    operation_id = "agentHeartbeat",
    params(("id" = String, Path, description = "The agent's id.")),
    request_body(content = ref("#/components/schemas/HostInfo"),
        description = "What the agent says about its host; every field, and the body itself, may be left out (an absent field keeps the stored value).",
        content_type = "application/json"),
    responses(
        (status = 204, description = "Accepted; written within `CERTCTL_HEARTBEAT_FLUSH_INTERVAL`."),
        (status = 403, description = "Neither the agent's own key nor an admin key (`forbidden`).",
            content_type = "application/problem+json", body = crate::http::problem::Problem),
        (status = 410, description = "The agent is retired: its key, or an admin key acting for it, is refused (`gone`).",
            content_type = "application/problem+json", body = crate::http::problem::Problem),
        (status = 422, description = "Invalid host fields (`validation-failed`).", content_type = "application/problem+json", body = crate::http::problem::Problem),
        (status = 503, description = "The heartbeat buffer is full while the database catches up (`service-unavailable`); retry after `Retry-After` seconds.",
            content_type = "application/problem+json", body = crate::http::problem::Problem,
            headers(("Retry-After" = u32, description = "Seconds to wait before trying again."))),
    )
)]
pub async fn heartbeat(
    state: web::Data<AppState>,
    caller: Caller,
    id: Id,
    body: OptionalJson<HostInfo>,
) -> Result<HttpResponse, ApiError> {
    let agent = acting_agent(&state, &caller, &id)?;
    let host = body.0.unwrap_or_default();
    let mut violations = Violations::default();
    host.check(&mut violations);
    violations.into_result().map_err(ApiError::Validation)?;
    tracing::debug!(agent_id = %agent, "heartbeat");
    state.engine.heartbeats().record(agent, chrono::Utc::now(), host).map_err(|_| ApiError::Unavailable {
        detail: "the heartbeat buffer is full while the database catches up; retry shortly".into(),
        retry_after_secs: 1,
    })?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /api/v1/agents/{id}/work`: the agent's due deployments (now Running, leased to it) and
/// the renewals waiting for its CSR (leased to it, so no other agent of the certificate makes a
/// key), as `{jobs, count}`.
#[utoipa::path(
    get,
    path = "/api/v1/agents/{id}/work",
    tag = "agent-api",
    operation_id = "claimAgentWork",
    params(("id" = String, Path, description = "The agent's id.")),
    responses(
        (status = 200, description = "The work now leased to the agent (possibly none).", body = AgentWorkBatch),
        (status = 403, description = "Neither the agent's own key nor an admin key (`forbidden`).",
            content_type = "application/problem+json", body = crate::http::problem::Problem),
        (status = 410, description = "The agent is retired: its key, or an admin key acting for it, is refused (`gone`).",
            content_type = "application/problem+json", body = crate::http::problem::Problem),
    )
)]
#[tracing::instrument(skip_all, fields(agent_id = %id.0))]
pub async fn work(state: web::Data<AppState>, caller: Caller, id: Id) -> Result<HttpResponse, ApiError> {
    let agent = acting_agent(&state, &caller, &id)?;
    let jobs = state.engine.agent_work().claim(&agent).await?;
    if !jobs.is_empty() {
        tracing::info!(agent_id = %agent, jobs = jobs.len(), "work handed to agent");
    }
    Ok(HttpResponse::Ok().json(AgentWorkBatch { count: jobs.len(), jobs }))
}

/// `GET /api/v1/agents/{id}/work`'s answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AgentWorkBatch {
    /// How many items `jobs` holds.
    pub count: usize,
    /// The due deployments (now Running, leased to the agent) and the renewals waiting for its CSR.
    pub jobs: Vec<WorkItem>,
}

/// `POST /api/v1/agents/{id}/csr` (`{certificate_id, job_id, csr_pem}`): the CSR for the
/// certificate's AwaitingCSR job, checked and handed to the dispatcher, which issues. 202 with the
/// job; fetch the chain from `/certificates/{certificate_id}`.
#[utoipa::path(
    post,
    path = "/api/v1/agents/{id}/csr",
    tag = "agent-api",
    operation_id = "submitAgentCsr",
    params(("id" = String, Path, description = "The agent's id.")),
    request_body = CsrSubmission,
    responses(
        (status = 202, description = "Accepted: the job is Pending again and will be issued; fetch the chain from `/api/v1/agents/{id}/certificates/{certificate_id}`.",
            body = Job),
        (status = 403, description = "Neither the agent's own key nor an admin key (`forbidden`).",
            content_type = "application/problem+json", body = crate::http::problem::Problem),
        (status = 404, description = "No agent with this id (`not-found`).", content_type = "application/problem+json", body = crate::http::problem::Problem),
        (status = 409, description = "The job is not AwaitingCSR (`wrong-state`), another agent holds its lease (`leased-to-another-agent`), or it changed between the check and the write (`changed-meanwhile`).", content_type = "application/problem+json", body = crate::http::problem::Problem),
        (status = 410, description = "The agent is retired: its key, or an admin key acting for it, is refused (`gone`).",
            content_type = "application/problem+json", body = crate::http::problem::Problem),
        (status = 422, description = "Invalid fields; a `certificate_id`/`job_id` naming no issuance or renewal job of a certificate bound to this agent's targets; or a CSR that does not parse, is not self-signed correctly, or does not match the certificate's names or profile (`validation-failed`).", content_type = "application/problem+json", body = crate::http::problem::Problem),
    )
)]
#[tracing::instrument(skip_all, fields(agent_id = %id.0))]
pub async fn submit_csr(
    state: web::Data<AppState>,
    caller: Caller,
    actor: Actor,
    id: Id,
    body: ValidJson<CsrSubmission>,
) -> Result<HttpResponse, ApiError> {
    let agent = acting_agent(&state, &caller, &id)?;
    let (certificate_id, job_id) = (body.0.certificate_id.clone(), body.0.job_id.clone());
    match state.engine.agent_work().submit_csr(&agent, body.0, actor.0).await? {
        CsrOutcome::Accepted(job) => Ok(HttpResponse::Accepted().json(job)),
        CsrOutcome::Invalid(errors) => Err(ApiError::Validation(errors)),
        // The path's agent exists; what is missing is what the body names, so this is a request
        // that refers to nothing, answered like every other dangling reference in a body (422).
        CsrOutcome::NoJob => Err(ApiError::Validation(vec![FieldError {
            field: if job_id.is_some() { "job_id" } else { "certificate_id" }.to_string(),
            message: format!(
                "no issuance or renewal job{} of certificate {certificate_id} for a target of agent {agent}",
                job_id.as_deref().map(|j| format!(" {j}")).unwrap_or_default()
            ),
        }])),
        CsrOutcome::NotAwaitingCsr { job_id, status } => Err(ApiError::Conflict(
            Conflict::WrongState,
            format!("job {job_id} is {status}; a CSR is only accepted while it is AwaitingCSR"),
        )),
        CsrOutcome::LeasedToAnotherAgent { job_id } => {
            Err(ApiError::Conflict(Conflict::LeasedToAnotherAgent, format!("job {job_id} is leased to another agent")))
        }
        CsrOutcome::ChangedMeanwhile { job_id } => Err(ApiError::Conflict(
            Conflict::ChangedMeanwhile,
            format!("job {job_id} left AwaitingCSR or was leased to another agent meanwhile"),
        )),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateParams {
    version_id: Option<String>,
}

impl QueryFields for CertificateParams {
    const FIELDS: &'static [&'static str] = &["version_id"];
}

/// `GET /api/v1/agents/{id}/certificates/{cert_id}[?version_id=]`: the newest issued version (or
/// the one named) of a certificate bound to one of the agent's targets, with its PEM chain, and the
/// private key when the server generated it (`CERTCTL_KEYGEN_MODE=server`; audited).
#[utoipa::path(
    get,
    path = "/api/v1/agents/{id}/certificates/{cert_id}",
    tag = "agent-api",
    operation_id = "getAgentCertificate",
    params(
        ("id" = String, Path, description = "The agent's id."),
        ("cert_id" = String, Path, description = "The managed certificate's id."),
        ("version_id" = Option<String>, Query, description = "A version of the certificate; default the newest issued one."),
    ),
    responses(
        (status = 200, description = "The issued version with its PEM chain (and the server-generated key, if any).", body = IssuedChain,
            headers(("Cache-Control" = String, description = "`no-store`: the answer may carry a private key."))),
        (status = 403, description = "Neither the agent's own key nor an admin key (`forbidden`).",
            content_type = "application/problem+json", body = crate::http::problem::Problem),
        (status = 404, description = "The certificate is not bound to a target of this agent, has no issued version (yet), or not the one named (`not-found`).", content_type = "application/problem+json", body = crate::http::problem::Problem),
        (status = 410, description = "The agent is retired: its key, or an admin key acting for it, is refused (`gone`).",
            content_type = "application/problem+json", body = crate::http::problem::Problem),
    )
)]
#[tracing::instrument(skip_all, fields(agent_id = %id.0, certificate_id = %certificate_id.0))]
pub async fn certificate(
    state: web::Data<AppState>,
    caller: Caller,
    actor: Actor,
    id: Id,
    certificate_id: CertId,
    params: Query<CertificateParams>,
) -> Result<HttpResponse, ApiError> {
    let agent = acting_agent(&state, &caller, &id)?;
    let certificate_id = certificate_id.0;
    let version_id = params.0.version_id;
    match state.engine.agent_work().pick_up(&agent, &certificate_id, version_id, actor.0).await? {
        Pickup::Chain(chain) => Ok(HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "no-store")).json(chain)),
        Pickup::Invalid(errors) => Err(ApiError::InvalidQuery(
            errors.iter().map(|e| format!("{} {}", e.field, e.message)).collect::<Vec<_>>().join("; "),
        )),
        Pickup::NotIssued => Err(ApiError::NotFound(format!(
            "certificate {certificate_id} has no issued version for a target of agent {agent} (yet)"
        ))),
    }
}

/// `POST /api/v1/agents/{id}/jobs/{job_id}/status` (`{status, error, fingerprint}`): ends one of
/// the agent's Running deployment jobs as Completed (with the deployed fingerprint, which must be
/// the version's) or Failed. Any other transition is a 409.
#[utoipa::path(
    post,
    path = "/api/v1/agents/{id}/jobs/{job_id}/status",
    tag = "agent-api",
    operation_id = "reportAgentJobStatus",
    params(
        ("id" = String, Path, description = "The agent's id."),
        ("job_id" = String, Path, description = "The deployment job's id."),
    ),
    request_body = StatusReport,
    responses(
        (status = 200, description = "Recorded: the job as it now is (Completed or Failed).", body = Job),
        (status = 403, description = "Neither the agent's own key nor an admin key (`forbidden`).",
            content_type = "application/problem+json", body = crate::http::problem::Problem),
        (status = 404, description = "The agent has no job with this id (`not-found`).", content_type = "application/problem+json", body = crate::http::problem::Problem),
        (status = 409, description = "The job is not a Running deployment job (`wrong-state`), or is no longer Running under this attempt, its lease having run out (`changed-meanwhile`).", content_type = "application/problem+json", body = crate::http::problem::Problem),
        (status = 410, description = "The agent is retired: its key, or an admin key acting for it, is refused (`gone`).",
            content_type = "application/problem+json", body = crate::http::problem::Problem),
        (status = 422, description = "Invalid report: `status` not `Completed`/`Failed`, a fingerprint that is not SHA-256 hex or not the version's, or none with `Completed` (`validation-failed`).", content_type = "application/problem+json", body = crate::http::problem::Problem),
    )
)]
#[tracing::instrument(skip_all, fields(agent_id = %id.0, job_id = %job_id.0))]
pub async fn job_status(
    state: web::Data<AppState>,
    caller: Caller,
    actor: Actor,
    id: Id,
    job_id: JobId,
    body: ValidJson<StatusReport>,
) -> Result<HttpResponse, ApiError> {
    let agent = acting_agent(&state, &caller, &id)?;
    let job_id = job_id.0;
    match state.engine.agent_work().report_deployment(&agent, &job_id, body.0, actor.0).await? {
        ReportOutcome::Recorded(job) => Ok(HttpResponse::Ok().json(job)),
        ReportOutcome::Invalid(errors) => Err(ApiError::Validation(errors)),
        ReportOutcome::NoJob => Err(ApiError::NotFound(format!("agent {agent} has no job {job_id}"))),
        ReportOutcome::NotReportable { job_type, status } => Err(ApiError::Conflict(
            Conflict::WrongState,
            format!(
                "job {job_id} is a {job_type} job in status {status}; agents report only on Running deployment jobs \
                 (Running → Completed | Failed)"
            ),
        )),
        ReportOutcome::ChangedMeanwhile => Err(ApiError::Conflict(
            Conflict::ChangedMeanwhile,
            format!("job {job_id} is no longer Running under this attempt (its lease may have run out)"),
        )),
    }
}

/// This file's operations, for the OpenAPI document (`http::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(heartbeat, work, submit_csr, certificate, job_status),
    components(schemas(certctl_actors::domain::agent::HostInfo))
)]
pub struct Doc;
