//! What an issuer can be asked beyond its record: `GET /api/v1/issuers/{id}/ca`, the CA chain its
//! certificates chain to, as PEM (for trust stores and `openssl verify -CAfile`; a local issuer's
//! CA is created on first use), and `POST /api/v1/issuers/{id}/test`, a check of its credentials
//! and reachability with harmless calls.

use actix_web::{web, HttpResponse};
use certctl_actors::issuers::remote::Check;
use certctl_actors::issuers::{ErrorClass, IssueFailure};

use crate::http::path_id::Id;
use crate::http::problem::{ApiError, Conflict, Problem};
use crate::http::AppState;

/// `GET /api/v1/issuers/{id}/ca`.
#[utoipa::path(
    get,
    path = "/api/v1/issuers/{id}/ca",
    tag = "resources",
    operation_id = "getIssuerCaChain",
    params(("id" = String, Path, description = "The issuer's id.")),
    responses(
        (status = 200, description = "The issuer's CA chain as PEM (a local issuer's CA is created on first use).",
            content_type = "application/x-pem-file", body = String),
        (status = 404, description = "No issuer has this id (`not-found`).", content_type = "application/problem+json", body = Problem),
        (status = 409, description = "The issuer is disabled, or of a type this build cannot issue with yet \
            (`issuer-unusable`).", content_type = "application/problem+json", body = Problem),
    )
)]
#[tracing::instrument(skip_all, fields(issuer_id))]
pub async fn ca(state: web::Data<AppState>, id: Id) -> Result<HttpResponse, ApiError> {
    let id = id.0;
    tracing::Span::current().record("issuer_id", id.as_str());
    let chain = state
        .engine
        .issuer_ca_chain(&id)
        .await
        .map_err(unusable)?
        .ok_or_else(|| ApiError::NotFound(format!("no issuer has id {id:?}")))?;
    Ok(HttpResponse::Ok().content_type("application/x-pem-file").body(chain))
}

/// An issuer that cannot serve the request as a problem: disabled, of a type that cannot issue
/// yet, or a config that makes no connector is a 409 (the request is fine, the issuer's state is
/// not); anything else a 500.
fn unusable(failure: IssueFailure) -> ApiError {
    match failure.class {
        ErrorClass::Validation => ApiError::Conflict(Conflict::IssuerUnusable, failure.message),
        _ => ApiError::Internal(anyhow::anyhow!(failure.message)),
    }
}

/// What a connection test found.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct IssuerTest {
    /// The issuer tested.
    pub issuer_id: String,
    /// Whether every check passed.
    pub ok: bool,
    /// Each check and what the CA answered.
    pub checks: Vec<Check>,
}

/// `POST /api/v1/issuers/{id}/test`.
///
/// Checks the issuer's credentials and reachability with harmless calls (an ACME issuer: its
/// directory, then its account, created on first use; a local issuer: its CA). A failed check is
/// still a 200: the answer says what failed and why.
#[utoipa::path(
    post,
    path = "/api/v1/issuers/{id}/test",
    tag = "resources",
    operation_id = "testIssuer",
    params(("id" = String, Path, description = "The issuer's id.")),
    responses(
        (status = 200, description = "What each check found.", body = IssuerTest),
        (status = 404, description = "No issuer has this id (`not-found`).", content_type = "application/problem+json", body = Problem),
        (status = 409, description = "The issuer is disabled, or its config cannot make a connector \
            (`issuer-unusable`).", content_type = "application/problem+json", body = Problem),
    )
)]
#[tracing::instrument(skip_all, fields(issuer_id))]
pub async fn test(state: web::Data<AppState>, id: Id) -> Result<HttpResponse, ApiError> {
    let id = id.0;
    tracing::Span::current().record("issuer_id", id.as_str());
    let checks = state
        .engine
        .test_issuer(&id)
        .await
        .map_err(unusable)?
        .ok_or_else(|| ApiError::NotFound(format!("no issuer has id {id:?}")))?;
    let ok = checks.iter().all(|c| c.ok);
    Ok(HttpResponse::Ok().json(IssuerTest { issuer_id: id, ok, checks }))
}

/// This file's operations, for the OpenAPI document (`http::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(ca, test))]
pub struct Doc;
