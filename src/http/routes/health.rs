//! Liveness and readiness.

use actix_web::{web, HttpResponse};
use serde_json::json;

use certctl_actors::queries::health::SchemaVersion;

use crate::http::problem::ApiError;
use crate::http::AppState;

/// `GET /health`: the process is up and serving (no dependencies checked).
#[tracing::instrument(skip_all)]
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "healthy" }))
}

/// `GET /ready`: the database answers and its schema is the one this build expects; 503 problem
/// otherwise, so a load balancer stops sending traffic until it is.
#[tracing::instrument(skip_all)]
pub async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    // Load-balancer probes give up after a second or two; answer before they do.
    let probe = tokio::time::timeout(std::time::Duration::from_secs(2), state.db.run(SchemaVersion)).await;
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
    Ok(HttpResponse::Ok().json(json!({ "status": "ready", "db": "reachable", "schema_version": version })))
}
