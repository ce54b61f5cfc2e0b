//! Domain types and their validation rules.
//!
//! - [`certificate`]: managed certificates (certctl's `ManagedCertificate`), create and patch inputs.
//! - [`agent`]: agents, their host details and registration input.
//! - [`agent_work`]: what agents send about their work (CSRs, deployment reports).
//! - [`api_key`]: API key records as stored (hash only).
//! - [`audit`]: audit events, the acting principal, and request-summary redaction.
//! - [`redaction`]: secret fields (declared per issuer and target type, or by name) and secret
//!   values masked in every answer and audit row.
//! - [`names`]: DNS names (IDNA), IP and e-mail names, normalized for storage.
//! - [`resources`]: teams, owners, renewal policies, issuers, profiles and targets behind the
//!   generic `Resource` shape.
//! - [`discovery`]: certificates agents found on disk and their scan reports.
//! - [`job`]: issuance, renewal and deployment jobs.
//! - [`revocation`]: RFC 5280 revocation reasons.
//! - [`version`]: issued versions of a certificate.
//! - [`validation`]: field-level validation errors shared by every input type.

pub mod agent;
pub mod agent_work;
pub mod api_key;
pub mod audit;
pub mod certificate;
pub mod discovery;
pub mod job;
pub mod names;
pub mod redaction;
pub mod resources;
pub mod revocation;
pub mod validation;
pub mod version;
