//! API keys in memory: only SHA-256 hashes are kept, and a presented key is compared against
//! every stored hash in constant time (no early exit), so timing reveals nothing about which
//! key, or how much of one, matched.

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use certctl_actors::domain::api_key::ApiKeyRecord;

/// Who is calling: the key's name and what it may do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    /// An admin key: everything.
    pub admin: bool,
    /// A read-only key: `GET` and `HEAD` only.
    pub read_only: bool,
    /// False when authentication is disabled and the caller is anonymous.
    pub authenticated: bool,
    /// Set for an agent's own key: the agent's id (the key is confined to its endpoints).
    pub agent_id: Option<std::sync::Arc<str>>,
    /// The agent bootstrap token (`CERTCTL_AGENT_BOOTSTRAP_TOKEN`): may only register agents.
    pub bootstrap: bool,
}

struct StoredKey {
    hash: [u8; 32],
    caller: Caller,
}

/// The keys the server accepts.
#[derive(Default)]
pub struct KeyStore {
    keys: Vec<StoredKey>,
}

/// SHA-256 of a key, as raw bytes.
pub fn hash_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// SHA-256 of a key, as lower-case hex (the stored form).
pub fn hash_key_hex(key: &str) -> String {
    hash_key(key).iter().map(|b| format!("{b:02x}")).collect()
}

/// A new random key: `cctl_` and 32 random bytes in base64url (256 bits of entropy).
pub fn generate_key() -> String {
    random_key("cctl_")
}

fn random_key(prefix: &str) -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

impl KeyStore {
    /// Adds a key by its plaintext (configured keys).
    pub fn add_plain(&mut self, name: &str, key: &str, admin: bool, read_only: bool) {
        self.keys.push(StoredKey {
            hash: hash_key(key),
            caller: Caller { name: name.to_string(), admin, read_only, authenticated: true, ..Caller::default() },
        });
    }

    /// Adds a stored key by its hash. Malformed hashes are skipped with a warning.
    pub fn add_record(&mut self, record: &ApiKeyRecord) {
        let bytes: Option<Vec<u8>> = (0..record.key_hash.len())
            .step_by(2)
            .map(|i| record.key_hash.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
            .collect();
        match bytes.and_then(|b| <[u8; 32]>::try_from(b).ok()) {
            Some(hash) => self.keys.push(StoredKey {
                hash,
                caller: Caller {
                    name: record.name.clone(),
                    admin: record.admin,
                    authenticated: true,
                    ..Caller::default()
                },
            }),
            None => {
                tracing::warn!(key = %record.name, "ignoring a stored API key with a malformed hash")
            }
        }
    }

    /// How many keys are accepted.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is accepted.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The caller a presented key belongs to, if any. Every stored hash is compared.
    pub fn authenticate(&self, presented: &str) -> Option<Caller> {
        let hash = hash_key(presented);
        let mut found: Option<&Caller> = None;
        for key in &self.keys {
            if bool::from(key.hash.ct_eq(&hash)) {
                found = Some(&key.caller);
            }
        }
        found.cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_authenticate_by_hash() {
        let mut store = KeyStore::default();
        store.add_plain("ops", "0123456789abcdef", true, false);
        let generated = generate_key();
        store.add_record(&ApiKeyRecord { name: "gen".into(), key_hash: hash_key_hex(&generated), admin: false });
        assert_eq!(store.authenticate("0123456789abcdef").map(|c| c.admin), Some(true));
        assert_eq!(store.authenticate(&generated).map(|c| c.name), Some("gen".into()));
        assert_eq!(store.authenticate("0123456789abcdeX"), None);
    }

    #[test]
    fn generated_keys_are_long_and_distinct() {
        let (a, b) = (generate_key(), generate_key());
        assert_ne!(a, b);
        assert!(a.len() > 40);
    }
}
