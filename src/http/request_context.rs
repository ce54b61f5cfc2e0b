//! The outermost middleware: gives every request its id (see [`super::request_id`]) and a
//! tracing span carrying it, echoes the id, turns any bare error status into a problem document
//! ([`super::problem::fallback`]), and records the HTTP metrics and the "request completed" log
//! line.

use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::HeaderValue;
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage};
use tracing::Instrument;

use super::problem::fallback::ensure_problem;
use super::request_id::{request_id, scope, RequestId, RequestInfo, REQUEST_ID_HEADER};
use crate::telemetry::{HTTP_REQUESTS_TOTAL, HTTP_REQUEST_DURATION_SECONDS};

/// The middleware itself (use with `actix_web::middleware::from_fn`).
pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let started = Instant::now();
    let id = request_id(req.headers().get(&REQUEST_ID_HEADER).and_then(|v| v.to_str().ok()));
    let method = req.method().clone();
    let span = tracing::info_span!(
        "http_request",
        request_id = %id,
        method = %method,
        path = %req.path(),
        route = tracing::field::Empty,
        caller = tracing::field::Empty,
    );
    req.extensions_mut().insert(RequestId(id.clone()));
    let info = RequestInfo { id: id.clone(), path: req.path().to_owned() };

    // Inner middleware answer errors as responses (see `auth::require_api_key`), so an `Err` here
    // only comes from actix itself; it is rendered by actix, outside this request's scope.
    let mut response = scope(
        info,
        async move { next.call(req).await.map(|r| ensure_problem(r.map_into_boxed_body())) }.instrument(span.clone()),
    )
    .await?;

    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    let route = response.request().match_pattern().unwrap_or_else(|| "unmatched".to_string());
    span.record("route", route.as_str());
    let status = response.status();
    let elapsed = started.elapsed();
    let labels = [
        ("route", route),
        ("method", method_label(&method).to_string()),
        ("status_class", status_class(status).to_string()),
    ];
    metrics::counter!(HTTP_REQUESTS_TOTAL, &labels).increment(1);
    metrics::histogram!(HTTP_REQUEST_DURATION_SECONDS, &labels).record(elapsed.as_secs_f64());
    span.in_scope(|| {
        tracing::info!(status = status.as_u16(), duration_ms = elapsed.as_secs_f64() * 1000.0, "request completed");
    });
    Ok(response)
}

/// Methods as a small fixed label set.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

fn status_class(status: StatusCode) -> &'static str {
    match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}
