//! Fake CAs for the connector tests and the benches: HTTPS servers on 127.0.0.1 (a random port)
//! that speak the wire formats of DigiCert CertCentral, Sectigo SCM, GlobalSign Atlas HVCA and
//! Vault PKI as research/vendors.md (§1, §2, §4, §5) describes them, of Entrust CA Gateway as
//! research/entrust.md does, and of step-ca's JWK provisioner as research/stepca.md does. They
//! sign the CSRs they receive with a throw-away CA, and misbehave on demand (a [`Behaviour`]):
//! answer "not issued yet", 429 with `Retry-After`, 500, close the connection without answering,
//! refuse the order or the credentials, or require a client certificate.
//!
//! - [`signing`]: the throw-away CA, and the leaves it signs from CSRs.
//! - [`tls`]: the rustls server configurations (with and without mutual TLS).
//! - [`server`]: the listener, hyper, and the request/answer types the vendors share.
//! - [`state`]: what a fake remembers (orders, counters, tokens), and how a status poll moves an
//!   order on.
//! - [`digicert`], [`sectigo`], [`globalsign`], [`vault`], [`entrust`], [`stepca`]: one
//!   vendor's endpoints each.
//! - [`stepca_jose`]: step-ca's provisioner key, its encryption, and the check of its tokens.
//! - `self_test`: each fake's round trips and misbehaviours, with reqwest (one file per vendor).
//!
//! A fake keeps its orders, counters, tokens and behaviour across [`FakeCa::stop`] and
//! [`FakeCa::restart`]; only the listener and the open connections go away. The counters count
//! the calls that got past the credentials check; [`FakeCa::requests`] logs every request.
//!
//! The module takes its scratch directories from `crate::helpers::scratch_dir(tag)`: the API
//! tests' helpers provide it, and a bench that includes this module (`#[path]`) provides its own.

mod digicert;
mod entrust;
mod globalsign;
mod sectigo;
mod server;
mod signing;
mod state;
mod stepca;
mod stepca_jose;
mod tls;
mod vault;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinHandle;

use crate::helpers::scratch_dir;
use server::{Call, Reply};
use signing::Authority;
use state::State;
use stepca_jose::Provisioner;
use tls::ServerTls;

/// Entrust's one CA id (PKIaaS style, `partition~ca`, so a client must keep the `~` in the path).
pub const ENTRUST_CA_ID: &str = "certctl-test~ca1";
/// Entrust's one enrollment profile.
pub const ENTRUST_PROFILE_ID: &str = "certctl-tls";
/// step-ca's one provisioner (JWK): its name (the tokens' `iss`) and the password its key is
/// encrypted with.
pub const STEP_CA_PROVISIONER: &str = "certctl";
pub const STEP_CA_PASSWORD: &str = "test-password";

/// The vendor a fake speaks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vendor {
    DigiCert,
    Sectigo,
    /// Always mutual TLS, whatever the behaviour says.
    GlobalSign,
    Vault,
    /// Entrust CA Gateway: always mutual TLS (its only authentication), one CA
    /// ([`ENTRUST_CA_ID`]) and one profile ([`ENTRUST_PROFILE_ID`]); an enrollment that needs
    /// approval is followed through the CA's certificate events.
    Entrust,
    /// step-ca with one JWK provisioner ([`STEP_CA_PROVISIONER`]): signs at once, authorized by a
    /// one-time token signed with the provisioner key, which the fake makes at start.
    StepCa,
}

impl Vendor {
    /// What follows `https://127.0.0.1:PORT` in the connector's `base_url`.
    fn base_path(self) -> &'static str {
        match self {
            Vendor::DigiCert => digicert::BASE_PATH,
            Vendor::Sectigo => sectigo::BASE_PATH,
            Vendor::GlobalSign => globalsign::BASE_PATH,
            Vendor::Entrust => entrust::BASE_PATH,
            Vendor::Vault | Vendor::StepCa => "",
        }
    }

    /// The headers that carry the credentials, in the order [`FakeCa::requests`] joins them.
    fn auth_headers(self) -> &'static [&'static str] {
        match self {
            Vendor::DigiCert => &["x-dc-devkey"],
            Vendor::Sectigo => &["login", "password", "customeruri"],
            Vendor::GlobalSign => &["authorization"],
            Vendor::Vault => &["x-vault-token"],
            // Entrust authenticates by client certificate alone; step-ca's token is in the body.
            Vendor::Entrust | Vendor::StepCa => &[],
        }
    }
}

