//! Test support: one PostgreSQL cluster per test process (started with the server's own embedded
//! code, or `CERTCTL_TEST_DATABASE_URL`), a template database migrated once, a fresh database per
//! test cloned from it, and `TestApp`, a real server from `Application::build` on a free port.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use certctl::embedded_postgres::{EmbeddedOptions, EmbeddedPostgres};
use certctl::settings;
use certctl::startup::Application;
use certctl_actors::db::bootstrap;
use certctl_actors::Db;
use serde_json::{json, Value};

pub const ADMIN_KEY: &str = "test-admin-key-0123456789";
pub const USER_KEY: &str = "test-user-key-0123456789";
/// A read-only key (`auditor:…:read`).
pub const READ_KEY: &str = "test-read-key-0123456789";
const TEMPLATE: &str = "certctl_template";

/// Where the shared cluster lives and how to reach it as a superuser.
pub struct Cluster {
    admin: tokio_postgres::Config,
    /// The embedded cluster, alive for the whole test process and stopped when it exits.
    embedded: std::sync::Mutex<Option<EmbeddedPostgres>>,
}

impl Cluster {
    /// A config for database `name` on the shared cluster.
    pub fn config_for(&self, name: &str) -> tokio_postgres::Config {
        let mut config = self.admin.clone();
        config.dbname(name);
        config
    }

    /// `key=value` connection string for database `name` (what a server gets as its URL).
    pub fn url_for(&self, name: &str) -> String {
        let config = self.config_for(name);
        let host = match &config.get_hosts()[0] {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        };
        let mut url = format!("host={host} port={} dbname={name}", config.get_ports().first().copied().unwrap_or(5432));
        if let Some(user) = config.get_user() {
            url.push_str(&format!(" user={user}"));
        }
        let sslmode = match config.get_ssl_mode() {
            tokio_postgres::config::SslMode::Disable => "disable",
            tokio_postgres::config::SslMode::Require => "require",
            _ => "prefer",
        };
        url.push_str(&format!(" sslmode={sslmode}"));
        if let Some(password) = config.get_password() {
            url.push_str(&format!(" password={}", String::from_utf8_lossy(password)));
        }
        url
    }

    /// What the embedded test cluster has logged so far (`None` with `CERTCTL_TEST_DATABASE_URL`).
    pub fn log_text(&self) -> Option<String> {
        let embedded = self.embedded.lock().unwrap_or_else(|e| e.into_inner());
        embedded.as_ref().map(|e| std::fs::read_to_string(e.data_dir().join("postgres.log")).unwrap_or_default())
    }

    /// A superuser client on the maintenance database.
    pub async fn admin_client(&self) -> tokio_postgres::Client {
        self.admin_client_for(self.admin.get_dbname().unwrap_or("postgres")).await
    }

    /// A superuser client on database `name`.
    pub async fn admin_client_for(&self, name: &str) -> tokio_postgres::Client {
        let (client, connection) =
            self.config_for(name).connect(pg_tls()).await.expect("connecting to the test cluster");
        tokio::spawn(connection);
        client
    }
}

