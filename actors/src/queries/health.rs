//! Readiness: one round trip that proves the database answers and tells the schema version.

use deadpool_postgres::Client;

use crate::db::DbQuery;
use crate::error::DbError;

/// Reads the highest applied migration version (0 when none).
pub struct SchemaVersion;

impl DbQuery for SchemaVersion {
    type Output = i32;
    const NAME: &'static str = "schema_version";

    async fn run(self, client: &mut Client) -> Result<i32, DbError> {
        let stmt = client.prepare_cached("SELECT coalesce(max(version), 0)::int4 FROM refinery_schema_history").await?;
        let row = client.query_one(&stmt, &[]).await?;
        Ok(row.try_get(0)?)
    }
}
