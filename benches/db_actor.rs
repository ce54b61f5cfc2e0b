//! Is the DB actor a bottleneck? Measures point reads (`get_certificate`) and 50-row pages
//! (`list_certificates`) through the DB actor with 1, 2 and 4 instances, against the same queries
//! run straight on the pool (the ceiling the actor can at best match), over a real embedded
//! PostgreSQL. Reports throughput, p50/p99 latency and the ratio to the direct ceiling: the
//! reasoning behind the `CERTCTL_DATABASE_ACTORS` default.
//!
//! `cargo bench --bench db_actor` (5 s per case) or `cargo bench --bench db_actor -- --quick` (1 s
//! per case). Results: a table on stdout and JSON in `$CARGO_TARGET_TMPDIR/db_actor.json`;
//! discussed in docs/operator/benchmarks.md.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use certctl::embedded_postgres::{EmbeddedOptions, EmbeddedPostgres, DB_NAME};
use certctl_actors::db::bootstrap;
use certctl_actors::db::{build_pool, connector, DbTlsSettings, PgConnector, PoolSettings};
use certctl_actors::queries::certificate_list::{ListCertificates, Paging};
use certctl_actors::queries::certificates::GetCertificate;
use certctl_actors::{Db, DbQuery};
use serde_json::json;

/// Concurrent callers (like HTTP requests in flight).
const CALLERS: usize = 64;
/// Certificates seeded.
const SEEDED: i64 = 10_000;

#[derive(Clone, Copy, Debug)]
enum Workload {
    Get,
    List,
}

struct Outcome {
    ops: u64,
    seconds: f64,
    p50_us: f64,
    p99_us: f64,
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let per_case = if quick { Duration::from_secs(1) } else { Duration::from_secs(5) };
    let scratch = std::env::temp_dir().join(format!("certctl-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    std::fs::set_permissions(&scratch, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut options = EmbeddedOptions::new(scratch.join("data"));
    options.max_connections = 200;
    let embedded = EmbeddedPostgres::start(options).expect("starting PostgreSQL");

    let results = actix_rt::System::new().block_on(async move {
        let tls = connector(&DbTlsSettings::default()).unwrap();
        bootstrap::ensure_database(&embedded.connect_config("postgres"), &tls, DB_NAME, Duration::from_secs(10))
            .await
            .unwrap();
        let config = embedded.connect_config(DB_NAME);
        bootstrap::migrate(&config, &tls, true, Duration::from_secs(10)).await.unwrap();
        seed(&config, &tls).await;

        let settings = PoolSettings::new(32, Duration::from_secs(300), Duration::from_secs(5));
        let mut rows = Vec::new();
        for workload in [Workload::Get, Workload::List] {
            let direct = run_direct(build_pool(config.clone(), tls.clone(), &settings).unwrap(), workload, per_case);
            report(&mut rows, workload, "direct pool (ceiling)", &direct, &direct);
            for instances in [1usize, 2, 4] {
                // A fresh pool per case: connections live on the arbiter that opened them, and
                // the previous case's arbiters are stopped.
                let db =
                    Db::start(build_pool(config.clone(), tls.clone(), &settings).unwrap(), settings.clone(), instances);
                let outcome = run_actor(db.clone(), workload, per_case);
                report(&mut rows, workload, &format!("DB actor x{instances}"), &outcome, &direct);
                db.stop();
            }
        }
        drop(embedded);
        rows
    });
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("db_actor.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&results).unwrap()).unwrap();
    println!("\nJSON: {}", path.display());
    let _ = std::fs::remove_dir_all(&scratch);
}

fn report(rows: &mut Vec<serde_json::Value>, workload: Workload, case: &str, o: &Outcome, ceiling: &Outcome) {
    let rate = o.ops as f64 / o.seconds;
    let ratio = rate / (ceiling.ops as f64 / ceiling.seconds);
    println!(
        "{:<5} {:<24} {:>9.0} ops/s  p50 {:>7.0} µs  p99 {:>7.0} µs  {:>5.2}x of direct",
        format!("{workload:?}"),
        case,
        rate,
        o.p50_us,
        o.p99_us,
        ratio
    );
    rows.push(json!({"workload": format!("{workload:?}"), "case": case, "ops_per_sec": rate,
        "p50_us": o.p50_us, "p99_us": o.p99_us, "ratio_to_direct": ratio, "callers": CALLERS}));
}

async fn seed(config: &tokio_postgres::Config, tls: &PgConnector) {
    let client = bootstrap::connect_with_retry(config, tls, Duration::from_secs(10)).await.unwrap();
    client
        .execute(
            "INSERT INTO managed_certificates (id, name, common_name, owner_id, team_id, issuer_id, renewal_policy_id)
             SELECT 'mc-bench-' || g, 'bench-' || g, 'bench-' || g || '.example.com', 'o-alice', 't-platform', 'iss-local', 'rp-standard'
             FROM generate_series(1, $1::bigint) g ON CONFLICT DO NOTHING",
            &[&SEEDED],
        )
        .await
        .unwrap();
    client.batch_execute("ANALYZE managed_certificates").await.unwrap();
}

fn id_for(n: u64) -> String {
    format!("mc-bench-{}", n % SEEDED as u64 + 1)
}

/// Runs `drive` on a 2-thread tokio runtime of its own thread, as HTTP workers run beside the
/// actors' arbiters.
fn on_own_runtime<F, Fut>(duration: Duration, op: F) -> Outcome
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(drive(duration, op))
    })
    .join()
    .unwrap()
}

