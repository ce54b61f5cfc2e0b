//! Issuers (certctl's `issuers`): a certificate authority connection: a type and its config.
//! Secret config fields are write-only: sealed at rest (`issuers::sealed_config`), shown as
//! `"***"`, and a `"***"` sent back in an update keeps the stored value.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::types::Json;
use tokio_postgres::Row;

use super::{check_config, set_if, Column, Resource};
use crate::crypto::seal::SealingKey;
use crate::domain::redaction::redact_config;
use crate::domain::validation::{FieldError, Violations};
use crate::error::DbError;
use crate::issuers::sealed_config::seal_config;

/// Issuer types certctl knows (its `GenericCA` is our `local`).
pub const ISSUER_TYPES: [&str; 12] = [
    "local",
    "acme",
    "stepca",
    "openssl",
    "vault",
    "digicert",
    "sectigo",
    "googlecas",
    "awsacmpca",
    "entrust",
    "globalsign",
    "ejbca",
];

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Issuer {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub issuer_type: String,
    /// The config with secret-looking fields shown as `"***"`.
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
#[schema(example = json!({"name": "second local CA", "type": "local"}))]
pub struct NewIssuer {
    #[serde(default)]
    pub id: Option<String>,
    pub name: String,
    #[serde(rename = "type")]
    pub issuer_type: String,
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub config: serde_json::Value,
    #[serde(default = "default_true")]
    pub enabled: bool,
}

#[derive(Debug, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssuerPatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub issuer_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub config: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

fn check(v: &mut Violations, issuer_type: Option<&str>, config: Option<&serde_json::Value>) {
    if let Some(t) = issuer_type {
        if !ISSUER_TYPES.contains(&normalize_type(t.to_string()).as_str()) {
            v.add("type", format!("must be one of {}", ISSUER_TYPES.join(", ")));
        }
    }
    if let Some(config) = config {
        check_config(v, config);
    }
}

/// certctl's type names (`GenericCA`, `ACME`, `VaultPKI`, `DigiCert`…) in their stored,
/// lower-case form.
pub fn normalize_type(t: String) -> String {
    match t.to_ascii_lowercase().as_str() {
        "genericca" | "local_ca" => "local".into(),
        "vaultpki" => "vault".into(),
        other => other.to_string(),
    }
}

impl Resource for Issuer {
    const TABLE: &'static str = "issuers";
    const KIND: &'static str = "issuer";
    const ID_PREFIX: &'static str = "iss";
    const COLUMNS: &'static str = "id, name, type, config, enabled, created_at, updated_at";
    const FILTERS: &'static [(&'static str, &'static str)] = &[("type", "type")];
    type New = NewIssuer;
    type Patch = IssuerPatch;

    fn id(&self) -> &str {
        &self.id
    }

    fn from_row(row: &Row) -> Result<Self, DbError> {
        let config: Json<serde_json::Value> = row.try_get("config")?;
        Ok(Issuer {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            issuer_type: row.try_get("type")?,
            config: redact_config(&row.try_get::<_, String>("type")?, config.0),
            enabled: row.try_get("enabled")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }

    fn validate_new(new: &NewIssuer) -> Result<(), Vec<FieldError>> {
        let mut v = Violations::default();
        if let Some(id) = &new.id {
            v.id("id", id);
        }
        v.text("name", &new.name, 255);
        check(&mut v, Some(&new.issuer_type), Some(&new.config));
        v.into_result()
    }

    fn validate_patch(patch: &IssuerPatch) -> Result<(), Vec<FieldError>> {
        let mut v = Violations::default();
        if let Some(name) = &patch.name {
            v.text("name", name, 255);
        }
        check(&mut v, patch.issuer_type.as_deref(), patch.config.as_ref());
        v.into_result()
    }

    fn insert_columns(new: NewIssuer) -> (Option<String>, Vec<Column>) {
        (
            new.id,
            vec![
                ("name", Box::new(new.name)),
                ("type", Box::new(normalize_type(new.issuer_type))),
                ("config", Box::new(Json(new.config))),
                ("enabled", Box::new(new.enabled)),
            ],
        )
    }

    fn update_columns(patch: IssuerPatch) -> Vec<Column> {
        let mut columns = Vec::new();
        set_if(&mut columns, "name", patch.name);
        set_if(&mut columns, "type", patch.issuer_type.map(normalize_type));
        set_if(&mut columns, "config", patch.config.map(Json));
        set_if(&mut columns, "enabled", patch.enabled);
        columns
    }

    /// A config sent back with its secrets masked keeps the stored (sealed) values (V12).
    fn set_expression(column: &str, param: usize) -> String {
        match column {
            "config" => format!("certctl_keep_masked(config, ${param})"),
            _ => format!("${param}"),
        }
    }

    fn seal_new(new: &mut NewIssuer, sealing: &SealingKey) {
        let type_name = normalize_type(new.issuer_type.clone());
        new.config = seal_config(Some(&type_name), std::mem::take(&mut new.config), sealing);
    }

    fn seal_patch(patch: &mut IssuerPatch, sealing: &SealingKey) {
        let type_name = patch.issuer_type.clone().map(normalize_type);
        if let Some(config) = patch.config.take() {
            patch.config = Some(seal_config(type_name.as_deref(), config, sealing));
        }
    }
}
