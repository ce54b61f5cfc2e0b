//! The engine's typed errors as problems: the engine has already said which kind of row and
//! which field; this only picks the status and the words.

use certctl_actors::domain::validation::FieldError;
use certctl_actors::inventory::Checked;
use certctl_actors::DbError;

use super::{ApiError, Conflict};

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Unavailable { reason, .. } => ApiError::Unavailable {
                detail: format!("the database is unavailable ({reason}); retry shortly"),
                retry_after_secs: 2,
            },
            DbError::Duplicate { kind: "target", field: "name" } => ApiError::Conflict(
                Conflict::AlreadyExists,
                "a target with this name already exists for this agent".into(),
            ),
            DbError::Duplicate { kind, field } => {
                let article =
                    if kind.starts_with(['a', 'e', 'i', 'o', 'u', 'A', 'E', 'I', 'O', 'U']) { "an" } else { "a" };
                ApiError::Conflict(
                    Conflict::AlreadyExists,
                    format!("{article} {kind} with this {field} already exists"),
                )
            }
            DbError::RenewalActive => ApiError::Conflict(
                Conflict::RenewalActive,
                "the certificate already has an active issuance or renewal".into(),
            ),
            DbError::StillReferenced { by } => ApiError::Conflict(
                Conflict::StillReferenced,
                format!("it is still referenced by {by}; reassign or delete those first"),
            ),
            DbError::ForeignKey(key) => {
                let message = match key.field {
                    "target_ids" => "lists a target that does not exist",
                    _ => "refers to a resource that does not exist",
                };
                ApiError::Validation(vec![FieldError { field: key.field.into(), message: message.into() }])
            }
            DbError::OutOfRange { field } => ApiError::Validation(vec![FieldError {
                field: field.into(),
                message: "is outside the accepted values".into(),
            }]),
            DbError::InvalidValue => ApiError::InvalidValue,
            DbError::Unexpected(e) => ApiError::Internal(e),
        }
    }
}

/// A checked change's outcome: what it made, or the problem that refused it.
pub fn checked<T>(checked: Checked<T>) -> Result<T, ApiError> {
    match checked {
        Checked::Done(value) => Ok(value),
        Checked::Invalid(errors) => Err(ApiError::Validation(errors)),
        Checked::NothingToChange => Err(ApiError::InvalidBody {
            detail: "the body changes nothing; send at least one field".into(),
            field: None,
        }),
    }
}
