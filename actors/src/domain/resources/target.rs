//! Deployment targets (certctl's `deployment_targets`): a place a certificate is installed (an
//! nginx, a directory, a load balancer…). Certificates bind to targets through their
//! `target_ids`. Config fields whose names look secret are write-only (shown as `"***"`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::types::Json;
use tokio_postgres::Row;

use super::{check_config, set_if, Column, Resource};
use crate::domain::redaction::redact_config;
use crate::domain::validation::{FieldError, Violations};
use crate::error::DbError;

/// Target types, lower-case (certctl's `NGINX`, `Apache`… are accepted in any case).
pub const TARGET_TYPES: [&str; 17] = [
    "file",
    "nginx",
    "apache",
    "haproxy",
    "f5",
    "iis",
    "traefik",
    "caddy",
    "envoy",
    "postfix",
    "dovecot",
    "ssh",
    "wincertstore",
    "javakeystore",
    "kubernetessecrets",
    "awsacm",
    "azurekeyvault",
];

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Target {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub target_type: String,
    pub agent_id: Option<String>,
    #[schema(value_type = Object)]
    pub config: serde_json::Value,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn default_true() -> bool {
    true
}
fn empty_object() -> serde_json::Value {
    serde_json::json!({})
}

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "edge nginx", "type": "nginx", "config": {"directory": "/etc/nginx/certs"}}))]
pub struct NewTarget {
    #[serde(default)]
    pub id: Option<String>,
    pub name: String,
    #[serde(rename = "type")]
    pub target_type: String,
    #[serde(default)]
    pub agent_id: Option<String>,
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub config: serde_json::Value,
    #[serde(default = "default_true")]
    pub enabled: bool,
}

#[derive(Debug, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetPatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub target_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub config: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

fn check(v: &mut Violations, target_type: Option<&str>, agent_id: Option<&str>, config: Option<&serde_json::Value>) {
    if let Some(t) = target_type {
        if !TARGET_TYPES.contains(&t.to_ascii_lowercase().as_str()) {
            v.add("type", format!("must be one of {}", TARGET_TYPES.join(", ")));
        }
    }
    if let Some(agent) = agent_id {
        v.id("agent_id", agent);
    }
    if let Some(config) = config {
        check_config(v, config);
    }
}

impl Resource for Target {
    const TABLE: &'static str = "deployment_targets";
    const KIND: &'static str = "target";
    const ID_PREFIX: &'static str = "tgt";
    const COLUMNS: &'static str = "id, name, type, agent_id, config, enabled, created_at, updated_at";
    const FILTERS: &'static [(&'static str, &'static str)] = &[("type", "type"), ("agent_id", "agent_id")];
    type New = NewTarget;
    type Patch = TargetPatch;

    fn id(&self) -> &str {
        &self.id
    }

    fn from_row(row: &Row) -> Result<Self, DbError> {
        let config: Json<serde_json::Value> = row.try_get("config")?;
        Ok(Target {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            target_type: row.try_get("type")?,
            agent_id: row.try_get("agent_id")?,
            config: redact_config(&row.try_get::<_, String>("type")?, config.0),
            enabled: row.try_get("enabled")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }

    fn validate_new(new: &NewTarget) -> Result<(), Vec<FieldError>> {
        let mut v = Violations::default();
        if let Some(id) = &new.id {
            v.id("id", id);
        }
        v.text("name", &new.name, 255);
        check(&mut v, Some(&new.target_type), new.agent_id.as_deref(), Some(&new.config));
        v.into_result()
    }

    fn validate_patch(patch: &TargetPatch) -> Result<(), Vec<FieldError>> {
        let mut v = Violations::default();
        if let Some(name) = &patch.name {
            v.text("name", name, 255);
        }
        check(&mut v, patch.target_type.as_deref(), patch.agent_id.as_deref(), patch.config.as_ref());
        v.into_result()
    }

    fn insert_columns(new: NewTarget) -> (Option<String>, Vec<Column>) {
        (
            new.id,
            vec![
                ("name", Box::new(new.name)),
                ("type", Box::new(new.target_type.to_ascii_lowercase())),
                ("agent_id", Box::new(new.agent_id)),
                ("config", Box::new(Json(new.config))),
                ("enabled", Box::new(new.enabled)),
            ],
        )
    }

    fn update_columns(patch: TargetPatch) -> Vec<Column> {
        let mut columns = Vec::new();
        set_if(&mut columns, "name", patch.name);
        set_if(&mut columns, "type", patch.target_type.map(|t| t.to_ascii_lowercase()));
        set_if(&mut columns, "agent_id", patch.agent_id);
        set_if(&mut columns, "config", patch.config.map(Json));
        set_if(&mut columns, "enabled", patch.enabled);
        columns
    }
}
