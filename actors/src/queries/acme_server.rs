//! What the ACME server keeps: accounts (per profile, by key thumbprint) and the used-nonce set
//! that makes nonces single use across replicas.

use chrono::{DateTime, Utc};
use deadpool_postgres::Client;
use tokio_postgres::Row;

use crate::db::DbQuery;
use crate::error::DbError;

/// An ACME account of certctl's ACME server.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerAccount {
    pub id: String,
    pub profile_id: String,
    pub thumbprint: String,
    /// The canonical public JWK.
    pub jwk: serde_json::Value,
    /// `valid`, `deactivated` or `revoked`.
    pub status: String,
    pub contact: Vec<String>,
    pub tos_agreed: bool,
    pub created_at: DateTime<Utc>,
}

const ACCOUNT_COLUMNS: &str = "id, profile_id, thumbprint, jwk, status, contact, tos_agreed, created_at";

fn account(row: &Row) -> Result<ServerAccount, DbError> {
    Ok(ServerAccount {
        id: row.try_get(0)?,
        profile_id: row.try_get(1)?,
        thumbprint: row.try_get(2)?,
        jwk: row.try_get(3)?,
        status: row.try_get(4)?,
        contact: row.try_get(5)?,
        tos_agreed: row.try_get(6)?,
        created_at: row.try_get(7)?,
    })
}

/// Records a nonce as used; `false` when it was used already (a replay).
pub struct RedeemNonce {
    pub id: Vec<u8>,
    pub expires_at: DateTime<Utc>,
}

impl DbQuery for RedeemNonce {
    type Output = bool;
    const NAME: &'static str = "redeem_acme_nonce";

    async fn run(self, client: &mut Client) -> Result<bool, DbError> {
        let stmt = client
            .prepare_cached("INSERT INTO acme_nonces_used (id, expires_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING")
            .await?;
        Ok(client.execute(&stmt, &[&self.id, &self.expires_at]).await? == 1)
    }
}

/// The profile's account for a key, by thumbprint.
pub struct AccountByKey {
    pub profile_id: String,
    pub thumbprint: String,
}

impl DbQuery for AccountByKey {
    type Output = Option<ServerAccount>;
    const NAME: &'static str = "acme_account_by_key";

    async fn run(self, client: &mut Client) -> Result<Option<ServerAccount>, DbError> {
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {ACCOUNT_COLUMNS} FROM acme_server_accounts WHERE profile_id = $1 AND thumbprint = $2"
            ))
            .await?;
        client.query_opt(&stmt, &[&self.profile_id, &self.thumbprint]).await?.as_ref().map(account).transpose()
    }
}

/// An account by id.
pub struct AccountById {
    pub id: String,
}

impl DbQuery for AccountById {
    type Output = Option<ServerAccount>;
    const NAME: &'static str = "acme_account_by_id";

    async fn run(self, client: &mut Client) -> Result<Option<ServerAccount>, DbError> {
        let stmt =
            client.prepare_cached(&format!("SELECT {ACCOUNT_COLUMNS} FROM acme_server_accounts WHERE id = $1")).await?;
        client.query_opt(&stmt, &[&self.id]).await?.as_ref().map(account).transpose()
    }
}

/// Creates an account, or answers the one the key already holds under the profile (two
/// new-account requests racing with one key get one account). `.1`: whether it was created.
pub struct CreateAccount {
    pub id: String,
    pub profile_id: String,
    pub thumbprint: String,
    pub jwk: serde_json::Value,
    pub contact: Vec<String>,
    pub tos_agreed: bool,
}

impl DbQuery for CreateAccount {
    type Output = (ServerAccount, bool);
    const NAME: &'static str = "create_acme_account";

    async fn run(self, client: &mut Client) -> Result<(ServerAccount, bool), DbError> {
        let stmt = client
            .prepare_cached(&format!(
                "WITH made AS ( \
                   INSERT INTO acme_server_accounts (id, profile_id, thumbprint, jwk, contact, tos_agreed) \
                   VALUES ($1, $2, $3, $4, $5, $6) \
                   ON CONFLICT ON CONSTRAINT acme_server_accounts_key_per_profile DO NOTHING \
                   RETURNING {ACCOUNT_COLUMNS}) \
                 SELECT {ACCOUNT_COLUMNS}, true FROM made \
                 UNION ALL \
                 SELECT {ACCOUNT_COLUMNS}, false FROM acme_server_accounts \
                  WHERE profile_id = $2 AND thumbprint = $3 AND NOT EXISTS (SELECT 1 FROM made)"
            ))
            .await?;
        let row = client
            .query_one(
                &stmt,
                &[&self.id, &self.profile_id, &self.thumbprint, &self.jwk, &self.contact, &self.tos_agreed],
            )
            .await?;
        Ok((account(&row)?, row.try_get(8)?))
    }
}

