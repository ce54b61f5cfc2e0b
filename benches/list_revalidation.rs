//! Scenario `list_revalidation`: dashboards polling the five hot lists with `If-None-Match` over
//! 100,000 certificates, against the release binary over HTTPS (embedded PostgreSQL, TLS on).
//!
//! Each of 50 dashboards holds one page of each list (certificates, jobs, agents, audit,
//! discovered certificates; 250 distinct URLs) and the ETag the server gave it, then revalidates;
//! nothing changes meanwhile, so every answer should be a 304 served from memory.
//!
//! - Ceiling: `GET /health`, 64 closed-loop callers over four HTTP/2 connections, 10 s.
//! - Revalidation at full speed: the same 64 callers sending `If-None-Match` revalidations, 10 s.
//!   Goal: at least 50% of the ceiling's rate, p99 < 5 ms.
//! - Dashboard polling: an open-model 2,000 revalidations/s for 60 s. Goal: p99 < 5 ms, 0 errors.
//!
//! In both revalidation phases the server's statements are counted from its
//! `certctl_db_query_duration_seconds_count` (every query the DB actors run, by statement): the
//! revalidations must cause none. Background actors (the agent directory refresh every 5 s) still
//! query; they are reported by statement.
//!
//! `cargo bench --bench list_revalidation` (about 2 minutes) or `-- --quick`.

mod harness;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::load::{run_ceiling, run_open, RequestFn, Stream};
use harness::report::{print_stream, stream_json, verdicts, write_json, Threshold};
use harness::seed::Certificates;
use harness::server::{process_cpu, BenchServer, KEY};
use serde_json::json;

const CONNECTIONS: usize = 4;
const DASHBOARDS: usize = 50;
const CLOSED: &str = "revalidate (64 callers)";
const OPEN: &str = "dashboards (2,000/s)";

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (certificates, closed_secs, open_secs) = if quick { (10_000, 3, 5) } else { (100_000, 10, 60) };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(run(quick, certificates, closed_secs, open_secs));
}

async fn run(quick: bool, certificates: i64, closed_secs: u64, open_secs: u64) {
    println!("list_revalidation ({}): starting certctl-server", if quick { "quick" } else { "full" });
    let server = BenchServer::start(&[]).await;
    // A few jobs and audit rows come with the demo fixtures; the lists page over them as they are.
    harness::seed::certificates(
        &server,
        certificates,
        Certificates {
            id_prefix: "lr",
            name_prefix: "revalidate",
            owner: "o-alice",
            expires_at: "now() + (1 + g % 90) * interval '1 day'",
            renew_at: "now() + interval '400 days'",
            created_at: None,
            vacuum: true,
        },
    )
    .await;
    wait_for_listener(&server).await;
    let clients = server.clients(CONNECTIONS);

    // Each dashboard's pages, and the ETag of each.
    let lists =
        ["/api/v1/certificates", "/api/v1/jobs", "/api/v1/agents", "/api/v1/audit", "/api/v1/discovered-certificates"];
    let mut pages = Vec::new();
    for dashboard in 0..DASHBOARDS {
        for list in lists {
            let url = format!("{}{list}?limit={}", server.base, 10 + dashboard);
            let response = server.client.get(&url).bearer_auth(KEY).send().await.expect("list");
            assert_eq!(response.status(), 200, "{url}");
            let etag = response.headers().get("etag").expect("an ETag").to_str().unwrap().to_string();
            let _ = response.bytes().await;
            pages.push((url, std::sync::Mutex::new(etag)));
        }
    }
    let pages = Arc::new(pages);
    println!("  {} pages fetched with their ETags", pages.len());

    let ceiling = server.ceiling_over(&clients, Duration::from_secs(closed_secs)).await;
    let ceiling_rate = ceiling.achieved_rate();
    print_stream(&ceiling, ceiling_rate);

    // A 200 is a miss, not an error: like a dashboard, the caller keeps the new ETag.
    let misses = Arc::new(AtomicU64::new(0));
    let revalidate: RequestFn = {
        let (clients, pages, misses) = (clients.clone(), pages.clone(), misses.clone());
        Arc::new(move |n| {
            let client = clients[n as usize % clients.len()].clone();
            let (pages, misses) = (pages.clone(), misses.clone());
            Box::pin(async move {
                let (url, etag) = &pages[n as usize % pages.len()];
                let tag = etag.lock().unwrap().clone();
                let Ok(response) = client.get(url).bearer_auth(KEY).header("if-none-match", tag).send().await else {
                    return false;
                };
                match response.status().as_u16() {
                    304 => response.bytes().await.is_ok(),
                    200 => {
                        misses.fetch_add(1, Ordering::Relaxed);
                        if let Some(new) = response.headers().get("etag").and_then(|v| v.to_str().ok()) {
                            *etag.lock().unwrap() = new.to_string();
                        }
                        response.bytes().await.is_ok()
                    }
                    _ => false,
                }
            })
        })
    };

    println!("phase revalidate: 64 closed-loop callers, {closed_secs} s");
    let before = statements(&server).await;
    let (cpu, started, generator) = (server.cpu_seconds(), Instant::now(), own_cpu());
    let mut closed = run_ceiling(revalidate.clone(), 64, Duration::from_secs(closed_secs)).await;
    closed.name = CLOSED;
    let mut closed_stats = phase_stats(&server, cpu, started, generator, &before, &statements(&server).await);
    closed_stats["misses_200"] = misses.swap(0, Ordering::Relaxed).into();

    println!("phase dashboards: 2,000 revalidations/s for {open_secs} s");
    let before = statements(&server).await;
    let (cpu, started, generator) = (server.cpu_seconds(), Instant::now(), own_cpu());
    let mut results = run_open(
        vec![Stream { name: OPEN, rate_per_sec: 2000.0, request: revalidate }],
        Duration::from_secs(open_secs),
    )
    .await;
    let open = results.remove(0);
    let mut open_stats = phase_stats(&server, cpu, started, generator, &before, &statements(&server).await);
    open_stats["misses_200"] = misses.swap(0, Ordering::Relaxed).into();

    let results = [closed, open];
    for r in &results {
        print_stream(r, ceiling_rate);
    }
    for (name, stats) in [(CLOSED, &closed_stats), (OPEN, &open_stats)] {
        println!("  {name}: {stats}");
    }
    let goal = [
        Threshold {
            stream: CLOSED,
            label: "ours: 304s at ≥ 50% of the ceiling, p99 < 5 ms, 0 errors",
            p95_ms: None,
            p99_ms: Some(5.0),
            max_error_rate: 0.0,
            min_rate: Some(ceiling_rate * 0.5),
        },
        Threshold {
            stream: OPEN,
            label: "ours: dashboard polling p99 < 5 ms, 0 errors",
            p95_ms: None,
            p99_ms: Some(5.0),
            max_error_rate: 0.0,
            min_rate: None,
        },
    ];
    let mut goal_verdicts = verdicts("our goal", &goal, &results);
    for (name, stats) in [(CLOSED, &closed_stats), (OPEN, &open_stats)] {
        let list_queries = stats["list_queries"].as_f64().unwrap_or(f64::NAN);
        let pass = list_queries == 0.0;
        println!(
            "    {:<6} ours: {name} caused 0 list queries ({list_queries} list queries, {} queries in all)",
            if pass { "PASS" } else { "MISS" },
            stats["queries"]
        );
        goal_verdicts.push(json!({"threshold": "0 list queries", "stream": name, "pass": pass}));
    }
    let report = json!({
        "scenario": "list_revalidation",
        "mode": if quick { "quick" } else { "full" },
        "certificates": certificates,
        "pages": pages.len(),
        "machine": { "cpus": std::thread::available_parallelism().map(usize::from).unwrap_or(0) },
        "ceiling": stream_json(&ceiling, ceiling_rate),
        "streams": results.iter().map(|r| stream_json(r, ceiling_rate)).collect::<Vec<_>>(),
        "phases": { CLOSED: closed_stats, OPEN: open_stats },
        "verdicts": { "goal": goal_verdicts },
    });
    println!("JSON: {}", write_json("list_revalidation", &report).display());
}

