//! Scenario `api_tier`, the reference harness' first tier: certificate creation
//! (`POST /api/v1/certificates`) and list pages (`GET /api/v1/certificates?limit=50`) at constant
//! rates over a seeded inventory (set-based inserts), against the real server binary (embedded
//! PostgreSQL, TLS on).
//!
//! Two phases after the ceiling (`GET /health` at maximum rate):
//! - **contract**: certctl's load test: 50 creates/s + 50 lists/s; thresholds create p95 < 2 s
//!   (p99 < 5 s), list p95 < 800 ms (p99 < 2 s), errors < 1 %.
//! - **goal**: ours on this 2-core machine with the load generator beside the server: lists at
//!   2,000/s with p99 < 5 ms, creations at 3,000/s sustained, 0 errors.
//!
//! `cargo bench --bench api_tier` (full: 100,000 seeded certificates, contract 300 s, goal 60 s) or
//! `cargo bench --bench api_tier -- --quick` (10,000 certificates, 5 s phases); `-- --only goal` or
//! `-- --only contract` runs one phase. Thresholds are reported, never asserted. Results: text on
//! stdout, JSON under `$CARGO_TARGET_TMPDIR/bench-results/`; discussed in
//! docs/operator/benchmarks.md.

mod harness;

use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::load::{run_open, RequestFn, Stream};
use harness::report::{print_stream, stream_json, verdicts, write_json, Threshold};
use harness::sampler::rss_sampler;
use harness::seed::Certificates;
use harness::server::{BenchServer, KEY};
use serde_json::json;

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    // `--only goal` (or `contract`) runs one phase, for iterating on one figure.
    let only = std::env::args().skip_while(|a| a != "--only").nth(1);
    let (seeded, contract_secs, goal_secs, ceiling_secs) =
        if quick { (10_000, 5, 5, 3) } else { (100_000, 300, 60, 10) };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(run(quick, only, seeded, contract_secs, goal_secs, ceiling_secs));
}

