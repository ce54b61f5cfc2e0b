//! Fake CAs for the connector tests and the benches: HTTPS servers on 127.0.0.1 (a random port)
//! that speak the wire formats of DigiCert CertCentral, Sectigo SCM, GlobalSign Atlas HVCA and
//! Vault PKI as research/vendors.md (§1, §2, §4, §5) describes them, sign the CSRs they receive
//! with a throw-away CA, and misbehave on demand (a [`Behaviour`]): answer "not issued yet", 429
//! with `Retry-After`, 500, close the connection without answering, refuse the order or the
//! credentials, or require a client certificate.
//!
//! - [`signing`]: the throw-away CA, and the leaves it signs from CSRs.
//! - [`tls`]: the rustls server configurations (with and without mutual TLS).
//! - [`server`]: the listener, hyper, and the request/answer types the vendors share.
//! - [`digicert`], [`sectigo`], [`globalsign`], [`vault`]: one vendor's endpoints each.
//! - `self_test`: each fake's round trips and misbehaviours, with reqwest.
//!
//! A fake keeps its orders, counters, tokens and behaviour across [`FakeCa::stop`] and
//! [`FakeCa::restart`]; only the listener and the open connections go away. The counters count
//! the calls that got past the credentials check; [`FakeCa::requests`] logs every request.
//!
//! The module takes its scratch directories from `crate::helpers::scratch_dir(tag)`: the API
//! tests' helpers provide it, and a bench that includes this module (`#[path]`) provides its own.

mod digicert;
mod globalsign;
mod sectigo;
mod server;
mod signing;
mod tls;
mod vault;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinHandle;

use crate::helpers::scratch_dir;
use server::{Call, Reply};
use signing::{Authority, Leaf, Subject};
use tls::ServerTls;

/// The vendor a fake speaks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vendor {
    DigiCert,
    Sectigo,
    /// Always mutual TLS, whatever the behaviour says.
    GlobalSign,
    Vault,
}

impl Vendor {
    /// What follows `https://127.0.0.1:PORT` in the connector's `base_url`.
    fn base_path(self) -> &'static str {
        match self {
            Vendor::DigiCert => digicert::BASE_PATH,
            Vendor::Sectigo => sectigo::BASE_PATH,
            Vendor::GlobalSign => globalsign::BASE_PATH,
            Vendor::Vault => "",
        }
    }

    /// The headers that carry the credentials, in the order [`FakeCa::requests`] joins them.
    fn auth_headers(self) -> &'static [&'static str] {
        match self {
            Vendor::DigiCert => &["x-dc-devkey"],
            Vendor::Sectigo => &["login", "password", "customeruri"],
            Vendor::GlobalSign => &["authorization"],
            Vendor::Vault => &["x-vault-token"],
        }
    }
}

/// How a fake misbehaves. The counts are consumed one per status poll, in the order
/// `dropped_connections`, `server_errors`, `rate_limited_polls`, then the order's own
/// `pending_polls`; [`FakeCa::set_behaviour`] replaces what is left of them.
#[derive(Clone, Debug, Default)]
pub struct Behaviour {
    /// Status polls answered "not issued yet" before the order is issued (DigiCert, Sectigo;
    /// GlobalSign answers 202 with no body), counted per order.
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
    /// {"description":"request rejected by validation policy"} (still counted as a submission).
    pub reject: bool,
    /// Every call answers the vendor's auth failure (DigiCert 401
    /// {"errors":[{"code":"access_denied","message":"..."}]}, Sectigo 401
    /// {"code":-16,"description":"..."}, Vault 403 {"errors":["permission denied"]}, GlobalSign
    /// 401 {"description":"invalid credentials"}, login included).
    /// Vault's unauthenticated endpoints (`sys/health`, `pki/ca_chain`) still answer.
    pub refuse_credentials: bool,
    /// TLS requires a client certificate signed by the fake's CA (from the next connection on).
    /// GlobalSign always does.
    pub require_client_cert: bool,
}

