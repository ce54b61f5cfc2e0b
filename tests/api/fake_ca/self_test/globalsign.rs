//! The fake GlobalSign Atlas HVCA: no answer without the client certificate, a login for a
//! token, a certificate issued at its second poll with the body's names (not the CSR's), the
//! trust chain, the issued stats, the validation policy, revocation; expired tokens, a refused
//! request, a validity outside the policy and refused credentials.

use certctl_actors::crypto::remote_leaf::check_issued_chain;
use reqwest::{Client, StatusCode};
use serde_json::json;

use super::super::{Behaviour, FakeCa, Vendor};
use super::{client, csr_for, json_of};

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
