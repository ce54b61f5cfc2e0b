//! Authentication of API requests.
//!
//! `Authorization: Bearer <key>` is checked by [`require_api_key`] (a middleware on `/api/v1`)
//! against the [`keys::KeyStore`], the engine's agent registry (keys starting `cctl_agent_`) or
//! the agent bootstrap token; the [`Caller`] it finds goes into the request's extensions. Agent keys and the
//! bootstrap token are confined here, before any handler runs ([`scope`]). Admin-only handlers
//! take the [`Admin`] extractor, which answers 403 to other keys. [`bootstrap`] builds the store
//! at start-up and makes the first admin key when there is none.
//!
//! - [`keys`]: hashing, constant-time comparison, key generation.
//! - [`bootstrap`]: configured + stored keys, the first-start admin key and its banner.
//! - [`scope`]: what an agent key and the bootstrap token may reach.

pub mod bootstrap;
pub mod keys;
pub mod scope;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{web, Error, FromRequest, HttpMessage, HttpRequest};
use futures_util::future::{ready, Ready};
use subtle::ConstantTimeEq;

use certctl_actors::agents::directory::KnownAgent;
use certctl_actors::agents::registry::{AgentRegistry, KeyOwner, AGENT_KEY_PREFIX};
pub use keys::{Caller, KeyStore};

use crate::http::problem::ApiError;
use certctl_actors::domain::api_key::key_hash;

/// How requests are authenticated, shared by every worker.
pub enum Authenticator {
    /// Bearer keys: API keys, agents' keys, the bootstrap token.
    ApiKeys {
        store: KeyStore,
        /// Agents' keys (`cctl_agent_…`) are the engine's to check.
        agents: AgentRegistry,
        /// SHA-256 of `CERTCTL_AGENT_BOOTSTRAP_TOKEN`.
        bootstrap: Option<[u8; 32]>,
    },
    /// `CERTCTL_AUTH_TYPE=none`: every request acts as an anonymous admin.
    Disabled,
}

fn agent_caller(agent: KnownAgent) -> Result<Caller, ApiError> {
    if agent.retired {
        return Err(ApiError::Gone(format!("agent {} is retired; its key is no longer accepted", agent.id)));
    }
    Ok(Caller { name: agent.id.to_string(), authenticated: true, agent_id: Some(agent.id), ..Caller::default() })
}

fn invalid_key() -> ApiError {
    ApiError::Unauthorized("the API key is not valid".into())
}

impl Authenticator {
    /// The caller for the request's `Authorization` header values, or why it is refused. More
    /// than one `Authorization` header is refused: which one a proxy or a server honours
    /// differs, so none is.
    pub async fn check<'a>(&self, mut authorization: impl Iterator<Item = &'a [u8]>) -> Result<Caller, ApiError> {
        let (store, agents, bootstrap) = match self {
            Authenticator::Disabled => {
                return Ok(Caller { name: "anonymous".into(), admin: true, ..Caller::default() })
            }
            Authenticator::ApiKeys { store, agents, bootstrap } => (store, agents, bootstrap),
        };
        let Some(value) = authorization.next() else {
            return Err(ApiError::Unauthorized("send an API key as `Authorization: Bearer <key>`".into()));
        };
        if authorization.next().is_some() {
            return Err(ApiError::Unauthorized("send one Authorization header, not several".into()));
        }
        // The scheme name is case-insensitive (RFC 9110 §11.1).
        let token = std::str::from_utf8(value)
            .ok()
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|t| !t.is_empty());
        let Some(token) = token else {
            return Err(ApiError::Unauthorized("the Authorization header must be `Bearer <key>`".into()));
        };
        if token.starts_with(AGENT_KEY_PREFIX) {
            return match agents.owner_of_key(token).await? {
                KeyOwner::Agent(agent) => agent_caller(agent),
                KeyOwner::Unknown => Err(invalid_key()),
            };
        }
        // One hash of the presented key serves both comparisons.
        let hash = key_hash(token);
        if bootstrap.is_some_and(|b| bool::from(b.ct_eq(&hash))) {
            return Ok(Caller {
                name: "agent-bootstrap".into(),
                authenticated: true,
                bootstrap: true,
                ..Caller::default()
            });
        }
        store.authenticate(&hash).ok_or_else(invalid_key)
    }
}

/// Middleware: authenticates the request and confines agent keys and the bootstrap token, or
/// answers 401/403/410. Refusals are rendered here, inside the request's scope, so the problem
/// document carries the request id.
pub async fn require_api_key(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let checked = match req.app_data::<web::Data<Authenticator>>() {
        Some(auth) => auth.check(req.headers().get_all(header::AUTHORIZATION).map(|v| v.as_bytes())).await,
        None => Err(ApiError::Internal(anyhow::anyhow!("authenticator missing from app data"))),
    };
    // The path as the router matches it (percent-encoded letters decoded), not as it was sent:
    // `/api/v1/%74argets/x` reaches the targets handler, so it must meet the targets rule.
    let path = scope::canonical_path(req.match_info().as_str());
    let checked = checked.and_then(|caller| scope::confine(&caller, req.method(), &path).map(|()| caller));
    match checked {
        Ok(caller) => {
            tracing::Span::current().record("caller", caller.name.as_str());
            req.extensions_mut().insert(caller);
            next.call(req).await.map(ServiceResponse::map_into_boxed_body)
        }
        Err(refusal) => Ok(req.error_response(refusal)),
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Caller, ApiError>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        ready(
            req.extensions()
                .get::<Caller>()
                .cloned()
                .ok_or_else(|| ApiError::Unauthorized("send an API key as `Authorization: Bearer <key>`".into())),
        )
    }
}

/// Extractor for admin-only handlers: the caller, known to be an admin.
pub struct Admin(pub Caller);

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Ready<Result<Admin, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        ready(Caller::from_request(req, payload).into_inner().and_then(|caller| {
            if caller.admin {
                Ok(Admin(caller))
            } else {
                Err(ApiError::Forbidden(format!("the API key `{}` is not an admin key", caller.name)))
            }
        }))
    }
}
