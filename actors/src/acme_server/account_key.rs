//! ACME account keys (RFC 8555 §6.2): a public JWK (RFC 7517/7518) read into a key aws-lc-rs
//! verifies with, its RFC 7638 thumbprint (the account's identity and the key authorization's
//! suffix), and the JWS algorithm each key type signs with. Accepted: ES256 (P-256), ES384
//! (P-384), RS256 (RSA 2048 to 8192 bits, as RFC 8555 §6.2 and the CA/B Forum allow) and EdDSA
//! (Ed25519). Anything else is `badPublicKey` or `badSignatureAlgorithm`.

use aws_lc_rs::signature::{
    RsaPublicKeyComponents, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED, ED25519,
    RSA_PKCS1_2048_8192_SHA256,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::problem::{AcmeErrorType, AcmeProblem};

/// The JWS algorithms the server accepts, as `badSignatureAlgorithm` lists them.
pub const ALGORITHMS: &[&str] = &["ES256", "ES384", "RS256", "EdDSA"];

/// A public account key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccountKey {
    /// An uncompressed point on P-256 or P-384 (`0x04 ‖ x ‖ y`).
    Ec {
        curve: Curve,
        x: Vec<u8>,
        y: Vec<u8>,
    },
    /// Modulus and exponent, big-endian without leading zeros.
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    Ed25519 {
        x: Vec<u8>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
}

impl Curve {
    fn name(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
        }
    }

    fn coordinate_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
        }
    }
}

fn bad_key(detail: impl Into<String>) -> AcmeProblem {
    AcmeProblem::new(AcmeErrorType::BadPublicKey, detail)
}

/// A base64url member of a JWK, decoded.
fn member(jwk: &Value, name: &str) -> Result<Vec<u8>, AcmeProblem> {
    let text = jwk[name].as_str().ok_or_else(|| bad_key(format!("the JWK has no \"{name}\"")))?;
    URL_SAFE_NO_PAD.decode(text).map_err(|_| bad_key(format!("the JWK's \"{name}\" is not base64url without padding")))
}

/// Big-endian bytes without leading zeros (RFC 7518 §6.3.1 forbids them; be lenient in what is read).
fn unsigned(mut bytes: Vec<u8>) -> Vec<u8> {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    bytes.drain(..zeros.min(bytes.len().saturating_sub(1)));
    bytes
}

impl AccountKey {
    /// Reads a public JWK. A private member (`d`, `p`…) is refused: a client that sends its
    /// private key has leaked it.
    pub fn from_jwk(jwk: &Value) -> Result<AccountKey, AcmeProblem> {
        if !jwk.is_object() {
            return Err(AcmeProblem::malformed("\"jwk\" is not a JSON object"));
        }
        if ["d", "p", "q", "dp", "dq", "qi", "k"].iter().any(|m| jwk.get(m).is_some()) {
            return Err(bad_key("the JWK holds private key material; send the public key only"));
        }
        match jwk["kty"].as_str() {
            Some("EC") => {
                let curve = match jwk["crv"].as_str() {
                    Some("P-256") => Curve::P256,
                    Some("P-384") => Curve::P384,
                    other => return Err(bad_key(format!("EC keys must be on P-256 or P-384, not {other:?}"))),
                };
                let (x, y) = (member(jwk, "x")?, member(jwk, "y")?);
                if x.len() != curve.coordinate_len() || y.len() != curve.coordinate_len() {
                    return Err(bad_key(format!("the {} point's coordinates have the wrong length", curve.name())));
                }
                let key = AccountKey::Ec { curve, x, y };
                // The point must be on the curve: aws-lc-rs checks it when the key is parsed.
                key.check_point()?;
                Ok(key)
            }
            Some("RSA") => {
                let (n, e) = (unsigned(member(jwk, "n")?), unsigned(member(jwk, "e")?));
                let bits = n.len() * 8 - n.first().map_or(8, |b| b.leading_zeros() as usize);
                if !(2048..=8192).contains(&bits) {
                    return Err(bad_key(format!("RSA keys must have 2048 to 8192 bits, this one has {bits}")));
                }
                if e.len() > 4 || e.last().is_none_or(|b| b % 2 == 0) || e == [1] {
                    return Err(bad_key("the RSA public exponent is not an odd number above 1 of at most 32 bits"));
                }
                Ok(AccountKey::Rsa { n, e })
            }
            Some("OKP") => match jwk["crv"].as_str() {
                Some("Ed25519") => {
                    let x = member(jwk, "x")?;
                    if x.len() != 32 {
                        return Err(bad_key("an Ed25519 public key is 32 bytes"));
                    }
                    Ok(AccountKey::Ed25519 { x })
                }
                other => Err(bad_key(format!("OKP keys must be Ed25519, not {other:?}"))),
            },
            other => Err(bad_key(format!("key type {other:?} is not supported (EC, RSA or OKP)"))),
        }
    }

