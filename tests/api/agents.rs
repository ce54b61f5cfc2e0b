//! Agents over HTTP, without an agent binary: registration (the key shown once, only its hash
//! stored, the bootstrap token), what an agent key may reach, heartbeats through the aggregator
//! (flushed by the test), the agent list, retirement, the stale-agent loop, the CSR flow from an
//! AwaitingCSR job to a chain for the agent's own key and a reported deployment, and discovery
//! reports with their triage (dismiss, claim).

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::helpers::{assert_problem, certificate_body, cluster, TestApp};
use crate::renewal::{openssl_verifies, run_loop};

const BOOTSTRAP_TOKEN: &str = "agent-bootstrap-token-0123456789";

/// Registers an agent from `body` with the admin key; returns the answer (with `api_key`).
async fn register(app: &TestApp, body: Value) -> Value {
    let response = app.admin(Method::POST, "/api/v1/agents").json(&body).send().await.unwrap();
    let status = response.status();
    let created: Value = response.json().await.unwrap();
    assert_eq!(status, 201, "registering {body}: {created}");
    created
}

/// Registers an agent named `name`; returns its id and key.
async fn register_agent(app: &TestApp, name: &str) -> (String, String) {
    let created = register(app, json!({ "name": name })).await;
    (created["id"].as_str().unwrap().to_string(), created["api_key"].as_str().unwrap().to_string())
}

/// A request with an agent's key (or any other bearer token).
fn as_agent(app: &TestApp, key: &str, method: Method, path: &str) -> reqwest::RequestBuilder {
    app.client.request(method, app.url(path)).bearer_auth(key)
}

/// A heartbeat of agent `id` sent with `key`, with an optional body.
async fn heartbeat(app: &TestApp, id: &str, key: &str, body: Option<Value>) -> reqwest::Response {
    let request = as_agent(app, key, Method::POST, &format!("/api/v1/agents/{id}/heartbeat"));
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    request.send().await.unwrap()
}

/// An agent as the admin API shows it.
async fn agent(app: &TestApp, id: &str) -> Value {
    let response = app.get(&format!("/api/v1/agents/{id}")).await;
    assert_eq!(response.status(), 200, "GET agent {id}");
    response.json().await.unwrap()
}

async fn job(app: &TestApp, id: &str) -> Value {
    let response = app.get(&format!("/api/v1/jobs/{id}")).await;
    assert_eq!(response.status(), 200, "GET job {id}");
    response.json().await.unwrap()
}

