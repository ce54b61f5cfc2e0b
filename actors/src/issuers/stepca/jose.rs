//! The JOSE pieces a step-ca JWK provisioner needs, on aws-lc-rs (the process's one crypto
//! library): opening the provisioner's private key, which step stores as a compact JWE
//! encrypted under a password (RFC 7518 §4.8 PBES2-HS256+A128KW with A128GCM or A256GCM, the
//! iteration count and cipher read from its header), and signing one-time tokens with it
//! (a compact JWS, ES256, RFC 7515/7518). The JOSE crates on crates.io either need OpenSSL or
//! lack PBES2; these are the few lines the two formats take over primitives aws-lc-rs provides.

use std::num::NonZeroU32;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM, AES_256_GCM};
use aws_lc_rs::key_wrap::{AesKek, KeyWrap, AES_128};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The only key-management algorithm step uses for provisioner keys.
const PBES2_ALG: &str = "PBES2-HS256+A128KW";
/// More iterations than this is not a key step wrote (it uses 100,000 or 600,000): refused
/// rather than burning minutes of CPU on a hostile header.
const MAX_ITERATIONS: u32 = 10_000_000;

/// A provisioner's EC P-256 private key, ready to sign tokens.
pub struct ProvisionerKey {
    /// The key's id: what step-ca finds the provisioner by, with its name (RFC 7638 thumbprint
    /// unless the JWK names another).
    pub kid: String,
    key_pair: EcdsaKeyPair,
}

impl std::fmt::Debug for ProvisionerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProvisionerKey").field("kid", &self.kid).finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct EcJwk {
    kty: String,
    #[serde(default)]
    crv: String,
    #[serde(default)]
    x: String,
    #[serde(default)]
    y: String,
    #[serde(default)]
    d: String,
    #[serde(default)]
    kid: Option<String>,
}

#[derive(Deserialize)]
struct JweHeader {
    alg: String,
    enc: String,
    p2c: u32,
    p2s: String,
}

fn b64(part: &str, what: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).map_err(|_| format!("{what} is not base64url"))
}

/// The provisioner key from what the config holds: a compact JWE (opened with `password`) or
/// the private JWK's JSON itself.
pub fn provisioner_key(text: &str, password: Option<&str>) -> Result<ProvisionerKey, String> {
    let text = text.trim();
    let json: Option<Value> = text
        .starts_with('{')
        .then(|| serde_json::from_str(text))
        .transpose()
        .map_err(|e| format!("the provisioner key is not JSON: {e}"))?;
    let encrypted = match &json {
        // A JWE in its JSON serialization, as `step crypto jwk create` writes key files.
        Some(json) if json.get("protected").is_some() => Some(compact_of(json)?),
        Some(_) => None,
        None => Some(text.to_owned()),
    };
    let jwk = match encrypted {
        Some(compact) => {
            let password = password.ok_or("the provisioner key is encrypted and provisioner_password is not set")?;
            decrypt(&compact, password)?
        }
        None => text.as_bytes().to_vec(),
    };
    let jwk: EcJwk = serde_json::from_slice(&jwk).map_err(|e| format!("the provisioner key is not a JWK: {e}"))?;
    signing_key(&jwk)
}

/// The compact form of a JWE in its flattened or general JSON serialization (one recipient).
fn compact_of(json: &Value) -> Result<String, String> {
    let recipient = json["recipients"].as_array().and_then(|r| r.first()).unwrap_or(json);
    let part = |value: &Value, name: &str| {
        value[name].as_str().map(str::to_owned).ok_or_else(|| format!("the encrypted key has no {name}"))
    };
    if json.get("unprotected").is_some() || recipient.get("header").is_some() {
        return Err("the encrypted key has unprotected header fields, which step never writes".into());
    }
    Ok([
        part(json, "protected")?,
        part(recipient, "encrypted_key")?,
        part(json, "iv")?,
        part(json, "ciphertext")?,
        part(json, "tag")?,
    ]
    .join("."))
}

