//! The fakes tested on their own with reqwest: one round trip per vendor (the chains they return
//! pass the connectors' own check, `check_issued_chain`; GlobalSign's and Entrust's with their
//! client certificate, GlobalSign's with its login token, step-ca's with tokens signed by the
//! provisioner key decrypted from its JWE), the status-poll faults in order (Entrust's on the
//! certificate events, step-ca's on sign), mutual TLS, stop and restart.

use std::num::NonZeroU32;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM, AES_256_GCM};
use aws_lc_rs::digest::{digest, SHA256};
use aws_lc_rs::encoding::AsBigEndian;
use aws_lc_rs::key_wrap::{AesKek, KeyWrap, AES_128};
use aws_lc_rs::pbkdf2::{self, PBKDF2_HMAC_SHA256};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use certctl_actors::crypto::key_algorithm::KeyAlgorithm;
use certctl_actors::crypto::remote_leaf::{check_issued_chain, make_csr};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

use super::{Behaviour, FakeCa, Vendor, ENTRUST_CA_ID, ENTRUST_PROFILE_ID, STEP_CA_PASSWORD, STEP_CA_PROVISIONER};

/// A client that trusts the fake's CA, presenting its client certificate when `with_identity`.
fn client(ca: &FakeCa, with_identity: bool) -> Client {
    let root = reqwest::Certificate::from_pem(ca.root_pem().as_bytes()).unwrap();
    assert_eq!(std::fs::read_to_string(&ca.tls_ca_file).unwrap(), ca.root_pem());
    let mut builder = Client::builder().tls_certs_only([root]);
    if with_identity {
        let mut pem = std::fs::read(&ca.client_cert_path).unwrap();
        pem.extend(std::fs::read(&ca.client_key_path).unwrap());
        builder = builder.identity(reqwest::Identity::from_pem(&pem).unwrap());
    }
    builder.build().unwrap()
}

fn csr_for(name: &str) -> String {
    make_csr(name, &[name.to_string()], KeyAlgorithm::EcdsaP256).unwrap().csr_pem
}

async fn json_of(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status().as_u16(), status);
    response.json().await.unwrap()
}

#[actix_web::test]
async fn fake_digicert_issues_an_order_at_a_poll_and_revokes_it() {
    let ca = FakeCa::start(Vendor::DigiCert, Behaviour::default()).await;
    let http = client(&ca, false);
    let call = |method: reqwest::Method, path: &str| {
        http.request(method, format!("{}{path}", ca.base_url)).header("X-DC-DEVKEY", "test-devkey")
    };
    let csr = csr_for("a.example.test");

    let me = json_of(call(reqwest::Method::GET, "/user/me").send().await.unwrap(), 200).await;
    assert_eq!(me["username"], "certctl");
    let body = json!({
        "certificate": {"common_name": "a.example.test", "dns_names": ["a.example.test"], "csr": csr,
            "signature_hash": "sha256", "server_platform": {"id": -1}},
        "organization": {"id": 42}, "order_validity": {"days": 90}, "skip_approval": true,
        "payment_method": "balance", "comments": "certctl order 7",
    });
    let order = call(reqwest::Method::POST, "/order/certificate/ssl_basic").json(&body).send().await.unwrap();
    let order = json_of(order, 201).await;
    assert_eq!(order["requests"][0]["status"], "pending");
    let order_id = order["id"].as_u64().unwrap();

    let polled = call(reqwest::Method::GET, &format!("/order/certificate/{order_id}")).send().await.unwrap();
    let polled = json_of(polled, 200).await;
    assert_eq!(polled["status"], "issued");
    assert_eq!(polled["certificate"]["csr"], csr);
    let cert_id = polled["certificate"]["id"].as_u64().unwrap();
    assert_ne!(cert_id, order_id);

    let listed = call(reqwest::Method::GET, "/order/certificate")
        .query(&[("filters[common_name]", "a.example.test"), ("filters[status]", "pending")])
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(listed, 200).await["orders"][0]["id"], order_id);

    let bundle = call(reqwest::Method::GET, &format!("/certificate/{cert_id}/download/format/pem_all"));
    let bundle = bundle.send().await.unwrap().text().await.unwrap();
    assert!(bundle.starts_with(&ca.root_pem()), "pem_all puts the CA first");
    let leaf = check_issued_chain(&bundle, &csr).unwrap();
    assert!(leaf.serial_hex.eq_ignore_ascii_case(polled["certificate"]["serial_number"].as_str().unwrap()));

    let revoke = json!({"skip_approval": true, "comments": "rotated", "revocation_reason": "superseded"});
    let revoked = call(reqwest::Method::PUT, &format!("/certificate/{cert_id}/revoke")).json(&revoke).send().await;
    assert_eq!(revoked.unwrap().status(), StatusCode::NO_CONTENT);
    assert_eq!(ca.revocations(), vec![(cert_id.to_string(), "superseded".to_string())]);
    assert_eq!((ca.submissions(), ca.status_polls()), (1, 1));
    assert!(ca.requests().contains(&("GET".into(), "/services/v2/user/me".into(), "test-devkey".into())));

    let refused = http.get(format!("{}/user/me", ca.base_url)).header("X-DC-DEVKEY", "wrong").send().await.unwrap();
    assert_eq!(json_of(refused, 401).await["errors"][0]["code"], "access_denied");
}

