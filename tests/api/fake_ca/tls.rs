//! The fakes' TLS: rustls server configurations on the fake's own CA, one that asks for nothing
//! and one that requires a client certificate signed by that CA (the mutual TLS that Sectigo's
//! certificate login and Entrust use). No ALPN is offered, so every client speaks HTTP/1.1.

use std::sync::Arc;

use rustls::crypto::aws_lc_rs;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use super::signing::Authority;

/// The two server configurations of one fake.
pub(super) struct ServerTls {
    open: Arc<ServerConfig>,
    mutual: Arc<ServerConfig>,
}

impl ServerTls {
    /// Configurations serving `authority`'s server certificate. Test set-up: panics on failure.
    pub fn new(authority: &Authority) -> ServerTls {
        let provider = Arc::new(aws_lc_rs::default_provider());
        let mut roots = RootCertStore::empty();
        roots.add(authority.ca_der().clone()).expect("the fake CA as a client root");
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .expect("the client certificate verifier");

        let builder = || {
            ServerConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .expect("TLS protocol versions")
        };
        let (chain, key) = authority.server_identity();
        let open = builder()
            .with_no_client_auth()
            .with_single_cert(chain.clone(), key.clone_key())
            .expect("the fake's server certificate");
        let mutual =
            builder().with_client_cert_verifier(verifier).with_single_cert(chain, key).expect("the fake's mTLS config");
        ServerTls { open: Arc::new(open), mutual: Arc::new(mutual) }
    }

    /// The configuration for a new connection.
    pub fn config(&self, require_client_cert: bool) -> Arc<ServerConfig> {
        if require_client_cert {
            self.mutual.clone()
        } else {
            self.open.clone()
        }
    }
}
