//! Key algorithms the local CA and server-side key generation support, by the names operators
//! use in `CERTCTL_CA_KEY_ALGORITHM` and `CERTCTL_KEYGEN_ALGORITHM`.

use rcgen::{KeyPair, KeyUsagePurpose, RsaKeySize, SignatureAlgorithm};

/// A key type and size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyAlgorithm {
    EcdsaP256,
    EcdsaP384,
    Rsa2048,
    Rsa3072,
    Rsa4096,
    Ed25519,
}

impl KeyAlgorithm {
    pub const ALL: [KeyAlgorithm; 6] = [
        KeyAlgorithm::EcdsaP256,
        KeyAlgorithm::EcdsaP384,
        KeyAlgorithm::Rsa2048,
        KeyAlgorithm::Rsa3072,
        KeyAlgorithm::Rsa4096,
        KeyAlgorithm::Ed25519,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::EcdsaP256 => "ecdsa-p256",
            KeyAlgorithm::EcdsaP384 => "ecdsa-p384",
            KeyAlgorithm::Rsa2048 => "rsa-2048",
            KeyAlgorithm::Rsa3072 => "rsa-3072",
            KeyAlgorithm::Rsa4096 => "rsa-4096",
            KeyAlgorithm::Ed25519 => "ed25519",
        }
    }

    pub fn parse(name: &str) -> Option<KeyAlgorithm> {
        KeyAlgorithm::ALL.into_iter().find(|a| a.as_str().eq_ignore_ascii_case(name))
    }

    /// certctl's `key_algorithm` / `key_size` columns of a version.
    pub fn family_and_size(self) -> (&'static str, i32) {
        match self {
            KeyAlgorithm::EcdsaP256 => ("ECDSA", 256),
            KeyAlgorithm::EcdsaP384 => ("ECDSA", 384),
            KeyAlgorithm::Rsa2048 => ("RSA", 2048),
            KeyAlgorithm::Rsa3072 => ("RSA", 3072),
            KeyAlgorithm::Rsa4096 => ("RSA", 4096),
            KeyAlgorithm::Ed25519 => ("Ed25519", 256),
        }
    }

    fn signature_algorithm(self) -> &'static SignatureAlgorithm {
        match self {
            KeyAlgorithm::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyAlgorithm::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => &rcgen::PKCS_RSA_SHA256,
            KeyAlgorithm::Ed25519 => &rcgen::PKCS_ED25519,
        }
    }

    /// A new key pair (RSA 4096 takes about a second: callers use a blocking thread).
    pub fn generate(self) -> Result<KeyPair, rcgen::Error> {
        match self {
            KeyAlgorithm::Rsa2048 => KeyPair::generate_rsa_for(self.signature_algorithm(), RsaKeySize::_2048),
            KeyAlgorithm::Rsa3072 => KeyPair::generate_rsa_for(self.signature_algorithm(), RsaKeySize::_3072),
            KeyAlgorithm::Rsa4096 => KeyPair::generate_rsa_for(self.signature_algorithm(), RsaKeySize::_4096),
            _ => KeyPair::generate_for(self.signature_algorithm()),
        }
    }

    /// The algorithm of an existing key pair.
    pub fn of(key: &KeyPair) -> Option<KeyAlgorithm> {
        let alg = key.algorithm();
        if alg == &rcgen::PKCS_ECDSA_P256_SHA256 {
            Some(KeyAlgorithm::EcdsaP256)
        } else if alg == &rcgen::PKCS_ECDSA_P384_SHA384 {
            Some(KeyAlgorithm::EcdsaP384)
        } else if alg == &rcgen::PKCS_ED25519 {
            Some(KeyAlgorithm::Ed25519)
        } else if alg == &rcgen::PKCS_RSA_SHA256 || alg == &rcgen::PKCS_RSA_SHA384 || alg == &rcgen::PKCS_RSA_SHA512 {
            // The DER RSAPublicKey is the modulus plus a few bytes of framing and exponent.
            Some(match key.public_key_raw().len() {
                0..=300 => KeyAlgorithm::Rsa2048,
                301..=430 => KeyAlgorithm::Rsa3072,
                _ => KeyAlgorithm::Rsa4096,
            })
        } else {
            None
        }
    }

    /// Key usages of a leaf with this key: signatures, and key encipherment for RSA key exchange.
    pub fn leaf_key_usages(self) -> Vec<KeyUsagePurpose> {
        match self {
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => {
                vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment]
            }
            _ => vec![KeyUsagePurpose::DigitalSignature],
        }
    }
}

/// Whether a profile's `allowed` list (`(algorithm, min_size)` pairs) accepts `key`.
pub fn permits(allowed: &[(String, i32)], key: KeyAlgorithm) -> bool {
    let (family, size) = key.family_and_size();
    allowed.iter().any(|(name, min)| name.eq_ignore_ascii_case(family) && size >= *min)
}

/// The key type to generate for a profile that allows `allowed` (`(algorithm, min_size)` pairs,
/// certctl's `allowed_key_algorithms`): `preferred` when the profile allows it (or has no list),
/// else the smallest key the profile's first usable entry accepts. `None` when no entry names a
/// key type this server can generate.
pub fn choose(allowed: &[(String, i32)], preferred: KeyAlgorithm) -> Option<KeyAlgorithm> {
    let permits = |a: KeyAlgorithm| permits(allowed, a);
    if allowed.is_empty() || permits(preferred) {
        return Some(preferred);
    }
    // In order of cost: the cheapest key that satisfies the profile.
    [
        KeyAlgorithm::EcdsaP256,
        KeyAlgorithm::Ed25519,
        KeyAlgorithm::EcdsaP384,
        KeyAlgorithm::Rsa2048,
        KeyAlgorithm::Rsa3072,
        KeyAlgorithm::Rsa4096,
    ]
    .into_iter()
    .find(|a| permits(*a))
}

impl std::fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_get_the_preferred_key_or_the_cheapest_they_allow() {
        let ecdsa_384 = [("ECDSA".to_string(), 384), ("RSA".to_string(), 3072)];
        assert_eq!(choose(&ecdsa_384, KeyAlgorithm::EcdsaP256), Some(KeyAlgorithm::EcdsaP384));
        assert_eq!(choose(&ecdsa_384, KeyAlgorithm::Rsa4096), Some(KeyAlgorithm::Rsa4096), "preferred and allowed");
        assert_eq!(choose(&[], KeyAlgorithm::Ed25519), Some(KeyAlgorithm::Ed25519), "no profile, no limit");
        assert_eq!(choose(&[("RSA".into(), 2048)], KeyAlgorithm::EcdsaP256), Some(KeyAlgorithm::Rsa2048));
        assert_eq!(choose(&[("ECDSA".into(), 521)], KeyAlgorithm::EcdsaP256), None, "P-521 is not generated");
    }
}