/// Changes an account's contacts and/or deactivates it; `None` when it is no longer valid.
pub struct UpdateAccount {
    pub id: String,
    pub contact: Option<Vec<String>>,
    pub deactivate: bool,
}

impl DbQuery for UpdateAccount {
    type Output = Option<ServerAccount>;
    const NAME: &'static str = "update_acme_account";

    async fn run(self, client: &mut Client) -> Result<Option<ServerAccount>, DbError> {
        let stmt = client
            .prepare_cached(&format!(
                "UPDATE acme_server_accounts SET contact = coalesce($2, contact), \
                        status = CASE WHEN $3 THEN 'deactivated' ELSE status END, updated_at = now() \
                  WHERE id = $1 AND status = 'valid' RETURNING {ACCOUNT_COLUMNS}"
            ))
            .await?;
        client.query_opt(&stmt, &[&self.id, &self.contact, &self.deactivate]).await?.as_ref().map(account).transpose()
    }
}

/// Whether a profile exists and is enabled (`None`: no such profile).
pub struct AcmeProfile {
    pub id: String,
}

impl DbQuery for AcmeProfile {
    type Output = Option<bool>;
    const NAME: &'static str = "acme_profile";

    async fn run(self, client: &mut Client) -> Result<Option<bool>, DbError> {
        let stmt = client.prepare_cached("SELECT enabled FROM certificate_profiles WHERE id = $1").await?;
        Ok(client.query_opt(&stmt, &[&self.id]).await?.map(|row| row.try_get(0)).transpose()?)
    }
}

/// Deletes up to `batch` used-nonce rows whose nonces can no longer be presented; answers how many.
pub struct SweepUsedNonces {
    pub batch: i64,
}

impl DbQuery for SweepUsedNonces {
    type Output = u64;
    const NAME: &'static str = "sweep_acme_nonces";

    async fn run(self, client: &mut Client) -> Result<u64, DbError> {
        let stmt = client
            .prepare_cached(
                "DELETE FROM acme_nonces_used WHERE id IN ( \
                   SELECT id FROM acme_nonces_used WHERE expires_at < now() ORDER BY expires_at LIMIT $1 \
                   FOR UPDATE SKIP LOCKED)",
            )
            .await?;
        Ok(client.execute(&stmt, &[&self.batch]).await?)
    }
}

/// A stored certificate version with a given serial, and what its renewal window depends on.
#[derive(Clone, Debug)]
pub struct SerialMatch {
    /// The version's chain, leaf first (its Authority Key Identifier tells the issuer apart).
    pub pem_chain: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    /// The managed certificate's `renew_at`, when this is its newest version.
    pub planned: Option<DateTime<Utc>>,
    /// Revoked, or a newer version of the certificate exists.
    pub renew_now: bool,
}

/// Versions whose serial is `serial` (lower-case hex without leading zeros), newest first.
pub struct VersionsBySerial {
    pub serial: String,
}

impl DbQuery for VersionsBySerial {
    type Output = Vec<SerialMatch>;
    const NAME: &'static str = "versions_by_serial";

    async fn run(self, client: &mut Client) -> Result<Vec<SerialMatch>, DbError> {
        let stmt = client
            .prepare_cached(
                "SELECT v.pem_chain, v.not_before, v.not_after, \
                        CASE WHEN newer.id IS NULL THEN m.renew_at END, \
                        newer.id IS NOT NULL OR m.status = 'Revoked' OR EXISTS ( \
                          SELECT 1 FROM certificate_revocations r \
                           WHERE r.certificate_id = v.certificate_id AND r.serial_number = v.serial_number) \
                   FROM certificate_versions v \
                   JOIN managed_certificates m ON m.id = v.certificate_id \
                   LEFT JOIN LATERAL ( \
                     SELECT n.id FROM certificate_versions n \
                      WHERE n.certificate_id = v.certificate_id AND (n.created_at, n.id) > (v.created_at, v.id) \
                      LIMIT 1) newer ON true \
                  WHERE ltrim(v.serial_number, '0') = $1 \
                  ORDER BY v.created_at DESC LIMIT 16",
            )
            .await?;
        let rows = client.query(&stmt, &[&self.serial]).await?;
        rows.iter()
            .map(|row| {
                Ok(SerialMatch {
                    pem_chain: row.try_get(0)?,
                    not_before: row.try_get(1)?,
                    not_after: row.try_get(2)?,
                    planned: row.try_get(3)?,
                    renew_now: row.try_get(4)?,
                })
            })
            .collect()
    }
}
