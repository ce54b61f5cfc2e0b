//! Opaque keyset cursors. A certificate cursor carries its sort order, the last row's sort value
//! and id; an audit cursor the last event id. Clients treat them as opaque; one that does not
//! decode, or belongs to another sort order, is a 400 problem, never silently the first page.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};

use certctl_actors::domain::validation::is_valid_id;
use certctl_actors::queries::certificate_list::{Sort, SortCursor, SortKey, SortValue};
use certctl_actors::queries::PageWindow;

use super::paging::PageRequest;
use super::problem::ApiError;

fn invalid() -> ApiError {
    ApiError::InvalidQuery("cursor is not a cursor this server issued; use next_cursor from a previous page".into())
}

fn sort_code(sort: Sort) -> String {
    let key = match sort.key {
        SortKey::CreatedAt => 'c',
        SortKey::UpdatedAt => 'u',
        SortKey::ExpiresAt => 'e',
        SortKey::Name => 'n',
    };
    format!("{key}{}", if sort.descending { '-' } else { '+' })
}

/// Encodes a certificate cursor as `base64url("<sort>|<id>|<value>")` (times in microseconds).
pub fn encode(cursor: &SortCursor) -> String {
    let value = match &cursor.value {
        SortValue::Time(t) => t.timestamp_micros().to_string(),
        SortValue::Text(text) => text.clone(),
    };
    URL_SAFE_NO_PAD.encode(format!("{}|{}|{value}", sort_code(cursor.sort), cursor.id))
}

/// The page a request asks for in a list ordered by `created_at` (`order`): its cursor's
/// `(created_at, id)` key (none for the first page and for offset paging), offset, size, total.
pub fn time_window(paging: &PageRequest, order: Sort) -> Result<PageWindow, ApiError> {
    let cursor = match paging {
        PageRequest::Keyset { cursor: Some(c), .. } => match decode(c, order)? {
            SortCursor { value: SortValue::Time(t), id, .. } => Some((t, id)),
            _ => return Err(ApiError::InvalidQuery("cursor is not for this list".into())),
        },
        _ => None,
    };
    Ok(PageWindow { cursor, offset: paging.offset(), limit: paging.size(), with_total: paging.with_total() })
}

/// The cursor of the page after `next` (a `(created_at, id)` key) in a list ordered by `order`.
pub fn encode_time_key(next: Option<(DateTime<Utc>, String)>, order: Sort) -> Option<String> {
    next.map(|(t, id)| encode(&SortCursor { sort: order, value: SortValue::Time(t), id }))
}

/// Decodes a cursor made by [`encode`] for a request sorted by `sort`.
pub fn decode(cursor: &str, sort: Sort) -> Result<SortCursor, ApiError> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor.as_bytes()).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let mut parts = text.splitn(3, '|');
    let (code, id, value) = match (parts.next(), parts.next(), parts.next()) {
        (Some(code), Some(id), Some(value)) => (code, id, value),
        _ => return Err(invalid()),
    };
    if code != sort_code(sort) {
        return Err(ApiError::InvalidQuery(
            "cursor belongs to a different sort order; keep the sort of the request that returned it".into(),
        ));
    }
    if !is_valid_id(id) {
        return Err(invalid());
    }
    let value = match sort.key {
        SortKey::Name => SortValue::Text(value.to_string()),
        _ => {
            let micros: i64 = value.parse().map_err(|_| invalid())?;
            // Only times PostgreSQL can compare (and this server could have issued): 1970 to 9999.
            if !(0..=253_402_300_799_999_999).contains(&micros) {
                return Err(invalid());
            }
            SortValue::Time(DateTime::<Utc>::from_timestamp_micros(micros).ok_or_else(invalid)?)
        }
    };
    Ok(SortCursor { sort, value, id: id.to_string() })
}

/// Encodes an audit event id as a cursor (`base64url("a:<id>")`).
pub fn encode_audit(id: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("a:{id}"))
}

/// Decodes a cursor made by [`encode_audit`].
pub fn decode_audit(cursor: &str) -> Result<i64, ApiError> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor.as_bytes()).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    text.strip_prefix("a:").and_then(|id| id.parse::<i64>().ok()).filter(|id| *id > 0).ok_or_else(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_keep_their_sort() {
        let by_time = Sort { key: SortKey::UpdatedAt, descending: true };
        let cursor = SortCursor {
            sort: by_time,
            value: SortValue::Time(DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap()),
            id: "mc-a:b".into(),
        };
        assert_eq!(decode(&encode(&cursor), by_time).unwrap(), cursor);
        assert!(decode(&encode(&cursor), Sort::default()).is_err(), "another sort");

        let by_name = Sort { key: SortKey::Name, descending: false };
        let cursor = SortCursor { sort: by_name, value: SortValue::Text("a|b c".into()), id: "mc-1".into() };
        assert_eq!(decode(&encode(&cursor), by_name).unwrap(), cursor);

        assert!(decode("not-a-cursor!", by_name).is_err());
        assert!(decode(&URL_SAFE_NO_PAD.encode("c+|mc-1|-8000000000000000000"), Sort::default()).is_err());
        assert_eq!(decode_audit(&encode_audit(42)).unwrap(), 42);
        assert!(decode_audit(&encode(&cursor)).is_err());
    }
}
