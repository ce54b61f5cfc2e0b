//! What never leaves the server in clear: the secret fields of issuer and target configs, and
//! secret-looking values anywhere in a request summary. Every API answer that shows a config and
//! every audit row goes through [`redact`] (or [`redact_config`], which knows the type).
//!
//! Three rules, strongest first:
//! 1. **Declared** secret fields per issuer and target type (`token` of a Vault issuer,
//!    `kubeconfig` of a Kubernetes target…), masked whatever they look like.
//! 2. **Names** that read as secret, compared word by word (`x-Api-Key`, `api-key`, `passwd`,
//!    `pwd`, `auth`, `authorization`, `access_key`, `pin`, `clientSecret`…).
//! 3. **Values** that are secret whatever their name: a PEM private key is masked whole, and a
//!    URL's password (`https://user:pw@host`) is masked in place.

use serde_json::Value;

/// What a masked value becomes.
pub const MASK: &str = "***";

/// The secret fields of each issuer and target type (their connectors' credentials).
fn declared(type_name: &str) -> &'static [&'static str] {
    match type_name {
        "acme" => &["eab_hmac_key", "account_key_pem"],
        "stepca" => &["provisioner_password", "provisioner_jwk", "jwk"],
        "vault" => &["token", "role_id", "secret_id"],
        "digicert" => &["api_key"],
        "sectigo" => &["password", "login"],
        "entrust" => &["client_key_pem", "client_key"],
        "globalsign" => &["api_key", "api_secret", "client_key_pem"],
        "googlecas" => &["credentials_json"],
        "awsacmpca" | "awsacm" => &["secret_access_key", "session_token"],
        "ejbca" => &["client_key_pem", "password"],
        "openssl" => &["key_passphrase"],
        "f5" => &["password", "token"],
        "iis" | "wincertstore" => &["password", "pfx_password"],
        "ssh" => &["private_key", "password", "passphrase"],
        "javakeystore" => &["keystore_password", "key_password", "store_password"],
        "kubernetessecrets" => &["kubeconfig", "token"],
        "azurekeyvault" => &["client_secret"],
        _ => &[],
    }
}

/// Single words that make a field name secret.
const SECRET_WORDS: [&str; 17] = [
    "password",
    "passwd",
    "pwd",
    "passphrase",
    "secret",
    "secrets",
    "token",
    "tokens",
    "credential",
    "credentials",
    "hmac",
    "pin",
    "auth",
    "authorization",
    "kubeconfig",
    "cookie",
    "jwk",
];

/// Word pairs that make a field name secret (`api_key`, `privateKey`, `x-access-key`…).
const SECRET_PAIRS: [(&str, &str); 7] = [
    ("api", "key"),
    ("access", "key"),
    ("private", "key"),
    ("client", "key"),
    ("secret", "key"),
    ("signing", "key"),
    ("key", "pem"),
];

