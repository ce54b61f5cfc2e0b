//! Agents over HTTP, without an agent binary: discovery reports with their triage (dismiss, claim).

use reqwest::Method;
use serde_json::{json, Value};

use crate::agent_support::{as_agent, register_agent};
use crate::helpers::{assert_problem, TestApp};

fn rfc3339(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

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
