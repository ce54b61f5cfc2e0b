//! The sealing key at run time: derived once from `CERTCTL_CONFIG_ENCRYPTION_KEY` with the salt
//! stored in the database (created by the first replica to start), and checked against the
//! stored check value so a replica with a different key stops at start-up with a clear message.

use std::sync::{Arc, Mutex, OnceLock};

use sha2::{Digest, Sha256};

use crate::crypto::seal::{OpenError, SealingKey, PBKDF2_ITERATIONS};
use crate::db::Db;
use crate::error::DbError;
use crate::queries::secrets::{InitSealing, LoadSealing, SealingParameters};

/// The plaintext sealed as the check value.
const CHECK_PLAINTEXT: &[u8] = b"certctl sealing check v1";

/// Why the sealing key could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error(
        "CERTCTL_CONFIG_ENCRYPTION_KEY does not match the key this database's secrets were sealed with; \
         every replica needs the same value"
    )]
    WrongKey,
    #[error("the stored sealing parameters are damaged: {0}")]
    Damaged(OpenError),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Derivations already done in this process, by (passphrase hash, salt, iterations): tests start
/// many servers on databases cloned from one template, and PBKDF2 is slow on purpose.
type Derived = Vec<([u8; 32], Vec<u8>, i32, Arc<SealingKey>)>;
static DERIVED: OnceLock<Mutex<Derived>> = OnceLock::new();

async fn derive(passphrase: &str, salt: &[u8], iterations: i32) -> Arc<SealingKey> {
    let fingerprint: [u8; 32] = Sha256::digest(passphrase.as_bytes()).into();
    let cache = DERIVED.get_or_init(Default::default);
    let hit = cache.lock().unwrap_or_else(|e| e.into_inner()).iter().find_map(|(f, s, i, key)| {
        (f == &fingerprint && s.as_slice() == salt && *i == iterations).then(|| key.clone())
    });
    if let Some(key) = hit {
        return key;
    }
    let (passphrase, salt_owned) = (passphrase.to_owned(), salt.to_vec());
    let key = tokio::task::spawn_blocking(move || {
        Arc::new(SealingKey::derive(&passphrase, &salt_owned, iterations.max(1) as u32))
    })
    .await
    .expect("the key derivation thread panicked");
    cache.lock().unwrap_or_else(|e| e.into_inner()).push((fingerprint, salt.to_vec(), iterations, key.clone()));
    key
}

/// The sealing key for this database, creating the parameters on first start.
pub async fn open_sealing_key(db: &Db, passphrase: &str) -> Result<Arc<SealingKey>, SecretsError> {
    let stored = match db.run(LoadSealing).await? {
        Some(stored) => stored,
        None => {
            let salt = SealingKey::new_salt().to_vec();
            let iterations = PBKDF2_ITERATIONS as i32;
            let key = derive(passphrase, &salt, iterations).await;
            let check_blob = key.seal(CHECK_PLAINTEXT);
            // Another replica may have stored its parameters first: use whatever is stored.
            db.run(InitSealing(SealingParameters { salt, iterations, check_blob })).await?
        }
    };
    let key = derive(passphrase, &stored.salt, stored.iterations).await;
    match key.open(&stored.check_blob) {
        Ok(plain) if plain == CHECK_PLAINTEXT => Ok(key),
        Ok(_) | Err(OpenError::WrongKey) => Err(SecretsError::WrongKey),
        Err(e) => Err(SecretsError::Damaged(e)),
    }
}
