//! The ACME directory (RFC 8555 §7.1.1) and new-nonce (§7.2), per profile and for the default
//! profile. A nonce costs no database access: both answer from memory once the profile is known.

use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};

use super::{addressed, reply};
use crate::http::AppState;

async fn directory(state: web::Data<AppState>, req: HttpRequest, profile_id: Option<String>) -> HttpResponse {
    let at = addressed(&state, &req, profile_id);
    match state.engine.acme().directory(&at).await {
        Ok(document) => reply::builder(&state, StatusCode::OK, None).json(document),
        Err(problem) => reply::problem(&state, &problem, None),
    }
}

async fn new_nonce(state: web::Data<AppState>, req: HttpRequest, profile_id: Option<String>) -> HttpResponse {
    let at = addressed(&state, &req, profile_id);
    match state.engine.acme().nonce_for(&at).await {
        Ok(()) => {
            // RFC 8555 §7.2: HEAD answers 200, GET 204; both carry the nonce and no-store.
            let status = if req.method() == Method::HEAD { StatusCode::OK } else { StatusCode::NO_CONTENT };
            reply::builder(&state, status, Some(&at)).finish()
        }
        Err(problem) => reply::problem(&state, &problem, None),
    }
}

/// `GET /acme/profile/{profile_id}/directory` (public): the profile's ACME directory.
#[utoipa::path(
    get,
    path = "/acme/profile/{profile_id}/directory",
    tag = "acme",
    operation_id = "getAcmeProfileDirectory",
    params(("profile_id" = String, Path, description = "The certificate profile whose ACME directory this is.")),
    responses(
        (status = 200, description = "The directory: `newNonce`, `newAccount`, `newOrder`, `revokeCert`, `keyChange`, `renewalInfo` (while ARI is on), `meta`.", content_type = "application/json", body = Object),
        (status = 404, description = "The ACME server is off, or there is no such enabled profile (ACME `malformed`).", content_type = "application/problem+json", body = crate::http::problem::Problem),
    )
)]
pub async fn profile_directory(state: web::Data<AppState>, req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    directory(state, req, Some(path.into_inner())).await
}

/// `GET /acme/directory` (public): the default profile's ACME directory.
#[utoipa::path(
    get,
    path = "/acme/directory",
    tag = "acme",
    operation_id = "getAcmeDirectory",
    responses(
        (status = 200, description = "The directory of the profile `CERTCTL_ACME_SERVER_DEFAULT_PROFILE_ID` names.", content_type = "application/json", body = Object),
        (status = 403, description = "No default profile is configured (ACME `userActionRequired`).", content_type = "application/problem+json", body = crate::http::problem::Problem),
        (status = 404, description = "The ACME server is off, or the default profile is missing or disabled (ACME `malformed`).", content_type = "application/problem+json", body = crate::http::problem::Problem),
    )
)]
pub async fn default_directory(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    directory(state, req, None).await
}

/// `GET /acme/profile/{profile_id}/new-nonce` (public): a fresh nonce in `Replay-Nonce`.
#[utoipa::path(
    get,
    path = "/acme/profile/{profile_id}/new-nonce",
    tag = "acme",
    operation_id = "getAcmeProfileNonce",
    params(("profile_id" = String, Path, description = "The certificate profile.")),
    responses(
        (status = 204, description = "A nonce in `Replay-Nonce` (`HEAD` answers 200).", headers(("Replay-Nonce" = String, description = "The nonce."))),
        (status = 404, description = "The ACME server is off, or there is no such enabled profile (ACME `malformed`).", content_type = "application/problem+json", body = crate::http::problem::Problem),
    )
)]
pub async fn profile_nonce(state: web::Data<AppState>, req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    new_nonce(state, req, Some(path.into_inner())).await
}

/// `GET /acme/new-nonce` (public): a fresh nonce for the default profile's clients.
#[utoipa::path(
    get,
    path = "/acme/new-nonce",
    tag = "acme",
    operation_id = "getAcmeNonce",
    responses(
        (status = 204, description = "A nonce in `Replay-Nonce` (`HEAD` answers 200).", headers(("Replay-Nonce" = String, description = "The nonce."))),
        (status = 403, description = "No default profile is configured (ACME `userActionRequired`).", content_type = "application/problem+json", body = crate::http::problem::Problem),
        (status = 404, description = "The ACME server is off, or the default profile is missing or disabled (ACME `malformed`).", content_type = "application/problem+json", body = crate::http::problem::Problem),
    )
)]
pub async fn default_nonce(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    new_nonce(state, req, None).await
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(profile_directory, default_directory, profile_nonce, default_nonce))]
pub struct Doc;
