//! Every SQL statement of the engine, as [`DbQuery`](crate::DbQuery) values grouped by resource.
//!
//! - [`certificates`]: create, get, list (keyset), patch and archive managed certificates.
//! - [`api_keys`]: the stored API keys the server authenticates with.
//! - [`audit`]: audit rows (inside mutations), audited reads, audit pages, retention batches.
//! - [`health`]: reachability and schema version for `/ready`.

pub mod api_keys;
pub mod audit;
pub mod certificates;
pub mod health;
