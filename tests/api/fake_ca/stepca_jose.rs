//! The JOSE side of the fake step-ca's JWK provisioner (research/stepca.md): the provisioner key
//! made at start (EC P-256, ES256) with its JWK (`kid`: the RFC 7638 thumbprint), the key
//! encrypted as `step` writes it (a PBES2-HS256+A128KW / A256GCM compact JWE, with a small
//! iteration count so tests stay fast), and the check of a token (an ES256 compact JWS, §6): its
//! `alg`, `kid` and `iss`, its signature, its times and its audience. The one-time use of a token
//! is [`super::stepca`]'s to enforce.

use std::num::NonZeroU32;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use aws_lc_rs::digest::{digest, SHA256};
use aws_lc_rs::encoding::AsBigEndian;
use aws_lc_rs::key_wrap::{AesKek, KeyWrap, AES_128};
use aws_lc_rs::pbkdf2::{self, PBKDF2_HMAC_SHA256};
use aws_lc_rs::signature::{
    EcdsaKeyPair, KeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};

use super::{STEP_CA_PASSWORD, STEP_CA_PROVISIONER};

/// PBKDF2 iterations for the key (step uses 600 000; tests would wait seconds for each decryption).
const P2C: u32 = 1000;
/// The names in the CA's `dnsNames`: a token's `aud` must name one of them.
const DNS_NAMES: [&str; 2] = ["127.0.0.1", "localhost"];
/// The audience step-ca accepts from clients older than the URL audiences.
const LEGACY_AUDIENCE: &str = "step-certificate-authority";
/// Allowed clock skew on `nbf`, `exp` and `iat`.
const LEEWAY_SECS: f64 = 60.0;

/// The JWK provisioner: its key, public and private, and the key encrypted with the password.
pub(super) struct Provisioner {
    /// The public key as an uncompressed SEC1 point (what verifies the tokens).
    public_key: Vec<u8>,
    pub(super) kid: String,
    pub(super) public_jwk: Value,
    /// The private JWK JSON, as the JWE holds it.
    pub private_jwk: String,
    /// The compact JWE of `private_jwk` (what `step` keeps in ca.json's `encryptedKey`).
    pub encrypted_key: String,
    /// When the CA started, Unix seconds: tokens issued before it are refused, as step-ca does.
    started_at: i64,
}

impl Provisioner {
    /// A fresh P-256 key, its JWK (kid: RFC 7638 thumbprint), and its encryption under
    /// [`STEP_CA_PASSWORD`]. Test set-up: panics on failure.
    pub fn generate() -> Provisioner {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("generating the provisioner key");
        let point = pair.public_key().as_ref().to_vec();
        let private = pair.private_key().as_be_bytes().expect("the provisioner key's scalar");
        let (x, y) = (b64u(&point[1..33]), b64u(&point[33..65]));
        let members = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let kid = b64u(digest(&SHA256, members.as_bytes()).as_ref());
        let public_jwk = json!({"use": "sig", "kty": "EC", "kid": kid, "crv": "P-256", "alg": "ES256", "x": x, "y": y});
        let mut private_jwk = public_jwk.clone();
        private_jwk["d"] = json!(b64u(private.as_ref()));
        let private_jwk = private_jwk.to_string();
        Provisioner {
            public_key: point,
            kid,
            public_jwk,
            encrypted_key: encrypt(private_jwk.as_bytes(), STEP_CA_PASSWORD),
            private_jwk,
            started_at: chrono::Utc::now().timestamp(),
        }
    }

    /// The claims of `token` when it is a valid token of this provisioner for one of `paths`
    /// (`/1.0/sign` and `/sign`, say), else why not. The replay check is the caller's.
    pub(super) fn verify(&self, token: &str, paths: &[&str]) -> Result<Value, String> {
        let [header, payload, signature] = token.split('.').collect::<Vec<_>>()[..] else {
            return Err("the token is not a compact JWS (three parts)".into());
        };
        let header = decode_json(header).map_err(|e| format!("the token's header: {e}"))?;
        if header["alg"] != "ES256" {
            return Err(format!("the token's alg is {}, not ES256", header["alg"]));
        }
        let claims = decode_json(payload).map_err(|e| format!("the token's claims: {e}"))?;
        if header["kid"] != self.kid.as_str() || claims["iss"] != STEP_CA_PROVISIONER {
            return Err(format!(
                "provisioner not found or invalid audience: iss {} and kid {} are not {STEP_CA_PROVISIONER:?} and {:?}",
                claims["iss"], header["kid"], self.kid
            ));
        }
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|e| format!("the token's signature: {e}"))?;
        let signed = &token[..token.rfind('.').unwrap_or(0)];
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &self.public_key)
            .verify(signed.as_bytes(), &signature)
            .map_err(|_| "the token's signature does not verify with the provisioner key".to_string())?;
        check_times(&claims, self.started_at)?;
        check_audience(&claims["aud"], paths)?;
        if claims["sub"].as_str().is_none_or(str::is_empty) {
            return Err("the token has no subject (sub)".into());
        }
        Ok(claims)
    }
}

