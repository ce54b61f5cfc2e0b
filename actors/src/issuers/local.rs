//! The local CA connector: signs in-process with the issuer's CA (see [`crate::crypto::local_ca`]).
//! Leaves live `validity_days` from the issuer's config (90 by default), never longer than the
//! profile allows.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;

use super::{ErrorClass, IssueFailure, IssueRequest, Issued, Issuer, KeySource};
use crate::crypto::csr::verify_csr;
use crate::crypto::local_ca::{CaError, LeafRequest, LocalCa};

/// Default leaf lifetime when the issuer's config has no `validity_days`.
pub const DEFAULT_VALIDITY_DAYS: u64 = 90;

pub struct LocalIssuer {
    ca: Arc<LocalCa>,
    validity: Duration,
}

impl LocalIssuer {
    pub fn new(ca: Arc<LocalCa>, config: &serde_json::Value) -> LocalIssuer {
        let days =
            config.get("validity_days").and_then(|v| v.as_u64()).filter(|d| *d > 0).unwrap_or(DEFAULT_VALIDITY_DAYS);
        LocalIssuer { ca, validity: Duration::from_secs(days * 86_400) }
    }
}

impl Issuer for LocalIssuer {
    fn issuer_type(&self) -> &'static str {
        "local"
    }

    fn issue(&self, request: IssueRequest) -> BoxFuture<'static, Result<Issued, IssueFailure>> {
        let ca = self.ca.clone();
        let lifetime = request.max_lifetime.map_or(self.validity, |max| max.min(self.validity));
        async move {
            let leaf =
                LeafRequest { common_name: request.common_name, sans: request.sans, ekus: request.ekus, lifetime };
            // Key generation, CSR verification and signing are CPU work: a blocking thread, never
            // an async one.
            let signed = tokio::task::spawn_blocking(move || match request.key {
                KeySource::Generate(algorithm) => ca.issue_with_new_key(&leaf, algorithm),
                KeySource::Csr(pem) => {
                    let csr = verify_csr(&pem).map_err(CaError::BadRequest)?;
                    let spki = rcgen::SubjectPublicKeyInfo::from_der(&csr.spki_der)
                        .map_err(|e| CaError::BadRequest(format!("the CSR's public key is not usable: {e}")))?;
                    ca.issue_for(&leaf, &spki, csr.key_algorithm)
                }
            })
            .await
            .map_err(|e| IssueFailure::new(ErrorClass::Internal, format!("the signing thread failed: {e}")))?;
            signed.map_err(|e| match e {
                CaError::BadRequest(m) => IssueFailure::new(ErrorClass::Validation, m),
                other => IssueFailure::new(ErrorClass::Internal, other.to_string()),
            })
        }
        .boxed()
    }

    fn revoke(&self, _serial_hex: String, _reason: u8) -> BoxFuture<'static, Result<(), IssueFailure>> {
        // The local CA keeps no state of its own: `certificate_revocations` is the record that
        // its CRL and OCSP answers are built from.
        async { Ok(()) }.boxed()
    }

    fn ca_chain_pem(&self) -> String {
        self.ca.chain_pem()
    }
}
