//! The OpenAPI document: it describes exactly the routes the router serves (a route cannot be
//! added without its operation, nor an operation without its route), every error it documents is
//! a problem document, every operation under `/api/v1` but the public ones needs the key, the
//! server hands it and its HTML view out without a key (and `certctl-server openapi` prints the
//! same), and headless Chromium renders that view with an entry per operation.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::helpers::TestApp;

/// The document as the server builds it, as JSON.
fn document() -> Value {
    serde_json::to_value(certctl::http::openapi::openapi()).unwrap()
}

/// Every (method, path) the document describes.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut operations = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "put", "post", "delete", "patch", "head", "options"].contains(&method.as_str()) {
                operations.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    operations
}

#[test]
fn the_document_describes_exactly_the_routes_the_router_serves() {
    let served: BTreeSet<(String, String)> =
        certctl::http::route_table().into_iter().map(|r| (r.method.to_string(), r.path)).collect();
    let doc = document();
    let described = documented(&doc);
    let undocumented: Vec<_> = served.difference(&described).collect();
    let unserved: Vec<_> = described.difference(&served).collect();
    assert!(undocumented.is_empty(), "routes without an operation in the document: {undocumented:?}");
    assert!(unserved.is_empty(), "operations the router does not serve: {unserved:?}");
    assert!(served.len() > 60, "the route table looks truncated: {} routes", served.len());
}

#[test]
fn every_operation_has_an_id_a_tag_and_only_problem_documents_for_errors() {
    let doc = document();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{}", doc["openapi"]);
    let mut ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let id = operation["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            assert!(ids.insert(id.to_string()), "operationId {id} is used twice");
            assert!(operation["tags"].as_array().is_some_and(|t| !t.is_empty()), "{method} {path} has no tag");
            for (status, response) in operation["responses"].as_object().unwrap() {
                let response = resolve(&doc, response);
                if status.starts_with('4') || status.starts_with('5') {
                    let content = response["content"].as_object();
                    let types: Vec<&String> = content.map(|c| c.keys().collect()).unwrap_or_default();
                    assert_eq!(
                        types,
                        vec!["application/problem+json"],
                        "{method} {path} {status} is not documented as a problem document"
                    );
                }
            }
        }
    }
}

#[test]
fn every_route_but_the_public_ones_needs_the_key() {
    let doc = document();
    let public = [
        "/health",
        "/ready",
        "/metrics",
        "/api/v1/version",
        "/api/v1/auth/info",
        "/api/v1/openapi.json",
        "/api/v1/docs",
        "/api/v1/docs/",
        "/api/v1/docs/{file}",
    ];
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let secured = operation["security"].as_array().is_some_and(|s| !s.is_empty());
            let answers_401 = operation["responses"].get("401").is_some();
            if path.starts_with("/acme/") {
                // The ACME server's requests are signed instead; its 401 is a deactivated account's.
                assert!(!secured, "{method} {path} is ACME but documented as needing a key");
            } else if public.contains(&path.as_str()) {
                assert!(!secured && !answers_401, "{method} {path} is public but documented as needing a key");
            } else {
                assert!(secured && answers_401, "{method} {path} needs a key but is not documented so");
            }
        }
    }
}

/// A response object, through its `$ref` when it has one.
fn resolve<'a>(doc: &'a Value, response: &'a Value) -> &'a Value {
    match response["$ref"].as_str() {
        Some(reference) => {
            let name = reference.rsplit('/').next().unwrap();
            &doc["components"]["responses"][name]
        }
        None => response,
    }
}

#[actix_web::test]
async fn the_document_and_its_html_view_are_served_without_a_key() {
    let app = TestApp::spawn().await;
    let response = app.anonymous(reqwest::Method::GET, "/api/v1/openapi.json").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let served: Value = response.json().await.unwrap();
    assert_eq!(served, document());

    let redirect = app.anonymous(reqwest::Method::GET, "/api/v1/docs").send().await.unwrap();
    assert_eq!(redirect.status(), 200, "reqwest follows the 308 to the view");
    assert_eq!(redirect.url().path(), "/api/v1/docs/");
    assert!(redirect.text().await.unwrap().contains("swagger-ui"));

    let initializer = app.anonymous(reqwest::Method::GET, "/api/v1/docs/swagger-initializer.js").send().await.unwrap();
    assert_eq!(initializer.status(), 200);
    assert!(initializer.text().await.unwrap().contains("/api/v1/openapi.json"), "the view reads our document");

    let missing = app.anonymous(reqwest::Method::GET, "/api/v1/docs/nothing.js").send().await.unwrap();
    crate::helpers::assert_problem(missing, 404, "not-found").await;
    let head = app.anonymous(reqwest::Method::HEAD, "/api/v1/openapi.json").send().await.unwrap();
    assert_eq!(head.status(), 200);
}

#[test]
fn the_binary_prints_the_same_document_offline() {
    let output = crate::helpers::run_server(&["openapi"], &[]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed, document());
}

/// The HTML view, rendered by a real browser: headless Chromium loads `/api/v1/docs/`, whose
/// scripts fetch the document from the same server and draw an entry per operation.
#[actix_web::test]
async fn a_browser_renders_the_html_view_with_every_operation() {
    let app = TestApp::spawn().await;
    let profile = crate::helpers::scratch_dir("chromium");
    let url = app.url("/api/v1/docs/");
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("timeout")
            .args(["60", "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic"])
            .args(["--no-first-run", "--disable-background-networking", "--disable-component-update"])
            .args(["--disable-sync", "--ignore-certificate-errors", "--virtual-time-budget=10000"])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(["--dump-dom", &url])
            .output()
            .expect("running chromium (Debian's chromium package)")
    })
    .await
    .unwrap();
    assert!(output.status.success(), "chromium failed: {}", String::from_utf8_lossy(&output.stderr));
    let dom = String::from_utf8_lossy(&output.stdout);
    assert!(dom.contains("certctl API"), "the document's title is not on the page");
    let operations = dom.matches("class=\"opblock-summary-path\"").count();
    // Swagger UI lists an operation once under each of its tags.
    let doc = document();
    let expected: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .map(|operation| operation["tags"].as_array().map_or(1, Vec::len))
        .sum();
    assert_eq!(operations, expected, "one entry per operation and tag");
}
