//! The renewal engine end to end: scan → dispatcher → local CA → version rows, through the admin
//! run-now endpoint (and, in one test, the loops' own timers); chains checked with `openssl verify`
//! against `GET /issuers/{id}/ca`. Test servers start with `CERTCTL_SCHEDULER_ENABLED=false` and a
//! fixed `CERTCTL_CONFIG_ENCRYPTION_KEY`. Covered: a new certificate issued, with one deployment
//! job per bound target and its server-generated key stored sealed; the local CA created once,
//! stored sealed and shared by a second server on the same database; unknown and unusable issuers
//! as problems; agent key generation leaving the job `AwaitingCSR`; twelve-second certificates
//! renewing by themselves on the loops' timers, each before the previous expires and not before a
//! third of its life; retries backing off (the policy's interval, doubled) and stopping after
//! `max_retries` + 1 attempts; a request the issuer refuses failing at once for good; claims not
//! started by the deadline going back to `Pending`; two replicas on one database never duplicating
//! a job; the profile deciding the key type, the common name always a SAN; manual policies read by
//! the scan once, policy changes moving `renew_at`; a sub-CA from files, and a bad pair stopping
//! start-up; an issuer's renewal window (ARI) overriding the policy.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, certificate_body, cluster, TestApp};

/// Runs one tick of `name` and returns its result.
pub async fn run_loop(app: &TestApp, name: &str) -> Value {
    let response = app.admin(Method::POST, &format!("/api/v1/admin/scheduler/{name}/run")).send().await.unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{name}: {body}");
    body["result"].clone()
}

/// The versions of a certificate, newest first.
async fn versions(app: &TestApp, id: &str) -> Vec<Value> {
    let page: Value = app.get(&format!("/api/v1/certificates/{id}/versions?limit=100")).await.json().await.unwrap();
    page["data"].as_array().unwrap().clone()
}

/// `openssl verify` of the first certificate in `chain` against `ca`.
pub fn openssl_verifies(ca: &str, chain: &str) -> bool {
    openssl_verifies_at(ca, chain, None)
}

/// Like [`openssl_verifies`], at Unix time `at` (a short-lived certificate that has expired since).
pub fn openssl_verifies_at(ca: &str, chain: &str, at: Option<i64>) -> bool {
    let dir = crate::helpers::scratch_dir("verify");
    std::fs::write(dir.join("ca.pem"), ca).unwrap();
    std::fs::write(dir.join("chain.pem"), chain).unwrap();
    let status = std::process::Command::new("openssl")
        .args(["verify", "-x509_strict"])
        .args(at.map(|t| vec!["-attime".to_string(), t.to_string()]).unwrap_or_default())
        .arg("-CAfile")
        .arg(dir.join("ca.pem"))
        .arg(dir.join("chain.pem"))
        .output()
        .expect("running openssl")
        .status;
    let _ = std::fs::remove_dir_all(&dir);
    status.success()
}

async fn local_ca(app: &TestApp) -> String {
    let response = app.get("/api/v1/issuers/iss-local/ca").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-pem-file");
    response.text().await.unwrap()
}

async fn sql(app: &TestApp) -> tokio_postgres::Client {
    cluster().admin_client_for(&app.db_name).await
}

