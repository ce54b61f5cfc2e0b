//! The fakes tested on their own with reqwest: one round trip per vendor (the chains they return
//! pass the connectors' own check, `check_issued_chain`; GlobalSign's with its client certificate
//! and login token), the status-poll faults in order, mutual TLS, stop and restart.

use certctl_actors::crypto::key_algorithm::KeyAlgorithm;
use certctl_actors::crypto::remote_leaf::{check_issued_chain, make_csr};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

use super::{Behaviour, FakeCa, Vendor};

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
