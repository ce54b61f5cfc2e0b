//! The certificate inventory: create (client-chosen ids kept, duplicate names a 409, missing
//! references a 422 naming the field, every invalid field reported at once), get, list with keyset
//! pages and filters, partial update, archive (the record kept and frozen), bulk reassignment, names
//! stored in canonical form, environments from `CERTCTL_ENVIRONMENTS`, and a certificate's versions
//! newest first in pages.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, certificate_body, TestApp};

#[actix_web::test]
async fn a_created_certificate_can_be_read_back() {
    let app = TestApp::spawn().await;
    let response = app.post_certificate(&certificate_body("api")).await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    let created: Value = response.json().await.unwrap();
    assert_eq!(location, format!("/api/v1/certificates/{}", created["id"].as_str().unwrap()));
    assert_eq!(created["status"], "Pending");
    assert_eq!(created["source"], "API");
    assert_eq!(created["sans"], json!(["api.example.com", "www.api.example.com"]));
    assert_eq!(created["tags"], json!({"service": "api"}));

    let fetched: Value = app.get(&location).await.json().await.unwrap();
    assert_eq!(fetched, created);
}

#[actix_web::test]
async fn a_client_chosen_id_is_kept() {
    let app = TestApp::spawn().await;
    let mut body = certificate_body("web");
    body["id"] = json!("mc-web-prod");
    let created: Value = app.post_certificate(&body).await.json().await.unwrap();
    assert_eq!(created["id"], "mc-web-prod");
    let mut again = certificate_body("web-2");
    again["id"] = json!("mc-web-prod");
    assert_problem(app.post_certificate(&again).await, 409, "already-exists").await;
}

#[actix_web::test]
async fn duplicate_names_are_a_409_problem() {
    let app = TestApp::spawn().await;
    app.create_certificate("dup").await;
    let body = assert_problem(app.post_certificate(&certificate_body("dup")).await, 409, "already-exists").await;
    assert!(body["detail"].as_str().unwrap().contains("name"));
}

#[actix_web::test]
async fn references_to_missing_resources_name_the_field() {
    let app = TestApp::spawn().await;
    let mut body = certificate_body("orphan");
    body["issuer_id"] = json!("iss-does-not-exist");
    let problem = assert_problem(app.post_certificate(&body).await, 422, "validation-failed").await;
    assert_eq!(problem["errors"][0]["field"], "issuer_id");
}

