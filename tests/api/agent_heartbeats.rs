//! Agents over HTTP, without an agent binary: heartbeats through the aggregator (flushed by the
//! test), and the stale-agent loop.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::agent_support::{agent, as_agent, heartbeat, insert_deployment, job, register, register_agent, sql};
use crate::helpers::{assert_problem, TestApp};
use crate::renewal::run_loop;

// ---------------------------------------------------------------------------------------------
// Heartbeats
// ---------------------------------------------------------------------------------------------

#[actix_web::test]
async fn a_heartbeat_is_answered_at_once_and_written_by_the_next_flush() {
    // A flush interval of an hour: nothing reaches the database until the test flushes.
    let app = TestApp::spawn_with(&["--heartbeat-flush-interval", "1h"]).await;
    let (id, key) = register_agent(&app, "beating").await;
    let host = json!({
        "version": "1.4.2", "hostname": "web-01.prod", "os": "linux", "architecture": "amd64",
        "ip_address": "10.0.0.7"
    });
    assert_eq!(heartbeat(&app, &id, &key, Some(host)).await.status(), 204);
    let db = sql(&app).await;
    let written: Option<chrono::DateTime<chrono::Utc>> =
        db.query_one("SELECT last_heartbeat_at FROM agents WHERE id = $1", &[&id]).await.unwrap().get(0);
    assert_eq!(written, None, "a heartbeat never writes on the request path");

    assert_eq!(app.heartbeats.flush_all().await.unwrap(), 1);
    let row = db
        .query_one("SELECT last_heartbeat_at IS NOT NULL, hostname, os FROM agents WHERE id = $1", &[&id])
        .await
        .unwrap();
    let (beat_written, hostname, os): (bool, String, String) = (row.get(0), row.get(1), row.get(2));
    assert_eq!((beat_written, hostname.as_str(), os.as_str()), (true, "web-01.prod", "linux"));

    let shown = agent(&app, &id).await;
    assert!(shown["last_heartbeat_at"].is_string(), "{shown}");
    for (field, value) in [
        ("version", "1.4.2"),
        ("hostname", "web-01.prod"),
        ("os", "linux"),
        ("architecture", "amd64"),
        ("ip_address", "10.0.0.7"),
    ] {
        assert_eq!(shown[field], value, "{field} in {shown}");
    }
}

#[actix_web::test]
async fn of_two_beats_before_a_flush_the_later_one_is_written() {
    let app = TestApp::spawn_with(&["--heartbeat-flush-interval", "1h"]).await;
    let (id, key) = register_agent(&app, "twice").await;
    let first = json!({"version": "1.0.0", "hostname": "old-name", "os": "linux"});
    let second = json!({"version": "1.1.0", "hostname": "new-name", "os": "linux"});
    assert_eq!(heartbeat(&app, &id, &key, Some(first)).await.status(), 204);
    let before_second = chrono::Utc::now();
    assert_eq!(heartbeat(&app, &id, &key, Some(second)).await.status(), 204);
    assert_eq!(app.heartbeats.flush_all().await.unwrap(), 1, "one row per agent, however many beats");

    let shown = agent(&app, &id).await;
    assert_eq!((shown["hostname"].as_str(), shown["version"].as_str()), (Some("new-name"), Some("1.1.0")));
    let at = chrono::DateTime::parse_from_rfc3339(shown["last_heartbeat_at"].as_str().unwrap()).unwrap();
    // Stored with microsecond precision.
    assert!(
        at.timestamp_micros() >= before_second.timestamp_micros(),
        "the second beat's time is written: {at} < {before_second}"
    );
}

#[actix_web::test]
async fn a_heartbeat_without_a_body_keeps_the_stored_host_details() {
    let app = TestApp::spawn_with(&["--heartbeat-flush-interval", "1h"]).await;
    let created = register(&app, json!({"name": "quiet-host", "hostname": "h-0", "os": "linux"})).await;
    let (id, key) = (created["id"].as_str().unwrap(), created["api_key"].as_str().unwrap());
    assert_eq!(heartbeat(&app, id, key, None).await.status(), 204);
    assert_eq!(app.heartbeats.flush_all().await.unwrap(), 1);
    let shown = agent(&app, id).await;
    assert!(shown["last_heartbeat_at"].is_string());
    assert_eq!((shown["hostname"].as_str(), shown["os"].as_str()), (Some("h-0"), Some("linux")));
}

#[actix_web::test]
async fn a_heartbeat_with_an_invalid_ip_address_is_refused() {
    let app = TestApp::spawn_with(&["--heartbeat-flush-interval", "1h"]).await;
    let (id, key) = register_agent(&app, "bad-ip").await;
    let response = heartbeat(&app, &id, &key, Some(json!({"ip_address": "300.1.2.3"}))).await;
    let problem = assert_problem(response, 422, "validation-failed").await;
    assert_eq!(problem["errors"][0]["field"], "ip_address", "{problem}");
    assert_eq!(app.heartbeats.flush_all().await.unwrap(), 0, "a refused beat is not kept");
    assert!(agent(&app, &id).await["last_heartbeat_at"].is_null());
}

