//! Agents (certctl's `agents`): the processes on servers that install certificates. Each has its
//! own key (only its hash is stored), a status the heartbeats and the stale-agent loop keep, and
//! what it last said about its host.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::Row;

use super::validation::{FieldError, Violations};
use crate::error::DbError;

/// Agent statuses.
pub const AGENT_STATUSES: [&str; 3] = ["Online", "Offline", "Retired"];

/// An agent as the API shows it (certctl's field names; never the key hash).
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Agent {
    /// The agent's id (`ag-…` when generated).
    pub id: String,
    pub name: String,
    /// As the agent last reported it (empty until it does).
    pub hostname: String,
    /// `Online`, `Offline` (no heartbeat within the stale threshold) or `Retired`.
    #[schema(example = "Online")]
    pub status: String,
    /// The last heartbeat written; `null` before the first.
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    pub registered_at: DateTime<Utc>,
    /// As the agent last reported it (empty until it does).
    pub os: String,
    /// As the agent last reported it (empty until it does).
    pub architecture: String,
    /// As the agent last reported it (empty until it does).
    pub ip_address: String,
    /// The agent's software version, as it last reported it (empty until it does).
    pub version: String,
    /// When it was retired; `null` while it is not.
    pub retired_at: Option<DateTime<Utc>>,
    /// Why it was retired; `null` while it is not.
    pub retired_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The columns [`Agent::from_row`] reads, in order.
pub const AGENT_COLUMNS: &str = "id, name, hostname, status, last_heartbeat_at, registered_at, os, architecture, \
    ip_address, version, retired_at, retired_reason, created_at, updated_at";

impl Agent {
    pub fn from_row(row: &Row) -> Result<Agent, DbError> {
        Ok(Agent {
            id: row.try_get(0)?,
            name: row.try_get(1)?,
            hostname: row.try_get(2)?,
            status: row.try_get(3)?,
            last_heartbeat_at: row.try_get(4)?,
            registered_at: row.try_get(5)?,
            os: row.try_get(6)?,
            architecture: row.try_get(7)?,
            ip_address: row.try_get(8)?,
            version: row.try_get(9)?,
            retired_at: row.try_get(10)?,
            retired_reason: row.try_get(11)?,
            created_at: row.try_get(12)?,
            updated_at: row.try_get(13)?,
        })
    }
}

/// What an agent says about its host, at registration and with each heartbeat. Every field is
/// optional; an absent one leaves the stored value as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HostInfo {
    /// The agent's software version (at most 64 characters).
    pub version: Option<String>,
    /// At most 253 characters.
    pub hostname: Option<String>,
    /// At most 64 characters.
    pub os: Option<String>,
    /// At most 32 characters.
    pub architecture: Option<String>,
    /// An IPv4 or IPv6 address (or empty).
    pub ip_address: Option<String>,
}

impl HostInfo {
    /// Checks lengths and characters (values end up in dashboards and logs).
    pub fn check(&self, violations: &mut Violations) {
        for (field, value, max) in [
            ("version", &self.version, 64),
            ("hostname", &self.hostname, 253),
            ("os", &self.os, 64),
            ("architecture", &self.architecture, 32),
            ("ip_address", &self.ip_address, 45),
        ] {
            if let Some(value) = value {
                violations.optional_text(field, value, max);
            }
        }
        if let Some(ip) = self.ip_address.as_deref().filter(|ip| !ip.is_empty()) {
            if ip.parse::<std::net::IpAddr>().is_err() {
                violations.add("ip_address", "must be an IPv4 or IPv6 address");
            }
        }
    }
}

/// `POST /api/v1/agents`: a new agent.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAgent {
    /// Optional; generated (`ag-…`) when absent.
    pub id: Option<String>,
    /// At most 128 characters.
    pub name: String,
    #[serde(flatten)]
    pub host: HostInfo,
}

impl NewAgent {
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut v = Violations::default();
        if let Some(id) = &self.id {
            v.id("id", id);
        }
        v.text("name", &self.name, 128);
        self.host.check(&mut v);
        v.into_result()
    }
}
