//! Agents over HTTP, without an agent binary: the CSR flow from an AwaitingCSR job to a chain for
//! the agent's own key and a reported deployment, and the lease of a deployment.

use reqwest::Method;
use serde_json::{json, Value};

use crate::agent_support::{as_agent, insert_deployment, job, register_agent, sha256_hex, sql};
use crate::helpers::{assert_problem, certificate_body, TestApp};
use crate::renewal::{openssl_verifies, run_loop};

// ---------------------------------------------------------------------------------------------
// The CSR flow: AwaitingCSR → CSR → issued chain → deployment reported
// ---------------------------------------------------------------------------------------------

/// An agent with a file target, and a certificate bound to it whose issuance waits for a CSR.
struct CsrSetup {
    agent: String,
    key: String,
    target: String,
    certificate: String,
    common_name: String,
    sans: Vec<String>,
}

/// Creates a `file` target of `agent_id`.
async fn file_target(app: &TestApp, agent_id: &str) -> String {
    let body = json!({
        "name": format!("files of {agent_id}"), "type": "file", "agent_id": agent_id,
        "config": {"directory": "/tmp/x"}
    });
    let response = app.admin(Method::POST, "/api/v1/targets").json(&body).send().await.unwrap();
    let status = response.status();
    let target: Value = response.json().await.unwrap();
    assert_eq!(status, 201, "{target}");
    assert_eq!(target["agent_id"], agent_id);
    target["id"].as_str().unwrap().to_string()
}

