//! The fake DigiCert CertCentral: an order issued at its first status poll, found by a filtered
//! listing, downloaded as `pem_all` (CA first), revoked; a wrong API key refused.

use certctl_actors::crypto::remote_leaf::check_issued_chain;
use reqwest::StatusCode;
use serde_json::json;

use super::super::{Behaviour, FakeCa, Vendor};
use super::{client, csr_for, json_of};

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
