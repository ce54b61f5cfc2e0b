//! Version, authentication info and the admin view of the effective settings.

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::auth::{Admin, Authenticator, Caller};
use crate::http::AppState;

/// `GET /api/v1/version` (public).
pub async fn version() -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "name": "certctl",
        "version": env!("CARGO_PKG_VERSION"),
        "api": "v1",
    }))
}

/// `GET /api/v1/auth/info` (public): which authentication the server expects.
pub async fn auth_info(auth: web::Data<Authenticator>) -> HttpResponse {
    let (auth_type, required) = match auth.get_ref() {
        Authenticator::ApiKeys { .. } => ("api-key", true),
        Authenticator::Disabled => ("none", false),
    };
    HttpResponse::Ok().json(json!({ "auth_type": auth_type, "required": required }))
}

/// `GET /api/v1/auth/check`: who the presented key belongs to.
pub async fn auth_check(caller: Caller) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "authenticated", "user": caller.name, "admin": caller.admin }))
}

/// `GET /api/v1/admin/config` (admin): the effective settings, secrets masked.
#[tracing::instrument(skip_all, fields(caller = %admin.0.name))]
pub async fn admin_config(admin: Admin, state: web::Data<AppState>) -> HttpResponse {
    let settings: serde_json::Map<String, serde_json::Value> =
        state.effective_settings.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
    HttpResponse::Ok().json(json!({ "settings": settings }))
}
