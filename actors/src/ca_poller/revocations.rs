//! Revocations told to the remote CA that issued the certificate, retried with a growing wait
//! until the CA accepts them (the local CA needs no telling: its CRL and OCSP answers are built
//! from `certificate_revocations`).

use std::sync::Arc;
use std::time::Duration;

use super::CaPollerSettings;
use crate::db::Db;
use crate::domain::revocation::RevocationReason;
use crate::issuers::registry::IssuerRegistry;
use crate::issuers::remote::{OrderRef, RevokeRequest};
use crate::issuers::Connector;
use crate::metrics::CA_REVOCATIONS_TOTAL;
use crate::queries::ca_orders::{ClaimRevocations, PendingRevocation, RecordRevocation};

/// Revocations claimed per pass.
const BATCH: i64 = 64;
/// Longest wait between two tries.
const MAX_WAIT: Duration = Duration::from_secs(3600);

/// Claims due revocations and tells their CAs, one after the other.
pub async fn notify_due(db: Db, registry: Arc<IssuerRegistry>, settings: CaPollerSettings) {
    let due = match db.run(ClaimRevocations { limit: BATCH, lease: settings.claim_lease }).await {
        Ok(due) => due,
        Err(e) => {
            tracing::warn!(error = %e, "claiming revocations to tell CAs failed");
            return;
        }
    };
    for revocation in due {
        let outcome = tell(&registry, &revocation).await;
        let (label, error) = match &outcome {
            Ok(()) => ("accepted", None),
            Err(message) => ("failed", Some(message.clone())),
        };
        metrics::counter!(CA_REVOCATIONS_TOTAL, "outcome" => label).increment(1);
        if let Some(message) = &error {
            tracing::warn!(revocation_id = %revocation.revocation_id, issuer_id = %revocation.issuer_id,
                error = %message, "the CA did not take a revocation; it is tried again");
        }
        // Doubling from the poll backoff's first step: 5 s, 10 s, 20 s… up to an hour.
        let step = settings.backoff.initial.mul_f64(2f64.powi(revocation.notify_attempts.clamp(0, 20)));
        let record =
            RecordRevocation { revocation_id: revocation.revocation_id.clone(), error, retry_in: step.min(MAX_WAIT) };
        if let Err(e) = db.run(record).await {
            tracing::warn!(revocation_id = %revocation.revocation_id, error = %e, "recording a revocation's outcome failed");
        }
    }
}

async fn tell(registry: &IssuerRegistry, revocation: &PendingRevocation) -> Result<(), String> {
    let connector = match registry.get(&revocation.issuer_id).await {
        Ok(Connector::Remote(connector)) => connector,
        // Local issuers need no telling (rows made before V12 may say otherwise).
        Ok(Connector::InProcess(_)) => return Ok(()),
        Err(failure) => return Err(failure.message),
    };
    let reason = RevocationReason::parse(&revocation.reason).unwrap_or(RevocationReason::Unspecified);
    let request = RevokeRequest {
        serial_hex: revocation.serial_number.clone(),
        chain_pem: revocation.chain_pem.clone().unwrap_or_default(),
        reason: reason.code(),
        order: revocation
            .external_id
            .clone()
            .map(|external_id| OrderRef { external_id, state: revocation.external_state.clone().unwrap_or_default() }),
    };
    connector.revoke(request).await.map_err(|failure| failure.message)
}
