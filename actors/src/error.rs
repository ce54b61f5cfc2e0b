//! The error a query returns. Callers map each variant to a status; none of them carries driver
//! text meant for a client, and `Unexpected` keeps the full cause chain for the logs. Constraint
//! violations arrive typed (the kind of row and the field, see `db::constraints`), so no caller
//! needs to know a constraint's name.

use deadpool_postgres::PoolError;
use tokio_postgres::error::SqlState;

pub use crate::db::constraints::ForeignKey;
use crate::db::constraints::{self, Violation};

/// An error and its causes as one line (`outer: inner: innermost`), for logs: never a backtrace,
/// which `Debug` of an `anyhow::Error` adds when `RUST_BACKTRACE` is set.
pub fn cause_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut next = error.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        // anyhow's context layers repeat their inner message in some adapters; skip exact repeats.
        if !line.ends_with(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        next = cause.source();
    }
    line
}

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
    /// A row of this kind with the same value exists (a duplicate certificate name, a taken id).
    #[error("a {kind} with this {field} already exists")]
    Duplicate {
        /// The kind of row, in words (`certificate`, `renewal policy`).
        kind: &'static str,
        /// The value that is taken (`id`, `name`).
        field: &'static str,
    },
    /// A second active issuance or renewal of one certificate (one may be active at a time).
    #[error("the certificate already has an active issuance or renewal")]
    RenewalActive,
    /// The row refers to a row that does not exist (an owner id nobody has).
    #[error("{} refers to a resource that does not exist", .0.field)]
    ForeignKey(ForeignKey),
    /// A delete was refused because other rows still refer to the row (RESTRICT).
    #[error("it is still referenced by {by}")]
    StillReferenced {
        /// Which rows, in words (`certificates`, `owners`).
        by: &'static str,
    },
    /// A value outside what a column accepts (a check constraint).
    #[error("{field} is outside the accepted values")]
    OutOfRange {
        /// The request field.
        field: &'static str,
    },
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
            DbError::Duplicate { .. } | DbError::RenewalActive => "unique_violation",
            DbError::ForeignKey(_) => "foreign_key_violation",
            DbError::OutOfRange { .. } => "check_violation",
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
        let constraint = db.constraint().unwrap_or("unknown");
        let code = db.code();
        if *code == SqlState::UNIQUE_VIOLATION {
            constraints::unique(constraint).into()
        } else if *code == SqlState::FOREIGN_KEY_VIOLATION {
            constraints::foreign_key(constraint).into()
        } else if *code == SqlState::CHECK_VIOLATION {
            constraints::check(constraint).into()
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

impl From<Violation> for DbError {
    fn from(v: Violation) -> Self {
        match v {
            Violation::Duplicate { kind, field } => DbError::Duplicate { kind, field },
            Violation::RenewalActive => DbError::RenewalActive,
            Violation::ForeignKey(key) => DbError::ForeignKey(key),
            Violation::OutOfRange { field } => DbError::OutOfRange { field },
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
