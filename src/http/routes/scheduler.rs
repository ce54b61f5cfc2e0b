//! `POST /api/v1/admin/scheduler/{loop}/run` (admin): runs one tick of a scheduler loop now and
//! answers with what it did, instead of waiting for the loop's timer.

use actix_web::{web, HttpResponse};
use certctl_actors::scheduler::loop_actor::TickOutcome;
use certctl_actors::scheduler::loops::LOOPS;
use serde_json::json;

use crate::auth::Admin;
use crate::http::problem::{ApiError, Conflict};
use crate::http::AppState;

#[tracing::instrument(skip_all, fields(r#loop))]
pub async fn run(_admin: Admin, state: web::Data<AppState>, name: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let name = name.into_inner();
    tracing::Span::current().record("loop", name.as_str());
    let outcome = state.engine.scheduler().run_now(&name).await.ok_or_else(|| {
        let names: Vec<&str> = LOOPS.iter().map(|(n, _)| *n).collect();
        ApiError::NotFound(format!("no scheduler loop is named {name:?}; the loops are {}", names.join(", ")))
    })?;
    match outcome {
        TickOutcome::Completed(report) => Ok(HttpResponse::Ok().json(json!({ "loop": name, "result": report }))),
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
