//! The inventory's reference resources (teams, owners, renewal policies…) behind one generic
//! shape: a [`Resource`] names its table, columns and row mapping, checks its create and patch
//! bodies, and turns them into column lists; the generic queries in `queries::resources` do the
//! SQL (with audit rows) and the shell's generic handlers the HTTP.
//!
//! - [`team`], [`owner`], [`renewal_policy`], [`issuer`], [`profile`], [`target`]: the resources.

pub mod issuer;
pub mod owner;
pub mod profile;
pub mod renewal_policy;
pub mod target;
pub mod team;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::validation::FieldError;
use crate::crypto::seal::SealingKey;
use crate::error::DbError;

/// A column and the value to write into it.
pub type Column = (&'static str, Box<dyn ToSql + Sync + Send>);

/// A resource type with certctl's REST shape: list, create, get, update (partial), delete.
pub trait Resource: Serialize + utoipa::ToSchema + Send + Sized + 'static {
    /// The table.
    const TABLE: &'static str;
    /// The name in audit rows and messages (`team`).
    const KIND: &'static str;
    /// Prefix of generated ids (`t` gives `t-<uuid>`).
    const ID_PREFIX: &'static str;
    /// The columns every statement returns, as [`Resource::from_row`] reads them.
    const COLUMNS: &'static str;
    /// Exact-match list filters: (query parameter, column).
    const FILTERS: &'static [(&'static str, &'static str)];
    /// A data-modifying CTE (named, over the updated row `c`) that an update of this resource
    /// runs in the same statement, for state derived from it elsewhere.
    const UPDATE_FOLLOW_UP: Option<&'static str> = None;

    /// The create body.
    type New: DeserializeOwned + Serialize + utoipa::ToSchema + Send + 'static;
    /// The update body (every field optional).
    type Patch: DeserializeOwned + Serialize + utoipa::ToSchema + Send + 'static;

    /// The resource's id.
    fn id(&self) -> &str;
    fn from_row(row: &Row) -> Result<Self, DbError>;
    fn validate_new(new: &Self::New) -> Result<(), Vec<FieldError>>;
    fn validate_patch(patch: &Self::Patch) -> Result<(), Vec<FieldError>>;
    /// The client-chosen id, if any, and the columns to insert.
    fn insert_columns(new: Self::New) -> (Option<String>, Vec<Column>);
    /// The columns a patch changes (empty: nothing to do).
    fn update_columns(patch: Self::Patch) -> Vec<Column>;
    /// The SQL an update assigns to `column` from parameter `$param` (the value itself unless a
    /// resource merges it with the stored one).
    fn set_expression(_column: &str, param: usize) -> String {
        format!("${param}")
    }
    /// Seals the secret parts of a create body before it is stored (issuers' secrets).
    fn seal_new(_new: &mut Self::New, _sealing: &SealingKey) {}
    /// Seals the secret parts of an update body before it is stored.
    fn seal_patch(_patch: &mut Self::Patch, _sealing: &SealingKey) {}
}

/// Checks a connector `config`: a JSON object of at most 64 KiB whose keys and strings hold no
/// NUL (PostgreSQL's jsonb cannot store one, and refusing it here keeps the value, secrets and
/// all, out of the database's error path), nest at most 16 levels, and hold only numbers that
/// read back as they were written (PostgreSQL keeps a jsonb number as an exact decimal and prints
/// it in full, which past about 1e308 no longer parses as a double).
pub fn check_config(v: &mut crate::domain::validation::Violations, config: &serde_json::Value) {
    if !config.is_object() {
        v.add("config", "must be a JSON object");
    } else if config.to_string().len() > 64 * 1024 {
        v.add("config", "must be at most 64 KiB");
    } else if let Some(problem) = config_problem(config, 0) {
        v.add("config", problem);
    }
}

/// The largest magnitude a config number may have: far beyond any port, size or timeout, and far
/// from where a stored decimal stops reading back as a double.
const MAX_CONFIG_NUMBER: f64 = 1e15;

fn config_problem(value: &serde_json::Value, depth: usize) -> Option<&'static str> {
    use serde_json::Value;
    if depth > 16 {
        return Some("must not nest more than 16 levels");
    }
    match value {
        Value::String(text) if text.contains('\0') => Some("must not contain NUL characters"),
        Value::Number(number) if number.as_f64().is_none_or(|n| n.abs() > MAX_CONFIG_NUMBER) => {
            Some("numbers must be between -1e15 and 1e15")
        }
        Value::Array(items) => items.iter().find_map(|item| config_problem(item, depth + 1)),
        Value::Object(map) => map.iter().find_map(|(key, item)| {
            if key.contains('\0') {
                Some("must not contain NUL characters")
            } else {
                config_problem(item, depth + 1)
            }
        }),
        _ => None,
    }
}

/// Pushes `(column, value)` when the patch field is present.
pub fn set_if<T: ToSql + Sync + Send + 'static>(columns: &mut Vec<Column>, column: &'static str, value: Option<T>) {
    if let Some(value) = value {
        columns.push((column, Box::new(value)));
    }
}