#[actix_web::test]
async fn fake_sectigo_answers_pending_until_issued_then_collects_and_revokes() {
    let ca = FakeCa::start(Vendor::Sectigo, Behaviour { pending_polls: 2, ..Behaviour::default() }).await;
    let http = client(&ca, false);
    let call = |method: reqwest::Method, path: &str| signed_in(http.request(method, format!("{}{path}", ca.base_url)));
    let csr = csr_for("b.example.test");

    let types = json_of(call(reqwest::Method::GET, "/ssl/v1/types").send().await.unwrap(), 200).await;
    assert_eq!(types[0]["id"], 567);
    let body = json!({"orgId": 1, "certType": 567, "term": 365, "csr": csr, "subjAltNames": "b.example.test",
        "comments": "certctl order 8"});
    let enrolled = json_of(call(reqwest::Method::POST, "/ssl/v1/enroll").json(&body).send().await.unwrap(), 200).await;
    let ssl_id = enrolled["sslId"].as_u64().unwrap();

    let poll = || call(reqwest::Method::GET, &format!("/ssl/v1/{ssl_id}")).send();
    assert_eq!(json_of(poll().await.unwrap(), 200).await["status"], "Requested");
    let collect = || call(reqwest::Method::GET, &format!("/ssl/v1/collect/{ssl_id}?format=x509")).send();
    assert_eq!(json_of(collect().await.unwrap(), 400).await["code"], -183);
    assert_eq!(json_of(poll().await.unwrap(), 200).await["status"], "Applied");
    let issued = json_of(poll().await.unwrap(), 200).await;
    assert_eq!((issued["status"].as_str(), issued["comments"].as_str()), (Some("Issued"), Some("certctl order 8")));

    let chain = collect().await.unwrap().text().await.unwrap();
    assert!(chain.ends_with(&ca.root_pem()), "x509 is the leaf, then the CA");
    check_issued_chain(&chain, &csr).unwrap();
    let found = call(reqwest::Method::GET, "/ssl/v1?commonName=b.example.test").send().await.unwrap();
    assert_eq!(json_of(found, 200).await[0]["sslId"], ssl_id);

    let revoke = |code: &str, reason: &str| {
        call(reqwest::Method::POST, &format!("/ssl/v1/revoke/{ssl_id}"))
            .json(&json!({"reasonCode": code, "reason": reason}))
            .send()
    };
    assert_eq!(json_of(revoke("2", "superseded").await.unwrap(), 400).await["code"], -1);
    assert_eq!(revoke("4", "").await.unwrap().status(), StatusCode::BAD_REQUEST);
    assert_eq!(revoke("4", "superseded").await.unwrap().status(), StatusCode::NO_CONTENT);
    assert_eq!(ca.revocations(), vec![(ssl_id.to_string(), "4".to_string())]);
    assert_eq!((ca.submissions(), ca.status_polls()), (1, 3));
    assert!(ca.requests().iter().any(|(_, _, auth)| auth == "certctl,test-password,certctl-test"));

    let refused = http.get(format!("{}/ssl/v1/types", ca.base_url)).send().await.unwrap();
    assert_eq!(json_of(refused, 401).await["code"], -16);
}

#[actix_web::test]
async fn fake_vault_signs_at_once_renews_its_token_and_revokes() {
    let ca = FakeCa::start(Vendor::Vault, Behaviour::default()).await;
    let http = client(&ca, false);
    let call = |method: reqwest::Method, path: &str| {
        http.request(method, format!("{}/v1/{path}", ca.base_url)).header("X-Vault-Token", "test-token")
    };
    let csr = csr_for("c.example.test");

    let health = http.get(format!("{}/v1/sys/health", ca.base_url)).send().await.unwrap();
    assert_eq!(json_of(health, 200).await["sealed"], false);
    let token = json_of(call(reqwest::Method::GET, "auth/token/lookup-self").send().await.unwrap(), 200).await;
    assert!((3590..=3600).contains(&token["data"]["ttl"].as_u64().unwrap()), "{token}");
    let renewed = call(reqwest::Method::POST, "auth/token/renew-self").json(&json!({"increment": "3600s"})).send();
    assert_eq!(json_of(renewed.await.unwrap(), 200).await["auth"]["lease_duration"], 3600);
    assert_eq!(ca.token_renewals(), 1);
    let role = json_of(call(reqwest::Method::GET, "pki/roles/web").send().await.unwrap(), 200).await;
    assert_eq!(role["data"]["allow_subdomains"], true);
    assert_eq!(call(reqwest::Method::GET, "pki/roles/other").send().await.unwrap().status(), StatusCode::NOT_FOUND);

    let body = json!({"csr": csr, "common_name": "c.example.test", "alt_names": "c.example.test", "ip_sans": "",
        "ttl": "86400s", "format": "pem"});
    let signed = json_of(call(reqwest::Method::POST, "pki/sign/web").json(&body).send().await.unwrap(), 200).await;
    let data = &signed["data"];
    let chain = format!("{}\n{}\n", data["certificate"].as_str().unwrap(), data["ca_chain"][0].as_str().unwrap());
    let leaf = check_issued_chain(&chain, &csr).unwrap();
    let serial = data["serial_number"].as_str().unwrap();
    assert_eq!(serial.replace(':', ""), leaf.serial_hex);
    assert!((leaf.not_after - leaf.not_before).num_seconds() <= 86_400 + 60);

    let revoked = call(reqwest::Method::POST, "pki/revoke").json(&json!({"serial_number": serial})).send();
    assert!(json_of(revoked.await.unwrap(), 200).await["data"]["revocation_time"].is_i64());
    assert_eq!(ca.revocations(), vec![(serial.to_string(), String::new())]);

    ca.set_behaviour(Behaviour { reject: true, ..Behaviour::default() });
    let rejected = json_of(call(reqwest::Method::POST, "pki/sign/web").json(&body).send().await.unwrap(), 400).await;
    assert!(rejected["errors"][0].as_str().unwrap().contains("not allowed"));
    assert_eq!((ca.submissions(), ca.status_polls()), (2, 0));
    let anonymous = http.get(format!("{}/v1/auth/token/lookup-self", ca.base_url)).send().await.unwrap();
    assert_eq!(json_of(anonymous, 403).await["errors"][0], "permission denied");
    let ca_chain = http.get(format!("{}/v1/pki/ca_chain", ca.base_url)).send().await.unwrap();
    assert_eq!(ca_chain.text().await.unwrap(), ca.root_pem());
}

