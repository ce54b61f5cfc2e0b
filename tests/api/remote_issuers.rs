//! DigiCert, Sectigo, GlobalSign Atlas, Vault, Entrust and step-ca connectors through the real
//! dispatcher and CA poller, against fakes speaking each vendor's wire format over HTTPS
//! (`tests/api/fake_ca/`). Covered, for every vendor: issuance (after several polls for the
//! asynchronous ones) and revocation reaching the CA with its reason; rejection and refused
//! credentials failing the job with the CA's words. For each asynchronous vendor: a Retry-After
//! honoured, 5xx answers and dropped connections polled through, a server restart mid-order
//! resumed from the database. Also: the poll budget running out (job back to the scheduler, order
//! parked) then the same order issued on a later claim, never placed twice; the issuer's own
//! budget winning over the environment's; an order placed but not recorded before a crash found
//! again by the CA's lookup (DigiCert, Sectigo) or failing clearly where the CA has none (Vault);
//! mutual TLS; Vault's token renewed at half life; connection tests. What only Entrust or step-ca
//! does (approval pending, one-time tokens) is in `entrust_issuer` and `stepca_issuer`.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::fake_ca::{Behaviour, FakeCa, Vendor};
use crate::helpers::{cluster, settings_from, TestApp};
use crate::renewal::run_loop;

/// Server flags: polls every 100 ms at first, 500 ms at most, a short CA timeout (so a claim
/// held by a stopped server runs out in 4 s).
pub(crate) const FAST_POLLS: [&str; 8] = [
    "--async-poll-initial-interval",
    "100ms",
    "--async-poll-max-interval",
    "500ms",
    "--ca-request-timeout",
    "1s",
    "--keygen-mode",
    "server",
];

pub(crate) async fn server(extra: &[&str]) -> TestApp {
    let mut args: Vec<&str> = FAST_POLLS.to_vec();
    args.extend_from_slice(extra);
    TestApp::spawn_with(&args).await
}

/// The issuer config for `fake`.
pub(crate) fn config(vendor: &Vendor, fake: &FakeCa) -> Value {
    match vendor {
        Vendor::DigiCert => json!({"base_url": fake.base_url, "api_key": "test-devkey", "org_id": 4242,
                                   "tls_ca_file": fake.tls_ca_file}),
        Vendor::Sectigo => json!({"base_url": fake.base_url, "customer_uri": "certctl-test", "login": "certctl",
                                  "password": "test-password", "org_id": 1234, "cert_type": 567,
                                  "tls_ca_file": fake.tls_ca_file}),
        Vendor::Vault => json!({"addr": fake.base_url, "token": "test-token", "mount": "pki", "role": "web",
                                "tls_ca_file": fake.tls_ca_file}),
        Vendor::GlobalSign => json!({"api_url": fake.base_url, "api_key": "test-api-key",
                                     "api_secret": "test-api-secret", "tls_ca_file": fake.tls_ca_file,
                                     "client_cert_path": fake.client_cert_path,
                                     "client_key_path": fake.client_key_path}),
        Vendor::Entrust | Vendor::StepCa => fake.issuer_config(),
    }
}

pub(crate) fn type_name(vendor: &Vendor) -> &'static str {
    match vendor {
        Vendor::DigiCert => "digicert",
        Vendor::Sectigo => "sectigo",
        Vendor::Vault => "vault",
        Vendor::GlobalSign => "globalsign",
        Vendor::Entrust => "entrust",
        Vendor::StepCa => "stepca",
    }
}

