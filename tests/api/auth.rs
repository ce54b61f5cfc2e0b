//! Authentication: missing (401 with `WWW-Authenticate`), wrong and malformed keys, the `Bearer`
//! scheme name in any case, non-admin keys (reads, but 403 on admin routes) and admin keys (the
//! masked config), `auth/check` naming the caller, and `CERTCTL_AUTH_TYPE=none`.

use reqwest::Method;
use serde_json::Value;

use crate::helpers::{assert_problem, TestApp};

#[actix_web::test]
async fn a_missing_key_is_a_401_problem_with_www_authenticate() {
    let app = TestApp::spawn().await;
    let response = app.anonymous(Method::GET, "/api/v1/certificates").send().await.unwrap();
    let challenge = response.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_string());
    assert_eq!(challenge.as_deref(), Some("Bearer realm=\"certctl\""));
    assert_problem(response, 401, "unauthorized").await;
}

#[actix_web::test]
async fn a_wrong_key_is_refused() {
    let app = TestApp::spawn().await;
    let response =
        app.client.get(app.url("/api/v1/certificates")).bearer_auth("not-the-right-key-at-all").send().await.unwrap();
    assert_problem(response, 401, "unauthorized").await;
}

#[actix_web::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let app = TestApp::spawn().await;
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let response = app
            .client
            .get(app.url("/api/v1/certificates"))
            .header("authorization", format!("{scheme} {}", crate::helpers::USER_KEY))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{scheme}");
    }
}

#[actix_web::test]
async fn a_malformed_authorization_header_is_refused() {
    let app = TestApp::spawn().await;
    let response =
        app.client.get(app.url("/api/v1/certificates")).header("authorization", "Basic abc").send().await.unwrap();
    assert_problem(response, 401, "unauthorized").await;
}

#[actix_web::test]
async fn a_non_admin_key_reads_but_gets_403_on_admin_routes() {
    let app = TestApp::spawn().await;
    let response = app.user(Method::GET, "/api/v1/certificates").send().await.unwrap();
    assert_eq!(response.status(), 200);
    let response = app.user(Method::GET, "/api/v1/admin/config").send().await.unwrap();
    assert_problem(response, 403, "forbidden").await;
}

#[actix_web::test]
async fn an_admin_key_sees_the_masked_config() {
    let app = TestApp::spawn().await;
    let response = app.admin(Method::GET, "/api/v1/admin/config").send().await.unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(text.contains("CERTCTL_DATABASE_MAX_CONNS"));
    assert!(!text.contains(crate::helpers::ADMIN_KEY), "keys must never be shown");
}

#[actix_web::test]
async fn auth_check_names_the_caller() {
    let app = TestApp::spawn().await;
    let body: Value = app.user(Method::GET, "/api/v1/auth/check").send().await.unwrap().json().await.unwrap();
    assert_eq!(body["user"], "reader");
    assert_eq!(body["admin"], false);
}

#[actix_web::test]
async fn auth_type_none_lets_anonymous_callers_in() {
    let app = TestApp::spawn_with(&["--auth-type", "none"]).await;
    let response = app.anonymous(Method::GET, "/api/v1/certificates").send().await.unwrap();
    assert_eq!(response.status(), 200);
    let info: Value = app.anonymous(Method::GET, "/api/v1/auth/info").send().await.unwrap().json().await.unwrap();
    assert_eq!(info["auth_type"], "none");
    assert_eq!(info["required"], false);
}
