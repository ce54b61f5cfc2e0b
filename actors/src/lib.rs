//! certctl-actors: the engine of certctl. It knows nothing about HTTP.
//!
//! - [`engine`]: [`Engine::start`](engine::Engine::start), which starts every engine actor, and
//!   the services the shell calls (one call per flow).
//! - [`acme_server`]: the ACME server's protocol pieces (problem documents, account keys, JWS,
//!   nonces).
//! - [`agents`]: the agent directory, registration and key look-ups, the heartbeat aggregator
//!   actor, and the agents' work flows (CSRs, chain pickup, deployment reports).
//! - [`audit_retention`]: the supervised actor that deletes expired audit events in batches.
//! - [`ca_poller`]: the supervised actor that submits and polls orders with remote CAs and tells
//!   them about revocations.
//! - [`certificate_writer`]: the supervised actor that batches certificate creations.
//! - [`cursors`]: keyset cursors signed so that only this server's, for their own list, open.
//! - [`crypto`]: sealing secrets at rest, key algorithms, the local CA's signing.
//! - [`db`]: the DB actor that owns the deadpool-postgres pool, the [`db::Db`] handle every other
//!   component uses to send it typed query messages, migrations and database bootstrap.
//! - [`discovery`]: triage of discovered certificates (claim, dismiss), one call each.
//! - [`inventory`]: certificates and reference resources created and changed, audited reads.
//! - [`domain`]: the domain types (certificates, API keys) and their validation rules.
//! - [`queries`]: every SQL statement, one typed message per query, grouped by resource.
//! - [`renewal`]: the renewal dispatcher actor (claims, issuance under a cap, batched write-back)
//!   and the renewals asked for through the API.
//! - [`scheduler`]: the periodic loops as supervised actors, one leader per loop across replicas.
//! - [`secrets`]: the sealing key, derived from `CERTCTL_CONFIG_ENCRYPTION_KEY` and checked at start.
//! - [`issuers`]: issuer connectors (the local CA, remote CAs) and the registry that builds them.
//! - [`metrics`]: the names and help texts of every metric the engine records.
//! - [`etag_cache`]: table generations and the ETag cache actor listening for change notifications.
//! - [`error`]: [`DbError`], the one error type a query can return.

pub mod acme_server;
pub mod agents;
pub mod audit_retention;
pub mod ca_poller;
pub mod certificate_writer;
pub mod crypto;
pub mod cursors;
pub mod db;
pub mod discovery;
pub mod domain;
pub mod engine;
pub mod error;
pub mod etag_cache;
pub mod inventory;
pub mod issuers;
pub mod metrics;
pub mod queries;
pub mod renewal;
pub mod scheduler;
pub mod secrets;

pub use db::{Db, DbQuery};
pub use engine::{Engine, EngineSettings};
pub use error::DbError;
