//! Stored API keys (hash only). Loaded at start-up; written when the first admin key is generated.

use deadpool_postgres::Client;

use crate::db::DbQuery;
use crate::domain::api_key::ApiKeyRecord;
use crate::error::DbError;

/// Every stored API key.
pub struct ListApiKeys;

impl DbQuery for ListApiKeys {
    type Output = Vec<ApiKeyRecord>;
    const NAME: &'static str = "list_api_keys";

    async fn run(self, client: &mut Client) -> Result<Self::Output, DbError> {
        let stmt = client.prepare_cached("SELECT name, key_hash, admin FROM api_keys ORDER BY name").await?;
        let rows = client.query(&stmt, &[]).await?;
        rows.iter()
            .map(|row| Ok(ApiKeyRecord { name: row.try_get(0)?, key_hash: row.try_get(1)?, admin: row.try_get(2)? }))
            .collect()
    }
}

/// Stores a key by hash. Returns false when a key with that name already exists.
pub struct InsertApiKey(pub ApiKeyRecord);

impl DbQuery for InsertApiKey {
    type Output = bool;
    const NAME: &'static str = "insert_api_key";

    async fn run(self, client: &mut Client) -> Result<bool, DbError> {
        let stmt = client
            .prepare_cached(
                "INSERT INTO api_keys (name, key_hash, admin) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
            )
            .await?;
        let inserted = client.execute(&stmt, &[&self.0.name, &self.0.key_hash, &self.0.admin]).await?;
        Ok(inserted == 1)
    }
}
