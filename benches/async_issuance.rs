//! Scenario `async_issuance`: renewals through a remote CA that keeps each order pending for a
//! few polls, beside renewals on the local CA. The remote CA is the fake DigiCert of the API tests
//! (`tests/api/fake_ca`, HTTPS in this process), which answers every order's status poll "pending"
//! `--polls N` times (3 by default) before it issues. The server (server-side keys, scheduler
//! timers off) polls 200 ms after a submission, then three times longer each time up to 1 s, 64
//! orders at once per issuer.
//!
//! - Local CA alone: 1,000 due certificates on `iss-local`, one renewal scan, the time until every
//!   job is Completed. This is the ceiling the next phase is compared with.
//! - Mixed: 1,000 due certificates on the fake DigiCert and 1,000 more on `iss-local`, one renewal
//!   scan for all of them. Measured: the time until every remote job is Completed (the drain),
//!   the orders in flight over time (`ca_orders` not yet issued, sampled from the server's
//!   database), the status polls per second the CA saw, and the local CA's rate while the remote
//!   orders are in flight, as a ratio to its rate alone. Times are the jobs' own `completed_at`
//!   against the database clock read just before the scan.
//!
//! Goal: the local rate with the remote orders in flight ≥ 0.8 × the local rate alone, every job
//! Completed, and exactly one submission to the CA per remote certificate. For scale, the drain is
//! also compared with the backoff floor: the poll schedule alone (N "pending" answers and the
//! issuing poll at the mean of the jittered intervals), which no amount of capacity shortens.
//!
//! `cargo bench --bench async_issuance` (1,000 + 1,000) or `-- --quick` (200 + 200); `-- --polls N`.
//! `CERTCTL_*` variables in the environment override the scenario's settings (see harness/server.rs).

// Unused here: the other vendors' fakes, helpers only the API tests use, and the self-test's
// imports (`cargo check` builds a bench with `cfg(test)` on but its `#[test]` functions left out).
#[path = "../tests/api/fake_ca/mod.rs"]
#[allow(dead_code, unused_imports)]
mod fake_ca;
mod harness;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use fake_ca::{Behaviour, FakeCa, Vendor};
use harness::report::write_json;
use harness::seed::Certificates;
use harness::server::{process_cpu, BenchServer};
use serde_json::json;

/// What the fake CA module takes from the API tests' helpers.
mod helpers {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fresh directory under the system temp dir (the fake CA writes its PEM files there and
    /// removes it when dropped).
    pub fn scratch_dir(tag: &str) -> PathBuf {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("certctl-bench-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("creating a scratch dir");
        // The server runs as its own process and reads the CA file from here.
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
        dir
    }
}

/// The remote issuer's id.
const REMOTE: &str = "iss-dc";
/// Certificates renewed before the local CA's rate is measured (first connections, caches).
const WARM_UP: i64 = 100;
/// The longest any phase may take.
const TIMEOUT: Duration = Duration::from_secs(600);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let polls: u32 = match args.iter().position(|a| a == "--polls") {
        Some(at) => args.get(at + 1).and_then(|n| n.parse().ok()).expect("--polls takes a number"),
        None => 3,
    };
    let count = if quick { 200 } else { 1_000 };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(run(quick, count, polls));
}

async fn run(quick: bool, count: i64, polls: u32) {
    let setting = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_string());
    let initial = setting("CERTCTL_ASYNC_POLL_INITIAL_INTERVAL", "200ms");
    let max = setting("CERTCTL_ASYNC_POLL_MAX_INTERVAL", "1s");
    let concurrency = setting("CERTCTL_ASYNC_POLL_CONCURRENCY", "64");
    let floor = backoff_floor(parse_duration(&initial), parse_duration(&max), polls);
    println!(
        "async_issuance ({}): {count} remote + {count} local certificates, {polls} pending answers per order, \
         polls {initial} tripling to {max}, {concurrency} orders at once",
        if quick { "quick" } else { "full" }
    );

