//! ACME accounts (RFC 8555 §7.3): new-account (201 with the new account, 200 with the one the
//! key already holds) and the account URL (POST-as-GET, contact update, deactivation).

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use certctl_actors::acme_server::problem::AcmeProblem;
use certctl_actors::acme_server::service::{AccountView, NewAccount, SignedRequest};

use super::{addressed, reply, request_url};
use crate::http::json::raw_body;
use crate::http::AppState;

/// The signed request the engine checks, or the problem to answer.
async fn signed(
    state: &AppState,
    req: &HttpRequest,
    payload: &mut actix_web::dev::Payload,
    profile_id: Option<String>,
) -> Result<SignedRequest, HttpResponse> {
    let at = addressed(state, req, profile_id);
    let body = match raw_body(req, payload).await {
        Ok(body) => body,
        Err(e) => {
            let status = actix_web::ResponseError::status_code(&e).as_u16();
            let problem =
                AcmeProblem::malformed(format!("the request body could not be read: {e}")).with_status(status);
            return Err(reply::problem(state, &problem, Some(&at)));
        }
    };
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    Ok(SignedRequest { at, url: request_url(state, req), content_type, body: body.to_vec() })
}

fn account_reply(state: &AppState, request: &SignedRequest, status: StatusCode, view: AccountView) -> HttpResponse {
    let location = HeaderValue::from_str(&view.url).unwrap_or_else(|_| HeaderValue::from_static(""));
    reply::builder(state, status, Some(&request.at)).insert_header((header::LOCATION, location)).json(view.body)
}

async fn new_account(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
    profile_id: Option<String>,
) -> HttpResponse {
    let request = match signed(&state, &req, &mut payload.into_inner(), profile_id).await {
        Ok(request) => request,
        Err(response) => return response,
    };
    match state.engine.acme().new_account(&request).await {
        Ok(NewAccount::Created(view)) => account_reply(&state, &request, StatusCode::CREATED, view),
        Ok(NewAccount::Existing(view)) => account_reply(&state, &request, StatusCode::OK, view),
        Err(problem) => reply::problem(&state, &problem, Some(&request.at)),
    }
}

async fn account(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
    profile_id: Option<String>,
    account_id: String,
) -> HttpResponse {
    let request = match signed(&state, &req, &mut payload.into_inner(), profile_id).await {
        Ok(request) => request,
        Err(response) => return response,
    };
    match state.engine.acme().account(&request, &account_id).await {
        Ok(view) => account_reply(&state, &request, StatusCode::OK, view),
        Err(problem) => reply::problem(&state, &problem, Some(&request.at)),
    }
}

/// The JWS every ACME POST carries (RFC 8555 §6.2, flattened JSON serialization).
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "documents the wire format; the engine reads the body")]
pub struct Jws {
    /// base64url of the protected header: `alg`, `nonce`, `url`, and `jwk` or `kid`.
    protected: String,
    /// base64url of the request's JSON; empty for POST-as-GET.
    payload: String,
    /// base64url of the signature.
    signature: String,
}

/// `POST /acme/profile/{profile_id}/new-account` (public, signed by the new key): the key's account.
#[utoipa::path(
    post,
    path = "/acme/profile/{profile_id}/new-account",
    tag = "acme",
    operation_id = "newAcmeProfileAccount",
    params(("profile_id" = String, Path, description = "The certificate profile.")),
    request_body(content = Jws, content_type = "application/jose+json", description = "Signed with `jwk`; payload `{termsOfServiceAgreed, contact, onlyReturnExisting}`."),
    responses(
        (status = 201, description = "Created; `Location` is the account URL (its `kid`).", content_type = "application/json", body = Object),
        (status = 200, description = "The key's existing account; `Location` is its URL.", content_type = "application/json", body = Object),
        (status = 401, description = "The key's account is deactivated (ACME `unauthorized`).", content_type = "application/problem+json", body = crate::http::problem::Problem),
        (status = 403, description = "Terms of service not agreed to (ACME `userActionRequired`).", content_type = "application/problem+json", body = crate::http::problem::Problem),
        (status = 404, description = "The ACME server is off, or there is no such enabled profile.", content_type = "application/problem+json", body = crate::http::problem::Problem),
    )
)]
pub async fn profile_new_account(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
    path: web::Path<String>,
) -> HttpResponse {
    new_account(state, req, payload, Some(path.into_inner())).await
}

