//! An issuer's type and full configuration (secrets included), for building its connector.

use deadpool_postgres::Client;

use crate::db::DbQuery;
use crate::error::DbError;

/// What the issuer registry needs to build a connector.
#[derive(Clone, Debug)]
pub struct IssuerConfig {
    pub id: String,
    pub issuer_type: String,
    pub config: serde_json::Value,
    pub enabled: bool,
}

/// Reads one issuer's type and configuration.
pub struct LoadIssuerConfig {
    pub id: String,
}

impl DbQuery for LoadIssuerConfig {
    type Output = Option<IssuerConfig>;
    const NAME: &'static str = "load_issuer_config";

    async fn run(self, client: &mut Client) -> Result<Option<IssuerConfig>, DbError> {
        let stmt = client.prepare_cached("SELECT id, type, config, enabled FROM issuers WHERE id = $1").await?;
        let Some(row) = client.query_opt(&stmt, &[&self.id]).await? else { return Ok(None) };
        Ok(Some(IssuerConfig {
            id: row.try_get(0)?,
            issuer_type: row.try_get(1)?,
            config: row.try_get(2)?,
            enabled: row.try_get(3)?,
        }))
    }
}
