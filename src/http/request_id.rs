//! Request ids: the client's `X-Request-ID` when it is sane, else a new UUID; kept in the
//! request's extensions for handlers and in a task-local so a problem document rendered anywhere
//! on the request's task can name it.

use actix_web::http::header::HeaderName;

/// The request header (and response header) carrying the request id.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// What error rendering needs to know about the current request.
#[derive(Clone, Debug)]
pub struct RequestInfo {
    /// The request id.
    pub id: String,
    /// The request's path (a problem's `instance`).
    pub path: String,
}

/// The request id, also stored in the request's extensions for handlers.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

tokio::task_local! {
    static REQUEST: RequestInfo;
}

/// The request being served on this task, if any.
pub fn current_request() -> Option<RequestInfo> {
    REQUEST.try_with(Clone::clone).ok()
}

/// Runs `future` with `info` as the current request.
pub async fn scope<F: std::future::Future>(info: RequestInfo, future: F) -> F::Output {
    REQUEST.scope(info, future).await
}

/// The client's id when it is short and made of safe characters (so it can go into logs and
/// headers unescaped), else a new UUIDv4.
pub fn request_id(client: Option<&str>) -> String {
    client.filter(|v| sane_request_id(v)).map(str::to_owned).unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

fn sane_request_id(value: &str) -> bool {
    (1..=128).contains(&value.len())
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_must_be_short_and_plain() {
        assert!(sane_request_id("abc-123_x.y:z"));
        assert!(!sane_request_id(""));
        assert!(!sane_request_id("has space"));
        assert!(!sane_request_id("line\nbreak"));
        assert!(!sane_request_id(&"a".repeat(129)));
        assert_eq!(request_id(Some("abc")), "abc");
        assert_ne!(request_id(Some("bad id")), "bad id");
    }
}