async fn sql(app: &TestApp) -> tokio_postgres::Client {
    cluster().admin_client_for(&app.db_name).await
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn rfc3339(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A deployment job of `agent_id` for `certificate_id`, written straight into the table.
async fn insert_deployment(app: &TestApp, job_id: &str, certificate_id: &str, agent_id: &str, running: bool) {
    let sql_text = if running {
        "INSERT INTO jobs (id, type, certificate_id, agent_id, status, attempts, started_at, lease_expires_at) \
         VALUES ($1, 'Deployment', $2, $3, 'Running', 1, now(), now() + interval '10 minutes')"
    } else {
        "INSERT INTO jobs (id, type, certificate_id, agent_id, status) VALUES ($1, 'Deployment', $2, $3, 'Pending')"
    };
    sql(app).await.execute(sql_text, &[&job_id, &certificate_id, &agent_id]).await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Registration
// ---------------------------------------------------------------------------------------------

#[actix_web::test]
async fn an_admin_registers_an_agent_and_its_key_reaches_its_own_agent() {
    let app = TestApp::spawn().await;
    let body = json!({"name": "web-01", "hostname": "web-01.internal", "os": "linux", "version": "1.0.0"});
    let response = app.admin(Method::POST, "/api/v1/agents").json(&body).send().await.unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["cache-control"], "no-store", "the key is shown once and never cached");
    let location = response.headers()["location"].to_str().unwrap().to_string();
    let created: Value = response.json().await.unwrap();
    let id = created["id"].as_str().unwrap();
    let key = created["api_key"].as_str().unwrap();
    assert!(key.starts_with("cctl_agent_"), "{key}");
    assert_eq!(location, format!("/api/v1/agents/{id}"));
    assert_eq!(
        (created["name"].as_str(), created["hostname"].as_str(), created["status"].as_str()),
        (Some("web-01"), Some("web-01.internal"), Some("Online")),
        "{created}"
    );

    let own = as_agent(&app, key, Method::GET, &format!("/api/v1/agents/{id}")).send().await.unwrap();
    assert_eq!(own.status(), 200);
    let own: Value = own.json().await.unwrap();
    assert_eq!((own["id"].as_str(), own["os"].as_str()), (Some(id), Some("linux")));
    assert!(own.get("api_key").is_none() && own.get("api_key_hash").is_none(), "the key is never shown again: {own}");
}

#[actix_web::test]
async fn only_the_sha256_of_an_agent_key_is_stored() {
    let app = TestApp::spawn().await;
    let (id, key) = register_agent(&app, "hashed").await;
    let db = sql(&app).await;
    let stored: String = db.query_one("SELECT api_key_hash FROM agents WHERE id = $1", &[&id]).await.unwrap().get(0);
    assert_eq!(stored, sha256_hex(key.as_bytes()));

    // Neither the key nor its random part is anywhere in the database (rows as text).
    let secret = key.strip_prefix("cctl_agent_").unwrap();
    let tables: Vec<String> = db
        .query(
            "SELECT table_name::text FROM information_schema.tables \
              WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert!(tables.iter().any(|t| t == "agents") && tables.iter().any(|t| t == "audit_events"), "{tables:?}");
    for table in &tables {
        let found: i64 = db
            .query_one(&format!("SELECT count(*) FROM \"{table}\" t WHERE strpos(t::text, $1) > 0"), &[&secret])
            .await
            .unwrap()
            .get(0);
        assert_eq!(found, 0, "the agent key appears in table {table}");
    }
}

#[actix_web::test]
async fn registering_a_name_that_is_taken_is_a_conflict() {
    let app = TestApp::spawn().await;
    register_agent(&app, "twin").await;
    let again = app.admin(Method::POST, "/api/v1/agents").json(&json!({"name": "twin"})).send().await.unwrap();
    let problem = assert_problem(again, 409, "already-exists").await;
    assert!(problem["detail"].as_str().unwrap().contains("name"), "{problem}");
    let db = sql(&app).await;
    let count: i64 = db.query_one("SELECT count(*) FROM agents WHERE name = 'twin'", &[]).await.unwrap().get(0);
    assert_eq!(count, 1);
}

#[actix_web::test]
async fn a_non_admin_key_cannot_register_agents() {
    let app = TestApp::spawn().await;
    let response = app.user(Method::POST, "/api/v1/agents").json(&json!({"name": "sneaky"})).send().await.unwrap();
    assert_problem(response, 403, "forbidden").await;
    let listed: Value = app.get("/api/v1/agents").await.json().await.unwrap();
    assert_eq!(listed["data"], json!([]));
}

#[actix_web::test]
async fn the_bootstrap_token_registers_agents_and_does_nothing_else() {
    let app = TestApp::spawn_with(&["--agent-bootstrap-token", BOOTSTRAP_TOKEN]).await;
    let response = as_agent(&app, BOOTSTRAP_TOKEN, Method::POST, "/api/v1/agents")
        .json(&json!({"name": "self-registered", "hostname": "db-01"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    assert!(created["api_key"].as_str().unwrap().starts_with("cctl_agent_"), "{created}");
    let id = created["id"].as_str().unwrap();

    for path in ["/api/v1/agents".to_string(), "/api/v1/certificates".to_string(), format!("/api/v1/agents/{id}")] {
        let response = as_agent(&app, BOOTSTRAP_TOKEN, Method::GET, &path).send().await.unwrap();
        assert_problem(response, 403, "forbidden").await;
    }
    let beat = heartbeat(&app, id, BOOTSTRAP_TOKEN, None).await;
    assert_problem(beat, 403, "forbidden").await;
}

// ---------------------------------------------------------------------------------------------
// Confinement
// ---------------------------------------------------------------------------------------------

#[actix_web::test]
async fn an_agent_key_reaches_only_its_own_agent() {
    let app = TestApp::spawn().await;
    let (_a, key_a) = register_agent(&app, "agent-a").await;
    let (b, _key_b) = register_agent(&app, "agent-b").await;
    let refused = [
        (Method::POST, format!("/api/v1/agents/{b}/heartbeat")),
        (Method::GET, format!("/api/v1/agents/{b}")),
        (Method::GET, format!("/api/v1/agents/{b}/work")),
        (Method::POST, format!("/api/v1/agents/{b}/csr")),
        (Method::GET, format!("/api/v1/agents/{b}/certificates/mc-anything")),
        (Method::POST, format!("/api/v1/agents/{b}/jobs/job-anything/status")),
        (Method::POST, format!("/api/v1/agents/{b}/discoveries")),
        (Method::GET, "/api/v1/agents".to_string()),
        (Method::GET, "/api/v1/certificates".to_string()),
        (Method::GET, "/api/v1/jobs".to_string()),
        (Method::GET, "/api/v1/discovered-certificates".to_string()),
    ];
    for (method, path) in refused {
        let response = as_agent(&app, &key_a, method.clone(), &path).send().await.unwrap();
        assert_eq!(response.status(), 403, "{method} {path}");
        assert_problem(response, 403, "forbidden").await;
    }
}

#[actix_web::test]
async fn an_agent_cannot_retire_itself() {
    let app = TestApp::spawn().await;
    let (id, key) = register_agent(&app, "stubborn").await;
    let response = as_agent(&app, &key, Method::DELETE, &format!("/api/v1/agents/{id}")).send().await.unwrap();
    assert_problem(response, 403, "forbidden").await;
    assert_eq!(agent(&app, &id).await["status"], "Online");
}

#[actix_web::test]
async fn admin_keys_act_for_any_agent_but_an_unknown_agent_is_not_found() {
    let app = TestApp::spawn_with(&["--heartbeat-flush-interval", "1h"]).await;
    let (id, _key) = register_agent(&app, "managed-by-ops").await;
    let beat = app.admin(Method::POST, &format!("/api/v1/agents/{id}/heartbeat")).send().await.unwrap();
    assert_eq!(beat.status(), 204);
    assert_eq!(app.heartbeats.flush_all().await.unwrap(), 1);
    assert!(agent(&app, &id).await["last_heartbeat_at"].is_string());
    let work = app.admin(Method::GET, &format!("/api/v1/agents/{id}/work")).send().await.unwrap();
    assert_eq!(work.status(), 200);
    assert_eq!(work.json::<Value>().await.unwrap()["count"], 0);

    let unknown = app.admin(Method::POST, "/api/v1/agents/ag-nobody/heartbeat").send().await.unwrap();
    assert_problem(unknown, 404, "not-found").await;
}

// ---------------------------------------------------------------------------------------------
// Heartbeats and the agent list
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
async fn agents_list_with_filters_in_keyset_pages() {
    let app = TestApp::spawn().await;
    let mut ids = Vec::new();
    for (name, os, version) in [("l-1", "linux", "1.0.0"), ("w-1", "windows", "1.0.0"), ("l-2", "linux", "2.0.0")] {
        let created = register(&app, json!({"name": name, "os": os, "version": version})).await;
        ids.push(created["id"].as_str().unwrap().to_string());
    }
    let names = |page: &Value| -> Vec<String> {
        page["data"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap().to_string()).collect()
    };
    let list = |query: &'static str| {
        let app = &app;
        async move {
            let response = app.get(&format!("/api/v1/agents{query}")).await;
            assert_eq!(response.status(), 200, "{query}");
            response.json::<Value>().await.unwrap()
        }
    };
    assert_eq!(names(&list("?os=linux").await), ["l-1", "l-2"], "oldest first");
    assert_eq!(names(&list("?os=linux&version=2.0.0").await), ["l-2"]);
    assert_eq!(names(&list("?version=1.0.0").await), ["l-1", "w-1"]);
    assert_eq!(names(&list("?status=Online").await).len(), 3);
    assert_eq!(names(&list("?status=Offline").await).len(), 0);

    let mut seen = Vec::new();
    let mut path = "/api/v1/agents?limit=1".to_string();
    loop {
        let page: Value = app.get(&path).await.json().await.unwrap();
        assert!(page["data"].as_array().unwrap().len() <= 1, "{page}");
        seen.extend(page["data"].as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap().to_string()));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/agents?limit=1&cursor={cursor}"),
            None => break,
        }
        assert!(seen.len() <= 3, "the walk ends");
    }
    assert_eq!(seen, ids, "every agent once, in registration order");

    assert_problem(app.get("/api/v1/agents?status=Asleep").await, 400, "invalid-query").await;
}

// ---------------------------------------------------------------------------------------------
// Retirement and the stale-agent loop
// ---------------------------------------------------------------------------------------------

#[actix_web::test]
async fn retiring_an_agent_cancels_its_deployments_and_refuses_its_key() {
    let app = TestApp::spawn().await;
    let (id, key) = register_agent(&app, "old-box").await;
    let certificate = app.create_certificate("on-old-box").await["id"].as_str().unwrap().to_string();
    insert_deployment(&app, "job-deploy-old-box", &certificate, &id, false).await;

    let response =
        app.admin(Method::DELETE, &format!("/api/v1/agents/{id}?reason=decommissioned")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let retired: Value = response.json().await.unwrap();
    assert_eq!(
        (retired["status"].as_str(), retired["retired_reason"].as_str(), retired["cancelled_jobs"].as_i64()),
        (Some("Retired"), Some("decommissioned"), Some(1)),
        "{retired}"
    );
    assert!(retired["retired_at"].is_string(), "{retired}");
    let cancelled = job(&app, "job-deploy-old-box").await;
    assert_eq!(cancelled["status"], "Cancelled", "{cancelled}");

    assert_problem(heartbeat(&app, &id, &key, None).await, 410, "gone").await;
    let again = app.admin(Method::DELETE, &format!("/api/v1/agents/{id}")).send().await.unwrap();
    assert_problem(again, 410, "gone").await;
    assert_eq!(agent(&app, &id).await["status"], "Retired");
}

#[actix_web::test]
async fn only_admins_retire_agents_and_unknown_agents_are_not_found() {
    let app = TestApp::spawn().await;
    let (id, _key) = register_agent(&app, "kept").await;
    let response = app.user(Method::DELETE, &format!("/api/v1/agents/{id}")).send().await.unwrap();
    assert_problem(response, 403, "forbidden").await;
    assert_eq!(agent(&app, &id).await["status"], "Online");
    let unknown = app.admin(Method::DELETE, "/api/v1/agents/ag-nobody").send().await.unwrap();
    assert_problem(unknown, 404, "not-found").await;
}

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

// ---------------------------------------------------------------------------------------------
// The CSR flow: AwaitingCSR → CSR → issued chain → deployment reported
// ---------------------------------------------------------------------------------------------

/// An agent with a file target, and a certificate bound to it whose issuance waits for a CSR.
struct CsrSetup {
    agent: String,
    key: String,
    target: String,
    certificate: String,
    common_name: String,
    sans: Vec<String>,
}

/// Creates a `file` target of `agent_id`.
async fn file_target(app: &TestApp, agent_id: &str) -> String {
    let body = json!({
        "name": format!("files of {agent_id}"), "type": "file", "agent_id": agent_id,
        "config": {"directory": "/tmp/x"}
    });
    let response = app.admin(Method::POST, "/api/v1/targets").json(&body).send().await.unwrap();
    let status = response.status();
    let target: Value = response.json().await.unwrap();
    assert_eq!(status, 201, "{target}");
    assert_eq!(target["agent_id"], agent_id);
    target["id"].as_str().unwrap().to_string()
}

async fn awaiting_csr(app: &TestApp, name: &str) -> CsrSetup {
    let (agent, key) = register_agent(app, &format!("{name}-agent")).await;
    let target = file_target(app, &agent).await;
    let mut body = certificate_body(name);
    body["target_ids"] = json!([target]);
    let response = app.post_certificate(&body).await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    let scan = run_loop(app, "renewal_scan").await;
    assert_eq!(scan["enqueued"], 1, "{scan}");
    run_loop(app, "job_processor").await;
    CsrSetup {
        agent,
        key,
        target,
        certificate: created["id"].as_str().unwrap().to_string(),
        common_name: created["common_name"].as_str().unwrap().to_string(),
        sans: created["sans"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect(),
    }
}

/// The agent's work poll, as `{count, jobs}`.
async fn poll_work(app: &TestApp, agent_id: &str, key: &str) -> Value {
    let response = as_agent(app, key, Method::GET, &format!("/api/v1/agents/{agent_id}/work")).send().await.unwrap();
    let status = response.status();
    let work: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{work}");
    work
}

/// A PEM CSR for `names` (the first is also the subject's common name), signed by `key`.
fn csr_for(names: &[&str], key: &rcgen::KeyPair) -> String {
    let mut params = rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    // rcgen's default subject is "CN=rcgen self signed cert", not a name of the certificate.
    let mut subject = rcgen::DistinguishedName::new();
    subject.push(rcgen::DnType::CommonName, names[0]);
    params.distinguished_name = subject;
    params.serialize_request(key).unwrap().pem().unwrap()
}

fn p256_key() -> rcgen::KeyPair {
    rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap()
}

async fn submit_csr(app: &TestApp, setup: &CsrSetup, job_id: &str, csr_pem: &str) -> reqwest::Response {
    let body = json!({"certificate_id": setup.certificate, "job_id": job_id, "csr_pem": csr_pem});
    as_agent(app, &setup.key, Method::POST, &format!("/api/v1/agents/{}/csr", setup.agent))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// The setup taken through the agent's CSR (for a fresh P-256 key) to an issued version.
async fn issued_through_csr(app: &TestApp, setup: &CsrSetup) {
    let work = poll_work(app, &setup.agent, &setup.key).await;
    let job_id = work["jobs"][0]["id"].as_str().unwrap().to_string();
    let key = p256_key();
    let names: Vec<&str> = setup.sans.iter().map(String::as_str).collect();
    let response = submit_csr(app, setup, &job_id, &csr_for(&names, &key)).await;
    assert_eq!(response.status(), 202);
    run_loop(app, "job_processor").await;
    assert_eq!(job(app, &job_id).await["status"], "Completed");
}

/// The newest issued version as the agent fetches it.
async fn agent_certificate(app: &TestApp, setup: &CsrSetup) -> Value {
    let path = format!("/api/v1/agents/{}/certificates/{}", setup.agent, setup.certificate);
    let response = as_agent(app, &setup.key, Method::GET, &path).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    response.json().await.unwrap()
}

#[actix_web::test]
async fn an_agent_is_offered_the_csr_job_of_a_certificate_on_its_target() {
    let app = TestApp::spawn().await;
    let setup = awaiting_csr(&app, "csr-offer").await;
    let jobs: Value =
        app.get(&format!("/api/v1/jobs?certificate_id={}", setup.certificate)).await.json().await.unwrap();
    assert_eq!(jobs["data"].as_array().unwrap().len(), 1, "{jobs}");
    let job_id = jobs["data"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(jobs["data"][0]["status"], "AwaitingCSR", "agent key generation waits for a CSR: {jobs}");

    let (stranger, stranger_key) = register_agent(&app, "no-targets").await;
    assert_eq!(poll_work(&app, &stranger, &stranger_key).await["count"], 0, "only agents of a bound target");

    let work = poll_work(&app, &setup.agent, &setup.key).await;
    assert_eq!(work["count"], 1, "{work}");
    let item = &work["jobs"][0];
    assert_eq!(
        (item["id"].as_str(), item["type"].as_str(), item["status"].as_str(), item["certificate_id"].as_str()),
        (Some(job_id.as_str()), Some("Issuance"), Some("AwaitingCSR"), Some(setup.certificate.as_str())),
        "{item}"
    );
    assert_eq!(item["key_algorithm"], "ecdsa-p256", "{item}");
    assert_eq!(item["common_name"], setup.common_name.as_str());
    assert!(item["lease_expires_at"].is_string(), "the CSR job is leased to the agent: {item}");
    assert_eq!(job(&app, &job_id).await["agent_id"], setup.agent.as_str());
}

#[actix_web::test]
async fn csrs_with_foreign_names_or_garbage_are_refused() {
    let app = TestApp::spawn().await;
    let setup = awaiting_csr(&app, "csr-refused").await;
    let work = poll_work(&app, &setup.agent, &setup.key).await;
    let job_id = work["jobs"][0]["id"].as_str().unwrap().to_string();

    let key = p256_key();
    let extra = csr_for(&[setup.common_name.as_str(), "evil.example.com"], &key);
    let problem = assert_problem(submit_csr(&app, &setup, &job_id, &extra).await, 422, "validation-failed").await;
    assert_eq!(problem["errors"][0]["field"], "csr_pem", "{problem}");
    assert!(problem["errors"][0]["message"].as_str().unwrap().contains("evil.example.com"), "{problem}");

    let garbage = submit_csr(&app, &setup, &job_id, "not a certificate request").await;
    let problem = assert_problem(garbage, 422, "validation-failed").await;
    assert_eq!(problem["errors"][0]["field"], "csr_pem", "{problem}");

    // An agent without a target of the certificate has no job to answer.
    let (other, other_key) = register_agent(&app, "unbound").await;
    let names: Vec<&str> = setup.sans.iter().map(String::as_str).collect();
    let body = json!({"certificate_id": setup.certificate, "csr_pem": csr_for(&names, &key)});
    let path = format!("/api/v1/agents/{other}/csr");
    let response = as_agent(&app, &other_key, Method::POST, &path).json(&body).send().await.unwrap();
    assert_problem(response, 404, "not-found").await;

    assert_eq!(job(&app, &job_id).await["status"], "AwaitingCSR", "still waiting for a good CSR");
}

#[actix_web::test]
async fn a_csr_is_issued_for_the_agents_own_key() {
    let app = TestApp::spawn().await;
    let setup = awaiting_csr(&app, "csr-issued").await;
    let work = poll_work(&app, &setup.agent, &setup.key).await;
    let job_id = work["jobs"][0]["id"].as_str().unwrap().to_string();
    let key = p256_key();
    let names: Vec<&str> = setup.sans.iter().map(String::as_str).collect();
    let csr = csr_for(&names, &key);

    let response = submit_csr(&app, &setup, &job_id, &csr).await;
    assert_eq!(response.status(), 202);
    let accepted: Value = response.json().await.unwrap();
    assert_eq!((accepted["id"].as_str(), accepted["status"].as_str()), (Some(job_id.as_str()), Some("Pending")));
    run_loop(&app, "job_processor").await;
    assert_eq!(job(&app, &job_id).await["status"], "Completed");

    let issued = agent_certificate(&app, &setup).await;
    let chain = issued["pem_chain"].as_str().unwrap();
    let (_, leaf) = x509_parser::pem::parse_x509_pem(chain.as_bytes()).expect("a PEM chain");
    let certificate = leaf.parse_x509().expect("the leaf parses");
    let leaf_key: &[u8] = &certificate.public_key().subject_public_key.data[..];
    assert_eq!(leaf_key, key.public_key_raw(), "the leaf certifies the CSR's key");
    assert_eq!(issued["fingerprint_sha256"].as_str().unwrap(), sha256_hex(&leaf.contents));
    let ca = app.get("/api/v1/issuers/iss-local/ca").await.text().await.unwrap();
    assert!(openssl_verifies(&ca, chain), "the chain verifies against the issuer's CA");

    let versions: Value =
        app.get(&format!("/api/v1/certificates/{}/versions", setup.certificate)).await.json().await.unwrap();
    assert_eq!(issued["version_id"], versions["data"][0]["id"], "the newest version: {versions}");
    let row = sql(&app)
        .await
        .query_one("SELECT csr_pem, private_key_sealed IS NULL FROM certificate_versions", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), csr);
    assert!(row.get::<_, bool>(1), "the server never held the private key");
}

#[actix_web::test]
async fn an_agent_installs_the_new_version_and_reports_it_with_its_fingerprint() {
    let app = TestApp::spawn().await;
    let setup = awaiting_csr(&app, "csr-deployed").await;
    issued_through_csr(&app, &setup).await;
    let issued = agent_certificate(&app, &setup).await;
    let version = issued["version_id"].as_str().unwrap().to_string();
    let fingerprint = issued["fingerprint_sha256"].as_str().unwrap().to_string();

    let deployments: Value =
        app.get(&format!("/api/v1/jobs?type=Deployment&agent_id={}", setup.agent)).await.json().await.unwrap();
    assert_eq!(deployments["data"].as_array().unwrap().len(), 1, "one deployment per bound target: {deployments}");
    let deployment = &deployments["data"][0];
    assert_eq!(deployment["status"], "Pending", "{deployment}");
    assert_eq!(deployment["certificate_version_id"], version.as_str(), "the version it installs: {deployment}");
    assert_eq!(deployment["target_id"], setup.target.as_str(), "{deployment}");
    let job_id = deployment["id"].as_str().unwrap().to_string();

    let work = poll_work(&app, &setup.agent, &setup.key).await;
    assert_eq!(work["count"], 1, "{work}");
    let item = &work["jobs"][0];
    assert_eq!(
        (item["id"].as_str(), item["type"].as_str(), item["status"].as_str()),
        (Some(job_id.as_str()), Some("Deployment"), Some("Running")),
        "{item}"
    );
    assert_eq!(item["certificate_version_id"], version.as_str());
    assert_eq!((item["target_type"].as_str(), &item["target_config"]), (Some("file"), &json!({"directory": "/tmp/x"})));

    let status_path = format!("/api/v1/agents/{}/jobs/{job_id}/status", setup.agent);
    let send_report = |body: Value| as_agent(&app, &setup.key, Method::POST, &status_path).json(&body).send();
    let wrong = send_report(json!({"status": "Completed", "fingerprint": "00".repeat(32)})).await.unwrap();
    let problem = assert_problem(wrong, 422, "validation-failed").await;
    assert_eq!(problem["errors"][0]["field"], "fingerprint", "{problem}");
    let unknown = send_report(json!({"status": "Done"})).await.unwrap();
    let problem = assert_problem(unknown, 422, "validation-failed").await;
    assert_eq!(problem["errors"][0]["field"], "status", "{problem}");
    assert_eq!(job(&app, &job_id).await["status"], "Running", "refused reports change nothing");

    let done = send_report(json!({"status": "Completed", "fingerprint": fingerprint})).await.unwrap();
    assert_eq!(done.status(), 200);
    let done: Value = done.json().await.unwrap();
    assert_eq!(done["status"], "Completed", "{done}");
    assert_eq!(done["verification_fingerprint"], fingerprint.as_str(), "{done}");
    assert_eq!(job(&app, &job_id).await["status"], "Completed");
    let deployed: Option<chrono::DateTime<chrono::Utc>> = sql(&app)
        .await
        .query_one("SELECT last_deployment_at FROM managed_certificates WHERE id = $1", &[&setup.certificate])
        .await
        .unwrap()
        .get(0);
    assert!(deployed.is_some(), "the certificate records its deployment");

    let again = send_report(json!({"status": "Completed", "fingerprint": fingerprint})).await.unwrap();
    assert_problem(again, 409, "wrong-state").await;
}

#[actix_web::test]
async fn another_agent_cannot_read_the_certificate() {
    let app = TestApp::spawn().await;
    let setup = awaiting_csr(&app, "csr-private").await;
    issued_through_csr(&app, &setup).await;
    let (other, other_key) = register_agent(&app, "nosy").await;

    let through_owner = format!("/api/v1/agents/{}/certificates/{}", setup.agent, setup.certificate);
    let response = as_agent(&app, &other_key, Method::GET, &through_owner).send().await.unwrap();
    assert_problem(response, 403, "forbidden").await;
    let through_own = format!("/api/v1/agents/{other}/certificates/{}", setup.certificate);
    let response = as_agent(&app, &other_key, Method::GET, &through_own).send().await.unwrap();
    assert_problem(response, 404, "not-found").await;
}

// ---------------------------------------------------------------------------------------------
// Discovery
// ---------------------------------------------------------------------------------------------

/// One certificate as an agent reports it: fingerprint of 64 × `hex`, expiring in `days_left`.
fn found(hex: char, common_name: &str, days_left: i64, path: &str) -> Value {
    let now = chrono::Utc::now();
    json!({
        "fingerprint_sha256": hex.to_string().repeat(64),
        "common_name": common_name,
        "sans": [common_name],
        "serial_number": "0a1b",
        "issuer_dn": "CN=Legacy CA",
        "subject_dn": format!("CN={common_name}"),
        "not_before": rfc3339(now - chrono::Duration::days(30)),
        "not_after": rfc3339(now + chrono::Duration::days(days_left)),
        "key_algorithm": "RSA",
        "key_size": 2048,
        "is_ca": false,
        "source_path": path,
        "source_format": "PEM"
    })
}

async fn report(app: &TestApp, agent_id: &str, key: &str, certificates: Vec<Value>) -> reqwest::Response {
    let body = json!({
        "directories": ["/etc/ssl"], "certificates": certificates, "errors": [], "scan_duration_ms": 25
    });
    as_agent(app, key, Method::POST, &format!("/api/v1/agents/{agent_id}/discoveries"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// The discovered certificates matching `query`.
async fn discovered(app: &TestApp, query: &str) -> Vec<Value> {
    let response = app.get(&format!("/api/v1/discovered-certificates{query}")).await;
    let status = response.status();
    let page: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{query}: {page}");
    page["data"].as_array().unwrap().clone()
}

/// An agent that reported two certificates: legacy (expiring in 10 days) and old (in 300).
async fn agent_with_findings(app: &TestApp) -> (String, String) {
    let (id, key) = register_agent(app, "scanner").await;
    let certificates = vec![
        found('a', "legacy.example.com", 10, "/etc/ssl/legacy.pem"),
        found('b', "old.example.com", 300, "/etc/ssl/old.pem"),
    ];
    assert_eq!(report(app, &id, &key, certificates).await.status(), 201);
    (id, key)
}

fn with_common_name<'a>(list: &'a [Value], common_name: &str) -> &'a Value {
    list.iter().find(|d| d["common_name"] == common_name).unwrap_or_else(|| panic!("{common_name} in {list:?}"))
}

#[actix_web::test]
async fn a_discovery_report_counts_a_certificate_as_new_only_once() {
    let app = TestApp::spawn().await;
    let (id, key) = register_agent(&app, "scanner").await;
    let certificates = vec![
        found('a', "legacy.example.com", 10, "/etc/ssl/legacy.pem"),
        found('b', "old.example.com", 300, "/etc/ssl/old.pem"),
    ];
    let first = report(&app, &id, &key, certificates.clone()).await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    assert_eq!((first["certificates_found"].as_i64(), first["certificates_new"].as_i64()), (Some(2), Some(2)));

    let second: Value = report(&app, &id, &key, certificates).await.json().await.unwrap();
    assert_eq!((second["certificates_found"].as_i64(), second["certificates_new"].as_i64()), (Some(2), Some(0)));
    assert_ne!(first["scan_id"], second["scan_id"], "one scan row per report");
    assert_eq!(discovered(&app, &format!("?agent_id={id}")).await.len(), 2, "known certificates are not duplicated");
}

#[actix_web::test]
async fn discovered_certificates_list_by_agent_and_expiry() {
    let app = TestApp::spawn().await;
    let (scanner, _) = agent_with_findings(&app).await;
    let (elsewhere, key) = register_agent(&app, "elsewhere").await;
    let certificates = vec![found('c', "other.example.com", 5, "/srv/other.pem")];
    assert_eq!(report(&app, &elsewhere, &key, certificates).await.status(), 201);

    let mine = discovered(&app, &format!("?agent_id={scanner}")).await;
    assert_eq!(mine.len(), 2);
    assert!(mine.iter().all(|d| d["agent_id"] == scanner.as_str() && d["status"] == "Unmanaged"), "{mine:?}");
    assert_eq!(
        with_common_name(&mine, "old.example.com")["fingerprint_sha256"].as_str(),
        Some("b".repeat(64).as_str())
    );

    let soon = rfc3339(chrono::Utc::now() + chrono::Duration::days(30));
    assert_eq!(discovered(&app, &format!("?expiring_before={soon}")).await.len(), 2, "legacy and other");
    let mine_soon = discovered(&app, &format!("?agent_id={scanner}&expiring_before={soon}")).await;
    assert_eq!(mine_soon.len(), 1);
    assert_eq!(mine_soon[0]["common_name"], "legacy.example.com");
    assert_problem(app.get("/api/v1/discovered-certificates?expiring_before=soon").await, 400, "invalid-query").await;
}

#[actix_web::test]
async fn a_dismissed_certificate_cannot_be_triaged_again() {
    let app = TestApp::spawn().await;
    let (scanner, _) = agent_with_findings(&app).await;
    let list = discovered(&app, &format!("?agent_id={scanner}")).await;
    let id = with_common_name(&list, "legacy.example.com")["id"].as_str().unwrap().to_string();

    let dismiss = format!("/api/v1/discovered-certificates/{id}/dismiss");
    let response = app.admin(Method::POST, &dismiss).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let dismissed: Value = response.json().await.unwrap();
    assert_eq!(dismissed["status"], "Dismissed");
    assert!(dismissed["dismissed_at"].is_string(), "{dismissed}");

    assert_problem(app.admin(Method::POST, &dismiss).send().await.unwrap(), 409, "wrong-state").await;
    let claim = json!({
        "owner_id": "o-alice", "team_id": "t-platform", "issuer_id": "iss-local", "renewal_policy_id": "rp-standard"
    });
    let claimed = app
        .admin(Method::POST, &format!("/api/v1/discovered-certificates/{id}/claim"))
        .json(&claim)
        .send()
        .await
        .unwrap();
    assert_problem(claimed, 409, "wrong-state").await;
    let fetched: Value = app.get(&format!("/api/v1/discovered-certificates/{id}")).await.json().await.unwrap();
    assert_eq!(fetched["status"], "Dismissed");
}

#[actix_web::test]
async fn claiming_a_discovered_certificate_makes_a_managed_certificate_of_it() {
    let app = TestApp::spawn().await;
    let (scanner, _) = agent_with_findings(&app).await;
    let list = discovered(&app, &format!("?agent_id={scanner}")).await;
    let id = with_common_name(&list, "old.example.com")["id"].as_str().unwrap().to_string();

    let claim = json!({
        "owner_id": "o-alice", "team_id": "t-platform", "issuer_id": "iss-local",
        "renewal_policy_id": "rp-standard", "environment": "production"
    });
    let response = app
        .admin(Method::POST, &format!("/api/v1/discovered-certificates/{id}/claim"))
        .json(&claim)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let claimed: Value = response.json().await.unwrap();
    let managed_id = claimed["certificate"]["id"].as_str().unwrap().to_string();
    assert_eq!(claimed["discovered"]["status"], "Managed", "{claimed}");
    assert_eq!(claimed["discovered"]["managed_certificate_id"], managed_id.as_str());

    let managed = app.get(&format!("/api/v1/certificates/{managed_id}")).await;
    assert_eq!(managed.status(), 200);
    let managed: Value = managed.json().await.unwrap();
    assert_eq!(managed["common_name"], "old.example.com", "{managed}");
    assert_eq!(managed["sans"], json!(["old.example.com"]));
    assert_eq!(managed["owner_id"], "o-alice");

    let unmanaged = discovered(&app, &format!("?agent_id={scanner}&status=Unmanaged")).await;
    assert_eq!(unmanaged.len(), 1, "the other finding is untouched");
    assert_eq!(unmanaged[0]["common_name"], "legacy.example.com");
}

#[actix_web::test]
async fn a_non_admin_api_key_cannot_act_for_an_agent() {
    let app = TestApp::spawn().await;
    let (id, _) = register_agent(&app, "web-reader").await;
    let csr = json!({"certificate_id": "mc-none", "csr_pem": "x"});
    for (method, path, body) in [
        (Method::POST, format!("/api/v1/agents/{id}/heartbeat"), None),
        (Method::GET, format!("/api/v1/agents/{id}/work"), None),
        (Method::POST, format!("/api/v1/agents/{id}/csr"), Some(csr)),
        (Method::GET, format!("/api/v1/agents/{id}/certificates/mc-none"), None),
        (Method::POST, format!("/api/v1/agents/{id}/discoveries"), Some(json!({}))),
    ] {
        let mut request = app.user(method, &path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let problem = assert_problem(request.send().await.unwrap(), 403, "forbidden").await;
        assert!(problem["detail"].as_str().unwrap().contains("admin key"), "{path}: {problem}");
    }
}

#[actix_web::test]
async fn a_deployment_whose_lease_ran_out_fails_without_failing_the_certificate() {
    let app = TestApp::spawn().await;
    let (agent_id, _) = register_agent(&app, "web-slow").await;
    let certificate = app.create_certificate("slow-deploy").await["id"].as_str().unwrap().to_string();
    insert_deployment(&app, "job-slow-deploy", &certificate, &agent_id, true).await;
    let db = sql(&app).await;
    // The certificate is being renewed meanwhile; a stuck deployment must not mark it Failed.
    db.execute("UPDATE managed_certificates SET status = 'RenewalInProgress' WHERE id = $1", &[&certificate])
        .await
        .unwrap();
    db.execute(
        "UPDATE jobs SET lease_expires_at = now() - interval '1 second', max_attempts = 1 WHERE id = 'job-slow-deploy'",
        &[],
    )
    .await
    .unwrap();
    let reaped = run_loop(&app, "job_timeout").await;
    assert_eq!(reaped["lease_expired"], 1, "{reaped}");
    let failed = job(&app, "job-slow-deploy").await;
    assert_eq!(failed["status"], "Failed");
    assert_eq!(failed["last_error"], "the lease expired before the agent reported the deployment");
    let status: String =
        db.query_one("SELECT status FROM managed_certificates WHERE id = $1", &[&certificate]).await.unwrap().get(0);
    assert_eq!(status, "RenewalInProgress", "the certificate's own renewal goes on");
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
