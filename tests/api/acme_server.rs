//! certctl's ACME server (accounts so far) against an independent client, instant-acme (a
//! crates.io ACME client, not our code), over a real socket: the directory, nonces, an account
//! created, found again by its key, read and deactivated; and hand-signed requests for what a
//! well-behaved client never sends: a replayed, forged or missing nonce, a JWS signed for another
//! URL, an algorithm the server does not take, the wrong content type, an unknown account, and
//! another account's URL. Every error is an ACME problem document with a fresh `Replay-Nonce`.
//! The `acme_gc` loop deletes used nonces past their lifetime.

use std::future::Future;
use std::pin::Pin;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::BodyExt;
use instant_acme::{Account, BodyWrapper, BytesResponse, HttpClient, NewAccount};
use reqwest::Method;
use rustls_pki_types::pem::PemObject;
use serde_json::{json, Value};

use crate::helpers::TestApp;

/// instant-acme's HTTP over the test's reqwest client (the test servers speak plain HTTP).
struct Transport(reqwest::Client);

impl HttpClient for Transport {
    fn request(
        &self,
        request: http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let client = self.0.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let body = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
            let url =
                reqwest::Url::parse(&parts.uri.to_string()).map_err(|e| instant_acme::Error::Other(Box::new(e)))?;
            let mut outgoing = reqwest::Request::new(parts.method, url);
            *outgoing.headers_mut() = parts.headers;
            *outgoing.body_mut() = Some(body.into());
            let response = client.execute(outgoing).await.map_err(|e| instant_acme::Error::Other(Box::new(e)))?;
            Ok(BytesResponse::from(http::Response::from(response)))
        })
    }
}

