//! The sealing parameters (salt, iterations, check value) and each local issuer's sealed CA.

use deadpool_postgres::Client;

use crate::db::DbQuery;
use crate::error::DbError;

/// The stored key-derivation parameters and the check value sealed with the derived key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealingParameters {
    pub salt: Vec<u8>,
    pub iterations: i32,
    pub check_blob: Vec<u8>,
}

/// Stores `parameters` unless another replica stored its own first; answers with the ones that
/// are stored either way.
pub struct InitSealing(pub SealingParameters);

/// Reads the stored sealing parameters, if any.
pub struct LoadSealing;

impl DbQuery for LoadSealing {
    type Output = Option<SealingParameters>;
    const NAME: &'static str = "load_sealing";

    async fn run(self, client: &mut Client) -> Result<Option<SealingParameters>, DbError> {
        let stmt =
            client.prepare_cached("SELECT salt, iterations, check_blob FROM secret_sealing WHERE id = 1").await?;
        let Some(row) = client.query_opt(&stmt, &[]).await? else { return Ok(None) };
        Ok(Some(SealingParameters { salt: row.try_get(0)?, iterations: row.try_get(1)?, check_blob: row.try_get(2)? }))
    }
}

impl DbQuery for InitSealing {
    type Output = SealingParameters;
    const NAME: &'static str = "init_sealing";

    async fn run(self, client: &mut Client) -> Result<SealingParameters, DbError> {
        let p = self.0;
        let stmt = client
            .prepare_cached(
                "INSERT INTO secret_sealing (id, salt, iterations, check_blob) VALUES (1, $1, $2, $3) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .await?;
        client.execute(&stmt, &[&p.salt, &p.iterations, &p.check_blob]).await?;
        LoadSealing
            .run(client)
            .await?
            .ok_or_else(|| DbError::Unexpected(anyhow::anyhow!("secret_sealing row vanished")))
    }
}

/// A local issuer's stored CA.
#[derive(Clone, Debug)]
pub struct StoredCa {
    pub key_algorithm: String,
    pub cert_pem: String,
    pub chain_pem: String,
    pub key_sealed: Vec<u8>,
}

/// Reads the CA of a local issuer.
pub struct LoadIssuerCa {
    pub issuer_id: String,
}

impl DbQuery for LoadIssuerCa {
    type Output = Option<StoredCa>;
    const NAME: &'static str = "load_issuer_ca";

    async fn run(self, client: &mut Client) -> Result<Option<StoredCa>, DbError> {
        let stmt = client
            .prepare_cached("SELECT key_algorithm, cert_pem, chain_pem, key_sealed FROM issuer_ca WHERE issuer_id = $1")
            .await?;
        let Some(row) = client.query_opt(&stmt, &[&self.issuer_id]).await? else { return Ok(None) };
        Ok(Some(StoredCa {
            key_algorithm: row.try_get(0)?,
            cert_pem: row.try_get(1)?,
            chain_pem: row.try_get(2)?,
            key_sealed: row.try_get(3)?,
        }))
    }
}

/// Stores a newly generated CA unless another replica stored one first; answers with the CA
/// that is stored either way, so every replica signs with the same one.
pub struct InitIssuerCa {
    pub issuer_id: String,
    pub ca: StoredCa,
}

impl DbQuery for InitIssuerCa {
    type Output = StoredCa;
    const NAME: &'static str = "init_issuer_ca";

    async fn run(self, client: &mut Client) -> Result<StoredCa, DbError> {
        let stmt = client
            .prepare_cached(
                "INSERT INTO issuer_ca (issuer_id, key_algorithm, cert_pem, chain_pem, key_sealed) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (issuer_id) DO NOTHING",
            )
            .await?;
        let ca = &self.ca;
        client
            .execute(&stmt, &[&self.issuer_id, &ca.key_algorithm, &ca.cert_pem, &ca.chain_pem, &ca.key_sealed])
            .await?;
        LoadIssuerCa { issuer_id: self.issuer_id }
            .run(client)
            .await?
            .ok_or_else(|| DbError::Unexpected(anyhow::anyhow!("issuer_ca row vanished")))
    }
}

/// Seals the secret config fields of issuers that still hold them in clear (stored before V12,
/// or written straight into the database), one row at a time under its own lock; answers how
/// many issuers changed. Only rows whose config changes are written.
pub struct SealClearIssuerSecrets {
    pub sealing: std::sync::Arc<crate::crypto::seal::SealingKey>,
}

impl DbQuery for SealClearIssuerSecrets {
    type Output = u64;
    const NAME: &'static str = "seal_clear_issuer_secrets";

    async fn run(self, client: &mut Client) -> Result<u64, DbError> {
        use crate::issuers::sealed_config::{has_clear_secrets, seal_config};
        // The issuers table holds a handful of rows: reading them all at start-up is cheap.
        let stmt = client.prepare_cached("SELECT id, type, config FROM issuers").await?;
        let rows = client.query(&stmt, &[]).await?;
        let update = client
            .prepare_cached("UPDATE issuers SET config = $3, updated_at = now() WHERE id = $1 AND config = $2")
            .await?;
        let mut changed = 0;
        for row in rows {
            let (id, issuer_type, config): (String, String, serde_json::Value) =
                (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
            if !has_clear_secrets(&issuer_type, &config) {
                continue;
            }
            let sealed = seal_config(Some(&issuer_type), config.clone(), &self.sealing);
            // Matching the old config keeps a concurrent edit (another replica starting) intact.
            changed += client.execute(&update, &[&id, &config, &sealed]).await?;
        }
        Ok(changed)
    }
}