    fn check_point(&self) -> Result<(), AcmeProblem> {
        if let AccountKey::Ec { curve, .. } = self {
            let alg = match curve {
                Curve::P256 => &ECDSA_P256_SHA256_FIXED,
                Curve::P384 => &ECDSA_P384_SHA384_FIXED,
            };
            // Verifying garbage against the key parses it first: a point off the curve fails
            // to parse, which is distinguishable only by trying a valid-looking signature, so
            // check the point directly with the public-key parser instead.
            let point = self.ec_point();
            aws_lc_rs::signature::ParsedPublicKey::new(alg, &point)
                .map_err(|_| bad_key(format!("the point is not on {}", curve.name())))?;
        }
        Ok(())
    }

    fn ec_point(&self) -> Vec<u8> {
        match self {
            AccountKey::Ec { x, y, .. } => [&[4u8][..], x, y].concat(),
            _ => Vec::new(),
        }
    }

    /// The JWS algorithm this key signs with.
    pub fn algorithm(&self) -> &'static str {
        match self {
            AccountKey::Ec { curve: Curve::P256, .. } => "ES256",
            AccountKey::Ec { curve: Curve::P384, .. } => "ES384",
            AccountKey::Rsa { .. } => "RS256",
            AccountKey::Ed25519 { .. } => "EdDSA",
        }
    }

    /// The public JWK with only its required members (RFC 7638 §3.2, in lexicographic order):
    /// what the thumbprint hashes, and what the server stores and compares.
    pub fn canonical_jwk(&self) -> String {
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        match self {
            AccountKey::Ec { curve, x, y } => {
                format!(r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#, curve.name(), b64(x), b64(y))
            }
            AccountKey::Rsa { n, e } => format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, b64(e), b64(n)),
            AccountKey::Ed25519 { x } => format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, b64(x)),
        }
    }

    /// The public JWK as JSON.
    pub fn jwk(&self) -> Value {
        serde_json::from_str(&self.canonical_jwk()).unwrap_or_else(|_| json!({}))
    }

    /// RFC 7638 thumbprint: base64url(SHA-256(canonical JWK)).
    pub fn thumbprint(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(self.canonical_jwk().as_bytes()))
    }

    /// Checks `signature` over `message` made with `alg`, which must be this key's algorithm.
    pub fn verify(&self, alg: &str, message: &[u8], signature: &[u8]) -> Result<(), AcmeProblem> {
        if !ALGORITHMS.contains(&alg) {
            let mut problem = AcmeProblem::new(
                AcmeErrorType::BadSignatureAlgorithm,
                format!("algorithm {alg:?} is not accepted; use one of {}", ALGORITHMS.join(", ")),
            );
            problem.algorithms = Some(ALGORITHMS);
            return Err(problem);
        }
        if alg != self.algorithm() {
            return Err(AcmeProblem::malformed(format!(
                "the JWS says {alg} but the key signs with {}",
                self.algorithm()
            )));
        }
        let result = match self {
            AccountKey::Ec { curve: Curve::P256, .. } => {
                UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, self.ec_point()).verify(message, signature)
            }
            AccountKey::Ec { curve: Curve::P384, .. } => {
                UnparsedPublicKey::new(&ECDSA_P384_SHA384_FIXED, self.ec_point()).verify(message, signature)
            }
            AccountKey::Rsa { n, e } => {
                RsaPublicKeyComponents { n, e }.verify(&RSA_PKCS1_2048_8192_SHA256, message, signature)
            }
            AccountKey::Ed25519 { x } => UnparsedPublicKey::new(&ED25519, x).verify(message, signature),
        };
        result.map_err(|_| AcmeProblem::malformed("the JWS signature does not verify with the key"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_their_limits() {
        let short_rsa = json!({"kty": "RSA", "n": URL_SAFE_NO_PAD.encode([0xffu8; 128]), "e": "AQAB"});
        assert!(AccountKey::from_jwk(&short_rsa).unwrap_err().detail.contains("1024"));
        let private = json!({"kty": "EC", "crv": "P-256", "x": "", "y": "", "d": "x"});
        assert_eq!(AccountKey::from_jwk(&private).unwrap_err().kind, AcmeErrorType::BadPublicKey);
        let off_curve = json!({"kty": "EC", "crv": "P-256", "x": URL_SAFE_NO_PAD.encode([1u8; 32]),
                               "y": URL_SAFE_NO_PAD.encode([2u8; 32])});
        assert!(AccountKey::from_jwk(&off_curve).unwrap_err().detail.contains("not on P-256"));
        let secp256k1 = json!({"kty": "EC", "crv": "secp256k1", "x": "", "y": ""});
        assert_eq!(AccountKey::from_jwk(&secp256k1).unwrap_err().kind, AcmeErrorType::BadPublicKey);
    }
}
