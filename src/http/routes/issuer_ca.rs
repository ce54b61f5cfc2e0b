//! `GET /api/v1/issuers/{id}/ca`: the CA chain an issuer's certificates chain to, as PEM (for
//! trust stores and `openssl verify -CAfile`). A local issuer's CA is created on first use.

use actix_web::{web, HttpResponse};
use certctl_actors::issuers::ErrorClass;

use super::path_id;
use crate::http::problem::ApiError;
use crate::http::AppState;

#[tracing::instrument(skip_all, fields(issuer_id))]
pub async fn ca(state: web::Data<AppState>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let id = path_id(id.into_inner())?;
    tracing::Span::current().record("issuer_id", id.as_str());
    let issuer = state
        .engine
        .registry
        .lookup(&id)
        .await
        .map_err(|failure| match failure.class {
            // Disabled, or a type that cannot issue yet: the request is fine, the issuer's state is not.
            ErrorClass::Validation => ApiError::Conflict(failure.message),
            _ => ApiError::Internal(anyhow::anyhow!(failure.message)),
        })?
        .ok_or_else(|| ApiError::NotFound(format!("no issuer has id {id:?}")))?;
    Ok(HttpResponse::Ok().content_type("application/x-pem-file").body(issuer.ca_chain_pem()))
}