/// How a fake misbehaves. The counts are consumed one per status poll, in the order
/// `dropped_connections`, `server_errors`, `rate_limited_polls`, then the order's own
/// `pending_polls`; [`FakeCa::set_behaviour`] replaces what is left of them. Entrust's status
/// poll is `GET …/certificate-events`, which moves every pending order on at once; step-ca has no
/// status poll, so its faults are consumed by `POST /sign` instead (after the token is accepted,
/// so a client that retries must make a new token: the old one is spent).
#[derive(Clone, Debug, Default)]
pub struct Behaviour {
    /// Status polls answered "not issued yet" before the order is issued (DigiCert, Sectigo;
    /// GlobalSign answers 202 with no body), counted per order. Entrust: above 0, an enrollment
    /// needs approval (201 `ACCEPTED`, no certificate) and stays out of the certificate events
    /// for that many event polls. No effect on Vault and step-ca, which sign at once.
    pub pending_polls: u32,
    /// The first N status polls answer 429 with `Retry-After: retry_after_secs` (and the vendor's error body).
    pub rate_limited_polls: u32,
    pub retry_after_secs: u64,
    /// The next N status polls answer 500.
    pub server_errors: u32,
    /// The next N status polls close the connection without answering.
    pub dropped_connections: u32,
    /// The CA refuses the order: DigiCert order status "rejected"; Sectigo status "Declined";
    /// Vault sign answers 400 {"errors":["..."]}; GlobalSign answers the submission 422
    /// {"description":"request rejected by validation policy"}; Entrust answers the enrollment
    /// 400 ErrorResponse `cagw-4000` "Enrollment rejected: …", and an enrollment already waiting
    /// for approval is refused at its last event poll (it never appears among the events);
    /// step-ca answers sign 403 "…certificate request does not contain the valid DNS names…".
    /// A refused request still counts as a submission.
    pub reject: bool,
    /// Every call answers the vendor's auth failure (DigiCert 401
    /// {"errors":[{"code":"access_denied","message":"..."}]}, Sectigo 401
    /// {"code":-16,"description":"..."}, Vault 403 {"errors":["permission denied"]}, GlobalSign
    /// 401 {"description":"invalid credentials"}, login included; Entrust 403 ErrorResponse
    /// `cagw-4003`, the client certificate not authorized; step-ca 401, sign and revoke).
    /// Vault's unauthenticated endpoints (`sys/health`, `pki/ca_chain`) and step-ca's (`health`,
    /// `roots`, `provisioners`…) still answer.
    pub refuse_credentials: bool,
    /// TLS requires a client certificate signed by the fake's CA (from the next connection on).
    /// GlobalSign and Entrust always do.
    pub require_client_cert: bool,
}

/// A running fake CA. Dropping it stops the server and removes its files.
pub struct FakeCa {
    /// The connector's `base_url`: `https://127.0.0.1:PORT/services/v2` (DigiCert),
    /// `https://127.0.0.1:PORT/api` (Sectigo), `https://127.0.0.1:PORT/v2` (GlobalSign's
    /// `api_url`), `https://127.0.0.1:PORT` (Vault's `addr`), `https://127.0.0.1:PORT/cagw`
    /// (Entrust's `api_url`), `https://127.0.0.1:PORT` (step-ca's `ca_url`).
    pub base_url: String,
    /// PEM of the fake's CA: it issued the server's certificate (the connector's `tls_ca_file`).
    pub tls_ca_file: PathBuf,
    /// A client certificate signed by the fake's CA, PEM, for mutual TLS.
    pub client_cert_path: PathBuf,
    /// Its key, PKCS#8 PEM.
    pub client_key_path: PathBuf,
    dir: PathBuf,
    port: u16,
    shared: Arc<Shared>,
    server: Option<JoinHandle<()>>,
}