#[actix_web::test]
async fn a_repeated_unknown_agent_key_is_refused_without_asking_the_database_again() {
    let app = TestApp::spawn().await;
    let key = "cctl_agent_does-not-exist-0123456789abcdefghij";
    let lookups = || async {
        let text = app.metrics_text().await;
        text.lines()
            .filter(|l| l.starts_with("certctl_db_query_duration_seconds_count") && l.contains("find_agent_by_key"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    // The recorder is shared by every server of this test process: compare before and after.
    let before = lookups().await;
    for _ in 0..5 {
        let response = as_agent(&app, key, Method::GET, "/api/v1/agents/ag-x/work").send().await.unwrap();
        assert_problem(response, 401, "unauthorized").await;
    }
    assert_eq!(lookups().await - before, 1.0, "one look-up, then the miss is remembered");
}

#[actix_web::test]
async fn beats_wait_out_a_database_outage_and_are_written_after_it() {
    let app = TestApp::spawn_with(&["--heartbeat-flush-interval", "1h"]).await;
    let (id, key) = register_agent(&app, "web-outage").await;
    assert_eq!(heartbeat(&app, &id, &key, Some(json!({"version": "1.0.0"}))).await.status(), 204);
    app.break_database().await;
    assert!(app.heartbeats.flush_all().await.is_err(), "the flush fails while the database is away");
    assert_eq!(heartbeat(&app, &id, &key, Some(json!({"os": "linux"}))).await.status(), 204, "still accepted");
    app.repair_database().await;
    let started = std::time::Instant::now();
    loop {
        match app.heartbeats.flush_all().await {
            Ok(1) => break,
            other => assert!(started.elapsed() < Duration::from_secs(15), "the kept beat was never written: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let row = agent(&app, &id).await;
    assert!(row["last_heartbeat_at"].is_string(), "{row}");
    assert_eq!((row["version"].as_str(), row["os"].as_str()), (Some("1.0.0"), Some("linux")), "both beats' fields");
}

#[actix_web::test]
async fn a_full_heartbeat_buffer_answers_503_with_retry_after() {
    let app = TestApp::spawn_with(&["--heartbeat-buffer-max", "1", "--heartbeat-flush-interval", "1h"]).await;
    let (a, key_a) = register_agent(&app, "web-a").await;
    let (b, key_b) = register_agent(&app, "web-b").await;
    assert_eq!(heartbeat(&app, &a, &key_a, None).await.status(), 204);
    let refused = heartbeat(&app, &b, &key_b, None).await;
    assert_eq!(refused.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    assert_problem(refused, 503, "service-unavailable").await;
    assert_eq!(heartbeat(&app, &a, &key_a, None).await.status(), 204, "an agent already waiting still updates");
    app.heartbeats.flush_all().await.unwrap();
    assert_eq!(heartbeat(&app, &b, &key_b, None).await.status(), 204, "room again after the flush");
}

// ---------------------------------------------------------------------------------------------
// The stale-agent loop
// ---------------------------------------------------------------------------------------------

#[actix_web::test]
async fn silent_agents_go_offline_hand_back_their_deployments_and_return_with_a_beat() {
    // No timer flush: flush_all() alone writes the beats, so nothing is in flight when it returns.
    let app = TestApp::spawn_with(&["--agent-offline-after", "1s", "--heartbeat-flush-interval", "1h"]).await;
    let (id, key) = register_agent(&app, "sleepy").await;
    assert_eq!(heartbeat(&app, &id, &key, None).await.status(), 204);
    app.heartbeats.flush_all().await.unwrap();
    assert!(agent(&app, &id).await["last_heartbeat_at"].is_string());
    let certificate = app.create_certificate("on-sleepy").await["id"].as_str().unwrap().to_string();
    insert_deployment(&app, "job-deploy-sleepy", &certificate, &id, true).await;

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let swept = run_loop(&app, "agent_health_check").await;
    assert_eq!((swept["marked_offline"].as_i64(), swept["jobs_released"].as_i64()), (Some(1), Some(1)), "{swept}");
    assert_eq!(agent(&app, &id).await["status"], "Offline");
    let released = job(&app, "job-deploy-sleepy").await;
    assert_eq!(
        (released["status"].as_str(), released["attempts"].as_i64(), released["lease_expires_at"].is_null()),
        (Some("Pending"), Some(0), true),
        "back in the queue, the interrupted attempt not counted: {released}"
    );

    assert_eq!(heartbeat(&app, &id, &key, None).await.status(), 204);
    app.heartbeats.flush_all().await.unwrap();
    assert_eq!(agent(&app, &id).await["status"], "Online", "a beat brings an Offline agent back");
}
