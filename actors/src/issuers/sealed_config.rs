//! Issuer secrets sealed at rest: every secret top-level field of an issuer's config (declared
//! for its type, secret by name, or a private key by value: `domain::redaction::is_secret_field`)
//! is stored as `sealed:v1:<base64 of the sealed JSON value>`, under the key that seals private
//! keys. The API still never shows them (a sealed value is masked whatever its name); only the
//! issuer registry opens them, to build a connector.

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::crypto::seal::SealingKey;
use crate::domain::redaction::{is_secret_field, MASK, SEALED_PREFIX};

/// `config` with every secret top-level field sealed. Values already sealed and the mask (which
/// an update turns back into the stored value) are left as they are.
pub fn seal_config(type_name: Option<&str>, config: Value, sealing: &SealingKey) -> Value {
    let Value::Object(map) = config else { return config };
    let sealed: Map<String, Value> = map
        .into_iter()
        .map(|(key, value)| {
            let keep = value.is_null()
                || value.as_str().is_some_and(|s| s == MASK || s.starts_with(SEALED_PREFIX))
                || !is_secret_field(type_name, &key, &value);
            if keep {
                return (key, value);
            }
            let plain = serde_json::to_vec(&value).unwrap_or_default();
            let blob = base64::engine::general_purpose::STANDARD.encode(sealing.seal(&plain));
            (key, Value::String(format!("{SEALED_PREFIX}{blob}")))
        })
        .collect();
    Value::Object(sealed)
}

/// Whether `config` holds a secret field still in clear (written before secrets were sealed, or
/// straight into the database).
pub fn has_clear_secrets(type_name: &str, config: &Value) -> bool {
    config.as_object().is_some_and(|map| {
        map.iter().any(|(key, value)| {
            !value.is_null()
                && !value.as_str().is_some_and(|s| s == MASK || s.starts_with(SEALED_PREFIX))
                && is_secret_field(Some(type_name), key, value)
        })
    })
}

/// `config` with its sealed fields opened, for the connector; the error names the field that
/// does not open (a database restored under another `CERTCTL_CONFIG_ENCRYPTION_KEY`).
pub fn open_config(config: &Value, sealing: &SealingKey) -> Result<Value, String> {
    let Value::Object(map) = config else { return Ok(config.clone()) };
    let mut opened = Map::with_capacity(map.len());
    for (key, value) in map {
        let Some(blob) = value.as_str().and_then(|s| s.strip_prefix(SEALED_PREFIX)) else {
            opened.insert(key.clone(), value.clone());
            continue;
        };
        let fail = |why: &dyn std::fmt::Display| format!("the sealed config field {key:?} does not open: {why}");
        let bytes = base64::engine::general_purpose::STANDARD.decode(blob).map_err(|e| fail(&e))?;
        let plain = sealing.open(&bytes).map_err(|e| fail(&e))?;
        opened.insert(key.clone(), serde_json::from_slice(&plain).map_err(|e| fail(&e))?);
    }
    Ok(Value::Object(opened))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key() -> SealingKey {
        SealingKey::derive("test passphrase", b"0123456789abcdef", 1)
    }

    #[test]
    fn secrets_are_sealed_and_open_again() {
        let sealing = key();
        let config = json!({"base_url": "https://ca.test", "api_key": "k1", "login": "bob", "org_id": 7,
                            "password": "***", "nested": {"token": "t"}});
        let sealed = seal_config(Some("sectigo"), config.clone(), &sealing);
        assert!(sealed["api_key"].as_str().unwrap().starts_with(SEALED_PREFIX));
        assert!(sealed["login"].as_str().unwrap().starts_with(SEALED_PREFIX), "declared for sectigo");
        assert_eq!(sealed["base_url"], "https://ca.test");
        assert_eq!(sealed["org_id"], 7);
        assert_eq!(sealed["password"], MASK, "the mask is left for the update to replace");
        assert!(!has_clear_secrets("sectigo", &sealed));
        assert!(has_clear_secrets("sectigo", &config));
        assert_eq!(open_config(&sealed, &sealing).unwrap(), config);
        // Sealing twice changes nothing.
        assert_eq!(seal_config(Some("sectigo"), sealed.clone(), &sealing), sealed);
    }

    #[test]
    fn a_value_sealed_under_another_key_names_its_field() {
        let sealed = seal_config(Some("digicert"), json!({"api_key": "k"}), &key());
        let other = SealingKey::derive("other", b"0123456789abcdef", 1);
        let error = open_config(&sealed, &other).unwrap_err();
        assert!(error.contains("\"api_key\""), "{error}");
    }
}
