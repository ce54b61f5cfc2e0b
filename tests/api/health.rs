//! Liveness, readiness and version: `/health` without a key, `/ready` with the schema version and
//! a 503 problem while the database is down, and the public version endpoint.

use crate::helpers::{assert_problem, TestApp};
use serde_json::Value;

#[actix_web::test]
async fn health_answers_without_a_key() {
    let app = TestApp::spawn().await;
    let response = app.anonymous(reqwest::Method::GET, "/health").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap()["status"], "healthy");
}

#[actix_web::test]
async fn ready_reports_the_schema_version() {
    let app = TestApp::spawn().await;
    let response = app.anonymous(reqwest::Method::GET, "/ready").send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["schema_version"], certctl_actors::db::bootstrap::expected_schema_version());
}

#[actix_web::test]
async fn ready_is_a_503_problem_when_the_database_is_down() {
    let app = TestApp::spawn().await;
    app.break_database().await;
    let response = app.anonymous(reqwest::Method::GET, "/ready").send().await.unwrap();
    assert!(response.headers().contains_key("retry-after"));
    assert_problem(response, 503, "service-unavailable").await;
    app.repair_database().await;
}

#[actix_web::test]
async fn version_is_public() {
    let app = TestApp::spawn().await;
    let response = app.anonymous(reqwest::Method::GET, "/api/v1/version").send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
}
