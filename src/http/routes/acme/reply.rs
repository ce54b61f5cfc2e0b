//! What every ACME answer carries (RFC 8555 §6.5, §7.1): a fresh `Replay-Nonce`, `Cache-Control:
//! no-store`, and `Link: <directory>;rel="index"` on everything but the directory; and ACME
//! problem documents (`application/problem+json`, RFC 8555 §6.7 types) with the request id.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, HttpResponseBuilder};

use certctl_actors::acme_server::problem::AcmeProblem;
use certctl_actors::acme_server::service::Addressed;

use crate::http::request_id::current_request;
use crate::http::AppState;

/// A response builder with the headers every ACME answer has.
pub fn builder(state: &AppState, status: StatusCode, directory: Option<&Addressed>) -> HttpResponseBuilder {
    let mut response = HttpResponse::build(status);
    response.insert_header(("Replay-Nonce", state.engine.acme().new_nonce()));
    response.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
    // A Host header the client made up could make the URL no header value; then there is no link.
    if let Some(link) =
        directory.and_then(|d| HeaderValue::from_str(&format!("<{}>;rel=\"index\"", d.index_url())).ok())
    {
        response.insert_header((header::LINK, link));
    }
    response
}

/// An ACME problem document.
pub fn problem(state: &AppState, problem: &AcmeProblem, directory: Option<&Addressed>) -> HttpResponse {
    let request = current_request();
    let mut body = serde_json::to_value(problem.body(request.as_ref().map(|r| r.path.as_str())))
        .unwrap_or_else(|_| serde_json::json!({}));
    if let Some(request) = request {
        body["request_id"] = serde_json::json!(request.id);
    }
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = builder(state, status, directory);
    if problem.status == 503 {
        response.insert_header((header::RETRY_AFTER, "5"));
    }
    response.content_type("application/problem+json").json(body)
}