    let fake = FakeCa::start(Vendor::DigiCert, Behaviour { pending_polls: polls, ..Behaviour::default() }).await;
    let server = BenchServer::start(&[
        ("CERTCTL_KEYGEN_MODE", "server"),
        ("CERTCTL_SCHEDULER_ENABLED", "false"),
        ("CERTCTL_ASYNC_POLL_INITIAL_INTERVAL", "200ms"),
        ("CERTCTL_ASYNC_POLL_MAX_INTERVAL", "1s"),
        ("CERTCTL_ASYNC_POLL_CONCURRENCY", "64"),
    ])
    .await;
    let issuer = json!({"id": REMOTE, "name": "fake DigiCert", "type": "digicert", "config": fake.issuer_config()});
    let (status, created) = server.admin_post("/api/v1/issuers", &issuer).await;
    assert_eq!(status, 201, "creating the remote issuer: {created}");
    let db = server.database().await;

    // 1. The local CA alone (after a warm-up).
    seed(&server, &db, "warm", WARM_UP, None).await;
    drain_alone(&server, &db, "warm", WARM_UP).await;
    seed(&server, &db, "alone", count, None).await;
    let alone_secs = drain_alone(&server, &db, "alone", count).await;
    let alone_rate = count as f64 / alone_secs;
    println!("  1. local CA alone: {count} renewals in {alone_secs:.2} s: {alone_rate:.0} renewals/s");