/// Opens a compact JWE made with a password.
pub fn decrypt(compact: &str, password: &str) -> Result<Vec<u8>, String> {
    let parts: Vec<&str> = compact.split('.').collect();
    let [header_b64, wrapped, iv, ciphertext, tag] = parts[..] else {
        return Err("the provisioner key is neither a JWK nor a compact JWE (five dot-separated parts)".into());
    };
    let header: JweHeader =
        serde_json::from_slice(&b64(header_b64, "the JWE header")?).map_err(|e| format!("the JWE header: {e}"))?;
    if header.alg != PBES2_ALG {
        return Err(format!("the provisioner key is encrypted with {}, not {PBES2_ALG}", header.alg));
    }
    let (cipher, key_len) = match header.enc.as_str() {
        "A128GCM" => (&AES_128_GCM, 16),
        "A256GCM" => (&AES_256_GCM, 32),
        other => return Err(format!("the provisioner key's content encryption {other} is not A128GCM or A256GCM")),
    };
    let iterations = NonZeroU32::new(header.p2c)
        .filter(|n| n.get() <= MAX_ITERATIONS)
        .ok_or_else(|| format!("the JWE's iteration count {} is out of range", header.p2c))?;
    // RFC 7518 §4.8.1.1: the salt is the algorithm's name, a zero byte, then p2s.
    let mut salt = PBES2_ALG.as_bytes().to_vec();
    salt.push(0);
    salt.extend(b64(&header.p2s, "the JWE salt")?);
    let mut kek = [0u8; 16];
    aws_lc_rs::pbkdf2::derive(aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA256, iterations, &salt, password.as_bytes(), &mut kek);
    let wrapped = b64(wrapped, "the JWE encrypted key")?;
    let mut cek = [0u8; 32];
    let cek = AesKek::new(&AES_128, &kek)
        .and_then(|kek| kek.unwrap(&wrapped, &mut cek))
        .map_err(|_| "the provisioner key does not open with provisioner_password".to_string())?;
    if cek.len() != key_len {
        return Err(format!("the JWE's content key is {} bytes, {} expects {key_len}", cek.len(), header.enc));
    }
    let key = UnboundKey::new(cipher, cek).map(LessSafeKey::new).map_err(|_| "the JWE's content key is unusable")?;
    let nonce = Nonce::try_assume_unique_for_key(&b64(iv, "the JWE IV")?).map_err(|_| "the JWE IV is not 12 bytes")?;
    let mut sealed = b64(ciphertext, "the JWE ciphertext")?;
    sealed.extend(b64(tag, "the JWE tag")?);
    let plain = key
        .open_in_place(nonce, Aad::from(header_b64.as_bytes()), &mut sealed)
        .map_err(|_| "the provisioner key's ciphertext does not authenticate".to_string())?;
    Ok(plain.to_vec())
}

