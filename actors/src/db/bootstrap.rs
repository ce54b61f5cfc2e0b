//! What runs on a dedicated connection before the pool starts: creating the database when the
//! server manages its own cluster, the versioned migrations (refinery, embedded from `sql/`) under
//! an advisory lock so replicas starting together don't collide, and the seed data.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio_postgres::{Client, Config};

use super::tls::PgConnector;

/// The embedded migrations from `sql/migrations` (files `V<n>__<name>.sql`).
mod embedded {
    refinery::embed_migrations!("../sql/migrations");
}

/// The demo fixtures used by certctl's examples and load scripts (idempotent).
const DEMO_SEED_SQL: &str = include_str!("../../../sql/seed/demo.sql");

/// Advisory lock key held while migrating ("certctl" + 1 in ASCII).
const MIGRATION_LOCK_KEY: i64 = 0x6365_7274_6374_6c01;

/// The schema version this build expects: the highest embedded migration.
pub fn expected_schema_version() -> i32 {
    embedded::migrations::runner().get_migrations().iter().map(|m| m.version() as i32).max().unwrap_or(0)
}

/// Connects one client outside the pool, retrying until `patience` runs out (a database that
/// starts after the server, as in container start-up, is waited for rather than fatal). Errors
/// that waiting cannot fix (authentication, a missing database, an untrusted certificate) fail
/// at once.
pub async fn connect_with_retry(config: &Config, tls: &PgConnector, patience: Duration) -> anyhow::Result<Client> {
    let deadline = Instant::now() + patience;
    let mut delay = Duration::from_millis(100);
    loop {
        // A blackholed host would otherwise hold one attempt for the OS TCP timeout.
        let remaining = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(100));
        let attempt = match tokio::time::timeout(remaining, config.connect(tls.clone())).await {
            Ok(result) => result,
            Err(_) => anyhow::bail!("could not connect to PostgreSQL within {}s", patience.as_secs()),
        };
        match attempt {
            Ok((client, connection)) => {
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(error = %e, "bootstrap connection closed");
                    }
                });
                return Ok(client);
            }
            Err(e) if !is_permanent(&e) && Instant::now() + delay < deadline => {
                tracing::info!(error = %e, retry_in_ms = delay.as_millis() as u64, "database not reachable yet");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Err(e) => return Err(e).context("could not connect to PostgreSQL"),
        }
    }
}

/// Whether a connection error will not go away by retrying.
fn is_permanent(error: &tokio_postgres::Error) -> bool {
    if let Some(db) = error.as_db_error() {
        let code = db.code().code();
        // 28: invalid authorization; 3D000: the database does not exist.
        return code.starts_with("28") || code == "3D000";
    }
    // A TLS failure (certificate verification, protocol mismatch) anywhere in the cause chain.
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let tls = cause.is::<rustls::Error>()
            || cause
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .is_some_and(|inner| inner.is::<rustls::Error>());
        if tls {
            return true;
        }
        source = cause.source();
    }
    false
}

/// Creates database `name` when it does not exist, connecting through `admin` (a config for a
/// database that always exists, such as `postgres`).
pub async fn ensure_database(admin: &Config, tls: &PgConnector, name: &str, patience: Duration) -> anyhow::Result<()> {
    let client = connect_with_retry(admin, tls, patience).await?;
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .context("looking up the certctl database")?
        .is_some();
    if !exists {
        // Identifiers cannot be bound as parameters; quote it the way PostgreSQL does.
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        client.batch_execute(&format!("CREATE DATABASE {quoted}")).await.context("creating the certctl database")?;
        tracing::info!(database = name, "created database");
    }
    Ok(())
}

/// What [`migrate`] did.
#[derive(Debug)]
pub struct MigrationReport {
    /// Migrations applied by this call (empty when the schema was already current).
    pub applied: Vec<String>,
    /// The schema version after the call.
    pub version: i32,
}

/// Applies pending migrations (and the demo seed when asked) on a dedicated connection, holding a
/// session advisory lock so a second replica starting at the same time waits instead of racing.
pub async fn migrate(
    config: &Config,
    tls: &PgConnector,
    demo_seed: bool,
    patience: Duration,
) -> anyhow::Result<MigrationReport> {
    let mut client = connect_with_retry(config, tls, patience).await?;
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY]).await.context("taking the migration lock")?;
    let result = migrate_locked(&mut client, demo_seed).await;
    // The lock is also released when the connection closes; unlocking explicitly keeps a reused
    // connection clean and lets the next replica in at once.
    let _ = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY]).await;
    result
}

async fn migrate_locked(client: &mut Client, demo_seed: bool) -> anyhow::Result<MigrationReport> {
    let report = embedded::migrations::runner()
        .set_abort_divergent(true)
        .run_async(client)
        .await
        .context("applying database migrations")?;
    let applied: Vec<String> = report.applied_migrations().iter().map(|m| m.to_string()).collect();
    for name in &applied {
        tracing::info!(migration = %name, "applied migration");
    }
    if demo_seed {
        client.batch_execute(DEMO_SEED_SQL).await.context("loading the demo seed (sql/seed/demo.sql)")?;
        tracing::info!("demo seed loaded");
    }
    Ok(MigrationReport { applied, version: expected_schema_version() })
}