/// `nbf`, `exp` and `iat` (each only when present) against now, with a minute of leeway; `iat`
/// also against the CA's start.
fn check_times(claims: &Value, started_at: i64) -> Result<(), String> {
    let now = chrono::Utc::now().timestamp() as f64;
    let time = |name: &str| match &claims[name] {
        Value::Null => Ok(None),
        value => value.as_f64().map(Some).ok_or_else(|| format!("the token's {name} is not a number: {value}")),
    };
    if let Some(nbf) = time("nbf")? {
        if nbf > now + LEEWAY_SECS {
            return Err(format!("the token is not valid yet (nbf {nbf}, now {now})"));
        }
    }
    if let Some(exp) = time("exp")? {
        if exp < now - LEEWAY_SECS {
            return Err(format!("the token has expired (exp {exp}, now {now})"));
        }
    }
    if let Some(iat) = time("iat")? {
        if iat > now + LEEWAY_SECS {
            return Err(format!("the token is issued in the future (iat {iat}, now {now})"));
        }
        if iat < started_at as f64 {
            return Err(format!("the token was issued (iat {iat}) before the CA started ({started_at})"));
        }
    }
    Ok(())
}

/// `aud` (a string or an array of them) names one of the CA's `dnsNames` with one of `paths`,
/// compared without the port (or is the legacy audience).
fn check_audience(aud: &Value, paths: &[&str]) -> Result<(), String> {
    let given: Vec<&str> = match aud {
        Value::String(one) => vec![one.as_str()],
        Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let matches = |aud: &str| {
        let aud = strip_port(aud);
        aud == LEGACY_AUDIENCE
            || DNS_NAMES.iter().any(|host| paths.iter().any(|path| aud == format!("https://{host}{path}")))
    };
    if given.iter().any(|aud| matches(aud)) {
        Ok(())
    } else {
        Err(format!("invalid audience {aud}: want https://{{{}}}{{{}}}", DNS_NAMES.join(","), paths.join(",")))
    }
}

/// A URL without its port (`https://h:9000/sign` is `https://h/sign`), as step-ca compares audiences.
fn strip_port(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().map(|h| format!("[{h}]")).unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default().to_string(),
    };
    format!("{scheme}://{host}{path}")
}

/// The compact JWE `step` writes for a provisioner key: PBES2-HS256+A128KW (the password's key
/// wraps a random content key) and A256GCM (the content key encrypts `plaintext`; the protected
/// header, as sent, is the additional data).
fn encrypt(plaintext: &[u8], password: &str) -> String {
    const ALG: &str = "PBES2-HS256+A128KW";
    let salt: [u8; 16] = rand::random();
    let header = json!({"alg": ALG, "cty": "jwk+json", "enc": "A256GCM", "p2c": P2C, "p2s": b64u(&salt)});
    let header = b64u(header.to_string().as_bytes());
    let mut salt_input = ALG.as_bytes().to_vec();
    salt_input.push(0);
    salt_input.extend_from_slice(&salt);
    let mut kek = [0u8; 16];
    let iterations = NonZeroU32::new(P2C).expect("a non-zero iteration count");
    pbkdf2::derive(PBKDF2_HMAC_SHA256, iterations, &salt_input, password.as_bytes(), &mut kek);
    let cek: [u8; 32] = rand::random();
    let mut wrapped = [0u8; 40];
    let wrapped = AesKek::new(&AES_128, &kek)
        .and_then(|kek| kek.wrap(&cek, &mut wrapped))
        .expect("wrapping the content key")
        .to_vec();
    let iv: [u8; 12] = rand::random();
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &cek).expect("an AES-256 key"));
    let mut ciphertext = plaintext.to_vec();
    let tag = key
        .seal_in_place_separate_tag(Nonce::assume_unique_for_key(iv), Aad::from(header.as_bytes()), &mut ciphertext)
        .expect("encrypting the provisioner key");
    format!("{header}.{}.{}.{}.{}", b64u(&wrapped), b64u(&iv), b64u(&ciphertext), b64u(tag.as_ref()))
}

fn decode_json(part: &str) -> Result<Value, String> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|e| format!("not base64url: {e}"))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("not JSON: {e}"))
}

fn b64u(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}
