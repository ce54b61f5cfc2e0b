//! The fake Entrust CA Gateway: no answer without the client certificate; the CA, its status and
//! profile; an enrollment issued at once with the enrollment's names, fetched by serial, revoked
//! (twice, recorded once); one held for approval that shows in the certificate events after the
//! faults, the events' paging, and a refused one that never shows. Also the helpers for Entrust's
//! base64 DER.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use certctl_actors::crypto::remote_leaf::check_issued_chain;
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::super::{Behaviour, FakeCa, Vendor, ENTRUST_CA_ID, ENTRUST_PROFILE_ID};
use super::{client, csr_for, json_of};

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