/// A server with the ACME server on, and a profile `prof-acme` whose directory it serves.
async fn server(extra: &[&str]) -> TestApp {
    let mut args = vec!["--acme-server-enabled", "true"];
    args.extend_from_slice(extra);
    let app = TestApp::spawn_with(&args).await;
    let profile = app
        .admin(Method::POST, "/api/v1/profiles")
        .json(&json!({"id": "prof-acme", "name": "ACME", "allowed_ekus": ["serverAuth"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(profile.status(), 201, "{}", profile.text().await.unwrap());
    app
}

fn directory_url(app: &TestApp) -> String {
    format!("{}/acme/profile/prof-acme/directory", app.address)
}

/// A client-side ES256 key and what signs with it.
struct Key {
    pair: EcdsaKeyPair,
}

impl Key {
    fn generate() -> Key {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new()).unwrap();
        Key { pair: EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap() }
    }

    fn jwk(&self) -> Value {
        let point = self.pair.public_key().as_ref();
        json!({"kty": "EC", "crv": "P-256", "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
               "y": URL_SAFE_NO_PAD.encode(&point[33..65])})
    }

    /// A flattened JWS of `payload` (`None`: POST-as-GET) with this protected header.
    fn sign(&self, protected: &Value, payload: Option<&Value>) -> Value {
        let protected = URL_SAFE_NO_PAD.encode(protected.to_string());
        let payload = payload.map(|p| URL_SAFE_NO_PAD.encode(p.to_string())).unwrap_or_default();
        let signature = self.pair.sign(&SystemRandom::new(), format!("{protected}.{payload}").as_bytes()).unwrap();
        json!({"protected": protected, "payload": payload, "signature": URL_SAFE_NO_PAD.encode(signature.as_ref())})
    }
}

async fn nonce(app: &TestApp) -> String {
    let response = app.client.head(format!("{}/acme/profile/prof-acme/new-nonce", app.address)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.headers()["replay-nonce"].to_str().unwrap().to_owned()
}

/// POSTs a JWS as `application/jose+json`.
async fn post(app: &TestApp, url: &str, body: &Value) -> reqwest::Response {
    app.client.post(url).header("content-type", "application/jose+json").body(body.to_string()).send().await.unwrap()
}

/// Checks a problem answer: status, ACME type, a fresh nonce; answers the body.
async fn problem(response: reqwest::Response, status: u16, kind: &str) -> Value {
    assert_eq!(response.status(), status);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    assert!(response.headers().contains_key("replay-nonce"), "a fresh nonce to retry with");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], format!("urn:ietf:params:acme:error:{kind}"), "{body}");
    assert!(body["request_id"].is_string(), "{body}");
    body
}

#[actix_web::test]
async fn an_independent_client_creates_finds_and_deactivates_its_account() {
    let app = server(&[
        "--acme-server-tos-url",
        "https://ca.example.test/tos",
        "--acme-server-caa-identities",
        "ca.example.test",
    ])
    .await;
    let directory: Value = app.client.get(directory_url(&app)).send().await.unwrap().json().await.unwrap();
    let base = format!("{}/acme/profile/prof-acme", app.address);
    assert_eq!(directory["newNonce"], format!("{base}/new-nonce"));
    assert_eq!(directory["newAccount"], format!("{base}/new-account"));
    assert_eq!(directory["meta"]["termsOfService"], "https://ca.example.test/tos");
    assert_eq!(directory["meta"]["caaIdentities"], json!(["ca.example.test"]));
    let get = app.client.get(format!("{base}/new-nonce")).send().await.unwrap();
    assert_eq!(get.status(), 204, "GET new-nonce answers 204 (RFC 8555 §7.2)");
    assert_eq!(get.headers()["cache-control"], "no-store");
    assert_eq!(get.headers()["link"], format!("<{base}/directory>;rel=\"index\""));

    let new = NewAccount {
        contact: &["mailto:ops@example.test"],
        terms_of_service_agreed: true,
        only_return_existing: false,
    };
    let (account, credentials) = Account::builder_with_http(Box::new(Transport(app.client.clone())))
        .create(&new, directory_url(&app), None)
        .await
        .expect("instant-acme creates an account");
    assert!(account.id().starts_with(&format!("{base}/account/acct-")), "{}", account.id());

    // The same key again: the same account (200), as RFC 8555 §7.3 asks.
    let again = Account::builder_with_http(Box::new(Transport(app.client.clone())))
        .from_credentials(credentials)
        .await
        .unwrap();
    assert_eq!(again.id(), account.id());
    let stored: (String, Vec<String>, bool) = {
        let db = crate::helpers::cluster().admin_client_for(&app.db_name).await;
        let row = db.query_one("SELECT status, contact, tos_agreed FROM acme_server_accounts", &[]).await.unwrap();
        (row.get(0), row.get(1), row.get(2))
    };
    assert_eq!(stored, ("valid".to_string(), vec!["mailto:ops@example.test".to_string()], true));

    account.deactivate().await.expect("instant-acme deactivates it");
    let db = crate::helpers::cluster().admin_client_for(&app.db_name).await;
    let status: String = db.query_one("SELECT status FROM acme_server_accounts", &[]).await.unwrap().get(0);
    assert_eq!(status, "deactivated");
}

#[actix_web::test]
async fn what_a_well_behaved_client_never_sends_is_refused_with_its_problem_type() {
    let app = server(&[]).await;
    let base = format!("{}/acme/profile/prof-acme", app.address);
    let new_account = format!("{base}/new-account");
    let key = Key::generate();
    let header = |nonce: &str, url: &str| json!({"alg": "ES256", "jwk": key.jwk(), "nonce": nonce, "url": url});
    let payload = json!({"termsOfServiceAgreed": true});

    // A good request, then the same nonce again.
    let first = nonce(&app).await;
    let body = key.sign(&header(&first, &new_account), Some(&payload));
    let created = post(&app, &new_account, &body).await;
    assert_eq!(created.status(), 201);
    let kid = created.headers()["location"].to_str().unwrap().to_owned();
    let replayed = key.sign(&header(&first, &new_account), Some(&payload));
    problem(post(&app, &new_account, &replayed).await, 400, "badNonce").await;

    // The same key once more (a fresh nonce): the same account, 200.
    let existing = post(&app, &new_account, &key.sign(&header(&nonce(&app).await, &new_account), Some(&payload))).await;
    assert_eq!(existing.status(), 200);
    assert_eq!(existing.headers()["location"].to_str().unwrap(), kid);

    // A nonce this server never made, and one altered by a byte.
    problem(
        post(&app, &new_account, &key.sign(&header("bm90LW91cnM", &new_account), Some(&payload))).await,
        400,
        "badNonce",
    )
    .await;
    let mut altered = URL_SAFE_NO_PAD.decode(nonce(&app).await).unwrap();
    altered[20] ^= 1;
    let forged = header(&URL_SAFE_NO_PAD.encode(&altered), &new_account);
    problem(post(&app, &new_account, &key.sign(&forged, Some(&payload))).await, 400, "badNonce").await;

    // Signed for another URL.
    let elsewhere = key.sign(&header(&nonce(&app).await, &format!("{base}/new-order")), Some(&payload));
    problem(post(&app, &new_account, &elsewhere).await, 403, "unauthorized").await;

    // An algorithm the server does not take names the ones it does.
    let mut hs = header(&nonce(&app).await, &new_account);
    hs["alg"] = json!("HS256");
    let body =
        problem(post(&app, &new_account, &key.sign(&hs, Some(&payload))).await, 400, "badSignatureAlgorithm").await;
    assert_eq!(body["algorithms"], json!(["ES256", "ES384", "RS256", "EdDSA"]));

    // The wrong content type.
    let wrong_type = app
        .client
        .post(&new_account)
        .header("content-type", "application/json")
        .body(key.sign(&header(&nonce(&app).await, &new_account), Some(&payload)).to_string())
        .send()
        .await
        .unwrap();
    problem(wrong_type, 415, "malformed").await;

    // kid requests: an unknown account, another account's URL, a bad signature.
    let account_url = |id: &str| format!("{base}/account/{id}");
    let kid_header =
        |nonce: &str, kid: &str, url: &str| json!({"alg": "ES256", "kid": kid, "nonce": nonce, "url": url});
    let unknown = account_url("acct-nobody");
    let body = key.sign(&kid_header(&nonce(&app).await, &unknown, &unknown), None);
    problem(post(&app, &unknown, &body).await, 400, "accountDoesNotExist").await;

    let other = Key::generate();
    let other_nonce = nonce(&app).await;
    let made = post(
        &app,
        &new_account,
        &other.sign(
            &json!({"alg": "ES256", "jwk": other.jwk(), "nonce": other_nonce, "url": new_account}),
            Some(&payload),
        ),
    )
    .await;
    let other_kid = made.headers()["location"].to_str().unwrap().to_owned();
    let body = key.sign(&kid_header(&nonce(&app).await, &kid, &other_kid), None);
    problem(post(&app, &other_kid, &body).await, 403, "unauthorized").await;

    let impostor = other.sign(&kid_header(&nonce(&app).await, &kid, &kid), None);
    problem(post(&app, &kid, &impostor).await, 400, "malformed").await;

    // Its own URL, POST-as-GET: the account.
    let read = post(&app, &kid, &key.sign(&kid_header(&nonce(&app).await, &kid, &kid), None)).await;
    assert_eq!(read.status(), 200);
    let account: Value = read.json().await.unwrap();
    assert_eq!(account["status"], "valid");
    assert_eq!(account["orders"], format!("{kid}/orders"));

    // Used nonces are kept only while they could be presented again.
    let db = crate::helpers::cluster().admin_client_for(&app.db_name).await;
    let kept: i64 = db.query_one("SELECT count(*) FROM acme_nonces_used", &[]).await.unwrap().get(0);
    assert!(kept >= 3, "each accepted request spent its nonce");
    db.execute("UPDATE acme_nonces_used SET expires_at = now() - interval '1 second'", &[]).await.unwrap();
    let swept = crate::renewal::run_loop(&app, "acme_gc").await;
    assert_eq!(swept["nonces_deleted"], kept, "{swept}");
}

#[actix_web::test]
async fn the_shorthand_needs_a_default_profile_and_the_server_can_be_off() {
    let app = server(&[]).await;
    let no_default = app.client.get(format!("{}/acme/directory", app.address)).send().await.unwrap();
    problem(no_default, 403, "userActionRequired").await;
    let unknown = app.client.get(format!("{}/acme/profile/prof-none/directory", app.address)).send().await.unwrap();
    problem(unknown, 404, "malformed").await;

    let app = server(&["--acme-server-default-profile-id", "prof-acme"]).await;
    let directory: Value =
        app.client.get(format!("{}/acme/directory", app.address)).send().await.unwrap().json().await.unwrap();
    assert_eq!(directory["newAccount"], format!("{}/acme/new-account", app.address));

    let off = TestApp::spawn().await;
    let response = off.client.get(format!("{}/acme/directory", off.address)).send().await.unwrap();
    let body = problem(response, 404, "malformed").await;
    assert!(body["detail"].as_str().unwrap().contains("CERTCTL_ACME_SERVER_ENABLED"), "{body}");
}

#[actix_web::test]
async fn renewal_information_follows_certctls_plan_for_a_certificate() {
    let app = server(&["--keygen-mode", "server", "--acme-server-ari-poll-interval", "3h"]).await;
    // A certificate from the local CA, issued by the renewal engine.
    let body = json!({
        "name": "ari", "common_name": "ari.example.test", "sans": ["ari.example.test"], "environment": "production",
        "owner_id": "o-alice", "team_id": "t-platform", "issuer_id": "iss-local", "renewal_policy_id": "rp-standard",
    });
    let created: Value = app.post_certificate(&body).await.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    crate::renewal::run_loop(&app, "renewal_scan").await;
    crate::renewal::run_loop(&app, "job_processor").await;
    let versions: Value = app.get(&format!("/api/v1/certificates/{id}/versions")).await.json().await.unwrap();
    let chain = versions["data"][0]["pem_chain"].as_str().expect("issued").to_owned();
    let leaf = rustls_pki_types::CertificateDer::from_pem_slice(chain.as_bytes()).unwrap();
    let cert_id = instant_acme::CertificateIdentifier::try_from(&leaf).unwrap();

    // instant-acme reads the directory's renewalInfo and asks.
    let new = NewAccount { contact: &[], terms_of_service_agreed: true, only_return_existing: false };
    let (account, _) = Account::builder_with_http(Box::new(Transport(app.client.clone())))
        .create(&new, directory_url(&app), None)
        .await
        .unwrap();
    let (info, retry_after) = account.renewal_info(&cert_id).await.expect("renewal information");
    // instant-acme answers the time left until then.
    let three_hours = std::time::Duration::from_secs(3 * 3600);
    assert!(
        retry_after <= three_hours && retry_after > three_hours - std::time::Duration::from_secs(60),
        "{retry_after:?}"
    );
    let db = crate::helpers::cluster().admin_client_for(&app.db_name).await;
    let renew_at: chrono::DateTime<chrono::Utc> =
        db.query_one("SELECT renew_at FROM managed_certificates WHERE id = $1", &[&id]).await.unwrap().get(0);
    assert_eq!(
        info.suggested_window.start.unix_timestamp(),
        renew_at.timestamp(),
        "the window opens at certctl's renew_at"
    );
    assert!(info.suggested_window.end > info.suggested_window.start);

    // Revoked: renew now (a window in the past).
    let revoked = app
        .admin(Method::POST, &format!("/api/v1/certificates/{id}/revoke"))
        .json(&json!({"reason": "keyCompromise"}))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let (info, _) = account.renewal_info(&cert_id).await.unwrap();
    assert!(info.suggested_window.end < time::OffsetDateTime::now_utc(), "a revoked certificate is renewed at once");

    // Ids of certificates certctl does not hold, and ids that are not ids.
    let base = format!("{}/acme/profile/prof-acme/renewal-info", app.address);
    problem(app.client.get(format!("{base}/aaaa.bbbb")).send().await.unwrap(), 404, "malformed").await;
    problem(app.client.get(format!("{base}/not-an-id")).send().await.unwrap(), 400, "malformed").await;
}
