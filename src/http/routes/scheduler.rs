//! `POST /api/v1/admin/scheduler/{loop}/run` (admin): runs one tick of a scheduler loop now and
//! answers with what it did, instead of waiting for the loop's timer.

use std::borrow::Cow;

use actix_web::{web, HttpResponse};
use certctl_actors::scheduler::loop_actor::TickOutcome;
use certctl_actors::scheduler::loops::LOOPS;
use serde::Serialize;
use utoipa::openapi::schema::{ObjectBuilder, Schema};
use utoipa::openapi::{RefOr, Type};

use crate::auth::Admin;
use crate::http::problem::{ApiError, Conflict, Problem};
use crate::http::AppState;

/// A scheduler loop's name, for the OpenAPI document.
pub struct LoopName;

impl utoipa::PartialSchema for LoopName {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new().schema_type(Type::String).enum_values(Some(LOOPS.iter().map(|(name, _)| *name))).into()
    }
}

impl utoipa::ToSchema for LoopName {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("SchedulerLoop")
    }
}

/// What one tick of a scheduler loop did.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TickReport {
    /// The loop's name.
    #[serde(rename = "loop")]
    #[schema(value_type = LoopName)]
    pub loop_name: String,
    /// The tick's own report: counts of what it did, by name (which depend on the loop).
    #[schema(value_type = Object)]
    pub result: serde_json::Value,
}

/// `POST /api/v1/admin/scheduler/{loop}/run` (admin).
#[utoipa::path(
    post,
    path = "/api/v1/admin/scheduler/{loop}/run",
    tag = "admin",
    operation_id = "runSchedulerLoop",
    params(("loop" = LoopName, Path, description = "The loop to run one tick of.")),
    responses(
        (status = 200, description = "The tick ran; what it did.", body = TickReport),
        (status = 403, description = "Not an admin key (`forbidden`).", content_type = "application/problem+json", body = Problem),
        (status = 404, description = "No scheduler loop has this name (`not-found`).", content_type = "application/problem+json", body = Problem),
        (status = 409, description = "Another replica leads this loop (`not-leader`), or a tick of it is running now \
            (`tick-running`).", content_type = "application/problem+json", body = Problem),
        (status = 503, description = "The tick failed (or the database is unavailable); retry after `Retry-After` \
            seconds (`service-unavailable`).", content_type = "application/problem+json", body = Problem,
            headers(("Retry-After" = i64, description = "Seconds to wait before trying again."))),
    )
)]
#[tracing::instrument(skip_all, fields(r#loop))]
pub async fn run(_admin: Admin, state: web::Data<AppState>, name: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let name = name.into_inner();
    tracing::Span::current().record("loop", name.as_str());
    let outcome = state.engine.scheduler().run_now(&name).await.ok_or_else(|| {
        let names: Vec<&str> = LOOPS.iter().map(|(n, _)| *n).collect();
        ApiError::NotFound(format!("no scheduler loop is named {name:?}; the loops are {}", names.join(", ")))
    })?;
    match outcome {
        TickOutcome::Completed(report) => Ok(HttpResponse::Ok().json(TickReport { loop_name: name, result: report })),
        TickOutcome::NotLeader => Err(ApiError::Conflict(
            Conflict::NotLeader,
            format!("another replica leads the {name} loop; run it there, or wait for its next tick"),
        )),
        TickOutcome::AlreadyRunning => {
            Err(ApiError::Conflict(Conflict::TickRunning, format!("a tick of the {name} loop is running now")))
        }
        TickOutcome::Failed(error) => {
            Err(ApiError::Unavailable { detail: format!("the {name} tick failed: {error}"), retry_after_secs: 5 })
        }
    }
}

/// This file's operations, for the OpenAPI document (`http::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(run))]
pub struct Doc;