pub(crate) async fn create_issuer(app: &TestApp, id: &str, issuer_type: &str, config: Value) {
    let response = app
        .admin(Method::POST, "/api/v1/issuers")
        .json(&json!({"id": id, "name": id, "type": issuer_type, "config": config}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
}

/// A certificate from `issuer`, handed to the CA poller; answers its id.
pub(crate) async fn order(app: &TestApp, issuer: &str, name: &str) -> String {
    let cn = format!("{name}.example.test");
    let body = json!({
        "name": name, "common_name": cn, "sans": [cn], "environment": "production", "owner_id": "o-alice",
        "team_id": "t-platform", "issuer_id": issuer, "renewal_policy_id": "rp-standard",
    });
    let created: Value = app.post_certificate(&body).await.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    // The scan wakes the dispatcher itself; the job processor's round joins or follows it.
    run_loop(app, "renewal_scan").await;
    run_loop(app, "job_processor").await;
    id
}

pub(crate) async fn job_of(app: &TestApp, certificate_id: &str) -> Value {
    let jobs: Value = app.get(&format!("/api/v1/jobs?certificate_id={certificate_id}")).await.json().await.unwrap();
    jobs["data"].as_array().unwrap().iter().find(|j| j["type"] != "Deployment").cloned().unwrap()
}

/// Waits until the certificate's job is in `status` (or fails the test after `within`).
pub(crate) async fn job_reaches(app: &TestApp, certificate_id: &str, status: &str, within: Duration) -> Value {
    let started = Instant::now();
    loop {
        let job = job_of(app, certificate_id).await;
        if job["status"] == status {
            return job;
        }
        assert!(started.elapsed() < within, "the job never reached {status}: {job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) async fn chain_of(app: &TestApp, certificate_id: &str) -> String {
    let page: Value = app.get(&format!("/api/v1/certificates/{certificate_id}/versions")).await.json().await.unwrap();
    page["data"][0]["pem_chain"].as_str().unwrap().to_owned()
}

pub(crate) fn verifies(root: &str, chain: &str) -> bool {
    crate::renewal::openssl_verifies(root, chain)
}

#[actix_web::test]
async fn each_vendor_issues_after_polls_and_revokes_with_its_reason() {
    let vendors =
        [Vendor::DigiCert, Vendor::Sectigo, Vendor::Vault, Vendor::GlobalSign, Vendor::Entrust, Vendor::StepCa];
    for vendor in vendors {
        let fake = FakeCa::start(vendor, Behaviour { pending_polls: 3, ..Default::default() }).await;
        let app = server(&[]).await;
        let name = type_name(&vendor);
        let issuer = format!("iss-{name}");
        create_issuer(&app, &issuer, name, config(&vendor, &fake)).await;
        let test: Value = app
            .admin(Method::POST, &format!("/api/v1/issuers/{issuer}/test"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(test["ok"], true, "{name}: {test}");

        let id = order(&app, &issuer, name).await;
        job_reaches(&app, &id, "Completed", Duration::from_secs(30)).await;
        let chain = chain_of(&app, &id).await;
        assert!(chain.starts_with("-----BEGIN CERTIFICATE-----"), "{name}: leaf first");
        assert!(verifies(&fake.root_pem(), &chain), "{name}: the chain verifies against the CA");
        assert_eq!(fake.submissions(), 1, "{name}: placed once");
        if !matches!(vendor, Vendor::Vault | Vendor::StepCa) {
            assert_eq!(fake.status_polls(), 4, "{name}: three pending answers, then issued");
        }
        // Entrust authenticates by the client certificate alone, step-ca by a token per request.
        if !matches!(vendor, Vendor::Entrust | Vendor::StepCa) {
            let auth = fake.requests().iter().all(|(_, path, auth)| {
                path.contains("health") || path.contains("ca_chain") || path.ends_with("/login") || !auth.is_empty()
            });
            assert!(auth, "{name}: every call carried the credentials: {:?}", fake.requests());
        }

        let revoked = app
            .admin(Method::POST, &format!("/api/v1/certificates/{id}/revoke"))
            .json(&json!({"reason": "keyCompromise"}))
            .send()
            .await
            .unwrap();
        assert_eq!(revoked.status(), 200);
        let started = Instant::now();
        while fake.revocations().is_empty() {
            assert!(started.elapsed() < Duration::from_secs(20), "{name}: the CA never heard of the revocation");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (_, reason) = &fake.revocations()[0];
        match vendor {
            Vendor::DigiCert => assert_eq!(reason, "key_compromise"),
            Vendor::Sectigo => assert_eq!(reason, "1"),
            Vendor::Vault => assert_eq!(reason, "", "Vault takes no reason"),
            Vendor::GlobalSign | Vendor::Entrust => assert_eq!(reason, "keyCompromise"),
            Vendor::StepCa => assert_eq!(reason, "1", "step-ca takes the reason code"),
        }
        let ca = app.get(&format!("/api/v1/issuers/{issuer}/ca")).await;
        assert_eq!(ca.status(), 200, "{name}: the issuer's chain is known");
    }
}

#[actix_web::test]
async fn retry_after_5xx_and_dropped_connections_are_polled_through() {
    // Each asynchronous vendor, with the endpoint its status polls are measured under.
    let vendors = [
        (Vendor::DigiCert, "order_info"),
        (Vendor::Sectigo, "details"),
        (Vendor::GlobalSign, "certificate_status"),
        (Vendor::Entrust, "certificate_events"),
    ];
    for (vendor, endpoint) in vendors {
        let behaviour = Behaviour {
            dropped_connections: 1,
            server_errors: 2,
            rate_limited_polls: 1,
            retry_after_secs: 2,
            pending_polls: 1,
            ..Default::default()
        };
        let name = type_name(&vendor);
        let fake = FakeCa::start(vendor, behaviour).await;
        let app = server(&[]).await;
        create_issuer(&app, "iss-flaky", name, config(&vendor, &fake)).await;
        let started = Instant::now();
        let id = order(&app, "iss-flaky", "flaky").await;
        job_reaches(&app, &id, "Completed", Duration::from_secs(30)).await;
        assert!(started.elapsed() >= Duration::from_secs(2), "{name}: the CA's Retry-After of 2 s was waited out");
        assert_eq!(fake.status_polls(), 6, "{name}: a drop, two 500s, a 429, a pending, then issued");
        assert_eq!(fake.submissions(), 1, "{name}");
        let metrics = app.metrics_text().await;
        let limited = format!(
            "certctl_ca_request_errors_total{{issuer=\"iss-flaky\",endpoint=\"{endpoint}\",error_class=\"rate_limited\"}} 1"
        );
        assert!(metrics.contains(&limited), "{name}: {limited} in\n{metrics}");
    }
}

#[actix_web::test]
async fn past_the_budget_the_job_goes_back_and_the_same_order_is_polled_later() {
    let fake = FakeCa::start(Vendor::Sectigo, Behaviour { pending_polls: 1_000_000, ..Default::default() }).await;
    let app = server(&["--async-poll-max-wait-seconds", "600", "--sectigo-poll-max-wait-seconds", "600"]).await;
    let mut config = config(&Vendor::Sectigo, &fake);
    // The issuer's own budget wins over both variables.
    config["poll_max_wait_seconds"] = json!(1);
    create_issuer(&app, "iss-sec", "sectigo", config).await;
    let id = order(&app, "iss-sec", "slow").await;
    let job = job_reaches(&app, &id, "Pending", Duration::from_secs(15)).await;
    assert!(job["last_error"].as_str().unwrap().contains("poll budget of 1s"), "{job}");
    let db = cluster().admin_client_for(&app.db_name).await;
    let parked = db.query_one("SELECT state, next_poll_at IS NULL, external_id FROM ca_orders", &[]).await.unwrap();
    assert_eq!(parked.get::<_, String>(0), "pending");
    assert!(parked.get::<_, bool>(1), "parked: nothing polls it until the job is claimed again");
    let external: String = parked.get(2);
    assert!(app.metrics_text().await.contains("certctl_ca_poll_budget_expiries_total{issuer_type=\"sectigo\"} 1"));

    // The CA issues meanwhile; the job's next claim polls the same order.
    fake.set_behaviour(Behaviour::default());
    db.execute("UPDATE jobs SET scheduled_at = now() WHERE status = 'Pending'", &[]).await.unwrap();
    run_loop(&app, "job_processor").await;
    job_reaches(&app, &id, "Completed", Duration::from_secs(15)).await;
    assert_eq!(fake.submissions(), 1, "never placed twice");
    let orders = db.query("SELECT external_id, state FROM ca_orders", &[]).await.unwrap();
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0].get::<_, String>(0), external);
    assert_eq!(orders[0].get::<_, String>(1), "issued");
}

#[actix_web::test]
async fn a_restart_mid_order_resumes_it() {
    for vendor in [Vendor::DigiCert, Vendor::Sectigo, Vendor::GlobalSign, Vendor::Entrust] {
        let name = type_name(&vendor);
        let fake = FakeCa::start(vendor, Behaviour { pending_polls: 1_000_000, ..Default::default() }).await;
        let app = server(&[]).await;
        create_issuer(&app, "iss-x", name, config(&vendor, &fake)).await;
        let id = order(&app, "iss-x", "restart").await;
        let started = Instant::now();
        while fake.status_polls() == 0 {
            assert!(started.elapsed() < Duration::from_secs(10), "{name}: never polled");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The server stops with the order at the CA; a new one on the same database takes it over.
        app.handle.stop(true).await;
        fake.set_behaviour(Behaviour::default());
        let mut args = crate::helpers::base_args(&app.db_name);
        args.extend(FAST_POLLS.iter().map(|s| s.to_string()));
        let next = TestApp::start(settings_from(args), app.db_name.clone()).await;
        job_reaches(&next, &id, "Completed", Duration::from_secs(20)).await;
        assert_eq!(fake.submissions(), 1, "{name}: resumed, not placed again");
    }
}

#[actix_web::test]
async fn an_unrecorded_submission_is_found_by_the_cas_lookup_or_fails_clearly() {
    // (GlobalSign's lookup lists issued certificates only: an order still pending there cannot be
    // found, so it is left out here.)
    for vendor in [Vendor::DigiCert, Vendor::Sectigo] {
        let name = type_name(&vendor);
        let fake = FakeCa::start(vendor, Behaviour { pending_polls: 2, ..Default::default() }).await;
        let app = server(&[]).await;
        create_issuer(&app, "iss-x", name, config(&vendor, &fake)).await;
        let id = order(&app, "iss-x", name).await;
        let started = Instant::now();
        while fake.status_polls() == 0 {
            assert!(started.elapsed() < Duration::from_secs(10), "{name}: never polled");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // As if the process died after the CA took the order and before its id was written.
        let db = cluster().admin_client_for(&app.db_name).await;
        db.execute("UPDATE ca_orders SET state = 'submitting', external_id = NULL, next_poll_at = now()", &[])
            .await
            .unwrap();
        job_reaches(&app, &id, "Completed", Duration::from_secs(20)).await;
        assert_eq!(fake.submissions(), 1, "{name}: found by the CA's lookup, not placed again");
    }

    // Vault signs at once and has no lookup: an intent found `submitting` fails clearly. The
    // fake is down, so the intent stays unplaced while the test marks it as a crash would.
    let mut fake = FakeCa::start(Vendor::Vault, Behaviour::default()).await;
    fake.stop().await;
    let app = server(&[]).await;
    create_issuer(&app, "iss-v", "vault", config(&Vendor::Vault, &fake)).await;
    let id = order(&app, "iss-v", "crash").await;
    let db = cluster().admin_client_for(&app.db_name).await;
    let started = Instant::now();
    let job = loop {
        db.execute("UPDATE ca_orders SET state = 'submitting', next_poll_at = now() WHERE state = 'new'", &[])
            .await
            .unwrap();
        let job = job_of(&app, &id).await;
        if job["status"] == "Failed" {
            break job;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the job never failed: {job}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let error = job["last_error"].as_str().unwrap();
    assert!(error.contains("not placed twice"), "{error}");
    assert_eq!(fake.submissions(), 0);
}

#[actix_web::test]
async fn rejection_and_refused_credentials_fail_with_the_cas_words() {
    let fake =
        FakeCa::start(Vendor::DigiCert, Behaviour { reject: true, pending_polls: 1, ..Default::default() }).await;
    let app = server(&[]).await;
    create_issuer(&app, "iss-dc", "digicert", config(&Vendor::DigiCert, &fake)).await;
    let id = order(&app, "iss-dc", "rejected").await;
    let job = job_reaches(&app, &id, "Failed", Duration::from_secs(20)).await;
    assert!(job["last_error"].as_str().unwrap().contains("rejected"), "{job}");
    assert!(job["retry_at"].is_null(), "a refusal is final: {job}");

    fake.set_behaviour(Behaviour { refuse_credentials: true, ..Default::default() });
    let id = order(&app, "iss-dc", "refused").await;
    let job = job_reaches(&app, &id, "Failed", Duration::from_secs(20)).await;
    let error = job["last_error"].as_str().unwrap();
    assert!(error.contains("refused the credentials") && error.contains("access_denied"), "{error}");
    assert_eq!(job["error_class"], "upstream_4xx");
    let test: Value =
        app.admin(Method::POST, "/api/v1/issuers/iss-dc/test").send().await.unwrap().json().await.unwrap();
    assert_eq!(test["ok"], false, "{test}");

    // Every other vendor: its own refusal and its own credentials error, in its own words.
    let vendors = [
        (Vendor::Sectigo, "Declined", "-16"),
        (Vendor::GlobalSign, "rejected by validation policy", "invalid credentials"),
        (Vendor::Vault, "not allowed by this role", "permission denied"),
        (Vendor::Entrust, "cagw-4000", "cagw-4003"),
        (Vendor::StepCa, "valid DNS names", "lacked necessary authorization"),
    ];
    for (vendor, rejected, refused) in vendors {
        let name = type_name(&vendor);
        let fake = FakeCa::start(vendor, Behaviour { reject: true, pending_polls: 1, ..Default::default() }).await;
        let issuer = format!("iss-{name}");
        create_issuer(&app, &issuer, name, config(&vendor, &fake)).await;
        let id = order(&app, &issuer, &format!("{name}-rejected")).await;
        let job = job_reaches(&app, &id, "Failed", Duration::from_secs(20)).await;
        assert!(job["last_error"].as_str().unwrap().contains(rejected), "{name}: {job}");
        assert!(job["retry_at"].is_null(), "{name}: a refusal is final: {job}");
        fake.set_behaviour(Behaviour { refuse_credentials: true, ..Default::default() });
        let id = order(&app, &issuer, &format!("{name}-refused")).await;
        let job = job_reaches(&app, &id, "Failed", Duration::from_secs(20)).await;
        assert!(job["last_error"].as_str().unwrap().contains(refused), "{name}: {job}");
        assert_eq!(job["error_class"], "upstream_4xx", "{name}: {job}");
    }
}

#[actix_web::test]
async fn mutual_tls_and_vault_token_renewal() {
    let fake = FakeCa::start(Vendor::Sectigo, Behaviour { require_client_cert: true, ..Default::default() }).await;
    let app = server(&[]).await;
    let mut with_cert = config(&Vendor::Sectigo, &fake);
    with_cert["client_cert_path"] = json!(fake.client_cert_path);
    with_cert["client_key_path"] = json!(fake.client_key_path);
    create_issuer(&app, "iss-mtls", "sectigo", with_cert).await;
    let id = order(&app, "iss-mtls", "mtls").await;
    job_reaches(&app, &id, "Completed", Duration::from_secs(20)).await;

    let vault = FakeCa::start(Vendor::Vault, Behaviour::default()).await;
    create_issuer(&app, "iss-vault", "vault", config(&Vendor::Vault, &vault)).await;
    let id = order(&app, "iss-vault", "vaulted").await;
    job_reaches(&app, &id, "Completed", Duration::from_secs(20)).await;
    assert_eq!(vault.token_renewals(), 0, "a token at the start of its life is not renewed");
}

#[actix_web::test]
async fn secrets_stored_in_clear_are_sealed_at_start_up_and_still_work() {
    let fake = FakeCa::start(Vendor::DigiCert, Behaviour::default()).await;
    let app = server(&[]).await;
    // As a row written before secrets were sealed, or straight into the database.
    let db = cluster().admin_client_for(&app.db_name).await;
    let config = config(&Vendor::DigiCert, &fake);
    db.execute(
        "INSERT INTO issuers (id, name, type, config, enabled) VALUES ('iss-clear', 'clear', 'digicert', $1, true)",
        &[&config],
    )
    .await
    .unwrap();
    app.handle.stop(true).await;
    let mut args = crate::helpers::base_args(&app.db_name);
    args.extend(FAST_POLLS.iter().map(|s| s.to_string()));
    let next = TestApp::start(settings_from(args), app.db_name.clone()).await;
    let stored: Value = db.query_one("SELECT config FROM issuers WHERE id = 'iss-clear'", &[]).await.unwrap().get(0);
    assert!(stored["api_key"].as_str().unwrap().starts_with("sealed:v1:"), "{stored}");
    assert_eq!(stored["base_url"], config["base_url"], "only secrets are sealed");
    let id = order(&next, "iss-clear", "sealed").await;
    job_reaches(&next, &id, "Completed", Duration::from_secs(20)).await;
}

#[actix_web::test]
async fn certctls_vendor_variables_seed_issuers_that_issue() {
    let fake = FakeCa::start(Vendor::DigiCert, Behaviour::default()).await;
    let vault = FakeCa::start(Vendor::Vault, Behaviour::default()).await;
    let ca_file = fake.tls_ca_file.display().to_string();
    let app = server(&[
        "--digicert-api-key",
        "test-devkey",
        "--digicert-org-id",
        "4242",
        "--digicert-base-url",
        &fake.base_url,
        "--vault-addr",
        &vault.base_url,
        "--vault-token",
        "test-token",
        "--vault-role",
        "web",
    ])
    .await;
    let issuer: Value = app.get("/api/v1/issuers/iss-digicert").await.json().await.unwrap();
    assert_eq!(issuer["type"], "digicert");
    assert_eq!(issuer["config"]["api_key"], "***");
    assert_eq!(issuer["config"]["org_id"], 4242);
    let vaulted: Value = app.get("/api/v1/issuers/iss-vault").await.json().await.unwrap();
    assert_eq!(vaulted["config"]["token"], "***");
    assert_eq!(vaulted["config"]["role"], "web");
    let listing: Value = app.get("/api/v1/admin/config").await.json().await.unwrap();
    let shown = listing.to_string();
    assert!(!shown.contains("test-devkey") && !shown.contains("test-token"), "credentials never listed: {shown}");
    // The fakes' TLS CA is not a variable of certctl's: it is added through the API, as an operator would.
    for (id, file) in [("iss-digicert", &ca_file), ("iss-vault", &vault.tls_ca_file.display().to_string())] {
        let shown: Value = app.get(&format!("/api/v1/issuers/{id}")).await.json().await.unwrap();
        let mut config = shown["config"].clone();
        config["tls_ca_file"] = json!(file);
        let updated = app
            .admin(Method::PUT, &format!("/api/v1/issuers/{id}"))
            .json(&json!({"config": config}))
            .send()
            .await
            .unwrap();
        assert_eq!(updated.status(), 200);
    }
    let id = order(&app, "iss-digicert", "seeded").await;
    job_reaches(&app, &id, "Completed", Duration::from_secs(20)).await;
    let id = order(&app, "iss-vault", "seeded-vault").await;
    job_reaches(&app, &id, "Completed", Duration::from_secs(20)).await;
}
