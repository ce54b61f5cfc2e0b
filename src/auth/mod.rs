//! Authentication of API requests.
//!
//! `Authorization: Bearer <key>` is checked by [`require_api_key`] (a middleware on `/api/v1`)
//! against the [`keys::KeyStore`], the agent directory (keys starting `cctl_agent_`) or the agent
//! bootstrap token; the [`Caller`] it finds goes into the request's extensions. Agent keys and the
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

use std::sync::Arc;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{web, Error, FromRequest, HttpMessage, HttpRequest};
use futures_util::future::{ready, Ready};
use subtle::ConstantTimeEq;

use certctl_actors::agents::directory::{AgentDirectory, KnownAgent};
use certctl_actors::queries::agents::FindAgentByKey;
use certctl_actors::Db;
pub use keys::{Caller, KeyStore};

use crate::http::problem::ApiError;
use keys::{hash_key, AGENT_KEY_PREFIX};

/// How requests are authenticated, shared by every worker.
pub enum Authenticator {
    /// Bearer keys: API keys, agents' keys, the bootstrap token.
    ApiKeys {
        store: KeyStore,
        agents: Arc<AgentDirectory>,
        /// SHA-256 of `CERTCTL_AGENT_BOOTSTRAP_TOKEN`.
        bootstrap: Option<[u8; 32]>,
        /// For agent keys the directory does not know yet (registered on another replica).
        db: Db,
        /// Agent keys the database did not know either, recently: refused without asking again.
        misses: RecentMisses,
    },
    /// `CERTCTL_AUTH_TYPE=none`: every request acts as an anonymous admin.
    Disabled,
}

/// Hashes of agent keys found nowhere, with when: a client repeating a wrong key costs one
/// database look-up per [`MISS_MEMORY`], not one per request. Bounded: cleared when full.
#[derive(Default)]
pub struct RecentMisses(std::sync::Mutex<std::collections::HashMap<[u8; 32], std::time::Instant>>);

/// How long a key found nowhere is refused without a look-up.
const MISS_MEMORY: std::time::Duration = std::time::Duration::from_secs(10);
/// Misses remembered at most.
const MAX_MISSES: usize = 10_000;

impl RecentMisses {
    fn recent(&self, hash: &[u8; 32]) -> bool {
        let misses = self.0.lock().unwrap_or_else(|e| e.into_inner());
        misses.get(hash).is_some_and(|at| at.elapsed() < MISS_MEMORY)
    }

    fn remember(&self, hash: [u8; 32]) {
        let mut misses = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if misses.len() >= MAX_MISSES {
            misses.clear();
        }
        misses.insert(hash, std::time::Instant::now());
    }
}

/// What the synchronous check found.
enum Checked {
    Done(Result<Caller, ApiError>),
    /// An agent key the directory does not know: look it up in the database.
    LookUp([u8; 32]),
}

fn agent_caller(agent: KnownAgent) -> Result<Caller, ApiError> {
    if agent.retired {
        return Err(ApiError::Gone(format!("agent {} is retired; its key is no longer accepted", agent.id)));
    }
    Ok(Caller { name: agent.id.to_string(), authenticated: true, agent_id: Some(agent.id), ..Caller::default() })
}

impl Authenticator {
    /// The caller for an `Authorization` header value, or why it is refused.
    pub async fn check(&self, authorization: Option<&str>) -> Result<Caller, ApiError> {
        match self.check_known(authorization) {
            Checked::Done(result) => result,
            Checked::LookUp(hash) => self.look_up_agent(hash).await,
        }
    }

    fn check_known(&self, authorization: Option<&str>) -> Checked {
        let (store, agents, bootstrap, misses) = match self {
            Authenticator::Disabled => {
                return Checked::Done(Ok(Caller { name: "anonymous".into(), admin: true, ..Caller::default() }))
            }
            Authenticator::ApiKeys { store, agents, bootstrap, misses, .. } => (store, agents, bootstrap, misses),
        };
        let Some(value) = authorization else {
            return Checked::Done(Err(ApiError::Unauthorized(
                "send an API key as `Authorization: Bearer <key>`".into(),
            )));
        };
        // The scheme name is case-insensitive (RFC 9110 §11.1).
        let token = value
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|t| !t.is_empty());
        let Some(token) = token else {
            return Checked::Done(Err(ApiError::Unauthorized(
                "the Authorization header must be `Bearer <key>`".into(),
            )));
        };
        let hash = hash_key(token);
        if token.starts_with(AGENT_KEY_PREFIX) {
            return match agents.by_key_hash(&hash) {
                Some(agent) => Checked::Done(agent_caller(agent)),
                None if misses.recent(&hash) => {
                    Checked::Done(Err(ApiError::Unauthorized("the API key is not valid".into())))
                }
                None => Checked::LookUp(hash),
            };
        }
        if bootstrap.is_some_and(|b| bool::from(b.ct_eq(&hash))) {
            let caller =
                Caller { name: "agent-bootstrap".into(), authenticated: true, bootstrap: true, ..Caller::default() };
            return Checked::Done(Ok(caller));
        }
        Checked::Done(
            store.authenticate(token).ok_or_else(|| ApiError::Unauthorized("the API key is not valid".into())),
        )
    }

    async fn look_up_agent(&self, hash: [u8; 32]) -> Result<Caller, ApiError> {
        let Authenticator::ApiKeys { agents, db, misses, .. } = self else {
            return Err(ApiError::Unauthorized("the API key is not valid".into()));
        };
        let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
        match db.run(FindAgentByKey { key_hash: hex }).await? {
            Some(entry) => {
                agents.upsert([entry]);
                agents
                    .by_key_hash(&hash)
                    .map_or_else(|| Err(ApiError::Unauthorized("the API key is not valid".into())), agent_caller)
            }
            None => {
                misses.remember(hash);
                Err(ApiError::Unauthorized("the API key is not valid".into()))
            }
        }
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
        Some(auth) => {
            let header = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
            auth.check(header).await
        }
        None => Err(ApiError::Internal(anyhow::anyhow!("authenticator missing from app data"))),
    };
    let checked = checked.and_then(|caller| scope::confine(&caller, req.method(), req.path()).map(|()| caller));
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
