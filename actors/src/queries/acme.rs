//! What the ACME connector keeps in the database: each issuer's account (credentials sealed) and
//! the http-01 answers any replica's challenge listener serves.

use deadpool_postgres::Client;

use crate::db::DbQuery;
use crate::error::DbError;

/// A stored ACME account.
#[derive(Clone, Debug)]
pub struct StoredAcmeAccount {
    pub directory_url: String,
    pub account_url: String,
    /// The client's serialised credentials (account key included), sealed.
    pub credentials_sealed: Vec<u8>,
}

/// The issuer's account, if one was created.
pub struct LoadAcmeAccount {
    pub issuer_id: String,
}

impl DbQuery for LoadAcmeAccount {
    type Output = Option<StoredAcmeAccount>;
    const NAME: &'static str = "load_acme_account";

    async fn run(self, client: &mut Client) -> Result<Option<StoredAcmeAccount>, DbError> {
        let stmt = client
            .prepare_cached(
                "SELECT directory_url, account_url, credentials_sealed FROM acme_accounts WHERE issuer_id = $1",
            )
            .await?;
        let Some(row) = client.query_opt(&stmt, &[&self.issuer_id]).await? else { return Ok(None) };
        Ok(Some(StoredAcmeAccount {
            directory_url: row.try_get(0)?,
            account_url: row.try_get(1)?,
            credentials_sealed: row.try_get(2)?,
        }))
    }
}

/// Stores a new account for the issuer, unless another replica stored one for the same directory
/// first; answers the account to use (the stored one wins, so every replica signs as one account).
/// An account for another directory (the issuer's `directory_url` changed) is replaced.
pub struct StoreAcmeAccount {
    pub issuer_id: String,
    pub account: StoredAcmeAccount,
}

impl DbQuery for StoreAcmeAccount {
    type Output = StoredAcmeAccount;
    const NAME: &'static str = "store_acme_account";

    async fn run(self, client: &mut Client) -> Result<StoredAcmeAccount, DbError> {
        let stmt = client
            .prepare_cached(
                "WITH put AS ( \
                   INSERT INTO acme_accounts (issuer_id, directory_url, account_url, credentials_sealed) \
                   VALUES ($1, $2, $3, $4) \
                   ON CONFLICT (issuer_id) DO UPDATE SET directory_url = excluded.directory_url, \
                          account_url = excluded.account_url, credentials_sealed = excluded.credentials_sealed, \
                          created_at = now() \
                    WHERE acme_accounts.directory_url <> excluded.directory_url \
                   RETURNING directory_url, account_url, credentials_sealed) \
                 SELECT * FROM put \
                 UNION ALL \
                 SELECT directory_url, account_url, credentials_sealed FROM acme_accounts \
                  WHERE issuer_id = $1 AND NOT EXISTS (SELECT 1 FROM put)",
            )
            .await?;
        let a = &self.account;
        let row = client
            .query_one(&stmt, &[&self.issuer_id, &a.directory_url, &a.account_url, &a.credentials_sealed])
            .await?;
        Ok(StoredAcmeAccount {
            directory_url: row.try_get(0)?,
            account_url: row.try_get(1)?,
            credentials_sealed: row.try_get(2)?,
        })
    }
}

/// Publishes an http-01 answer for the challenge listener.
pub struct PutHttp01Answer {
    pub token: String,
    pub key_authorization: String,
    pub order_id: String,
}

impl DbQuery for PutHttp01Answer {
    type Output = ();
    const NAME: &'static str = "put_http01_answer";

    async fn run(self, client: &mut Client) -> Result<(), DbError> {
        let stmt = client
            .prepare_cached(
                "INSERT INTO acme_http01_tokens (token, key_authorization, order_id) VALUES ($1, $2, $3) \
                 ON CONFLICT (token) DO UPDATE SET key_authorization = excluded.key_authorization",
            )
            .await?;
        client.execute(&stmt, &[&self.token, &self.key_authorization, &self.order_id]).await?;
        Ok(())
    }
}

/// The key authorization for an http-01 token, if one is published.
pub struct Http01Answer {
    pub token: String,
}

impl DbQuery for Http01Answer {
    type Output = Option<String>;
    const NAME: &'static str = "http01_answer";

    async fn run(self, client: &mut Client) -> Result<Option<String>, DbError> {
        let stmt = client.prepare_cached("SELECT key_authorization FROM acme_http01_tokens WHERE token = $1").await?;
        Ok(client.query_opt(&stmt, &[&self.token]).await?.map(|row| row.try_get(0)).transpose()?)
    }
}

/// Withdraws an order's http-01 answers once it has left `pending`.
pub struct DeleteHttp01Answers {
    pub order_id: String,
}

impl DbQuery for DeleteHttp01Answers {
    type Output = u64;
    const NAME: &'static str = "delete_http01_answers";

    async fn run(self, client: &mut Client) -> Result<u64, DbError> {
        let stmt = client.prepare_cached("DELETE FROM acme_http01_tokens WHERE order_id = $1").await?;
        Ok(client.execute(&stmt, &[&self.order_id]).await?)
    }
}