async fn run(quick: bool, only: Option<String>, seeded: i64, contract_secs: u64, goal_secs: u64, ceiling_secs: u64) {
    println!("api_tier ({}): starting certctl-server", if quick { "quick" } else { "full" });
    let server = BenchServer::start(&[("CERTCTL_DATABASE_MAX_CONNS", "50")]).await;
    harness::seed::certificates(
        &server,
        seeded,
        Certificates {
            id_prefix: "seed",
            name_prefix: "seed",
            owner: "o-alice",
            expires_at: "now() + (g % 90) * interval '1 day'",
            renew_at: "now() + (g % 90) * interval '1 day' - interval '30 days'",
            created_at: Some("now() - interval '1 day' + g * interval '1 millisecond'"),
            vacuum: false,
        },
    )
    .await;

    let client = server.client.clone();
    let base = server.base.clone();
    let ceiling = server.ceiling(Duration::from_secs(ceiling_secs)).await;
    let ceiling_rate = ceiling.achieved_rate();
    print_stream(&ceiling, ceiling_rate);

    let mut phases = Vec::new();
    for (phase, create_rate, list_rate, secs) in
        [("contract", 50.0, 50.0, contract_secs), ("goal", 3000.0, 2000.0, goal_secs)]
    {
        if only.as_deref().is_some_and(|o| o != phase) {
            continue;
        }
        println!("phase {phase}: {create_rate} creates/s + {list_rate} lists/s for {secs} s");
        let (cpu_before, started) = (server.cpu_seconds(), Instant::now());
        let sampler = rss_sampler(server.pid());
        let streams = vec![
            Stream {
                name: "create POST /api/v1/certificates",
                rate_per_sec: create_rate,
                request: create(&client, &base, phase),
            },
            Stream {
                name: "list GET /api/v1/certificates?limit=50",
                rate_per_sec: list_rate,
                request: list(&client, &base),
            },
        ];
        let results = run_open(streams, Duration::from_secs(secs)).await;
        let wall = started.elapsed().as_secs_f64();
        let cpu_after = server.cpu_seconds();
        let max_rss = sampler.stop().await;
        for r in &results {
            print_stream(r, ceiling_rate);
        }
        let server_cores = (cpu_after.0 - cpu_before.0) / wall;
        let postgres_cores = (cpu_after.1 - cpu_before.1) / wall;
        println!("  server CPU {server_cores:.2} cores, PostgreSQL CPU {postgres_cores:.2} cores, server max RSS {max_rss:.0} MiB");
        let contract = [
            Threshold {
                stream: "create POST /api/v1/certificates",
                label: "certctl: create p95 < 2 s, p99 < 5 s, errors < 1%",
                p95_ms: Some(2000.0),
                p99_ms: Some(5000.0),
                max_error_rate: 0.01,
                min_rate: None,
            },
            Threshold {
                stream: "list GET /api/v1/certificates?limit=50",
                label: "certctl: list p95 < 800 ms, p99 < 2 s, errors < 1%",
                p95_ms: Some(800.0),
                p99_ms: Some(2000.0),
                max_error_rate: 0.01,
                min_rate: None,
            },
        ];
        let goal = [
            Threshold {
                stream: "list GET /api/v1/certificates?limit=50",
                label: "ours: list p99 < 5 ms at 2,000/s, 0 errors",
                p95_ms: None,
                p99_ms: Some(5.0),
                max_error_rate: 0.0,
                min_rate: Some(1990.0),
            },
            Threshold {
                stream: "create POST /api/v1/certificates",
                label: "ours: creation ≥ 3,000/s sustained, 0 errors",
                p95_ms: None,
                p99_ms: None,
                max_error_rate: 0.0,
                min_rate: Some(2985.0),
            },
        ];
        let contract_verdicts = verdicts("certctl's contract", &contract, &results);
        let goal_verdicts = if phase == "goal" { verdicts("our goal", &goal, &results) } else { Vec::new() };
        phases.push(json!({
            "phase": phase,
            "seconds": secs,
            "streams": results.iter().map(|r| stream_json(r, ceiling_rate)).collect::<Vec<_>>(),
            "server_cpu_cores": server_cores,
            "postgres_cpu_cores": postgres_cores,
            "server_max_rss_mib": max_rss,
            "contract": contract_verdicts,
            "goal": goal_verdicts,
        }));
    }
    let report = json!({
        "scenario": "api_tier",
        "mode": if quick { "quick" } else { "full" },
        "seeded_certificates": seeded,
        "machine": { "cpus": std::thread::available_parallelism().map(usize::from).unwrap_or(0) },
        "ceiling": stream_json(&ceiling, ceiling_rate),
        "phases": phases,
    });
    println!("JSON: {}", write_json("api_tier", &report).display());
}

fn create(client: &reqwest::Client, base: &str, phase: &'static str) -> RequestFn {
    let (client, url) = (client.clone(), format!("{base}/api/v1/certificates"));
    let run = std::process::id();
    Arc::new(move |n| {
        let (client, url) = (client.clone(), url.clone());
        let name = format!("loadtest-{run}-{phase}-{n}");
        Box::pin(async move {
            let body = json!({
                "name": name, "common_name": format!("{name}.example.test"), "sans": [format!("{name}.example.test")],
                "environment": "production", "owner_id": "o-alice", "team_id": "t-platform",
                "issuer_id": "iss-local", "renewal_policy_id": "rp-standard"
            });
            match client.post(&url).bearer_auth(KEY).json(&body).send().await {
                Ok(r) => r.status() == 201 && r.bytes().await.is_ok(),
                Err(_) => false,
            }
        })
    })
}

fn list(client: &reqwest::Client, base: &str) -> RequestFn {
    let (client, url) = (client.clone(), format!("{base}/api/v1/certificates?limit=50"));
    Arc::new(move |_| {
        let (client, url) = (client.clone(), url.clone());
        Box::pin(async move {
            match client.get(&url).bearer_auth(KEY).send().await {
                Ok(r) => r.status() == 200 && r.bytes().await.is_ok(),
                Err(_) => false,
            }
        })
    })
}
