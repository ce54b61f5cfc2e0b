//! Certificate profiles (certctl's `certificate_profiles`): what a certificate may be — key
//! algorithms, maximum lifetime, extended key usages — and whether issuing needs approval.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::types::Json;
use tokio_postgres::Row;

use super::{set_if, Column, Resource};
use crate::domain::validation::{FieldError, Violations};
use crate::error::DbError;

/// An allowed key algorithm and its minimum size in bits.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyAlgorithm {
    pub algorithm: String,
    pub min_size: i32,
}

/// Extended key usages a profile may allow.
pub const EKUS: [&str; 5] = ["serverAuth", "clientAuth", "codeSigning", "emailProtection", "timeStamping"];
/// Key algorithms a profile may allow.
pub const KEY_ALGORITHMS: [&str; 3] = ["ECDSA", "RSA", "Ed25519"];

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Profile {
    pub id: String,
    pub name: String,
    pub description: String,
    pub allowed_key_algorithms: Vec<KeyAlgorithm>,
    pub max_ttl_seconds: i32,
    pub allowed_ekus: Vec<String>,
    pub allow_short_lived: bool,
    pub requires_approval: bool,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn default_algorithms() -> Vec<KeyAlgorithm> {
    vec![
        KeyAlgorithm { algorithm: "ECDSA".into(), min_size: 256 },
        KeyAlgorithm { algorithm: "RSA".into(), min_size: 2048 },
    ]
}
fn default_ttl() -> i32 {
    7_776_000
}
fn default_ekus() -> Vec<String> {
    vec!["serverAuth".into()]
}
fn default_true() -> bool {
    true
}

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "tls-server-ecdsa", "description": "ECDSA TLS server certificates"}))]
pub struct NewProfile {
    #[serde(default)]
    pub id: Option<String>,
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default = "default_algorithms")]
    pub allowed_key_algorithms: Vec<KeyAlgorithm>,
    #[serde(default = "default_ttl")]
    pub max_ttl_seconds: i32,
    #[serde(default = "default_ekus")]
    pub allowed_ekus: Vec<String>,
    #[serde(default)]
    pub allow_short_lived: bool,
    #[serde(default)]
    pub requires_approval: bool,
    #[serde(default = "default_true")]
    pub enabled: bool,
}

#[derive(Debug, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfilePatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_key_algorithms: Option<Vec<KeyAlgorithm>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_ttl_seconds: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_ekus: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_short_lived: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requires_approval: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

fn check(v: &mut Violations, algorithms: Option<&[KeyAlgorithm]>, ttl: Option<i32>, ekus: Option<&[String]>) {
    if let Some(algorithms) = algorithms {
        if algorithms.is_empty() {
            v.add("allowed_key_algorithms", "must allow at least one algorithm");
        }
        for (i, a) in algorithms.iter().enumerate() {
            let bad = match a.algorithm.as_str() {
                "ECDSA" => !matches!(a.min_size, 256 | 384 | 521),
                "RSA" => !(2048..=8192).contains(&a.min_size),
                "Ed25519" => a.min_size != 0 && a.min_size != 256,
                _ => true,
            };
            if bad {
                v.add(
                    format!("allowed_key_algorithms[{i}]"),
                    format!(
                        "algorithm must be one of {} (ECDSA min_size 256/384/521, RSA 2048-8192)",
                        KEY_ALGORITHMS.join(", ")
                    ),
                );
            }
        }
    }
    if ttl.is_some_and(|t| !(60..=398 * 86_400).contains(&t)) {
        v.add("max_ttl_seconds", "must be between 60 and 34387200 (398 days)");
    }
    if let Some(ekus) = ekus {
        for (i, eku) in ekus.iter().enumerate() {
            if !EKUS.contains(&eku.as_str()) {
                v.add(format!("allowed_ekus[{i}]"), format!("must be one of {}", EKUS.join(", ")));
            }
        }
    }
}

impl Resource for Profile {
    const TABLE: &'static str = "certificate_profiles";
    const KIND: &'static str = "profile";
    const ID_PREFIX: &'static str = "prof";
    const COLUMNS: &'static str = "id, name, description, allowed_key_algorithms, max_ttl_seconds, allowed_ekus, \
        allow_short_lived, requires_approval, enabled, created_at, updated_at";
    const FILTERS: &'static [(&'static str, &'static str)] = &[];
    type New = NewProfile;
    type Patch = ProfilePatch;

    fn id(&self) -> &str {
        &self.id
    }

    fn from_row(row: &Row) -> Result<Self, DbError> {
        let algorithms: Json<Vec<KeyAlgorithm>> = row.try_get("allowed_key_algorithms")?;
        let ekus: Json<Vec<String>> = row.try_get("allowed_ekus")?;
        Ok(Profile {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            description: row.try_get("description")?,
            allowed_key_algorithms: algorithms.0,
            max_ttl_seconds: row.try_get("max_ttl_seconds")?,
            allowed_ekus: ekus.0,
            allow_short_lived: row.try_get("allow_short_lived")?,
            requires_approval: row.try_get("requires_approval")?,
            enabled: row.try_get("enabled")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }

    fn validate_new(new: &NewProfile) -> Result<(), Vec<FieldError>> {
        let mut v = Violations::default();
        if let Some(id) = &new.id {
            v.id("id", id);
        }
        v.text("name", &new.name, 255);
        v.optional_text("description", &new.description, 2000);
        check(&mut v, Some(&new.allowed_key_algorithms), Some(new.max_ttl_seconds), Some(&new.allowed_ekus));
        v.into_result()
    }

    fn validate_patch(patch: &ProfilePatch) -> Result<(), Vec<FieldError>> {
        let mut v = Violations::default();
        if let Some(name) = &patch.name {
            v.text("name", name, 255);
        }
        if let Some(description) = &patch.description {
            v.optional_text("description", description, 2000);
        }
        check(&mut v, patch.allowed_key_algorithms.as_deref(), patch.max_ttl_seconds, patch.allowed_ekus.as_deref());
        v.into_result()
    }

    fn insert_columns(new: NewProfile) -> (Option<String>, Vec<Column>) {
        (
            new.id,
            vec![
                ("name", Box::new(new.name)),
                ("description", Box::new(new.description)),
                ("allowed_key_algorithms", Box::new(Json(new.allowed_key_algorithms))),
                ("max_ttl_seconds", Box::new(new.max_ttl_seconds)),
                ("allowed_ekus", Box::new(Json(new.allowed_ekus))),
                ("allow_short_lived", Box::new(new.allow_short_lived)),
                ("requires_approval", Box::new(new.requires_approval)),
                ("enabled", Box::new(new.enabled)),
            ],
        )
    }

    fn update_columns(patch: ProfilePatch) -> Vec<Column> {
        let mut columns = Vec::new();
        set_if(&mut columns, "name", patch.name);
        set_if(&mut columns, "description", patch.description);
        set_if(&mut columns, "allowed_key_algorithms", patch.allowed_key_algorithms.map(Json));
        set_if(&mut columns, "max_ttl_seconds", patch.max_ttl_seconds);
        set_if(&mut columns, "allowed_ekus", patch.allowed_ekus.map(Json));
        set_if(&mut columns, "allow_short_lived", patch.allow_short_lived);
        set_if(&mut columns, "requires_approval", patch.requires_approval);
        set_if(&mut columns, "enabled", patch.enabled);
        columns
    }
}
