//! Scenario `bulk_renewal` (the reference harness' bulk-renewal tier): 10,000 managed
//! certificates expiring within 30 days, and `POST /api/v1/certificates/bulk-renew` at 5 req/s
//! naming them by criteria, against the real server binary (embedded PostgreSQL, TLS on).
//!
//! The first request enqueues a renewal for every match; the following ones match the same
//! 10,000 and skip them (each already has an active renewal), as certctl's k6 script does with
//! its repeated request. Thresholds: certctl's p95 < 2 s, p99 < 5 s, errors < 1%; ours p99 <
//! 250 ms. Reported, never asserted.
//!
//! `cargo bench --bench bulk_renewal` (300 s) or `-- --quick` (5 s).

mod harness;

use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::load::{run_open, RequestFn, Stream};
use harness::report::{print_stream, stream_json, verdicts, write_json, Threshold};
use harness::sampler::rss_sampler;
use harness::seed::Certificates;
use harness::server::{BenchServer, KEY};
use serde_json::json;

const STREAM: &str = "bulk-renew POST /api/v1/certificates/bulk-renew";

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (secs, ceiling_secs) = if quick { (5, 3) } else { (300, 10) };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(run(quick, secs, ceiling_secs));
}

async fn run(quick: bool, secs: u64, ceiling_secs: u64) {
    println!("bulk_renewal ({}): starting certctl-server", if quick { "quick" } else { "full" });
    let server = BenchServer::start(&[]).await;
    seed(&server, 10_000).await;

    let ceiling = server.ceiling(Duration::from_secs(ceiling_secs)).await;
    let ceiling_rate = ceiling.achieved_rate();
    print_stream(&ceiling, ceiling_rate);

    println!("phase bulk-renew: 5 req/s for {secs} s over 10,000 certificates");
    let (cpu_before, started) = (server.cpu_seconds(), Instant::now());
    let sampler = rss_sampler(server.pid());
    let first_enqueued = Arc::new(std::sync::atomic::AtomicI64::new(-1));
    let request: RequestFn = {
        let (client, url) = (server.client.clone(), format!("{}/api/v1/certificates/bulk-renew", server.base));
        let first_enqueued = first_enqueued.clone();
        // certctl's fixture scope: its owner and the 30-day window.
        let body = json!({
            "owner_id": "o-loadtest",
            "expiring_before": (chrono::Utc::now() + chrono::Duration::days(31)).to_rfc3339(),
        });
        Arc::new(move |n| {
            let (client, url, body, first_enqueued) =
                (client.clone(), url.clone(), body.clone(), first_enqueued.clone());
            Box::pin(async move {
                let Ok(response) = client.post(&url).bearer_auth(KEY).json(&body).send().await else { return false };
                if response.status() != 200 {
                    return false;
                }
                let Ok(counts) = response.json::<serde_json::Value>().await else { return false };
                if n == 0 {
                    first_enqueued
                        .store(counts["total_enqueued"].as_i64().unwrap_or(-1), std::sync::atomic::Ordering::Relaxed);
                }
                counts["total_matched"] == 10_000
            })
        })
    };
    let results = run_open(vec![Stream { name: STREAM, rate_per_sec: 5.0, request }], Duration::from_secs(secs)).await;
    let wall = started.elapsed().as_secs_f64();
    let cpu_after = server.cpu_seconds();
    let max_rss = sampler.stop().await;
    for r in &results {
        print_stream(r, ceiling_rate);
    }
    let server_cores = (cpu_after.0 - cpu_before.0) / wall;
    let postgres_cores = (cpu_after.1 - cpu_before.1) / wall;
    let first = first_enqueued.load(std::sync::atomic::Ordering::Relaxed);
    println!("  first request enqueued {first} renewals; the rest matched 10,000 and skipped them");
    println!("  server CPU {server_cores:.2} cores, PostgreSQL CPU {postgres_cores:.2} cores, server max RSS {max_rss:.0} MiB");

    let contract = [Threshold {
        stream: STREAM,
        label: "certctl: bulk-renew p95 < 2 s, p99 < 5 s, errors < 1%",
        p95_ms: Some(2000.0),
        p99_ms: Some(5000.0),
        max_error_rate: 0.01,
        min_rate: None,
    }];
    let goal = [Threshold {
        stream: STREAM,
        label: "ours: bulk-renew p99 < 250 ms, 0 errors",
        p95_ms: None,
        p99_ms: Some(250.0),
        max_error_rate: 0.0,
        min_rate: None,
    }];
    let contract_verdicts = verdicts("certctl's contract", &contract, &results);
    let goal_verdicts = verdicts("our goal", &goal, &results);
    let report = json!({
        "scenario": "bulk_renewal",
        "mode": if quick { "quick" } else { "full" },
        "seeded_certificates": 10_000,
        "first_request_enqueued": first,
        "machine": { "cpus": std::thread::available_parallelism().map(usize::from).unwrap_or(0) },
        "ceiling": stream_json(&ceiling, ceiling_rate),
        "streams": results.iter().map(|r| stream_json(r, ceiling_rate)).collect::<Vec<_>>(),
        "server_cpu_cores": server_cores,
        "postgres_cpu_cores": postgres_cores,
        "server_max_rss_mib": max_rss,
        "verdicts": { "contract": contract_verdicts, "goal": goal_verdicts },
    });
    println!("JSON: {}", write_json("bulk_renewal", &report).display());
}

/// certctl's fixture: 10,000 Active certificates of one owner expiring over the next 30 days,
/// with a team and owner of their own so the criteria match exactly them.
async fn seed(server: &BenchServer, count: i64) {
    let db = server.database().await;
    db.batch_execute(
        "INSERT INTO owners (id, name, email, team_id) VALUES ('o-loadtest', 'Load test', 'load@example.test', 't-platform') \
         ON CONFLICT DO NOTHING",
    )
    .await
    .expect("seeding the owner");
    harness::seed::certificates(
        server,
        count,
        Certificates {
            id_prefix: "bulk",
            name_prefix: "loadtest-bulk",
            owner: "o-loadtest",
            expires_at: "now() + (1 + g % 30) * interval '1 day'",
            renew_at: "now() + interval '400 days'",
            created_at: None,
            vacuum: false,
        },
    )
    .await;
}
