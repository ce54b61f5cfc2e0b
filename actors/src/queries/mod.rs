//! Every SQL statement of the engine, as [`DbQuery`](crate::DbQuery) values grouped by resource.
//!
//! - [`certificates`]: create, get, patch and archive managed certificates.
//! - [`certificate_batch`]: many creations in one statement (the certificate writer's batches).
//! - [`certificate_ops`]: renew now, revoke, export, bulk renew/revoke by criteria.
//! - [`certificate_list`]: the certificate list: filters, sorts, keyset or offset pages, totals.
//! - [`agents`]: agent registration, list, retirement, the directory, heartbeat flushes, stale agents.
//! - [`agent_work`]: agents' work claims, CSR submission, chain pickup and deployment reports.
//! - [`api_keys`]: the stored API keys the server authenticates with.
//! - [`acme`]: ACME accounts (sealed) and the http-01 answers the challenge listener serves.
//! - [`acme_server`]: the ACME server's accounts and used nonces.
//! - [`audit`]: audit rows (inside mutations), audited reads, audit pages, retention batches.
//! - [`ca_orders`]: orders with remote CAs: hand-over, the poller's claims and steps, revocations to tell CAs.
//! - [`issuer_config`]: an issuer's type and full config, for building its connector.
//! - [`job_claims`]: the dispatcher's claims, releases of unstarted claims, queue counts.
//! - [`job_writebacks`]: the dispatcher's batched completions and failures.
//! - [`job_sweeps`]: the loops' retries of due jobs and the timeout reaper.
//! - [`jobs`]: the job list, one job, cancel and retry.
//! - [`renewal_scan`]: the renewal scan's enqueue batches and the expiry sweep.
//! - [`resources`]: generic create/get/list/update/delete for every `Resource`.
//! - [`secrets`]: the sealing parameters and the local issuers' sealed CAs.
//! - [`versions`]: a certificate's issued versions, newest first.
//! - [`discovery`]: agents' scan reports, the discovered-certificate list, claim and dismiss.
//! - [`health`]: reachability and schema version for `/ready`.

pub mod acme;
pub mod acme_server;
pub mod agent_work;
pub mod agents;
pub mod api_keys;
pub mod audit;
pub mod ca_orders;
pub mod certificate_batch;
pub mod certificate_list;
pub mod certificate_ops;
pub mod certificates;
pub mod discovery;
pub mod health;
pub mod issuer_config;
pub mod job_claims;
mod job_sql;
pub use job_sql::MAX_RETRY_BACKOFF;
pub mod job_sweeps;
pub mod job_writebacks;
pub mod jobs;
mod paging;
pub use paging::{PageWindow, TimePage};
pub mod renewal_scan;
pub mod resources;
pub mod secrets;
pub mod versions;