/// A running fake CA. Dropping it stops the server and removes its files.
pub struct FakeCa {
    /// The connector's `base_url`: `https://127.0.0.1:PORT/services/v2` (DigiCert),
    /// `https://127.0.0.1:PORT/api` (Sectigo), `https://127.0.0.1:PORT/v2` (GlobalSign's
    /// `api_url`), `https://127.0.0.1:PORT` (Vault's `addr`).
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
        let listener = listen(0).expect("binding the fake CA's port");
        let port = listener.local_addr().expect("the fake CA's port").port();
        let shared = Arc::new(Shared {
            vendor,
            port,
            tls: ServerTls::new(&authority),
            authority,
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
    /// `POST /api/v1/issuers`, of type `digicert`, `sectigo`, `globalsign` or `vault`).
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
        }
    }

    /// Orders submitted (DigiCert POST order, Sectigo enroll, GlobalSign POST certificates, Vault
    /// sign), refused ones included.
    pub fn submissions(&self) -> usize {
        self.shared.state().submissions
    }

    /// Status polls received (DigiCert GET order, Sectigo GET details, GlobalSign GET
    /// certificate; 0 for Vault).
    pub fn status_polls(&self) -> usize {
        self.shared.state().status_polls
    }

    /// Revocations the CA accepted: (the id or serial from the path/body, the reason field as sent, "" without one).
    pub fn revocations(&self) -> Vec<(String, String)> {
        self.shared.state().revocations.clone()
    }

    /// Every request: (method, path with query, the value of the auth header(s) it carried joined by ",").
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
    state: Mutex<State>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panicking handler is a bug in the fake; the state it left is still worth reading.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The TLS configuration for a connection that opens now.
    fn tls_config(&self) -> Arc<rustls::ServerConfig> {
        self.tls.config(self.vendor == Vendor::GlobalSign || self.state().behaviour.require_client_cert)
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
        }
    }
}

/// Everything a fake remembers.
struct State {
    behaviour: Behaviour,
    /// Oldest first.
    orders: Vec<Order>,
    next_number: u64,
    submissions: usize,
    status_polls: usize,
    token_renewals: usize,
    /// When Vault's token was created or last renewed.
    token_since: Instant,
    /// GlobalSign's logins that got a token, and the tokens still valid.
    logins: usize,
    tokens: HashSet<String>,
    revocations: Vec<(String, String)>,
    requests: Vec<(String, String, String)>,
}

/// An order (DigiCert, Sectigo) or a signed certificate (Vault).
struct Order {
    /// DigiCert's order id, Sectigo's sslId.
    id: u64,
    /// DigiCert's certificate id (not the order id, so mixing them up fails).
    certificate_id: u64,
    /// DigiCert's request id.
    request_id: u64,
    /// The certificate's serial, chosen when the order comes in (GlobalSign's id for it).
    serial: Vec<u8>,
    common_name: String,
    names: Vec<String>,
    /// The names and key usages the leaf carries instead of the CSR's (GlobalSign).
    subject: Option<Subject>,
    csr_pem: String,
    comments: String,
    validity_secs: u64,
    /// RFC 3339.
    created: String,
    /// When the status last changed, Unix seconds.
    updated_at: i64,
    /// "Not issued yet" answers given so far.
    pending_answers: u32,
    status: OrderStatus,
}

enum OrderStatus {
    Pending,
    Issued(Leaf),
    Rejected,
    Revoked(Leaf),
}

impl Order {
    /// The certificate, once issued (revoked ones included).
    fn leaf(&self) -> Option<&Leaf> {
        match &self.status {
            OrderStatus::Issued(leaf) | OrderStatus::Revoked(leaf) => Some(leaf),
            OrderStatus::Pending | OrderStatus::Rejected => None,
        }
    }
}

/// An order as it comes in, before the fake numbers it.
struct NewOrder {
    common_name: String,
    names: Vec<String>,
    subject: Option<Subject>,
    csr_pem: String,
    comments: String,
    validity_secs: u64,
    status: OrderStatus,
}

/// What a status poll answers instead of the order.
enum PollFault {
    Drop,
    ServerError,
    RateLimited { retry_after_secs: u64 },
}

/// What a status poll answers.
enum Poll<'a> {
    Fault(PollFault),
    Unknown,
    /// Signing the leaf failed (a bug in the fake, answered as a 500).
    Failed(String),
    Order(&'a Order),
}

