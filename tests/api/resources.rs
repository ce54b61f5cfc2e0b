//! The reference resources (teams, owners, renewal policies, issuers, profiles, targets): CRUD with
//! an audit row per change, duplicate names and ids as 409s, missing references as 422s and
//! deleting what is still referenced as a 409, renewal policy defaults and ranges, filters and
//! keyset pages (owners and audit events paged exactly over 100,000 rows), bad bodies as problems,
//! issuer secrets kept out of answers and the audit trail, profile checks, and binding certificates
//! to targets (`target_ids`, `/deployments`).

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, certificate_body, TestApp};

async fn post(app: &TestApp, path: &str, body: Value) -> reqwest::Response {
    app.admin(Method::POST, path).json(&body).send().await.unwrap()
}

#[actix_web::test]
async fn a_team_goes_through_its_whole_life_with_an_audit_row_per_change() {
    let app = TestApp::spawn().await;
    let response = post(&app, "/api/v1/teams", json!({"name": "Identity", "description": "IAM"})).await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    let team: Value = response.json().await.unwrap();
    let id = team["id"].as_str().unwrap();
    assert!(id.starts_with("t-"));
    assert_eq!(location, format!("/api/v1/teams/{id}"));

    let fetched: Value = app.get(&location).await.json().await.unwrap();
    assert_eq!(fetched, team);
    let updated: Value = app
        .admin(Method::PUT, &location)
        .json(&json!({"description": "Identity and access"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(updated["description"], "Identity and access");
    assert_eq!(updated["name"], "Identity");
    assert_eq!(app.admin(Method::DELETE, &location).send().await.unwrap().status(), 204);
    assert_problem(app.get(&location).await, 404, "not-found").await;

    let audit: Value =
        app.get(&format!("/api/v1/audit?resource_type=team&resource_id={id}")).await.json().await.unwrap();
    let actions: Vec<&str> = audit["data"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["team.delete", "team.update", "team.create"]);
}

#[actix_web::test]
async fn duplicate_names_and_ids_are_conflicts() {
    let app = TestApp::spawn().await;
    let problem =
        assert_problem(post(&app, "/api/v1/teams", json!({"name": "Platform"})).await, 409, "already-exists").await;
    assert_eq!(problem["detail"], "a team with this name already exists");
    let problem = assert_problem(
        post(&app, "/api/v1/teams", json!({"id": "t-platform", "name": "Other"})).await,
        409,
        "already-exists",
    )
    .await;
    assert_eq!(problem["detail"], "a team with this id already exists");
}

#[actix_web::test]
async fn references_to_missing_resources_are_422_and_deleting_referenced_ones_409() {
    let app = TestApp::spawn().await;
    let problem = assert_problem(
        post(&app, "/api/v1/owners", json!({"name": "Zed", "team_id": "t-nowhere"})).await,
        422,
        "validation-failed",
    )
    .await;
    assert_eq!(problem["errors"][0]["field"], "team_id");

    // t-platform has owners (o-alice); o-alice owns a certificate.
    let problem = assert_problem(
        app.admin(Method::DELETE, "/api/v1/teams/t-security").send().await.unwrap(),
        409,
        "still-referenced",
    )
    .await;
    assert!(problem["detail"].as_str().unwrap().contains("owners"), "{problem}");
    app.create_certificate("owned").await;
    let problem = assert_problem(
        app.admin(Method::DELETE, "/api/v1/owners/o-alice").send().await.unwrap(),
        409,
        "still-referenced",
    )
    .await;
    assert!(problem["detail"].as_str().unwrap().contains("certificates"), "{problem}");
    let problem = assert_problem(
        app.admin(Method::DELETE, "/api/v1/renewal-policies/rp-standard").send().await.unwrap(),
        409,
        "still-referenced",
    )
    .await;
    assert!(problem["detail"].as_str().unwrap().contains("certificates"));

    // An owner nobody references can go.
    let created: Value =
        post(&app, "/api/v1/owners", json!({"name": "Temp", "email": "temp@example.com", "team_id": "t-data"}))
            .await
            .json()
            .await
            .unwrap();
    let path = format!("/api/v1/owners/{}", created["id"].as_str().unwrap());
    assert_eq!(app.admin(Method::DELETE, &path).send().await.unwrap().status(), 204);
}

#[actix_web::test]
async fn renewal_policies_take_certctl_defaults_and_validate_their_numbers() {
    let app = TestApp::spawn().await;
    let created: Value = post(&app, "/api/v1/renewal-policies", json!({"name": "Weekly"})).await.json().await.unwrap();
    assert_eq!(created["renewal_window_days"], 30);
    assert_eq!(created["auto_renew"], true);
    assert_eq!(created["alert_thresholds_days"], json!([30, 14, 7, 0]));
    let problem = assert_problem(
        post(&app, "/api/v1/renewal-policies", json!({"name": "Bad", "renewal_window_days": 0, "max_retries": -1}))
            .await,
        422,
        "validation-failed",
    )
    .await;
    let fields: Vec<&str> =
        problem["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["renewal_window_days", "max_retries"]);
    let patched: Value = app
        .admin(Method::PUT, &format!("/api/v1/renewal-policies/{}", created["id"].as_str().unwrap()))
        .json(&json!({"auto_renew": false, "alert_thresholds_days": [7, 1]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(patched["auto_renew"], false);
    assert_eq!(patched["alert_thresholds_days"], json!([7, 1]));
}

#[actix_web::test]
async fn lists_filter_and_page() {
    let app = TestApp::spawn().await;
    let owners: Value = app.get("/api/v1/owners?team_id=t-platform").await.json().await.unwrap();
    let ids: Vec<&str> = owners["data"].as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["o-alice"]);
    let teams: Value = app.get("/api/v1/teams?q=Pla").await.json().await.unwrap();
    assert_eq!(teams["data"][0]["id"], "t-platform");

    let mut seen = Vec::new();
    let mut path = "/api/v1/teams?limit=4".to_string();
    loop {
        let page: Value = app.get(&path).await.json().await.unwrap();
        seen.extend(page["data"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap().to_string()));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/teams?limit=4&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 6, "the six demo teams, once each: {seen:?}");
    let page: Value = app.get("/api/v1/teams?page=2&per_page=4").await.json().await.unwrap();
    assert_eq!(page["total"], 6);
    assert_eq!(page["page"], 2);
    assert_eq!(page["data"].as_array().unwrap().len(), 2);
    let counted: Value = app.get("/api/v1/teams?limit=1&include_total=true").await.json().await.unwrap();
    assert_eq!(counted["total"], 6);
    assert_problem(app.get("/api/v1/teams?page=1&cursor=x").await, 400, "invalid-query").await;
    assert_problem(app.get("/api/v1/teams?per_page=5000").await, 400, "invalid-query").await;
    assert_problem(app.get("/api/v1/teams?colour=blue").await, 400, "invalid-query").await;
    assert_problem(app.get("/api/v1/teams?limit=0").await, 400, "invalid-query").await;
}

#[actix_web::test]
async fn bad_bodies_are_problems_too() {
    let app = TestApp::spawn().await;
    assert_problem(post(&app, "/api/v1/teams", json!({"name": "X", "colour": "blue"})).await, 400, "invalid-body")
        .await;
    assert_problem(
        post(&app, "/api/v1/owners", json!({"name": "X", "email": "not-an-email"})).await,
        422,
        "validation-failed",
    )
    .await;
    let response = app.admin(Method::PUT, "/api/v1/teams/t-platform").json(&json!({})).send().await.unwrap();
    assert_problem(response, 400, "invalid-body").await;
    let _ = certificate_body("unused");
}

#[actix_web::test]
async fn issuer_secrets_are_write_only_and_types_are_checked() {
    let app = TestApp::spawn().await;
    let body = json!({"name": "DigiCert", "type": "digicert", "config": {"api_key": "s3cret-value", "org_id": "42"}});
    let response = post(&app, "/api/v1/issuers", body).await;
    assert_eq!(response.status(), 201);
    let text = response.text().await.unwrap();
    assert!(!text.contains("s3cret-value"), "{text}");
    let issuer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(issuer["config"], json!({"api_key": "***", "org_id": "42"}));
    assert!(issuer["id"].as_str().unwrap().starts_with("iss-"));
    let audit: Value = app.get("/api/v1/audit?action=issuer.create").await.json().await.unwrap();
    assert!(!audit.to_string().contains("s3cret-value"), "secrets never reach the audit trail");

    let local: Value =
        post(&app, "/api/v1/issuers", json!({"name": "Generic", "type": "GenericCA"})).await.json().await.unwrap();
    assert_eq!(local["type"], "local", "certctl's GenericCA is the local CA");
    let vault: Value =
        post(&app, "/api/v1/issuers", json!({"name": "Vault", "type": "VaultPKI"})).await.json().await.unwrap();
    assert_eq!(vault["type"], "vault");
    let listed: Value = app.get("/api/v1/issuers?type=DigiCert").await.json().await.unwrap();
    assert_eq!(listed["data"].as_array().unwrap().len(), 1, "type filters accept certctl's names");
    let vaults: Value = app.get("/api/v1/issuers?type=VaultPKI").await.json().await.unwrap();
    assert_eq!(vaults["data"][0]["name"], "Vault");
    let problem = assert_problem(
        post(&app, "/api/v1/issuers", json!({"name": "X", "type": "mystery"})).await,
        422,
        "validation-failed",
    )
    .await;
    assert_eq!(problem["errors"][0]["field"], "type");
    let listed: Value = app.get("/api/v1/issuers?type=digicert").await.json().await.unwrap();
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
}

#[actix_web::test]
async fn profiles_check_algorithms_lifetimes_and_usages_and_refuse_deletion_in_use() {
    let app = TestApp::spawn().await;
    let created: Value = post(
        &app,
        "/api/v1/profiles",
        json!({"name": "Short", "max_ttl_seconds": 86400, "allowed_ekus": ["serverAuth", "clientAuth"]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(created["allowed_key_algorithms"][0]["algorithm"], "ECDSA");
    let bad = json!({"name": "Bad", "max_ttl_seconds": 10, "allowed_ekus": ["anything"],
                     "allowed_key_algorithms": [{"algorithm": "DSA", "min_size": 1024}]});
    let problem = assert_problem(post(&app, "/api/v1/profiles", bad).await, 422, "validation-failed").await;
    let fields: Vec<&str> =
        problem["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["allowed_key_algorithms[0]", "max_ttl_seconds", "allowed_ekus[0]"]);

    let mut body = certificate_body("profiled");
    body["certificate_profile_id"] = created["id"].clone();
    assert_eq!(app.post_certificate(&body).await.status(), 201);
    let path = format!("/api/v1/profiles/{}", created["id"].as_str().unwrap());
    assert_problem(app.admin(Method::DELETE, &path).send().await.unwrap(), 409, "still-referenced").await;
}

#[actix_web::test]
async fn certificates_bind_to_targets_through_target_ids() {
    let app = TestApp::spawn().await;
    let target: Value = post(
        &app,
        "/api/v1/targets",
        json!({"name": "edge files", "type": "File", "config": {"directory": "/srv/certs"}}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(target["type"], "file");
    let target_id = target["id"].as_str().unwrap().to_string();

    let mut body = certificate_body("bound");
    body["target_ids"] = json!(["tgt-nginx-prod", target_id, "tgt-nginx-prod"]);
    let created: Value = app.post_certificate(&body).await.json().await.unwrap();
    let mut expected = vec!["tgt-nginx-prod".to_string(), target_id.clone()];
    expected.sort();
    assert_eq!(created["target_ids"], json!(expected), "a sorted set");
    let path = format!("/api/v1/certificates/{}", created["id"].as_str().unwrap());
    let fetched: Value = app.get(&path).await.json().await.unwrap();
    assert_eq!(fetched["target_ids"], created["target_ids"]);
    let deployments: Value = app.get(&format!("{path}/deployments")).await.json().await.unwrap();
    let names: Vec<&str> =
        deployments["data"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 2);

    // A bound target cannot be deleted; replacing the set unbinds it.
    let target_path = format!("/api/v1/targets/{target_id}");
    let problem =
        assert_problem(app.admin(Method::DELETE, &target_path).send().await.unwrap(), 409, "still-referenced").await;
    assert!(problem["detail"].as_str().unwrap().contains("certificates"));
    let updated: Value = app
        .admin(Method::PUT, &path)
        .json(&json!({"target_ids": ["tgt-haproxy-prod"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(updated["target_ids"], json!(["tgt-haproxy-prod"]));
    let untouched: Value = app
        .admin(Method::PUT, &path)
        .json(&json!({"environment": "staging"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(untouched["target_ids"], json!(["tgt-haproxy-prod"]), "absent target_ids keep the binding");
    assert_eq!(app.admin(Method::DELETE, &target_path).send().await.unwrap().status(), 204);

    let mut missing = certificate_body("dangling");
    missing["target_ids"] = json!(["tgt-nowhere"]);
    let problem = assert_problem(app.post_certificate(&missing).await, 422, "validation-failed").await;
    assert_eq!(problem["errors"][0]["field"], "target_ids");
    assert_problem(app.get("/api/v1/certificates/mc-none/deployments").await, 404, "not-found").await;
}

#[actix_web::test]
async fn owners_and_audit_events_page_exactly_over_a_hundred_thousand_rows() {
    let app = TestApp::spawn().await;
    let client = crate::helpers::cluster().admin_client_for(&app.db_name).await;
    client
        .batch_execute(
            "INSERT INTO owners (id, name, email, team_id, created_at)
             SELECT 'o-many-' || g, 'Owner ' || g, '', 't-data', '2026-01-01'::timestamptz + (g / 5) * interval '1 second'
             FROM generate_series(1, 100000) g;
             INSERT INTO audit_events (actor, actor_type, action, resource_type, resource_id)
             SELECT 'seed', 'system', 'test.seed', 'test', g::text FROM generate_series(1, 100000) g;
             ANALYZE owners; ANALYZE audit_events;",
        )
        .await
        .unwrap();

    // t-data also has the demo owner o-eve.
    for (list, key, filter, expected) in
        [("/api/v1/owners", "id", "team_id=t-data", 100_001), ("/api/v1/audit", "id", "action=test.seed", 100_000)]
    {
        let mut seen = std::collections::HashSet::new();
        let mut path = format!("{list}?{filter}&limit=1000");
        loop {
            let page: Value = app.get(&path).await.json().await.unwrap();
            for item in page["data"].as_array().unwrap_or_else(|| panic!("{page}")) {
                assert!(seen.insert(item[key].to_string()), "{list}: a row came twice");
            }
            match page["next_cursor"].as_str() {
                Some(cursor) => path = format!("{list}?{filter}&limit=1000&cursor={cursor}"),
                None => break,
            }
        }
        assert_eq!(seen.len(), expected, "{list}: every row once");
        let last: Value = app.get(&format!("{list}?{filter}&page=100&per_page=1000")).await.json().await.unwrap();
        assert_eq!(last["total"], expected, "{list}");
        assert_eq!(last["data"].as_array().unwrap().len(), 1000, "{list}");
    }
}
