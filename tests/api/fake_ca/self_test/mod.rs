//! The fakes tested on their own with reqwest, one file per vendor (the chains they return pass
//! the connectors' own check, `check_issued_chain`), and the behaviour every vendor shares:
//!
//! - [`digicert`], [`sectigo`], [`vault`], [`globalsign`], [`entrust`], [`stepca`]: one vendor's
//!   round trips and misbehaviours each (GlobalSign's and Entrust's with their client
//!   certificate, GlobalSign's with its login token, step-ca's with tokens signed by the
//!   provisioner key decrypted from its JWE; Entrust's faults on the certificate events,
//!   step-ca's on sign).
//! - [`behaviour`]: the status-poll faults in order, mutual TLS on demand, stop and restart.
//!
//! This file holds the helpers they share: a reqwest client that trusts a fake, a CSR, a JSON
//! answer with its status checked, and Sectigo's credential headers.

mod behaviour;
mod digicert;
mod entrust;
mod globalsign;
mod sectigo;
mod stepca;
mod vault;

use certctl_actors::crypto::key_algorithm::KeyAlgorithm;
use certctl_actors::crypto::remote_leaf::make_csr;
use reqwest::Client;
use serde_json::Value;

use super::FakeCa;

/// A client that trusts the fake's CA, presenting its client certificate when `with_identity`.
fn client(ca: &FakeCa, with_identity: bool) -> Client {
    let root = reqwest::Certificate::from_pem(ca.root_pem().as_bytes()).unwrap();
    assert_eq!(std::fs::read_to_string(&ca.tls_ca_file).unwrap(), ca.root_pem());
    let mut builder = Client::builder().tls_certs_only([root]);
    if with_identity {
        let mut pem = std::fs::read(&ca.client_cert_path).unwrap();
        pem.extend(std::fs::read(&ca.client_key_path).unwrap());
        builder = builder.identity(reqwest::Identity::from_pem(&pem).unwrap());
    }
    builder.build().unwrap()
}

fn csr_for(name: &str) -> String {
    make_csr(name, &[name.to_string()], KeyAlgorithm::EcdsaP256).unwrap().csr_pem
}

async fn json_of(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status().as_u16(), status);
    response.json().await.unwrap()
}

/// Sectigo's credential headers.
fn signed_in(request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    request.header("login", "certctl").header("password", "test-password").header("customerUri", "certctl-test")
}
