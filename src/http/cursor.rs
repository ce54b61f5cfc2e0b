//! Opaque keyset cursors: base64url of the last row's sort key. Clients treat them as opaque;
//! a cursor that does not decode is a 400 problem, never silently the first page.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};

use certctl_actors::domain::validation::is_valid_id;
use certctl_actors::queries::certificates::CertificateKey;

use super::problem::ApiError;

/// Encodes a certificate key as `base64url("<microseconds>:<id>")`.
pub fn encode(key: &CertificateKey) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{}", key.created_at.timestamp_micros(), key.id))
}

/// Decodes a cursor made by [`encode`].
pub fn decode(cursor: &str) -> Result<CertificateKey, ApiError> {
    let invalid = || {
        ApiError::InvalidQuery("cursor is not a cursor this server issued; use next_cursor from a previous page".into())
    };
    let bytes = URL_SAFE_NO_PAD.decode(cursor.as_bytes()).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (micros, id) = text.split_once(':').ok_or_else(invalid)?;
    let micros: i64 = micros.parse().map_err(|_| invalid())?;
    // Only times PostgreSQL can compare (and this server could have issued): 1970 to 9999.
    if !(0..=253_402_300_799_999_999).contains(&micros) {
        return Err(invalid());
    }
    let created_at: DateTime<Utc> = DateTime::from_timestamp_micros(micros).ok_or_else(invalid)?;
    if !is_valid_id(id) {
        return Err(invalid());
    }
    Ok(CertificateKey { created_at, id: id.to_string() })
}

/// Encodes an audit event id as a cursor (`base64url("a:<id>")`).
pub fn encode_audit(id: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("a:{id}"))
}

/// Decodes a cursor made by [`encode_audit`].
pub fn decode_audit(cursor: &str) -> Result<i64, ApiError> {
    let invalid = || {
        ApiError::InvalidQuery("cursor is not a cursor this server issued; use next_cursor from a previous page".into())
    };
    let bytes = URL_SAFE_NO_PAD.decode(cursor.as_bytes()).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    text.strip_prefix("a:").and_then(|id| id.parse::<i64>().ok()).filter(|id| *id > 0).ok_or_else(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let key = CertificateKey {
            created_at: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
            id: "mc-a:b".into(),
        };
        assert_eq!(decode(&encode(&key)).unwrap(), key);
        assert!(decode("not-a-cursor!").is_err());
        assert!(decode(&URL_SAFE_NO_PAD.encode("x:y")).is_err());
        assert_eq!(decode_audit(&encode_audit(42)).unwrap(), 42);
        assert!(decode_audit(&encode(&key)).is_err());
    }
}
