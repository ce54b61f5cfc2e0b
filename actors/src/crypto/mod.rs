//! Cryptography of the renewal engine, all CPU-bound and run on blocking threads by its callers.
//!
//! - [`seal`]: AES-256-GCM sealing of secrets at rest under a PBKDF2-derived key.
//! - [`csr`]: agents' certificate signing requests: parsed, verified, checked against the certificate.
//! - [`key_algorithm`]: the key types the CA and server-side key generation support.
//! - [`local_ca`]: the local CA: generating or loading it, and issuing leaves.
//! - [`remote_leaf`]: CSRs the server sends to remote CAs, and the check of the chains they return.

pub mod csr;
pub mod key_algorithm;
pub mod local_ca;
pub mod remote_leaf;
pub mod seal;