impl State {
    fn new(behaviour: Behaviour) -> State {
        State {
            behaviour,
            orders: Vec::new(),
            next_number: 1,
            submissions: 0,
            status_polls: 0,
            token_renewals: 0,
            token_since: Instant::now(),
            logins: 0,
            tokens: HashSet::new(),
            revocations: Vec::new(),
            requests: Vec::new(),
        }
    }

    /// Records a new order (the caller counts the submission).
    fn add_order(&mut self, new: NewOrder) -> &Order {
        let number = self.next_number;
        self.next_number += 1;
        self.orders.push(Order {
            id: 100_000 + number,
            certificate_id: 700_000 + number,
            request_id: 300_000 + number,
            serial: match &new.status {
                OrderStatus::Issued(leaf) | OrderStatus::Revoked(leaf) => leaf.serial.clone(),
                OrderStatus::Pending | OrderStatus::Rejected => signing::random_serial(),
            },
            common_name: new.common_name,
            names: new.names,
            subject: new.subject,
            csr_pem: new.csr_pem,
            comments: new.comments,
            validity_secs: new.validity_secs,
            created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            updated_at: chrono::Utc::now().timestamp(),
            pending_answers: 0,
            status: new.status,
        });
        &self.orders[self.orders.len() - 1]
    }

    fn order_index(&self, id: &str) -> Option<usize> {
        let id: u64 = id.parse().ok()?;
        self.orders.iter().position(|o| o.id == id)
    }

    /// A status poll of order `id` (DigiCert's order id, Sectigo's sslId): see [`State::poll_at`].
    fn poll(&mut self, id: &str, authority: &Authority) -> Poll<'_> {
        let index = self.order_index(id);
        self.poll_at(index, authority)
    }

    /// A status poll of the order at `index` (`None`: an unknown one): counted, then the
    /// behaviour's faults in order, then the order, moved on first: "not issued yet" until it has
    /// given `pending_polls` such answers, then issued (signed now) or rejected.
    fn poll_at(&mut self, index: Option<usize>, authority: &Authority) -> Poll<'_> {
        self.status_polls += 1;
        if let Some(fault) = self.take_fault() {
            return Poll::Fault(fault);
        }
        let Some(index) = index else {
            return Poll::Unknown;
        };
        let (pending_polls, reject) = (self.behaviour.pending_polls, self.behaviour.reject);
        let order = &mut self.orders[index];
        if matches!(order.status, OrderStatus::Pending) {
            if order.pending_answers < pending_polls {
                order.pending_answers += 1;
            } else if reject {
                order.status = OrderStatus::Rejected;
                order.updated_at = chrono::Utc::now().timestamp();
            } else {
                match authority.sign(&order.csr_pem, order.validity_secs, &order.serial, order.subject.as_ref()) {
                    Ok(leaf) => {
                        order.updated_at = leaf.issued_at;
                        order.status = OrderStatus::Issued(leaf);
                    }
                    Err(why) => return Poll::Failed(why),
                }
            }
        }
        Poll::Order(&self.orders[index])
    }

    fn take_fault(&mut self) -> Option<PollFault> {
        let behaviour = &mut self.behaviour;
        if behaviour.dropped_connections > 0 {
            behaviour.dropped_connections -= 1;
            Some(PollFault::Drop)
        } else if behaviour.server_errors > 0 {
            behaviour.server_errors -= 1;
            Some(PollFault::ServerError)
        } else if behaviour.rate_limited_polls > 0 {
            behaviour.rate_limited_polls -= 1;
            Some(PollFault::RateLimited { retry_after_secs: behaviour.retry_after_secs })
        } else {
            None
        }
    }

    /// Marks an issued order revoked and records the revocation.
    fn revoke(&mut self, index: usize, what: &str, reason: &str) {
        let order = &mut self.orders[index];
        if let OrderStatus::Issued(leaf) = &order.status {
            order.status = OrderStatus::Revoked(leaf.clone());
            order.updated_at = chrono::Utc::now().timestamp();
        }
        self.revocations.push((what.to_string(), reason.to_string()));
    }
}

#[cfg(test)]
mod self_test;
