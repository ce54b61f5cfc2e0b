//! Migrations: versioned, applied once (a current schema applies nothing), and safe when two
//! replicas start together.

use std::time::Duration;

use certctl_actors::db::bootstrap::{expected_schema_version, migrate};

use crate::helpers::{cluster, empty_database, pg_tls};

#[actix_web::test]
async fn two_replicas_migrating_at_once_both_succeed() {
    let db = empty_database().await;
    let config = cluster().config_for(&db);
    let tls = pg_tls();
    let (a, b) = tokio::join!(
        migrate(&config, &tls, true, Duration::from_secs(10)),
        migrate(&config, &tls, true, Duration::from_secs(10))
    );
    let (a, b) = (a.expect("first replica"), b.expect("second replica"));
    assert_eq!(a.applied.len() + b.applied.len(), expected_schema_version() as usize, "each migration applied once");
    assert_eq!(a.version, b.version);
}

#[actix_web::test]
async fn migrating_a_current_schema_applies_nothing() {
    let db = empty_database().await;
    let config = cluster().config_for(&db);
    migrate(&config, &pg_tls(), false, Duration::from_secs(10)).await.unwrap();
    let again = migrate(&config, &pg_tls(), true, Duration::from_secs(10)).await.unwrap();
    assert!(again.applied.is_empty());
}