/// `POST /acme/new-account` (public, signed by the new key): an account under the default profile.
#[utoipa::path(
    post,
    path = "/acme/new-account",
    tag = "acme",
    operation_id = "newAcmeAccount",
    request_body(content = Jws, content_type = "application/jose+json", description = "Signed with `jwk`; payload `{termsOfServiceAgreed, contact, onlyReturnExisting}`."),
    responses(
        (status = 201, description = "Created; `Location` is the account URL (its `kid`).", content_type = "application/json", body = Object),
        (status = 200, description = "The key's existing account; `Location` is its URL.", content_type = "application/json", body = Object),
        (status = 401, description = "The key's account is deactivated (ACME `unauthorized`).", content_type = "application/problem+json", body = crate::http::problem::Problem),
        (status = 403, description = "No default profile, or terms of service not agreed to (ACME `userActionRequired`).", content_type = "application/problem+json", body = crate::http::problem::Problem),
        (status = 404, description = "The ACME server is off, or the default profile is missing or disabled.", content_type = "application/problem+json", body = crate::http::problem::Problem),
    )
)]
pub async fn default_new_account(state: web::Data<AppState>, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    new_account(state, req, payload, None).await
}

/// `POST /acme/profile/{profile_id}/account/{account_id}` (public, signed by the account): read,
/// update `contact`, or deactivate the account.
#[utoipa::path(
    post,
    path = "/acme/profile/{profile_id}/account/{account_id}",
    tag = "acme",
    operation_id = "postAcmeProfileAccount",
    params(
        ("profile_id" = String, Path, description = "The certificate profile."),
        ("account_id" = String, Path, description = "The account (`acct-…`)."),
    ),
    request_body(content = Jws, content_type = "application/jose+json", description = "Signed with `kid`; empty payload to read, `{contact}` or `{status: \"deactivated\"}`."),
    responses(
        (status = 200, description = "The account.", content_type = "application/json", body = Object),
        (status = 401, description = "The account is deactivated (ACME `unauthorized`).", content_type = "application/problem+json", body = crate::http::problem::Problem),
        (status = 403, description = "Signed for another URL, or by another account (ACME `unauthorized`).", content_type = "application/problem+json", body = crate::http::problem::Problem),
    )
)]
pub async fn profile_account(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (profile_id, account_id) = path.into_inner();
    account(state, req, payload, Some(profile_id), account_id).await
}

/// `POST /acme/account/{account_id}` (public, signed by the account): the default profile's account URL.
#[utoipa::path(
    post,
    path = "/acme/account/{account_id}",
    tag = "acme",
    operation_id = "postAcmeAccount",
    params(("account_id" = String, Path, description = "The account (`acct-…`).")),
    request_body(content = Jws, content_type = "application/jose+json", description = "Signed with `kid`; empty payload to read, `{contact}` or `{status: \"deactivated\"}`."),
    responses(
        (status = 200, description = "The account.", content_type = "application/json", body = Object),
        (status = 401, description = "The account is deactivated (ACME `unauthorized`).", content_type = "application/problem+json", body = crate::http::problem::Problem),
        (status = 403, description = "No default profile (ACME `userActionRequired`), or signed for another URL or by another account (`unauthorized`).", content_type = "application/problem+json", body = crate::http::problem::Problem),
    )
)]
pub async fn default_account(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
    path: web::Path<String>,
) -> HttpResponse {
    account(state, req, payload, None, path.into_inner()).await
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(profile_new_account, default_new_account, profile_account, default_account), components(schemas(Jws)))]
pub struct Doc;
