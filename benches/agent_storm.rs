//! Scenario `agent_storm` (the reference harness' heartbeat storm): agents seeded with their own
//! keys, `POST /api/v1/agents/{id}/heartbeat` at a constant rate over HTTPS against the real server
//! binary (embedded PostgreSQL, TLS on), each request with its agent's key, spread over four HTTP/2
//! connections.
//!
//! - Contract phase (certctl's scenario): 5,000 agents, 167 req/s for 300 s. certctl's thresholds:
//!   p99 < 1 s, p95 < 500 ms, errors < 0.1%.
//! - Goal phase (ours): 100,000 agents, 20,000 req/s for 60 s, p99 < 50 ms, 0 errors, and every
//!   agent's latest beat in the database within 1 s of the run's end (measured: the bench keeps the
//!   send time of each agent's last accepted beat and polls until PostgreSQL has them all).
//!
//! The ceiling (`GET /health`, closed loop) is measured in the same run over the same client
//! connections, and the heartbeat rate is reported as a ratio to it. Also reported: the server-side
//! latency split (from the server's own `/metrics`), the server's and PostgreSQL's CPU, the
//! server's RSS, and how many flush statements wrote the beats.
//!
//! `cargo bench --bench agent_storm` (about 7 minutes), `-- --quick` (5 s phases: a smoke test, not
//! a verdict) or `-- --only goal` / `-- --only contract` (one phase).

mod harness;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::load::{run_open, RequestFn, Stream, StreamResult};
use harness::report::{print_stream, stream_json, verdicts, write_json, Threshold};
use harness::sampler::rss_sampler;
use harness::server::{process_cpu, BenchServer, KEY};
use serde_json::{json, Value};

const CONTRACT_AGENTS: u64 = 5_000;
const GOAL_AGENTS: u64 = 100_000;
const GOAL_RATE: f64 = 20_000.0;
/// HTTP/2 connections the load is spread over (each its own client): the server's workers
/// each serve some, as a fleet's many connections would be.
const CONNECTIONS: usize = 4;
const CONTRACT_STREAM: &str = "heartbeat (5k agents, 167/s)";
const GOAL_STREAM: &str = "heartbeat (100k agents, 20k/s)";

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (contract_secs, goal_secs, ceiling_secs) = if quick { (5, 5, 3) } else { (300, 60, 10) };
    // `--only goal` (or `contract`) runs one phase, for iterating on one figure.
    let only = std::env::args().skip_while(|a| a != "--only").nth(1);
    let (contract_secs, goal_secs) = match only.as_deref() {
        Some("goal") => (0, goal_secs),
        Some("contract") => (contract_secs, 0),
        _ => (contract_secs, goal_secs),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(run(quick, contract_secs, goal_secs, ceiling_secs));
}

fn agent_id(n: u64) -> String {
    format!("ag-storm-{n:06}")
}

fn agent_key(n: u64) -> String {
    format!("cctl_agent_storm-{n:06}-0123456789abcdefghijklmnop")
}

