//! ETags on the five hot lists: 304 with no database query while nothing changed (the DB handle's
//! query count unchanged), `If-None-Match` with lists of tags, weak tags and `*`, and 200 after every
//! kind of change (an API write and its audit row, the dispatcher's write-back, a heartbeat flush, SQL
//! typed by hand) within a second, also across two servers and two server processes on one database.
//! No 304 at all while the change listener is disconnected or its session has gone silent behind
//! `freezing_proxy.rs` (noticed by the missing probe echo and replaced once the path is back, every
//! old tag stale afterwards); sweeps and statements that change nothing keep the tags; read auditing
//! bypasses the cache; compressed and plain answers share their weak tag. Tests wait for the echoes of
//! the server's own writes before taking tags.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use certctl_actors::etag_cache::listener::{CONNECT_TIMEOUT, PROBE_INTERVAL, PROBE_TIMEOUT};
use certctl_actors::etag_cache::Table;

use crate::freezing_proxy::FreezingProxy;
use crate::helpers::{base_args, cluster, fresh_database, settings_from, TestApp};
use crate::renewal::run_loop;

const LISTS: [&str; 5] =
    ["/api/v1/certificates", "/api/v1/jobs", "/api/v1/agents", "/api/v1/audit", "/api/v1/discovered-certificates"];

/// Ends the change listener's session on this test's database; how many it ended.
const KILL_LISTENER: &str = "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                             WHERE application_name = 'certctl-etag-listener' AND datname = current_database()";

