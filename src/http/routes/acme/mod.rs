//! The ACME server's routes (RFC 8555), when `CERTCTL_ACME_SERVER_ENABLED` is set: each under
//! `/acme/profile/{profile_id}/…` (a profile's directory) and `/acme/…` (the profile named by
//! `CERTCTL_ACME_SERVER_DEFAULT_PROFILE_ID`). They take no API key: ACME requests are signed
//! (JWS) by the account's key. Each handler decodes the request, makes one engine call
//! (`Engine::acme`) and writes its outcome or its ACME problem document.
//!
//! - [`directory`]: the directory and new-nonce.
//! - [`accounts`]: new-account and the account URL (read, update, deactivate).
//! - [`reply`]: the headers every answer carries, and problem documents.

pub mod accounts;
pub mod directory;
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
    let root = {
        let info = req.connection_info();
        format!("{}://{}", info.scheme(), info.host())
    };
    let base = match profile_id {
        Some(id) => format!("{root}/acme/profile/{id}"),
        None => format!("{root}/acme"),
    };
    state.engine.acme().directory(profile_id, base).await.map_err(|problem| reply::problem(state, &problem, None))
}

/// The URL a request was sent to, as its JWS must name it.
fn request_url(req: &HttpRequest) -> String {
    let info = req.connection_info();
    format!("{}://{}{}", info.scheme(), info.host(), req.path())
}
