//! `/api/v1/jobs`: the job list (filters, newest first, keyset or offset pages), one job, and
//! cancel / retry.

use std::borrow::Cow;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use utoipa::openapi::schema::{ObjectBuilder, Schema};
use utoipa::openapi::{RefOr, Type};

use certctl_actors::domain::job::{Job, JOB_STATUSES, JOB_TYPES};
use certctl_actors::queries::certificate_list::{Sort, SortKey};
use certctl_actors::queries::jobs::{CancelJob, GetJob, JobChange, JobFilters, ListJobs};

use crate::auth::Caller;
use crate::http::actor::Actor;
use crate::http::cursor;
use crate::http::etag;
use crate::http::paging::PagingParams;
use crate::http::paging::{one_of, Page};
use crate::http::path_id::Id;
use crate::http::problem::{ApiError, Conflict, Problem};
use crate::http::query::{ListQuery, QueryFields};
use crate::http::AppState;
use certctl_actors::etag_cache::Table;

/// Newest first, the order of the job list and its cursors.
const ORDER: Sort = Sort { key: SortKey::CreatedAt, descending: true };

/// A job status, for the OpenAPI document.
pub struct JobStatusName;

impl utoipa::PartialSchema for JobStatusName {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new().schema_type(Type::String).enum_values(Some(JOB_STATUSES)).into()
    }
}

impl utoipa::ToSchema for JobStatusName {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("JobStatus")
    }
}

/// A job type, for the OpenAPI document.
pub struct JobTypeName;

impl utoipa::PartialSchema for JobTypeName {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new().schema_type(Type::String).enum_values(Some(JOB_TYPES)).into()
    }
}

impl utoipa::ToSchema for JobTypeName {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("JobType")
    }
}

/// The job list's filters (each an exact match).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Only jobs in this status.
    #[param(inline, value_type = Option<JobStatusName>)]
    status: Option<String>,
    /// Only jobs of this type.
    #[serde(rename = "type")]
    #[param(inline, value_type = Option<JobTypeName>)]
    job_type: Option<String>,
    /// Only jobs of this certificate.
    certificate_id: Option<String>,
    /// Only jobs of this agent.
    agent_id: Option<String>,
}

impl QueryFields for ListParams {
    const FIELDS: &'static [&'static str] = &["status", "type", "certificate_id", "agent_id"];
}

/// `GET /api/v1/jobs?status=&type=&certificate_id=&agent_id=&limit=&cursor=`
#[utoipa::path(
    get,
    path = "/api/v1/jobs",
    tag = "jobs",
    operation_id = "listJobs",
    params(
        PagingParams,
        ListParams,
    ),
    responses(
        (status = 200, description = "A page of jobs, newest first (keyset: `data`, `next_cursor`, `limit`[, `total`]; \
            offset: `data`, `total`, `page`, `per_page`).", body = Page<Job>),
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
    let filters = JobFilters {
        status: one_of("status", p.status, &JOB_STATUSES)?,
        job_type: one_of("type", p.job_type, &JOB_TYPES)?,
        certificate_id: p.certificate_id,
        agent_id: p.agent_id,
    };
    let query =
        ListJobs { filters, window: cursor::time_window(state.engine.cursors(), "/api/v1/jobs", &paging, ORDER)? };
    etag::time_list(&req, &state, &caller, "/api/v1/jobs", &[Table::Jobs], &paging, ORDER, query).await
}

/// `GET /api/v1/jobs/{id}`
#[utoipa::path(
    get,
    path = "/api/v1/jobs/{id}",
    tag = "jobs",
    operation_id = "getJob",
    params(("id" = String, Path, description = "The job's id.")),
    responses(
        (status = 200, description = "The job.", body = Job),
        (status = 404, description = "No job has this id (`not-found`).", content_type = "application/problem+json", body = Problem),
    )
)]
#[tracing::instrument(skip_all, fields(job_id))]
pub async fn get(state: web::Data<AppState>, id: Id) -> Result<HttpResponse, ApiError> {
    let id = id.0;
    tracing::Span::current().record("job_id", id.as_str());
    let job = state.db().run(GetJob { id: id.clone() }).await?.ok_or_else(|| not_found(&id))?;
    Ok(HttpResponse::Ok().json(job))
}

