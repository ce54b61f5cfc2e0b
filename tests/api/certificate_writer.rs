//! The certificate writer: concurrent creations are written in batches, and every caller still
//! gets the answer a creation of its own would have given. A batch writes every row with its target
//! bindings and audit row and skips the rows whose id or name is taken; one bad reference refuses the
//! whole batch statement; concurrent creations mixed with duplicates and bad references each get their
//! own 201, 409 or 422.

use certctl_actors::domain::audit::AuditActor;
use certctl_actors::domain::certificate::NewCertificate;
use certctl_actors::queries::certificate_batch::CreateCertificates;
use certctl_actors::queries::certificates::CreateCertificate;
use certctl_actors::DbError;
use futures_util::future::join_all;
use serde_json::{json, Value};

use crate::helpers::{certificate_body, metric_value, TestApp};

fn creation(name: &str) -> CreateCertificate {
    let new: NewCertificate = serde_json::from_value(certificate_body(name)).unwrap();
    CreateCertificate { new, actor: AuditActor::system("test") }
}

#[actix_web::test]
async fn a_batch_creates_every_row_and_skips_the_ones_that_collide() {
    let app = TestApp::spawn().await;
    app.create_certificate("taken").await;
    let mut with_target = creation("bound");
    with_target.new.target_ids = vec!["tgt-nginx-prod".into()];
    let items = vec![creation("first"), creation("taken"), with_target, creation("last")];
    let created = app.db.run(CreateCertificates { items }).await.unwrap();

    let names: Vec<Option<&str>> = created.iter().map(|c| c.as_ref().map(|c| c.name.as_str())).collect();
    assert_eq!(names, [Some("first"), None, Some("bound"), Some("last")], "results follow the input order");
    assert_eq!(created[2].as_ref().unwrap().target_ids, ["tgt-nginx-prod"]);
    let bound: Value =
        app.get(&format!("/api/v1/certificates/{}", created[2].as_ref().unwrap().id)).await.json().await.unwrap();
    assert_eq!(bound["target_ids"], json!(["tgt-nginx-prod"]), "the binding was written");
    let audit: Value = app.get("/api/v1/audit?action=certificate.create&limit=100").await.json().await.unwrap();
    assert_eq!(audit["data"].as_array().unwrap().len(), 4, "one audit row per created certificate: {audit}");
}

#[actix_web::test]
async fn a_bad_reference_refuses_the_whole_batch_statement() {
    let app = TestApp::spawn().await;
    let mut orphan = creation("orphan");
    orphan.new.owner_id = "o-nobody".into();
    let refused = app.db.run(CreateCertificates { items: vec![creation("fine"), orphan] }).await;
    assert!(matches!(refused, Err(DbError::ForeignKey(_))), "{refused:?}");
    let list: Value = app.get("/api/v1/certificates?q=fine").await.json().await.unwrap();
    assert_eq!(list["data"], json!([]), "nothing of the refused batch was kept");
}

#[actix_web::test]
async fn concurrent_creations_each_get_their_own_answer() {
    let app = TestApp::spawn().await;
    let mut bodies: Vec<(String, Value)> =
        (0..240).map(|i| ("ok".to_string(), certificate_body(&format!("burst-{i}")))).collect();
    // Interleaved with the good ones: five creations of one name and three bad references.
    for i in 0..5 {
        bodies.insert(i * 40, ("dup".into(), certificate_body("burst-same")));
    }
    for i in 0..3 {
        let mut body = certificate_body(&format!("burst-orphan-{i}"));
        body["owner_id"] = json!("o-nobody");
        bodies.insert(20 + i * 60, ("orphan".into(), body));
    }
    let responses = join_all(bodies.iter().map(|(kind, body)| {
        let app = &app;
        async move {
            let response = app.post_certificate(body).await;
            let status = response.status().as_u16();
            let json: Value = response.json().await.unwrap();
            (kind.as_str(), body["name"].as_str().unwrap().to_string(), status, json)
        }
    }))
    .await;

    let mut duplicates_created = 0;
    for (kind, name, status, json) in &responses {
        match *kind {
            "ok" => {
                assert_eq!(*status, 201, "{name}: {json}");
                assert_eq!(json["name"], name.as_str(), "each caller gets its own certificate");
            }
            "dup" if *status == 201 => duplicates_created += 1,
            "dup" => assert_eq!(json["type"], "urn:certctl:problem:already-exists", "{json}"),
            _ => {
                assert_eq!(*status, 422, "{name}: {json}");
                assert_eq!(json["errors"][0]["field"], "owner_id", "{json}");
            }
        }
    }
    assert_eq!(duplicates_created, 1, "exactly one creation of a repeated name wins");

    let page: Value =
        app.get("/api/v1/certificates?q=burst-&limit=1000&include_total=true").await.json().await.unwrap();
    assert_eq!(page["total"], 241);
    let audit: Value = app.get("/api/v1/audit?action=certificate.create&limit=1000").await.json().await.unwrap();
    assert_eq!(audit["data"].as_array().unwrap().len(), 241, "one audit row per certificate");

    let metrics = app.metrics_text().await;
    let batches = metric_value(&metrics, "certctl_certificate_writer_batch_size_count").unwrap();
    let written = metric_value(&metrics, "certctl_certificate_writer_batch_size_sum").unwrap();
    assert!(written > batches, "some creations shared a batch ({written} in {batches} batches)");
}
