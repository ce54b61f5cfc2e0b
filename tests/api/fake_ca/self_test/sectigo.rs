//! The fake Sectigo SCM: an enrollment answered "Requested" and "Applied" before it is issued,
//! collected as x509 (leaf, then CA), found by common name, revoked (with its reason checks);
//! missing credentials refused.

use certctl_actors::crypto::remote_leaf::check_issued_chain;
use reqwest::StatusCode;
use serde_json::json;

use super::super::{Behaviour, FakeCa, Vendor};
use super::{client, csr_for, json_of, signed_in};

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
