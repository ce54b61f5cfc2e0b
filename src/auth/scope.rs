//! What an agent's key and the bootstrap token may reach, decided before any handler runs.
//!
//! An agent key reaches only `/api/v1/agents/{its own id}` and what is below it: it can never act
//! as another agent, read another agent's jobs or report on another agent's targets, and it
//! reaches no inventory endpoint at all. The bootstrap token reaches only `POST /api/v1/agents`.
//! Admin keys reach everything; other API keys reach what their handlers allow.

use actix_web::http::Method;

use super::Caller;
use crate::http::problem::ApiError;

const AGENTS: &str = "/api/v1/agents";

/// `Ok` when `caller` may send `method` to `path`.
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
    }
    if caller.bootstrap && !(method == Method::POST && path.trim_end_matches('/') == AGENTS) {
        return Err(ApiError::Forbidden(
            "the agent bootstrap token may only register agents (POST /api/v1/agents)".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(id: &str) -> Caller {
        Caller { name: id.into(), authenticated: true, agent_id: Some(id.into()), ..Caller::default() }
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
        let admin = Caller { name: "ops".into(), admin: true, ..Caller::default() };
        assert!(confine(&admin, &Method::GET, "/api/v1/agents/ag-2/work").is_ok());
    }
}
