//! Jobs and certificate operations over HTTP: renew now (202 with `Location`, 409 for a second one,
//! an issued certificate renewed on request), the job list with filters in keyset and offset pages,
//! cancel and retry with their 409s and audit rows (a retry gives a fresh allowance of attempts),
//! revoke (the revocation row, the certificate's jobs ended, bad and malformed reasons), PEM export,
//! the bulk operations (bulk renew with a dry run, bulk revoke) over more than 10,000 matches, and
//! archiving or revoking that ends renewals for good.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, cluster, TestApp};
use crate::renewal::{openssl_verifies, run_loop};

async fn post(app: &TestApp, path: &str, body: Option<Value>) -> reqwest::Response {
    let request = app.admin(Method::POST, path);
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    request.send().await.unwrap()
}

async fn issued(app: &TestApp, name: &str) -> String {
    let id = app.create_certificate(name).await["id"].as_str().unwrap().to_string();
    assert_eq!(post(app, &format!("/api/v1/certificates/{id}/renew"), None).await.status(), 202);
    run_loop(app, "job_processor").await;
    id
}

#[actix_web::test]
async fn renewing_now_enqueues_one_job_and_refuses_a_second() {
    // Agent key generation: the job stays active (AwaitingCSR), so the second request must be refused.
    let app = TestApp::spawn().await;
    let id = app.create_certificate("now").await["id"].as_str().unwrap().to_string();
    let response = post(&app, &format!("/api/v1/certificates/{id}/renew"), None).await;
    assert_eq!(response.status(), 202);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    let job: Value = response.json().await.unwrap();
    assert_eq!((job["type"].as_str(), job["status"].as_str()), (Some("Issuance"), Some("Pending")), "{job}");
    assert_eq!(location, format!("/api/v1/jobs/{}", job["id"].as_str().unwrap()));

    let again =
        assert_problem(post(&app, &format!("/api/v1/certificates/{id}/renew"), None).await, 409, "renewal-active")
            .await;
    assert!(again["detail"].as_str().unwrap().contains(job["id"].as_str().unwrap()), "{again}");
    assert_problem(post(&app, "/api/v1/certificates/mc-nope/renew", None).await, 404, "not-found").await;
    assert_problem(app.get("/api/v1/jobs/job-nope").await, 404, "not-found").await;
}

#[actix_web::test]
async fn an_issued_certificate_is_renewed_on_request() {
    let app = TestApp::spawn_with(&["--keygen-mode", "server"]).await;
    let id = issued(&app, "again").await;
    let jobs: Value = app.get(&format!("/api/v1/jobs?certificate_id={id}")).await.json().await.unwrap();
    assert_eq!(jobs["data"][0]["status"], "Completed", "{jobs}");
    let renewal: Value = post(&app, &format!("/api/v1/certificates/{id}/renew"), None).await.json().await.unwrap();
    assert_eq!(renewal["type"], "Renewal", "an issued certificate is renewed: {renewal}");
    run_loop(&app, "job_processor").await;
    let versions: Value = app.get(&format!("/api/v1/certificates/{id}/versions")).await.json().await.unwrap();
    assert_eq!(versions["data"].as_array().unwrap().len(), 2);
}

