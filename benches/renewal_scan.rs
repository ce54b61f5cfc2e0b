//! Scenario `renewal_scan`: 1,000,000 managed certificates of which 1% are due. Measures one
//! renewal scan (read the due ones from the `renew_at` index, enqueue a job each, mark them, audit
//! them) and the server's RSS before and during it; then a second scan, which finds nothing due.
//!
//! Goal: scan + enqueue < 2 s, server RSS flat (the scan streams keyset batches; no inventory is
//! held in memory). The second, empty scan is the floor: what a tick costs when nothing is due.
//!
//! `cargo bench --bench renewal_scan` (1,000,000 certificates) or `-- --quick` (100,000).

mod harness;

use std::time::{Duration, Instant};

use harness::report::write_json;
use harness::sampler::rss_sampler;
use harness::seed::Certificates;
use harness::server::{rss_mib, BenchServer};
use serde_json::json;

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let count = if quick { 100_000 } else { 1_000_000 };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(run(quick, count));
}

async fn run(quick: bool, count: i64) {
    println!("renewal_scan ({}): {count} certificates, 1% due", if quick { "quick" } else { "full" });
    let server = BenchServer::start(&[("CERTCTL_SCHEDULER_ENABLED", "false")]).await;
    harness::seed::certificates(
        &server,
        count,
        // Every hundredth due a minute ago, the others spread over a year.
        Certificates {
            id_prefix: "scan",
            name_prefix: "scan",
            owner: "o-alice",
            expires_at: "now() + (30 + g % 365) * interval '1 day'",
            renew_at: "CASE WHEN g % 100 = 0 THEN now() - interval '1 minute' ELSE now() + (1 + g % 365) * interval '1 day' END",
            created_at: None,
            vacuum: true,
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    let rss_before = rss_mib(server.pid());
    let sampler = rss_sampler(server.pid());
    let started = Instant::now();
    let (status, scan) = server.admin_post("/api/v1/admin/scheduler/renewal_scan/run", &json!({})).await;
    let wall = started.elapsed().as_secs_f64();
    // Let the wake-up it sends (the dispatcher claiming the new jobs) finish inside the sample.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_max = sampler.stop().await;
    assert_eq!(status, 200, "renewal scan: {scan}");
    let result = &scan["result"];
    println!(
        "  scan: {} scanned, {} enqueued in {:.3} s (tick {} ms); server RSS {rss_before:.0} MiB before, {rss_max:.0} MiB max during",
        result["scanned"], result["enqueued"], wall, result["duration_ms"]
    );
    let started = Instant::now();
    let (_, empty) = server.admin_post("/api/v1/admin/scheduler/renewal_scan/run", &json!({})).await;
    let empty_wall = started.elapsed().as_secs_f64();
    println!("  second scan (nothing due): {} scanned in {:.3} s", empty["result"]["scanned"], empty_wall);

    let due = count / 100;
    let goal_met = wall < 2.0 && result["enqueued"] == due && rss_max < rss_before + 64.0;
    println!("  our goal:");
    println!(
        "    {}   ours: scan + enqueue of {due} due among {count} < 2 s, RSS flat (+{:.0} MiB)",
        if goal_met { "PASS" } else { "MISS" },
        rss_max - rss_before
    );
    let report = json!({
        "scenario": "renewal_scan",
        "mode": if quick { "quick" } else { "full" },
        "certificates": count,
        "due": due,
        "machine": { "cpus": std::thread::available_parallelism().map(usize::from).unwrap_or(0) },
        "scan_seconds": wall,
        "scan": result,
        "empty_scan_seconds": empty_wall,
        "server_rss_before_mib": rss_before,
        "server_rss_max_mib": rss_max,
        "goal_met": goal_met,
    });
    println!("JSON: {}", write_json("renewal_scan", &report).display());
}
