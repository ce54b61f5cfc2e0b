//! The outermost middleware: gives every request an id (the client's `X-Request-ID` when it is
//! sane, else a new UUID), a tracing span carrying it, and a task-local so problem documents can
//! name it; echoes the id; turns any error or bare error status into a problem document; records
//! the HTTP metrics and the "request completed" log line.

use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpMessage, ResponseError};
use tracing::Instrument;

use super::problem::ApiError;
use crate::telemetry::{HTTP_REQUESTS_TOTAL, HTTP_REQUEST_DURATION_SECONDS};

/// The request header (and response header) carrying the request id.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// What error rendering needs to know about the current request.
#[derive(Clone, Debug)]
pub struct RequestInfo {
    pub id: String,
    pub path: String,
}

/// The request id, also stored in the request's extensions for handlers.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// The body limit, kept in app data so a bare 413 can say what the limit is.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimit(pub u64);

tokio::task_local! {
    static REQUEST: RequestInfo;
}

/// The request being served on this task, if any.
pub fn current_request() -> Option<RequestInfo> {
    REQUEST.try_with(Clone::clone).ok()
}

/// Accept client ids that are short and made of safe characters, so they can go into logs and
/// headers unescaped.
fn sane_request_id(value: &str) -> bool {
    (1..=128).contains(&value.len())
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// The middleware itself (use with `actix_web::middleware::from_fn`).
pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let started = Instant::now();
    let id = req
        .headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| sane_request_id(v))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
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
    let mut response = REQUEST
        .scope(
            info,
            async move { next.call(req).await.map(|r| ensure_problem(r.map_into_boxed_body())) }
                .instrument(span.clone()),
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

/// Replaces any error response that is not already a problem document (actix's own 404s, 405s,
/// 413s…) with one, so clients see a single error format.
fn ensure_problem(response: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/problem+json"));
    if is_problem {
        return response;
    }
    let error = match status {
        StatusCode::NOT_FOUND => ApiError::RouteNotFound,
        StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed,
        StatusCode::PAYLOAD_TOO_LARGE => {
            let limit = response.request().app_data::<web::Data<BodyLimit>>().map(|l| l.0).unwrap_or(0);
            ApiError::PayloadTooLarge { limit }
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ApiError::UnsupportedMediaType("this endpoint accepts application/json".into())
        }
        status => ApiError::Status { status },
    };
    let allow = response.headers().get(header::ALLOW).cloned();
    let (request, _) = response.into_parts();
    let mut replacement = error.error_response();
    if let Some(allow) = allow {
        replacement.headers_mut().insert(header::ALLOW, allow);
    }
    ServiceResponse::new(request, replacement)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_must_be_short_and_plain() {
        assert!(sane_request_id("abc-123_x.y:z"));
        assert!(!sane_request_id(""));
        assert!(!sane_request_id("has space"));
        assert!(!sane_request_id("line\nbreak"));
        assert!(!sane_request_id(&"a".repeat(129)));
    }
}
