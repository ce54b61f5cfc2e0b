//! What every fake shares, tested through one vendor each: the status-poll faults of a
//! [`Behaviour`] come in their order before the order moves on (DigiCert), and mutual TLS on
//! demand, stop, restart and refused credentials (Sectigo), with the orders kept across the
//! restart.

use reqwest::{Client, StatusCode};
use serde_json::json;

use super::super::{Behaviour, FakeCa, Vendor};
use super::{client, csr_for, json_of, signed_in};

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
