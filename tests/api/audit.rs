//! The audit trail: one row for every mutation, written in the same statement as the change, with
//! its actor and request id, and none for a refused mutation; append-only (rows cannot be changed or
//! deleted); readable through the API newest first with filters and keyset pages, and by its own id;
//! reads audited only when asked (`CERTCTL_AUDIT_READS`); retention deleting only expired events, in
//! batches.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, certificate_body, cluster, TestApp};

async fn audit(app: &TestApp, query: &str) -> Value {
    let response = app.get(&format!("/api/v1/audit{query}")).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[actix_web::test]
async fn every_certificate_mutation_writes_one_audit_row_with_actor_and_request_id() {
    let app = TestApp::spawn().await;
    let response = app
        .admin(Method::POST, "/api/v1/certificates")
        .header("x-request-id", "req-create-1")
        .json(&certificate_body("audited"))
        .send()
        .await
        .unwrap();
    let created: Value = response.json().await.unwrap();
    let id = created["id"].as_str().unwrap();
    let path = format!("/api/v1/certificates/{id}");
    app.user(Method::PUT, &path).json(&json!({"environment": "staging"})).send().await.unwrap();
    app.admin(Method::DELETE, &path).send().await.unwrap();
    app.admin(Method::DELETE, &path).send().await.unwrap(); // already archived: nothing to record

    let page = audit(&app, &format!("?resource_type=certificate&resource_id={id}")).await;
    let events = page["data"].as_array().unwrap();
    let actions: Vec<&str> = events.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["certificate.archive", "certificate.update", "certificate.create"], "newest first");
    let create = &events[2];
    assert_eq!(create["actor"], "ops");
    assert_eq!(create["actor_type"], "api_key");
    assert_eq!(create["request_id"], "req-create-1");
    assert_eq!(create["details"]["common_name"], "audited.example.com");
    assert_eq!(events[1]["actor"], "reader");
    assert_eq!(events[1]["details"], json!({"environment": "staging"}), "the fields sent, nothing else");
}

#[actix_web::test]
async fn refused_mutations_leave_no_audit_row() {
    let app = TestApp::spawn().await;
    let mut bad = certificate_body("refused");
    bad["owner_id"] = json!("o-nobody");
    assert_eq!(app.post_certificate(&bad).await.status(), 422);
    let page = audit(&app, "").await;
    assert_eq!(page["data"], json!([]));
}

#[actix_web::test]
async fn audit_rows_cannot_be_changed_or_deleted() {
    let app = TestApp::spawn().await;
    app.create_certificate("immutable").await;
    let client = cluster().admin_client_for(&app.db_name).await;
    for statement in
        ["UPDATE audit_events SET actor = 'someone-else'", "DELETE FROM audit_events", "TRUNCATE audit_events"]
    {
        let error = client.batch_execute(statement).await.expect_err(statement);
        assert!(error.as_db_error().unwrap().message().contains("append-only"), "{statement}: {error}");
    }
    let count: i64 = client.query_one("SELECT count(*) FROM audit_events", &[]).await.unwrap().get(0);
    assert_eq!(count, 1);
}

#[actix_web::test]
async fn the_audit_list_filters_and_pages_newest_first() {
    let app = TestApp::spawn().await;
    for i in 0..5 {
        app.create_certificate(&format!("paged-{i}")).await;
    }
    let mut seen = Vec::new();
    let mut query = "?limit=2&action=certificate.create".to_string();
    loop {
        let page = audit(&app, &query).await;
        for event in page["data"].as_array().unwrap() {
            seen.push(event["details"]["name"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => query = format!("?limit=2&action=certificate.create&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, ["paged-4", "paged-3", "paged-2", "paged-1", "paged-0"]);
    let offset = audit(&app, "?page=2&per_page=2&action=certificate.create").await;
    assert_eq!(offset["total"], 5);
    assert_eq!(offset["data"][0]["details"]["name"], "paged-2");

    let none = audit(&app, "?actor=reader").await;
    assert_eq!(none["data"], json!([]));
    let future = audit(&app, "?since=2999-01-01T00:00:00Z").await;
    assert_eq!(future["data"], json!([]));
    let past = audit(&app, "?until=2000-01-01T00:00:00Z").await;
    assert_eq!(past["data"], json!([]));
    assert_problem(app.get("/api/v1/audit?since=yesterday").await, 400, "invalid-query").await;
    assert_problem(app.get("/api/v1/audit?cursor=bogus").await, 400, "invalid-query").await;
}

#[actix_web::test]
async fn an_audit_event_is_found_by_its_own_id() {
    let app = TestApp::spawn().await;
    app.create_certificate("by-id").await;
    let page = audit(&app, "").await;
    let id = page["data"][0]["id"].as_i64().unwrap();
    let event: Value = app.get(&format!("/api/v1/audit/{id}")).await.json().await.unwrap();
    assert_eq!(event["action"], "certificate.create");
    assert_problem(app.get("/api/v1/audit/999999").await, 404, "not-found").await;
    assert_problem(app.get("/api/v1/audit/not-a-number").await, 400, "invalid-path").await;
}

#[actix_web::test]
async fn reads_are_audited_only_when_asked() {
    let quiet = TestApp::spawn().await;
    let created = quiet.create_certificate("quiet").await;
    quiet.get(&format!("/api/v1/certificates/{}", created["id"].as_str().unwrap())).await;
    quiet.get("/api/v1/certificates").await;
    assert_eq!(audit(&quiet, "").await["data"].as_array().unwrap().len(), 1, "only the create");

    let loud = TestApp::spawn_with(&["--audit-reads", "true"]).await;
    let created = loud.create_certificate("loud").await;
    let id = created["id"].as_str().unwrap();
    loud.get(&format!("/api/v1/certificates/{id}")).await;
    loud.get("/api/v1/certificates?limit=5").await;
    let page = audit(&loud, "").await;
    let actions: Vec<&str> = page["data"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["certificate.list", "certificate.read", "certificate.create"]);
    // The audit read just made is itself recorded, as are reads of the reference resources.
    loud.get("/api/v1/teams/t-platform").await;
    let page = audit(&loud, "?limit=3").await;
    let actions: Vec<&str> = page["data"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["team.read", "audit.list", "certificate.list"]);
}

#[actix_web::test]
async fn retention_deletes_only_expired_events_in_batches() {
    let app = TestApp::spawn_with(&["--audit-retention-days", "30"]).await;
    app.create_certificate("recent").await;
    let client = cluster().admin_client_for(&app.db_name).await;
    client
        .execute(
            "INSERT INTO audit_events (occurred_at, actor, actor_type, action, resource_type, resource_id)
             SELECT now() - interval '40 days', 'old', 'system', 'test.old', 'test', g::text
             FROM generate_series(1, 12000) g",
            &[],
        )
        .await
        .unwrap();

    let deleted = app.retention.send(certctl_actors::audit_retention::PurgeNow).await.unwrap().unwrap();
    assert_eq!(deleted, 12_000, "several batches in one pass");
    let remaining: Vec<String> =
        client.query("SELECT action FROM audit_events", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(remaining, ["certificate.create"]);
}
