//! The outermost middleware: gives every request its id (see [`super::request_id`]) and a
//! tracing span carrying it, reads what the handler left of the body ([`super::unread_body`]),
//! echoes the id, turns any bare error status into a problem document
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
use super::problem::ApiError;
use super::request_id::{request_id, scope, RequestId, RequestInfo, REQUEST_ID_HEADER};
use super::unread_body::SharedBody;
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
    // The body is read through a shared handle, so what the handler leaves is read after it.
    let (http_request, payload) = req.into_parts();
    let body = SharedBody::new(payload);
    let req = ServiceRequest::from_parts(http_request, body.payload());

    // Inner middleware answer errors as responses (see `auth::require_api_key`), so an `Err` here
    // only comes from actix itself; it is rendered by actix, outside this request's scope.
    let mut response = scope(
        info,
        async move {
            match over_limits(&req) {
                Some(refusal) => Ok(req.error_response(refusal)),
                None => next.call(req).await.map(|r| ensure_problem(r.map_into_boxed_body())),
            }
        }
        .instrument(span.clone()),
    )
    .await?;
    // A body that timed out is not waited for again: its connection is closed instead.
    if response.status() != StatusCode::REQUEST_TIMEOUT {
        body.drain().await;
    }

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

/// The longest request target (path and query) served, in bytes.
pub const MAX_TARGET: usize = 8 * 1024;
/// The most request headers, and their largest total size (names and values), served.
pub const MAX_HEADERS: usize = 64;
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// A 414 or 431 problem for a request beyond this server's limits. They are below the HTTP
/// layer's own (a 128 KiB head, 96 headers), so a client gets a problem document that says what
/// the limit is; only a request beyond the HTTP layer's limits is refused there, without one.
fn over_limits(req: &ServiceRequest) -> Option<ApiError> {
    let target = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if target > MAX_TARGET {
        return Some(ApiError::UriTooLong(format!(
            "the request target is {target} bytes; at most {MAX_TARGET} are served (send long lists in a body)"
        )));
    }
    let headers = req.headers();
    let bytes: usize = headers.iter().map(|(name, value)| name.as_str().len() + value.len()).sum();
    if headers.len() > MAX_HEADERS || bytes > MAX_HEADER_BYTES {
        return Some(ApiError::HeadersTooLarge(format!(
            "the request has {} headers of {bytes} bytes; at most {MAX_HEADERS} headers of {MAX_HEADER_BYTES} bytes \
             in all are served",
            headers.len()
        )));
    }
    None
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
