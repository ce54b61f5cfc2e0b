//! Answering a renewal that waits for this agent's CSR: generate the key here (the type the
//! server says the profile allows, P-256 by default), keep it in the key store, build the CSR
//! with rcgen for the certificate's names and send it. The server issues; the certificate comes
//! back as a deployment job.

use anyhow::Context as _;
use rcgen::{CertificateParams, DistinguishedName, DnType, PublicKeyData as _};

use certctl_actors::crypto::key_algorithm::KeyAlgorithm;

use crate::client::{Server, WorkItem};
use crate::keys::KeyStore;

/// Generates a key and sends the CSR for `item` (an AwaitingCSR job).
pub async fn answer_csr(server: &Server, keys: &KeyStore, item: &WorkItem) -> anyhow::Result<()> {
    let name = item.key_algorithm.as_deref().unwrap_or("ecdsa-p256");
    let algorithm = KeyAlgorithm::parse(name)
        .with_context(|| format!("the server asks for a key type this agent cannot generate: {name}"))?;
    let mut names = vec![item.common_name.clone()];
    for san in &item.sans {
        if !names.iter().any(|n| n.eq_ignore_ascii_case(san)) {
            names.push(san.clone());
        }
    }
    names.retain(|n| !n.is_empty());
    let common_name = item.common_name.clone();
    // Key generation (RSA 4096 takes a second) and signing are CPU work: a blocking thread.
    let (csr_pem, spki, key_pem) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let key = algorithm.generate().context("generating the key")?;
        let mut params = CertificateParams::new(names).context("the certificate's names")?;
        let mut dn = DistinguishedName::new();
        if !common_name.is_empty() {
            dn.push(DnType::CommonName, common_name.as_str());
        }
        params.distinguished_name = dn;
        let csr = params.serialize_request(&key).context("building the CSR")?;
        Ok((csr.pem().context("encoding the CSR")?, key.subject_public_key_info(), key.serialize_pem()))
    })
    .await
    .context("the key generation thread failed")??;
    keys.save(&spki, &key_pem)?;
    server.submit_csr(&item.certificate_id, &item.id, &csr_pem).await?;
    tracing::info!(job_id = %item.id, certificate_id = %item.certificate_id, key_algorithm = %algorithm, "CSR sent");
    Ok(())
}