#[actix_web::test]
async fn fake_globalsign_wants_a_client_certificate_and_a_token_then_issues_at_a_poll_and_revokes() {
    let ca = FakeCa::start(Vendor::GlobalSign, Behaviour { pending_polls: 1, ..Behaviour::default() }).await;
    let config = ca.issuer_config();
    assert_eq!((config["api_url"].as_str(), config["client_key_path"].is_string()), (Some(ca.base_url.as_str()), true));
    let (anonymous, http) = (client(&ca, false), client(&ca, true));
    let login = |http: &Client, secret: &str| {
        let body = json!({"api_key": config["api_key"], "api_secret": secret});
        http.post(format!("{}/login", ca.base_url)).json(&body).send()
    };
    let secret = config["api_secret"].as_str().unwrap();
    assert!(login(&anonymous, secret).await.is_err(), "no client certificate, no answer");
    let refused = login(&http, "wrong").await.unwrap();
    assert_eq!(refused.headers()["content-type"], "application/problem+json");
    assert_eq!(json_of(refused, 401).await["description"], "invalid credentials");
    let token = json_of(login(&http, secret).await.unwrap(), 200).await["access_token"].as_str().unwrap().to_owned();
    assert_eq!(ca.logins(), 1);

    let csr = csr_for("f.example.test");
    let now = chrono::Utc::now().timestamp();
    let body = json!({
        "validity": {"not_before": now, "not_after": now + 86_400},
        "subject_dn": {"common_name": "f.example.test"},
        "san": {"dns_names": ["f.example.test", "www.f.example.test"], "ip_addresses": ["192.0.2.7"]},
        "extended_key_usages": ["1.3.6.1.5.5.7.3.1"],
        "public_key": csr,
    });
    let submit = |token: &str| http.post(format!("{}/certificates", ca.base_url)).bearer_auth(token).json(&body).send();
    assert!(json_of(submit("made-up").await.unwrap(), 401).await["description"].is_string());
    let placed = submit(&token).await.unwrap();
    assert_eq!(placed.status(), StatusCode::CREATED);
    let location = placed.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(placed.text().await.unwrap(), "");
    let serial = location.strip_prefix(&format!("{}/certificates/", ca.base_url)).unwrap().to_owned();
    assert!(serial.chars().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()), "{serial}");

    let get = |path: &str| http.get(format!("{}{path}", ca.base_url)).bearer_auth(&token).send();
    let certificate = format!("/certificates/{serial}");
    let pending = get(&certificate).await.unwrap();
    assert_eq!(pending.status(), StatusCode::ACCEPTED);
    assert_eq!(pending.text().await.unwrap(), "");
    let issued = json_of(get(&certificate).await.unwrap(), 200).await;
    assert_eq!(issued["status"], "ISSUED");
    assert!(issued["updated_at"].as_i64().unwrap() >= now);
    let trust_chain: Vec<String> = get("/trustchain").await.unwrap().json().await.unwrap();
    assert_eq!(trust_chain, vec![ca.root_pem()]);
    let leaf_pem = issued["certificate"].as_str().unwrap();
    let leaf = check_issued_chain(&format!("{leaf_pem}{}", trust_chain[0]), &csr).unwrap();
    assert_eq!(leaf.serial_hex.to_ascii_uppercase(), serial);
    assert!((leaf.not_after - leaf.not_before).num_seconds() <= 86_400 + 60);
    let (_, pem) = x509_parser::pem::parse_x509_pem(leaf_pem.as_bytes()).unwrap();
    let parsed = pem.parse_x509().unwrap();
    let names = parsed.subject_alternative_name().unwrap().unwrap().value.general_names.len();
    assert_eq!(names, 3, "the body's names, not the CSR's one");

    let query = format!("/stats/issued?page=1&per_page=100&from={}&to={}", now - 60, now + 60);
    let stats = get(&query).await.unwrap();
    assert_eq!(stats.headers()["total-count"], "1");
    let stats = json_of(stats, 200).await;
    assert_eq!(
        (stats[0]["serial_number"].as_str(), stats[0]["not_after"].as_i64()),
        (Some(serial.as_str()), Some(leaf.not_after.timestamp()))
    );
    assert_eq!(
        json_of(get("/stats/issued?page=1").await.unwrap(), 400).await["description"],
        "from is required (Unix seconds)"
    );
    let policy = json_of(get("/validationpolicy").await.unwrap(), 200).await;
    assert_eq!(policy["subject_dn"]["common_name"]["presence"], "REQUIRED");

    let revoke = |reason: &str| {
        let body = json!({"revocation_reason": reason, "revocation_time": 0});
        http.patch(format!("{}{certificate}", ca.base_url)).bearer_auth(&token).json(&body).send()
    };
    assert_eq!(revoke("cACompromise").await.unwrap().status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(revoke("keyCompromise").await.unwrap().status(), StatusCode::NO_CONTENT);
    assert_eq!(ca.revocations(), vec![(serial.clone(), "keyCompromise".to_string())]);
    assert_eq!(json_of(get(&certificate).await.unwrap(), 200).await["status"], "REVOKED");
    assert_eq!((ca.submissions(), ca.status_polls()), (1, 3));
    assert!(ca.requests().contains(&("POST".into(), "/v2/certificates".into(), format!("Bearer {token}"))));

    ca.expire_tokens();
    assert_eq!(get("/validationpolicy").await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let token = json_of(login(&http, secret).await.unwrap(), 200).await["access_token"].as_str().unwrap().to_owned();
    assert_eq!(ca.logins(), 2);
    ca.set_behaviour(Behaviour { reject: true, ..Behaviour::default() });
    let rejected = json_of(submit(&token).await.unwrap(), 422).await;
    assert_eq!(rejected["description"], "request rejected by validation policy");
    assert_eq!(ca.submissions(), 2, "a refused request counts as a submission");
    let too_long = json!({"validity": {"not_before": now, "not_after": now + 400 * 86_400},
        "subject_dn": {"common_name": "f.example.test"}, "public_key": csr});
    let too_long = http.post(format!("{}/certificates", ca.base_url)).bearer_auth(&token).json(&too_long).send();
    assert!(json_of(too_long.await.unwrap(), 422).await["description"]
        .as_str()
        .unwrap()
        .contains("outside the policy"));
    ca.set_behaviour(Behaviour { refuse_credentials: true, ..Behaviour::default() });
    assert_eq!(login(&http, secret).await.unwrap().status(), StatusCode::UNAUTHORIZED);
}

#[actix_web::test]
async fn status_poll_faults_come_in_order_before_the_order_is_issued() {
    let faults = Behaviour {
        dropped_connections: 1,
        server_errors: 1,
        rate_limited_polls: 1,
        retry_after_secs: 7,
        pending_polls: 1,
        ..Behaviour::default()
    };
    let ca = FakeCa::start(Vendor::DigiCert, faults).await;
    let http = client(&ca, false);
    let body = json!({"certificate": {"common_name": "d.example.test", "csr": csr_for("d.example.test")}});
    let order = http
        .post(format!("{}/order/certificate/ssl_basic", ca.base_url))
        .header("X-DC-DEVKEY", "test-devkey")
        .json(&body)
        .send()
        .await
        .unwrap();
    let order_id = json_of(order, 201).await["id"].as_u64().unwrap();
    let poll = || {
        http.get(format!("{}/order/certificate/{order_id}", ca.base_url)).header("X-DC-DEVKEY", "test-devkey").send()
    };

    let dropped = poll().await.unwrap_err();
    assert!(!dropped.is_connect() && !dropped.is_status(), "the connection closed without an answer: {dropped:?}");
    assert_eq!(poll().await.unwrap().status(), StatusCode::INTERNAL_SERVER_ERROR);
    let limited = poll().await.unwrap();
    assert_eq!(limited.headers()["retry-after"], "7");
    assert_eq!(json_of(limited, 429).await["errors"][0]["code"], "request_limit_exceeded");
    assert_eq!(json_of(poll().await.unwrap(), 200).await["status"], "pending");
    assert_eq!(json_of(poll().await.unwrap(), 200).await["status"], "issued");
    assert_eq!(ca.status_polls(), 5);

    ca.set_behaviour(Behaviour { reject: true, ..Behaviour::default() });
    let order = http
        .post(format!("{}/order/certificate/ssl_basic", ca.base_url))
        .header("X-DC-DEVKEY", "test-devkey")
        .json(&body)
        .send()
        .await
        .unwrap();
    let rejected_id = json_of(order, 201).await["id"].as_u64().unwrap();
    let polled =
        http.get(format!("{}/order/certificate/{rejected_id}", ca.base_url)).header("X-DC-DEVKEY", "test-devkey");
    assert_eq!(json_of(polled.send().await.unwrap(), 200).await["status"], "rejected");
}

#[actix_web::test]
async fn mutual_tls_is_required_when_asked_and_orders_survive_a_restart() {
    let mut ca = FakeCa::start(Vendor::Sectigo, Behaviour { require_client_cert: true, ..Behaviour::default() }).await;
    let (anonymous, identified) = (client(&ca, false), client(&ca, true));
    let base_url = ca.base_url.clone();
    let types = |http: &Client| signed_in(http.get(format!("{base_url}/ssl/v1/types"))).send();
    assert!(types(&anonymous).await.is_err(), "no client certificate, no answer");
    assert_eq!(types(&identified).await.unwrap().status(), StatusCode::OK);
    let body = json!({"orgId": 1, "certType": 567, "term": 730, "csr": csr_for("e.example.test")});
    let enrolled = signed_in(identified.post(format!("{base_url}/ssl/v1/enroll")).json(&body)).send().await;
    let ssl_id = json_of(enrolled.unwrap(), 200).await["sslId"].as_u64().unwrap();

    ca.stop().await;
    assert!(types(&identified).await.unwrap_err().is_connect(), "stopped: connections refused");
    ca.restart().await;
    assert_eq!(types(&identified).await.unwrap().status(), StatusCode::OK);
    let polled = signed_in(identified.get(format!("{base_url}/ssl/v1/{ssl_id}"))).send().await;
    assert_eq!(json_of(polled.unwrap(), 200).await["commonName"], "e.example.test");

    ca.set_behaviour(Behaviour { refuse_credentials: true, ..Behaviour::default() });
    assert_eq!(types(&anonymous).await.unwrap().status(), StatusCode::UNAUTHORIZED);
}

/// Sectigo's credential headers.
fn signed_in(request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    request.header("login", "certctl").header("password", "test-password").header("customerUri", "certctl-test")
}

/// A CSR as Entrust takes it: base64 of the DER, no PEM armour.
fn base64_der_of(csr_pem: &str) -> String {
    STANDARD.encode(x509_parser::pem::parse_x509_pem(csr_pem.as_bytes()).unwrap().1.contents)
}

/// Base64 DER (how Entrust answers certificates) as PEM.
fn pem_of(base64_der: &str) -> String {
    let lines: Vec<String> = base64_der.as_bytes().chunks(64).map(|l| String::from_utf8(l.to_vec()).unwrap()).collect();
    format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", lines.join("\n"))
}

/// An Entrust enrollment for `name` (and an IP the CSR does not carry), X509, chain included.
fn enrollment_for(name: &str, csr: &str) -> Value {
    json!({
        "profileId": ENTRUST_PROFILE_ID,
        "requiredFormat": {"format": "X509"},
        "csr": base64_der_of(csr),
        "subjectVariables": [{"type": "cn", "value": name}],
        "subjectAltNames": [{"type": "dNSName", "value": name}, {"type": "dNSName", "value": format!("www.{name}")},
                            {"type": "iPAddress", "value": "192.0.2.9"}],
        "optionalCertificateRequestDetails": {"validityPeriod": "PT1440M"},
        "includeCa": true,
    })
}

#[actix_web::test]
async fn fake_entrust_wants_a_client_certificate_issues_at_once_and_revokes() {
    let ca = FakeCa::start(Vendor::Entrust, Behaviour::default()).await;
    let config = ca.issuer_config();
    assert_eq!(
        (config["api_url"].as_str(), config["ca_id"].as_str()),
        (Some(ca.base_url.as_str()), Some(ENTRUST_CA_ID))
    );
    assert!(ca.base_url.ends_with("/cagw"), "{}", ca.base_url);
    let (anonymous, http) = (client(&ca, false), client(&ca, true));
    let cas = format!("{}/v1/certificate-authorities", ca.base_url);
    let at = |path: &str| format!("{cas}/{ENTRUST_CA_ID}{path}");
    assert!(anonymous.get(&cas).send().await.is_err(), "no client certificate, no answer");

    let listed = json_of(http.get(&cas).send().await.unwrap(), 200).await;
    assert_eq!(
        (listed["type"].as_str(), listed["caList"][0]["id"].as_str()),
        (Some("CAListResponse"), Some(ENTRUST_CA_ID))
    );
    let plain = json_of(http.get(at("")).send().await.unwrap(), 200).await;
    assert!(plain["ca"]["certificate"].is_null() && plain["ca"]["chain"].is_null(), "{plain}");
    let detailed = http.get(at("")).query(&[("$fields", "ca.certificate,ca.chain")]).send().await.unwrap();
    let detailed = json_of(detailed, 200).await;
    assert_eq!(pem_of(detailed["ca"]["certificate"]["certificateData"].as_str().unwrap()), ca.root_pem());
    assert_eq!(detailed["ca"]["chain"], json!([]));
    assert_eq!(json_of(http.get(at("/status")).send().await.unwrap(), 200).await["status"], "UP");
    let profile = json_of(http.get(at(&format!("/profiles/{ENTRUST_PROFILE_ID}"))).send().await.unwrap(), 200).await;
    assert_eq!(profile["profile"]["subjectVariableRequirements"][0]["name"], "cn");
    assert_eq!(http.get(at("/profiles/other")).send().await.unwrap().status(), StatusCode::NOT_FOUND);
    let unknown = json_of(http.get(format!("{cas}/nope~ca/status")).send().await.unwrap(), 404).await;
    assert_eq!(
        (unknown["type"].as_str(), unknown["error"]["code"].as_str()),
        (Some("ErrorResponse"), Some("cagw-4018"))
    );

    let csr = csr_for("g.example.test");
    let enroll = |body: &Value| http.post(at("/enrollments")).json(body).send();
    let mut armoured = enrollment_for("g.example.test", &csr);
    armoured["csr"] = json!(csr);
    assert_eq!(json_of(enroll(&armoured).await.unwrap(), 400).await["error"]["code"], "cagw-4000");
    let enrolled = json_of(enroll(&enrollment_for("g.example.test", &csr)).await.unwrap(), 200).await;
    assert_eq!(enrolled["message"]["message"], "Enrollment was successful.");
    let enrollment = &enrolled["enrollment"];
    assert_eq!(
        (enrollment["status"].as_str(), enrollment["subjectName"].as_str()),
        (Some("ISSUED"), Some("cn=g.example.test"))
    );
    let leaf_pem = pem_of(enrollment["body"].as_str().unwrap());
    let chain_pem = pem_of(enrollment["chain"][0]["certificateData"].as_str().unwrap());
    let leaf = check_issued_chain(&format!("{leaf_pem}{chain_pem}"), &csr).unwrap();
    let serial = enrollment["serialNumber"].as_str().unwrap().to_owned();
    assert_eq!(serial, leaf.serial_hex.to_ascii_lowercase());
    assert!((leaf.not_after - leaf.not_before).num_seconds() <= 86_400 + 60);
    let (_, pem) = x509_parser::pem::parse_x509_pem(leaf_pem.as_bytes()).unwrap();
    let names = pem.parse_x509().unwrap().subject_alternative_name().unwrap().unwrap().value.general_names.len();
    assert_eq!(names, 3, "the enrollment's names, not the CSR's one");

    let by_serial = format!("/certificates/00{}", serial.to_ascii_uppercase());
    let fetched = json_of(http.get(at(&by_serial)).send().await.unwrap(), 200).await;
    assert_eq!(
        (fetched["certificate"]["status"].as_str(), fetched["chain"].as_array().map(Vec::len)),
        (Some("normal"), Some(0))
    );
    assert_eq!(fetched["certificate"]["certificateData"], enrollment["body"]);
    let revoke = |reason: &str| {
        let body = json!({"action": {"type": "RevokeAction", "reason": reason, "comment": "rotated"}});
        http.post(at(&format!("/certificates/{serial}/actions"))).json(&body).send()
    };
    assert_eq!(revoke("cACompromise").await.unwrap().status(), StatusCode::BAD_REQUEST);
    let revoked = json_of(revoke("keyCompromise").await.unwrap(), 200).await;
    assert_eq!(
        (revoked["action"]["status"].as_str(), revoked["action"]["comment"].as_str()),
        (Some("COMPLETED"), Some("rotated"))
    );
    assert_eq!(json_of(revoke("keyCompromise").await.unwrap(), 200).await["action"]["status"], "COMPLETED");
    assert_eq!(ca.revocations(), vec![(serial.clone(), "keyCompromise".to_string())]);
    let fetched = json_of(http.get(at(&by_serial)).send().await.unwrap(), 200).await;
    assert_eq!(fetched["certificate"]["revocationInfo"]["reason"], "keyCompromise");
    assert_eq!(
        http.post(at("/certificates/abc/actions"))
            .json(&json!({"action": {"type": "RevokeAction",
        "reason": "superseded"}}))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!((ca.submissions(), ca.status_polls()), (1, 0));
    assert!(ca.requests().contains(&(
        "GET".into(),
        format!("/cagw/v1/certificate-authorities/{ENTRUST_CA_ID}/status"),
        String::new()
    )));

    ca.set_behaviour(Behaviour { reject: true, ..Behaviour::default() });
    let rejected = json_of(enroll(&enrollment_for("g.example.test", &csr)).await.unwrap(), 400).await;
    assert!(rejected["error"]["message"].as_str().unwrap().starts_with("Enrollment rejected"), "{rejected}");
    assert_eq!(ca.submissions(), 2, "a refused enrollment counts as a submission");
    ca.set_behaviour(Behaviour { refuse_credentials: true, ..Behaviour::default() });
    assert_eq!(json_of(http.get(&cas).send().await.unwrap(), 403).await["type"], "ErrorResponse");
}

#[actix_web::test]
async fn fake_entrust_holds_an_enrollment_for_approval_and_shows_it_in_the_events_after_the_faults() {
    let behaviour = Behaviour {
        pending_polls: 2,
        dropped_connections: 1,
        server_errors: 1,
        rate_limited_polls: 1,
        retry_after_secs: 3,
        ..Behaviour::default()
    };
    let ca = FakeCa::start(Vendor::Entrust, behaviour).await;
    let http = client(&ca, true);
    let at = |path: &str| format!("{}/v1/certificate-authorities/{ENTRUST_CA_ID}{path}", ca.base_url);
    let since = (chrono::Utc::now() - chrono::Duration::minutes(5)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let events = |offset: &str, size: &str| {
        let query = [("startDate", since.as_str()), ("preferredPageSize", size), ("nextPageIndex", offset)];
        http.get(at("/certificate-events")).query(&query).send()
    };
    let csr = csr_for("h.example.test");
    let enrolled = http.post(at("/enrollments")).json(&enrollment_for("h.example.test", &csr)).send().await.unwrap();
    let enrolled = json_of(enrolled, 201).await;
    let enrollment = &enrolled["enrollment"];
    assert_eq!((enrollment["status"].as_str(), enrollment["body"].as_str()), (Some("ACCEPTED"), Some("")));
    assert!(enrollment["serialNumber"].is_null() && enrollment["id"].as_str().is_some_and(|id| id.len() == 36));

    let no_start = http.get(at("/certificate-events")).send().await.unwrap();
    assert_eq!(json_of(no_start, 400).await["error"]["code"], "cagw-4000");
    let dropped = events("0", "50").await.unwrap_err();
    assert!(!dropped.is_connect(), "the connection closed without an answer: {dropped:?}");
    assert_eq!(events("0", "50").await.unwrap().status(), StatusCode::INTERNAL_SERVER_ERROR);
    let limited = events("0", "50").await.unwrap();
    assert_eq!(limited.headers()["retry-after"], "3");
    assert_eq!(json_of(limited, 429).await["type"], "ErrorResponse");
    for _ in 0..2 {
        let waiting = json_of(events("0", "50").await.unwrap(), 200).await;
        assert_eq!(
            (waiting["events"].as_array().map(Vec::len), waiting["morePages"].as_bool()),
            (Some(0), Some(false))
        );
    }
    let issued = json_of(events("0", "50").await.unwrap(), 200).await;
    assert_eq!(
        (issued["type"].as_str(), issued["metadata"]["totalCount"].as_u64()),
        (Some("CertificateEventListResponse"), Some(1))
    );
    let event = &issued["events"][0];
    assert_eq!(event["action"], "issued");
    let serial = event["serialNumber"].as_str().unwrap();
    assert_eq!(ca.status_polls(), 6, "the malformed query is not a poll");
    let fetched = json_of(http.get(at(&format!("/certificates/{serial}"))).send().await.unwrap(), 200).await;
    assert_eq!(fetched["certificate"]["certificateData"], event["certificate"]);
    check_issued_chain(&format!("{}{}", pem_of(event["certificate"].as_str().unwrap()), ca.root_pem()), &csr).unwrap();
    assert_eq!(ca.status_polls(), 6, "reading a certificate is not a poll");

    ca.set_behaviour(Behaviour::default());
    for _ in 0..2 {
        json_of(http.post(at("/enrollments")).json(&enrollment_for("i.example.test", &csr)).send().await.unwrap(), 200)
            .await;
    }
    let revoke = json!({"action": {"type": "RevokeAction", "reason": "superseded"}});
    json_of(http.post(at(&format!("/certificates/{serial}/actions"))).json(&revoke).send().await.unwrap(), 200).await;
    let first = json_of(events("0", "2").await.unwrap(), 200).await;
    assert_eq!((first["morePages"].as_bool(), first["nextPageIndex"].as_str()), (Some(true), Some("2")));
    assert_eq!(first["metadata"]["totalCount"], 4, "three issued, one revoked");
    let second = json_of(events("2", "2").await.unwrap(), 200).await;
    assert_eq!((second["morePages"].as_bool(), second["events"].as_array().map(Vec::len)), (Some(false), Some(2)));
    let all: Vec<&Value> = [&first, &second].into_iter().flat_map(|page| page["events"].as_array().unwrap()).collect();
    let revoked = all.iter().find(|e| e["action"] == "revoked").unwrap();
    assert_eq!((revoked["serialNumber"].as_str(), revoked["reason"].as_str()), (Some(serial), Some("superseded")));

    ca.set_behaviour(Behaviour { pending_polls: 1, ..Behaviour::default() });
    json_of(http.post(at("/enrollments")).json(&enrollment_for("j.example.test", &csr)).send().await.unwrap(), 201)
        .await;
    ca.set_behaviour(Behaviour { pending_polls: 1, reject: true, ..Behaviour::default() });
    for _ in 0..2 {
        assert_eq!(
            json_of(events("0", "100").await.unwrap(), 200).await["metadata"]["totalCount"],
            4,
            "refused: never shown"
        );
    }
}

/// Decodes base64url (a JWK member or a JOSE part).
fn b64d(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text).unwrap()
}

/// Decrypts a provisioner key as a step-ca client does (RFC 7518 §4.8), taking `enc` and `p2c`
/// from the header: the protected header and the private JWK, or `None` for a wrong password.
fn decrypt_jwe(jwe: &str, password: &str) -> Option<(Value, Value)> {
    let [header_b64, wrapped, iv, ciphertext, tag] = jwe.split('.').collect::<Vec<_>>()[..] else {
        panic!("not a compact JWE: {jwe}");
    };
    let header: Value = serde_json::from_slice(&b64d(header_b64)).unwrap();
    let alg = header["alg"].as_str().unwrap();
    assert_eq!(alg, "PBES2-HS256+A128KW");
    let salt = [alg.as_bytes(), &[0], &b64d(header["p2s"].as_str().unwrap())].concat();
    let iterations = NonZeroU32::new(u32::try_from(header["p2c"].as_u64().unwrap()).unwrap()).unwrap();
    let mut kek = [0u8; 16];
    pbkdf2::derive(PBKDF2_HMAC_SHA256, iterations, &salt, password.as_bytes(), &mut kek);
    let (enc, cek_len) = match header["enc"].as_str().unwrap() {
        "A128GCM" => (&AES_128_GCM, 16),
        "A256GCM" => (&AES_256_GCM, 32),
        other => panic!("enc {other}"),
    };
    let mut cek = vec![0u8; cek_len];
    AesKek::new(&AES_128, &kek).unwrap().unwrap(&b64d(wrapped), &mut cek).ok()?;
    let key = LessSafeKey::new(UnboundKey::new(enc, &cek).unwrap());
    let mut sealed = [b64d(ciphertext), b64d(tag)].concat();
    let nonce = Nonce::try_assume_unique_for_key(&b64d(iv)).unwrap();
    let plain = key.open_in_place(nonce, Aad::from(header_b64.as_bytes()), &mut sealed).ok()?;
    Some((header, serde_json::from_slice(plain).unwrap()))
}

/// A compact ES256 JWS of `claims` by the private JWK `jwk`, with its `kid`.
fn sign_token(jwk: &Value, claims: &Value) -> String {
    let member = |name: &str| b64d(jwk[name].as_str().unwrap());
    let point = [&[4u8][..], &member("x"), &member("y")].concat();
    let key =
        EcdsaKeyPair::from_private_key_and_public_key(&ECDSA_P256_SHA256_FIXED_SIGNING, &member("d"), &point).unwrap();
    let header = json!({"alg": "ES256", "kid": jwk["kid"], "typ": "JWT"});
    let input =
        format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
    let signature = key.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
}

/// The claims `step` puts in a token for `sub`, for `aud`, with `sans`.
fn token_claims(sub: &str, aud: &str, sans: &[&str]) -> Value {
    let now = chrono::Utc::now().timestamp();
    let jti: String = rand::random::<[u8; 32]>().iter().map(|b| format!("{b:02x}")).collect();
    json!({"iss": STEP_CA_PROVISIONER, "sub": sub, "aud": aud, "jti": jti, "nbf": now, "iat": now, "exp": now + 300,
           "sans": sans})
}

/// A JWK of a fresh key that claims to be `jwk` (same `kid`): a forger's.
fn other_key_as(jwk: &Value) -> Value {
    let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let point = key.public_key().as_ref();
    let d = key.private_key().as_be_bytes().unwrap();
    json!({"kid": jwk["kid"], "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
           "d": URL_SAFE_NO_PAD.encode(d.as_ref())})
}

#[actix_web::test]
async fn fake_step_ca_keeps_its_key_encrypted_and_signs_only_for_good_tokens() {
    let ca = FakeCa::start(Vendor::StepCa, Behaviour::default()).await;
    let config = ca.issuer_config();
    assert_eq!(
        (config["ca_url"].as_str(), config["provisioner_name"].as_str()),
        (Some(ca.base_url.as_str()), Some(STEP_CA_PROVISIONER))
    );
    assert_eq!(config["root_cert_path"].as_str(), ca.tls_ca_file.to_str());
    let jwe = std::fs::read_to_string(config["provisioner_key_path"].as_str().unwrap()).unwrap();
    let (header, jwk) = decrypt_jwe(&jwe, config["provisioner_password"].as_str().unwrap()).unwrap();
    assert_eq!(
        (header["cty"].as_str(), header["enc"].as_str(), header["p2c"].as_u64()),
        (Some("jwk+json"), Some("A256GCM"), Some(1000))
    );
    assert_eq!(jwk, serde_json::from_str::<Value>(&ca.provisioner_jwk()).unwrap());
    assert!(decrypt_jwe(&jwe, "wrong-password").is_none(), "the key wrap's check fails on a wrong password");
    let members = json!({"crv": jwk["crv"], "kty": jwk["kty"], "x": jwk["x"], "y": jwk["y"]}).to_string();
    assert_eq!(jwk["kid"].as_str().unwrap(), URL_SAFE_NO_PAD.encode(digest(&SHA256, members.as_bytes())), "RFC 7638");
    assert_eq!((jwk["alg"].as_str(), jwk["use"].as_str()), (Some("ES256"), Some("sig")));

    let http = client(&ca, false);
    let get = |path: &str| http.get(format!("{}{path}", ca.base_url)).send();
    assert_eq!(json_of(get("/1.0/health").await.unwrap(), 200).await["status"], "ok");
    assert_eq!(json_of(get("/roots").await.unwrap(), 201).await["crts"][0].as_str(), Some(ca.root_pem().as_str()));
    let root_der = x509_parser::pem::parse_x509_pem(ca.root_pem().as_bytes()).unwrap().1.contents;
    let fingerprint: String = digest(&SHA256, &root_der).as_ref().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        json_of(get(&format!("/root/{fingerprint}")).await.unwrap(), 200).await["ca"].as_str(),
        Some(ca.root_pem().as_str())
    );
    assert_eq!(get("/root/00").await.unwrap().status(), StatusCode::NOT_FOUND);
    let listed = json_of(get("/provisioners").await.unwrap(), 200).await;
    let provisioner = &listed["provisioners"][0];
    assert_eq!((provisioner["type"].as_str(), provisioner["encryptedKey"].as_str()), (Some("JWK"), Some(jwe.as_str())));
    assert!(provisioner["key"]["d"].is_null() && provisioner["key"]["kid"] == jwk["kid"]);
    let kid = jwk["kid"].as_str().unwrap();
    assert_eq!(json_of(get(&format!("/provisioners/{kid}/encrypted-key")).await.unwrap(), 200).await["key"], jwe);

    let port = ca.base_url.rsplit(':').next().unwrap();
    let sign_aud = format!("https://127.0.0.1:{port}/1.0/sign");
    let csr = csr_for("k.example.test");
    let sign = |ott: &str| {
        let body = json!({"csr": csr, "ott": ott, "notAfter": "2h"});
        http.post(format!("{}/1.0/sign", ca.base_url)).json(&body).send()
    };
    let token = sign_token(&jwk, &token_claims("k.example.test", &sign_aud, &["k.example.test", "192.0.2.8"]));
    let signed = sign(&token).await.unwrap();
    assert_eq!(signed.headers()["content-type"], "application/json");
    let signed = json_of(signed, 201).await;
    assert_eq!(signed["ca"].as_str(), Some(ca.root_pem().as_str()));
    assert_eq!(signed["certChain"][0], signed["crt"]);
    let leaf_pem = signed["crt"].as_str().unwrap();
    let leaf = check_issued_chain(&format!("{leaf_pem}{}", signed["certChain"][1].as_str().unwrap()), &csr).unwrap();
    assert!((leaf.not_after - leaf.not_before).num_seconds() <= 2 * 3600 + 60);
    let (_, pem) = x509_parser::pem::parse_x509_pem(leaf_pem.as_bytes()).unwrap();
    let names = pem.parse_x509().unwrap().subject_alternative_name().unwrap().unwrap().value.general_names.len();
    assert_eq!(names, 2, "the token's sans, an IP among them");
    assert_eq!(ca.accepted_tokens()[0]["sub"], "k.example.test");

    let refused = |why: &'static str| {
        let errors = ca.token_errors();
        assert!(errors.last().is_some_and(|last| last.contains(why)), "{why} in {errors:?}");
    };
    let replayed = json_of(sign(&token).await.unwrap(), 401).await;
    assert!(replayed["message"].as_str().unwrap().starts_with("The request lacked necessary authorization"));
    refused("already used");
    let forged = sign_token(&other_key_as(&jwk), &token_claims("k.example.test", &sign_aud, &["k.example.test"]));
    assert_eq!(sign(&forged).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    refused("signature");
    let revoke_aud = format!("https://localhost:{port}/revoke");
    let misdirected = sign_token(&jwk, &token_claims("k.example.test", &revoke_aud, &["k.example.test"]));
    assert_eq!(sign(&misdirected).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    refused("invalid audience");
    let other_names =
        sign_token(&jwk, &token_claims("k.example.test", "https://localhost/sign", &["other.example.test"]));
    let mismatch = json_of(sign(&other_names).await.unwrap(), 403).await;
    assert!(mismatch["message"].as_str().unwrap().contains("valid DNS names"), "{mismatch}");
    assert_eq!((ca.submissions(), ca.status_polls()), (2, 0));

    let decimal = u128::from_str_radix(&leaf.serial_hex, 16).unwrap().to_string();
    let revoke = |serial: &str, sub: &str, aud: &str, passive: bool| {
        let ott = sign_token(&jwk, &token_claims(sub, aud, &[]));
        let body =
            json!({"serial": serial, "ott": ott, "reasonCode": 1, "reason": "key compromise", "passive": passive});
        http.post(format!("{}/revoke", ca.base_url)).json(&body).send()
    };
    assert_eq!(json_of(revoke(&decimal, &decimal, &revoke_aud, false).await.unwrap(), 501).await["status"], 501);
    assert_eq!(revoke(&decimal, &decimal, &sign_aud, true).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(revoke(&decimal, "12", &revoke_aud, true).await.unwrap().status(), StatusCode::FORBIDDEN);
    assert_eq!(revoke("12", "12", &revoke_aud, true).await.unwrap().status(), StatusCode::NOT_FOUND);
    let hex = format!("0x{}", leaf.serial_hex);
    assert_eq!(json_of(revoke(&hex, &decimal, &revoke_aud, true).await.unwrap(), 200).await["status"], "ok");
    assert_eq!(ca.revocations(), vec![(decimal.clone(), "1".to_string())]);
    let again = json_of(revoke(&decimal, &decimal, &revoke_aud, true).await.unwrap(), 400).await;
    assert!(again["message"].as_str().unwrap().contains("already revoked"), "{again}");
    assert!(ca.requests().contains(&("POST".into(), "/revoke".into(), String::new())));
}

#[actix_web::test]
async fn fake_step_ca_takes_its_faults_and_refusals_on_sign() {
    let faults = Behaviour { dropped_connections: 1, server_errors: 1, ..Behaviour::default() };
    let ca = FakeCa::start(Vendor::StepCa, faults).await;
    let jwk: Value = serde_json::from_str(&ca.provisioner_jwk()).unwrap();
    let http = client(&ca, false);
    let csr = csr_for("l.example.test");
    let sign = || {
        let ott = sign_token(&jwk, &token_claims("l.example.test", "https://localhost/1.0/sign", &[]));
        http.post(format!("{}/sign", ca.base_url)).json(&json!({"csr": csr, "ott": ott})).send()
    };
    assert!(!sign().await.unwrap_err().is_connect(), "the connection closed without an answer");
    assert_eq!(json_of(sign().await.unwrap(), 500).await["status"], 500);
    let signed = json_of(sign().await.unwrap(), 201).await;
    let leaf = check_issued_chain(&format!("{}{}", signed["crt"].as_str().unwrap(), ca.root_pem()), &csr).unwrap();
    assert!((leaf.not_after - leaf.not_before).num_seconds() <= 24 * 3600 + 60, "24 hours without notAfter");
    assert_eq!((ca.submissions(), ca.status_polls(), ca.accepted_tokens().len()), (3, 0, 3));

    ca.set_behaviour(Behaviour { reject: true, ..Behaviour::default() });
    let rejected = json_of(sign().await.unwrap(), 403).await;
    assert!(rejected["message"].as_str().unwrap().contains("does not contain the valid DNS names"), "{rejected}");
    ca.set_behaviour(Behaviour { refuse_credentials: true, ..Behaviour::default() });
    assert_eq!(sign().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(ca.submissions(), 4, "refused credentials are not a submission");
    let password = STEP_CA_PASSWORD;
    assert!(decrypt_jwe(&std::fs::read_to_string(ca.provisioner_key_path()).unwrap(), password).is_some());
}
