//! The pool contract: about max/5 connections kept warm, idle ones above that pruned after the
//! idle timeout, every connection carrying the statement timeout.

use std::time::{Duration, Instant};

use certctl_actors::db::{build_pool, Db, PoolSettings, PoolStatus};
use certctl_actors::{DbError, DbQuery};

use crate::helpers::{cluster, fresh_database};

async fn wait_for_size(db: &Db, wanted: impl Fn(usize) -> bool, what: &str) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let size = db.actors()[0].send(PoolStatus).await.unwrap().size;
        if wanted(size) {
            return size;
        }
        assert!(Instant::now() < deadline, "{what}: pool size stuck at {size}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_web::test]
async fn a_fifth_stays_warm_and_idle_connections_above_it_are_pruned() {
    let name = fresh_database().await;
    let settings = PoolSettings::new(10, Duration::from_secs(1), Duration::from_secs(2));
    assert_eq!(settings.min_idle, 2, "idle = max/5");
    let pool = build_pool(cluster().config_for(&name), crate::helpers::pg_tls(), &settings).unwrap();
    let db = Db::start(pool.clone(), settings, 1);

    wait_for_size(&db, |size| size >= 2, "warm-up").await;

    // A burst opens eight connections at once…
    let held = futures_util::future::join_all((0..8).map(|_| pool.get())).await;
    assert!(held.iter().all(Result::is_ok));
    drop(held);
    assert!(pool.status().size >= 8);

    // …and once they idle past the timeout, the pool shrinks back to the warm fifth, even while a
    // trickle of queries keeps using it (the pool hands out the most recently used connection).
    let trickle = {
        let db = db.clone();
        actix_web::rt::spawn(async move {
            loop {
                let _ = db.run(ShowStatementTimeout).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let size = wait_for_size(&db, |size| size == 2, "pruning").await;
    assert_eq!(size, 2);
    trickle.abort();
    db.stop();
}

/// Reads the session's statement_timeout through the DB actor, as any query would run.
struct ShowStatementTimeout;

impl DbQuery for ShowStatementTimeout {
    type Output = String;
    const NAME: &'static str = "test_show_statement_timeout";

    async fn run(self, client: &mut deadpool_postgres::Client) -> Result<String, DbError> {
        Ok(client.query_one("SHOW statement_timeout", &[]).await?.try_get(0)?)
    }
}

#[actix_web::test]
async fn every_pooled_connection_has_the_statement_timeout() {
    let app = crate::helpers::TestApp::spawn_with(&["--database-statement-timeout", "1500ms"]).await;
    for _ in 0..4 {
        assert_eq!(app.db.run(ShowStatementTimeout).await.unwrap(), "1500ms");
    }
}
