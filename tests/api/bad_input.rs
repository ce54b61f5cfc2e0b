//! Every kind of bad input answers a 4xx problem document carrying the request id: malformed JSON,
//! unknown and missing fields, wrong types (naming the field), control characters in tags (a 422, not
//! a 500), bodies that are not JSON (415) or too large (413), bad path ids and query parameters
//! (out-of-range limits and cursors, unknown parameters), wrong methods (405) and unknown routes
//! (404). A sane `X-Request-ID` is honoured and echoed, an insane one replaced.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{assert_problem, certificate_body, TestApp};

async fn post_raw(app: &TestApp, content_type: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
    app.admin(Method::POST, "/api/v1/certificates")
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

#[actix_web::test]
async fn malformed_json_is_a_400() {
    let app = TestApp::spawn().await;
    assert_problem(post_raw(&app, "application/json", "{\"name\": ").await, 400, "malformed-json").await;
    assert_problem(post_raw(&app, "application/json", "").await, 400, "malformed-json").await;
    let trailing = format!("{} trailing", certificate_body("x"));
    assert_problem(post_raw(&app, "application/json", trailing).await, 400, "malformed-json").await;
}

#[actix_web::test]
async fn unknown_fields_are_refused() {
    let app = TestApp::spawn().await;
    let mut body = certificate_body("x");
    body["colour"] = json!("blue");
    let problem = assert_problem(app.post_certificate(&body).await, 400, "invalid-body").await;
    assert!(problem["detail"].as_str().unwrap().contains("colour"));
}

#[actix_web::test]
async fn missing_fields_are_refused() {
    let app = TestApp::spawn().await;
    let mut body = certificate_body("x");
    body.as_object_mut().unwrap().remove("owner_id");
    let problem = assert_problem(app.post_certificate(&body).await, 400, "invalid-body").await;
    assert!(problem["detail"].as_str().unwrap().contains("owner_id"));
}

#[actix_web::test]
async fn wrong_types_name_the_field() {
    let app = TestApp::spawn().await;
    let mut body = certificate_body("x");
    body["sans"] = json!(["ok.example.com", 42]);
    let problem = assert_problem(app.post_certificate(&body).await, 400, "invalid-body").await;
    assert_eq!(problem["errors"][0]["field"], "sans[1]");
}

#[actix_web::test]
async fn control_characters_in_tags_are_refused_not_a_500() {
    let app = TestApp::spawn().await;
    let mut body = certificate_body("nul");
    body["tags"] = json!({"a": "bad\u{0}value"});
    let problem = assert_problem(app.post_certificate(&body).await, 422, "validation-failed").await;
    assert_eq!(problem["errors"][0]["field"], "tags.a");
}

#[actix_web::test]
async fn bodies_that_are_not_json_are_a_415() {
    let app = TestApp::spawn().await;
    assert_problem(post_raw(&app, "text/plain", "name=x").await, 415, "unsupported-media-type").await;
}

#[actix_web::test]
async fn oversize_bodies_are_a_413() {
    let app = TestApp::spawn_with(&["--max-body-size", "1024"]).await;
    let mut body = certificate_body("big");
    body["tags"] = json!({"padding": "x".repeat(2000)});
    let problem = assert_problem(app.post_certificate(&body).await, 413, "payload-too-large").await;
    assert!(problem["detail"].as_str().unwrap().contains("1024"));
}

#[actix_web::test]
async fn bad_path_ids_are_a_400() {
    let app = TestApp::spawn().await;
    assert_problem(app.get("/api/v1/certificates/bad%20id").await, 400, "invalid-path").await;
    assert_problem(app.get(&format!("/api/v1/certificates/{}", "a".repeat(200))).await, 400, "invalid-path").await;
}

#[actix_web::test]
async fn bad_query_parameters_are_a_400() {
    let app = TestApp::spawn().await;
    // base64url of "-8000000000000000000:mc-x": a timestamp PostgreSQL cannot compare.
    let far_past = "LTgwMDAwMDAwMDAwMDAwMDAwMDA6bWMteA";
    for query in ["limit=0", "limit=1001", "limit=ten", "cursor=garbage!", "status=Sleeping", "colour=blue"]
        .into_iter()
        .map(str::to_string)
        .chain([format!("cursor={far_past}")])
    {
        let response = app.get(&format!("/api/v1/certificates?{query}")).await;
        assert_problem(response, 400, "invalid-query").await;
    }
}

#[actix_web::test]
async fn wrong_methods_are_a_405() {
    let app = TestApp::spawn().await;
    let response = app.admin(Method::PATCH, "/api/v1/certificates").send().await.unwrap();
    assert_problem(response, 405, "method-not-allowed").await;
    let response = app.admin(Method::POST, "/api/v1/certificates/mc-x").send().await.unwrap();
    assert_problem(response, 405, "method-not-allowed").await;
}

#[actix_web::test]
async fn unknown_routes_are_a_404() {
    let app = TestApp::spawn().await;
    assert_problem(app.get("/api/v1/nothing-here").await, 404, "route-not-found").await;
    let response = app.anonymous(Method::GET, "/nothing").send().await.unwrap();
    let problem = assert_problem(response, 404, "route-not-found").await;
    assert_eq!(problem["instance"], "/nothing");
}

#[actix_web::test]
async fn a_sane_request_id_is_honoured_and_echoed() {
    let app = TestApp::spawn().await;
    let response = app.anonymous(Method::GET, "/nothing").header("x-request-id", "trace-abc.123").send().await.unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-abc.123");
    let problem = assert_problem(response, 404, "route-not-found").await;
    assert_eq!(problem["request_id"], "trace-abc.123");
}

#[actix_web::test]
async fn an_insane_request_id_is_replaced() {
    let app = TestApp::spawn().await;
    let long = "x".repeat(300);
    let response = app.anonymous(Method::GET, "/health").header("x-request-id", long.as_str()).send().await.unwrap();
    let echoed = response.headers()["x-request-id"].to_str().unwrap();
    assert_ne!(echoed, long);
    assert!(uuid::Uuid::parse_str(echoed).is_ok());
}