#[actix_web::test]
async fn a_new_certificate_is_issued_and_its_chain_verifies() {
    let app = TestApp::spawn_with(&["--keygen-mode", "server"]).await;
    let mut body = certificate_body("issued");
    body["target_ids"] = json!(["tgt-nginx-prod"]);
    let created: Value = app.post_certificate(&body).await.json().await.unwrap();
    let id = created["id"].as_str().unwrap();

    let scan = run_loop(&app, "renewal_scan").await;
    assert_eq!((scan["scanned"].as_i64(), scan["enqueued"].as_i64()), (Some(1), Some(1)), "{scan}");
    run_loop(&app, "job_processor").await;
    let deployments: i64 = sql(&app)
        .await
        .query_one("SELECT count(*) FROM jobs WHERE type = 'Deployment' AND target_id = 'tgt-nginx-prod'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(deployments, 1, "one deployment job per bound target");

    let versions = versions(&app, id).await;
    assert_eq!(versions.len(), 1);
    let chain = versions[0]["pem_chain"].as_str().unwrap();
    assert!(openssl_verifies(&local_ca(&app).await, chain), "the issued chain verifies against the issuer's CA");
    assert_eq!(versions[0]["key_algorithm"], "ECDSA");

    let certificate: Value = app.get(&format!("/api/v1/certificates/{id}")).await.json().await.unwrap();
    assert_eq!(certificate["status"], "Active");
    assert_eq!(certificate["expires_at"], versions[0]["not_after"]);

    let audit: Value = app.get(&format!("/api/v1/audit?resource_id={id}")).await.json().await.unwrap();
    let actions: Vec<&str> = audit["data"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["certificate.issue", "job.enqueue", "certificate.create"], "newest first");

    let again = run_loop(&app, "renewal_scan").await;
    assert_eq!(again["scanned"], 0, "not due again until its renew_at: {again}");
    let db = sql(&app).await;
    let sealed: Option<Vec<u8>> =
        db.query_one("SELECT private_key_sealed FROM certificate_versions", &[]).await.unwrap().get(0);
    let sealed = sealed.expect("the server-generated key is kept");
    assert!(!String::from_utf8_lossy(&sealed).contains("PRIVATE KEY"), "and kept sealed");
}

#[actix_web::test]
async fn the_local_ca_is_created_once_and_survives_restarts() {
    let app = TestApp::spawn().await;
    let first = local_ca(&app).await;
    assert!(first.starts_with("-----BEGIN CERTIFICATE-----"));
    assert_eq!(local_ca(&app).await, first);
    let restarted =
        TestApp::start(crate::helpers::settings_from(crate::helpers::base_args(&app.db_name)), app.db_name.clone())
            .await;
    assert_eq!(local_ca(&restarted).await, first, "a second server on the same database signs with the same CA");
    let db = sql(&app).await;
    let sealed: Vec<u8> = db.query_one("SELECT key_sealed FROM issuer_ca", &[]).await.unwrap().get(0);
    assert!(!String::from_utf8_lossy(&sealed).contains("PRIVATE KEY"), "the CA key is stored sealed");
    drop(restarted);
}

#[actix_web::test]
async fn unknown_and_unusable_issuers_are_problems() {
    let app = TestApp::spawn().await;
    assert_problem(app.get("/api/v1/issuers/iss-nope/ca").await, 404, "not-found").await;
    let unbuilt = json!({"name": "Google CAS", "type": "googlecas", "config": {}});
    let created = app.admin(Method::POST, "/api/v1/issuers").json(&unbuilt).send().await.unwrap();
    let id = created.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let problem = assert_problem(app.get(&format!("/api/v1/issuers/{id}/ca")).await, 409, "issuer-unusable").await;
    assert!(problem["detail"].as_str().unwrap().contains("cannot issue"), "{problem}");
    // An ACME CA publishes no chain of its own: it is known once a certificate came with one.
    let acme = json!({"name": "ACME", "type": "acme", "config": {"directory_url": "https://acme.example/dir"}});
    let created = app.admin(Method::POST, "/api/v1/issuers").json(&acme).send().await.unwrap();
    let id = created.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let problem = assert_problem(app.get(&format!("/api/v1/issuers/{id}/ca")).await, 409, "issuer-unusable").await;
    assert!(problem["detail"].as_str().unwrap().contains("once it has issued"), "{problem}");
    assert_problem(app.admin(Method::POST, "/api/v1/admin/scheduler/nope/run").send().await.unwrap(), 404, "not-found")
        .await;
    let forbidden = app.user(Method::POST, "/api/v1/admin/scheduler/renewal_scan/run").send().await.unwrap();
    assert_problem(forbidden, 403, "forbidden").await;
}

#[actix_web::test]
async fn agent_key_generation_leaves_the_job_awaiting_a_csr() {
    let app = TestApp::spawn().await;
    app.create_certificate("agent-made").await;
    run_loop(&app, "renewal_scan").await;
    // The scan wakes the dispatcher itself; the job processor's round joins or follows it.
    let round = run_loop(&app, "job_processor").await;
    assert_eq!(round["queue"]["awaiting_csr"], 1, "{round}");
    assert_eq!(round["completed"], 0, "{round}");
    let db = sql(&app).await;
    let status: String = db.query_one("SELECT status FROM jobs", &[]).await.unwrap().get(0);
    assert_eq!(status, "AwaitingCSR");
}

#[actix_web::test]
async fn short_lived_certificates_renew_by_themselves_on_schedule() {
    let app = TestApp::spawn_with(&[
        "--keygen-mode",
        "server",
        "--scheduler-enabled",
        "true",
        "--scheduler-renewal-check-interval",
        "500ms",
        "--scheduler-job-processor-interval",
        "500ms",
    ])
    .await;
    // Twelve-second certificates (below what the profile API accepts, so straight into the table).
    sql(&app)
        .await
        .batch_execute(
            "INSERT INTO certificate_profiles (id, name, max_ttl_seconds, allowed_ekus, allow_short_lived) \
             VALUES ('prof-12s', 'Twelve seconds', 12, '[\"serverAuth\"]', true)",
        )
        .await
        .unwrap();
    let mut body = certificate_body("blink");
    body["certificate_profile_id"] = json!("prof-12s");
    let created: Value = app.post_certificate(&body).await.json().await.unwrap();
    let id = created["id"].as_str().unwrap();

    let deadline = Instant::now() + Duration::from_secs(60);
    let versions = loop {
        let versions = versions(&app, id).await;
        if versions.len() >= 3 {
            break versions;
        }
        assert!(Instant::now() < deadline, "only {} versions after 60 s", versions.len());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let ca = local_ca(&app).await;
    for version in &versions {
        let issued = chrono::DateTime::parse_from_rfc3339(version["created_at"].as_str().unwrap()).unwrap();
        assert!(openssl_verifies_at(&ca, version["pem_chain"].as_str().unwrap(), Some(issued.timestamp() + 1)));
    }
    // Each renewal happened before the previous certificate expired, not long before.
    let time = |v: &Value, f: &str| chrono::DateTime::parse_from_rfc3339(v[f].as_str().unwrap()).unwrap();
    for pair in versions.windows(2) {
        let (newer, older) = (&pair[0], &pair[1]);
        let renewed = time(newer, "created_at");
        assert!(renewed < time(older, "not_after"), "renewed before expiry: {pair:?}");
        assert!(renewed > time(older, "created_at") + chrono::Duration::seconds(4), "not before a third of its life");
    }
}

#[actix_web::test]
async fn retries_back_off_and_then_stop() {
    let app = TestApp::spawn_with(&["--keygen-mode", "server"]).await;
    // A damaged stored CA fails every issuance as an internal error: retryable, every time.
    sql(&app)
        .await
        .batch_execute(
            "INSERT INTO issuer_ca (issuer_id, key_algorithm, cert_pem, key_sealed) VALUES ('iss-local', 'ecdsa-p256', '', '\\x00')",
        )
        .await
        .unwrap();
    let policy = json!({"id": "rp-fast", "name": "Fast retries", "max_retries": 2, "retry_interval_seconds": 1});
    assert_eq!(app.admin(Method::POST, "/api/v1/renewal-policies").json(&policy).send().await.unwrap().status(), 201);
    let mut body = certificate_body("flaky");
    body["renewal_policy_id"] = json!("rp-fast");
    let created: Value = app.post_certificate(&body).await.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    let db = sql(&app).await;
    let job = || async {
        let row =
            db.query_one("SELECT status, attempts, error_class, retry_at, completed_at FROM jobs", &[]).await.unwrap();
        let retry_at: Option<chrono::DateTime<chrono::Utc>> = row.get(3);
        let completed_at: Option<chrono::DateTime<chrono::Utc>> = row.get(4);
        let status: String = row.get(0);
        let attempts: i32 = row.get(1);
        let class: Option<String> = row.get(2);
        (status, attempts, class, retry_at.zip(completed_at).map(|(r, c)| (r - c).num_milliseconds()))
    };

    run_loop(&app, "renewal_scan").await;
    run_loop(&app, "job_processor").await;
    let (status, attempts, class, backoff) = job().await;
    assert_eq!((status.as_str(), attempts, class.as_deref()), ("Failed", 1, Some("internal")));
    assert!((900..1500).contains(&backoff.unwrap()), "first backoff is the policy's interval: {backoff:?}");
    // The retry time is moved rather than waited for: a loaded machine may take longer than the
    // one-second backoff to get from the write-back to the next tick.
    db.batch_execute("UPDATE jobs SET retry_at = now() + interval '1 minute'").await.unwrap();
    assert_eq!(run_loop(&app, "job_retry").await["retried"], 0, "not before its retry time");
    db.batch_execute("UPDATE jobs SET retry_at = now()").await.unwrap();
    assert_eq!(run_loop(&app, "job_retry").await["retried"], 1);
    run_loop(&app, "job_processor").await;
    let (_, attempts, _, backoff) = job().await;
    assert_eq!(attempts, 2);
    assert!((1900..2500).contains(&backoff.unwrap()), "the backoff doubles: {backoff:?}");

    db.batch_execute("UPDATE jobs SET retry_at = now()").await.unwrap();
    assert_eq!(run_loop(&app, "job_retry").await["retried"], 1);
    run_loop(&app, "job_processor").await;
    let (status, attempts, _, backoff) = job().await;
    assert_eq!((status.as_str(), attempts, backoff), ("Failed", 3, None), "max_retries + 1 attempts, then no more");
    let certificate: Value = app.get(&format!("/api/v1/certificates/{id}")).await.json().await.unwrap();
    assert_eq!(certificate["status"], "Failed");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(run_loop(&app, "job_retry").await["retried"], 0);
}

#[actix_web::test]
async fn a_request_the_issuer_refuses_fails_at_once_for_good() {
    let app = TestApp::spawn_with(&["--keygen-mode", "server"]).await;
    let disable = json!({"enabled": false});
    let response = app.admin(Method::PUT, "/api/v1/issuers/iss-local").json(&disable).send().await.unwrap();
    assert_eq!(response.status(), 200);
    app.create_certificate("refused").await;
    run_loop(&app, "renewal_scan").await;
    run_loop(&app, "job_processor").await;
    let row = sql(&app)
        .await
        .query_one("SELECT status, error_class, retry_at IS NULL, last_error FROM jobs", &[])
        .await
        .unwrap();
    let (status, class, final_, error): (String, String, bool, String) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!((status.as_str(), class.as_str(), final_), ("Failed", "validation", true));
    assert!(error.contains("disabled"), "{error}");
}

#[actix_web::test]
async fn work_not_started_by_the_deadline_goes_back_to_pending() {
    // One issuance at a time, each slow (RSA 4096 key generation), and a deadline that comes
    // while the first one runs: the other claimed jobs must go back, unstarted, at once.
    let app = TestApp::spawn_with(&[
        "--keygen-mode",
        "server",
        "--keygen-algorithm",
        "rsa-4096",
        "--renewal-concurrency",
        "1",
    ])
    .await;
    for i in 0..4 {
        app.create_certificate(&format!("slow-{i}")).await;
    }
    // Enqueued straight through the engine's statement: the scan loop would wake the dispatcher.
    let batch = app
        .db
        .run(certctl_actors::queries::renewal_scan::EnqueueDueRenewals {
            now: chrono::Utc::now(),
            after: None,
            batch: 100,
        })
        .await
        .unwrap();
    assert_eq!(batch.enqueued, 4);
    let deadline = Instant::now() + Duration::from_millis(50);
    let stats = app.engine.dispatcher().send(certctl_actors::renewal::dispatcher::Dispatch { deadline }).await.unwrap();
    // Usually one issuance starts before the deadline; on a loaded machine the claim itself can
    // outlast it, and then none does. Either way nothing starts after it.
    assert_eq!(stats.claimed, 4, "{stats:?}");
    assert!(stats.completed <= 1 && stats.completed + stats.released == 4, "{stats:?}");
    let rows = sql(&app)
        .await
        .query("SELECT status, attempts, count(*) FROM jobs GROUP BY 1, 2 ORDER BY 1", &[])
        .await
        .unwrap();
    let counts: Vec<(String, i32, i64)> = rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
    let mut expected = vec![("Pending".to_string(), 0, stats.released as i64)];
    if stats.completed == 1 {
        expected.insert(0, ("Completed".into(), 1, 1));
    }
    assert_eq!(counts, expected, "released without an attempt");
}

#[actix_web::test]
async fn two_replicas_on_one_database_never_duplicate_a_job() {
    let extra = ["--keygen-mode", "server", "--renewal-concurrency", "8"];
    let first = TestApp::spawn_with(&extra).await;
    let mut args = crate::helpers::base_args(&first.db_name);
    args.extend(extra.iter().map(|s| s.to_string()));
    let second = TestApp::start(crate::helpers::settings_from(args), first.db_name.clone()).await;
    let creations = (0..200).map(|i| {
        let app = if i % 2 == 0 { &first } else { &second };
        async move { app.create_certificate(&format!("twin-{i}")).await }
    });
    futures_util::future::join_all(creations).await;

    // The enqueue statement itself, from both replicas at once, several times over.
    let scans = (0..6).map(|i| {
        let app = if i % 2 == 0 { &first } else { &second };
        let query = certctl_actors::queries::renewal_scan::EnqueueDueRenewals {
            now: chrono::Utc::now(),
            after: None,
            batch: 500,
        };
        app.db.run(query)
    });
    let enqueued: i64 = futures_util::future::join_all(scans).await.into_iter().map(|b| b.unwrap().enqueued).sum();
    assert_eq!(enqueued, 200, "one job per certificate, whichever replica enqueued it");

    // Both dispatchers drain the queue at once.
    let deadline = Instant::now() + Duration::from_secs(30);
    let send = |app: &TestApp| app.engine.dispatcher().send(certctl_actors::renewal::dispatcher::Dispatch { deadline });
    let (a, b) = futures_util::future::join(send(&first), send(&second)).await;
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.completed + b.completed, 200, "{a:?} {b:?}");

    let db = sql(&first).await;
    let one = |q: &'static str| {
        let db = &db;
        async move { db.query_one(q, &[]).await.unwrap().get::<_, i64>(0) }
    };
    assert_eq!(one("SELECT count(*) FROM jobs").await, 200);
    assert_eq!(one("SELECT count(*) FROM jobs WHERE status = 'Completed'").await, 200);
    assert_eq!(one("SELECT count(DISTINCT certificate_id) FROM certificate_versions").await, 200);
    assert_eq!(one("SELECT count(*) FROM certificate_versions").await, 200, "one version per certificate");

    // One leader per loop: the replica that ticks first keeps the scan, the other is told so.
    run_loop(&first, "renewal_scan").await;
    let refused = second.admin(Method::POST, "/api/v1/admin/scheduler/renewal_scan/run").send().await.unwrap();
    let problem = assert_problem(refused, 409, "not-leader").await;
    assert!(problem["detail"].as_str().unwrap().contains("another replica"), "{problem}");
    // When the leader's session dies, the other replica takes the loop over on its next tick.
    // Only this test's database (other tests run beside it on the cluster), and waiting until the
    // session has really ended, not just until it was told to.
    db.batch_execute(
        "SELECT pg_terminate_backend(l.pid, 10000) FROM pg_locks l JOIN pg_database d ON d.oid = l.database \
         WHERE l.locktype = 'advisory' AND d.datname = current_database()",
    )
    .await
    .unwrap();
    run_loop(&second, "renewal_scan").await;
}

