//! The Entrust CA Gateway connector against the fake gateway (`fake_ca::entrust`, mutual TLS):
//! an enrollment the profile issues at once; one that waits for approval, found among the CA's
//! certificate events and read back by serial; an enrollment placed before a crash found again by
//! the CSR's key; a refused enrollment failing with the gateway's words; the
//! `CERTCTL_ENTRUST_POLL_MAX_WAIT_SECONDS` budget; and the issuer seeded from certctl's variables.
//! (Issuance after approval polls and revocation with the reason are in `remote_issuers`.)

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::fake_ca::{Behaviour, FakeCa, Vendor};
use crate::helpers::cluster;
use crate::remote_issuers::{chain_of, create_issuer, job_reaches, order, server, verifies};

#[actix_web::test]
async fn an_enrollment_the_profile_issues_at_once_completes_without_polls() {
    let fake = FakeCa::start(Vendor::Entrust, Behaviour::default()).await;
    let app = server(&[]).await;
    create_issuer(&app, "iss-ent", "entrust", fake.issuer_config()).await;
    let id = order(&app, "iss-ent", "at-once").await;
    job_reaches(&app, &id, "Completed", Duration::from_secs(20)).await;
    assert!(verifies(&fake.root_pem(), &chain_of(&app, &id).await), "the chain verifies against the CA");
    assert_eq!((fake.submissions(), fake.status_polls()), (1, 0), "placed once, never polled");
    let enrollment = fake
        .requests()
        .into_iter()
        .find(|(method, path, _)| method == "POST" && path.ends_with("/enrollments"))
        .expect("an enrollment");
    assert!(enrollment.1.contains("/cagw/v1/certificate-authorities/"), "{enrollment:?}");
}

#[actix_web::test]
async fn an_enrollment_placed_before_a_crash_is_found_by_its_key() {
    // One "not yet" answer: the first events poll sees nothing, the recovery's finds it.
    let fake = FakeCa::start(Vendor::Entrust, Behaviour { pending_polls: 1, ..Default::default() }).await;
    let app = server(&[]).await;
    create_issuer(&app, "iss-ent", "entrust", fake.issuer_config()).await;
    let id = order(&app, "iss-ent", "crashed").await;
    let started = Instant::now();
    while fake.status_polls() == 0 {
        assert!(started.elapsed() < Duration::from_secs(10), "never polled");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // As if the process died after the gateway took the enrollment and before its id was written.
    let db = cluster().admin_client_for(&app.db_name).await;
    let changed = db
        .execute(
            "UPDATE ca_orders SET state = 'submitting', external_id = NULL, external_state = '{}', next_poll_at = now()
             WHERE state = 'pending'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(changed, 1, "the order was still pending when the test marked it");
    job_reaches(&app, &id, "Completed", Duration::from_secs(20)).await;
    assert_eq!(fake.submissions(), 1, "found among the certificate events, not placed again");
}

#[actix_web::test]
async fn a_refused_enrollment_fails_with_the_gateways_words() {
    let fake = FakeCa::start(Vendor::Entrust, Behaviour { reject: true, ..Default::default() }).await;
    let app = server(&[]).await;
    create_issuer(&app, "iss-ent", "entrust", fake.issuer_config()).await;
    let id = order(&app, "iss-ent", "refused").await;
    let job = job_reaches(&app, &id, "Failed", Duration::from_secs(20)).await;
    let error = job["last_error"].as_str().unwrap();
    assert!(error.contains("cagw-4000") && error.contains("HTTP 400"), "{error}");
    assert!(job["retry_at"].is_null(), "a refusal is final: {job}");

    fake.set_behaviour(Behaviour { refuse_credentials: true, ..Default::default() });
    let test: Value =
        app.admin(Method::POST, "/api/v1/issuers/iss-ent/test").send().await.unwrap().json().await.unwrap();
    assert_eq!(test["ok"], false, "{test}");
}

#[actix_web::test]
async fn the_entrust_budget_variable_applies_to_entrust_issuers() {
    let fake = FakeCa::start(Vendor::Entrust, Behaviour { pending_polls: 1_000_000, ..Default::default() }).await;
    let app = server(&["--async-poll-max-wait-seconds", "600", "--entrust-poll-max-wait-seconds", "1"]).await;
    create_issuer(&app, "iss-ent", "entrust", fake.issuer_config()).await;
    let id = order(&app, "iss-ent", "awaiting-approval").await;
    let job = job_reaches(&app, &id, "Pending", Duration::from_secs(15)).await;
    assert!(job["last_error"].as_str().unwrap().contains("poll budget of 1s"), "{job}");
    assert!(app.metrics_text().await.contains("certctl_ca_poll_budget_expiries_total{issuer_type=\"entrust\"} 1"));
}

#[actix_web::test]
async fn certctls_entrust_variables_seed_an_issuer() {
    let fake = FakeCa::start(Vendor::Entrust, Behaviour::default()).await;
    let config = fake.issuer_config();
    let text = |field: &str| config[field].as_str().map(str::to_owned).unwrap_or_else(|| config[field].to_string());
    let (url, ca, profile) = (text("api_url"), text("ca_id"), text("profile_id"));
    let (cert, key) = (text("client_cert_path"), text("client_key_path"));
    let app = server(&[
        "--entrust-api-url",
        &url,
        "--entrust-ca-id",
        &ca,
        "--entrust-profile-id",
        &profile,
        "--entrust-client-cert-path",
        &cert,
        "--entrust-client-key-path",
        &key,
    ])
    .await;
    let seeded: Value = app.get("/api/v1/issuers/iss-entrust").await.json().await.unwrap();
    assert_eq!(seeded["type"], "entrust");
    assert_eq!(seeded["config"]["ca_id"], json!(ca));
    // The gateway's TLS CA is not one of certctl's variables: added through the API.
    let mut edited = seeded["config"].clone();
    edited["tls_ca_file"] = config["tls_ca_file"].clone();
    let updated =
        app.admin(Method::PUT, "/api/v1/issuers/iss-entrust").json(&json!({"config": edited})).send().await.unwrap();
    assert_eq!(updated.status(), 200);
    let id = order(&app, "iss-entrust", "seeded").await;
    job_reaches(&app, &id, "Completed", Duration::from_secs(20)).await;
}
