//! The OpenAPI 3.1 document, generated from the code: each handler carries its operation
//! (`#[utoipa::path]`: parameters, body, the statuses only it answers), the engine's types their
//! schemas (`ToSchema`), the generic resource routes are described per [`Resource`] type
//! ([`resources`]), and what every route shares (the key, the problem documents of the
//! middleware, the body extractor and the database) is added once by [`common`]. Served at
//! `GET /api/v1/openapi.json`, with its HTML view (Swagger UI, from the crate's vendored bundle)
//! under `/api/v1/docs/`. `tests/api/openapi.rs` checks it against [`super::route_table`].
//!
//! [`Resource`]: certctl_actors::domain::resources::Resource

mod common;
mod resources;

use std::sync::{Arc, OnceLock};

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use utoipa::OpenApi;

use certctl_actors::domain::resources::issuer::Issuer;
use certctl_actors::domain::resources::owner::Owner;
use certctl_actors::domain::resources::profile::Profile;
use certctl_actors::domain::resources::renewal_policy::RenewalPolicy;
use certctl_actors::domain::resources::target::Target;
use certctl_actors::domain::resources::team::Team;

use super::problem::ApiError;
use super::routes::*;

/// The operations written on the handlers, and the shared components.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "certctl API",
        description = "Certificate lifecycle control plane: the inventory of X.509 certificates, \
            their renewal, the agents that install them, and the audit trail. Every error is an RFC 9457 \
            `application/problem+json` document with a stable `type` URN. Every `GET` route answers \
            `HEAD` too. See docs/api.md for the prose reference.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    paths(
        health::health,
        health::ready,
        metrics::metrics,
        meta::version,
        meta::auth_info,
        meta::auth_check,
        meta::admin_config,
        document,
        docs_redirect,
        docs_index,
        docs_file,
    ),
    components(schemas(super::problem::Problem)),
    tags(
        (name = "health", description = "Liveness, readiness and metrics (no key)."),
        (name = "meta", description = "Version, authentication and the document itself."),
        (name = "certificates", description = "Managed certificates and what is done to them."),
        (name = "resources", description = "Teams, owners, renewal policies, issuers, profiles and deployment targets."),
        (name = "jobs", description = "Renewal and deployment jobs."),
        (name = "agents", description = "Agents as operators manage them."),
        (name = "agent-api", description = "What agents call, with their own key."),
        (name = "discovery", description = "Certificates agents found on their hosts."),
        (name = "audit", description = "The audit trail."),
        (name = "admin", description = "Operations for admin keys."),
        (name = "acme", description = "The ACME server (RFC 8555): public, each POST a JWS signed by the account's key; problems use RFC 8555's types. See docs/acme.md."),
    )
)]
struct ApiDoc;

/// The whole document: the annotated operations, then the resource routes, then what is shared.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    // Each route file lists its own operations next to their handlers.
    doc.merge(certificates::Doc::openapi());
    doc.merge(certificate_ops::Doc::openapi());
    doc.merge(jobs::Doc::openapi());
    doc.merge(scheduler::Doc::openapi());
    doc.merge(issuer_ca::Doc::openapi());
    doc.merge(agents::Doc::openapi());
    doc.merge(agent_api::Doc::openapi());
    doc.merge(discovery::Doc::openapi());
    doc.merge(audit::Doc::openapi());
    doc.merge(acme::directory::Doc::openapi());
    doc.merge(acme::accounts::Doc::openapi());
    doc.merge(acme::renewal_info::Doc::openapi());
    resources::add::<Team>(&mut doc, "/api/v1/teams", "team");
    resources::add::<Owner>(&mut doc, "/api/v1/owners", "owner");
    resources::add::<RenewalPolicy>(&mut doc, "/api/v1/renewal-policies", "renewal policy");
    resources::add::<Issuer>(&mut doc, "/api/v1/issuers", "issuer");
    resources::add::<Profile>(&mut doc, "/api/v1/profiles", "certificate profile");
    resources::add::<Target>(&mut doc, "/api/v1/targets", "deployment target");
    // The shared parts go last, so they reach the resource operations too.
    common::Shared::apply(&mut doc);
    doc
}

/// The document as served, rendered once.
fn rendered() -> &'static [u8] {
    static DOCUMENT: OnceLock<Vec<u8>> = OnceLock::new();
    DOCUMENT.get_or_init(|| serde_json::to_vec(&openapi()).unwrap_or_else(|_| b"{}".to_vec()))
}

/// `GET /api/v1/openapi.json` (public).
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "meta",
    operation_id = "getOpenApiDocument",
    responses((status = 200, description = "This document.", content_type = "application/json", body = Object))
)]
pub async fn document() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(rendered())
}

/// `GET /api/v1/docs` (public): to the HTML view, whose relative links need the trailing slash.
#[utoipa::path(
    get,
    path = "/api/v1/docs",
    tag = "meta",
    operation_id = "getApiDocsRedirect",
    responses((status = 308, description = "To `/api/v1/docs/`.", headers(("Location" = String, description = "`/api/v1/docs/`"))))
)]
pub async fn docs_redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect().insert_header((header::LOCATION, "/api/v1/docs/")).finish()
}

/// The HTML view's settings: it reads the document from our own route.
fn swagger_config() -> Arc<utoipa_swagger_ui::Config<'static>> {
    static CONFIG: OnceLock<Arc<utoipa_swagger_ui::Config<'static>>> = OnceLock::new();
    CONFIG.get_or_init(|| Arc::new(utoipa_swagger_ui::Config::new(["/api/v1/openapi.json"]))).clone()
}

/// `GET /api/v1/docs/` (public): the HTML view (Swagger UI).
#[utoipa::path(
    get,
    path = "/api/v1/docs/",
    tag = "meta",
    operation_id = "getApiDocs",
    responses((status = 200, description = "The HTML view of this document.", content_type = "text/html", body = String))
)]
pub async fn docs_index() -> Result<HttpResponse, ApiError> {
    docs_file(web::Path::from("index.html".to_string())).await
}

/// `GET /api/v1/docs/{file}` (public): the HTML view's scripts, styles and images.
#[utoipa::path(
    get,
    path = "/api/v1/docs/{file}",
    tag = "meta",
    operation_id = "getApiDocsFile",
    params(("file" = String, Path, description = "A file of the view, such as `swagger-ui.css`.")),
    responses(
        (status = 200, description = "The file (HTML, JavaScript, CSS or PNG).", content_type = "text/html", body = String),
        (status = 404, description = "No such file.", content_type = "application/problem+json", body = super::problem::Problem),
    )
)]
pub async fn docs_file(file: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let file = file.into_inner();
    let not_found = || ApiError::NotFound(format!("the API docs have no file {file:?}"));
    let found = utoipa_swagger_ui::serve(&file, swagger_config()).map_err(|_| not_found())?.ok_or_else(not_found)?;
    let mut response = HttpResponse::Ok();
    if found.gzpipped {
        response.insert_header((header::CONTENT_ENCODING, "gzip"));
    }
    Ok(response.content_type(found.content_type).body(found.bytes.into_owned()))
}
