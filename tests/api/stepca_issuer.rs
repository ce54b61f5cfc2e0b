//! The step-ca connector against the fake step-ca (`fake_ca::stepca`), which checks each
//! one-time token as step-ca does (signature by the provisioner's key, `kid`, issuer, audience
//! without the port, lifetime, single use): the provisioner key read from step's encrypted key
//! file, given inline as a plain JWK (sealed at rest), or fetched from the CA's provisioner list;
//! the token's claims; a wrong password, refused tokens and a refused CSR failing clearly; and
//! the issuer seeded from certctl's `CERTCTL_STEPCA_*` variables. (Issuance and revocation with
//! the reason code are in `remote_issuers`.)

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::fake_ca::{Behaviour, FakeCa, Vendor};
use crate::helpers::cluster;
use crate::remote_issuers::{chain_of, create_issuer, job_reaches, order, server, verifies};

/// Hex SHA-256 of the first certificate of `pem`.
fn fingerprint(pem: &str) -> String {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    Sha256::digest(&block.contents).iter().map(|b| format!("{b:02x}")).collect()
}

#[actix_web::test]
async fn tokens_carry_what_step_puts_in_them_and_the_key_may_come_from_the_ca() {
    let fake = FakeCa::start(Vendor::StepCa, Behaviour::default()).await;
    let app = server(&[]).await;
    // No key in the config: the connector fetches the encrypted key the CA publishes.
    let mut config = fake.issuer_config();
    config.as_object_mut().unwrap().remove("provisioner_key_path");
    create_issuer(&app, "iss-step", "stepca", config).await;
    let id = order(&app, "iss-step", "tokened").await;
    job_reaches(&app, &id, "Completed", Duration::from_secs(20)).await;
    assert!(verifies(&fake.root_pem(), &chain_of(&app, &id).await));
    assert!(fake.requests().iter().any(|(_, path, _)| path.contains("provisioners")), "the key came from the CA");

    let tokens = fake.accepted_tokens();
    let claims = tokens.last().expect("an accepted token");
    assert_eq!(claims["iss"], "certctl");
    assert_eq!(claims["sub"], "tokened.example.test");
    assert_eq!(claims["sans"], json!(["tokened.example.test"]));
    assert!(claims["aud"].as_str().unwrap().ends_with("/1.0/sign"), "{claims}");
    assert_eq!(claims["sha"], json!(fingerprint(&fake.root_pem())), "the root's fingerprint, as step puts it");
    let lifetime = claims["exp"].as_i64().unwrap() - claims["nbf"].as_i64().unwrap();
    assert_eq!(lifetime, 300, "five minutes, step's default");
    assert_eq!(claims["jti"].as_str().unwrap().len(), 64);
}

#[actix_web::test]
async fn an_inline_jwk_is_sealed_and_signs() {
    let fake = FakeCa::start(Vendor::StepCa, Behaviour::default()).await;
    let app = server(&[]).await;
    let mut config = fake.issuer_config();
    let object = config.as_object_mut().unwrap();
    object.remove("provisioner_key_path");
    object.remove("provisioner_password");
    object.insert("provisioner_jwk".into(), json!(fake.provisioner_jwk()));
    create_issuer(&app, "iss-step", "stepca", config).await;
    let shown: Value = app.get("/api/v1/issuers/iss-step").await.json().await.unwrap();
    assert_eq!(shown["config"]["provisioner_jwk"], "***", "write-only");
    let db = cluster().admin_client_for(&app.db_name).await;
    let stored: Value = db.query_one("SELECT config FROM issuers WHERE id = 'iss-step'", &[]).await.unwrap().get(0);
    assert!(stored["provisioner_jwk"].as_str().unwrap().starts_with("sealed:v1:"), "{stored}");
    let id = order(&app, "iss-step", "inline").await;
    job_reaches(&app, &id, "Completed", Duration::from_secs(20)).await;
}

#[actix_web::test]
async fn a_wrong_password_refused_tokens_and_a_refused_csr_fail_clearly() {
    let fake = FakeCa::start(Vendor::StepCa, Behaviour::default()).await;
    let app = server(&[]).await;
    let mut config = fake.issuer_config();
    config["provisioner_password"] = json!("not-the-password");
    create_issuer(&app, "iss-wrong", "stepca", config).await;
    let test: Value =
        app.admin(Method::POST, "/api/v1/issuers/iss-wrong/test").send().await.unwrap().json().await.unwrap();
    assert_eq!(test["ok"], false, "{test}");
    assert!(test.to_string().contains("does not open with provisioner_password"), "{test}");
    let id = order(&app, "iss-wrong", "locked").await;
    let job = job_reaches(&app, &id, "Failed", Duration::from_secs(20)).await;
    assert!(job["last_error"].as_str().unwrap().contains("provisioner_password"), "{job}");
    assert_eq!(fake.submissions(), 0, "nothing was sent without a token");

    create_issuer(&app, "iss-step", "stepca", fake.issuer_config()).await;
    fake.set_behaviour(Behaviour { refuse_credentials: true, ..Default::default() });
    let id = order(&app, "iss-step", "unauthorized").await;
    let job = job_reaches(&app, &id, "Failed", Duration::from_secs(20)).await;
    let error = job["last_error"].as_str().unwrap();
    assert!(error.contains("HTTP 401") && error.contains("lacked necessary authorization"), "{error}");

    fake.set_behaviour(Behaviour { reject: true, ..Default::default() });
    let id = order(&app, "iss-step", "forbidden").await;
    let job = job_reaches(&app, &id, "Failed", Duration::from_secs(20)).await;
    let error = job["last_error"].as_str().unwrap();
    assert!(error.contains("HTTP 403") && error.contains("valid DNS names"), "{error}");
    assert!(job["retry_at"].is_null(), "a refusal is final: {job}");
}

#[actix_web::test]
async fn certctls_stepca_variables_seed_an_issuer_that_issues() {
    let fake = FakeCa::start(Vendor::StepCa, Behaviour::default()).await;
    let config = fake.issuer_config();
    let text = |field: &str| config[field].as_str().unwrap().to_owned();
    let (url, root, key) = (text("ca_url"), text("root_cert_path"), text("provisioner_key_path"));
    let (name, password) = (text("provisioner_name"), text("provisioner_password"));
    let app = server(&[
        "--stepca-url",
        &url,
        "--stepca-root-cert",
        &root,
        "--stepca-provisioner",
        &name,
        "--stepca-key-path",
        &key,
        "--stepca-password",
        &password,
    ])
    .await;
    let seeded: Value = app.get("/api/v1/issuers/iss-stepca").await.json().await.unwrap();
    assert_eq!(seeded["type"], "stepca");
    assert_eq!(seeded["config"]["provisioner_password"], "***");
    let listing = app.get("/api/v1/admin/config").await.text().await.unwrap();
    assert!(!listing.contains(&password), "the password is never listed");
    // The root certificate is trusted for the CA's TLS: nothing to add.
    let id = order(&app, "iss-stepca", "seeded").await;
    job_reaches(&app, &id, "Completed", Duration::from_secs(20)).await;
}
