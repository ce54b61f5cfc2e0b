//! ETags for the hot list endpoints (certificates, jobs, agents, audit, discovered certificates),
//! answered from memory: a request whose `If-None-Match` names the current ETag gets 304 with no
//! database query at all.
//!
//! The ETag is derived from the generations of the tables the list reads (see
//! `certctl_actors::etag_cache`), read *before* the list's query runs (so a change racing the
//! query can only make the ETag stale, never wrong), the process epoch, the route, the query
//! string with its parameters sorted, and the caller's key (what one key may see, another may
//! not). It is a **weak** ETag (`W/"…"`): the generations are not read in the query's snapshot, so
//! for the microseconds between a commit and its bump two answers under one tag may differ, and
//! gzip and plain answers share it; they are equivalent, not byte-identical.
//!
//! No ETag is given (result `bypass`) while read auditing is on (a 304 would skip the read's
//! audit row) or while change notifications are not flowing (another replica's change could go
//! unseen). `If-None-Match` follows RFC 9110 §13.1.2: a list of tags compared weakly, or `*`,
//! which any current list matches.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder};
use sha2::{Digest, Sha256};

use certctl_actors::etag_cache::Table;
use certctl_actors::metrics::ETAG_REQUESTS_TOTAL;

use certctl_actors::queries::certificate_list::Sort;
use certctl_actors::queries::TimePage;
use certctl_actors::DbQuery;
use serde::Serialize;

use super::cursor;
use super::paging::PageRequest;
use super::problem::ApiError;
use super::AppState;
use crate::auth::Caller;

/// What a list request should do.
pub enum Revalidation {
    /// Answer this 304 now.
    NotModified(HttpResponse),
    /// Run the query and answer 200 with this ETag (none when bypassed).
    Fresh(Option<String>),
}

/// Decides a list request against its `If-None-Match`; `endpoint` labels the metric, `tables` are
/// the tables the list reads.
/// The lists that answer `If-None-Match` (the endpoint labels their handlers pass to
/// [`revalidate`]); the OpenAPI document gives these the header, the `ETag` and the 304.
pub const REVALIDATED_LISTS: [&str; 5] =
    ["/api/v1/certificates", "/api/v1/jobs", "/api/v1/agents", "/api/v1/discovered-certificates", "/api/v1/audit"];

pub fn revalidate(
    req: &HttpRequest,
    state: &AppState,
    caller: &Caller,
    endpoint: &'static str,
    tables: &[Table],
) -> Revalidation {
    let generations = state.db().generations();
    if state.engine.inventory().audits_reads() || !generations.listening() {
        metrics::counter!(ETAG_REQUESTS_TOTAL, "endpoint" => endpoint, "result" => "bypass").increment(1);
        return Revalidation::Fresh(None);
    }
    let mut hash = Sha256::new();
    for table in tables {
        hash.update(generations.get(*table).to_le_bytes());
    }
    hash.update(endpoint.as_bytes());
    let mut pairs: Vec<&str> = req.query_string().split('&').filter(|p| !p.is_empty()).collect();
    pairs.sort_unstable();
    for pair in pairs {
        hash.update([0]);
        hash.update(pair.as_bytes());
    }
    hash.update([1, u8::from(caller.admin)]);
    hash.update(caller.name.as_bytes());
    let digest = hash.finalize();
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    let etag = format!("W/\"{:016x}{hex}\"", generations.epoch());
    let matches = req
        .headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok())
        .any(|value| if_none_match(value, &etag));
    if matches {
        metrics::counter!(ETAG_REQUESTS_TOTAL, "endpoint" => endpoint, "result" => "hit").increment(1);
        let mut response = HttpResponse::NotModified();
        headers(&mut response, &Some(etag));
        // The 200 would have varied by encoding (compression); a 304 says so too (RFC 9110 §15.4.5).
        response.insert_header((header::VARY, HeaderValue::from_static("accept-encoding")));
        return Revalidation::NotModified(response.finish());
    }
    metrics::counter!(ETAG_REQUESTS_TOTAL, "endpoint" => endpoint, "result" => "miss").increment(1);
    Revalidation::Fresh(Some(etag))
}

/// The whole answer of a cached list ordered by `(created_at, id)` (jobs, agents, discovered
/// certificates): a 304 when `If-None-Match` still holds, else the page run as `query`, with its
/// next cursor for `order` and its ETag.
#[allow(clippy::too_many_arguments)]
pub async fn time_list<Q, T>(
    req: &HttpRequest,
    state: &AppState,
    caller: &Caller,
    endpoint: &'static str,
    tables: &[Table],
    paging: &PageRequest,
    order: Sort,
    query: Q,
) -> Result<HttpResponse, ApiError>
where
    Q: DbQuery<Output = TimePage<T>>,
    T: Serialize + Send + 'static,
{
    let etag = match revalidate(req, state, caller, endpoint, tables) {
        Revalidation::NotModified(response) => return Ok(response),
        Revalidation::Fresh(etag) => etag,
    };
    let page = state.db().run(query).await?;
    let next = cursor::encode_time_key(state.engine.cursors(), endpoint, page.next, order);
    let mut ok = HttpResponse::Ok();
    headers(&mut ok, &etag);
    Ok(ok.json(paging.page(page.items, next, page.total)))
}

/// Adds the ETag and `Cache-Control: private, no-cache` (store it, but revalidate every time)
/// to a list answer; nothing when bypassed.
pub fn headers(response: &mut HttpResponseBuilder, etag: &Option<String>) {
    if let Some(etag) = etag {
        if let Ok(value) = HeaderValue::from_str(etag) {
            response.insert_header((header::ETAG, value));
            response.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("private, no-cache")));
        }
    }
}

/// Whether an `If-None-Match` field value names `etag` (weak comparison: `W/` is ignored on both
/// sides), or is `*`.
fn if_none_match(value: &str, etag: &str) -> bool {
    let value = value.trim();
    if value == "*" {
        return true;
    }
    let ours = etag.trim_start_matches("W/");
    let mut rest = value;
    while let Some(start) = rest.find('"') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('"') else { return false };
        if &rest[start..start + end + 2] == ours {
            return true;
        }
        rest = &after[end + 1..];
    }
    false
}

#[cfg(test)]
mod tests {
    use super::if_none_match;

    #[test]
    fn if_none_match_lists_compare_weakly_and_star_matches() {
        let ours = "\"abc\"";
        assert!(if_none_match("\"abc\"", ours));
        assert!(if_none_match("W/\"abc\"", ours), "weak comparison");
        assert!(if_none_match("\"x\", W/\"y\",\"abc\"", ours), "a list");
        assert!(if_none_match(" * ", ours));
        assert!(!if_none_match("\"abcd\"", ours));
        assert!(!if_none_match("abc", ours), "an unquoted tag is not a tag");
        assert!(!if_none_match("\"x\", \"ab", ours), "unterminated");
        assert!(!if_none_match("\"a,bc\"", ours));
        assert!(if_none_match("\"abc\"", "W/\"abc\""), "our weak tag matches its strong spelling");
    }
}
