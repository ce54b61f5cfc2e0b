//! TLS to PostgreSQL (rustls over aws-lc-rs, like the rest of the process). `sslmode` in the
//! database URL decides whether TLS is used (`disable`, `prefer` — the default —, `require`);
//! when it is, the server certificate is verified against the system roots, or against
//! `CERTCTL_DATABASE_TLS_CA_PATH` when given. `CERTCTL_DATABASE_TLS_VERIFY=false` keeps the
//! encryption but skips verification (libpq's `sslmode=require` behaviour), for servers with
//! self-signed certificates on trusted networks.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{aws_lc_rs, verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

/// The connector every PostgreSQL connection uses.
pub type PgConnector = tokio_postgres_rustls::MakeRustlsConnect;

/// How server certificates are checked.
#[derive(Clone, Debug, Default)]
pub struct DbTlsSettings {
    /// PEM bundle of CAs to trust instead of the system roots.
    pub ca_path: Option<PathBuf>,
    /// Skip verification (encrypt only).
    pub insecure_skip_verify: bool,
}

/// Builds the connector. Fails when the CA bundle cannot be read or holds no certificate.
pub fn connector(settings: &DbTlsSettings) -> anyhow::Result<PgConnector> {
    let provider = Arc::new(aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("configuring TLS versions for PostgreSQL")?;
    let config = if settings.insecure_skip_verify {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(EncryptOnly(provider))).with_no_client_auth()
    } else {
        builder.with_root_certificates(roots(settings)?).with_no_client_auth()
    };
    Ok(PgConnector::new(config))
}

fn roots(settings: &DbTlsSettings) -> anyhow::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    match &settings.ca_path {
        Some(path) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .with_context(|| format!("reading CERTCTL_DATABASE_TLS_CA_PATH={}", path.display()))?
                .collect::<Result<_, _>>()
                .with_context(|| format!("parsing the PEM certificates in {}", path.display()))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                bail!("CERTCTL_DATABASE_TLS_CA_PATH={} holds no usable CA certificate", path.display());
            }
        }
        None => {
            // Unreadable system certificates are skipped; an empty store only matters if a TLS
            // connection is actually attempted, and then the handshake error says so.
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
        }
    }
    Ok(roots)
}

/// Accepts any server certificate but still checks the handshake signatures, so the session is
/// encrypted to whoever holds the presented key (no protection against an active attacker).
#[derive(Debug)]
struct EncryptOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
