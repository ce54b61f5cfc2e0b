//! Teams (certctl's `teams`): a name and a description; owners and certificates belong to one.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::Row;

use super::{set_if, Column, Resource};
use crate::domain::validation::{FieldError, Violations};
use crate::error::DbError;

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Team {
    pub id: String,
    pub name: String,
    pub description: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Identity", "description": "IAM services"}))]
pub struct NewTeam {
    #[serde(default)]
    pub id: Option<String>,
    pub name: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamPatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl Resource for Team {
    const TABLE: &'static str = "teams";
    const KIND: &'static str = "team";
    const ID_PREFIX: &'static str = "t";
    const COLUMNS: &'static str = "id, name, description, created_at, updated_at";
    const FILTERS: &'static [(&'static str, &'static str)] = &[];
    type New = NewTeam;
    type Patch = TeamPatch;

    fn id(&self) -> &str {
        &self.id
    }

    fn from_row(row: &Row) -> Result<Self, DbError> {
        Ok(Team {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            description: row.try_get("description")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }

    fn validate_new(new: &NewTeam) -> Result<(), Vec<FieldError>> {
        let mut v = Violations::default();
        if let Some(id) = &new.id {
            v.id("id", id);
        }
        v.text("name", &new.name, 255);
        v.optional_text("description", &new.description, 2000);
        v.into_result()
    }

    fn validate_patch(patch: &TeamPatch) -> Result<(), Vec<FieldError>> {
        let mut v = Violations::default();
        if let Some(name) = &patch.name {
            v.text("name", name, 255);
        }
        if let Some(description) = &patch.description {
            v.optional_text("description", description, 2000);
        }
        v.into_result()
    }

    fn insert_columns(new: NewTeam) -> (Option<String>, Vec<Column>) {
        (new.id, vec![("name", Box::new(new.name)), ("description", Box::new(new.description))])
    }

    fn update_columns(patch: TeamPatch) -> Vec<Column> {
        let mut columns = Vec::new();
        set_if(&mut columns, "name", patch.name);
        set_if(&mut columns, "description", patch.description);
        columns
    }
}
