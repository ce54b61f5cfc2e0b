//! The ACME server's routes (RFC 8555), when `CERTCTL_ACME_SERVER_ENABLED` is set: each under
//! `/acme/profile/{profile_id}/…` (a profile's directory) and `/acme/…` (the profile named by
//! `CERTCTL_ACME_SERVER_DEFAULT_PROFILE_ID`). They take no API key: ACME requests are signed
//! (JWS) by the account's key. Each handler decodes the request (which directory it addresses,
//! the body), makes one engine call (`Engine::acme`) and writes its outcome or its ACME problem
//! document.
//!
//! - [`directory`]: the directory and new-nonce.
//! - [`accounts`]: new-account and the account URL (read, update, deactivate).
//! - [`renewal_info`]: renewal information (RFC 9773).
//! - [`reply`]: the headers every answer carries, and problem documents.

pub mod accounts;
pub mod directory;
pub mod renewal_info;
mod reply;

use actix_web::HttpRequest;

use certctl_actors::acme_server::service::Addressed;

use crate::http::AppState;

/// Which directory a request was sent to: the profile in its path (none for the shorthand) and
/// that directory's URL root as the client reached the server.
fn addressed(state: &AppState, req: &HttpRequest, profile_id: Option<String>) -> Addressed {
    let root = origin(state, req);
    let base_url = match &profile_id {
        // The id as it stands in a URL (percent-encoded), so URLs and headers built on it stay valid
        // whatever a client put in the path.
        Some(id) => {
            let encoded: String = id
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
                    _ => format!("%{b:02X}"),
                })
                .collect();
            format!("{root}/acme/profile/{encoded}")
        }
        None => format!("{root}/acme"),
    };
    Addressed { profile_id, base_url }
}

/// `scheme://host[:port]` as the client reached the server: a proxy's `Forwarded` or
/// `X-Forwarded-Proto`/`-Host` when it sent them, else this listener's own scheme (an HTTP/1.1
/// request over TLS carries none of its own) and the `Host` header.
fn origin(state: &AppState, req: &HttpRequest) -> String {
    let headers = req.headers();
    let forwarded_proto = headers
        .get("forwarded")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("proto="));
    let forwarded = forwarded_proto || headers.contains_key("x-forwarded-proto");
    let info = req.connection_info();
    let scheme = match (forwarded, state.tls) {
        (true, _) => info.scheme(),
        (false, true) => "https",
        (false, false) => "http",
    };
    format!("{scheme}://{}", info.host())
}

/// The URL a request was sent to, as its JWS must name it.
fn request_url(state: &AppState, req: &HttpRequest) -> String {
    format!("{}{}", origin(state, req), req.path())
}
