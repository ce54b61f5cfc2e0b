//! `Application::build(Settings)`: everything between parsed settings and a listening server,
//! used by `main` and by the tests alike.
//!
//! Order: database (the embedded cluster when no URL is given) → migrations and seed on a dedicated
//! connection → pool and DB actors → TLS → the API and metrics listeners bound → API keys
//! (first-start admin key) → the engine's settings (sealing passphrase, CA files) →
//! `Engine::start` (its own checks, then every engine actor) → HTTP server. Everything expected to
//! fail comes before the engine's actors start. Shutdown drains HTTP, then `Engine::shutdown`
//! (loop locks released, heartbeats flushed), then the DB actors and the embedded cluster stop.
//!
//! - [`engine_settings`]: the engine's settings from the server's.
//! - [`acme_http01`]: the ACME http-01 challenge listener.
//! - [`issuer_seeds`]: issuers seeded from certctl's environment variables.

mod acme_http01;
mod engine_settings;
mod issuer_seeds;
mod listener;

use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::{from_fn, Compress};
use actix_web::{web, App, HttpResponse, HttpServer};
use anyhow::Context as _;

use certctl_actors::db::bootstrap;
use certctl_actors::db::{build_pool, DbTlsSettings, PoolSettings};
use certctl_actors::{Db, Engine};

use crate::auth::bootstrap::key_store;
use crate::embedded_postgres::{EmbeddedOptions, EmbeddedPostgres, DB_NAME};
use crate::http::body_limit::{BodyLimit, BodyTimeout};
use crate::http::problem::ApiError;
use crate::http::request_context::request_context;
use crate::http::{self, AppState, MetricsEndpoint};
use crate::settings::Settings;
use crate::{telemetry, tls};
use listener::ListenerSettings;

/// Longest time a client may take to complete its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);
/// TLS handshakes in progress per worker (actix's default is 256).
const MAX_HANDSHAKES_PER_WORKER: usize = 4096;

/// A built server, ready to run.
pub struct Application {
    port: u16,
    metrics_port: Option<u16>,
    /// The ACME http-01 challenge listener's port, when configured.
    http01_port: Option<u16>,
    scheme: &'static str,
    server: Server,
    metrics_server: Option<Server>,
    /// The ACME http-01 challenge listener, when configured.
    http01_server: Option<Server>,
    engine: Engine,
    embedded: Option<EmbeddedPostgres>,
    generated_admin_key: Option<String>,
    signals: ShutdownSignals,
}

