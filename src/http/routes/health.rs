//! Liveness and readiness.

use actix_web::{web, HttpResponse};

use certctl_actors::queries::health::SchemaVersion;

use crate::http::problem::ApiError;
use crate::http::AppState;

/// `GET /health`: the process is up and serving (no dependencies checked).
#[utoipa::path(
    get,
    path = "/health",
    tag = "health",
    operation_id = "getHealth",
    responses((status = 200, description = "The process is serving.", body = Status))
)]
#[tracing::instrument(skip_all)]
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(Status { status: "healthy" })
}

/// `GET /ready`: the database answers and its schema is the one this build expects; 503 problem
/// otherwise, so a load balancer stops sending traffic until it is.
#[utoipa::path(
    get,
    path = "/ready",
    tag = "health",
    operation_id = "getReady",
    responses(
        (status = 200, description = "The database answers at the schema this build needs.", body = Readiness),
        (status = 503, description = "The database is unreachable, too slow (2 s) or not yet migrated (`service-unavailable`).",
            content_type = "application/problem+json", body = crate::http::problem::Problem,
            headers(("Retry-After" = u32, description = "Seconds to wait."))),
    )
)]
#[tracing::instrument(skip_all)]
pub async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    // Load-balancer probes give up after a second or two; answer before they do.
    let probe = tokio::time::timeout(std::time::Duration::from_secs(2), state.db().run(SchemaVersion)).await;
    let probe = probe.unwrap_or(Err(certctl_actors::DbError::unavailable("the readiness query timed out")));
    let version = probe.map_err(|e| match ApiError::from(e) {
        ApiError::Unavailable { detail, retry_after_secs } => ApiError::Unavailable { detail, retry_after_secs },
        other => ApiError::Unavailable { detail: format!("readiness check failed: {other}"), retry_after_secs: 2 },
    })?;
    if version < state.expected_schema_version {
        return Err(ApiError::Unavailable {
            detail: format!(
                "the database schema is at version {version}, this server needs {}",
                state.expected_schema_version
            ),
            retry_after_secs: 5,
        });
    }
    Ok(HttpResponse::Ok().json(Readiness { status: "ready", db: "reachable", schema_version: version }))
}

/// `/health`'s answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Status {
    /// Always `healthy`.
    #[schema(example = "healthy")]
    pub status: &'static str,
}

/// `/ready`'s answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// Always `ready`.
    #[schema(example = "ready")]
    pub status: &'static str,
    /// Always `reachable`.
    pub db: &'static str,
    /// The applied migration version.
    pub schema_version: i32,
}
