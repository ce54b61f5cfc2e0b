//! Which replica runs each loop: a session-level PostgreSQL advisory lock per loop, all held on
//! one connection taken out of the pool. A replica that dies loses its connection and with it
//! its locks, so another replica's next tick takes the loop over. Every tick re-checks: a lock
//! this replica holds is confirmed by a round trip on its connection, and when that connection
//! broke every lock is treated as lost and acquired again from scratch.

use std::collections::HashSet;

use crate::db::Db;
use crate::error::DbError;

/// The advisory lock key of a loop: a fixed prefix (`certctl` in ASCII) and the loop's index,
/// so certctl's keys cannot collide with another application's small integers.
pub fn lock_key(loop_index: u16) -> i64 {
    0x6365_7274_6374_0000_i64 | i64::from(loop_index)
}

/// The advisory locks this replica holds, on their connection.
pub struct LeaderLocks {
    db: Db,
    state: tokio::sync::Mutex<LockState>,
}

#[derive(Default)]
struct LockState {
    connection: Option<deadpool_postgres::ClientWrapper>,
    held: HashSet<i64>,
}

impl LeaderLocks {
    pub fn new(db: Db) -> LeaderLocks {
        LeaderLocks { db, state: tokio::sync::Mutex::new(LockState::default()) }
    }

    /// Whether this replica leads the loop with `key`, taking the lock when it is free.
    pub async fn try_lead(&self, key: i64) -> Result<bool, DbError> {
        let mut state = self.state.lock().await;
        if state.connection.as_ref().is_some_and(|c| c.is_closed()) {
            state.connection = None;
        }
        if state.connection.is_none() {
            // A new session holds nothing: every lock must be taken again.
            state.held.clear();
            state.connection = Some(self.db.detached_connection().await?);
        }
        let connection = state.connection.as_ref().expect("just set");
        let result = if state.held.contains(&key) {
            connection.query_one("SELECT true", &[]).await.map(|_| true)
        } else {
            connection.query_one("SELECT pg_try_advisory_lock($1)", &[&key]).await.map(|row| row.get::<_, bool>(0))
        };
        match result {
            Ok(true) => {
                state.held.insert(key);
                Ok(true)
            }
            Ok(false) => Ok(false),
            Err(e) => {
                state.connection = None;
                state.held.clear();
                Err(e.into())
            }
        }
    }

    /// Gives every lock up (at shutdown, so another replica need not wait for the connection to
    /// time out).
    pub async fn release_all(&self) {
        let mut state = self.state.lock().await;
        if let Some(connection) = state.connection.take() {
            let _ = connection.batch_execute("SELECT pg_advisory_unlock_all()").await;
        }
        state.held.clear();
    }
}
