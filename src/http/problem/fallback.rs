//! Bare error statuses (actix's own 404s, 405s, 413s…) replaced by problem documents, so clients
//! see a single error format.

use actix_web::body::BoxBody;
use actix_web::dev::ServiceResponse;
use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{web, ResponseError};

use super::ApiError;
use crate::http::body_limit::BodyLimit;

/// Replaces any error response that is not already a problem document with one.
pub fn ensure_problem(response: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
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