async fn awaiting_csr(app: &TestApp, name: &str) -> CsrSetup {
    let (agent, key) = register_agent(app, &format!("{name}-agent")).await;
    let target = file_target(app, &agent).await;
    let mut body = certificate_body(name);
    body["target_ids"] = json!([target]);
    let response = app.post_certificate(&body).await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    let scan = run_loop(app, "renewal_scan").await;
    assert_eq!(scan["enqueued"], 1, "{scan}");
    run_loop(app, "job_processor").await;
    CsrSetup {
        agent,
        key,
        target,
        certificate: created["id"].as_str().unwrap().to_string(),
        common_name: created["common_name"].as_str().unwrap().to_string(),
        sans: created["sans"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect(),
    }
}

/// The agent's work poll, as `{count, jobs}`.
async fn poll_work(app: &TestApp, agent_id: &str, key: &str) -> Value {
    let response = as_agent(app, key, Method::GET, &format!("/api/v1/agents/{agent_id}/work")).send().await.unwrap();
    let status = response.status();
    let work: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{work}");
    work
}

/// A PEM CSR for `names` (the first is also the subject's common name), signed by `key`.
fn csr_for(names: &[&str], key: &rcgen::KeyPair) -> String {
    let mut params = rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    // rcgen's default subject is "CN=rcgen self signed cert", not a name of the certificate.
    let mut subject = rcgen::DistinguishedName::new();
    subject.push(rcgen::DnType::CommonName, names[0]);
    params.distinguished_name = subject;
    params.serialize_request(key).unwrap().pem().unwrap()
}

fn p256_key() -> rcgen::KeyPair {
    rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap()
}

async fn submit_csr(app: &TestApp, setup: &CsrSetup, job_id: &str, csr_pem: &str) -> reqwest::Response {
    let body = json!({"certificate_id": setup.certificate, "job_id": job_id, "csr_pem": csr_pem});
    as_agent(app, &setup.key, Method::POST, &format!("/api/v1/agents/{}/csr", setup.agent))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// The setup taken through the agent's CSR (for a fresh P-256 key) to an issued version.
async fn issued_through_csr(app: &TestApp, setup: &CsrSetup) {
    let work = poll_work(app, &setup.agent, &setup.key).await;
    let job_id = work["jobs"][0]["id"].as_str().unwrap().to_string();
    let key = p256_key();
    let names: Vec<&str> = setup.sans.iter().map(String::as_str).collect();
    let response = submit_csr(app, setup, &job_id, &csr_for(&names, &key)).await;
    assert_eq!(response.status(), 202);
    run_loop(app, "job_processor").await;
    assert_eq!(job(app, &job_id).await["status"], "Completed");
}

/// The newest issued version as the agent fetches it.
async fn agent_certificate(app: &TestApp, setup: &CsrSetup) -> Value {
    let path = format!("/api/v1/agents/{}/certificates/{}", setup.agent, setup.certificate);
    let response = as_agent(app, &setup.key, Method::GET, &path).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    response.json().await.unwrap()
}

#[actix_web::test]
async fn an_agent_is_offered_the_csr_job_of_a_certificate_on_its_target() {
    let app = TestApp::spawn().await;
    let setup = awaiting_csr(&app, "csr-offer").await;
    let jobs: Value =
        app.get(&format!("/api/v1/jobs?certificate_id={}", setup.certificate)).await.json().await.unwrap();
    assert_eq!(jobs["data"].as_array().unwrap().len(), 1, "{jobs}");
    let job_id = jobs["data"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(jobs["data"][0]["status"], "AwaitingCSR", "agent key generation waits for a CSR: {jobs}");

    let (stranger, stranger_key) = register_agent(&app, "no-targets").await;
    assert_eq!(poll_work(&app, &stranger, &stranger_key).await["count"], 0, "only agents of a bound target");

    let work = poll_work(&app, &setup.agent, &setup.key).await;
    assert_eq!(work["count"], 1, "{work}");
    let item = &work["jobs"][0];
    assert_eq!(
        (item["id"].as_str(), item["type"].as_str(), item["status"].as_str(), item["certificate_id"].as_str()),
        (Some(job_id.as_str()), Some("Issuance"), Some("AwaitingCSR"), Some(setup.certificate.as_str())),
        "{item}"
    );
    assert_eq!(item["key_algorithm"], "ecdsa-p256", "{item}");
    assert_eq!(item["common_name"], setup.common_name.as_str());
    assert!(item["lease_expires_at"].is_string(), "the CSR job is leased to the agent: {item}");
    assert_eq!(job(&app, &job_id).await["agent_id"], setup.agent.as_str());
}

#[actix_web::test]
async fn csrs_with_foreign_names_or_garbage_are_refused() {
    let app = TestApp::spawn().await;
    let setup = awaiting_csr(&app, "csr-refused").await;
    let work = poll_work(&app, &setup.agent, &setup.key).await;
    let job_id = work["jobs"][0]["id"].as_str().unwrap().to_string();

    let key = p256_key();
    let extra = csr_for(&[setup.common_name.as_str(), "evil.example.com"], &key);
    let problem = assert_problem(submit_csr(&app, &setup, &job_id, &extra).await, 422, "validation-failed").await;
    assert_eq!(problem["errors"][0]["field"], "csr_pem", "{problem}");
    assert!(problem["errors"][0]["message"].as_str().unwrap().contains("evil.example.com"), "{problem}");

    let garbage = submit_csr(&app, &setup, &job_id, "not a certificate request").await;
    let problem = assert_problem(garbage, 422, "validation-failed").await;
    assert_eq!(problem["errors"][0]["field"], "csr_pem", "{problem}");

    // An agent without a target of the certificate has no job to answer.
    let (other, other_key) = register_agent(&app, "unbound").await;
    let names: Vec<&str> = setup.sans.iter().map(String::as_str).collect();
    let body = json!({"certificate_id": setup.certificate, "csr_pem": csr_for(&names, &key)});
    let path = format!("/api/v1/agents/{other}/csr");
    let response = as_agent(&app, &other_key, Method::POST, &path).json(&body).send().await.unwrap();
    let problem = assert_problem(response, 422, "validation-failed").await;
    assert_eq!(problem["errors"][0]["field"], "certificate_id", "{problem}");

    assert_eq!(job(&app, &job_id).await["status"], "AwaitingCSR", "still waiting for a good CSR");
}

#[actix_web::test]
async fn a_csr_is_issued_for_the_agents_own_key() {
    let app = TestApp::spawn().await;
    let setup = awaiting_csr(&app, "csr-issued").await;
    let work = poll_work(&app, &setup.agent, &setup.key).await;
    let job_id = work["jobs"][0]["id"].as_str().unwrap().to_string();
    let key = p256_key();
    let names: Vec<&str> = setup.sans.iter().map(String::as_str).collect();
    let csr = csr_for(&names, &key);

    let response = submit_csr(&app, &setup, &job_id, &csr).await;
    assert_eq!(response.status(), 202);
    let accepted: Value = response.json().await.unwrap();
    assert_eq!((accepted["id"].as_str(), accepted["status"].as_str()), (Some(job_id.as_str()), Some("Pending")));
    run_loop(&app, "job_processor").await;
    assert_eq!(job(&app, &job_id).await["status"], "Completed");

    let issued = agent_certificate(&app, &setup).await;
    let chain = issued["pem_chain"].as_str().unwrap();
    let (_, leaf) = x509_parser::pem::parse_x509_pem(chain.as_bytes()).expect("a PEM chain");
    let certificate = leaf.parse_x509().expect("the leaf parses");
    let leaf_key: &[u8] = &certificate.public_key().subject_public_key.data[..];
    assert_eq!(leaf_key, key.public_key_raw(), "the leaf certifies the CSR's key");
    assert_eq!(issued["fingerprint_sha256"].as_str().unwrap(), sha256_hex(&leaf.contents));
    let ca = app.get("/api/v1/issuers/iss-local/ca").await.text().await.unwrap();
    assert!(openssl_verifies(&ca, chain), "the chain verifies against the issuer's CA");

    let versions: Value =
        app.get(&format!("/api/v1/certificates/{}/versions", setup.certificate)).await.json().await.unwrap();
    assert_eq!(issued["version_id"], versions["data"][0]["id"], "the newest version: {versions}");
    let row = sql(&app)
        .await
        .query_one("SELECT csr_pem, private_key_sealed IS NULL FROM certificate_versions", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), csr);
    assert!(row.get::<_, bool>(1), "the server never held the private key");
}

#[actix_web::test]
async fn an_agent_installs_the_new_version_and_reports_it_with_its_fingerprint() {
    let app = TestApp::spawn().await;
    let setup = awaiting_csr(&app, "csr-deployed").await;
    issued_through_csr(&app, &setup).await;
    let issued = agent_certificate(&app, &setup).await;
    let version = issued["version_id"].as_str().unwrap().to_string();
    let fingerprint = issued["fingerprint_sha256"].as_str().unwrap().to_string();

    let deployments: Value =
        app.get(&format!("/api/v1/jobs?type=Deployment&agent_id={}", setup.agent)).await.json().await.unwrap();
    assert_eq!(deployments["data"].as_array().unwrap().len(), 1, "one deployment per bound target: {deployments}");
    let deployment = &deployments["data"][0];
    assert_eq!(deployment["status"], "Pending", "{deployment}");
    assert_eq!(deployment["certificate_version_id"], version.as_str(), "the version it installs: {deployment}");
    assert_eq!(deployment["target_id"], setup.target.as_str(), "{deployment}");
    let job_id = deployment["id"].as_str().unwrap().to_string();

    let work = poll_work(&app, &setup.agent, &setup.key).await;
    assert_eq!(work["count"], 1, "{work}");
    let item = &work["jobs"][0];
    assert_eq!(
        (item["id"].as_str(), item["type"].as_str(), item["status"].as_str()),
        (Some(job_id.as_str()), Some("Deployment"), Some("Running")),
        "{item}"
    );
    assert_eq!(item["certificate_version_id"], version.as_str());
    assert_eq!((item["target_type"].as_str(), &item["target_config"]), (Some("file"), &json!({"directory": "/tmp/x"})));

    let status_path = format!("/api/v1/agents/{}/jobs/{job_id}/status", setup.agent);
    let send_report = |body: Value| as_agent(&app, &setup.key, Method::POST, &status_path).json(&body).send();
    let wrong = send_report(json!({"status": "Completed", "fingerprint": "00".repeat(32)})).await.unwrap();
    let problem = assert_problem(wrong, 422, "validation-failed").await;
    assert_eq!(problem["errors"][0]["field"], "fingerprint", "{problem}");
    let unknown = send_report(json!({"status": "Done"})).await.unwrap();
    let problem = assert_problem(unknown, 422, "validation-failed").await;
    assert_eq!(problem["errors"][0]["field"], "status", "{problem}");
    assert_eq!(job(&app, &job_id).await["status"], "Running", "refused reports change nothing");

    let done = send_report(json!({"status": "Completed", "fingerprint": fingerprint})).await.unwrap();
    assert_eq!(done.status(), 200);
    let done: Value = done.json().await.unwrap();
    assert_eq!(done["status"], "Completed", "{done}");
    assert_eq!(done["verification_fingerprint"], fingerprint.as_str(), "{done}");
    assert_eq!(job(&app, &job_id).await["status"], "Completed");
    let deployed: Option<chrono::DateTime<chrono::Utc>> = sql(&app)
        .await
        .query_one("SELECT last_deployment_at FROM managed_certificates WHERE id = $1", &[&setup.certificate])
        .await
        .unwrap()
        .get(0);
    assert!(deployed.is_some(), "the certificate records its deployment");

    let again = send_report(json!({"status": "Completed", "fingerprint": fingerprint})).await.unwrap();
    assert_problem(again, 409, "wrong-state").await;
}

#[actix_web::test]
async fn another_agent_cannot_read_the_certificate() {
    let app = TestApp::spawn().await;
    let setup = awaiting_csr(&app, "csr-private").await;
    issued_through_csr(&app, &setup).await;
    let (other, other_key) = register_agent(&app, "nosy").await;

    let through_owner = format!("/api/v1/agents/{}/certificates/{}", setup.agent, setup.certificate);
    let response = as_agent(&app, &other_key, Method::GET, &through_owner).send().await.unwrap();
    assert_problem(response, 403, "forbidden").await;
    let through_own = format!("/api/v1/agents/{other}/certificates/{}", setup.certificate);
    let response = as_agent(&app, &other_key, Method::GET, &through_own).send().await.unwrap();
    assert_problem(response, 404, "not-found").await;
}

// ---------------------------------------------------------------------------------------------
// Leases
// ---------------------------------------------------------------------------------------------

#[actix_web::test]
async fn a_deployment_whose_lease_ran_out_fails_without_failing_the_certificate() {
    let app = TestApp::spawn().await;
    let (agent_id, _) = register_agent(&app, "web-slow").await;
    let certificate = app.create_certificate("slow-deploy").await["id"].as_str().unwrap().to_string();
    insert_deployment(&app, "job-slow-deploy", &certificate, &agent_id, true).await;
    let db = sql(&app).await;
    // The certificate is being renewed meanwhile; a stuck deployment must not mark it Failed.
    db.execute("UPDATE managed_certificates SET status = 'RenewalInProgress' WHERE id = $1", &[&certificate])
        .await
        .unwrap();
    db.execute(
        "UPDATE jobs SET lease_expires_at = now() - interval '1 second', max_attempts = 1 WHERE id = 'job-slow-deploy'",
        &[],
    )
    .await
    .unwrap();
    let reaped = run_loop(&app, "job_timeout").await;
    assert_eq!(reaped["lease_expired"], 1, "{reaped}");
    let failed = job(&app, "job-slow-deploy").await;
    assert_eq!(failed["status"], "Failed");
    assert_eq!(failed["last_error"], "the lease expired before the agent reported the deployment");
    let status: String =
        db.query_one("SELECT status FROM managed_certificates WHERE id = $1", &[&certificate]).await.unwrap().get(0);
    assert_eq!(status, "RenewalInProgress", "the certificate's own renewal goes on");
}