/// Callers running the queries straight on pooled connections.
fn run_direct(pool: deadpool_postgres::Pool, workload: Workload, duration: Duration) -> Outcome {
    on_own_runtime(duration, move |n| {
        let pool = pool.clone();
        async move {
            let mut client = pool.get().await.expect("pool");
            match workload {
                Workload::Get => drop(GetCertificate { id: id_for(n) }.run(&mut client).await.expect("get")),
                Workload::List => drop(
                    ListCertificates {
                        filters: Default::default(),
                        sort: Default::default(),
                        paging: Paging::Keyset { after: None, limit: 50 },
                        with_total: false,
                    }
                    .run(&mut client)
                    .await
                    .expect("list"),
                ),
            }
        }
    })
}

/// The same callers, but every query goes through `Db::run` to the DB actor instances.
fn run_actor(db: Db, workload: Workload, duration: Duration) -> Outcome {
    on_own_runtime(duration, move |n| {
        let db = db.clone();
        async move {
            match workload {
                Workload::Get => drop(db.run(GetCertificate { id: id_for(n) }).await.expect("get")),
                Workload::List => drop(
                    db.run(ListCertificates {
                        filters: Default::default(),
                        sort: Default::default(),
                        paging: Paging::Keyset { after: None, limit: 50 },
                        with_total: false,
                    })
                    .await
                    .expect("list"),
                ),
            }
        }
    })
}

/// Runs `CALLERS` closed-loop callers for `duration`, recording every call's latency.
async fn drive<F, Fut>(duration: Duration, op: F) -> Outcome
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let stop = Arc::new(AtomicBool::new(false));
    let latencies = Arc::new(Mutex::new(Vec::<u32>::with_capacity(1 << 20)));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for caller in 0..CALLERS {
        let (stop, latencies, op) = (stop.clone(), latencies.clone(), op.clone());
        tasks.push(tokio::spawn(async move {
            let mut local = Vec::with_capacity(1 << 14);
            let mut n = caller as u64 * 7919;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                op(n).await;
                local.push(t.elapsed().as_micros() as u32);
                n += 1;
            }
            latencies.lock().unwrap().extend(local);
        }));
    }
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }
    let seconds = started.elapsed().as_secs_f64();
    let mut all = std::mem::take(&mut *latencies.lock().unwrap());
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1))).copied().unwrap_or(0) as f64
    };
    Outcome { ops: all.len() as u64, seconds, p50_us: pct(0.50), p99_us: pct(0.99) }
}
