//! `GET /metrics`: Prometheus text exposition. Served here unless `CERTCTL_METRICS_ADDR` moves it
//! to a listener of its own (then this route answers 404).

use actix_web::{web, HttpResponse};

use crate::http::problem::ApiError;
use crate::http::MetricsEndpoint;

/// Renders every recorded metric.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    operation_id = "getMetrics",
    responses(
        (status = 200, description = "Every metric, in the Prometheus text format 0.0.4.", content_type = "text/plain", body = String),
        (status = 404, description = "`CERTCTL_METRICS_ADDR` serves the metrics on a listener of their own (`route-not-found`).",
            content_type = "application/problem+json", body = crate::http::problem::Problem),
    )
)]
pub async fn metrics(endpoint: Option<web::Data<MetricsEndpoint>>) -> Result<HttpResponse, ApiError> {
    let endpoint = endpoint.ok_or(ApiError::RouteNotFound)?;
    Ok(HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(endpoint.0.render()))
}
