//! Endpoints, one file per group.
//!
//! - [`discovery`]: agents' scan reports and `/api/v1/discovered-certificates` triage.
//! - [`health`]: `/health` (liveness) and `/ready` (database reachable and migrated).
//! - [`metrics`]: `/metrics` in Prometheus text format.
//! - [`meta`]: version, auth info/check, the admin config view.
//! - [`certificates`]: `/api/v1/certificates` CRUD.
//! - [`certificate_ops`]: renew, revoke, export, bulk renew and bulk revoke.
//! - [`jobs`]: `/api/v1/jobs` list, get, cancel, retry.
//! - [`resources`]: generic CRUD for teams, owners, renewal policies, issuers, profiles, targets.
//! - [`scheduler`]: `POST /api/v1/admin/scheduler/{loop}/run`, one tick now.
//! - [`issuer_ca`]: `GET /api/v1/issuers/{id}/ca`, an issuer's CA chain as PEM, and
//!   `POST /api/v1/issuers/{id}/test`, a check of its credentials and reachability.
//! - [`agents`]: agent registration, list, one agent, retirement (operators).
//! - [`agent_api`]: the agents' own endpoints (heartbeat, work, CSR, certificate pickup, job
//!   status).
//! - [`audit`]: `/api/v1/audit` (keyset pages, filters) and `/api/v1/audit/{id}`.
//! - [`acme`]: the ACME server (`/acme/…`), public, its requests signed.

pub mod acme;
pub mod agent_api;
pub mod agents;
pub mod audit;
pub mod certificate_ops;
pub mod certificates;
pub mod discovery;
pub mod health;
pub mod issuer_ca;
pub mod jobs;
pub mod meta;
pub mod metrics;
pub mod resources;
pub mod scheduler;
