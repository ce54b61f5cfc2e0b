//! certctl-actors: the engine of certctl. It knows nothing about HTTP.
//!
//! - [`audit_retention`]: the supervised actor that deletes expired audit events in batches.
//! - [`certificate_writer`]: the supervised actor that batches certificate creations.
//! - [`db`]: the DB actor that owns the deadpool-postgres pool, the [`db::Db`] handle every other
//!   component uses to send it typed query messages, migrations and database bootstrap.
//! - [`domain`]: the domain types (certificates, API keys) and their validation rules.
//! - [`queries`]: every SQL statement, one typed message per query, grouped by resource.
//! - [`metrics`]: the names and help texts of every metric the engine records.
//! - [`error`]: [`DbError`], the one error type a query can return.

pub mod audit_retention;
pub mod certificate_writer;
pub mod db;
pub mod domain;
pub mod error;
pub mod metrics;
pub mod queries;

pub use db::{Db, DbQuery};
pub use error::DbError;