/// Waits until the server's change listener is connected (it connects just after start).
async fn listening(app: &TestApp) {
    let started = Instant::now();
    while !app.db.generations().listening() {
        assert!(started.elapsed() < Duration::from_secs(10), "the change listener never connected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the listener has handled every notification committed so far, including the
/// echoes of this server's own writes (which bump a generation a second time after the write's
/// own bump). PostgreSQL delivers notifications in commit order, so once a marker sent now has
/// bumped its table, everything committed before it has been handled too.
async fn notifications_settled(app: &TestApp) {
    let generations = app.db.generations();
    let before = generations.get(Table::Discovered);
    let admin = cluster().admin_client_for(&app.db_name).await;
    // No time in the payload: the marker stays out of the lag histogram.
    admin.batch_execute("NOTIFY certctl_changes, 'discovered_certificates'").await.unwrap();
    let started = Instant::now();
    while generations.get(Table::Discovered) == before {
        assert!(started.elapsed() < Duration::from_secs(10), "the marker notification never arrived");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// `GET path` with the admin key and an optional `If-None-Match`: status, ETag, body.
async fn get(app: &TestApp, path: &str, if_none_match: Option<&str>) -> (u16, Option<String>, String) {
    let mut request = app.admin(Method::GET, path);
    if let Some(tag) = if_none_match {
        request = request.header("if-none-match", tag);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let etag = response.headers().get("etag").map(|v| v.to_str().unwrap().to_string());
    (status, etag, response.text().await.unwrap())
}

/// The list's current ETag (a 200).
async fn etag_of(app: &TestApp, path: &str) -> String {
    let (status, etag, body) = get(app, path, None).await;
    assert_eq!(status, 200, "{path}: {body}");
    etag.unwrap_or_else(|| panic!("{path} has no ETag"))
}

/// Waits until a notification has moved `table`'s generation past `seen` (watched in memory, so
/// the time is the notification's and not HTTP round trips'), then checks that `path` answers
/// 200 to `tag`, which was taken at `seen`. Returns the time since `since`, when the change began.
async fn renewed_after(app: &TestApp, table: Table, seen: u64, since: Instant, path: &str, tag: &str) -> Duration {
    while app.db.generations().get(table) == seen {
        assert!(since.elapsed() < Duration::from_secs(10), "{path}: no notification for {table:?} in 10 s");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let took = since.elapsed();
    assert_eq!(get(app, path, Some(tag)).await.0, 200, "{path}: the ETag from before the change");
    took
}

#[actix_web::test]
async fn a_revalidated_list_is_answered_304_without_a_database_query() {
    let app = TestApp::spawn().await;
    listening(&app).await;
    for path in LISTS.iter().map(|p| format!("{p}?limit=10")) {
        let response = app.admin(Method::GET, &path).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["cache-control"], "private, no-cache", "{path}");
        let tag = response.headers()["etag"].to_str().unwrap().to_string();
        assert!(tag.starts_with("W/\""), "a weak ETag: {tag}");
        // A background actor (the agent directory refresh) may query meanwhile; a 304 path that
        // queried would do so every time, so one clean attempt out of three proves it does not.
        let mut clean = false;
        for _ in 0..3 {
            let before = app.db.queries_sent();
            let (status, etag, body) = get(&app, &path, Some(&tag)).await;
            assert_eq!((status, etag.as_deref(), body.as_str()), (304, Some(tag.as_str()), ""), "{path}");
            if app.db.queries_sent() == before {
                clean = true;
                break;
            }
        }
        assert!(clean, "{path}: the 304 ran a query");
        let (status, _, _) = get(&app, &format!("{path}&include_total=true"), Some(&tag)).await;
        assert_eq!(status, 200, "another query string is another list");
    }
}

#[actix_web::test]
async fn if_none_match_takes_lists_weak_tags_and_star() {
    let app = TestApp::spawn().await;
    listening(&app).await;
    let tag = etag_of(&app, "/api/v1/jobs").await;
    let strong = tag.trim_start_matches("W/").to_string();
    for header in [strong, format!("\"nope\", {tag}"), "*".to_string()] {
        assert_eq!(get(&app, "/api/v1/jobs", Some(&header)).await.0, 304, "{header}");
    }
    assert_eq!(get(&app, "/api/v1/jobs", Some("\"nope\"")).await.0, 200);
    let other_key = app.user(Method::GET, "/api/v1/jobs").header("if-none-match", &tag).send().await.unwrap();
    assert_eq!(other_key.status(), 200, "another key's ETag is its own");
}

#[actix_web::test]
async fn every_kind_of_change_renews_the_etag() {
    let app = TestApp::spawn_with(&["--heartbeat-flush-interval", "1h", "--keygen-mode", "server"]).await;
    listening(&app).await;

    // The API, read-your-writes: the answer to the write is sent after the bump.
    let certificates = etag_of(&app, "/api/v1/certificates").await;
    let audit = etag_of(&app, "/api/v1/audit").await;
    let created = app.create_certificate("etag-change").await;
    assert_eq!(get(&app, "/api/v1/certificates", Some(&certificates)).await.0, 200, "a created certificate");
    assert_eq!(get(&app, "/api/v1/audit", Some(&audit)).await.0, 200, "its audit row");

    // The dispatcher (an actor's writes). The job is put in by hand so nothing wakes the
    // dispatcher before the ETag is taken; the job processor's round then issues it.
    let id = created["id"].as_str().unwrap();
    let db = cluster().admin_client_for(&app.db_name).await;
    let before_insert = etag_of(&app, "/api/v1/jobs").await;
    let (seen, since) = (app.db.generations().get(Table::Jobs), Instant::now());
    db.execute("INSERT INTO jobs (id, type, certificate_id) VALUES ('job-by-hand', 'Issuance', $1)", &[&id])
        .await
        .unwrap();
    renewed_after(&app, Table::Jobs, seen, since, "/api/v1/jobs", &before_insert).await;
    let jobs = etag_of(&app, "/api/v1/jobs").await;
    assert_eq!(get(&app, "/api/v1/jobs", Some(&jobs)).await.0, 304);
    let round = run_loop(&app, "job_processor").await;
    assert_eq!(round["completed"], 1, "{round}");
    assert_eq!(get(&app, "/api/v1/jobs", Some(&jobs)).await.0, 200, "the dispatcher's write-back");
    let cancel = app.admin(Method::POST, "/api/v1/jobs/job-by-hand/cancel").send().await.unwrap();
    assert_eq!(cancel.status(), 409, "completed already");

    // A heartbeat flush (the aggregator's write).
    let registered: serde_json::Value = app
        .admin(Method::POST, "/api/v1/agents")
        .json(&json!({"name": "etag-agent"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (agent, key) = (registered["id"].as_str().unwrap(), registered["api_key"].as_str().unwrap());
    notifications_settled(&app).await;
    let agents = etag_of(&app, "/api/v1/agents").await;
    let beat = app.client.post(app.url(&format!("/api/v1/agents/{agent}/heartbeat"))).bearer_auth(key).send().await;
    assert_eq!(beat.unwrap().status(), 204);
    assert_eq!(get(&app, "/api/v1/agents", Some(&agents)).await.0, 304, "a buffered beat changes no row yet");
    app.heartbeats.flush_all().await.unwrap();
    assert_eq!(get(&app, "/api/v1/agents", Some(&agents)).await.0, 200, "the flush wrote it");

    // SQL typed by hand: only the table's trigger tells the server.
    let discovered = etag_of(&app, "/api/v1/discovered-certificates").await;
    let (seen, since) = (app.db.generations().get(Table::Discovered), Instant::now());
    cluster()
        .admin_client_for(&app.db_name)
        .await
        .execute(
            "INSERT INTO discovered_certificates (id, fingerprint_sha256, source_path, agent_id) \
             VALUES ('dc-by-hand', repeat('a', 64), '/etc/ssl/by-hand.pem', $1)",
            &[&agent],
        )
        .await
        .unwrap();
    let took =
        renewed_after(&app, Table::Discovered, seen, since, "/api/v1/discovered-certificates", &discovered).await;
    assert!(took < Duration::from_secs(1), "{took:?}");
}

#[actix_web::test]
async fn a_change_on_another_server_renews_the_etag_within_a_second() {
    let a = TestApp::spawn().await;
    let b = TestApp::start(settings_from(base_args(&a.db_name)), a.db_name.clone()).await;
    listening(&a).await;
    listening(&b).await;
    let tag = etag_of(&a, "/api/v1/certificates").await;
    assert_eq!(get(&a, "/api/v1/certificates", Some(&tag)).await.0, 304);
    let (seen, since) = (a.db.generations().get(Table::Certificates), Instant::now());
    b.create_certificate("made-on-b").await;
    let took = renewed_after(&a, Table::Certificates, seen, since, "/api/v1/certificates", &tag).await;
    assert!(took < Duration::from_secs(1), "{took:?}");
    drop(b);
}

#[actix_web::test]
async fn a_change_made_through_another_server_process_renews_the_etag_within_a_second() {
    let a = TestApp::spawn().await;
    listening(&a).await;
    // The real binary, as a process of its own, on the same database.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string();
    let mut args = base_args(&a.db_name);
    let at = args.iter().position(|arg| arg == "--server-port").unwrap() + 1;
    args[at] = port.clone();
    let mut other = tokio::process::Command::new(env!("CARGO_BIN_EXE_certctl-server"))
        .args(&args[1..])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while !matches!(a.client.get(format!("{base}/ready")).send().await, Ok(r) if r.status() == 200) {
        assert!(started.elapsed() < Duration::from_secs(60), "the second server process never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The ready answer came from the process started here, not from whatever else took the port.
    assert!(other.try_wait().unwrap().is_none(), "the second server process exited");
    let tag = etag_of(&a, "/api/v1/certificates").await;
    let (seen, since) = (a.db.generations().get(Table::Certificates), Instant::now());
    let created = a
        .client
        .post(format!("{base}/api/v1/certificates"))
        .bearer_auth(crate::helpers::ADMIN_KEY)
        .json(&crate::helpers::certificate_body("from-another-process"))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let took = renewed_after(&a, Table::Certificates, seen, since, "/api/v1/certificates", &tag).await;
    assert!(took < Duration::from_secs(1), "{took:?}");
    let _ = other.kill().await;
}

#[actix_web::test]
async fn without_the_listener_connection_nothing_is_answered_304() {
    let app = TestApp::spawn().await;
    listening(&app).await;
    let tag = etag_of(&app, "/api/v1/certificates").await;
    let admin = cluster().admin_client_for(&app.db_name).await;
    let killed: i64 = admin.query_one(KILL_LISTENER, &[]).await.unwrap().get(0);
    assert_eq!(killed, 1, "the listener has a session of its own");
    // Until it is back, lists carry no ETag and revalidations get the full answer. It is back
    // 0.5 s later; should a loaded machine take longer than that to answer, the session is
    // ended again, since only an answer given while it was away shows anything.
    let mut attempts = 0;
    loop {
        let started = Instant::now();
        while app.db.generations().listening() {
            assert!(started.elapsed() < Duration::from_secs(5), "the listener did not notice its connection ended");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let (status, etag, _) = get(&app, "/api/v1/certificates", Some(&tag)).await;
        if !app.db.generations().listening() {
            assert_eq!((status, etag), (200, None), "no 304 and no ETag while notifications may be missed");
            break;
        }
        attempts += 1;
        assert!(attempts < 5, "the listener was always back before the answer");
        listening(&app).await;
        admin.execute(KILL_LISTENER, &[]).await.unwrap();
    }
    listening(&app).await;
    assert_eq!(get(&app, "/api/v1/certificates", Some(&tag)).await.0, 200, "every ETag from before is stale");
    let fresh = etag_of(&app, "/api/v1/certificates").await;
    assert_ne!(fresh, tag);
    assert_eq!(get(&app, "/api/v1/certificates", Some(&fresh)).await.0, 304, "trusted again");
    assert!(app.metrics_text().await.contains("certctl_etag_listener_reconnects_total"));
}

#[actix_web::test]
async fn read_auditing_bypasses_the_cache() {
    let app = TestApp::spawn_with(&["--audit-reads", "true"]).await;
    listening(&app).await;
    let (status, etag, _) = get(&app, "/api/v1/certificates", Some("*")).await;
    assert_eq!((status, etag), (200, None), "every read is recorded, so none is answered from memory");
}

#[actix_web::test]
async fn sweeps_and_statements_that_change_nothing_keep_the_etags() {
    let app = TestApp::spawn().await;
    listening(&app).await;
    app.create_certificate("quiet").await;
    notifications_settled(&app).await;
    let paths = ["/api/v1/certificates", "/api/v1/jobs", "/api/v1/audit", "/api/v1/agents"];
    let mut tags = Vec::new();
    for path in paths {
        tags.push(etag_of(&app, path).await);
    }
    for name in ["short_lived_expiry", "job_retry", "job_timeout", "agent_health_check", "job_processor"] {
        run_loop(&app, name).await;
    }
    cluster()
        .admin_client_for(&app.db_name)
        .await
        .batch_execute("UPDATE managed_certificates SET name = name WHERE false; DELETE FROM jobs WHERE false")
        .await
        .unwrap();
    // Any notification those had sent would arrive before the marker.
    notifications_settled(&app).await;
    for (path, tag) in paths.iter().zip(&tags) {
        assert_eq!(get(&app, path, Some(tag)).await.0, 304, "{path}: nothing changed");
    }
}

#[actix_web::test]
async fn compressed_and_plain_lists_share_their_weak_etag() {
    let app = TestApp::spawn().await;
    listening(&app).await;
    let tag_for = |encoding: &'static str| {
        let request = app.admin(Method::GET, "/api/v1/audit").header("accept-encoding", encoding);
        async move { request.send().await.unwrap().headers()["etag"].to_str().unwrap().to_string() }
    };
    let (gzip, plain) = (tag_for("gzip").await, tag_for("identity").await);
    assert_eq!(gzip, plain, "equivalent answers, one weak ETag");
    let again = app
        .admin(Method::GET, "/api/v1/audit")
        .header("accept-encoding", "gzip")
        .header("if-none-match", &plain)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["vary"], "accept-encoding", "the 304 varies as the 200 would");
}

#[actix_web::test]
async fn a_listener_session_gone_silent_is_noticed_and_replaced() {
    // The server reaches PostgreSQL through a proxy that can stop passing bytes without closing
    // anything: no socket error, so only the listener's probe can notice.
    let proxy = FreezingProxy::start().await;
    let db_name = fresh_database().await;
    let mut args = base_args(&db_name);
    let at = args.iter().position(|arg| arg == "--database-url").unwrap() + 1;
    args[at] = proxy.url_for(&db_name);
    let app = TestApp::start(settings_from(args), db_name).await;
    listening(&app).await;
    let id = app.create_certificate("before-the-silence").await["id"].as_str().unwrap().to_string();
    notifications_settled(&app).await;
    let tag = etag_of(&app, "/api/v1/certificates").await;

    proxy.freeze();
    let started = Instant::now();
    while app.db.generations().listening() {
        let limit = PROBE_INTERVAL * 2 + PROBE_TIMEOUT + Duration::from_secs(5);
        assert!(started.elapsed() < limit, "a silent session was still trusted after {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A change the silent session cannot report, made on a path of its own.
    let renamed = cluster()
        .admin_client_for(&app.db_name)
        .await
        .execute("UPDATE managed_certificates SET name = 'renamed-in-the-silence' WHERE id = $1", &[&id])
        .await
        .unwrap();
    assert_eq!(renamed, 1);

    proxy.thaw();
    let started = Instant::now();
    while !app.db.generations().listening() {
        let limit = CONNECT_TIMEOUT * 2 + Duration::from_secs(5);
        assert!(started.elapsed() < limit, "no new listener session {limit:?} after the path came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, _, body) = get(&app, "/api/v1/certificates", Some(&tag)).await;
    assert_eq!(status, 200, "a tag from before the silence is stale");
    assert!(body.contains("renamed-in-the-silence"), "{body}");
}
