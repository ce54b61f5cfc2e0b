//! Agents over HTTP, without an agent binary: registration (the key shown once, only its hash
//! stored, the bootstrap token), what an agent key may reach, the agent list and retirement.

use reqwest::Method;
use serde_json::{json, Value};

use crate::agent_support::{
    agent, as_agent, heartbeat, insert_deployment, job, register, register_agent, sha256_hex, sql,
};
use crate::helpers::{assert_problem, TestApp};

const BOOTSTRAP_TOKEN: &str = "agent-bootstrap-token-0123456789";

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

// ---------------------------------------------------------------------------------------------
// The agent list
// ---------------------------------------------------------------------------------------------

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
// Retirement
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
