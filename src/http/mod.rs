//! HTTP: the app's routes and the pieces every handler shares.
//!
//! - [`request_context`]: the outermost middleware: span, problem fallback, HTTP metrics.
//! - [`request_id`]: request ids and the task-local current request.
//! - [`body_limit`]: `CERTCTL_MAX_BODY_SIZE` in app data.
//! - [`problem`]: [`problem::ApiError`] and its RFC 9457 rendering.
//! - [`json`]: the `ValidJson<T>` body extractor.
//! - [`actor`]: the `Actor` extractor (who acts, for audit rows).
//! - [`audit_read`]: audit rows for reads when `CERTCTL_AUDIT_READS` is on.
//! - [`etag`]: ETags and 304 revalidation for the hot lists, from table generations.
//! - [`cursor`]: opaque keyset cursors.
//! - [`paging`]: keyset and offset page requests, the list envelope, time parameters.
//! - [`path_id`]: the `{id}` path segments, checked as extractors.
//! - [`query`]: query strings: a route's parameters, and a list's paging plus its filters.
//! - [`unread_body`]: what a handler left of a request body, read before the answer goes out.
//! - [`sparse`]: sparse fieldsets for certificates, written without a map round trip.
//! - [`routes`]: one file per group of endpoints.

pub mod actor;
pub mod audit_read;
pub mod body_limit;
pub mod cursor;
pub mod etag;
pub mod json;
pub mod paging;
pub mod path_id;
pub mod problem;
pub mod query;
pub mod request_context;
pub mod request_id;
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

/// State shared by every worker (built once, outside the `HttpServer::new` closure).
pub struct AppState {
    /// The database handle (the engine's).
    pub db: Db,
    /// The engine: its services, one call per flow.
    pub engine: Engine,
    /// The effective settings, masked, for the admin config endpoint.
    pub effective_settings: Vec<(&'static str, String)>,
    /// The schema version this build expects (for `/ready`).
    pub expected_schema_version: i32,
    /// Whether successful reads are recorded in the audit trail (`CERTCTL_AUDIT_READS`).
    pub audit_reads: bool,
    /// Environment names certificates may carry (`CERTCTL_ENVIRONMENTS`).
    pub environments: Vec<String>,
}

/// The Prometheus handle, present in app data only when `/metrics` is served on this listener.
pub struct MetricsEndpoint(pub PrometheusHandle);

/// A route for `GET` that answers `HEAD` too (the same status and headers, no body), as RFC 9110
/// §9.3.2 expects of every `GET` resource.
pub fn read() -> actix_web::Route {
    use actix_web::guard;
    web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
}

/// Registers every route. Public: `/health`, `/ready`, `/metrics` (when on this listener),
/// `/api/v1/version`, `/api/v1/auth/info`. Everything else under `/api/v1` needs a key.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", read().to(routes::health::health))
        .route("/ready", read().to(routes::health::ready))
        .route("/metrics", read().to(routes::metrics::metrics))
        .route("/api/v1/version", read().to(routes::meta::version))
        .route("/api/v1/auth/info", read().to(routes::meta::auth_info))
        .service(
            web::scope("/api/v1")
                .wrap(from_fn(require_api_key))
                .route("/auth/check", read().to(routes::meta::auth_check))
                .route("/admin/config", read().to(routes::meta::admin_config))
                .route("/admin/scheduler/{loop}/run", web::post().to(routes::scheduler::run))
                .route("/issuers/{id}/ca", read().to(routes::issuer_ca::ca))
                .service(
                    web::resource("/certificates")
                        .route(read().to(routes::certificates::list))
                        .route(web::post().to(routes::certificates::create)),
                )
                .configure(|cfg| routes::resources::routes::<Team>(cfg, "/teams"))
                .configure(|cfg| routes::resources::routes::<Owner>(cfg, "/owners"))
                .configure(|cfg| routes::resources::routes::<RenewalPolicy>(cfg, "/renewal-policies"))
                .configure(|cfg| routes::resources::routes::<Issuer>(cfg, "/issuers"))
                .configure(|cfg| routes::resources::routes::<Profile>(cfg, "/profiles"))
                .configure(|cfg| routes::resources::routes::<Target>(cfg, "/targets"))
                .route("/audit", read().to(routes::audit::list))
                .route("/audit/{id}", read().to(routes::audit::get))
                .route("/certificates/bulk-reassign", web::post().to(routes::certificates::bulk_reassign))
                .route("/certificates/bulk-renew", web::post().to(routes::certificate_ops::bulk_renew))
                .route("/certificates/bulk-revoke", web::post().to(routes::certificate_ops::bulk_revoke))
                .route("/certificates/{id}/renew", web::post().to(routes::certificate_ops::renew))
                .route("/certificates/{id}/revoke", web::post().to(routes::certificate_ops::revoke))
                .route("/certificates/{id}/export/pem", read().to(routes::certificate_ops::export_pem))
                .service(
                    web::resource("/agents")
                        .route(read().to(routes::agents::list))
                        .route(web::post().to(routes::agents::register)),
                )
                .service(
                    web::resource("/agents/{id}")
                        .route(read().to(routes::agents::get))
                        .route(web::delete().to(routes::agents::retire)),
                )
                .route("/agents/{id}/heartbeat", web::post().to(routes::agent_api::heartbeat))
                .route("/agents/{id}/work", read().to(routes::agent_api::work))
                .route("/agents/{id}/csr", web::post().to(routes::agent_api::submit_csr))
                .route("/agents/{id}/certificates/{cert_id}", read().to(routes::agent_api::certificate))
                .route("/agents/{id}/jobs/{job_id}/status", web::post().to(routes::agent_api::job_status))
                .route("/agents/{id}/discoveries", web::post().to(routes::discovery::report))
                .route("/discovered-certificates", read().to(routes::discovery::list))
                .route("/discovered-certificates/{id}", read().to(routes::discovery::get))
                .route("/discovered-certificates/{id}/claim", web::post().to(routes::discovery::claim))
                .route("/discovered-certificates/{id}/dismiss", web::post().to(routes::discovery::dismiss))
                .route("/jobs", read().to(routes::jobs::list))
                .route("/jobs/{id}", read().to(routes::jobs::get))
                .route("/jobs/{id}/cancel", web::post().to(routes::jobs::cancel))
                .route("/jobs/{id}/retry", web::post().to(routes::jobs::retry))
                .route("/certificates/{id}/deployments", read().to(routes::certificates::deployments))
                .route("/certificates/{id}/versions", read().to(routes::certificates::versions))
                .service(
                    web::resource("/certificates/{id}")
                        .route(read().to(routes::certificates::get))
                        .route(web::put().to(routes::certificates::update))
                        .route(web::delete().to(routes::certificates::archive)),
                ),
        );
}