#[actix_web::test]
async fn invalid_fields_are_all_reported_at_once() {
    let app = TestApp::spawn().await;
    let mut body = certificate_body("bad");
    body["name"] = json!("");
    body["common_name"] = json!("has space.example.com");
    body["environment"] = json!("prod env!");
    let problem = assert_problem(app.post_certificate(&body).await, 422, "validation-failed").await;
    let fields: Vec<&str> =
        problem["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["name", "common_name", "environment"]);
}

#[actix_web::test]
async fn lists_page_through_every_certificate_with_cursors() {
    let app = TestApp::spawn().await;
    for i in 0..7 {
        app.create_certificate(&format!("page-{i}")).await;
    }
    let mut seen = Vec::new();
    let mut path = "/api/v1/certificates?limit=3".to_string();
    loop {
        let page: Value = app.get(&path).await.json().await.unwrap();
        assert_eq!(page["limit"], 3);
        for item in page["data"].as_array().unwrap() {
            seen.push(item["name"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/certificates?limit=3&cursor={cursor}"),
            None => break,
        }
    }
    let expected: Vec<String> = (0..7).map(|i| format!("page-{i}")).collect();
    assert_eq!(seen, expected, "every certificate once, in creation order");
}

#[actix_web::test]
async fn lists_filter_by_status() {
    let app = TestApp::spawn().await;
    let kept = app.create_certificate("kept").await;
    let archived = app.create_certificate("gone").await;
    let id = archived["id"].as_str().unwrap();
    assert_eq!(app.admin(Method::DELETE, &format!("/api/v1/certificates/{id}")).send().await.unwrap().status(), 204);

    let page: Value = app.get("/api/v1/certificates?status=Archived").await.json().await.unwrap();
    let ids: Vec<&str> = page["data"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [id]);
    let page: Value = app.get("/api/v1/certificates?status=Pending").await.json().await.unwrap();
    assert_eq!(page["data"][0]["id"], kept["id"]);
}

#[actix_web::test]
async fn updates_change_only_the_fields_sent() {
    let app = TestApp::spawn().await;
    let created = app.create_certificate("patchme").await;
    let id = created["id"].as_str().unwrap();
    let response = app
        .admin(Method::PUT, &format!("/api/v1/certificates/{id}"))
        .json(&json!({"environment": "staging", "tags": {"tier": "1"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let updated: Value = response.json().await.unwrap();
    assert_eq!(updated["environment"], "staging");
    assert_eq!(updated["tags"], json!({"tier": "1"}));
    assert_eq!(updated["name"], created["name"]);
    assert_eq!(updated["common_name"], created["common_name"]);
    assert_ne!(updated["updated_at"], created["updated_at"]);
}

#[actix_web::test]
async fn an_empty_update_is_refused() {
    let app = TestApp::spawn().await;
    let created = app.create_certificate("nothing").await;
    let id = created["id"].as_str().unwrap();
    let response = app.admin(Method::PUT, &format!("/api/v1/certificates/{id}")).json(&json!({})).send().await.unwrap();
    assert_problem(response, 400, "invalid-body").await;
}

#[actix_web::test]
async fn archiving_keeps_the_record_and_freezes_it() {
    let app = TestApp::spawn().await;
    let created = app.create_certificate("old").await;
    let id = created["id"].as_str().unwrap();
    let path = format!("/api/v1/certificates/{id}");

    assert_eq!(app.admin(Method::DELETE, &path).send().await.unwrap().status(), 204);
    assert_eq!(app.admin(Method::DELETE, &path).send().await.unwrap().status(), 204, "archiving is idempotent");
    let fetched: Value = app.get(&path).await.json().await.unwrap();
    assert_eq!(fetched["status"], "Archived");

    let response = app.admin(Method::PUT, &path).json(&json!({"environment": "staging"})).send().await.unwrap();
    assert_problem(response, 409, "wrong-state").await;
}

#[actix_web::test]
async fn unknown_certificates_are_404_problems() {
    let app = TestApp::spawn().await;
    assert_problem(app.get("/api/v1/certificates/mc-nope").await, 404, "not-found").await;
    let response = app
        .admin(Method::PUT, "/api/v1/certificates/mc-nope")
        .json(&json!({"environment": "staging"}))
        .send()
        .await
        .unwrap();
    assert_problem(response, 404, "not-found").await;
    let response = app.admin(Method::DELETE, "/api/v1/certificates/mc-nope").send().await.unwrap();
    assert_problem(response, 404, "not-found").await;
}

#[actix_web::test]
async fn bulk_reassign_moves_many_certificates_in_one_request() {
    let app = TestApp::spawn().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(app.create_certificate(&format!("bulk-{i}")).await["id"].as_str().unwrap().to_string());
    }
    // One is archived (skipped), one id does not exist (failed).
    app.admin(Method::DELETE, &format!("/api/v1/certificates/{}", ids[4])).send().await.unwrap();
    let mut request = ids.clone();
    request.push("mc-missing".into());
    let body = json!({"certificate_ids": request, "owner_id": "o-bob", "team_id": "t-security"});
    let response = app.admin(Method::POST, "/api/v1/certificates/bulk-reassign").json(&body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let result: Value = response.json().await.unwrap();
    assert_eq!(result["total_matched"], 5);
    assert_eq!(result["total_reassigned"], 4);
    assert_eq!(result["total_skipped"], 1);
    assert_eq!(result["total_failed"], 1);
    assert_eq!(result["errors"][0]["certificate_id"], "mc-missing");

    let moved: Value = app.get(&format!("/api/v1/certificates/{}", ids[0])).await.json().await.unwrap();
    assert_eq!(moved["owner_id"], "o-bob");
    assert_eq!(moved["team_id"], "t-security");
    let audit: Value = app.get("/api/v1/audit?action=certificate.reassign").await.json().await.unwrap();
    assert_eq!(audit["data"].as_array().unwrap().len(), 4, "one audit row per certificate changed");

    let again = app.admin(Method::POST, "/api/v1/certificates/bulk-reassign").json(&body).send().await.unwrap();
    assert_eq!(again.json::<Value>().await.unwrap()["total_reassigned"], 0, "already assigned: skipped");

    let bad = json!({"certificate_ids": [ids[0]], "owner_id": "o-nobody"});
    let response = app.admin(Method::POST, "/api/v1/certificates/bulk-reassign").json(&bad).send().await.unwrap();
    let problem = assert_problem(response, 422, "validation-failed").await;
    assert_eq!(problem["errors"][0]["field"], "owner_id");
    // Even when nothing would change, a missing owner or team is refused.
    let nothing = json!({"certificate_ids": ["mc-missing"], "owner_id": "o-bob", "team_id": "t-nowhere"});
    let response = app.admin(Method::POST, "/api/v1/certificates/bulk-reassign").json(&nothing).send().await.unwrap();
    let problem = assert_problem(response, 422, "validation-failed").await;
    assert_eq!(problem["errors"][0]["field"], "team_id");
    let empty = json!({"certificate_ids": [], "owner_id": "o-bob"});
    let response = app.admin(Method::POST, "/api/v1/certificates/bulk-reassign").json(&empty).send().await.unwrap();
    assert_problem(response, 422, "validation-failed").await;
}

#[actix_web::test]
async fn names_are_stored_in_canonical_form() {
    let app = TestApp::spawn().await;
    let mut body = certificate_body("idn");
    body["common_name"] = json!("Bücher.Example");
    body["sans"] =
        json!(["bücher.example", "*.API.example.com", "2001:DB8::1", "xn--bcher-kva.example", "ops@Example.com"]);
    let created: Value = app.post_certificate(&body).await.json().await.unwrap();
    assert_eq!(created["common_name"], "xn--bcher-kva.example");
    assert_eq!(
        created["sans"],
        json!(["xn--bcher-kva.example", "*.api.example.com", "2001:db8::1", "ops@example.com"]),
        "A-labels, lower case, duplicates dropped"
    );

    let mut bad = certificate_body("bad-names");
    bad["sans"] = json!(["ok.example.com", "-bad.example.com", "a..b", "foo.*.example.com"]);
    let problem = assert_problem(app.post_certificate(&bad).await, 422, "validation-failed").await;
    let fields: Vec<&str> =
        problem["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["sans[1]", "sans[2]", "sans[3]"]);
}

#[actix_web::test]
async fn environments_come_from_a_known_set() {
    let app = TestApp::spawn().await;
    let mut body = certificate_body("lab");
    body["environment"] = json!("lab");
    let problem = assert_problem(app.post_certificate(&body).await, 422, "validation-failed").await;
    assert!(problem["errors"][0]["message"].as_str().unwrap().contains("production, staging"), "{problem}");
    body["environment"] = json!("");
    assert_eq!(app.post_certificate(&body).await.status(), 201, "unspecified is fine");

    let custom = TestApp::spawn_with(&["--environments", "lab,prod"]).await;
    let mut body = certificate_body("lab");
    body["environment"] = json!("lab");
    assert_eq!(custom.post_certificate(&body).await.status(), 201);
}

#[actix_web::test]
async fn versions_list_newest_first_in_pages() {
    let app = TestApp::spawn().await;
    let created = app.create_certificate("versioned").await;
    let id = created["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/certificates/{id}/versions");
    let none: Value = app.get(&path).await.json().await.unwrap();
    assert_eq!(none["data"], json!([]), "nothing issued yet");

    // Versions are written by issuance; here they are inserted as the renewal engine would.
    let client = crate::helpers::cluster().admin_client_for(&app.db_name).await;
    client
        .execute(
            "INSERT INTO certificate_versions (id, certificate_id, serial_number, not_before, not_after, fingerprint_sha256, pem_chain, created_at)
             SELECT 'cv-' || g, $1, to_hex(g), now(), now() + interval '47 days', md5(g::text), 'PEM', now() - (5 - g) * interval '1 hour'
             FROM generate_series(1, 5) g",
            &[&id],
        )
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut next = path.clone() + "?limit=2";
    loop {
        let page: Value = app.get(&next).await.json().await.unwrap();
        seen.extend(page["data"].as_array().unwrap().iter().map(|v| v["id"].as_str().unwrap().to_string()));
        match page["next_cursor"].as_str() {
            Some(cursor) => next = format!("{path}?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, ["cv-5", "cv-4", "cv-3", "cv-2", "cv-1"]);
    assert_problem(app.get("/api/v1/certificates/mc-none/versions").await, 404, "not-found").await;
    assert_problem(app.get(&format!("{path}?limit=0")).await, 400, "invalid-query").await;
}