impl Application {
    /// Starts the database side, binds the listeners and builds the HTTP server. When a first
    /// start fails (the data directory did not exist before it), the embedded cluster is stopped
    /// and the data directory removed, so the next attempt starts from nothing rather than from
    /// half a set-up.
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let data_dir = settings.data_dir.clone();
        let first_start = !data_dir.exists();
        let mut cluster = None;
        let built = Self::assemble(settings, &mut cluster).await;
        if built.is_err() {
            if let Some(mut cluster) = cluster.take() {
                let _ = tokio::task::spawn_blocking(move || cluster.stop()).await;
            }
            if first_start && data_dir.exists() {
                match std::fs::remove_dir_all(&data_dir) {
                    Ok(()) => {
                        tracing::info!(path = %data_dir.display(), "removed the data directory this failed first start made")
                    }
                    Err(e) => {
                        tracing::warn!(path = %data_dir.display(), error = %e, "could not remove the data directory this failed first start made")
                    }
                }
            }
        }
        built
    }

    /// [`Application::build`] itself; the embedded cluster, once started, is kept in `cluster`
    /// so a failure can stop it.
    async fn assemble(settings: Settings, cluster: &mut Option<EmbeddedPostgres>) -> anyhow::Result<Application> {
        let signals = ShutdownSignals::install();
        let prometheus = telemetry::metrics_handle();
        let patience = settings.database_connect_timeout;
        // Reading the CA bundle or the system roots is file I/O: keep it off the async thread.
        let tls_settings = DbTlsSettings {
            ca_path: settings.database_tls_ca_path.clone(),
            insecure_skip_verify: !settings.database_tls_verify,
        };
        let pg_tls = tokio::task::spawn_blocking(move || certctl_actors::db::connector(&tls_settings))
            .await
            .context("the PostgreSQL TLS set-up task failed")??;

        let base_config = match &settings.database_url {
            Some(url) => url.config.clone(),
            None => {
                let mut options = EmbeddedOptions::new(&settings.data_dir);
                options.bin_dir = settings.postgres_bin_dir.clone();
                // Room for the pool, the migration connection and an operator's psql sessions.
                options.max_connections = (settings.database_max_conns + 20).max(100);
                let embedded = tokio::task::spawn_blocking(move || EmbeddedPostgres::start(options))
                    .await
                    .context("the embedded PostgreSQL start-up task failed")??;
                let (admin, config) = (embedded.connect_config("postgres"), embedded.connect_config(DB_NAME));
                *cluster = Some(embedded);
                bootstrap::ensure_database(&admin, &pg_tls, DB_NAME, patience).await?;
                config
            }
        };

        let report = bootstrap::migrate(&base_config, &pg_tls, settings.demo_seed_enabled(), patience).await?;
        tracing::info!(schema_version = report.version, applied = report.applied.len(), "database schema is current");

        let pool_settings = PoolSettings::new(
            settings.database_max_conns as usize,
            settings.database_idle_timeout,
            settings.database_pool_timeout,
        );
        let pool_config = session_config(base_config, &settings);
        // The ETag cache's notification listener uses its own session with the pool's settings.
        let listener_connection = (pool_config.clone(), pg_tls.clone());
        let pool = build_pool(pool_config, pg_tls, &pool_settings)?;
        let db = Db::start(pool, pool_settings, settings.database_actor_count());

        let tls = if settings.server_tls {
            let for_tls = settings.clone();
            Some(
                tokio::task::spawn_blocking(move || tls::load(&for_tls))
                    .await
                    .context("the TLS set-up task failed")??,
            )
        } else {
            None
        };

        let listener = TcpListener::bind((settings.server_host.as_str(), settings.server_port)).with_context(|| {
            format!(
                "cannot listen on CERTCTL_SERVER_HOST={} CERTCTL_SERVER_PORT={}",
                settings.server_host, settings.server_port
            )
        })?;
        set_nodelay(&listener);
        let metrics_listener = match settings.metrics_addr {
            Some(addr) => {
                Some(TcpListener::bind(addr).with_context(|| format!("cannot listen on CERTCTL_METRICS_ADDR={addr}"))?)
            }
            None => None,
        };
        let http01_listener = match settings.acme_http01_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .with_context(|| format!("cannot listen on CERTCTL_ACME_HTTP01_LISTEN={addr}"))?,
            ),
            None => None,
        };
        let port = listener.local_addr()?.port();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url_host = match settings.server_host.parse::<std::net::IpAddr>() {
            Ok(ip) if ip.is_unspecified() => "127.0.0.1".to_string(),
            Ok(std::net::IpAddr::V6(ip)) => format!("[{ip}]"),
            _ => settings.server_host.clone(),
        };
        let base_url = format!("{scheme}://{url_host}:{port}");
        let cacert = tls.as_ref().filter(|t| t.self_signed).map(|t| t.cert_path.clone());
        let (keys, generated_admin_key) = key_store(&settings, &db, &base_url, cacert.as_deref()).await?;
        let engine_settings = engine_settings::engine_settings(&settings, listener_connection)?;

        // The engine's actors start only now that nothing else can fail: an actor started before
        // a failed build would be polled after the runtime is gone.
        let engine = Engine::start(db, engine_settings).await?;
        issuer_seeds::seed_issuers(&engine, &settings).await;
        let auth = keys.into_authenticator(engine.agents().clone(), &settings);
        let state = web::Data::new(AppState {
            engine: engine.clone(),
            effective_settings: settings.effective(),
            expected_schema_version: bootstrap::expected_schema_version(),
            tls: settings.server_tls,
        });
        let auth = web::Data::new(auth);
        let body_limit = web::Data::new(BodyLimit(settings.max_body_size));
        let body_timeout = web::Data::new(BodyTimeout(settings.request_body_timeout));
        let metrics_here = settings.metrics_addr.is_none().then(|| web::Data::new(MetricsEndpoint(prometheus.clone())));
        let max_body = settings.max_body_size as usize;

        let app = move || {
            let mut app = App::new()
                .wrap(Compress::default())
                .wrap(from_fn(request_context))
                .app_data(state.clone())
                .app_data(auth.clone())
                .app_data(body_limit.clone())
                .app_data(body_timeout.clone())
                .app_data(web::PayloadConfig::new(max_body));
            if let Some(metrics) = &metrics_here {
                app = app.app_data(metrics.clone());
            }
            app.configure(http::configure).default_service(web::to(route_not_found))
        };
        let listener_settings = ListenerSettings {
            workers: settings.server_workers as usize,
            max_connections_per_peer: settings.max_connections_per_peer as usize,
            client_request_timeout: Duration::from_secs(30),
            // A connection that opens and never starts TLS holds a handshake slot until this runs
            // out; with the slots plentiful (waiting connections cost almost nothing until they
            // speak), hundreds of silent connections cannot keep new clients from being accepted.
            tls_handshake_timeout: TLS_HANDSHAKE_TIMEOUT,
            max_handshakes_per_worker: MAX_HANDSHAKES_PER_WORKER,
            // Signals are handled in `run_until_stopped`, so SIGINT drains like SIGTERM.
            shutdown_timeout: Duration::from_secs(30),
        };
        let server = listener::serve(listener, tls.map(|t| t.config), listener_settings, app)?;

        let (metrics_server, metrics_port) = match metrics_listener {
            Some(listener) => {
                let addr = listener.local_addr()?;
                let metrics_port = listener.local_addr()?.port();
                let endpoint = web::Data::new(MetricsEndpoint(prometheus));
                let server = HttpServer::new(move || {
                    App::new()
                        .wrap(from_fn(request_context))
                        .app_data(endpoint.clone())
                        .service(
                            web::resource("/metrics").route(http::route_table::read(http::routes::metrics::metrics).1),
                        )
                        .default_service(web::to(route_not_found))
                })
                .workers(1)
                .disable_signals()
                .listen(listener)?
                .run();
                tracing::info!(address = %addr, "metrics listener started");
                (Some(server), Some(metrics_port))
            }
            None => (None, None),
        };

        let (http01_server, http01_port) = match http01_listener {
            Some(listener) => {
                let addr = listener.local_addr()?;
                let server = acme_http01::serve(listener, engine.clone())?;
                tracing::info!(address = %addr, "ACME http-01 challenge listener started");
                (Some(server), Some(addr.port()))
            }
            None => (None, None),
        };

        let embedded = cluster.take();
        tracing::info!(address = %base_url, tls = scheme == "https", embedded_database = embedded.is_some(), "certctl server listening");
        Ok(Application {
            port,
            metrics_port,
            http01_port,
            scheme,
            server,
            metrics_server,
            http01_server,
            engine,
            embedded,
            generated_admin_key,
            signals,
        })
    }

    /// The port the API listens on (useful with `CERTCTL_SERVER_PORT=0`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of the ACME http-01 challenge listener, when configured.
    pub fn http01_port(&self) -> Option<u16> {
        self.http01_port
    }

    /// The port of the separate metrics listener, when configured.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_port
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &'static str {
        self.scheme
    }

    /// The database handle (tests use it to reach the DB actors).
    pub fn db(&self) -> Db {
        self.engine.db().clone()
    }

    /// The engine (tests reach its actors and services through it).
    pub fn engine(&self) -> Engine {
        self.engine.clone()
    }

    /// The admin key generated on this start, if one was (it was also printed).
    pub fn generated_admin_key(&self) -> Option<&str> {
        self.generated_admin_key.as_deref()
    }

    /// The embedded cluster's current `postgres` pid, when the server runs one.
    pub fn embedded_postgres_pid(&self) -> Option<i32> {
        self.embedded.as_ref().and_then(EmbeddedPostgres::pid)
    }

    /// A handle that stops the server (graceful: in-flight requests finish).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGINT/SIGTERM (or [`Application::handle`]'s stop), then shuts down the DB
    /// actors and the embedded cluster in order. Fails if the embedded cluster could not be kept
    /// running.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Application { server, metrics_server, http01_server, engine, mut embedded, mut signals, .. } = self;
        let handle = server.handle();
        let metrics_handle = metrics_server.as_ref().map(Server::handle);
        if let Some(metrics_server) = metrics_server {
            actix_web::rt::spawn(metrics_server);
        }
        let http01_handle = http01_server.as_ref().map(Server::handle);
        if let Some(http01_server) = http01_server {
            actix_web::rt::spawn(http01_server);
        }
        // Histograms of a recorder that is never scraped grow until upkeep drains them.
        let upkeep = actix_web::rt::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(5));
            loop {
                every.tick().await;
                telemetry::metrics_handle().run_upkeep();
            }
        });
        let cluster_failed = async {
            match &embedded {
                Some(cluster) => cluster.failed().await,
                None => std::future::pending().await,
            }
        };
        let mut server = server;
        let outcome = tokio::select! {
            result = &mut server => result.context("the HTTP server failed"),
            signal = signals.recv() => {
                tracing::info!(signal, "shutting down: finishing in-flight requests");
                // The stop completes only while the server future is polled: drive both.
                let (_, result) = tokio::join!(handle.stop(true), &mut server);
                result.context("the HTTP server failed")
            }
            message = cluster_failed => {
                let _ = tokio::join!(handle.stop(true), &mut server);
                Err(anyhow::anyhow!(message))
            }
        };
        upkeep.abort();
        if let Some(metrics_handle) = metrics_handle {
            metrics_handle.stop(true).await;
        }
        if let Some(http01_handle) = http01_handle {
            http01_handle.stop(true).await;
        }
        // Another replica takes the loops over on its next tick; beats accepted before the stop
        // reach the database before the pool closes.
        engine.shutdown().await;
        engine.db().stop();
        if let Some(mut cluster) = embedded.take() {
            let _ = tokio::task::spawn_blocking(move || cluster.stop()).await;
        }
        tracing::info!("certctl server stopped");
        outcome
    }
}