impl FakeCa {
    /// Makes a CA, writes its files, and listens on a random loopback port.
    pub async fn start(vendor: Vendor, behaviour: Behaviour) -> FakeCa {
        let authority = Authority::generate(&format!("{vendor:?}"));
        let dir = scratch_dir("fake-ca");
        let tls_ca_file = dir.join("ca.pem");
        let client_cert_path = dir.join("client.pem");
        let client_key_path = dir.join("client-key.pem");
        for (path, pem) in [
            (&tls_ca_file, authority.ca_pem()),
            (&client_cert_path, &authority.client_cert_pem),
            (&client_key_path, &authority.client_key_pem),
        ] {
            std::fs::write(path, pem).expect("writing the fake CA's files");
        }
        let provisioner = (vendor == Vendor::StepCa).then(|| {
            let provisioner = Provisioner::generate();
            std::fs::write(dir.join(stepca::KEY_FILE), &provisioner.encrypted_key)
                .expect("writing the fake step-ca's provisioner key");
            provisioner
        });
        let listener = listen(0).expect("binding the fake CA's port");
        let port = listener.local_addr().expect("the fake CA's port").port();
        let shared = Arc::new(Shared {
            vendor,
            port,
            tls: ServerTls::new(&authority),
            authority,
            provisioner,
            state: Mutex::new(State::new(behaviour)),
        });
        let server = Some(tokio::spawn(server::serve(listener, shared.clone())));
        FakeCa {
            base_url: format!("https://127.0.0.1:{port}{}", vendor.base_path()),
            tls_ca_file,
            client_cert_path,
            client_key_path,
            dir,
            port,
            shared,
            server,
        }
    }

    /// Stops listening and starts again on the same port with the same orders (a CA restart, or a network blip).
    pub async fn restart(&mut self) {
        self.stop().await;
        // The port was ours a moment ago; give the kernel a moment if it still holds it.
        let mut tries = 0;
        let listener = loop {
            match listen(self.port) {
                Ok(listener) => break listener,
                Err(e) if tries < 50 => {
                    tries += 1;
                    eprintln!("fake CA: port {} not free yet ({e}), retrying", self.port);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("fake CA: cannot listen on port {} again: {e}", self.port),
            }
        };
        self.server = Some(tokio::spawn(server::serve(listener, self.shared.clone())));
    }

    /// Stops listening (connections refused) until `restart`; open connections are closed.
    pub async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
            // The task's end drops the listener and the connections: refused from here on.
            let _ = server.await;
        }
    }

    /// Replaces the behaviour (and what is left of its counts).
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        self.shared.state().behaviour = behaviour;
    }

    /// The issuer config a connector needs to talk to this fake (the `config` of
    /// `POST /api/v1/issuers`, of type `digicert`, `sectigo`, `globalsign`, `vault`, `entrust` or
    /// `stepca`). Entrust's names the CA, the profile and the client certificate; step-ca's names
    /// the provisioner, its encrypted key file and password, and the CA file as `root_cert_path`.
    pub fn issuer_config(&self) -> Value {
        let (base_url, ca) = (&self.base_url, &self.tls_ca_file);
        match self.shared.vendor {
            Vendor::DigiCert => {
                json!({"base_url": base_url, "api_key": digicert::DEVKEY, "org_id": 4242, "tls_ca_file": ca})
            }
            Vendor::Sectigo => json!({"base_url": base_url, "customer_uri": "certctl-test", "login": "certctl",
                                      "password": "test-password", "org_id": 1234, "cert_type": 567,
                                      "tls_ca_file": ca}),
            Vendor::GlobalSign => json!({"api_url": base_url, "api_key": globalsign::API_KEY,
                                         "api_secret": globalsign::API_SECRET,
                                         "client_cert_path": self.client_cert_path,
                                         "client_key_path": self.client_key_path, "tls_ca_file": ca}),
            Vendor::Vault => {
                json!({"addr": base_url, "token": "test-token", "mount": "pki", "role": "web", "tls_ca_file": ca})
            }
            Vendor::Entrust => json!({"api_url": base_url, "ca_id": ENTRUST_CA_ID, "profile_id": ENTRUST_PROFILE_ID,
                                      "client_cert_path": self.client_cert_path,
                                      "client_key_path": self.client_key_path, "tls_ca_file": ca}),
            Vendor::StepCa => json!({"ca_url": base_url, "root_cert_path": ca,
                                     "provisioner_name": STEP_CA_PROVISIONER,
                                     "provisioner_key_path": self.provisioner_key_path(),
                                     "provisioner_password": STEP_CA_PASSWORD}),
        }
    }

    /// Orders submitted (DigiCert POST order, Sectigo enroll, GlobalSign POST certificates, Vault
    /// sign, Entrust POST enrollments, step-ca sign with an accepted token), refused ones included.
    pub fn submissions(&self) -> usize {
        self.shared.state().submissions
    }

    /// Status polls received (DigiCert GET order, Sectigo GET details, GlobalSign GET
    /// certificate, Entrust GET certificate-events; 0 for Vault and step-ca).
    pub fn status_polls(&self) -> usize {
        self.shared.state().status_polls
    }

    /// Revocations the CA accepted: (the id or serial from the path/body, the reason field as sent, "" without one).
    /// step-ca: (the serial in decimal, `reasonCode` as a string). Entrust: a second revocation
    /// of a revoked certificate succeeds without being recorded again.
    pub fn revocations(&self) -> Vec<(String, String)> {
        self.shared.state().revocations.clone()
    }

    /// Every request: (method, path with query, the value of the auth header(s) it carried joined by ",";
    /// always "" for Entrust, whose client certificate is checked in the TLS handshake, and step-ca,
    /// whose token is in the body).
    pub fn requests(&self) -> Vec<(String, String, String)> {
        self.shared.state().requests.clone()
    }

    /// Vault token renewals (`renew-self`) received.
    pub fn token_renewals(&self) -> usize {
        self.shared.state().token_renewals
    }

    /// GlobalSign logins that were given a token.
    pub fn logins(&self) -> usize {
        self.shared.state().logins
    }

    /// Forgets every GlobalSign token it gave (as if they had expired): the next call with one
    /// answers 401, and a client has to log in again.
    pub fn expire_tokens(&self) {
        self.shared.state().tokens.clear();
    }

    /// PEM of the CA that signs the leaves.
    pub fn root_pem(&self) -> String {
        self.shared.authority.ca_pem().to_string()
    }

    /// step-ca: the file holding the provisioner key, encrypted with [`STEP_CA_PASSWORD`] (a
    /// compact JWE as `step` writes it). Panics for the other vendors.
    pub fn provisioner_key_path(&self) -> PathBuf {
        self.provisioner();
        self.dir.join(stepca::KEY_FILE)
    }

    /// step-ca: the provisioner's private key as plain JWK JSON (for a config that gives the key
    /// inline, or a test that makes its own tokens). Panics for the other vendors.
    pub fn provisioner_jwk(&self) -> String {
        self.provisioner().private_jwk.clone()
    }

    /// step-ca: the claims of every token it accepted, oldest first.
    pub fn accepted_tokens(&self) -> Vec<Value> {
        self.shared.state().accepted_tokens.clone()
    }

    /// step-ca: why each refused token was refused, oldest first (the answer itself only says
    /// 401 and step-ca's generic message, as the real CA does).
    pub fn token_errors(&self) -> Vec<String> {
        self.shared.state().token_errors.clone()
    }

    fn provisioner(&self) -> &Provisioner {
        self.shared.provisioner.as_ref().expect("only a step-ca fake has a provisioner")
    }
}

