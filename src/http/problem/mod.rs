//! RFC 9457 problem documents: every error the API returns is `application/problem+json` with a
//! stable `type` URN per kind, a `title`, the `status`, a useful `detail`, the request path as
//! `instance`, and the `request_id`; validation errors list the offending fields. Clients never
//! see a driver's or pool's error text; the logs get the full cause chain.
//!
//! - [`Conflict`]: the kinds of 409, each with a slug of its own.
//! - `engine_errors`: the engine's typed errors (`DbError`) as problems.
//! - [`fallback`]: bare error statuses from actix (404, 405, 413…) turned into problems.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use certctl_actors::domain::validation::FieldError;
use certctl_actors::error::cause_chain;

use super::request_id::current_request;
pub use conflict::Conflict;
pub use engine_errors::checked;

mod conflict;
mod engine_errors;
pub mod fallback;

/// Every way a request can fail.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    NotFound(String),
    #[error("no route matches this path")]
    RouteNotFound,
    #[error("this method is not allowed on this path")]
    MethodNotAllowed,
    #[error("{0}")]
    MalformedJson(String),
    #[error("{detail}")]
    InvalidBody { detail: String, field: Option<String> },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("the request body exceeds the {limit}-byte limit (CERTCTL_MAX_BODY_SIZE)")]
    PayloadTooLarge { limit: u64 },
    #[error("{0}")]
    InvalidQuery(String),
    #[error("the request body did not arrive within {secs} s (CERTCTL_REQUEST_BODY_TIMEOUT)")]
    BodyTimeout { secs: f64 },
    #[error("{0}")]
    UriTooLong(String),
    #[error("{0}")]
    HeadersTooLarge(String),
    #[error(
        "a value in the request is outside what the database can store (out of range, or text such as a NUL character)"
    )]
    InvalidValue,
    #[error("{0}")]
    InvalidPath(String),
    #[error("the request has invalid fields")]
    Validation(Vec<FieldError>),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{1}")]
    Conflict(Conflict, String),
    #[error("{0}")]
    Gone(String),
    #[error("{detail}")]
    Unavailable { detail: String, retry_after_secs: u32 },
    #[error("{status} response without a body")]
    Status { status: StatusCode },
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

/// The problem document's JSON shape (RFC 9457).
#[derive(Serialize, utoipa::ToSchema)]
pub struct Problem<'a> {
    /// A stable URN per kind of problem, `urn:certctl:problem:<slug>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind.
    pub title: &'a str,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong with this request.
    pub detail: String,
    /// The request's path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The request id (`X-Request-ID`), also in the server log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The fields at fault, for validation problems.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<FieldError>>)]
    pub errors: Option<&'a [FieldError]>,
}

/// The prefix of every problem type.
pub const PROBLEM_TYPE_PREFIX: &str = "urn:certctl:problem:";

impl ApiError {
    /// The stable type slug and title for this kind.
    pub fn kind(&self) -> (&'static str, &'static str) {
        match self {
            ApiError::NotFound(_) => ("not-found", "Resource not found"),
            ApiError::RouteNotFound => ("route-not-found", "No such route"),
            ApiError::MethodNotAllowed => ("method-not-allowed", "Method not allowed"),
            ApiError::MalformedJson(_) => ("malformed-json", "Malformed JSON"),
            ApiError::InvalidBody { .. } => ("invalid-body", "Invalid request body"),
            ApiError::UnsupportedMediaType(_) => ("unsupported-media-type", "Unsupported media type"),
            ApiError::PayloadTooLarge { .. } => ("payload-too-large", "Request body too large"),
            ApiError::InvalidQuery(_) => ("invalid-query", "Invalid query parameters"),
            ApiError::BodyTimeout { .. } => ("request-timeout", "Request timeout"),
            ApiError::UriTooLong(_) => ("uri-too-long", "URI too long"),
            ApiError::HeadersTooLarge(_) => ("headers-too-large", "Request headers too large"),
            ApiError::InvalidValue => ("invalid-value", "Invalid value"),
            ApiError::InvalidPath(_) => ("invalid-path", "Invalid path parameter"),
            ApiError::Validation(_) => ("validation-failed", "Validation failed"),
            ApiError::Unauthorized(_) => ("unauthorized", "Authentication required"),
            ApiError::Forbidden(_) => ("forbidden", "Forbidden"),
            ApiError::Conflict(kind, _) => kind.slug_and_title(),
            ApiError::Gone(_) => ("gone", "Gone"),
            ApiError::Unavailable { .. } => ("service-unavailable", "Service unavailable"),
            ApiError::Status { status } => match status.as_u16() {
                400 => ("bad-request", "Bad request"),
                408 => ("request-timeout", "Request timeout"),
                411 => ("length-required", "Length required"),
                414 => ("uri-too-long", "URI too long"),
                431 => ("headers-too-large", "Request headers too large"),
                s if s < 500 => ("client-error", "Client error"),
                _ => ("internal-error", "Internal server error"),
            },
            ApiError::Internal(_) => ("internal-error", "Internal server error"),
        }
    }

    fn detail(&self) -> String {
        match self {
            ApiError::Internal(_) => {
                "an unexpected error occurred; the server log has the details (search for the request id)".into()
            }
            ApiError::Validation(errors) => {
                let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
                format!("invalid fields: {}", fields.join(", "))
            }
            ApiError::Status { status } => {
                format!("the server answered {} ({})", status.as_u16(), status.canonical_reason().unwrap_or("error"))
            }
            other => other.to_string(),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::NotFound(_) | ApiError::RouteNotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::MalformedJson(_)
            | ApiError::InvalidBody { .. }
            | ApiError::InvalidQuery(_)
            | ApiError::InvalidPath(_)
            | ApiError::InvalidValue => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ApiError::UriTooLong(_) => StatusCode::URI_TOO_LONG,
            ApiError::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Conflict(..) => StatusCode::CONFLICT,
            ApiError::Gone(_) => StatusCode::GONE,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Status { status } => *status,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Internal(e) = self {
            tracing::error!(error.cause_chain = %cause_chain(e.as_ref()), "request failed with an internal error");
        }
        let status = self.status_code();
        let (slug, title) = self.kind();
        let request = current_request();
        let errors = match self {
            ApiError::Validation(errors) => Some(errors.as_slice()),
            _ => None,
        };
        let single;
        let errors = match (errors, self) {
            (None, ApiError::InvalidBody { field: Some(field), detail }) => {
                single = [FieldError { field: field.clone(), message: detail.clone() }];
                Some(&single[..])
            }
            (errors, _) => errors,
        };
        let problem = Problem {
            kind: format!("{PROBLEM_TYPE_PREFIX}{slug}"),
            title,
            status: status.as_u16(),
            detail: self.detail(),
            instance: request.as_ref().map(|r| r.path.clone()),
            request_id: request.as_ref().map(|r| r.id.clone()),
            errors,
        };
        let mut response = HttpResponse::build(status);
        response.insert_header((header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json")));
        match self {
            ApiError::Unauthorized(_) => {
                response
                    .insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"certctl\"")));
            }
            ApiError::Unavailable { retry_after_secs, .. } => {
                response.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
            }
            _ => {}
        }
        let body = serde_json::to_vec(&problem).unwrap_or_else(|_| b"{}".to_vec());
        response.body(body)
    }
}