/// `POST /api/v1/jobs/{id}/cancel`: Pending, awaiting, Running, or failed with a retry planned.
#[utoipa::path(
    post,
    path = "/api/v1/jobs/{id}/cancel",
    tag = "jobs",
    operation_id = "cancelJob",
    params(("id" = String, Path, description = "The job's id.")),
    responses(
        (status = 200, description = "The job, now `Cancelled`.", body = Job),
        (status = 404, description = "No job has this id (`not-found`).", content_type = "application/problem+json", body = Problem),
        (status = 409, description = "The job cannot be cancelled in its status: only Pending, AwaitingCSR, \
            AwaitingApproval, Running, or Failed jobs with a retry planned can (`wrong-state`).", content_type = "application/problem+json", body = Problem),
    )
)]
#[tracing::instrument(skip_all, fields(job_id))]
pub async fn cancel(state: web::Data<AppState>, actor: Actor, id: Id) -> Result<HttpResponse, ApiError> {
    let id = id.0;
    tracing::Span::current().record("job_id", id.as_str());
    match state.db().run(CancelJob { id: id.clone(), actor: actor.0 }).await? {
        JobChange::Changed(job) => Ok(HttpResponse::Ok().json(job)),
        JobChange::NotFound => Err(not_found(&id)),
        JobChange::WrongStatus(status) => Err(ApiError::Conflict(
            Conflict::WrongState,
            format!(
            "job {id} is {status}; only Pending, AwaitingCSR, AwaitingApproval, Running, or Failed jobs with a retry \
             planned can be cancelled"
        ),
        )),
        JobChange::AlreadyActive | JobChange::CertificateClosed(_) => {
            Err(ApiError::Conflict(Conflict::WrongState, format!("job {id} cannot be cancelled now")))
        }
    }
}

/// `POST /api/v1/jobs/{id}/retry`: a Failed or Cancelled issuance or renewal, queued again now.
#[utoipa::path(
    post,
    path = "/api/v1/jobs/{id}/retry",
    tag = "jobs",
    operation_id = "retryJob",
    params(("id" = String, Path, description = "The job's id.")),
    responses(
        (status = 200, description = "The job, queued again (`Pending`).", body = Job),
        (status = 404, description = "No job has this id (`not-found`).", content_type = "application/problem+json", body = Problem),
        (status = 409, description = "Only Failed or Cancelled issuance and renewal jobs can be retried, and not once \
            their certificate is archived or revoked (`wrong-state`); or the certificate already has an active \
            issuance or renewal (`renewal-active`).", content_type = "application/problem+json", body = Problem),
    )
)]
#[tracing::instrument(skip_all, fields(job_id))]
pub async fn retry(state: web::Data<AppState>, actor: Actor, id: Id) -> Result<HttpResponse, ApiError> {
    let id = id.0;
    tracing::Span::current().record("job_id", id.as_str());
    match state.engine.renewals().retry_job(&id, actor.0).await? {
        JobChange::Changed(job) => Ok(HttpResponse::Ok().json(job)),
        JobChange::NotFound => Err(not_found(&id)),
        JobChange::WrongStatus(status) => Err(ApiError::Conflict(
            Conflict::WrongState,
            format!("job {id} is {status}; only Failed or Cancelled issuance and renewal jobs can be retried"),
        )),
        JobChange::AlreadyActive => Err(ApiError::Conflict(
            Conflict::RenewalActive,
            format!("the certificate of job {id} already has an active issuance or renewal; retry that one instead"),
        )),
        JobChange::CertificateClosed(status) => Err(ApiError::Conflict(
            Conflict::WrongState,
            format!("the certificate of job {id} is {status}; it is not renewed any more"),
        )),
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("no job with id {id}"))
}

/// This file's operations, for the OpenAPI document (`http::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(list, get, cancel, retry))]
pub struct Doc;
