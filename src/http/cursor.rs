//! Opaque keyset cursors. A certificate cursor carries its sort order, the last row's sort value
//! and id; an audit cursor the last event id. Each is signed for its list by the engine
//! ([`Cursors`]): one that does not open — edited, made by hand, from another list or another
//! sort order — is a 400 problem, never silently the first page or a position nobody was given.

use chrono::{DateTime, Utc};

use certctl_actors::cursors::Cursors;
use certctl_actors::domain::validation::is_valid_id;
use certctl_actors::queries::certificate_list::{Sort, SortCursor, SortKey, SortValue};
use certctl_actors::queries::PageWindow;

use super::paging::PageRequest;
use super::problem::ApiError;

fn invalid() -> ApiError {
    ApiError::InvalidQuery(
        "cursor is not one this server issued for this list; use next_cursor from a previous page of it".into(),
    )
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

/// The cursor of `cursor` in `list`: the signed `"<sort>|<id>|<value>"` (times in microseconds).
pub fn encode(cursors: &Cursors, list: &str, cursor: &SortCursor) -> String {
    let value = match &cursor.value {
        SortValue::Time(t) => t.timestamp_micros().to_string(),
        SortValue::Text(text) => text.clone(),
    };
    cursors.sign(list, &format!("{}|{}|{value}", sort_code(cursor.sort), cursor.id))
}

/// The page a request asks for in a list ordered by `created_at` (`order`): its cursor's
/// `(created_at, id)` key (none for the first page and for offset paging), offset, size, total.
pub fn time_window(cursors: &Cursors, list: &str, paging: &PageRequest, order: Sort) -> Result<PageWindow, ApiError> {
    let cursor = match paging {
        PageRequest::Keyset { cursor: Some(c), .. } => match decode(cursors, list, c, order)? {
            SortCursor { value: SortValue::Time(t), id, .. } => Some((t, id)),
            _ => return Err(invalid()),
        },
        _ => None,
    };
    Ok(PageWindow { cursor, offset: paging.offset(), limit: paging.size(), with_total: paging.with_total() })
}

/// The cursor of the page after `next` (a `(created_at, id)` key) in a list ordered by `order`.
pub fn encode_time_key(
    cursors: &Cursors,
    list: &str,
    next: Option<(DateTime<Utc>, String)>,
    order: Sort,
) -> Option<String> {
    next.map(|(t, id)| encode(cursors, list, &SortCursor { sort: order, value: SortValue::Time(t), id }))
}

/// Decodes a cursor made by [`encode`] for `list` sorted by `sort`.
pub fn decode(cursors: &Cursors, list: &str, cursor: &str, sort: Sort) -> Result<SortCursor, ApiError> {
    let text = cursors.open(list, cursor).ok_or_else(invalid)?;
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

/// The list name of the audit trail's cursors.
const AUDIT: &str = "audit";

/// Encodes an audit event id as a cursor.
pub fn encode_audit(cursors: &Cursors, id: i64) -> String {
    cursors.sign(AUDIT, &format!("a:{id}"))
}

/// Decodes a cursor made by [`encode_audit`].
pub fn decode_audit(cursors: &Cursors, cursor: &str) -> Result<i64, ApiError> {
    let text = cursors.open(AUDIT, cursor).ok_or_else(invalid)?;
    text.strip_prefix("a:").and_then(|id| id.parse::<i64>().ok()).filter(|id| *id > 0).ok_or_else(invalid)
}
