//! Failures that must not take the server down: the database going away (503, recovery without a
//! restart), pool exhaustion (503 instead of hanging), and a supervised actor restarting (a
//! recycled DB actor keeps serving).

use std::time::{Duration, Instant};

use reqwest::Method;

use crate::helpers::{assert_problem, cluster, metric_value, TestApp};

#[actix_web::test]
async fn a_database_outage_is_a_503_and_the_server_recovers_without_restart() {
    let app = TestApp::spawn_with(&["--database-pool-timeout", "1s"]).await;
    app.create_certificate("before").await;

    app.break_database().await;
    let response = app.get("/api/v1/certificates").await;
    let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
    let problem = assert_problem(response, 503, "service-unavailable").await;
    assert!(retry_after.is_some(), "Retry-After on 503");
    let detail = problem["detail"].as_str().unwrap();
    assert!(!detail.contains("SQLSTATE") && !detail.contains("FATAL"), "no driver text: {detail}");

    app.repair_database().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let response = app.get("/api/v1/certificates").await;
        if response.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the server did not recover: {}", response.status());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.create_certificate("after").await;
}

#[actix_web::test]
async fn an_exhausted_pool_answers_503_instead_of_hanging() {
    let app = TestApp::spawn_with(&["--database-max-conns", "1", "--database-pool-timeout", "300ms"]).await;
    let created = app.create_certificate("locked").await;
    let path = format!("/api/v1/certificates/{}", created["id"].as_str().unwrap());

    // Hold a lock that makes a read wait, so the pool's only connection stays busy.
    let mut locker = cluster().admin_client_for(&app.db_name).await;
    let tx = locker.transaction().await.unwrap();
    tx.batch_execute("LOCK TABLE managed_certificates IN ACCESS EXCLUSIVE MODE").await.unwrap();

    let blocked = app.admin(Method::GET, &path).send();
    let blocked = actix_web::rt::spawn(blocked);
    // Wait until that request holds the pool's connection and is stuck behind the lock.
    let observer = cluster().admin_client().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let waiting: i64 = observer
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'",
                &[&app.db_name],
            )
            .await
            .unwrap()
            .get(0);
        if waiting > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the first request never reached the lock");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let started = Instant::now();
    let response = app.get(&path).await;
    assert!(started.elapsed() < Duration::from_secs(5), "bounded wait");
    assert!(response.headers().contains_key("retry-after"));
    assert_problem(response, 503, "service-unavailable").await;

    tx.rollback().await.unwrap();
    let first = blocked.await.unwrap().unwrap();
    assert_eq!(first.status(), 200, "the waiting request completes once the lock is gone");
    assert_eq!(app.get(&path).await.status(), 200);
}

#[actix_web::test]
async fn a_recycled_db_actor_restarts_and_keeps_serving() {
    let app = TestApp::spawn().await;
    let series = "certctl_actor_restarts_total{actor=\"db\"}";
    let before = metric_value(&app.metrics_text().await, series).unwrap_or(0.0);

    for actor in app.db.actors() {
        actor.send(certctl_actors::db::Recycle).await.expect("the actor takes the message");
    }
    // Requests right after the restart are served by the restarted instances.
    for i in 0..10 {
        app.create_certificate(&format!("after-restart-{i}")).await;
    }
    let after = metric_value(&app.metrics_text().await, series).unwrap_or(0.0);
    assert!(after >= before + app.db.actors().len() as f64, "restarts counted: {before} -> {after}");
    let status = app.db.actors()[0].send(certctl_actors::db::PoolStatus).await.unwrap();
    assert!(status.size >= 1, "the shared pool survived the restart");
}