/// A short path under /tmp that every user can traverse (the cluster may run as `postgres`).
/// Every scratch dir is this process's and is removed when it exits (see [`clean_up_at_exit`]).
pub fn scratch_dir(tag: &str) -> PathBuf {
    static AT_EXIT: std::sync::Once = std::sync::Once::new();
    // SAFETY: registers a plain `extern "C"` function with no arguments, as atexit expects.
    AT_EXIT.call_once(|| unsafe {
        libc::atexit(clean_up_at_exit);
    });
    let dir =
        std::env::temp_dir().join(format!("certctl-{tag}-{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("creating a scratch dir");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod scratch dir");
    dir
}

/// Runs when the test process exits: stops the shared cluster, waits for the other clusters the
/// tests started (already told to stop) to be gone, then removes this process's scratch dirs, so
/// a run leaves nothing in /tmp. `CERTCTL_TEST_KEEP_SCRATCH=1` keeps them for a post-mortem.
extern "C" fn clean_up_at_exit() {
    if let Some(cluster) = CLUSTER.get() {
        if let Some(mut embedded) = cluster.embedded.lock().unwrap_or_else(|e| e.into_inner()).take() {
            embedded.stop();
        }
    }
    if std::env::var_os("CERTCTL_TEST_KEEP_SCRATCH").is_some() {
        return;
    }
    let prefix = format!("-{}-", std::process::id());
    let ours: Vec<PathBuf> = std::fs::read_dir(std::env::temp_dir())
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().strip_prefix("certctl-").is_some_and(|rest| rest.contains(&prefix)))
        .map(|e| e.path())
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let running = |dir: &PathBuf| walk(dir, 3).iter().any(|p| p.file_name().is_some_and(|n| n == "postmaster.pid"));
    while ours.iter().any(running) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    for dir in ours {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Files under `dir`, `depth` levels deep at most.
fn walk(dir: &std::path::Path, depth: usize) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() && depth > 0 {
            found.extend(walk(&path, depth - 1));
        } else {
            found.push(path);
        }
    }
    found
}

/// Removes scratch dirs left by test processes that are gone.
fn remove_stale_scratch_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("certctl-") else {
            continue;
        };
        let Some(pid) = rest.split('-').nth(1).and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The process-wide cluster, started on first use.
pub fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(|| {
        if let Ok(url) = std::env::var("CERTCTL_TEST_DATABASE_URL") {
            let admin: tokio_postgres::Config = url.parse().expect("CERTCTL_TEST_DATABASE_URL is not a PostgreSQL URL");
            return Cluster { admin, embedded: Default::default() };
        }
        remove_stale_scratch_dirs();
        let mut options = EmbeddedOptions::new(scratch_dir("cluster"));
        options.max_connections = 400;
        // Durability is irrelevant for throw-away test data; speed is not.
        for (name, value) in [("fsync", "off"), ("synchronous_commit", "off"), ("full_page_writes", "off")] {
            options.extra_settings.push((name.into(), value.into()));
        }
        let embedded = EmbeddedPostgres::start(options).expect("starting the test cluster");
        let admin = embedded.connect_config("postgres");
        Cluster { admin, embedded: std::sync::Mutex::new(Some(embedded)) }
    })
}

/// The shared cluster, once started.
static CLUSTER: OnceLock<Cluster> = OnceLock::new();

/// Creates the migrated template once per process.
async fn ensure_template() {
    static TEMPLATE_READY: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    TEMPLATE_READY
        .get_or_init(|| async {
            let cluster = tokio::task::spawn_blocking(cluster).await.unwrap();
            let admin = cluster.admin_client().await;
            admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {TEMPLATE}"))
                .await
                .expect("dropping an old template");
            admin.batch_execute(&format!("CREATE DATABASE {TEMPLATE}")).await.expect("creating the template");
            bootstrap::migrate(&cluster.config_for(TEMPLATE), &pg_tls(), true, Duration::from_secs(10))
                .await
                .expect("migrating the template");
        })
        .await;
}

/// A fresh database cloned from the migrated template; returns its name.
pub async fn fresh_database() -> String {
    ensure_template().await;
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let admin = cluster().admin_client().await;
    // Concurrent clones of one template can collide while another clone copies it; retry briefly.
    for attempt in 0..50 {
        match admin.batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {TEMPLATE}")).await {
            Ok(()) => return name,
            Err(e) if attempt < 49 => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("cloning the template: {e}"),
        }
    }
    unreachable!()
}

/// An empty database (no migrations), for migration tests.
pub async fn empty_database() -> String {
    let name = format!("e_{}", uuid::Uuid::new_v4().simple());
    let admin = cluster().admin_client().await;
    admin.batch_execute(&format!("CREATE DATABASE {name}")).await.expect("creating an empty database");
    name
}

