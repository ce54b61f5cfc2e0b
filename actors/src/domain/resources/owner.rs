//! Owners (certctl's `owners`): a person or group answerable for certificates, in a team.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::Row;

use super::{set_if, Column, Resource};
use crate::domain::validation::{FieldError, Violations};
use crate::error::DbError;

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Owner {
    pub id: String,
    pub name: String,
    pub email: String,
    pub team_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Bob", "email": "bob@example.com", "team_id": "t-platform"}))]
pub struct NewOwner {
    #[serde(default)]
    pub id: Option<String>,
    pub name: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub team_id: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OwnerPatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team_id: Option<String>,
}

impl Resource for Owner {
    const TABLE: &'static str = "owners";
    const KIND: &'static str = "owner";
    const ID_PREFIX: &'static str = "o";
    const COLUMNS: &'static str = "id, name, email, team_id, created_at, updated_at";
    const FILTERS: &'static [(&'static str, &'static str)] = &[("team_id", "team_id"), ("email", "email")];
    type New = NewOwner;
    type Patch = OwnerPatch;

    fn id(&self) -> &str {
        &self.id
    }

    fn from_row(row: &Row) -> Result<Self, DbError> {
        Ok(Owner {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            email: row.try_get("email")?,
            team_id: row.try_get("team_id")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }

    fn validate_new(new: &NewOwner) -> Result<(), Vec<FieldError>> {
        let mut v = Violations::default();
        if let Some(id) = &new.id {
            v.id("id", id);
        }
        v.text("name", &new.name, 255);
        v.email("email", &new.email);
        if let Some(team) = &new.team_id {
            v.id("team_id", team);
        }
        v.into_result()
    }

    fn validate_patch(patch: &OwnerPatch) -> Result<(), Vec<FieldError>> {
        let mut v = Violations::default();
        if let Some(name) = &patch.name {
            v.text("name", name, 255);
        }
        if let Some(email) = &patch.email {
            v.email("email", email);
        }
        if let Some(team) = &patch.team_id {
            v.id("team_id", team);
        }
        v.into_result()
    }

    fn insert_columns(new: NewOwner) -> (Option<String>, Vec<Column>) {
        (new.id, vec![("name", Box::new(new.name)), ("email", Box::new(new.email)), ("team_id", Box::new(new.team_id))])
    }

    fn update_columns(patch: OwnerPatch) -> Vec<Column> {
        let mut columns = Vec::new();
        set_if(&mut columns, "name", patch.name);
        set_if(&mut columns, "email", patch.email);
        set_if(&mut columns, "team_id", patch.team_id);
        columns
    }
}