/// The words of a field name: split at anything but letters and digits and at camelCase
/// boundaries, lower-cased (`x-Api-Key` → x, api, key; `clientSecret` → client, secret).
fn words(name: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut previous_lower = false;
    for c in name.chars() {
        if !c.is_alphanumeric() {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            previous_lower = false;
            continue;
        }
        if c.is_uppercase() && previous_lower && !current.is_empty() {
            words.push(std::mem::take(&mut current));
        }
        previous_lower = c.is_lowercase() || c.is_ascii_digit();
        current.extend(c.to_lowercase());
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

/// Whether a field name reads as secret (rule 2).
pub fn is_secret_name(name: &str) -> bool {
    let words = words(name);
    let joined: String = words.concat();
    words.iter().any(|w| SECRET_WORDS.contains(&w.as_str()))
        || words.windows(2).any(|pair| SECRET_PAIRS.contains(&(pair[0].as_str(), pair[1].as_str())))
        // Run-together spellings: `apikey`, `privatekey`, `clientsecret`.
        || ["apikey", "accesskey", "privatekey", "clientkey", "secretkey", "password", "passphrase", "secret", "token"]
            .iter()
            .any(|w| joined.contains(w))
}

/// Whether a top-level field of a `type_name` config is secret: declared for the type (or, with
/// no type, for any issuer type), secret by name, or a private key by value. These are the
/// fields sealed at rest.
pub fn is_secret_field(type_name: Option<&str>, key: &str, value: &Value) -> bool {
    let declared_here = match type_name {
        Some(t) => declared(&t.to_ascii_lowercase()).contains(&key),
        None => crate::domain::resources::issuer::ISSUER_TYPES.iter().any(|t| declared(t).contains(&key)),
    };
    declared_here
        || is_secret_name(key)
        || value.as_str().is_some_and(|text| masked_value(text).as_deref() == Some(MASK))
}

/// Prefix of a config value sealed at rest (`sealed:v1:<base64>`): never shown, whatever its name.
pub const SEALED_PREFIX: &str = "sealed:v1:";

/// A value masked by what it is (rule 3), or `None` when it may be shown.
fn masked_value(text: &str) -> Option<String> {
    if text.starts_with(SEALED_PREFIX) || (text.contains("-----BEGIN") && text.contains("PRIVATE KEY-----")) {
        return Some(MASK.into());
    }
    // `scheme://user:password@host…`: the password goes, the rest stays readable.
    let (scheme, rest) = text.split_once("://")?;
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (userinfo, _) = rest[..authority_end].rsplit_once('@')?;
    let (user, password) = userinfo.split_once(':')?;
    if password.is_empty() {
        return None;
    }
    Some(format!("{scheme}://{user}:{MASK}@{}", &rest[userinfo.len() + 1..]))
}

/// A request summary safe to keep forever and to show: secret fields by name and secret values
/// masked at any depth; an object with a `type` and a `config` also has that type's declared
/// fields masked (a create body of an issuer or a target).
pub fn redact(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let type_name = map.get("type").and_then(Value::as_str).map(str::to_ascii_lowercase);
            Value::Object(
                map.into_iter()
                    .map(|(k, v)| {
                        if is_secret_name(&k) {
                            (k, Value::String(MASK.into()))
                        } else if k == "config" {
                            let v = match &type_name {
                                Some(t) => redact_config(t, v),
                                None => redact(v),
                            };
                            (k, v)
                        } else {
                            (k, redact(v))
                        }
                    })
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(redact).collect()),
        Value::String(text) => Value::String(masked_value(&text).unwrap_or(text)),
        other => other,
    }
}

/// An issuer's or target's config as the API shows it: the type's declared secret fields
/// masked, then [`redact`]'s rules for everything else.
pub fn redact_config(type_name: &str, config: Value) -> Value {
    let declared = declared(&type_name.to_ascii_lowercase());
    match config {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    if declared.contains(&k.as_str()) || is_secret_name(&k) {
                        (k, Value::String(MASK.into()))
                    } else {
                        (k, redact(v))
                    }
                })
                .collect(),
        ),
        other => redact(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_names_are_found_word_by_word() {
        for secret in [
            "x-Api-Key",
            "api-key",
            "API_KEY",
            "apikey",
            "passwd",
            "pwd",
            "auth",
            "Authorization",
            "access_key",
            "pin",
            "kubeconfig",
            "clientSecret",
            "privateKey",
            "db_password",
            "eab_hmac_key",
            "client_key_pem",
        ] {
            assert!(is_secret_name(secret), "{secret}");
        }
        for plain in ["name", "url", "directory", "reload_command", "ping_interval", "spinner", "author_email"] {
            assert!(!is_secret_name(plain), "{plain}");
        }
    }

    #[test]
    fn secrets_are_redacted_at_any_depth() {
        let summary =
            json!({"name": "x", "config": {"api_key": "k", "Password": "p", "url": "u"}, "list": [{"token": "t"}]});
        assert_eq!(
            redact(summary),
            json!({"name": "x", "config": {"api_key": "***", "Password": "***", "url": "u"}, "list": [{"token": "***"}]})
        );
    }

    #[test]
    fn secret_values_are_masked_whatever_their_name() {
        let key = "-----BEGIN EC PRIVATE KEY-----\nMHc...\n-----END EC PRIVATE KEY-----\n";
        let config =
            json!({"blob": key, "endpoint": "https://ops:s3cret@vault.example:8200/v1", "plain": "https://vault"});
        assert_eq!(
            redact(config),
            json!({"blob": "***", "endpoint": "https://ops:***@vault.example:8200/v1", "plain": "https://vault"})
        );
    }

    #[test]
    fn each_type_declares_its_secret_fields() {
        let vault = redact_config("vault", json!({"address": "https://v", "role_id": "r", "mount": "pki"}));
        assert_eq!(vault, json!({"address": "https://v", "role_id": "***", "mount": "pki"}));
        let body = json!({"name": "ca", "type": "stepca", "config": {"jwk": {"kty": "EC"}, "url": "https://ca"}});
        assert_eq!(redact(body)["config"], json!({"jwk": "***", "url": "https://ca"}));
    }
}