/// The default PostgreSQL connector (system roots, verification on).
pub fn pg_tls() -> certctl_actors::db::PgConnector {
    certctl_actors::db::connector(&Default::default()).expect("building the PostgreSQL TLS connector")
}

/// A running server on its own database.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub db_name: String,
    pub db: Db,
    pub handle: ServerHandle,
    pub metrics_port: Option<u16>,
    /// The ACME http-01 challenge listener's port, when the server has one.
    pub http01_port: Option<u16>,
    pub retention: actix::Addr<certctl_actors::audit_retention::AuditRetention>,
    /// The engine: its actors and services.
    pub engine: certctl_actors::Engine,
    /// The heartbeat aggregator (tests flush it instead of waiting for its timer).
    pub heartbeats: certctl_actors::agents::heartbeats::Heartbeats,
    /// The server's data dir (scratch), removed with the app.
    data_dir: PathBuf,
}

/// The sealing passphrase of every test server (CERTCTL_CONFIG_ENCRYPTION_KEY).
pub const TEST_SEALING_KEY: &str = "test-sealing-passphrase-0123456789";

/// The arguments every test server gets: its database, a free port, plain HTTP, two keys.
pub fn base_args(db_name: &str) -> Vec<String> {
    let url = cluster().url_for(db_name);
    vec![
        "certctl-server".into(),
        "--database-url".into(),
        url,
        "--server-port".into(),
        "0".into(),
        "--server-tls".into(),
        "false".into(),
        "--database-max-conns".into(),
        "10".into(),
        "--database-actors".into(),
        "2".into(),
        "--server-workers".into(),
        "1".into(),
        "--demo-seed".into(),
        "false".into(),
        // Loops run only when a test asks (POST /api/v1/admin/scheduler/{loop}/run), so no
        // background tick changes what a test is looking at.
        "--scheduler-enabled".into(),
        "false".into(),
        "--config-encryption-key".into(),
        TEST_SEALING_KEY.into(),
        "--api-keys-named".into(),
        format!("ops:{ADMIN_KEY}:admin,reader:{USER_KEY},auditor:{READ_KEY}:read"),
        "--data-dir".into(),
        scratch_dir("app").display().to_string(),
    ]
}

/// Parses server arguments into settings (the environment is still read, as in production).
pub fn settings_from(args: Vec<String>) -> settings::Settings {
    settings::load_from(args).expect("test settings are valid").settings
}

impl TestApp {
    /// A server with the default test settings.
    pub async fn spawn() -> TestApp {
        Self::spawn_with(&[]).await
    }

    /// A server with extra `--flag value` arguments.
    pub async fn spawn_with(extra: &[&str]) -> TestApp {
        certctl::telemetry::init_tracing(certctl::settings::LogLevel::Warn, certctl::settings::LogFormat::Text);
        let db_name = fresh_database().await;
        let mut args = base_args(&db_name);
        args.extend(extra.iter().map(|s| s.to_string()));
        Self::start(settings_from(args), db_name).await
    }