/// RFC 7638 thumbprint of an EC public key, base64url.
pub fn thumbprint(crv: &str, x: &str, y: &str) -> String {
    // The members in lexicographic order, no whitespace (serde_json keeps insertion order here).
    let canonical = format!(r#"{{"crv":"{crv}","kty":"EC","x":"{x}","y":"{y}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

fn signing_key(jwk: &EcJwk) -> Result<ProvisionerKey, String> {
    if jwk.kty != "EC" || jwk.crv != "P-256" {
        return Err(format!(
            "the provisioner key is {} {}; certctl signs tokens with EC P-256 keys (step's default)",
            jwk.kty, jwk.crv
        ));
    }
    if jwk.d.is_empty() {
        return Err("the provisioner key is a public key (no \"d\"); the private key is needed".into());
    }
    let mut public = vec![4u8];
    public.extend(b64(&jwk.x, "the JWK's x")?);
    public.extend(b64(&jwk.y, "the JWK's y")?);
    let key_pair = EcdsaKeyPair::from_private_key_and_public_key(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        &b64(&jwk.d, "the JWK's d")?,
        &public,
    )
    .map_err(|e| format!("the provisioner key does not hold together: {e}"))?;
    let kid = jwk.kid.clone().filter(|k| !k.is_empty()).unwrap_or_else(|| thumbprint(&jwk.crv, &jwk.x, &jwk.y));
    Ok(ProvisionerKey { kid, key_pair })
}

impl ProvisionerKey {
    /// A compact JWS (ES256) of `claims`, with this key's id in the header.
    pub fn sign(&self, claims: &Value) -> Result<String, String> {
        let header = json!({"alg": "ES256", "kid": self.kid, "typ": "JWT"});
        let input =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let signature = self
            .key_pair
            .sign(&SystemRandom::new(), input.as_bytes())
            .map_err(|_| "signing the token failed".to_string())?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};

    /// The same P-256 key encrypted by another JOSE implementation (Python jwcrypto), with
    /// step's two header variants: A128GCM and A256GCM, password "interop-pass".
    const KEY_A128GCM: &str = "eyJhbGciOiJQQkVTMi1IUzI1NitBMTI4S1ciLCJjdHkiOiJqd2sranNvbiIsImVuYyI6IkExMjhHQ00iLCJwMmMiOjQwOTYsInAycyI6Ijl2VF9KZWFMLXJrakk4djB1Y0JXbVEifQ.k6LRIP2z7DqsDrZyIKdEBqCdUhFpK5XL.OadjnoLq2-bQddxv.U5pNevnybTy5zU1iBESTktXaKIGjslCP9B74FKHWZ_gWhtnFkXOwnt0zuHpOCHk-vUH7jzeedjiw6bCA1X5z6yBrZe_VguJi7-lQM5hMdEWjl1nSUlTqf0fH5QFmJo7i_pPQCpqLzFjDBZclfTKPd1znXO8Wmese0dqpnQrwtsTXDlAuUme83OOVP9fiuK_ecOqWXkyp37UhslV4lgYzQxmwTc7Dh9qoP21mXL_bajoSfhngug9W_le05GKZ8GxkJuKYYa49NQ-zSkIeWya1B4np4UjjgYkc8ZpU8RdDKknyEOzMuuBLZKHs68Tyfr8o3ZwOCZw62huXBoU05GmKPt2WpluiOBOJVbgCK6c.Vkw7FvFZ30vsK-L786dJJw";
    const KEY_A256GCM: &str = "eyJhbGciOiJQQkVTMi1IUzI1NitBMTI4S1ciLCJjdHkiOiJqd2sranNvbiIsImVuYyI6IkEyNTZHQ00iLCJwMmMiOjEwMDAsInAycyI6Il8wa2czMlJRbVB2dWMtVmw0UWozZVEifQ.zV37bxnTTJselPh5CHEvDx6Kq-iOM8NaMycYyT8Rl56zgmGyePYI2w.lUjyXsPjy_Q_qQYA.-2WjwHF3yIesfTmQa5pa8RcgKZ48sPppPfZOky4P-jJMvpEkGtngzNvvpPyVLf4ScaGKV9SAn3RWTSqVr8pi6zQRfQ7AkQX2zlyxoti3ryO99SOtH5UlwBkngc_f4fzhdEt2_dRfau54nRcjY5y836hQT18CREY7rOWoyciZwEiGUO17vtrJ_gek-LHB26_zMavRLf14tvLm2Dhf4-L6u_-LAjHQjwoHaKPbIZR2ITNL-rbZYcrrV310Ae8-Cy9fvTFCpEiYFb4tLNWav6VG-xn3x3XVd9W-kDvDX2KMvwGxzzS6N6DwSIPOA5LMCg_uKHgiZ80GXert9X9CxWNuaMKGus-OYcv0F6V7kTY.c8I-cKSKC0RC4TSEuIQkEQ";
    const PASSWORD: &str = "interop-pass";
    /// Its thumbprint, as jwcrypto computed it.
    const KID: &str = "hjwWC518JtQSVe0ADw4BEvDFX5DZb6ZBYuig_B-M9l8";

    #[test]
    fn keys_encrypted_elsewhere_open_and_their_thumbprint_is_their_kid() {
        for compact in [KEY_A128GCM, KEY_A256GCM] {
            let key = provisioner_key(compact, Some(PASSWORD)).expect("the key opens");
            assert_eq!(key.kid, KID);
            let jwk: Value = serde_json::from_slice(&decrypt(compact, PASSWORD).unwrap()).unwrap();
            let thumb =
                thumbprint(jwk["crv"].as_str().unwrap(), jwk["x"].as_str().unwrap(), jwk["y"].as_str().unwrap());
            assert_eq!(thumb, KID, "the RFC 7638 thumbprint");
            assert!(decrypt(compact, "wrong").unwrap_err().contains("does not open"));
        }
    }

    #[test]
    fn the_json_serialization_step_writes_opens_too() {
        let parts: Vec<&str> = KEY_A256GCM.split('.').collect();
        let flattened = json!({"protected": parts[0], "encrypted_key": parts[1], "iv": parts[2],
                               "ciphertext": parts[3], "tag": parts[4]});
        assert_eq!(provisioner_key(&flattened.to_string(), Some(PASSWORD)).unwrap().kid, KID);
        let general = json!({"protected": parts[0], "recipients": [{"encrypted_key": parts[1]}], "iv": parts[2],
                             "ciphertext": parts[3], "tag": parts[4]});
        assert_eq!(provisioner_key(&general.to_string(), Some(PASSWORD)).unwrap().kid, KID);
    }

    #[test]
    fn tokens_verify_with_the_public_key() {
        let key = provisioner_key(KEY_A256GCM, Some(PASSWORD)).unwrap();
        let jwk: Value = serde_json::from_slice(&decrypt(KEY_A256GCM, PASSWORD).unwrap()).unwrap();
        let token = key.sign(&json!({"sub": "a.example"})).unwrap();
        let (input, signature) = token.rsplit_once('.').unwrap();
        let mut public = vec![4u8];
        public.extend(URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap());
        public.extend(URL_SAFE_NO_PAD.decode(jwk["y"].as_str().unwrap()).unwrap());
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &public)
            .verify(input.as_bytes(), &URL_SAFE_NO_PAD.decode(signature).unwrap())
            .expect("the ES256 signature verifies");
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(input.split('.').next().unwrap()).unwrap()).unwrap();
        assert_eq!(header, json!({"alg": "ES256", "kid": key.kid, "typ": "JWT"}));
    }

    #[test]
    fn bad_keys_say_what_is_wrong() {
        assert!(provisioner_key("a.b.c", Some("x")).unwrap_err().contains("five"));
        assert!(provisioner_key(KEY_A128GCM, None).unwrap_err().contains("provisioner_password"));
        assert!(provisioner_key(r#"{"kty":"RSA"}"#, None).unwrap_err().contains("P-256"));
    }
}
