//! `/api/v1/agents`: registration (returns the agent's key once), the agent list, one agent,
//! retirement, and the agent-facing endpoints: heartbeat, work, CSR, certificate pickup and job
//! status reports.
//!
//! Agent keys reach only their own agent's paths (checked by the auth middleware); an admin key
//! may act for any agent. Heartbeats never touch the database on the request path: they go into
//! the heartbeat aggregator's buffer, checked against the in-memory agent directory.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use certctl_actors::crypto::csr::verify_csr;
use certctl_actors::crypto::key_algorithm::{choose, KeyAlgorithm};
use certctl_actors::domain::agent::{HostInfo, NewAgent, AGENT_STATUSES};
use certctl_actors::domain::validation::{is_valid_id, FieldError, Violations};
use certctl_actors::queries::agent_work::{
    AgentCertificate, ClaimAgentWork, DeploymentReport, FindCsrJob, GetAgentJob, ReportDeployment, SubmitCsr,
};
use certctl_actors::queries::agents::{
    decode_hex32, AgentFilters, DirectoryEntry, GetAgent, ListAgents, RegisterAgent, RetireAgent, Retired,
};
use certctl_actors::queries::audit::{AuditRecord, InsertAuditEvent};
use certctl_actors::queries::certificate_list::{Sort, SortKey};
use certctl_actors::renewal::dispatcher::Wake;

use super::path_id;
use crate::auth::keys::{generate_agent_key, hash_key_hex};
use crate::auth::{Admin, Caller};
use crate::http::actor::Actor;
use crate::http::cursor;
use crate::http::etag;
use crate::http::json::{OptionalJson, ValidJson};
use crate::http::paging::{one_of, PageRequest};
use crate::http::problem::ApiError;
use crate::http::AppState;
use certctl_actors::etag_cache::Table;

/// Oldest first, the order of the agent list and its cursors.
const ORDER: Sort = Sort { key: SortKey::CreatedAt, descending: false };

/// Work items handed out per poll.
const WORK_PER_POLL: i64 = 50;

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
    let new = body.0;
    new.validate().map_err(ApiError::Validation)?;
    let id = new.id.clone().unwrap_or_else(|| format!("ag-{}", uuid::Uuid::now_v7().simple()));
    tracing::Span::current().record("agent_id", id.as_str());
    let key = generate_agent_key();
    let key_hash = hash_key_hex(&key);
    let agent = state
        .db
        .run(RegisterAgent {
            id: id.clone(),
            name: new.name,
            host: new.host,
            key_hash: key_hash.clone(),
            actor: actor.0,
        })
        .await?;
    if let Some(hash) = decode_hex32(&key_hash) {
        state.agents.directory.upsert([DirectoryEntry { id: id.clone(), key_hash: hash, retired: false }]);
    }
    tracing::info!(agent_id = %id, "agent registered");
    let mut body = serde_json::to_value(&agent).map_err(|e| ApiError::Internal(e.into()))?;
    body["api_key"] = serde_json::Value::String(key);
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/agents/{id}")))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(body))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    limit: Option<i64>,
    cursor: Option<String>,
    page: Option<i64>,
    per_page: Option<i64>,
    include_total: Option<bool>,
    status: Option<String>,
    os: Option<String>,
    version: Option<String>,
}

/// `GET /api/v1/agents?status=&os=&version=&limit=&cursor=`
#[tracing::instrument(skip_all)]
pub async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    params: web::Query<ListParams>,
) -> Result<HttpResponse, ApiError> {
    let p = params.into_inner();
    let paging = PageRequest::parse(p.limit, p.cursor, p.page, p.per_page, p.include_total)?;
    let status = one_of("status", p.status, &AGENT_STATUSES)?;
    let filters = AgentFilters { status, os: p.os, version: p.version };
    let query = ListAgents { filters, window: cursor::time_window(&paging, ORDER)? };
    etag::time_list(&req, &state, &caller, "/api/v1/agents", &[Table::Agents], &paging, ORDER, query).await
}

