//! API keys as the database stores them: a name, the SHA-256 of the key, and the admin flag.
//! The plaintext key exists only in the response or banner that hands it out.

/// A stored API key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// A human name for the key (shown in logs and audit as the actor).
    pub name: String,
    /// Lower-case hex SHA-256 of the key.
    pub key_hash: String,
    /// Whether the key may call admin-only routes.
    pub admin: bool,
}