async fn run(quick: bool, contract_secs: u64, goal_secs: u64, ceiling_secs: u64) {
    println!("agent_storm ({}): starting certctl-server", if quick { "quick" } else { "full" });
    let server = BenchServer::start(&[]).await;
    seed(&server, GOAL_AGENTS).await;
    let clients = server.clients(CONNECTIONS);
    // The directory picks registrations up within its refresh (5 s); unknown keys would fall back
    // to a database lookup, which is not what this bench measures.
    wait_for_directory(&server, GOAL_AGENTS).await;

    let ceiling = server.ceiling_over(&clients, Duration::from_secs(ceiling_secs)).await;
    let ceiling_rate = ceiling.achieved_rate();
    print_stream(&ceiling, ceiling_rate);

    println!("phase contract: {CONTRACT_AGENTS} agents, 167 heartbeats/s for {contract_secs} s");
    let contract_last = Arc::new((0..CONTRACT_AGENTS).map(|_| AtomicI64::new(0)).collect::<Vec<_>>());
    let contract =
        phase(&server, &clients, CONTRACT_STREAM, CONTRACT_AGENTS, 167.0, contract_secs, &contract_last).await;

    println!("phase goal: {GOAL_AGENTS} agents, {GOAL_RATE} heartbeats/s for {goal_secs} s");
    let flushes_before = flush_statements(&server).await;
    let buckets_before = heartbeat_buckets(&server).await;
    let goal_last = Arc::new((0..GOAL_AGENTS).map(|_| AtomicI64::new(0)).collect::<Vec<_>>());
    let goal = phase(&server, &clients, GOAL_STREAM, GOAL_AGENTS, GOAL_RATE, goal_secs, &goal_last).await;
    let durable_after = durable(&server, &goal_last).await;
    let flushes = flush_statements(&server).await - flushes_before;
    let server_side = server_side_fractions(&buckets_before, &heartbeat_buckets(&server).await);

    let results = [contract.result, goal.result];
    for r in &results {
        print_stream(r, ceiling_rate);
    }
    for p in [&contract.stats, &goal.stats] {
        println!(
            "  {}: server CPU {:.2} cores, PostgreSQL CPU {:.2} cores, load generator CPU {:.2} cores, server max RSS \
             {:.0} MiB",
            p["stream"],
            p["server_cpu_cores"].as_f64().unwrap_or(0.0),
            p["postgres_cpu_cores"].as_f64().unwrap_or(0.0),
            p["load_generator_cpu_cores"].as_f64().unwrap_or(0.0),
            p["server_max_rss_mib"].as_f64().unwrap_or(0.0)
        );
    }
    let accepted = results[1].sent - results[1].errors;
    println!(
        "  goal phase, server side (request in to response out): {}",
        server_side
            .iter()
            .map(|(le, f)| format!("{:.2}% ≤ {} ms", f * 100.0, le * 1000.0))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  goal phase: {accepted} beats written by {flushes:.0} flush statements; every agent's latest beat was in \
         PostgreSQL {durable_after:.3} s after the run's end"
    );

    let contract_thresholds = [Threshold {
        stream: CONTRACT_STREAM,
        label: "certctl: heartbeat p95 < 500 ms, p99 < 1 s, errors < 0.1%",
        p95_ms: Some(500.0),
        p99_ms: Some(1000.0),
        max_error_rate: 0.001,
        min_rate: None,
    }];
    let goal_thresholds = [Threshold {
        stream: GOAL_STREAM,
        label: "ours: ≥ 20,000 heartbeats/s from 100k agents, p99 < 50 ms, 0 errors",
        p95_ms: None,
        p99_ms: Some(50.0),
        max_error_rate: 0.0,
        min_rate: Some(GOAL_RATE * 0.99),
    }];
    let contract_verdicts = verdicts("certctl's contract", &contract_thresholds, &results);
    let mut goal_verdicts = verdicts("our goal", &goal_thresholds, &results);
    let durable_pass = durable_after <= 1.0;
    println!(
        "    {:<6} ours: every agent's latest beat in the database within 1 s of the run's end ({durable_after:.3} s)",
        if durable_pass { "PASS" } else { "MISS" }
    );
    goal_verdicts
        .push(json!({"threshold": "latest beats durable within 1 s", "pass": durable_pass, "seconds": durable_after}));
    let report = json!({
        "scenario": "agent_storm",
        "mode": if quick { "quick" } else { "full" },
        "machine": { "cpus": std::thread::available_parallelism().map(usize::from).unwrap_or(0) },
        "connections": CONNECTIONS,
        "ceiling": stream_json(&ceiling, ceiling_rate),
        "streams": results.iter().map(|r| stream_json(r, ceiling_rate)).collect::<Vec<_>>(),
        "phases": [contract.stats, goal.stats],
        "goal_flush_statements": flushes,
        "goal_server_side_fraction_within": server_side.iter().map(|(le, f)| json!({"le_seconds": le, "fraction": f})).collect::<Vec<_>>(),
        "goal_latest_beats_durable_after_seconds": durable_after,
        "verdicts": { "contract": contract_verdicts, "goal": goal_verdicts },
    });
    println!("JSON: {}", write_json("agent_storm", &report).display());
}

struct Phase {
    result: StreamResult,
    stats: Value,
}

/// One open-model phase: beat `n` goes to agent `n % agents`, with that agent's key; the send
/// time of each agent's last accepted beat is kept in `last` (Unix µs).
async fn phase(
    server: &BenchServer,
    clients: &[reqwest::Client],
    name: &'static str,
    agents: u64,
    rate: f64,
    secs: u64,
    last: &Arc<Vec<AtomicI64>>,
) -> Phase {
    let (cpu_before, started) = (server.cpu_seconds(), Instant::now());
    let generator_before = process_cpu(std::process::id() as i32);
    let sampler = rss_sampler(server.pid());
    let request: RequestFn = {
        let (clients, base, last) = (clients.to_vec(), server.base.clone(), last.clone());
        let body = json!({"version": "1.0.0", "hostname": "bench-host", "os": "linux", "architecture": "x86_64"});
        Arc::new(move |n| {
            let agent = n % agents;
            let client = clients[n as usize % clients.len()].clone();
            let url = format!("{base}/api/v1/agents/{}/heartbeat", agent_id(agent));
            let (body, last) = (body.clone(), last.clone());
            Box::pin(async move {
                let sent_at = chrono::Utc::now().timestamp_micros();
                let Ok(response) = client.post(&url).bearer_auth(agent_key(agent)).json(&body).send().await else {
                    return false;
                };
                let ok = response.status() == 204 && response.bytes().await.is_ok();
                if ok {
                    last[agent as usize].fetch_max(sent_at, Ordering::Relaxed);
                }
                ok
            })
        })
    };
    let mut results = run_open(vec![Stream { name, rate_per_sec: rate, request }], Duration::from_secs(secs)).await;
    let wall = started.elapsed().as_secs_f64();
    let cpu_after = server.cpu_seconds();
    let generator_cores = (process_cpu(std::process::id() as i32) - generator_before) / wall;
    let max_rss = sampler.stop().await;
    let stats = json!({
        "stream": name,
        "load_generator_cpu_cores": generator_cores,
        "agents": agents,
        "server_cpu_cores": (cpu_after.0 - cpu_before.0) / wall,
        "postgres_cpu_cores": (cpu_after.1 - cpu_before.1) / wall,
        "server_max_rss_mib": max_rss,
    });
    Phase { result: results.remove(0), stats }
}