#[actix_web::test]
async fn jobs_list_with_filters_in_keyset_pages() {
    let app = TestApp::spawn().await;
    for i in 0..5 {
        app.create_certificate(&format!("listed-{i}")).await;
    }
    let bulk = post(&app, "/api/v1/certificates/bulk-renew", Some(json!({"owner_id": "o-alice"}))).await;
    assert_eq!(bulk.json::<Value>().await.unwrap()["total_enqueued"], 5);

    let mut seen = Vec::new();
    let mut path = "/api/v1/jobs?type=Issuance&limit=2".to_string();
    loop {
        let page: Value = app.get(&path).await.json().await.unwrap();
        for job in page["data"].as_array().unwrap() {
            seen.push(job["id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/jobs?type=Issuance&limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);
    let total: Value = app.get("/api/v1/jobs?page=1&per_page=2").await.json().await.unwrap();
    assert_eq!(total["total"], 5);
    let none: Value = app.get("/api/v1/jobs?status=Completed").await.json().await.unwrap();
    assert_eq!(none["data"], json!([]));
    assert_problem(app.get("/api/v1/jobs?status=Done").await, 400, "invalid-query").await;
    assert_problem(app.get("/api/v1/jobs?cursor=garbage").await, 400, "invalid-query").await;
}

#[actix_web::test]
async fn cancel_and_retry_follow_the_job_states() {
    let app = TestApp::spawn().await;
    let id = app.create_certificate("stoppable").await["id"].as_str().unwrap().to_string();
    let job: Value = post(&app, &format!("/api/v1/certificates/{id}/renew"), None).await.json().await.unwrap();
    let job_id = job["id"].as_str().unwrap();

    let cancelled: Value = post(&app, &format!("/api/v1/jobs/{job_id}/cancel"), None).await.json().await.unwrap();
    assert_eq!(cancelled["status"], "Cancelled");
    let certificate: Value = app.get(&format!("/api/v1/certificates/{id}")).await.json().await.unwrap();
    assert_eq!(certificate["status"], "Pending", "never issued, so back to Pending");
    assert_problem(post(&app, &format!("/api/v1/jobs/{job_id}/cancel"), None).await, 409, "wrong-state").await;

    let retried: Value = post(&app, &format!("/api/v1/jobs/{job_id}/retry"), None).await.json().await.unwrap();
    assert_eq!(retried["status"], "Pending", "{retried}");
    let allowance = retried["max_attempts"].as_i64().unwrap() - retried["attempts"].as_i64().unwrap();
    assert_eq!(allowance, 4, "a fresh set of attempts from the policy (3 retries): {retried}");
    assert_problem(post(&app, &format!("/api/v1/jobs/{job_id}/retry"), None).await, 409, "wrong-state").await;

    let audit: Value = app.get(&format!("/api/v1/audit?resource_id={job_id}")).await.json().await.unwrap();
    let actions: Vec<&str> = audit["data"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["job.retry", "job.cancel"]);
}

#[actix_web::test]
async fn revoking_records_the_serial_and_ends_the_certificates_jobs() {
    let app = TestApp::spawn_with(&["--keygen-mode", "server"]).await;
    let id = issued(&app, "compromised").await;
    let body = json!({"reason": "keyCompromise"});
    let response = post(&app, &format!("/api/v1/certificates/{id}/revoke"), Some(body)).await;
    assert_eq!(response.status(), 200);
    let revoked: Value = response.json().await.unwrap();
    assert_eq!(revoked["reason"], "keyCompromise");
    let certificate: Value = app.get(&format!("/api/v1/certificates/{id}")).await.json().await.unwrap();
    assert_eq!(
        (certificate["status"].as_str(), certificate["revocation_reason"].as_str()),
        (Some("Revoked"), Some("keyCompromise"))
    );
    let db = cluster().admin_client_for(&app.db_name).await;
    let row = db.query_one("SELECT serial_number, issuer_notified FROM certificate_revocations", &[]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), revoked["serial_number"].as_str().unwrap());
    assert!(row.get::<_, bool>(1), "a local issuer's revocation record is its own state");

    assert_problem(post(&app, &format!("/api/v1/certificates/{id}/revoke"), None).await, 409, "wrong-state").await;
    assert_problem(post(&app, &format!("/api/v1/certificates/{id}/renew"), None).await, 409, "wrong-state").await;
    let fresh = app.create_certificate("fresh").await["id"].as_str().unwrap().to_string();
    assert_problem(post(&app, &format!("/api/v1/certificates/{fresh}/revoke"), None).await, 409, "wrong-state").await;
    let bad = post(&app, &format!("/api/v1/certificates/{fresh}/revoke"), Some(json!({"reason": "because"}))).await;
    assert_problem(bad, 422, "validation-failed").await;
    let malformed = app
        .admin(Method::POST, &format!("/api/v1/certificates/{fresh}/revoke"))
        .header("content-type", "application/json")
        .body("{reason")
        .send()
        .await
        .unwrap();
    assert_problem(malformed, 400, "malformed-json").await;
}

#[actix_web::test]
async fn the_current_chain_exports_as_pem() {
    let app = TestApp::spawn_with(&["--keygen-mode", "server"]).await;
    let id = issued(&app, "exported").await;
    let response = app.get(&format!("/api/v1/certificates/{id}/export/pem")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-pem-file");
    assert!(response.headers()["content-disposition"].to_str().unwrap().contains("exported.pem"));
    let chain = response.text().await.unwrap();
    let ca = app.get("/api/v1/issuers/iss-local/ca").await.text().await.unwrap();
    assert!(openssl_verifies(&ca, &chain));
    let fresh = app.create_certificate("unissued").await["id"].as_str().unwrap().to_string();
    assert_problem(app.get(&format!("/api/v1/certificates/{fresh}/export/pem")).await, 409, "wrong-state").await;
}

#[actix_web::test]
async fn bulk_renew_and_revoke_handle_more_than_ten_thousand_matches() {
    let app = TestApp::spawn().await;
    let db = cluster().admin_client_for(&app.db_name).await;
    db.batch_execute(
        "INSERT INTO managed_certificates (id, name, common_name, sans, environment, owner_id, team_id, issuer_id, \
                renewal_policy_id, status, expires_at, renew_at) \
         SELECT 'mc-bulk-' || g, 'bulk-' || g, 'bulk-' || g || '.example.com', ARRAY['bulk-' || g || '.example.com'], \
                'production', 'o-bob', 't-payments', 'iss-local', 'rp-standard', 'Active', now() + interval '60 days', \
                now() + interval '30 days' \
           FROM generate_series(1, 12000) g",
    )
    .await
    .unwrap();

    let dry = post(&app, "/api/v1/certificates/bulk-renew", Some(json!({"owner_id": "o-bob", "dry_run": true}))).await;
    let dry: Value = dry.json().await.unwrap();
    assert_eq!((dry["total_matched"].as_i64(), dry["total_enqueued"].as_i64()), (Some(12000), Some(12000)), "{dry}");
    let jobs: i64 = db.query_one("SELECT count(*) FROM jobs", &[]).await.unwrap().get(0);
    assert_eq!(jobs, 0, "a dry run writes nothing");

    let done: Value =
        post(&app, "/api/v1/certificates/bulk-renew", Some(json!({"owner_id": "o-bob"}))).await.json().await.unwrap();
    assert_eq!((done["total_enqueued"].as_i64(), done["total_skipped"].as_i64()), (Some(12000), Some(0)), "{done}");
    let again: Value = post(&app, "/api/v1/certificates/bulk-renew", Some(json!({"team_id": "t-payments"})))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!((again["total_enqueued"].as_i64(), again["total_skipped"].as_i64()), (Some(0), Some(12000)), "{again}");

    // Give every certificate an issued version, then revoke them all by team.
    db.batch_execute(
        "INSERT INTO certificate_versions (id, certificate_id, serial_number, not_before, not_after, \
                fingerprint_sha256, pem_chain, issuer_id) \
         SELECT 'cv-' || id, id, md5(id), now(), now() + interval '60 days', md5(id) || md5(name), 'pem', 'iss-local' \
           FROM managed_certificates WHERE owner_id = 'o-bob'",
    )
    .await
    .unwrap();
    let revoked: Value = post(
        &app,
        "/api/v1/certificates/bulk-revoke",
        Some(json!({"team_id": "t-payments", "reason": "cessationOfOperation"})),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(revoked["total_revoked"], 12000, "{revoked}");
    let open: i64 = db
        .query_one("SELECT count(*) FROM jobs WHERE status NOT IN ('Cancelled', 'Completed', 'Failed')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(open, 0, "revoked certificates keep no active renewal");

    assert_problem(post(&app, "/api/v1/certificates/bulk-renew", Some(json!({}))).await, 422, "validation-failed")
        .await;
    let forbidden = app
        .user(Method::POST, "/api/v1/certificates/bulk-renew")
        .json(&json!({"owner_id": "o-bob"}))
        .send()
        .await
        .unwrap();
    assert_problem(forbidden, 403, "forbidden").await;
}

#[actix_web::test]
async fn archiving_or_revoking_ends_renewals_for_good() {
    let app = TestApp::spawn().await;
    let id = app.create_certificate("retired").await["id"].as_str().unwrap().to_string();
    let job: Value = post(&app, &format!("/api/v1/certificates/{id}/renew"), None).await.json().await.unwrap();
    let job_id = job["id"].as_str().unwrap();
    let archived = app.admin(Method::DELETE, &format!("/api/v1/certificates/{id}")).send().await.unwrap();
    assert!(archived.status().is_success());
    let job: Value = app.get(&format!("/api/v1/jobs/{job_id}")).await.json().await.unwrap();
    assert_eq!(job["status"], "Cancelled", "archiving cancels the active renewal: {job}");
    let refused =
        assert_problem(post(&app, &format!("/api/v1/jobs/{job_id}/retry"), None).await, 409, "wrong-state").await;
    assert!(refused["detail"].as_str().unwrap().contains("Archived"), "{refused}");
}
