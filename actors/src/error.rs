//! The error a query returns. Callers map each variant to a status; none of them carries driver
//! text meant for a client, and `Unexpected` keeps the full cause chain for the logs.

use deadpool_postgres::PoolError;
use tokio_postgres::error::SqlState;

/// Why a query did not produce its result.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database cannot be reached right now (down, restarting, pool exhausted, statement
    /// cancelled by a timeout). Retrying later is the right reaction.
    #[error("database unavailable: {reason}")]
    Unavailable {
        /// A short, client-safe description of what failed.
        reason: &'static str,
        /// The underlying error, for the logs only.
        #[source]
        source: Option<anyhow::Error>,
    },
    /// A unique constraint refused the row (e.g. a duplicate certificate name).
    #[error("unique constraint {constraint} violated")]
    UniqueViolation { constraint: String },
    /// A foreign key refused the row (e.g. an owner id that does not exist).
    #[error("foreign key constraint {constraint} violated")]
    ForeignKeyViolation { constraint: String },
    /// A delete was refused because other rows still reference the row (RESTRICT).
    #[error("still referenced through {constraint}")]
    StillReferenced { constraint: String },
    /// A check constraint refused the row.
    #[error("check constraint {constraint} violated")]
    CheckViolation { constraint: String },
    /// PostgreSQL refused a value (SQLSTATE class 22: out of range, invalid text…): bad input
    /// that validation did not catch, answered as a client error.
    #[error("the database refused a value")]
    InvalidValue,
    /// Anything else: a bug or an unexpected state. Logged with its cause chain, shown as a 500.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl DbError {
    /// An `Unavailable` error without an underlying cause.
    pub fn unavailable(reason: &'static str) -> Self {
        DbError::Unavailable { reason, source: None }
    }

    /// A short, stable label for metrics (`kind` label of the query error counter).
    pub fn kind(&self) -> &'static str {
        match self {
            DbError::Unavailable { .. } => "unavailable",
            DbError::UniqueViolation { .. } => "unique_violation",
            DbError::ForeignKeyViolation { .. } => "foreign_key_violation",
            DbError::CheckViolation { .. } => "check_violation",
            DbError::StillReferenced { .. } => "still_referenced",
            DbError::InvalidValue => "invalid_value",
            DbError::Unexpected(_) => "unexpected",
        }
    }
}

impl From<tokio_postgres::Error> for DbError {
    fn from(e: tokio_postgres::Error) -> Self {
        if e.is_closed() {
            return DbError::Unavailable { reason: "connection to the database was lost", source: Some(e.into()) };
        }
        let Some(db) = e.as_db_error() else {
            // Not a server-side error: I/O, protocol or row conversion. An I/O error means the
            // connection broke mid-query; anything else is a bug worth a 500.
            let io = std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
            return if io {
                DbError::Unavailable { reason: "connection to the database failed", source: Some(e.into()) }
            } else {
                DbError::Unexpected(anyhow::Error::new(e).context("query failed"))
            };
        };
        let constraint = db.constraint().unwrap_or("unknown").to_owned();
        let code = db.code();
        if *code == SqlState::UNIQUE_VIOLATION {
            DbError::UniqueViolation { constraint }
        } else if *code == SqlState::FOREIGN_KEY_VIOLATION {
            DbError::ForeignKeyViolation { constraint }
        } else if *code == SqlState::CHECK_VIOLATION {
            DbError::CheckViolation { constraint }
        } else if code.code().starts_with("22") {
            tracing::debug!(error = %e, "value refused by the database");
            DbError::InvalidValue
        } else if *code == SqlState::QUERY_CANCELED {
            DbError::Unavailable { reason: "statement timed out", source: Some(e.into()) }
        } else if code.code().starts_with("08") || code.code().starts_with("57P") || code.code().starts_with("53") {
            // Class 08 connection exceptions, 57P operator intervention (shutdown, cannot connect
            // now, database dropped), 53 insufficient resources (too many connections).
            DbError::Unavailable { reason: "the database refused the connection", source: Some(e.into()) }
        } else {
            DbError::Unexpected(anyhow::Error::new(e).context("query failed"))
        }
    }
}

impl From<PoolError> for DbError {
    fn from(e: PoolError) -> Self {
        match e {
            PoolError::Timeout(_) => {
                DbError::Unavailable { reason: "no database connection became free in time", source: Some(e.into()) }
            }
            PoolError::Backend(inner) => {
                let mut mapped = DbError::from(inner);
                if let DbError::Unexpected(source) = mapped {
                    mapped = DbError::Unavailable { reason: "could not connect to the database", source: Some(source) };
                }
                mapped
            }
            PoolError::Closed => DbError::unavailable("the connection pool is closed"),
            PoolError::PostCreateHook(_) => {
                DbError::Unavailable { reason: "could not prepare a database connection", source: Some(e.into()) }
            }
            PoolError::NoRuntimeSpecified => DbError::Unexpected(anyhow::anyhow!("deadpool has no runtime configured")),
        }
    }
}
