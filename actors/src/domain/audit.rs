//! Audit events: who changed what, when, under which request. Rows are written in the same
//! statement or transaction as the change they record, and never edited afterwards.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

/// What kind of principal acted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActorType {
    /// A request authenticated by an API key (the actor is the key's name).
    ApiKey,
    /// A request with authentication disabled (`CERTCTL_AUTH_TYPE=none`).
    Anonymous,
    /// The server itself (scheduler loops, retention…).
    System,
    /// An agent, authenticated by its own key (the actor is the agent's id).
    Agent,
}

impl ActorType {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorType::ApiKey => "api_key",
            ActorType::Anonymous => "anonymous",
            ActorType::System => "system",
            ActorType::Agent => "agent",
        }
    }

    fn parse(value: &str) -> Option<Self> {
        [ActorType::ApiKey, ActorType::Anonymous, ActorType::System, ActorType::Agent]
            .into_iter()
            .find(|t| t.as_str() == value)
    }
}

/// Who is acting, carried into every mutation so its audit row can name them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditActor {
    pub name: String,
    pub actor_type: ActorType,
    /// The HTTP request id, when the change came through the API.
    pub request_id: Option<String>,
}

impl AuditActor {
    /// The server acting on its own.
    pub fn system(component: &str) -> Self {
        AuditActor { name: component.to_string(), actor_type: ActorType::System, request_id: None }
    }
}

/// A stored audit event as the API returns it (certctl's field names, `timestamp` included).
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AuditEvent {
    pub id: i64,
    /// When it happened.
    pub timestamp: DateTime<Utc>,
    /// Who acted: a key's name, an agent's id, or a server component.
    pub actor: String,
    pub actor_type: ActorType,
    /// What was done, such as `create` or `renew`.
    pub action: String,
    /// The kind of resource, such as `certificate` or `agent`.
    pub resource_type: String,
    /// The resource's id (`*` for a list).
    pub resource_id: String,
    /// The HTTP request id, when the change came through the API; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// What changed, secrets redacted (any JSON).
    pub details: Value,
}

impl AuditEvent {
    /// Parses a stored actor type; unknown values are a database inconsistency.
    pub fn actor_type_from_db(value: &str) -> Option<ActorType> {
        ActorType::parse(value)
    }
}

pub use super::redaction::redact;