#[actix_web::test]
async fn the_profile_decides_the_key_type_and_the_common_name_is_always_a_san() {
    let app = TestApp::spawn_with(&["--keygen-mode", "server"]).await;
    let mut body = certificate_body("strong");
    body["certificate_profile_id"] = json!("prof-high-security");
    body["sans"] = json!(["alt.strong.example.com"]);
    let created: Value = app.post_certificate(&body).await.json().await.unwrap();
    let id = created["id"].as_str().unwrap();
    run_loop(&app, "renewal_scan").await;
    run_loop(&app, "job_processor").await;
    let versions = versions(&app, id).await;
    assert_eq!((versions[0]["key_algorithm"].as_str(), versions[0]["key_size"].as_i64()), (Some("ECDSA"), Some(384)));
    let dir = crate::helpers::scratch_dir("text");
    std::fs::write(dir.join("leaf.pem"), versions[0]["pem_chain"].as_str().unwrap()).unwrap();
    let text = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
        .arg(dir.join("leaf.pem"))
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("DNS:strong.example.com") && text.contains("DNS:alt.strong.example.com"), "{text}");
}

#[actix_web::test]
async fn manual_policies_are_read_once_and_policy_changes_move_renew_at() {
    let app = TestApp::spawn().await;
    let mut body = certificate_body("by-hand");
    body["renewal_policy_id"] = json!("rp-manual");
    let id = app.post_certificate(&body).await.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let first = run_loop(&app, "renewal_scan").await;
    assert_eq!((first["scanned"].as_i64(), first["enqueued"].as_i64()), (Some(1), Some(0)), "{first}");
    assert_eq!(run_loop(&app, "renewal_scan").await["scanned"], 0, "parked: not read again");

    let db = sql(&app).await;
    assert_eq!(renew_at(&db, &id).await, None);
    let patch = json!({"auto_renew": true, "renew_at_fraction": 0.5});
    let updated = app.admin(Method::PUT, "/api/v1/renewal-policies/rp-manual").json(&patch).send().await.unwrap();
    assert_eq!(updated.json::<Value>().await.unwrap()["renew_at_fraction"], 0.5);
    assert!(renew_at(&db, &id).await.is_some(), "an automatic policy makes its certificates due again");
    assert_eq!(run_loop(&app, "renewal_scan").await["enqueued"], 1);

    // Moving a certificate to a manual policy parks it as well.
    let other = app.create_certificate("moved").await["id"].as_str().unwrap().to_string();
    assert!(renew_at(&db, &other).await.is_some());
    let moved = app
        .admin(Method::PUT, &format!("/api/v1/certificates/{other}"))
        .json(&json!({"renewal_policy_id": "rp-urgent"}))
        .send()
        .await
        .unwrap();
    assert_eq!(moved.status(), 200);
    db.batch_execute("UPDATE renewal_policies SET auto_renew = false WHERE id = 'rp-urgent'").await.unwrap();
    let moved = app
        .admin(Method::PUT, &format!("/api/v1/certificates/{other}"))
        .json(&json!({"renewal_policy_id": "rp-urgent"}))
        .send()
        .await
        .unwrap();
    assert_eq!(moved.status(), 200);
    assert_eq!(renew_at(&db, &other).await, None, "a certificate moved to a manual policy is parked");

    // An issued certificate's renew_at follows its policy's window and fraction.
    db.batch_execute(&format!(
        "UPDATE managed_certificates SET expires_at = now() + interval '90 days', last_renewal_at = now() WHERE id = '{id}'"
    ))
    .await
    .unwrap();
    let patch = json!({"renewal_window_days": 10});
    app.admin(Method::PUT, "/api/v1/renewal-policies/rp-manual").json(&patch).send().await.unwrap();
    let due = renew_at(&db, &id).await.unwrap();
    let days = (due - chrono::Utc::now()).num_hours() as f64 / 24.0;
    assert!((44.0..46.0).contains(&days), "half of 90 days comes before 10 days before expiry: {days}");
}