/// `count` agents with known keys (only their SHA-256 stored, as registration does).
async fn seed(server: &BenchServer, count: u64) {
    let db = server.database().await;
    let started = Instant::now();
    db.execute(
        "INSERT INTO agents (id, name, api_key_hash, hostname, os, architecture, version, status, last_heartbeat_at) \
         SELECT 'ag-storm-' || lpad(g::text, 6, '0'), 'loadtest-agent-' || g, \
                encode(sha256(convert_to('cctl_agent_storm-' || lpad(g::text, 6, '0') || \
                                         '-0123456789abcdefghijklmnop', 'UTF8')), 'hex'), \
                'bench-host', CASE WHEN g % 10 = 0 THEN 'windows' WHEN g % 10 = 1 THEN 'darwin' ELSE 'linux' END, \
                'x86_64', '1.0.0', 'Online', now() - (g % 60) * interval '1 second' \
           FROM generate_series(0::bigint, $1::bigint - 1) g ON CONFLICT DO NOTHING",
        &[&(count as i64)],
    )
    .await
    .expect("seeding agents");
    db.batch_execute("VACUUM ANALYZE agents").await.expect("vacuum");
    println!("  seeded {count} agents ({:.1} s)", started.elapsed().as_secs_f64());
}

/// The value of an unlabelled (or first matching) sample in the server's `/metrics`.
async fn metric(server: &BenchServer, prefix: &str) -> f64 {
    let text = server
        .client
        .get(format!("{}/metrics", server.base))
        .bearer_auth(KEY)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .unwrap_or_default();
    text.lines().filter(|l| l.starts_with(prefix)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
}

async fn wait_for_directory(server: &BenchServer, agents: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(server, "certctl_agent_directory_size").await < agents as f64 {
        assert!(Instant::now() < deadline, "the agent directory never loaded the seeded agents");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn flush_statements(server: &BenchServer) -> f64 {
    metric(server, "certctl_db_query_duration_seconds_count{statement=\"flush_heartbeats\"").await
}

/// Seconds from now (the run's end) until every agent's last accepted beat is in PostgreSQL.
async fn durable(server: &BenchServer, last: &Arc<Vec<AtomicI64>>) -> f64 {
    let db = server.database().await;
    let (ids, sent): (Vec<String>, Vec<chrono::DateTime<chrono::Utc>>) = last
        .iter()
        .enumerate()
        .filter_map(|(i, t)| {
            let micros = t.load(Ordering::Relaxed);
            (micros > 0).then(|| (agent_id(i as u64), chrono::DateTime::from_timestamp_micros(micros).unwrap()))
        })
        .unzip();
    let started = Instant::now();
    loop {
        let missing: i64 = db
            .query_one(
                "SELECT count(*) FROM agents a JOIN unnest($1::text[], $2::timestamptz[]) AS s(id, sent) ON a.id = s.id \
                  WHERE a.last_heartbeat_at IS NULL OR a.last_heartbeat_at < s.sent",
                &[&ids, &sent],
            )
            .await
            .expect("checking the beats")
            .get(0);
        if missing == 0 {
            return started.elapsed().as_secs_f64();
        }
        if started.elapsed() > Duration::from_secs(30) {
            println!("  {missing} agents still lack their latest beat after 30 s");
            return f64::INFINITY;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const HEARTBEAT_ROUTE: &str = "route=\"/api/v1/agents/{id}/heartbeat\"";

/// The server's heartbeat latency histogram: `(le, cumulative count)` per bucket.
async fn heartbeat_buckets(server: &BenchServer) -> Vec<(f64, f64)> {
    let text = server.client.get(format!("{}/metrics", server.base)).send().await.expect("metrics").text().await;
    let mut buckets: Vec<(f64, f64)> = text
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("certctl_http_request_duration_seconds_bucket") && l.contains(HEARTBEAT_ROUTE))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
            Some((le, l.rsplit(' ').next()?.parse().ok()?))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    buckets
}

/// The fraction of the phase's heartbeats the server answered within each bucket bound.
fn server_side_fractions(before: &[(f64, f64)], after: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let count = |buckets: &[(f64, f64)], le: f64| buckets.iter().find(|b| b.0 == le).map_or(0.0, |b| b.1);
    let total = count(after, f64::INFINITY) - count(before, f64::INFINITY);
    after
        .iter()
        .filter(|(le, _)| le.is_finite() && [0.001, 0.005, 0.01, 0.05, 0.1].contains(le))
        .map(|(le, n)| (*le, if total > 0.0 { (n - count(before, *le)) / total } else { 0.0 }))
        .collect()
}
