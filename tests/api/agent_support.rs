//! Helpers shared by the agent tests over HTTP, without an agent binary (agent_registration,
//! agent_heartbeats, agent_work, discovery): registering agents, requests with an agent's key,
//! heartbeats, the admin view of agents and jobs, SQL on the test database, and deployments
//! written straight into the jobs table.

use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::helpers::{cluster, TestApp};

/// Registers an agent from `body` with the admin key; returns the answer (with `api_key`).
pub(crate) async fn register(app: &TestApp, body: Value) -> Value {
    let response = app.admin(Method::POST, "/api/v1/agents").json(&body).send().await.unwrap();
    let status = response.status();
    let created: Value = response.json().await.unwrap();
    assert_eq!(status, 201, "registering {body}: {created}");
    created
}

/// Registers an agent named `name`; returns its id and key.
pub(crate) async fn register_agent(app: &TestApp, name: &str) -> (String, String) {
    let created = register(app, json!({ "name": name })).await;
    (created["id"].as_str().unwrap().to_string(), created["api_key"].as_str().unwrap().to_string())
}

/// A request with an agent's key (or any other bearer token).
pub(crate) fn as_agent(app: &TestApp, key: &str, method: Method, path: &str) -> reqwest::RequestBuilder {
    app.client.request(method, app.url(path)).bearer_auth(key)
}

/// A heartbeat of agent `id` sent with `key`, with an optional body.
pub(crate) async fn heartbeat(app: &TestApp, id: &str, key: &str, body: Option<Value>) -> reqwest::Response {
    let request = as_agent(app, key, Method::POST, &format!("/api/v1/agents/{id}/heartbeat"));
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    request.send().await.unwrap()
}

/// An agent as the admin API shows it.
pub(crate) async fn agent(app: &TestApp, id: &str) -> Value {
    let response = app.get(&format!("/api/v1/agents/{id}")).await;
    assert_eq!(response.status(), 200, "GET agent {id}");
    response.json().await.unwrap()
}

pub(crate) async fn job(app: &TestApp, id: &str) -> Value {
    let response = app.get(&format!("/api/v1/jobs/{id}")).await;
    assert_eq!(response.status(), 200, "GET job {id}");
    response.json().await.unwrap()
}

pub(crate) async fn sql(app: &TestApp) -> tokio_postgres::Client {
    cluster().admin_client_for(&app.db_name).await
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// A deployment job of `agent_id` for `certificate_id`, written straight into the table.
pub(crate) async fn insert_deployment(
    app: &TestApp,
    job_id: &str,
    certificate_id: &str,
    agent_id: &str,
    running: bool,
) {
    let sql_text = if running {
        "INSERT INTO jobs (id, type, certificate_id, agent_id, status, attempts, started_at, lease_expires_at) \
         VALUES ($1, 'Deployment', $2, $3, 'Running', 1, now(), now() + interval '10 minutes')"
    } else {
        "INSERT INTO jobs (id, type, certificate_id, agent_id, status) VALUES ($1, 'Deployment', $2, $3, 'Pending')"
    };
    sql(app).await.execute(sql_text, &[&job_id, &certificate_id, &agent_id]).await.unwrap();
}
