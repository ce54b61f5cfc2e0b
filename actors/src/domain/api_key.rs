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

/// SHA-256 of a presented key, raw: keys are only ever looked up and compared by it.
pub fn key_hash(key: &str) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(key.as_bytes()).into()
}

/// A key hash as stored: lower-case hex.
pub fn to_hex(hash: &[u8; 32]) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// A stored hash (64 hex digits) as raw bytes; `None` when malformed.
pub fn from_hex(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// A new random key: `prefix` and 32 random bytes in base64url (256 bits of entropy).
pub fn generate_key(prefix: &str) -> Result<String, anyhow::Error> {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| anyhow::anyhow!("the system random source failed"))?;
    Ok(format!("{prefix}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_round_trip_through_hex_and_keys_are_distinct() {
        let hash = key_hash("some key");
        assert_eq!(from_hex(&to_hex(&hash)), Some(hash));
        assert_eq!(from_hex("abc"), None);
        let (a, b) = (generate_key("p_").unwrap(), generate_key("p_").unwrap());
        assert!(a != b && a.starts_with("p_") && a.len() > 40);
    }
}
