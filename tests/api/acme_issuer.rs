//! The ACME connector against a real Pebble (`tests/api/pebble.rs`), through the real dispatcher
//! and CA poller. Covered: http-01 answered by the server's challenge listener (Pebble fetches the
//! key authorization over HTTP), the job `AwaitingCA` while the poller works, the chain checked
//! with `openssl verify` against Pebble's root, the issuer's chain then served by
//! `GET /issuers/{id}/ca`, and revocation told to Pebble with its RFC 5280 reason; dns-01 through
//! certctl's hook scripts writing TXT records into Pebble's DNS server; External Account Binding
//! with a sealed HMAC key (stored sealed, shown masked, kept when sent back masked); a name the CA
//! refuses failing the job with the CA's own words; `POST /issuers/{id}/test`; `preferred_chain`
//! taking the alternate chain Pebble offers (`PEBBLE_ALTERNATE_ROOTS`), or keeping its default;
//! the CA's renewal window (RFC 9773, supplied by `ari_shim` in front of Pebble) setting `renew_at`.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::ari_shim::AriShim;
use crate::helpers::{cluster, TestApp};
use crate::pebble::{free_port, Pebble, PebbleOptions};
use crate::renewal::run_loop;

/// `openssl verify` of the chain's leaf against `root`, the rest of the chain as intermediates.
fn openssl_verifies(root: &str, chain: &str) -> bool {
    let dir = crate::helpers::scratch_dir("verify-acme");
    let end = "-----END CERTIFICATE-----";
    let split = chain.find(end).map(|i| i + end.len()).unwrap();
    std::fs::write(dir.join("root.pem"), root).unwrap();
    std::fs::write(dir.join("leaf.pem"), &chain[..split]).unwrap();
    std::fs::write(dir.join("chain.pem"), chain).unwrap();
    let output = std::process::Command::new("openssl")
        .args(["verify", "-x509_strict", "-CAfile"])
        .arg(dir.join("root.pem"))
        .arg("-untrusted")
        .arg(dir.join("chain.pem"))
        .arg(dir.join("leaf.pem"))
        .output()
        .expect("running openssl");
    let _ = std::fs::remove_dir_all(&dir);
    if !output.status.success() {
        eprintln!(
            "openssl verify: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    output.status.success()
}

/// A server whose CA poller polls every fraction of a second, with an http-01 listener on a port
/// of its own (`http01_port`, which Pebble is then told to validate on).
async fn server() -> TestApp {
    TestApp::spawn_with(&[
        "--keygen-mode",
        "server",
        "--acme-http01-listen",
        "127.0.0.1:0",
        "--async-poll-initial-interval",
        "100ms",
        "--async-poll-max-interval",
        "500ms",
    ])
    .await
}

/// Creates an ACME issuer for `pebble` with extra config fields.
async fn acme_issuer(app: &TestApp, pebble: &Pebble, id: &str, extra: Value) -> Value {
    let mut config = json!({
        "directory_url": pebble.directory_url,
        "email": "ops@certctl.test",
        "tls_ca_file": pebble.tls_ca_file,
    });
    config.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    let response = app
        .admin(Method::POST, "/api/v1/issuers")
        .json(&json!({"id": id, "name": id, "type": "acme", "config": config}))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 201, "{body}");
    body
}

/// A certificate for `names` from `issuer`, renewed now; answers its id.
async fn issue(app: &TestApp, issuer: &str, names: &[&str]) -> String {
    let body = json!({
        "name": names[0],
        "common_name": names[0],
        "sans": names,
        "environment": "production",
        "owner_id": "o-alice",
        "team_id": "t-platform",
        "issuer_id": issuer,
        "renewal_policy_id": "rp-standard",
    });
    let created: Value = app.post_certificate(&body).await.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    // The scan wakes the dispatcher itself (which hands the job to the CA poller); the job
    // processor's round joins or follows it.
    run_loop(app, "renewal_scan").await;
    run_loop(app, "job_processor").await;
    let db = cluster().admin_client_for(&app.db_name).await;
    let orders: i64 =
        db.query_one("SELECT count(*) FROM ca_orders WHERE certificate_id = $1", &[&id]).await.unwrap().get(0);
    assert_eq!(orders, 1, "the dispatcher handed the job to the CA poller as one order");
    id
}

/// The certificate's job, once it has left `AwaitingCA` (or the deadline came).
async fn settled_job(app: &TestApp, certificate_id: &str, pebble: &Pebble) -> Value {
    let started = Instant::now();
    loop {
        let jobs: Value = app.get(&format!("/api/v1/jobs?certificate_id={certificate_id}")).await.json().await.unwrap();
        let job = jobs["data"].as_array().unwrap().iter().find(|j| j["type"] != "Deployment").cloned().unwrap();
        if job["status"] != "AwaitingCA" {
            return job;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the order never settled: {job}\n{}", pebble.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn newest_version(app: &TestApp, certificate_id: &str) -> Value {
    let page: Value = app.get(&format!("/api/v1/certificates/{certificate_id}/versions")).await.json().await.unwrap();
    page["data"][0].clone()
}

#[actix_web::test]
async fn http01_issuance_through_pebble_then_revocation_reaches_it() {
    let app = server().await;
    let pebble = Pebble::start(PebbleOptions { http_port: app.http01_port.unwrap(), ..Default::default() }).await;
    acme_issuer(&app, &pebble, "iss-pebble", json!({})).await;

    let id = issue(&app, "iss-pebble", &["web.certctl.test", "api.certctl.test"]).await;
    let job = settled_job(&app, &id, &pebble).await;
    assert_eq!(job["status"], "Completed", "{job}\n{}", pebble.logs());

    let version = newest_version(&app, &id).await;
    let chain = version["pem_chain"].as_str().unwrap();
    assert!(openssl_verifies(&pebble.root_pem().await, chain), "the chain verifies against Pebble's root");
    let certificate: Value = app.get(&format!("/api/v1/certificates/{id}")).await.json().await.unwrap();
    assert_eq!(certificate["status"], "Active");

    let db = cluster().admin_client_for(&app.db_name).await;
    let order = db
        .query_one("SELECT state, external_id, polls FROM ca_orders WHERE certificate_id = $1", &[&id])
        .await
        .unwrap();
    assert_eq!(order.get::<_, String>(0), "issued");
    assert!(order.get::<_, String>(1).starts_with("https://127.0.0.1:"), "the order URL is recorded");
    let left: i64 = db.query_one("SELECT count(*) FROM acme_http01_tokens", &[]).await.unwrap().get(0);
    assert_eq!(left, 0, "the http-01 answers are withdrawn once the order is done");
    let account: Vec<u8> = db.query_one("SELECT credentials_sealed FROM acme_accounts", &[]).await.unwrap().get(0);
    assert!(!String::from_utf8_lossy(&account).contains("key_pkcs8"), "the account key is stored sealed");

    // The issuer's CA chain is the one its certificates came with.
    let ca = app.get("/api/v1/issuers/iss-pebble/ca").await;
    assert_eq!(ca.status(), 200);
    let ca_chain = ca.text().await.unwrap();
    assert!(chain.ends_with(&ca_chain) || chain.contains(ca_chain.trim()), "the chain after the leaf");

    let revoked = app
        .admin(Method::POST, &format!("/api/v1/certificates/{id}/revoke"))
        .json(&json!({"reason": "keyCompromise"}))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200, "{}", revoked.text().await.unwrap());
    let serial = version["serial_number"].as_str().unwrap();
    let started = Instant::now();
    loop {
        let status = pebble.cert_status(serial).await;
        if status["Status"] == "Revoked" {
            assert_eq!(status["Reason"], 1, "keyCompromise reaches the CA: {status}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "Pebble never heard of the revocation: {status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let started = Instant::now();
    loop {
        let notified: bool =
            db.query_one("SELECT issuer_notified FROM certificate_revocations", &[]).await.unwrap().get(0);
        if notified {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "the revocation is never marked as told");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_web::test]
async fn dns01_through_the_hook_scripts() {
    let app = server().await;
    let pebble = Pebble::start(PebbleOptions { http_port: free_port(), ..Default::default() }).await;
    let dir = crate::helpers::scratch_dir("dns-hooks");
    let present = dir.join("present.sh");
    let cleanup = dir.join("cleanup.sh");
    // certctl's hook contract: the record in CERTCTL_DNS_FQDN / CERTCTL_DNS_VALUE.
    std::fs::write(
        &present,
        format!(
            "#!/bin/sh\nset -e\necho \"$CERTCTL_DNS_DOMAIN $CERTCTL_DNS_TOKEN\" >> {log}\n\
             curl -sf -X POST -d \"{{\\\"host\\\":\\\"$CERTCTL_DNS_FQDN.\\\",\\\"value\\\":\\\"$CERTCTL_DNS_VALUE\\\"}}\" {url}\n",
            log = dir.join("presented").display(),
            url = pebble.set_txt_url()
        ),
    )
    .unwrap();
    std::fs::write(
        &cleanup,
        format!(
            "#!/bin/sh\nset -e\necho \"$CERTCTL_DNS_FQDN\" >> {log}\ncurl -sf -X POST -d \"{{\\\"host\\\":\\\"$CERTCTL_DNS_FQDN.\\\"}}\" {url}\n",
            log = dir.join("cleaned").display(),
            url = pebble.clear_txt_url()
        ),
    )
    .unwrap();
    for script in [&present, &cleanup] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    acme_issuer(
        &app,
        &pebble,
        "iss-pebble-dns",
        json!({"challenge_type": "dns-01", "dns_present_script": present, "dns_cleanup_script": cleanup}),
    )
    .await;

    let id = issue(&app, "iss-pebble-dns", &["dns.certctl.test"]).await;
    let job = settled_job(&app, &id, &pebble).await;
    assert_eq!(job["status"], "Completed", "{job}\n{}", pebble.logs());
    let version = newest_version(&app, &id).await;
    assert!(openssl_verifies(&pebble.root_pem().await, version["pem_chain"].as_str().unwrap()));
    let presented = std::fs::read_to_string(dir.join("presented")).unwrap();
    assert!(presented.starts_with("dns.certctl.test "), "the hook got the domain and token: {presented}");
    let started = Instant::now();
    while !dir.join("cleaned").exists() {
        assert!(started.elapsed() < Duration::from_secs(10), "the clean-up hook never ran");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cleaned = std::fs::read_to_string(dir.join("cleaned")).unwrap();
    assert_eq!(cleaned.trim(), "_acme-challenge.dns.certctl.test");

    // A job cancelled while its record waits to propagate: the record is removed all the same.
    acme_issuer(
        &app,
        &pebble,
        "iss-pebble-slow-dns",
        json!({"challenge_type": "dns-01", "dns_present_script": present, "dns_cleanup_script": cleanup,
               "dns_propagation_wait": 2}),
    )
    .await;
    let id = issue(&app, "iss-pebble-slow-dns", &["cancel.certctl.test"]).await;
    let started = Instant::now();
    while !std::fs::read_to_string(dir.join("presented")).unwrap().contains("cancel.certctl.test") {
        assert!(started.elapsed() < Duration::from_secs(10), "the record was never presented");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let jobs: Value = app.get(&format!("/api/v1/jobs?certificate_id={id}")).await.json().await.unwrap();
    let job_id = jobs["data"][0]["id"].as_str().unwrap().to_owned();
    let cancelled = app.admin(Method::POST, &format!("/api/v1/jobs/{job_id}/cancel")).send().await.unwrap();
    assert_eq!(cancelled.status(), 200, "{}", cancelled.text().await.unwrap());
    let started = Instant::now();
    while !std::fs::read_to_string(dir.join("cleaned")).unwrap().contains("_acme-challenge.cancel.certctl.test") {
        assert!(started.elapsed() < Duration::from_secs(15), "the cancelled order's record was never removed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_web::test]
async fn eab_with_a_sealed_key_and_a_refused_name() {
    // The HMAC key as CAs hand it out: base64url without padding.
    let hmac = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W";
    let app = server().await;
    let pebble = Pebble::start(PebbleOptions {
        http_port: app.http01_port.unwrap(),
        eab: Some(("kid-certctl".into(), hmac.into())),
        blocklist: vec!["blocked.certctl.test".into()],
        ..Default::default()
    })
    .await;
    let created =
        acme_issuer(&app, &pebble, "iss-pebble-eab", json!({"eab_kid": "kid-certctl", "eab_hmac_key": hmac})).await;
    assert_eq!(created["config"]["eab_hmac_key"], "***", "shown masked");
    let db = cluster().admin_client_for(&app.db_name).await;
    let stored: Value =
        db.query_one("SELECT config FROM issuers WHERE id = 'iss-pebble-eab'", &[]).await.unwrap().get(0);
    let sealed = stored["eab_hmac_key"].as_str().unwrap();
    assert!(sealed.starts_with("sealed:v1:") && !sealed.contains(hmac), "stored sealed: {sealed}");

    // The config sent back as shown keeps the key.
    let shown = created["config"].clone();
    let updated =
        app.admin(Method::PUT, "/api/v1/issuers/iss-pebble-eab").json(&json!({"config": shown})).send().await.unwrap();
    assert_eq!(updated.status(), 200);
    let kept: Value = db.query_one("SELECT config FROM issuers WHERE id = 'iss-pebble-eab'", &[]).await.unwrap().get(0);
    assert_eq!(kept["eab_hmac_key"], stored["eab_hmac_key"], "the mask keeps the stored value");

    let test: Value =
        app.admin(Method::POST, "/api/v1/issuers/iss-pebble-eab/test").send().await.unwrap().json().await.unwrap();
    assert_eq!(test["ok"], true, "{test}");
    assert_eq!(test["checks"][1]["name"], "account");

    let id = issue(&app, "iss-pebble-eab", &["eab.certctl.test"]).await;
    let job = settled_job(&app, &id, &pebble).await;
    assert_eq!(job["status"], "Completed", "the account made with the opened key works: {job}");

    let refused = issue(&app, "iss-pebble-eab", &["blocked.certctl.test"]).await;
    let job = settled_job(&app, &refused, &pebble).await;
    assert_eq!(job["status"], "Failed", "{job}");
    assert_eq!(job["error_class"], "upstream_4xx");
    let error = job["last_error"].as_str().unwrap();
    assert!(error.contains("rejectedIdentifier"), "the CA's own words: {error}");
    assert!(job["retry_at"].is_null(), "a refusal is not retried by itself");
}

#[actix_web::test]
async fn a_connection_test_reports_an_unreachable_directory() {
    let app = TestApp::spawn().await;
    let port = free_port();
    let response = app
        .admin(Method::POST, "/api/v1/issuers")
        .json(&json!({"id": "iss-nowhere", "name": "nowhere", "type": "acme",
                      "config": {"directory_url": format!("https://127.0.0.1:{port}/dir")}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let test: Value =
        app.admin(Method::POST, "/api/v1/issuers/iss-nowhere/test").send().await.unwrap().json().await.unwrap();
    assert_eq!(test["ok"], false, "{test}");
    assert_eq!(test["checks"][0]["name"], "directory");
    assert!(test["checks"][0]["detail"].as_str().unwrap().contains("cannot connect"), "{test}");
    let missing = app.admin(Method::POST, "/api/v1/issuers/iss-missing/test").send().await.unwrap();
    crate::helpers::assert_problem(missing, 404, "not-found").await;
    // Issuer configs name scripts the server runs and URLs it calls: an admin's business.
    let writer = app.user(Method::POST, "/api/v1/issuers/iss-nowhere/test").send().await.unwrap();
    crate::helpers::assert_problem(writer, 403, "forbidden").await;
    let writer = app
        .user(Method::POST, "/api/v1/issuers")
        .json(&json!({"name": "mine", "type": "acme", "config": {"directory_url": "https://127.0.0.1:1/dir"}}))
        .send()
        .await
        .unwrap();
    crate::helpers::assert_problem(writer, 403, "forbidden").await;
}

#[actix_web::test]
async fn certctls_acme_variables_seed_an_issuer_once() {
    let app = TestApp::spawn_with(&[
        "--acme-directory-url",
        "https://acme.example.test/directory",
        "--acme-email",
        "ops@example.test",
        "--acme-challenge-type",
        "dns-01",
        "--acme-dns-present-script",
        "/usr/local/bin/present",
    ])
    .await;
    let issuer: Value = app.get("/api/v1/issuers/iss-acme").await.json().await.unwrap();
    assert_eq!(issuer["type"], "acme");
    assert_eq!(issuer["config"]["directory_url"], "https://acme.example.test/directory");
    assert_eq!(issuer["config"]["challenge_type"], "dns-01");
    assert_eq!(issuer["config"]["dns_present_script"], "/usr/local/bin/present");
    // Edited through the API, it stays edited across restarts.
    let edited = app
        .admin(Method::PUT, "/api/v1/issuers/iss-acme")
        .json(&json!({"config": {"directory_url": "https://other.example.test/dir"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(edited.status(), 200);
    let mut args = crate::helpers::base_args(&app.db_name);
    args.extend(["--acme-directory-url".to_string(), "https://acme.example.test/directory".to_string()]);
    let again = TestApp::start(crate::helpers::settings_from(args), app.db_name.clone()).await;
    let issuer: Value = again.get("/api/v1/issuers/iss-acme").await.json().await.unwrap();
    assert_eq!(issuer["config"]["directory_url"], "https://other.example.test/dir");
    let audit: Value = again.get("/api/v1/audit?action=issuer.create").await.json().await.unwrap();
    assert_eq!(audit["data"][0]["actor"], "env-seed");
}

#[actix_web::test]
async fn dns01_by_rfc2136_update_to_a_real_authoritative_server() {
    let named = crate::named::Named::start();
    let app = server().await;
    let pebble = Pebble::start(PebbleOptions {
        http_port: free_port(),
        dns_server: Some(named.address.clone()),
        ..Default::default()
    })
    .await;
    acme_issuer(
        &app,
        &pebble,
        "iss-pebble-2136",
        json!({"challenge_type": "dns-01", "dns_update_server": named.address, "dns_zone": "test",
               "tsig_key_name": named.key_name, "tsig_secret": named.secret}),
    )
    .await;
    let db = cluster().admin_client_for(&app.db_name).await;
    let stored: Value =
        db.query_one("SELECT config FROM issuers WHERE id = 'iss-pebble-2136'", &[]).await.unwrap().get(0);
    assert!(stored["tsig_secret"].as_str().unwrap().starts_with("sealed:v1:"), "the TSIG key is sealed");

    let id = issue(&app, "iss-pebble-2136", &["dyn.test", "*.dyn.test"]).await;
    let job = settled_job(&app, &id, &pebble).await;
    assert_eq!(job["status"], "Completed", "{job}\n{}\n{}", pebble.logs(), named.logs());
    let version = newest_version(&app, &id).await;
    assert!(openssl_verifies(&pebble.root_pem().await, version["pem_chain"].as_str().unwrap()));
    // named logged both values added under one name (wildcard and base name), then removed.
    let started = Instant::now();
    loop {
        let log = named.logs();
        if log.matches("deleting an RR").count() >= 2 || log.matches("deleting rrset").count() >= 1 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "the records were not removed: {log}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(named.logs().matches("adding an RR at '_acme-challenge.dyn.test' TXT").count() >= 2, "{}", named.logs());
}

/// The common name of the subject of the first certificate in `pem`.
fn subject_cn(pem: &str) -> String {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    let cert = block.parse_x509().unwrap();
    let cn = cert.subject().iter_common_name().next().unwrap().as_str().unwrap().to_owned();
    cn
}

#[actix_web::test]
async fn preferred_chain_picks_the_alternate_pebble_offers_or_keeps_the_default() {
    let app = server().await;
    let pebble =
        Pebble::start(PebbleOptions { http_port: app.http01_port.unwrap(), alternate_roots: 1, ..Default::default() })
            .await;
    let (default_root, alternate_root) = (pebble.root_pem_at(0).await, pebble.root_pem_at(1).await);
    let wanted = subject_cn(&alternate_root);
    acme_issuer(&app, &pebble, "iss-alt", json!({"preferred_chain": wanted})).await;
    acme_issuer(&app, &pebble, "iss-nobody", json!({"preferred_chain": "No Such Root CA"})).await;

    let id = issue(&app, "iss-alt", &["alt.certctl.test"]).await;
    let job = settled_job(&app, &id, &pebble).await;
    assert_eq!(job["status"], "Completed", "{job}\n{}", pebble.logs());
    let chain = newest_version(&app, &id).await["pem_chain"].as_str().unwrap().to_owned();
    assert!(openssl_verifies(&alternate_root, &chain), "the alternate chain, up to {wanted}");
    assert!(!openssl_verifies(&default_root, &chain), "not the default one");

    let id = issue(&app, "iss-nobody", &["default.certctl.test"]).await;
    let job = settled_job(&app, &id, &pebble).await;
    assert_eq!(job["status"], "Completed", "{job}\n{}", pebble.logs());
    let chain = newest_version(&app, &id).await["pem_chain"].as_str().unwrap().to_owned();
    assert!(openssl_verifies(&default_root, &chain), "no chain matches: the CA's default is kept");
}

#[actix_web::test]
async fn the_cas_renewal_window_sets_when_the_certificate_is_renewed() {
    let app = server().await;
    let pebble = Pebble::start(PebbleOptions { http_port: app.http01_port.unwrap(), ..Default::default() }).await;
    let start = chrono::Utc::now() + chrono::Duration::days(20);
    let end = start + chrono::Duration::days(2);
    let shim = AriShim::start(&pebble, (start, end)).await;
    acme_issuer(&app, &pebble, "iss-ari", json!({"directory_url": shim.directory_url})).await;
    let test: Value =
        app.admin(Method::POST, "/api/v1/issuers/iss-ari/test").send().await.unwrap().json().await.unwrap();
    assert!(test.to_string().contains("offers renewal information"), "{test}");

    let id = issue(&app, "iss-ari", &["ari.certctl.test"]).await;
    let job = settled_job(&app, &id, &pebble).await;
    assert_eq!(job["status"], "Completed", "{job}\n{}", pebble.logs());
    let asked = shim.asked();
    assert_eq!(asked.len(), 1, "the window of the new certificate was asked for: {asked:?}");
    let db = cluster().admin_client_for(&app.db_name).await;
    let renew_at: chrono::DateTime<chrono::Utc> =
        db.query_one("SELECT renew_at FROM managed_certificates WHERE id = $1", &[&id]).await.unwrap().get(0);
    // Pebble's certificates live 5 years: certctl's own rule would renew years from now.
    assert!(renew_at >= start && renew_at <= end, "renew_at {renew_at} inside the CA's window {start}..{end}");
}