async fn renew_at(db: &tokio_postgres::Client, id: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    db.query_one("SELECT renew_at FROM managed_certificates WHERE id = $1", &[&id]).await.unwrap().get(0)
}

#[actix_web::test]
async fn a_sub_ca_from_files_signs_and_a_bad_pair_stops_start_up() {
    use certctl_actors::crypto::key_algorithm::KeyAlgorithm;
    use certctl_actors::crypto::local_ca::LocalCa;
    let ca = LocalCa::generate("operator CA", KeyAlgorithm::EcdsaP384).unwrap();
    let dir = crate::helpers::scratch_dir("subca");
    let (cert_path, key_path) = (dir.join("ca.pem"), dir.join("ca.key"));
    std::fs::write(&cert_path, ca.cert_pem()).unwrap();
    std::fs::write(&key_path, ca.key_pem()).unwrap();
    let (cert_arg, key_arg) = (cert_path.display().to_string(), key_path.display().to_string());

    let app =
        TestApp::spawn_with(&["--keygen-mode", "server", "--ca-cert-path", &cert_arg, "--ca-key-path", &key_arg]).await;
    assert_eq!(local_ca(&app).await, ca.cert_pem(), "the issuer serves the operator's CA");
    let id = app.create_certificate("from-files").await["id"].as_str().unwrap().to_string();
    run_loop(&app, "renewal_scan").await;
    run_loop(&app, "job_processor").await;
    let chain = versions(&app, &id).await[0]["pem_chain"].as_str().unwrap().to_string();
    assert!(openssl_verifies(ca.cert_pem(), &chain), "leaves chain to the operator's CA");

    let other = LocalCa::generate("someone else", KeyAlgorithm::EcdsaP256).unwrap();
    std::fs::write(&key_path, other.key_pem()).unwrap();
    let mut args = crate::helpers::base_args(&app.db_name);
    args.extend(["--ca-cert-path".into(), cert_arg, "--ca-key-path".into(), key_arg]);
    let error = certctl::startup::Application::build(crate::helpers::settings_from(args)).await.err().expect("refused");
    let message = format!("{error:#}");
    assert!(message.contains("CERTCTL_CA_CERT_PATH") && message.contains("does not belong"), "{message}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[actix_web::test]
async fn an_issuers_renewal_window_overrides_the_policy() {
    use certctl_actors::queries::job_claims::ClaimRenewalJobs;
    use certctl_actors::queries::job_writebacks::{CompleteRenewals, CompletedRenewal};
    let app = TestApp::spawn().await;
    let id = app.create_certificate("ari").await["id"].as_str().unwrap().to_string();
    let now = chrono::Utc::now();
    let batch = app
        .db
        .run(certctl_actors::queries::renewal_scan::EnqueueDueRenewals { now, after: None, batch: 10 })
        .await
        .unwrap();
    assert_eq!(batch.enqueued, 1);
    let claimed =
        app.db.run(ClaimRenewalJobs { limit: 10, lease: Duration::from_secs(60), server_keygen: true }).await.unwrap();
    let job = &claimed[0];
    let (start, end) = (now + chrono::Duration::days(40), now + chrono::Duration::days(41));
    let result = CompletedRenewal {
        job_id: job.job_id.clone(),
        attempts: job.attempts,
        certificate_id: id.clone(),
        issuer_id: "iss-local".into(),
        version_id: "cv-ari".into(),
        serial_number: "0a".into(),
        not_before: now,
        not_after: now + chrono::Duration::days(90),
        fingerprint_sha256: "ab".repeat(32),
        pem_chain: "pem".into(),
        key_algorithm: "ECDSA".into(),
        key_size: 256,
        private_key_sealed: None,
        ari_window_start: Some(start),
        ari_window_end: Some(end),
        csr_pem: None,
    };
    let written = app.db.run(CompleteRenewals { items: vec![result] }).await.unwrap();
    assert_eq!(written.written, 1);
    let due = renew_at(&sql(&app).await, &id).await.unwrap();
    assert!(due >= start && due <= end, "renew_at {due} inside the issuer's window {start}..{end}");
}
