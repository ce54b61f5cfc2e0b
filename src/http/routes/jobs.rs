//! `/api/v1/jobs`: the job list (filters, newest first, keyset or offset pages), one job, and
//! cancel / retry.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use certctl_actors::domain::job::{JOB_STATUSES, JOB_TYPES};
use certctl_actors::queries::certificate_list::{Sort, SortKey};
use certctl_actors::queries::jobs::{CancelJob, GetJob, JobChange, JobFilters, ListJobs};

use crate::auth::Caller;
use crate::http::actor::Actor;
use crate::http::cursor;
use crate::http::etag;
use crate::http::paging::one_of;
use crate::http::path_id::Id;
use crate::http::problem::{ApiError, Conflict};
use crate::http::query::{ListQuery, QueryFields};
use crate::http::AppState;
use certctl_actors::etag_cache::Table;

/// Newest first, the order of the job list and its cursors.
const ORDER: Sort = Sort { key: SortKey::CreatedAt, descending: true };

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    status: Option<String>,
    #[serde(rename = "type")]
    job_type: Option<String>,
    certificate_id: Option<String>,
    agent_id: Option<String>,
}

impl QueryFields for ListParams {
    const FIELDS: &'static [&'static str] = &["status", "type", "certificate_id", "agent_id"];
}

/// `GET /api/v1/jobs?status=&type=&certificate_id=&agent_id=&limit=&cursor=`
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
#[tracing::instrument(skip_all, fields(job_id))]
pub async fn get(state: web::Data<AppState>, id: Id) -> Result<HttpResponse, ApiError> {
    let id = id.0;
    tracing::Span::current().record("job_id", id.as_str());
    let job = state.db.run(GetJob { id: id.clone() }).await?.ok_or_else(|| not_found(&id))?;
    Ok(HttpResponse::Ok().json(job))
}

/// `POST /api/v1/jobs/{id}/cancel`: Pending, awaiting, Running, or failed with a retry planned.
#[tracing::instrument(skip_all, fields(job_id))]
pub async fn cancel(state: web::Data<AppState>, actor: Actor, id: Id) -> Result<HttpResponse, ApiError> {
    let id = id.0;
    tracing::Span::current().record("job_id", id.as_str());
    match state.db.run(CancelJob { id: id.clone(), actor: actor.0 }).await? {
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