/// `GET /api/v1/agents/{id}`
#[tracing::instrument(skip_all, fields(agent_id))]
pub async fn get(state: web::Data<AppState>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let id = path_id(id.into_inner())?;
    tracing::Span::current().record("agent_id", id.as_str());
    let agent = state.db.run(GetAgent { id: id.clone() }).await?.ok_or_else(|| not_found(&id))?;
    Ok(HttpResponse::Ok().json(agent))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetireParams {
    reason: Option<String>,
}

/// `DELETE /api/v1/agents/{id}[?reason=]` (admin): retires the agent. Its key is refused from
/// now on (410), its open deployment jobs are cancelled, CSR jobs it held are freed.
#[tracing::instrument(skip_all, fields(agent_id))]
pub async fn retire(
    state: web::Data<AppState>,
    _admin: Admin,
    actor: Actor,
    id: web::Path<String>,
    params: web::Query<RetireParams>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(id.into_inner())?;
    tracing::Span::current().record("agent_id", id.as_str());
    let reason = params.into_inner().reason.unwrap_or_default();
    if reason.chars().count() > 500 || reason.chars().any(char::is_control) {
        return Err(ApiError::InvalidQuery("reason must be at most 500 characters, without control characters".into()));
    }
    match state.db.run(RetireAgent { id: id.clone(), reason, actor: actor.0 }).await? {
        Retired::Done(agent, cancelled_jobs) => {
            state.agents.directory.retire(&id);
            tracing::info!(agent_id = %id, cancelled_jobs, "agent retired");
            let mut body = serde_json::to_value(&*agent).map_err(|e| ApiError::Internal(e.into()))?;
            body["cancelled_jobs"] = cancelled_jobs.into();
            Ok(HttpResponse::Ok().json(body))
        }
        Retired::AlreadyRetired(_) => {
            state.agents.directory.retire(&id);
            Err(ApiError::Gone(format!("agent {id} is already retired")))
        }
        Retired::NotFound => Err(not_found(&id)),
    }
}

/// The agent a request acts as: the caller's own (checked by the middleware), or for an admin key
/// the agent in the path, which must exist and not be retired.
pub(super) fn acting_agent(state: &AppState, caller: &Caller, raw_id: String) -> Result<Arc<str>, ApiError> {
    let id = path_id(raw_id)?;
    if let Some(own) = caller.agent_id.as_ref().filter(|own| ***own == *id) {
        return Ok(own.clone());
    }
    // Only an admin acts for an agent: another key could otherwise get certificates issued for
    // keys it chose, or take an agent's work.
    if !caller.admin {
        return Err(ApiError::Forbidden(format!(
            "only agent {id}'s own key or an admin key may use its agent endpoints"
        )));
    }
    match state.agents.directory.by_id(&id) {
        Some(agent) if agent.retired => Err(ApiError::Gone(format!("agent {id} is retired"))),
        Some(agent) => Ok(agent.id),
        None => Err(not_found(&id)),
    }
}

/// `POST /api/v1/agents/{id}/heartbeat` (`{version, hostname, os, architecture, ip_address}`,
/// every field and the body itself optional): 204 at once; the beat is written within
/// `CERTCTL_HEARTBEAT_FLUSH_INTERVAL`. 503 with `Retry-After` when the buffer is full.
pub async fn heartbeat(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    body: OptionalJson<HostInfo>,
) -> Result<HttpResponse, ApiError> {
    let agent = acting_agent(&state, &caller, id.into_inner())?;
    let host = body.0.unwrap_or_default();
    let mut violations = Violations::default();
    host.check(&mut violations);
    violations.into_result().map_err(ApiError::Validation)?;
    tracing::debug!(agent_id = %agent, "heartbeat");
    state.agents.heartbeats.record(agent, chrono::Utc::now(), host).map_err(|_| ApiError::Unavailable {
        detail: "the heartbeat buffer is full while the database catches up; retry shortly".into(),
        retry_after_secs: 1,
    })?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /api/v1/agents/{id}/work`: the agent's due deployments (now Running, leased to it) and
/// the renewals waiting for its CSR (leased to it, so no other agent of the certificate makes a
/// key), as `{jobs, count}`.
#[tracing::instrument(skip_all, fields(agent_id))]
pub async fn work(state: web::Data<AppState>, caller: Caller, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let agent = acting_agent(&state, &caller, id.into_inner())?;
    tracing::Span::current().record("agent_id", &*agent);
    let query = ClaimAgentWork { agent_id: agent.to_string(), lease: state.agents.work_lease, limit: WORK_PER_POLL };
    let mut jobs = state.db.run(query).await?;
    for job in jobs.iter_mut().filter(|j| j.status == "AwaitingCSR") {
        job.key_algorithm = choose(&job.allowed_key_algorithms, KeyAlgorithm::EcdsaP256).map(|a| a.as_str().to_owned());
    }
    if !jobs.is_empty() {
        tracing::info!(agent_id = %agent, jobs = jobs.len(), "work handed to agent");
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({ "count": jobs.len(), "jobs": jobs })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsrSubmission {
    certificate_id: String,
    job_id: Option<String>,
    csr_pem: String,
}

/// `POST /api/v1/agents/{id}/csr` (`{certificate_id, job_id, csr_pem}`): checks the CSR (its
/// signature, its key type against the profile, its names against the certificate's) on a
/// blocking thread, stores it on the AwaitingCSR job and wakes the renewal dispatcher, which
/// issues. 202 with the job; fetch the chain from `/certificates/{certificate_id}`.
#[tracing::instrument(skip_all, fields(agent_id, certificate_id))]
pub async fn submit_csr(
    state: web::Data<AppState>,
    caller: Caller,
    actor: Actor,
    id: web::Path<String>,
    body: ValidJson<CsrSubmission>,
) -> Result<HttpResponse, ApiError> {
    let agent = acting_agent(&state, &caller, id.into_inner())?;
    let CsrSubmission { certificate_id, job_id, csr_pem } = body.0;
    let mut violations = Violations::default();
    violations.id("certificate_id", &certificate_id);
    if let Some(job_id) = &job_id {
        violations.id("job_id", job_id);
    }
    if csr_pem.len() > 64 * 1024 {
        violations.add("csr_pem", "must be at most 64 KiB");
    }
    violations.into_result().map_err(ApiError::Validation)?;
    tracing::Span::current().record("agent_id", &*agent).record("certificate_id", certificate_id.as_str());
    let find =
        FindCsrJob { agent_id: agent.to_string(), certificate_id: certificate_id.clone(), job_id: job_id.clone() };
    let target = state.db.run(find).await?.ok_or_else(|| {
        ApiError::NotFound(format!(
            "no issuance or renewal job{} of certificate {certificate_id} for a target of agent {agent}",
            job_id.as_deref().map(|j| format!(" {j}")).unwrap_or_default()
        ))
    })?;
    if target.status != "AwaitingCSR" {
        return Err(ApiError::Conflict(format!(
            "job {} is {}; a CSR is only accepted while it is AwaitingCSR",
            target.job_id, target.status
        )));
    }
    if target.leased_to_other {
        return Err(ApiError::Conflict(format!("job {} is leased to another agent", target.job_id)));
    }
    let pem = csr_pem.clone();
    let checked = web::block(move || {
        verify_csr(&pem).and_then(|csr| {
            csr.check_against(&target.common_name, &target.sans, &target.allowed_key_algorithms).map(|()| csr)
        })
    })
    .await
    .map_err(|e| ApiError::Internal(anyhow::anyhow!("the CSR check thread failed: {e}")))?;
    let csr = checked.map_err(|message| ApiError::Validation(vec![FieldError { field: "csr_pem".into(), message }]))?;
    let submit = SubmitCsr { agent_id: agent.to_string(), job_id: target.job_id.clone(), csr_pem, actor: actor.0 };
    let job = state.db.run(submit).await?.ok_or_else(|| {
        ApiError::Conflict(format!("job {} left AwaitingCSR or was leased to another agent meanwhile", target.job_id))
    })?;
    state.engine.dispatcher.do_send(Wake);
    tracing::info!(job_id = %job.id, key_algorithm = %csr.key_algorithm, "CSR accepted");
    Ok(HttpResponse::Accepted().json(job))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateParams {
    version_id: Option<String>,
}

/// `GET /api/v1/agents/{id}/certificates/{cert_id}[?version_id=]`: the newest issued version (or
/// the one named) of a certificate bound to one of the agent's targets, with its PEM chain, and the
/// private key when the server generated it (`CERTCTL_KEYGEN_MODE=server`; audited).
#[tracing::instrument(skip_all, fields(agent_id, certificate_id))]
pub async fn certificate(
    state: web::Data<AppState>,
    caller: Caller,
    actor: Actor,
    path: web::Path<(String, String)>,
    params: web::Query<CertificateParams>,
) -> Result<HttpResponse, ApiError> {
    let (id, certificate_id) = path.into_inner();
    let agent = acting_agent(&state, &caller, id)?;
    let certificate_id = path_id(certificate_id)?;
    let version_id = params.into_inner().version_id;
    if version_id.as_deref().is_some_and(|v| !is_valid_id(v)) {
        return Err(ApiError::InvalidQuery("version_id must be a version id such as cv-0193…".into()));
    }
    let query =
        AgentCertificate { agent_id: Some(agent.to_string()), certificate_id: certificate_id.clone(), version_id };
    let mut chain = state.db.run(query).await?.ok_or_else(|| {
        ApiError::NotFound(format!(
            "certificate {certificate_id} has no issued version for a target of agent {agent} (yet)"
        ))
    })?;
    // A server-generated key goes to the agents whose targets use the certificate, and every
    // hand-over is in the audit trail.
    if let Some(sealed) = chain.private_key_sealed.take() {
        let sealing = state.engine.sealing.clone();
        let opened = web::block(move || sealing.open(&sealed))
            .await
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("the unsealing thread failed: {e}")))?
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("a stored private key does not open: {e}")))?;
        let pem = String::from_utf8(opened)
            .map_err(|_| ApiError::Internal(anyhow::anyhow!("a stored private key is not PEM text")))?;
        let record = AuditRecord {
            actor: actor.0,
            action: "certificate.key_fetch".into(),
            resource_type: "certificate".into(),
            details: serde_json::json!({ "agent_id": &*agent, "version_id": chain.version_id }),
        };
        state.db.run(InsertAuditEvent { record, resource_id: certificate_id.clone() }).await?;
        tracing::info!(agent_id = %agent, certificate_id = %certificate_id, "server-generated key handed to agent");
        chain.private_key_pem = Some(pem);
    }
    Ok(HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "no-store")).json(chain))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusReport {
    status: String,
    #[serde(default)]
    error: String,
    /// SHA-256 of the installed leaf's DER, hex (colons allowed).
    fingerprint: Option<String>,
}

/// `POST /api/v1/agents/{id}/jobs/{job_id}/status` (`{status, error, fingerprint}`): ends one of
/// the agent's Running deployment jobs as Completed (with the deployed fingerprint, which must be
/// the version's) or Failed. Any other transition is a 409.
#[tracing::instrument(skip_all, fields(agent_id, job_id))]
pub async fn job_status(
    state: web::Data<AppState>,
    caller: Caller,
    actor: Actor,
    path: web::Path<(String, String)>,
    body: ValidJson<StatusReport>,
) -> Result<HttpResponse, ApiError> {
    let (id, job_id) = path.into_inner();
    let agent = acting_agent(&state, &caller, id)?;
    let job_id = path_id(job_id)?;
    let report = body.0;
    let completed = match report.status.as_str() {
        "Completed" => true,
        "Failed" => false,
        other => {
            return Err(ApiError::Validation(vec![FieldError {
                field: "status".into(),
                message: format!("must be Completed or Failed (got {other:?})"),
            }]))
        }
    };
    let mut violations = Violations::default();
    violations.optional_text("error", &report.error, 4000);
    let fingerprint = report.fingerprint.map(|f| f.replace(':', "").to_ascii_lowercase());
    match &fingerprint {
        Some(f) if f.len() != 64 || !f.bytes().all(|b| b.is_ascii_hexdigit()) => {
            violations.add("fingerprint", "must be a SHA-256 fingerprint: 64 hex digits")
        }
        None if completed => violations.add("fingerprint", "is required when reporting Completed"),
        _ => {}
    }
    violations.into_result().map_err(ApiError::Validation)?;
    let found = state.db.run(GetAgentJob { agent_id: agent.to_string(), job_id: job_id.clone() }).await?;
    let found = found.ok_or_else(|| ApiError::NotFound(format!("agent {agent} has no job {job_id}")))?;
    if found.job.job_type != "Deployment" || found.job.status != "Running" {
        return Err(ApiError::Conflict(format!(
            "job {job_id} is a {} job in status {}; agents report only on Running deployment jobs (Running → \
             Completed | Failed)",
            found.job.job_type, found.job.status
        )));
    }
    if let (true, Some(got), Some(expected)) = (completed, &fingerprint, &found.expected_fingerprint) {
        if !got.eq_ignore_ascii_case(expected) {
            return Err(ApiError::Validation(vec![FieldError {
                field: "fingerprint".into(),
                message: format!("the deployed certificate ({got}) is not the version this job installs ({expected})"),
            }]));
        }
    }
    let report = DeploymentReport {
        agent_id: agent.to_string(),
        job_id: job_id.clone(),
        attempts: found.job.attempts,
        completed,
        error: report.error,
        fingerprint,
        actor: actor.0,
    };
    let job = state.db.run(ReportDeployment { report }).await?.ok_or_else(|| {
        ApiError::Conflict(format!("job {job_id} is no longer Running under this attempt (its lease may have run out)"))
    })?;
    tracing::info!(job_id = %job.id, status = %job.status, "deployment reported");
    Ok(HttpResponse::Ok().json(job))
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("no agent with id {id}"))
}