impl Drop for FakeCa {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A loopback listener on `port` (0: any). `SO_REUSEADDR` lets a restart take its port back
/// while connections it closed are still in TIME_WAIT.
fn listen(port: u16) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(([127, 0, 0, 1], port).into())?;
    socket.listen(128)
}

/// What the server task and the handle share.
struct Shared {
    vendor: Vendor,
    /// The port it listens on (also after a restart): GlobalSign's `Location` names it.
    port: u16,
    authority: Authority,
    tls: ServerTls,
    /// step-ca's JWK provisioner (`None` for the other vendors).
    provisioner: Option<Provisioner>,
    state: Mutex<State>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panicking handler is a bug in the fake; the state it left is still worth reading.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The TLS configuration for a connection that opens now.
    fn tls_config(&self) -> Arc<rustls::ServerConfig> {
        let always = matches!(self.vendor, Vendor::GlobalSign | Vendor::Entrust);
        self.tls.config(always || self.state().behaviour.require_client_cert)
    }

    fn record_request(&self, call: &Call) {
        let auth: Vec<&str> = self.vendor.auth_headers().iter().filter_map(|name| call.header(name)).collect();
        self.state().requests.push((call.method.to_string(), call.path_and_query.clone(), auth.join(",")));
    }

    fn handle(&self, call: &Call) -> Reply {
        match self.vendor {
            Vendor::DigiCert => digicert::handle(self, call),
            Vendor::Sectigo => sectigo::handle(self, call),
            Vendor::GlobalSign => globalsign::handle(self, call),
            Vendor::Vault => vault::handle(self, call),
            Vendor::Entrust => entrust::handle(self, call),
            Vendor::StepCa => stepca::handle(self, call),
        }
    }
}

#[cfg(test)]
mod self_test;