    // 2. Remote and local certificates due together, one scan.
    seed(&server, &db, "remote", count, Some(REMOTE)).await;
    seed(&server, &db, "local", count, None).await;
    let statements_before = statements(&server).await;
    let (cpu_before, bench_cpu_before, started) = (server.cpu_seconds(), process_cpu(bench_pid()), Instant::now());
    let scan_at = db_clock(&db).await;
    run_scan(&server).await;
    let pumping = pump(&server);
    let mut in_flight: Vec<(f64, i64)> = Vec::new();
    loop {
        let row = db
            .query_one(
                "SELECT count(*) FILTER (WHERE certificate_id LIKE 'mc-remote-%'), \
                        count(*) FILTER (WHERE certificate_id LIKE 'mc-local-%'), \
                        (SELECT count(*) FROM ca_orders WHERE state IN ('new', 'submitting', 'pending')) \
                   FROM jobs WHERE type IN ('Issuance', 'Renewal') AND status IN ('Completed', 'Failed')",
                &[],
            )
            .await
            .unwrap();
        let (remote, local, live): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
        in_flight.push((started.elapsed().as_secs_f64(), live));
        if (remote >= count && local >= count) || started.elapsed() > TIMEOUT {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    pumping.abort();
    let wall = started.elapsed().as_secs_f64();
    let (cpu_after, bench_cpu_after) = (server.cpu_seconds(), process_cpu(bench_pid()));
    let statements_during = statements(&server).await;

    let remote = outcome(&db, "remote", scan_at).await;
    let local = outcome(&db, "local", scan_at).await;
    let mixed_rate = local.completed as f64 / local.seconds;
    let mixed_ratio = mixed_rate / alone_rate;
    let handed_over_by_local_end = orders_live_at(&db, "remote", scan_at + local.seconds).await;
    let max_in_flight = in_flight.iter().map(|&(_, live)| live).max().unwrap_or(0);
    let (submissions, status_polls) = (fake.submissions(), fake.status_polls());
    let polls_per_sec = status_polls as f64 / remote.seconds;
    let orders = orders_of(&db, "remote").await;
    let verified = verify_remote(&server, &db, "remote", &fake.root_pem()).await;
    let server_cores = (cpu_after.0 - cpu_before.0) / wall;
    let postgres_cores = (cpu_after.1 - cpu_before.1) / wall;
    let bench_cores = (bench_cpu_after - bench_cpu_before) / wall;
    let busiest = busiest_statements(&statements_before, &statements_during, 5);

    println!("  2. {count} remote and {count} local certificates due together, one renewal scan:");
    println!(
        "     remote drain: {}/{count} Completed ({} failed) in {:.2} s: {:.0} renewals/s; backoff floor {floor:.2} s \
         ({:.0}% of the drain)",
        remote.completed,
        remote.failed,
        remote.seconds,
        remote.completed as f64 / remote.seconds,
        100.0 * floor / remote.seconds
    );
    println!(
        "     orders in flight: at most {max_in_flight}; every 0.5 s: {}",
        in_flight.iter().step_by(5).map(|(_, live)| live.to_string()).collect::<Vec<_>>().join(" ")
    );
    println!(
        "     the CA saw {submissions} submissions and {status_polls} status polls ({:.1} per order): \
         {polls_per_sec:.0} polls/s",
        status_polls as f64 / count as f64
    );
    println!(
        "     ca_orders: {} orders for {} certificates, {} issued; openssl verify: {verified}/{count} remote chains \
         verify against the fake CA",
        orders.orders, orders.certificates, orders.issued
    );
    println!(
        "     local CA in the same scan: {}/{count} Completed ({} failed) in {:.2} s: {mixed_rate:.0} renewals/s \
         ({mixed_ratio:.2} × alone); {handed_over_by_local_end} remote orders had been handed over by then",
        local.completed, local.failed, local.seconds
    );
    println!(
        "     CPU: server {server_cores:.2} cores, PostgreSQL {postgres_cores:.2} cores, bench process (the fake CA) \
         {bench_cores:.2} cores"
    );
    println!(
        "     busiest statements: {}",
        busiest.iter().map(|(name, n, secs)| format!("{name} {n:.0}× {secs:.2} s")).collect::<Vec<_>>().join(", ")
    );

    // 3. The local CA while remote orders are in flight: the remote ones are all handed over
    // before the local ones are due.
    seed(&server, &db, "remote2", count, Some(REMOTE)).await;
    let remote2_scan_at = db_clock(&db).await;
    run_scan(&server).await;
    let pumping = pump(&server);
    let started = Instant::now();
    let all_handed_over = loop {
        let handed_over = orders_of(&db, "remote2").await.orders;
        if handed_over >= count || started.elapsed() > TIMEOUT {
            break handed_over >= count;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    seed(&server, &db, "local2", count, None).await;
    let local2_scan_at = db_clock(&db).await;
    let in_flight_at_scan = orders_live_at(&db, "remote2", local2_scan_at).await;
    run_scan(&server).await;
    wait_for(&db, "local2", count).await;
    let local2 = outcome(&db, "local2", local2_scan_at).await;
    let in_flight_at_local_end = orders_live_at(&db, "remote2", local2_scan_at + local2.seconds).await;
    wait_for(&db, "remote2", count).await;
    pumping.abort();
    let remote2 = outcome(&db, "remote2", remote2_scan_at).await;
    let orders2 = orders_of(&db, "remote2").await;
    let in_flight_rate = local2.completed as f64 / local2.seconds;
    let ratio = in_flight_rate / alone_rate;
    let total_submissions = fake.submissions();
    println!("  3. {count} local certificates due while {count} remote orders are in flight:");
    println!(
        "     local CA: {}/{count} Completed ({} failed) in {:.2} s: {in_flight_rate:.0} renewals/s; remote orders in \
         flight at its scan {in_flight_at_scan}, when its last job completed {in_flight_at_local_end}",
        local2.completed, local2.failed, local2.seconds
    );
    println!(
        "     remote: {}/{count} Completed ({} failed) in {:.2} s, {} orders for {} certificates",
        remote2.completed, remote2.failed, remote2.seconds, orders2.orders, orders2.certificates
    );
    println!("  local rate with {count} remote orders in flight / local rate alone: {ratio:.2}");

    let once_each = submissions as i64 == count
        && total_submissions as i64 == 2 * count
        && orders.orders == count
        && orders.certificates == count
        && orders2.orders == count
        && orders2.certificates == count;
    let all_done = remote.completed == count
        && local.completed == count
        && remote2.completed == count
        && local2.completed == count
        && verified == count;
    let overlapped = all_handed_over && in_flight_at_local_end >= count * 9 / 10;
    let goal_met = ratio >= 0.8 && once_each && all_done && overlapped;
    println!("  our goal:");
    println!(
        "    {}   ours: local rate with the remote orders in flight ≥ 0.8 × alone ({ratio:.2}), every job \
         Completed, one submission per remote certificate ({total_submissions}/{})",
        if goal_met { "PASS" } else { "MISS" },
        2 * count
    );
    let busiest_json: Vec<_> =
        busiest.iter().map(|(name, n, secs)| json!({"statement": name, "count": n, "seconds": secs})).collect();
    let report = json!({
        "scenario": "async_issuance",
        "mode": if quick { "quick" } else { "full" },
        "remote_certificates": count,
        "local_certificates": count,
        "pending_polls": polls,
        "poll_initial_interval": initial,
        "poll_max_interval": max,
        "poll_concurrency": concurrency,
        "machine": { "cpus": std::thread::available_parallelism().map(usize::from).unwrap_or(0) },
        "local_alone": { "seconds": alone_secs, "renewals_per_sec": alone_rate },
        "mixed_scan": {
            "remote": {
                "completed": remote.completed,
                "failed": remote.failed,
                "drain_seconds": remote.seconds,
                "backoff_floor_seconds": floor,
                "floor_to_drain": floor / remote.seconds,
                "max_orders_in_flight": max_in_flight,
                "orders_in_flight": in_flight.iter().map(|&(t, live)| json!([t, live])).collect::<Vec<_>>(),
                "submissions": submissions,
                "status_polls": status_polls,
                "polls_per_sec": polls_per_sec,
                "ca_orders": orders.orders,
                "ordered_certificates": orders.certificates,
                "issued_orders": orders.issued,
                "verified": verified,
            },
            "local": {
                "completed": local.completed,
                "failed": local.failed,
                "seconds": local.seconds,
                "renewals_per_sec": mixed_rate,
                "ratio_to_alone": mixed_ratio,
                "remote_orders_handed_over_by_then": handed_over_by_local_end,
            },
            "server_cpu_cores": server_cores,
            "postgres_cpu_cores": postgres_cores,
            "bench_cpu_cores": bench_cores,
            "busiest_statements": busiest_json,
        },
        "local_with_remote_in_flight": {
            "completed": local2.completed,
            "failed": local2.failed,
            "seconds": local2.seconds,
            "renewals_per_sec": in_flight_rate,
            "remote_orders_in_flight_at_scan": in_flight_at_scan,
            "remote_orders_in_flight_at_end": in_flight_at_local_end,
            "remote_completed": remote2.completed,
            "remote_seconds": remote2.seconds,
            "ca_orders": orders2.orders,
        },
        "local_rate_ratio": ratio,
        "submissions_total": total_submissions,
        "goal_met": goal_met,
    });
    println!("JSON: {}", write_json("async_issuance", &report).display());
}

/// Seeds `count` due certificates `mc-<prefix>-<g>`, on the local CA or moved to `issuer` (the
/// harness seeds them all on `iss-local`).
async fn seed(server: &BenchServer, db: &tokio_postgres::Client, prefix: &str, count: i64, issuer: Option<&str>) {
    let shape = Certificates {
        id_prefix: prefix,
        name_prefix: prefix,
        owner: "o-alice",
        expires_at: "now() + interval '20 days'",
        renew_at: "now() - interval '1 minute'",
        created_at: None,
        vacuum: false,
    };
    harness::seed::certificates(server, count, shape).await;
    if let Some(issuer) = issuer {
        let moved = db
            .execute(
                "UPDATE managed_certificates SET issuer_id = $1 WHERE id LIKE $2",
                &[&issuer, &format!("mc-{prefix}-%")],
            )
            .await
            .expect("moving the seeded certificates to the remote issuer");
        assert_eq!(moved as i64, count);
        db.batch_execute("ANALYZE managed_certificates").await.unwrap();
    }
}

/// One renewal scan through the admin API.
async fn run_scan(server: &BenchServer) {
    let (status, scan) = server.admin_post("/api/v1/admin/scheduler/renewal_scan/run", &json!({})).await;
    assert_eq!(status, 200, "renewal scan: {scan}");
}

/// Asks the job processor for a round every 200 ms (each runs until the queue is empty or its
/// deadline), as renewal_drain does, until aborted.
fn pump(server: &BenchServer) -> tokio::task::JoinHandle<()> {
    let (client, base) = (server.client.clone(), server.base.clone());
    tokio::spawn(async move {
        loop {
            let _ = client
                .post(format!("{base}/api/v1/admin/scheduler/job_processor/run"))
                .bearer_auth(harness::server::KEY)
                .send()
                .await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

/// The database's clock, Unix seconds.
async fn db_clock(db: &tokio_postgres::Client) -> f64 {
    db.query_one("SELECT extract(epoch FROM clock_timestamp())::float8", &[]).await.unwrap().get(0)
}

/// Renews the `prefix` certificates (on the local CA) alone: one scan, then the seconds from
/// just before it until the last job completed.
async fn drain_alone(server: &BenchServer, db: &tokio_postgres::Client, prefix: &str, count: i64) -> f64 {
    let scan_at = db_clock(db).await;
    run_scan(server).await;
    let pumping = pump(server);
    wait_for(db, prefix, count).await;
    pumping.abort();
    let outcome = outcome(db, prefix, scan_at).await;
    assert_eq!(outcome.completed, count, "{prefix}: every job Completed ({} failed)", outcome.failed);
    outcome.seconds
}

/// Waits until `count` of the `prefix` certificates' jobs have ended (or [`TIMEOUT`]).
async fn wait_for(db: &tokio_postgres::Client, prefix: &str, count: i64) {
    let started = Instant::now();
    let pattern = format!("mc-{prefix}-%");
    loop {
        let done: i64 = db
            .query_one(
                "SELECT count(*) FROM jobs WHERE certificate_id LIKE $1 AND type IN ('Issuance', 'Renewal') \
                    AND status IN ('Completed', 'Failed')",
                &[&pattern],
            )
            .await
            .unwrap()
            .get(0);
        if done >= count || started.elapsed() > TIMEOUT {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The orders for the `prefix` certificates handed over by `at` (Unix seconds) and not yet
/// issued then.
async fn orders_live_at(db: &tokio_postgres::Client, prefix: &str, at: f64) -> i64 {
    db.query_one(
        "SELECT count(*) FROM ca_orders WHERE certificate_id LIKE $1 AND created_at <= to_timestamp($2) \
            AND (issued_at IS NULL OR issued_at > to_timestamp($2))",
        &[&format!("mc-{prefix}-%"), &at],
    )
    .await
    .unwrap()
    .get(0)
}

/// The `prefix` certificates' orders.
struct Orders {
    orders: i64,
    /// Distinct certificates among them.
    certificates: i64,
    issued: i64,
}

async fn orders_of(db: &tokio_postgres::Client, prefix: &str) -> Orders {
    let row = db
        .query_one(
            "SELECT count(*), count(DISTINCT certificate_id), count(*) FILTER (WHERE state = 'issued') \
               FROM ca_orders WHERE certificate_id LIKE $1",
            &[&format!("mc-{prefix}-%")],
        )
        .await
        .unwrap();
    Orders { orders: row.get(0), certificates: row.get(1), issued: row.get(2) }
}

/// The server's statements so far, from `certctl_db_query_duration_seconds`: (count, seconds)
/// by statement.
async fn statements(server: &BenchServer) -> BTreeMap<String, (f64, f64)> {
    let text = server.client.get(format!("{}/metrics", server.base)).send().await.expect("metrics").text().await;
    let mut totals: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for line in text.unwrap_or_default().lines() {
        let (field, rest) = if let Some(rest) = line.strip_prefix("certctl_db_query_duration_seconds_count{") {
            (0, rest)
        } else if let Some(rest) = line.strip_prefix("certctl_db_query_duration_seconds_sum{") {
            (1, rest)
        } else {
            continue;
        };
        let Some(statement) = rest.split("statement=\"").nth(1).and_then(|r| r.split('"').next()) else { continue };
        let Some(value) = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) else { continue };
        let entry = totals.entry(statement.to_string()).or_default();
        if field == 0 {
            entry.0 += value;
        } else {
            entry.1 += value;
        }
    }
    totals
}

/// The `n` statements with the most time between two snapshots: (name, count, seconds).
fn busiest_statements(
    before: &BTreeMap<String, (f64, f64)>,
    after: &BTreeMap<String, (f64, f64)>,
    n: usize,
) -> Vec<(String, f64, f64)> {
    let mut deltas: Vec<(String, f64, f64)> = after
        .iter()
        .map(|(name, &(count, secs))| {
            let (count_before, secs_before) = before.get(name).copied().unwrap_or_default();
            (name.clone(), count - count_before, secs - secs_before)
        })
        .filter(|(_, count, _)| *count > 0.0)
        .collect();
    deltas.sort_by(|a, b| b.2.total_cmp(&a.2));
    deltas.truncate(n);
    deltas
}

fn bench_pid() -> i32 {
    std::process::id() as i32
}

/// How the `prefix` certificates' jobs ended.
struct Outcome {
    completed: i64,
    failed: i64,
    /// From `scan_at` until the last Completed job completed.
    seconds: f64,
}

async fn outcome(db: &tokio_postgres::Client, prefix: &str, scan_at: f64) -> Outcome {
    let row = db
        .query_one(
            "SELECT count(*) FILTER (WHERE status = 'Completed'), count(*) FILTER (WHERE status = 'Failed'), \
                    extract(epoch FROM max(completed_at) FILTER (WHERE status = 'Completed'))::float8 \
               FROM jobs WHERE certificate_id LIKE $1 AND type IN ('Issuance', 'Renewal')",
            &[&format!("mc-{prefix}-%")],
        )
        .await
        .unwrap();
    let last: Option<f64> = row.get(2);
    Outcome { completed: row.get(0), failed: row.get(1), seconds: last.map_or(f64::NAN, |last| last - scan_at) }
}

/// How many of the `prefix` certificates have a newest chain that `openssl verify` accepts under
/// the fake CA's root.
async fn verify_remote(server: &BenchServer, db: &tokio_postgres::Client, prefix: &str, root_pem: &str) -> i64 {
    let rows = db
        .query(
            "SELECT DISTINCT ON (certificate_id) pem_chain FROM certificate_versions \
              WHERE certificate_id LIKE $1 ORDER BY certificate_id, created_at DESC",
            &[&format!("mc-{prefix}-%")],
        )
        .await
        .unwrap();
    let chains: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
    harness::verify::openssl_verified(&server.data_dir.join("verify"), root_pem, &chains)
}

/// The poll schedule's own length for one order: `polls` "pending" answers and the issuing poll,
/// each after the backoff's mean interval (the first `initial`, then three times the previous one,
/// at most `max`), in seconds.
fn backoff_floor(initial: Duration, max: Duration, polls: u32) -> f64 {
    let mut step = initial.min(max);
    let mut total = Duration::ZERO;
    for _ in 0..=polls {
        total += step;
        step = step.mul_f64(3.0).min(max);
    }
    total.as_secs_f64()
}

fn parse_duration(text: &str) -> Duration {
    humantime::parse_duration(text).unwrap_or_else(|e| panic!("{text:?} is not a duration: {e}"))
}