/// Resolves with the signal's name on SIGINT or SIGTERM.
/// SIGINT and SIGTERM, caught from the start of `Application::build`: a signal that arrives while
/// the server is still starting is kept and stops it gracefully as soon as it runs.
struct ShutdownSignals {
    interrupt: Option<tokio::signal::unix::Signal>,
    terminate: Option<tokio::signal::unix::Signal>,
}

impl ShutdownSignals {
    fn install() -> Self {
        use tokio::signal::unix::{signal, SignalKind};
        let (interrupt, terminate) = (signal(SignalKind::interrupt()).ok(), signal(SignalKind::terminate()).ok());
        if interrupt.is_none() || terminate.is_none() {
            tracing::warn!("cannot install signal handlers; stop the server with SIGKILL");
        }
        ShutdownSignals { interrupt, terminate }
    }

    /// Resolves with the signal's name.
    async fn recv(&mut self) -> &'static str {
        async fn next(signal: &mut Option<tokio::signal::unix::Signal>) {
            match signal {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            _ = next(&mut self.interrupt) => "SIGINT",
            _ = next(&mut self.terminate) => "SIGTERM",
        }
    }
}

/// Sets TCP_NODELAY on the listener; accepted sockets inherit it on Linux. Without it, Nagle's
/// algorithm holds back the second small write of a response (an HTTP/2 DATA frame after its
/// HEADERS) until the client's delayed ACK, adding up to 40 ms to requests.
fn set_nodelay(listener: &TcpListener) {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: setsockopt on a socket we own, with a correctly sized option value.
    let result = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if result != 0 {
        tracing::warn!(error = %std::io::Error::last_os_error(), "could not set TCP_NODELAY on the listener");
    }
}

/// The pool's connection settings: the base config plus per-session options, sent at connect
/// time so no connection needs an extra round trip before its first query.
fn session_config(mut config: tokio_postgres::Config, settings: &Settings) -> tokio_postgres::Config {
    let statement_timeout = format!("-c statement_timeout={}", settings.database_statement_timeout.as_millis());
    let options = match config.get_options() {
        Some(existing) if !existing.is_empty() => format!("{existing} {statement_timeout}"),
        _ => statement_timeout,
    };
    config
        .options(&options)
        .application_name("certctl")
        .connect_timeout(settings.database_pool_timeout)
        .keepalives(true);
    config
}

async fn route_not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::RouteNotFound)
}
