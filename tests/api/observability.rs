//! Metrics: pool, HTTP and DB-query series are exposed; CERTCTL_METRICS_ADDR moves /metrics to a
//! listener of its own, off the API port.

use reqwest::Method;

use crate::helpers::{assert_problem, TestApp};

#[actix_web::test]
async fn metrics_show_pool_http_and_query_series() {
    let app = TestApp::spawn().await;
    app.create_certificate("metered").await;
    assert_eq!(app.get("/api/v1/certificates").await.status(), 200);
    let text = app.metrics_text().await;
    for series in [
        "certctl_db_pool_size",
        "certctl_db_pool_available",
        "certctl_db_pool_waiting",
        "certctl_db_pool_max",
        "certctl_actor_backlog{actor=\"db\"}",
        "certctl_actor_inflight{actor=\"db\"}",
        "certctl_http_requests_total{route=\"/api/v1/certificates\",method=\"POST\",status_class=\"2xx\"}",
        "certctl_http_request_duration_seconds_bucket{route=\"/api/v1/certificates\",method=\"GET\",status_class=\"2xx\"",
        "certctl_db_query_duration_seconds_bucket{statement=\"create_certificate\",outcome=\"ok\"",
        "certctl_db_query_duration_seconds_count{statement=\"list_certificates\",outcome=\"ok\"}",
    ] {
        assert!(text.contains(series), "{series} missing from /metrics");
    }
    assert!(text.contains("# HELP certctl_db_pool_size"), "help texts are registered");
}

#[actix_web::test]
async fn a_separate_metrics_listener_takes_metrics_off_the_api_port() {
    let app = TestApp::spawn_with(&["--metrics-addr", "127.0.0.1:0"]).await;
    assert!(app.metrics_port.is_some());
    let text = app.metrics_text().await;
    assert!(text.contains("certctl_db_pool_max"));
    let response = app.anonymous(Method::GET, "/metrics").send().await.unwrap();
    assert_problem(response, 404, "route-not-found").await;
}
