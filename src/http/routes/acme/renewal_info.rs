//! Renewal information (RFC 9773 §4): `GET …/renewal-info/{cert_id}`, unauthenticated, the
//! suggested window of a certificate certctl holds, with `Retry-After` saying when to ask again.

use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::{addressed, reply};
use crate::http::AppState;

async fn renewal_info(
    state: web::Data<AppState>,
    req: HttpRequest,
    profile_id: Option<String>,
    cert_id: String,
) -> HttpResponse {
    let at = addressed(&state, &req, profile_id);
    match state.engine.acme().renewal_info(&at, &cert_id).await {
        Ok(info) => {
            let rfc3339 = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            reply::builder(&state, StatusCode::OK, Some(&at))
                .insert_header((header::RETRY_AFTER, info.retry_after.as_secs().to_string()))
                // The answer may be cached briefly; the window itself changes only with certctl's plan.
                .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
                .json(json!({"suggestedWindow": {"start": rfc3339(info.start), "end": rfc3339(info.end)}}))
        }
        Err(problem) => reply::problem(&state, &problem, Some(&at)),
    }
}

/// `GET /acme/profile/{profile_id}/renewal-info/{cert_id}` (public): a certificate's suggested renewal window.
#[utoipa::path(
    get,
    path = "/acme/profile/{profile_id}/renewal-info/{cert_id}",
    tag = "acme",
    operation_id = "getAcmeProfileRenewalInfo",
    params(
        ("profile_id" = String, Path, description = "The certificate profile."),
        ("cert_id" = String, Path, description = "`base64url(authority key identifier).base64url(serial number)` (RFC 9773 §4.1)."),
    ),
    responses(
        (status = 200, description = "`{suggestedWindow: {start, end}}`; `Retry-After` says when to ask again.", content_type = "application/json", body = Object,
            headers(("Retry-After" = String, description = "Seconds until the window should be asked for again."))),
        (status = 403, description = "No default profile is configured (ACME `userActionRequired`).", content_type = "application/problem+json", body = crate::http::problem::Problem),
        (status = 404, description = "No certificate with that id, renewal information is off, or no such profile (ACME `malformed`).", content_type = "application/problem+json", body = crate::http::problem::Problem),
    )
)]
pub async fn profile_renewal_info(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (profile_id, cert_id) = path.into_inner();
    renewal_info(state, req, Some(profile_id), cert_id).await
}

/// `GET /acme/renewal-info/{cert_id}` (public): a certificate's suggested renewal window.
#[utoipa::path(
    get,
    path = "/acme/renewal-info/{cert_id}",
    tag = "acme",
    operation_id = "getAcmeRenewalInfo",
    params(("cert_id" = String, Path, description = "`base64url(authority key identifier).base64url(serial number)` (RFC 9773 §4.1).")),
    responses(
        (status = 200, description = "`{suggestedWindow: {start, end}}`; `Retry-After` says when to ask again.", content_type = "application/json", body = Object,
            headers(("Retry-After" = String, description = "Seconds until the window should be asked for again."))),
        (status = 403, description = "No default profile is configured (ACME `userActionRequired`).", content_type = "application/problem+json", body = crate::http::problem::Problem),
        (status = 404, description = "No certificate with that id, renewal information is off, or the default profile is missing (ACME `malformed`).", content_type = "application/problem+json", body = crate::http::problem::Problem),
    )
)]
pub async fn default_renewal_info(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    renewal_info(state, req, None, path.into_inner()).await
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(profile_renewal_info, default_renewal_info))]
pub struct Doc;
