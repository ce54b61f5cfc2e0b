//! `GET /metrics`: Prometheus text exposition. Served here unless `CERTCTL_METRICS_ADDR` moves it
//! to a listener of its own (then this route answers 404).

use actix_web::{web, HttpResponse};

use crate::http::problem::ApiError;
use crate::http::MetricsEndpoint;

/// Renders every recorded metric.
pub async fn metrics(endpoint: Option<web::Data<MetricsEndpoint>>) -> Result<HttpResponse, ApiError> {
    let endpoint = endpoint.ok_or(ApiError::RouteNotFound)?;
    Ok(HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(endpoint.0.render()))
}
