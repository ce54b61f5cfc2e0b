//! Sealing secrets at rest (CA private keys, server-generated leaf keys): AES-256-GCM under a key
//! derived from `CERTCTL_CONFIG_ENCRYPTION_KEY` with PBKDF2-HMAC-SHA256.
//!
//! A sealed blob is `version (1) ‖ nonce (12) ‖ ciphertext ‖ tag (16)`, with a fresh random nonce
//! per seal. The version byte lets a later format (another KDF, a key rotation) open old blobs.

use std::num::NonZeroU32;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::{pbkdf2, rand};

/// PBKDF2 iterations for new deployments (OWASP's 2023 figure for HMAC-SHA256). Stored with the
/// salt, so raising it later does not lock out existing data.
pub const PBKDF2_ITERATIONS: u32 = 600_000;
/// Salt length for the key derivation.
pub const SALT_LEN: usize = 16;
const FORMAT_V1: u8 = 1;

/// Why a sealed blob could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("the sealed value is truncated or in an unknown format")]
    Malformed,
    #[error("the sealed value does not open with this key (wrong CERTCTL_CONFIG_ENCRYPTION_KEY, or tampered data)")]
    WrongKey,
}

/// The derived sealing key.
pub struct SealingKey {
    key: LessSafeKey,
    /// A key for message authentication derived from the same secret (HMAC of the derived bytes
    /// with a fixed label), so every replica that shares the passphrase shares it too.
    mac: aws_lc_rs::hmac::Key,
}

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey(***)")
    }
}

impl SealingKey {
    /// Derives the key (deliberately slow: run it off the async threads).
    pub fn derive(passphrase: &str, salt: &[u8], iterations: u32) -> SealingKey {
        let mut bytes = [0u8; 32];
        let iterations = NonZeroU32::new(iterations.max(1)).unwrap_or(NonZeroU32::MIN);
        pbkdf2::derive(pbkdf2::PBKDF2_HMAC_SHA256, iterations, salt, passphrase.as_bytes(), &mut bytes);
        SealingKey::from_bytes(&bytes)
    }

    fn from_bytes(bytes: &[u8; 32]) -> SealingKey {
        // A 32-byte key is always valid for AES-256-GCM.
        let unbound = UnboundKey::new(&AES_256_GCM, bytes).expect("a 32-byte AES-256 key");
        let root = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, bytes);
        let mac_bytes = aws_lc_rs::hmac::sign(&root, b"certctl mac key v1");
        let mac = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, mac_bytes.as_ref());
        SealingKey { key: LessSafeKey::new(unbound), mac }
    }

    /// An HMAC-SHA256 tag of `message` under the key derived for authentication (not the sealing
    /// key itself): for values the server hands out and must recognise again, such as cursors.
    pub fn mac(&self, message: &[u8]) -> [u8; 32] {
        let tag = aws_lc_rs::hmac::sign(&self.mac, message);
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// A fresh random salt.
    pub fn new_salt() -> [u8; SALT_LEN] {
        let mut salt = [0u8; SALT_LEN];
        rand::fill(&mut salt).expect("the system random source");
        salt
    }

    /// Encrypts and authenticates `plaintext`.
    pub fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce).expect("the system random source");
        let mut in_out = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from([FORMAT_V1]), &mut in_out)
            .expect("AES-GCM sealing of an in-memory buffer");
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + in_out.len());
        sealed.push(FORMAT_V1);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&in_out);
        sealed
    }

    /// Decrypts a blob made by [`SealingKey::seal`] under the same key.
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
        let (&version, rest) = sealed.split_first().ok_or(OpenError::Malformed)?;
        if version != FORMAT_V1 || rest.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(OpenError::Malformed);
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| OpenError::Malformed)?;
        let mut in_out = ciphertext.to_vec();
        let plaintext =
            self.key.open_in_place(nonce, Aad::from([FORMAT_V1]), &mut in_out).map_err(|_| OpenError::WrongKey)?;
        Ok(plaintext.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_the_same_key() {
        let salt = SealingKey::new_salt();
        let key = SealingKey::derive("correct horse", &salt, 1_000);
        let sealed = key.seal(b"-----BEGIN PRIVATE KEY-----");
        assert_ne!(&sealed[1 + NONCE_LEN..], b"-----BEGIN PRIVATE KEY-----".as_slice());
        assert_eq!(key.open(&sealed).unwrap(), b"-----BEGIN PRIVATE KEY-----");
        assert_ne!(key.seal(b"x"), key.seal(b"x"), "a fresh nonce every time");

        let other = SealingKey::derive("battery staple", &salt, 1_000);
        assert!(matches!(other.open(&sealed), Err(OpenError::WrongKey)));
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(matches!(key.open(&tampered), Err(OpenError::WrongKey)));
        assert!(matches!(key.open(&sealed[..10]), Err(OpenError::Malformed)));
    }
}
