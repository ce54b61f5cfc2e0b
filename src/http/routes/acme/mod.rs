//! The ACME server's routes (RFC 8555), when `CERTCTL_ACME_SERVER_ENABLED` is set: each under
//! `/acme/profile/{profile_id}/…` (a profile's directory) and `/acme/…` (the profile named by
//! `CERTCTL_ACME_SERVER_DEFAULT_PROFILE_ID`). They take no API key: ACME requests are signed
//! (JWS) by the account's key. Each handler decodes the request, makes one engine call
//! (`Engine::acme`) and writes its outcome or its ACME problem document.
//!
//! - [`directory`]: the directory and new-nonce.
//! - [`accounts`]: new-account and the account URL (read, update, deactivate).
//! - [`renewal_info`]: renewal information (RFC 9773).
//! - [`reply`]: the headers every answer carries, and problem documents.

pub mod accounts;
pub mod directory;
pub mod renewal_info;
mod reply;

use actix_web::{HttpRequest, HttpResponse};

use certctl_actors::acme_server::problem::AcmeProblem;
use certctl_actors::acme_server::service::Directory;

use crate::http::AppState;

/// The directory a request addresses (`profile_id` from the path, or the default profile), or
/// the problem to answer: 404 while the ACME server is off.
async fn directory_of(
    state: &AppState,
    req: &HttpRequest,
    profile_id: Option<&str>,
) -> Result<Directory, HttpResponse> {
    if !state.engine.acme().enabled() {
        let off =
            AcmeProblem::malformed("the ACME server is not enabled (CERTCTL_ACME_SERVER_ENABLED)").with_status(404);
        return Err(reply::problem(state, &off, None));
    }
    let root = origin(state, req);
    let base = match profile_id {
        Some(id) => format!("{root}/acme/profile/{id}"),
        None => format!("{root}/acme"),
    };
    state.engine.acme().directory(profile_id, base).await.map_err(|problem| reply::problem(state, &problem, None))
}

/// `scheme://host[:port]` as the client reached the server: a proxy's `Forwarded` or
/// `X-Forwarded-Proto`/`-Host` when it sent them, else this listener's own scheme (an HTTP/1.1
/// request over TLS carries none of its own) and the `Host` header.
fn origin(state: &AppState, req: &HttpRequest) -> String {
    let headers = req.headers();
    let forwarded_proto = headers
        .get("forwarded")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("proto="));
    let forwarded = forwarded_proto || headers.contains_key("x-forwarded-proto");
    let info = req.connection_info();
    let scheme = match (forwarded, state.tls) {
        (true, _) => info.scheme(),
        (false, true) => "https",
        (false, false) => "http",
    };
    format!("{scheme}://{}", info.host())
}

/// The URL a request was sent to, as its JWS must name it.
fn request_url(state: &AppState, req: &HttpRequest) -> String {
    format!("{}{}", origin(state, req), req.path())
}
