//! API keys in memory: only SHA-256 hashes are kept, and a presented key is compared against
//! every stored hash in constant time (no early exit), so timing reveals nothing about which
//! key, or how much of one, matched.

use subtle::ConstantTimeEq;

use certctl_actors::domain::api_key::{self, key_hash, ApiKeyRecord};

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

/// A new random API key: `cctl_` and 32 random bytes in base64url (256 bits of entropy).
pub fn generate_key() -> anyhow::Result<String> {
    api_key::generate_key("cctl_")
}

impl KeyStore {
    /// Adds a key by its plaintext (configured keys).
    pub fn add_plain(&mut self, name: &str, key: &str, admin: bool, read_only: bool) {
        self.keys.push(StoredKey {
            hash: key_hash(key),
            caller: Caller { name: name.to_string(), admin, read_only, authenticated: true, ..Caller::default() },
        });
    }

    /// Adds a stored key by its hash. Malformed hashes are skipped with a warning.
    pub fn add_record(&mut self, record: &ApiKeyRecord) {
        match api_key::from_hex(&record.key_hash) {
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

    /// The caller the key with this SHA-256 belongs to, if any. Every stored hash is compared.
    pub fn authenticate(&self, hash: &[u8; 32]) -> Option<Caller> {
        let mut found: Option<&Caller> = None;
        for key in &self.keys {
            if bool::from(key.hash.ct_eq(hash)) {
                found = Some(&key.caller);
            }
        }
        found.cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use certctl_actors::domain::api_key::to_hex;

    #[test]
    fn keys_authenticate_by_hash() {
        let mut store = KeyStore::default();
        store.add_plain("ops", "0123456789abcdef", true, false);
        let generated = generate_key().unwrap();
        store.add_record(&ApiKeyRecord { name: "gen".into(), key_hash: to_hex(&key_hash(&generated)), admin: false });
        assert_eq!(store.authenticate(&key_hash("0123456789abcdef")).map(|c| c.admin), Some(true));
        assert_eq!(store.authenticate(&key_hash(&generated)).map(|c| c.name), Some("gen".into()));
        assert_eq!(store.authenticate(&key_hash("0123456789abcdeX")), None);
    }
}