    /// Builds and runs a server from `settings`.
    pub async fn start(settings: settings::Settings, db_name: String) -> TestApp {
        let data_dir = settings.data_dir.clone();
        let app = Application::build(settings).await.expect("building the application");
        let address = format!("{}://127.0.0.1:{}", app.scheme(), app.port());
        let db = app.db();
        let handle = app.handle();
        let metrics_port = app.metrics_port();
        let http01_port = app.http01_port();
        let engine = app.engine();
        let retention = engine.audit_retention().clone();
        let heartbeats = engine.heartbeats().clone();
        actix_web::rt::spawn(app.run_until_stopped());
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        TestApp {
            address,
            client,
            db_name,
            db,
            handle,
            metrics_port,
            http01_port,
            retention,
            engine,
            heartbeats,
            data_dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// A request with the admin key.
    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path)).bearer_auth(ADMIN_KEY)
    }

    /// A request with the non-admin key.
    pub fn user(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path)).bearer_auth(USER_KEY)
    }

    /// A request without credentials.
    pub fn anonymous(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path))
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.admin(reqwest::Method::GET, path).send().await.expect("request failed")
    }

    pub async fn post_certificate(&self, body: &Value) -> reqwest::Response {
        self.admin(reqwest::Method::POST, "/api/v1/certificates").json(body).send().await.expect("request failed")
    }

    /// Creates a certificate named `name` and returns its JSON.
    pub async fn create_certificate(&self, name: &str) -> Value {
        let response = self.post_certificate(&certificate_body(name)).await;
        assert_eq!(response.status(), 201, "creating {name}");
        response.json().await.unwrap()
    }

    /// Refuses new connections to this test's database and ends the existing ones.
    pub async fn break_database(&self) {
        let admin = cluster().admin_client().await;
        admin.batch_execute(&format!("ALTER DATABASE {} ALLOW_CONNECTIONS false", self.db_name)).await.unwrap();
        admin
            .execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", &[&self.db_name])
            .await
            .unwrap();
    }

    /// Undoes [`TestApp::break_database`].
    pub async fn repair_database(&self) {
        let admin = cluster().admin_client().await;
        admin.batch_execute(&format!("ALTER DATABASE {} ALLOW_CONNECTIONS true", self.db_name)).await.unwrap();
    }

    /// The Prometheus text this server exposes.
    pub async fn metrics_text(&self) -> String {
        let url = match self.metrics_port {
            Some(port) => format!("http://127.0.0.1:{port}/metrics"),
            None => self.url("/metrics"),
        };
        self.client.get(url).send().await.unwrap().text().await.unwrap()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // The stop command is sent at once; not awaiting it lets the test end without waiting
        // for the workers to wind down. The DB actors' arbiters are stopped so their pool closes.
        drop(self.handle.stop(false));
        self.db.stop();
        drop_database_soon(self.db_name.clone());
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// Drops a test database from a thread of its own (Drop cannot await), once its connections are
/// gone (`WITH (FORCE)` ends any that linger).
fn drop_database_soon(name: String) {
    let config = cluster().admin.clone();
    let dropper = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            if let Ok((client, connection)) = config.connect(pg_tls()).await {
                tokio::spawn(connection);
                let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
            }
        });
    });
    let _ = dropper.join();
}

/// Runs the server binary to its end with a clean environment plus `vars` (settings errors,
/// `config`, `--help`, start-up failures).
pub fn run_server(args: &[&str], vars: &[(&str, &str)]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_certctl-server"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(vars.iter().copied())
        .output()
        .expect("running certctl-server")
}

/// A valid certificate body using the demo ids.
pub fn certificate_body(name: &str) -> Value {
    json!({
        "name": name,
        "common_name": format!("{name}.example.com"),
        "sans": [format!("{name}.example.com"), format!("www.{name}.example.com")],
        "environment": "production",
        "owner_id": "o-alice",
        "team_id": "t-platform",
        "issuer_id": "iss-local",
        "renewal_policy_id": "rp-standard",
        "tags": {"service": name}
    })
}

/// Asserts a problem document with `status` and type slug, and returns its JSON.
pub async fn assert_problem(response: reqwest::Response, status: u16, slug: &str) -> Value {
    assert_eq!(response.status(), status, "status");
    let content_type = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_string());
    assert_eq!(content_type.as_deref(), Some("application/problem+json"));
    let request_id = response.headers().get("x-request-id").map(|v| v.to_str().unwrap().to_string());
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], format!("urn:certctl:problem:{slug}"), "problem type in {body}");
    assert_eq!(body["status"], status);
    assert!(body["title"].is_string() && body["detail"].is_string(), "title and detail in {body}");
    assert_eq!(body["request_id"].as_str(), request_id.as_deref(), "request id in body and header");
    body
}

/// Reads one sample's value from Prometheus text (`name{labels}` exactly as rendered).
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}
