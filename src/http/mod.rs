//! HTTP: the app's routes and the pieces every handler shares.
//!
//! - [`request_context`]: the outermost middleware: span, problem fallback, HTTP metrics.
//! - [`request_id`]: request ids and the task-local current request.
//! - [`body_limit`]: `CERTCTL_MAX_BODY_SIZE` in app data.
//! - [`problem`]: [`problem::ApiError`] and its RFC 9457 rendering.
//! - [`json`]: the `ValidJson<T>` body extractor.
//! - [`actor`]: the `Actor` extractor (who acts, for audit rows).
//! - [`etag`]: ETags and 304 revalidation for the hot lists, from table generations.
//! - [`cursor`]: opaque keyset cursors.
//! - [`paging`]: keyset and offset page requests, the list envelope, time parameters.
//! - [`path_id`]: the `{id}` path segments, checked as extractors.
//! - [`query`]: query strings: a route's parameters, and a list's paging plus its filters.
//! - [`unread_body`]: what a handler left of a request body, read before the answer goes out.
//! - [`sparse`]: sparse fieldsets for certificates, written without a map round trip.
//! - [`route_table`]: registers each route and records it, for the check against the document.
//! - [`openapi`]: the OpenAPI 3.1 document, assembled from the handlers' annotations.
//! - [`routes`]: one file per group of endpoints.

pub mod actor;
pub mod body_limit;
pub mod cursor;
pub mod etag;
pub mod json;
pub mod openapi;
pub mod paging;
pub mod path_id;
pub mod problem;
pub mod query;
pub mod request_context;
pub mod request_id;
pub mod route_table;
pub mod routes;
pub mod sparse;
pub mod unread_body;

use actix_web::middleware::from_fn;
use actix_web::web;
use metrics_exporter_prometheus::PrometheusHandle;

use certctl_actors::domain::resources::issuer::Issuer;
use certctl_actors::domain::resources::owner::Owner;
use certctl_actors::domain::resources::profile::Profile;
use certctl_actors::domain::resources::renewal_policy::RenewalPolicy;
use certctl_actors::domain::resources::target::Target;
use certctl_actors::domain::resources::team::Team;
use certctl_actors::{Db, Engine};

use crate::auth::require_api_key;
use route_table::{delete, post, put, read, RouteEntry, Routes};

