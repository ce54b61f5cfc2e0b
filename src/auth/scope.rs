//! What each kind of key may reach, decided before any handler runs (so before a body is read: a
//! key without the permission gets 403 whatever it sends).
//!
//! - An **agent's key** reaches only `/api/v1/agents/{its own id}` and what is below it: it can
//!   never act as another agent, read another agent's jobs or report on another agent's targets,
//!   and it reaches no inventory endpoint at all.
//! - The **bootstrap token** reaches only `POST /api/v1/agents`.
//! - A **read-only key** (`name:key:read`) reads (`GET`, `HEAD`) what a writer reads.
//! - A **writer** (certctl's non-admin key) reads and changes the inventory: certificates and the
//!   resources they refer to, renewals, revocations, jobs, discovery triage.
//! - An **admin key** reaches everything. Only an admin may do what decides what runs on, or is
//!   handed to, an agent's host — create, change or delete deployment targets (their agent, reload
//!   command and config secrets), create, change, delete or test issuers (their credentials, the
//!   hook scripts and URLs the server itself runs and calls), register, retire or act for agents —
//!   and the bulk and operations endpoints (bulk renew and revoke, `/admin/…`).

use actix_web::http::Method;

use super::Caller;
use crate::http::problem::ApiError;

const API: &str = "/api/v1";
const AGENTS: &str = "/api/v1/agents";

/// `path` as the rules read it: the router's (already decoded) path with empty segments dropped,
/// so `//targets/x/` and `/targets/x` are the same path to every rule, as they are to the router.
pub fn canonical_path(path: &str) -> String {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    format!("/{}", segments.join("/"))
}

/// `Ok` when `caller` may send `method` to `path` (a [`canonical_path`]).
pub fn confine(caller: &Caller, method: &Method, path: &str) -> Result<(), ApiError> {
    if let Some(id) = &caller.agent_id {
        let own = path
            .strip_prefix(AGENTS)
            .and_then(|rest| rest.strip_prefix('/'))
            .and_then(|rest| rest.strip_prefix(&**id))
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
        if !own {
            return Err(ApiError::Forbidden(format!(
                "an agent key may only use /api/v1/agents/{id} and the endpoints below it"
            )));
        }
        if method == Method::DELETE {
            return Err(ApiError::Forbidden("an agent cannot retire itself; ask an administrator".into()));
        }
        return Ok(());
    }
    if caller.bootstrap {
        if method == Method::POST && path.trim_end_matches('/') == AGENTS {
            return Ok(());
        }
        return Err(ApiError::Forbidden(
            "the agent bootstrap token may only register agents (POST /api/v1/agents)".into(),
        ));
    }
    if caller.admin {
        return Ok(());
    }
    let rest = path.strip_prefix(API).unwrap_or(path).trim_end_matches('/');
    let reads = method == Method::GET || method == Method::HEAD;
    if let Some(what) = admin_only(method, reads, rest) {
        return Err(ApiError::Forbidden(format!("{what} needs an admin key; `{}` is not one", caller.name)));
    }
    if caller.read_only && !reads {
        return Err(ApiError::Forbidden(format!("the API key `{}` is read-only", caller.name)));
    }
    Ok(())
}

/// What an admin-only request does, in words, or `None` when other keys may send it.
fn admin_only(method: &Method, reads: bool, rest: &str) -> Option<&'static str> {
    if rest.starts_with("/admin/") {
        return Some("the admin endpoints");
    }
    if method == Method::POST && matches!(rest, "/certificates/bulk-renew" | "/certificates/bulk-revoke") {
        return Some("a bulk renewal or revocation");
    }
    if !reads && (rest == "/targets" || rest.starts_with("/targets/")) {
        return Some("changing deployment targets (what runs on and is handed to agents' hosts)");
    }
    if !reads && (rest == "/issuers" || rest.starts_with("/issuers/")) {
        return Some("changing or testing issuers (their CA credentials, hook scripts and URLs the server calls)");
    }
    if method == Method::POST && rest == "/agents" {
        return Some("registering an agent (or the agent bootstrap token)");
    }
    let agent_path = rest.strip_prefix("/agents/").map(|tail| tail.split_once('/').is_some());
    match agent_path {
        Some(true) => Some("acting for an agent (or that agent's own key)"),
        Some(false) if !reads => Some("retiring an agent"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(id: &str) -> Caller {
        Caller { name: id.into(), authenticated: true, agent_id: Some(id.into()), ..Caller::default() }
    }

    fn key(admin: bool, read_only: bool) -> Caller {
        Caller { name: "k".into(), admin, read_only, authenticated: true, ..Caller::default() }
    }

    #[test]
    fn agent_keys_reach_only_their_own_agent() {
        let a = agent("ag-1");
        assert!(confine(&a, &Method::POST, "/api/v1/agents/ag-1/heartbeat").is_ok());
        assert!(confine(&a, &Method::GET, "/api/v1/agents/ag-1").is_ok());
        assert!(confine(&a, &Method::GET, "/api/v1/agents/ag-10/work").is_err(), "a prefix of another id");
        assert!(confine(&a, &Method::GET, "/api/v1/agents/ag-2/work").is_err());
        assert!(confine(&a, &Method::GET, "/api/v1/agents").is_err());
        assert!(confine(&a, &Method::GET, "/api/v1/certificates").is_err());
        assert!(confine(&a, &Method::DELETE, "/api/v1/agents/ag-1").is_err());
    }

    #[test]
    fn the_bootstrap_token_only_registers() {
        let b = Caller { name: "agent-bootstrap".into(), bootstrap: true, ..Caller::default() };
        assert!(confine(&b, &Method::POST, "/api/v1/agents").is_ok());
        assert!(confine(&b, &Method::GET, "/api/v1/agents").is_err());
        assert!(confine(&b, &Method::POST, "/api/v1/certificates").is_err());
    }

    #[test]
    fn paths_are_read_without_empty_segments() {
        assert_eq!(canonical_path("/api/v1//targets/x/"), "/api/v1/targets/x");
        assert_eq!(canonical_path("/"), "/");
    }

    #[test]
    fn each_role_reaches_its_own_routes() {
        let (admin, writer, reader) = (key(true, false), key(false, false), key(false, true));
        for (method, path) in [
            (Method::GET, "/api/v1/agents/ag-2/work"),
            (Method::PUT, "/api/v1/targets/tgt-1"),
            (Method::POST, "/api/v1/admin/scheduler/renewal_scan/run"),
        ] {
            assert!(confine(&admin, &method, path).is_ok(), "{method} {path}");
            assert!(confine(&writer, &method, path).is_err(), "{method} {path}");
            assert!(confine(&reader, &method, path).is_err(), "{method} {path}");
        }
        for (method, path) in [(Method::POST, "/api/v1/certificates"), (Method::POST, "/api/v1/certificates/x/renew")] {
            assert!(confine(&writer, &method, path).is_ok(), "{method} {path}");
            assert!(confine(&reader, &method, path).is_err(), "{method} {path}");
        }
        for path in ["/api/v1/targets", "/api/v1/agents", "/api/v1/agents/ag-1", "/api/v1/certificates"] {
            assert!(confine(&reader, &Method::GET, path).is_ok(), "{path}");
            assert!(confine(&reader, &Method::HEAD, path).is_ok(), "{path}");
        }
        assert!(confine(&writer, &Method::DELETE, "/api/v1/agents/ag-1").is_err());
        assert!(confine(&writer, &Method::POST, "/api/v1/agents").is_err());
        assert!(confine(&writer, &Method::POST, "/api/v1/certificates/bulk-revoke").is_err());
    }
}
