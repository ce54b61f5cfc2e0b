//! The certificate list: filters (combined, and `q` with its wildcards taken literally), sorts with
//! keyset pages walked through in each order, sparse fields, and certctl's page/per_page with totals —
//! with no silent caps (out-of-range or mixed paging is a 400); and 100,000 certificates paged
//! exactly in both modes.

use serde_json::{json, Value};

use crate::helpers::{assert_problem, certificate_body, cluster, TestApp};

/// Follows `next_cursor` from `first` to the end and returns the names in order.
async fn walk(app: &TestApp, first: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut path = first.to_string();
    loop {
        let page: Value = app.get(&path).await.json().await.unwrap();
        for item in page["data"].as_array().unwrap_or_else(|| panic!("{page}")) {
            names.push(item["name"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => {
                let sep = if first.contains('?') { '&' } else { '?' };
                path = format!("{first}{sep}cursor={cursor}");
            }
            None => return names,
        }
    }
}

/// Six certificates with distinct names, environments, owners and expiries (one without).
async fn seeded() -> TestApp {
    let app = TestApp::spawn().await;
    let rows = [
        ("delta", "production", "o-alice", Some("2027-01-04")),
        ("alpha", "staging", "o-bob", Some("2027-01-01")),
        ("echo", "production", "o-alice", None),
        ("charlie", "staging", "o-alice", Some("2027-01-03")),
        ("bravo", "production", "o-bob", Some("2027-01-02")),
        ("al_pha", "production", "o-alice", Some("2027-01-05")),
    ];
    let client = cluster().admin_client_for(&app.db_name).await;
    for (name, env, owner, expires) in rows {
        let mut body = certificate_body(name);
        body["environment"] = json!(env);
        body["owner_id"] = json!(owner);
        let created = app.post_certificate(&body).await;
        assert_eq!(created.status(), 201);
        let id = created.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
        if let Some(day) = expires {
            let at = format!("{day}T00:00:00Z");
            client
                .execute(
                    "UPDATE managed_certificates SET expires_at = $2::text::timestamptz WHERE id = $1",
                    &[&id, &at],
                )
                .await
                .unwrap();
        }
    }
    app
}

#[actix_web::test]
async fn every_sort_order_pages_through_everything_once() {
    let app = seeded().await;
    let created = ["delta", "alpha", "echo", "charlie", "bravo", "al_pha"];
    assert_eq!(walk(&app, "/api/v1/certificates?limit=2").await, created);
    let reversed: Vec<&str> = created.iter().rev().copied().collect();
    assert_eq!(walk(&app, "/api/v1/certificates?limit=2&sort=-created_at").await, reversed);
    assert_eq!(
        walk(&app, "/api/v1/certificates?limit=4&sort=name").await,
        ["al_pha", "alpha", "bravo", "charlie", "delta", "echo"]
    );
    assert_eq!(
        walk(&app, "/api/v1/certificates?limit=1&sort=-name").await,
        ["echo", "delta", "charlie", "bravo", "alpha", "al_pha"]
    );
    assert_eq!(
        walk(&app, "/api/v1/certificates?limit=2&sort=expires_at").await,
        ["alpha", "bravo", "charlie", "delta", "al_pha", "echo"],
        "no expiry sorts last"
    );
    assert_eq!(walk(&app, "/api/v1/certificates?limit=5&sort=notAfter").await.len(), 6, "certctl's sort names");
    assert_eq!(walk(&app, "/api/v1/certificates?limit=3&sort=-updated_at").await.len(), 6);
}

#[actix_web::test]
async fn filters_combine() {
    let app = seeded().await;
    assert_eq!(
        walk(&app, "/api/v1/certificates?environment=production&owner_id=o-alice&sort=name").await,
        ["al_pha", "delta", "echo"]
    );
    assert_eq!(
        walk(&app, "/api/v1/certificates?expires_before=2027-01-03T00:00:00Z&sort=name").await,
        ["alpha", "bravo"]
    );
    assert_eq!(walk(&app, "/api/v1/certificates?expires_after=2027-01-04T00:00:00Z").await, ["al_pha"]);
    assert_eq!(walk(&app, "/api/v1/certificates?updated_after=2999-01-01T00:00:00Z").await, Vec::<String>::new());
    assert_eq!(walk(&app, "/api/v1/certificates?issuer_id=iss-local&team_id=t-platform").await.len(), 6);
    assert_eq!(walk(&app, "/api/v1/certificates?q=al&sort=name").await, ["al_pha", "alpha"]);
    assert_eq!(walk(&app, "/api/v1/certificates?q=al_").await, ["al_pha"], "wildcards match literally");
    assert_eq!(walk(&app, "/api/v1/certificates?q=bravo.example").await, ["bravo"], "common name prefix");
}

#[actix_web::test]
async fn sparse_fields_return_only_what_was_asked() {
    let app = seeded().await;
    let page: Value =
        app.get("/api/v1/certificates?fields=id,name,expires_at&sort=name&limit=1").await.json().await.unwrap();
    let item = page["data"][0].as_object().unwrap();
    let mut keys: Vec<&str> = item.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["expires_at", "id", "name"]);
    assert_eq!(item["name"], "al_pha");
    assert_problem(app.get("/api/v1/certificates?fields=id,colour").await, 400, "invalid-query").await;
}

#[actix_web::test]
async fn certctl_page_and_per_page_answer_with_a_total() {
    let app = seeded().await;
    let page: Value = app.get("/api/v1/certificates?page=2&per_page=4&sort=name").await.json().await.unwrap();
    assert_eq!(page["total"], 6);
    assert_eq!(page["page"], 2);
    assert_eq!(page["per_page"], 4);
    let names: Vec<&str> = page["data"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["delta", "echo"]);
    let beyond: Value = app.get("/api/v1/certificates?page=9&per_page=4").await.json().await.unwrap();
    assert_eq!(beyond["data"], json!([]));
    assert_eq!(beyond["total"], 6);

    let keyset: Value =
        app.get("/api/v1/certificates?limit=2&include_total=true&owner_id=o-bob").await.json().await.unwrap();
    assert_eq!(keyset["total"], 2);
    let plain: Value = app.get("/api/v1/certificates?limit=2").await.json().await.unwrap();
    assert!(plain.get("total").is_none(), "no count unless asked");
    let last: Value = app.get("/api/v1/certificates?limit=1000").await.json().await.unwrap();
    assert_eq!(last["next_cursor"], Value::Null, "present and null on the last page");
    assert!(last.as_object().unwrap().contains_key("next_cursor"));
    assert!(page.get("next_cursor").is_none(), "absent in page/per_page mode");
}

#[actix_web::test]
async fn out_of_range_or_mixed_paging_is_a_400_never_a_silent_cap() {
    let app = seeded().await;
    let first: Value = app.get("/api/v1/certificates?limit=2&sort=name").await.json().await.unwrap();
    let cursor = first["next_cursor"].as_str().unwrap();
    for query in [
        "per_page=5000".to_string(),
        "page=0".to_string(),
        "page=1&cursor=abc".to_string(),
        "per_page=10&limit=10".to_string(),
        format!("sort=created_at&cursor={cursor}"),
        "sort=colour".to_string(),
        "expires_before=tomorrow".to_string(),
        "owner_id=bad%20id".to_string(),
    ] {
        let response = app.get(&format!("/api/v1/certificates?{query}")).await;
        assert_problem(response, 400, "invalid-query").await;
    }
}

#[actix_web::test]
async fn a_hundred_thousand_certificates_page_exactly_in_both_modes() {
    let app = TestApp::spawn().await;
    let client = cluster().admin_client_for(&app.db_name).await;
    client
        .execute(
            "INSERT INTO managed_certificates (id, name, common_name, owner_id, team_id, issuer_id, renewal_policy_id, created_at)
             SELECT 'mc-' || lpad(g::text, 6, '0'), 'many-' || g, 'many-' || g || '.example.com', 'o-alice', 't-platform',
                    'iss-local', 'rp-standard', '2026-01-01'::timestamptz + (g / 7) * interval '1 second'
             FROM generate_series(1, 100000) g",
            &[],
        )
        .await
        .unwrap();
    client.batch_execute("ANALYZE managed_certificates").await.unwrap();

    // Keyset: 100 pages of 1,000; ties on created_at (7 rows per second) broken by id.
    let mut seen = std::collections::HashSet::new();
    let mut path = "/api/v1/certificates?limit=1000&fields=id".to_string();
    let mut pages = 0;
    loop {
        let page: Value = app.get(&path).await.json().await.unwrap();
        for item in page["data"].as_array().unwrap() {
            assert!(seen.insert(item["id"].as_str().unwrap().to_string()), "an id came twice");
        }
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/certificates?limit=1000&fields=id&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 100_000);
    assert_eq!(pages, 100);

    // Offset: the last page of 1,000, with the total.
    let last: Value = app.get("/api/v1/certificates?page=100&per_page=1000&fields=id").await.json().await.unwrap();
    assert_eq!(last["total"], 100_000);
    assert_eq!(last["data"].as_array().unwrap().len(), 1000);
    assert_eq!(last["data"][999]["id"], "mc-100000");
}