/// The list statements: any of these during a revalidation phase is a miss of the cache.
const LIST_STATEMENTS: [&str; 5] =
    ["list_certificates", "list_jobs", "list_agents", "list_audit_events", "list_discovered"];

fn phase_stats(
    server: &BenchServer,
    cpu: (f64, f64),
    started: Instant,
    generator: f64,
    before: &BTreeMap<String, f64>,
    after: &BTreeMap<String, f64>,
) -> serde_json::Value {
    let wall = started.elapsed().as_secs_f64();
    let now = server.cpu_seconds();
    let by_statement: BTreeMap<&String, f64> =
        after.iter().map(|(k, v)| (k, v - before.get(k).copied().unwrap_or(0.0))).filter(|(_, d)| *d > 0.0).collect();
    let list_queries: f64 =
        by_statement.iter().filter(|(k, _)| LIST_STATEMENTS.contains(&k.as_str())).fold(0.0, |sum, (_, d)| sum + d);
    json!({
        "server_cpu_cores": ((now.0 - cpu.0) / wall * 100.0).round() / 100.0,
        "postgres_cpu_cores": ((now.1 - cpu.1) / wall * 100.0).round() / 100.0,
        "load_generator_cpu_cores": ((own_cpu() - generator) / wall * 100.0).round() / 100.0,
        "queries": by_statement.values().fold(0.0, |sum, d| sum + d),
        "list_queries": list_queries,
        "queries_by_statement": by_statement,
    })
}

fn own_cpu() -> f64 {
    process_cpu(std::process::id() as i32)
}

/// Queries run so far, by statement, from the server's `/metrics`.
async fn statements(server: &BenchServer) -> BTreeMap<String, f64> {
    let text = server.client.get(format!("{}/metrics", server.base)).send().await.expect("metrics").text().await;
    let mut counts = BTreeMap::new();
    for line in text.unwrap_or_default().lines().filter(|l| l.starts_with("certctl_db_query_duration_seconds_count{")) {
        let Some(statement) = line.split("statement=\"").nth(1).and_then(|r| r.split('"').next()) else { continue };
        let Some(value) = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) else { continue };
        *counts.entry(statement.to_string()).or_insert(0.0) += value;
    }
    counts
}

async fn wait_for_listener(server: &BenchServer) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = server.client.get(format!("{}/metrics", server.base)).send().await.expect("metrics").text().await;
        if text
            .unwrap_or_default()
            .lines()
            .any(|l| l.starts_with("certctl_etag_listener_connected") && l.ends_with(" 1"))
        {
            return;
        }
        assert!(Instant::now() < deadline, "the change listener never connected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
