//! Scenario `renewal_drain`: 10,000 due certificates, server-side key generation, the local CA.
//! Measures the time from one renewal scan until every job is Completed and every certificate has
//! a new version, then checks every issued chain with `openssl verify`, and watches the
//! dispatcher's in-flight gauge to confirm `CERTCTL_RENEWAL_CONCURRENCY` is never exceeded.
//!
//! Goal on this 2-core machine: ≥ 5,000 renewals/s end to end with the cap honoured. The
//! ceiling is the machine's raw signing rate: the same key generation and signing in this
//! process on every core, with no database, HTTP or scheduling around it.
//!
//! `cargo bench --bench renewal_drain` (10,000 certificates) or `-- --quick` (1,000). The cap is
//! the server's default (25) unless `CERTCTL_RENEWAL_CONCURRENCY` is set for the bench.

mod harness;

use std::time::{Duration, Instant};

use certctl_actors::crypto::key_algorithm::KeyAlgorithm;
use certctl_actors::crypto::local_ca::{LeafRequest, LocalCa};
use harness::report::write_json;
use harness::sampler::rss_sampler;
use harness::seed::Certificates;
use harness::server::BenchServer;
use serde_json::json;

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let count = if quick { 1_000 } else { 10_000 };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(run(quick, count));
}

async fn run(quick: bool, count: i64) {
    let cap: usize = std::env::var("CERTCTL_RENEWAL_CONCURRENCY").ok().and_then(|v| v.parse().ok()).unwrap_or(25);
    println!("renewal_drain ({}): {count} due certificates, cap {cap}", if quick { "quick" } else { "full" });
    let ceiling = signing_ceiling(Duration::from_secs(if quick { 1 } else { 3 }));
    println!("  ceiling: {ceiling:.0} issuances/s (key generation + signing on every core, in process)");

    let server = BenchServer::start(&[("CERTCTL_KEYGEN_MODE", "server"), ("CERTCTL_SCHEDULER_ENABLED", "false")]).await;
    harness::seed::certificates(
        &server,
        count,
        // All of them due.
        Certificates {
            id_prefix: "drain",
            name_prefix: "drain",
            owner: "o-alice",
            expires_at: "now() + interval '20 days'",
            renew_at: "now() - interval '1 minute'",
            created_at: None,
            vacuum: false,
        },
    )
    .await;
    let db = server.database().await;

    let sampler = rss_sampler(server.pid());
    let (cpu_before, started) = (server.cpu_seconds(), Instant::now());
    let (status, scan) = server.admin_post("/api/v1/admin/scheduler/renewal_scan/run", &json!({})).await;
    assert_eq!(status, 200, "renewal scan: {scan}");
    // The scan wakes the dispatcher; the job processor's rounds keep it going until the queue is
    // empty (each round runs until nothing is left or its deadline).
    let pump = {
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
    };
    let mut max_in_flight = 0.0f64;
    let completed = loop {
        let done: i64 = db.query_one("SELECT count(*) FROM jobs WHERE status = 'Completed'", &[]).await.unwrap().get(0);
        let failed: i64 = db.query_one("SELECT count(*) FROM jobs WHERE status = 'Failed'", &[]).await.unwrap().get(0);
        max_in_flight = max_in_flight.max(in_flight(&server).await);
        if done + failed >= count || started.elapsed() > Duration::from_secs(600) {
            break done;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let seconds = started.elapsed().as_secs_f64();
    pump.abort();
    let cpu_after = server.cpu_seconds();
    let max_rss = sampler.stop().await;
    let rate = completed as f64 / seconds;
    let server_cores = (cpu_after.0 - cpu_before.0) / seconds;
    let postgres_cores = (cpu_after.1 - cpu_before.1) / seconds;
    println!(
        "  drained {completed}/{count} in {seconds:.2} s: {rate:.0} renewals/s ({:.1}% of the signing ceiling)",
        100.0 * rate / ceiling
    );
    println!("  max in flight seen {max_in_flight:.0} (cap {cap}); server CPU {server_cores:.2} cores, PostgreSQL {postgres_cores:.2} cores, server max RSS {max_rss:.0} MiB");

    let verified = verify_all(&server, &db, count).await;
    println!("  openssl verify: {verified}/{count} certificates have a new version whose chain verifies");

    let goal_met = rate >= 5_000.0 && completed == count && verified == count && max_in_flight <= cap as f64;
    println!("  our goal:");
    println!(
        "    {}   ours: ≥ 5,000 renewals/s end to end, every chain verifies, cap honoured ({rate:.0}/s)",
        if goal_met { "PASS" } else { "MISS" }
    );
    let report = json!({
        "scenario": "renewal_drain",
        "mode": if quick { "quick" } else { "full" },
        "certificates": count,
        "concurrency_cap": cap,
        "machine": { "cpus": std::thread::available_parallelism().map(usize::from).unwrap_or(0) },
        "ceiling_issuances_per_sec": ceiling,
        "seconds": seconds,
        "completed": completed,
        "renewals_per_sec": rate,
        "ratio_to_ceiling": rate / ceiling,
        "verified": verified,
        "max_in_flight": max_in_flight,
        "server_cpu_cores": server_cores,
        "postgres_cpu_cores": postgres_cores,
        "server_max_rss_mib": max_rss,
        "goal_met": goal_met,
    });
    println!("JSON: {}", write_json("renewal_drain", &report).display());
}

/// The dispatcher's in-flight gauge, from /metrics.
async fn in_flight(server: &BenchServer) -> f64 {
    let Ok(response) = server.client.get(format!("{}/metrics", server.base)).send().await else { return 0.0 };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("certctl_renewal_in_flight "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Raw issuance rate of this machine: P-256 key generation and signing, one thread per core.
fn signing_ceiling(duration: Duration) -> f64 {
    let ca = std::sync::Arc::new(LocalCa::generate("ceiling CA", KeyAlgorithm::EcdsaP256).unwrap());
    let threads = std::thread::available_parallelism().map(usize::from).unwrap_or(1);
    let request = LeafRequest {
        common_name: "ceiling.example.com".into(),
        sans: vec!["ceiling.example.com".into()],
        ekus: vec!["serverAuth".into()],
        lifetime: Duration::from_secs(86_400),
    };
    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (ca, request) = (ca.clone(), request.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while started.elapsed() < duration {
                    ca.issue_with_new_key(&request, KeyAlgorithm::EcdsaP256).unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    let total: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    total as f64 / started.elapsed().as_secs_f64()
}

/// Verifies every certificate's newest chain against the issuer's CA with `openssl verify`,
/// many files per call; answers how many verify (each certificate must have exactly one version).
async fn verify_all(server: &BenchServer, db: &tokio_postgres::Client, count: i64) -> i64 {
    let ca = server
        .client
        .get(format!("{}/api/v1/issuers/iss-local/ca", server.base))
        .bearer_auth(harness::server::KEY)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let rows = db
        .query(
            "SELECT DISTINCT ON (certificate_id) certificate_id, pem_chain FROM certificate_versions \
             ORDER BY certificate_id, created_at DESC",
            &[],
        )
        .await
        .unwrap();
    let chains: Vec<String> = rows.iter().map(|row| row.get(1)).collect();
    harness::verify::openssl_verified(&server.data_dir.join("verify"), &ca, &chains).min(count)
}
