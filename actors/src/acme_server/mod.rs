//! certctl's ACME server (RFC 8555, ARI per RFC 9773): the protocol pieces that do not depend on
//! the HTTP layer or the database.
//!
//! - [`problem`]: ACME problem documents and their HTTP statuses.
//! - [`ari`]: renewal information (RFC 9773): certificate ids and suggested windows.
//! - [`account_key`]: account keys from JWKs (ES256, ES384, RS256, EdDSA), RFC 7638 thumbprints,
//!   signature checks.
//! - [`jws`]: request bodies (flattened JWS) read and verified.
//! - [`nonce`]: nonces made and checked without the database; single use is the caller's insert.
//! - [`service`]: the flows the shell calls: directory, nonces, authenticating a signed request,
//!   accounts.
//!
//! Not built yet: orders, authorizations, challenges and their validation, certificates,
//! revocation, key-change, EAB, rate limits (see `docs/acme.md`).

pub mod account_key;
pub mod ari;
pub mod jws;
pub mod nonce;
pub mod problem;
pub mod service;