/// State shared by every worker (built once, outside the `HttpServer::new` closure).
pub struct AppState {
    /// The engine: its services, one call per flow.
    pub engine: Engine,
    /// The effective settings, masked, for the admin config endpoint.
    pub effective_settings: Vec<(&'static str, String)>,
    /// The schema version this build expects (for `/ready`).
    pub expected_schema_version: i32,
    /// Whether this listener speaks TLS (`CERTCTL_SERVER_TLS`): the scheme of the URLs the ACME
    /// server hands out when no proxy says otherwise.
    pub tls: bool,
}

impl AppState {
    /// The database handle (the engine's).
    pub fn db(&self) -> &Db {
        self.engine.db()
    }
}

/// The Prometheus handle, present in app data only when `/metrics` is served on this listener.
pub struct MetricsEndpoint(pub PrometheusHandle);

/// Registers every route. Public: `/health`, `/ready`, `/metrics` (when on this listener),
/// `/api/v1/version`, `/api/v1/auth/info`, the OpenAPI document and its HTML view, and the ACME
/// server under `/acme` (its requests are signed instead). Everything else under `/api/v1` needs
/// a key.
pub fn configure(cfg: &mut web::ServiceConfig) {
    register(cfg, &mut Vec::new());
}

/// Every route [`configure`] registers, as the router holds it.
pub fn route_table() -> Vec<RouteEntry> {
    let mut table = Vec::new();
    // `App::configure` runs the closure at once; the app itself is never started.
    let _ = actix_web::App::new().configure(|cfg| register(cfg, &mut table));
    table
}

fn register(cfg: &mut web::ServiceConfig, table: &mut Vec<RouteEntry>) {
    use routes::*;
    Routes::new(cfg, "", table)
        .at("/health", [read(health::health)])
        .at("/ready", [read(health::ready)])
        .at("/metrics", [read(metrics::metrics)])
        .at("/api/v1/version", [read(meta::version)])
        .at("/api/v1/auth/info", [read(meta::auth_info)])
        .at("/api/v1/openapi.json", [read(openapi::document)])
        .at("/api/v1/docs", [read(openapi::docs_redirect)])
        .at("/api/v1/docs/", [read(openapi::docs_index)])
        .at("/api/v1/docs/{file}", [read(openapi::docs_file)])
        .at("/acme/directory", [read(acme::directory::default_directory)])
        .at("/acme/new-nonce", [read(acme::directory::default_nonce)])
        .at("/acme/new-account", [post(acme::accounts::default_new_account)])
        .at("/acme/account/{account_id}", [post(acme::accounts::default_account)])
        .at("/acme/renewal-info/{cert_id}", [read(acme::renewal_info::default_renewal_info)])
        .at("/acme/profile/{profile_id}/directory", [read(acme::directory::profile_directory)])
        .at("/acme/profile/{profile_id}/new-nonce", [read(acme::directory::profile_nonce)])
        .at("/acme/profile/{profile_id}/new-account", [post(acme::accounts::profile_new_account)])
        .at("/acme/profile/{profile_id}/account/{account_id}", [post(acme::accounts::profile_account)])
        .at("/acme/profile/{profile_id}/renewal-info/{cert_id}", [read(acme::renewal_info::profile_renewal_info)]);
    cfg.service(web::scope("/api/v1").wrap(from_fn(require_api_key)).configure(|cfg| {
        let mut r = Routes::new(cfg, "/api/v1", table);
        r.at("/auth/check", [read(meta::auth_check)])
            .at("/admin/config", [read(meta::admin_config)])
            .at("/admin/scheduler/{loop}/run", [post(scheduler::run)])
            .at("/issuers/{id}/ca", [read(issuer_ca::ca)])
            .at("/issuers/{id}/test", [post(issuer_ca::test)])
            .at("/certificates", [read(certificates::list), post(certificates::create)])
            .at("/certificates/bulk-reassign", [post(certificates::bulk_reassign)])
            .at("/certificates/bulk-renew", [post(certificate_ops::bulk_renew)])
            .at("/certificates/bulk-revoke", [post(certificate_ops::bulk_revoke)])
            .at(
                "/certificates/{id}",
                [read(certificates::get), put(certificates::update), delete(certificates::archive)],
            )
            .at("/certificates/{id}/renew", [post(certificate_ops::renew)])
            .at("/certificates/{id}/revoke", [post(certificate_ops::revoke)])
            .at("/certificates/{id}/export/pem", [read(certificate_ops::export_pem)])
            .at("/certificates/{id}/deployments", [read(certificates::deployments)])
            .at("/certificates/{id}/versions", [read(certificates::versions)]);
        resources::routes::<Team>(&mut r, "/teams");
        resources::routes::<Owner>(&mut r, "/owners");
        resources::routes::<RenewalPolicy>(&mut r, "/renewal-policies");
        resources::routes::<Issuer>(&mut r, "/issuers");
        resources::routes::<Profile>(&mut r, "/profiles");
        resources::routes::<Target>(&mut r, "/targets");
        r.at("/audit", [read(audit::list)])
            .at("/audit/{id}", [read(audit::get)])
            .at("/agents", [read(agents::list), post(agents::register)])
            .at("/agents/{id}", [read(agents::get), delete(agents::retire)])
            .at("/agents/{id}/heartbeat", [post(agent_api::heartbeat)])
            .at("/agents/{id}/work", [read(agent_api::work)])
            .at("/agents/{id}/csr", [post(agent_api::submit_csr)])
            .at("/agents/{id}/certificates/{cert_id}", [read(agent_api::certificate)])
            .at("/agents/{id}/jobs/{job_id}/status", [post(agent_api::job_status)])
            .at("/agents/{id}/discoveries", [post(discovery::report)])
            .at("/discovered-certificates", [read(discovery::list)])
            .at("/discovered-certificates/{id}", [read(discovery::get)])
            .at("/discovered-certificates/{id}/claim", [post(discovery::claim)])
            .at("/discovered-certificates/{id}/dismiss", [post(discovery::dismiss)])
            .at("/jobs", [read(jobs::list)])
            .at("/jobs/{id}", [read(jobs::get)])
            .at("/jobs/{id}/cancel", [post(jobs::cancel)])
            .at("/jobs/{id}/retry", [post(jobs::retry)]);
    }));
}
