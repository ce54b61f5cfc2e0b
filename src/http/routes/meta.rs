//! Version, authentication info and the admin view of the effective settings.

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use serde::Serialize;

use crate::auth::{Admin, Authenticator, Caller};
use crate::http::AppState;

/// `/api/v1/version`'s answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Version {
    /// Always `certctl`.
    pub name: &'static str,
    /// The server's version.
    pub version: &'static str,
    /// The API version, `v1`.
    pub api: &'static str,
}

/// `/api/v1/auth/info`'s answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AuthInfo {
    /// `api-key`, or `none` when `CERTCTL_AUTH_TYPE=none`.
    pub auth_type: &'static str,
    /// Whether requests need a key.
    pub required: bool,
}

/// `/api/v1/auth/check`'s answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AuthCheck {
    /// Always `authenticated`.
    pub status: &'static str,
    /// The key's name.
    pub user: String,
    /// Whether the key is an admin key.
    pub admin: bool,
}

/// `/api/v1/admin/config`'s answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct EffectiveSettings {
    /// Every `CERTCTL_*` variable and its effective value, secrets as `***`.
    pub settings: BTreeMap<&'static str, String>,
}

/// `GET /api/v1/version` (public).
#[utoipa::path(
    get,
    path = "/api/v1/version",
    tag = "meta",
    operation_id = "getVersion",
    responses((status = 200, description = "The server's name and version.", body = Version))
)]
pub async fn version() -> HttpResponse {
    HttpResponse::Ok().json(Version { name: "certctl", version: env!("CARGO_PKG_VERSION"), api: "v1" })
}

/// `GET /api/v1/auth/info` (public): which authentication the server expects.
#[utoipa::path(
    get,
    path = "/api/v1/auth/info",
    tag = "meta",
    operation_id = "getAuthInfo",
    responses((status = 200, description = "How requests authenticate.", body = AuthInfo))
)]
pub async fn auth_info(auth: web::Data<Authenticator>) -> HttpResponse {
    let (auth_type, required) = match auth.get_ref() {
        Authenticator::ApiKeys { .. } => ("api-key", true),
        Authenticator::Disabled => ("none", false),
    };
    HttpResponse::Ok().json(AuthInfo { auth_type, required })
}

/// `GET /api/v1/auth/check`: who the presented key belongs to.
#[utoipa::path(
    get,
    path = "/api/v1/auth/check",
    tag = "meta",
    operation_id = "checkAuth",
    responses((status = 200, description = "The key is valid; whose it is.", body = AuthCheck))
)]
pub async fn auth_check(caller: Caller) -> HttpResponse {
    HttpResponse::Ok().json(AuthCheck { status: "authenticated", user: caller.name, admin: caller.admin })
}

/// `GET /api/v1/admin/config` (admin): the effective settings, secrets masked.
#[utoipa::path(
    get,
    path = "/api/v1/admin/config",
    tag = "admin",
    operation_id = "getEffectiveSettings",
    responses((status = 200, description = "The effective settings (admin keys only).", body = EffectiveSettings))
)]
#[tracing::instrument(skip_all, fields(caller = %admin.0.name))]
pub async fn admin_config(admin: Admin, state: web::Data<AppState>) -> HttpResponse {
    let settings = state.effective_settings.iter().map(|(k, v)| (*k, v.clone())).collect();
    HttpResponse::Ok().json(EffectiveSettings { settings })
}
