//! The fake Vault PKI: health, token lookup and renewal, roles, a CSR signed at once, revoked by
//! serial; a refused signing, a missing token, and the unauthenticated CA chain.

use certctl_actors::crypto::remote_leaf::check_issued_chain;
use reqwest::StatusCode;
use serde_json::json;

use super::super::{Behaviour, FakeCa, Vendor};
use super::{client, csr_for, json_of};

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
