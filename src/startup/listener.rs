//! The API listener, built from actix's parts rather than `HttpServer`, for one thing
//! `HttpServer` cannot do: refuse a peer address's connections beyond a limit before the TLS
//! handshake (so one address holding thousands of silent connections cannot take the handshake
//! slots every other client needs), while the server keeps accepting. Otherwise it is what
//! `HttpServer::listen_rustls_0_23` builds: HTTP/1.1 and HTTP/2 (ALPN) over rustls, or plain
//! HTTP, with the same timeouts.

use std::collections::HashMap;
use std::net::{IpAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_http::{HttpService, KeepAlive, Request, Response, TlsAcceptorConfig};
use actix_server::Server;
use actix_service::{apply_fn_factory, map_config, IntoServiceFactory, Service, ServiceFactory, ServiceFactoryExt};
use actix_web::body::MessageBody;
use actix_web::dev::AppConfig;

use crate::telemetry::CONNECTIONS_REFUSED_TOTAL;

/// How the listener treats connections.
#[derive(Clone, Debug)]
pub struct ListenerSettings {
    /// Worker threads; 0: one per CPU core (actix's default).
    pub workers: usize,
    /// Connections one peer address may hold at once; 0: no limit.
    pub max_connections_per_peer: usize,
    pub client_request_timeout: Duration,
    pub tls_handshake_timeout: Duration,
    /// TLS handshakes in progress per worker.
    pub max_handshakes_per_worker: usize,
    pub shutdown_timeout: Duration,
}

/// Open connections per peer address, shared by every worker.
#[derive(Default)]
struct PeerCounts {
    counts: Mutex<HashMap<IpAddr, usize>>,
}

/// One peer connection, counted until dropped.
struct PeerPermit {
    counts: Arc<PeerCounts>,
    peer: IpAddr,
}

impl PeerCounts {
    fn acquire(self: &Arc<Self>, peer: IpAddr, max: usize) -> Option<PeerPermit> {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let count = counts.entry(peer).or_default();
        if max > 0 && *count >= max {
            return None;
        }
        *count += 1;
        Some(PeerPermit { counts: self.clone(), peer })
    }
}

impl Drop for PeerPermit {
    fn drop(&mut self) {
        let mut counts = self.counts.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = counts.get_mut(&self.peer) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.peer);
            }
        }
    }
}

/// `inner` behind the per-peer limit: a connection beyond its address's share is dropped (closed)
/// before `inner` sees it; the others hold a permit for as long as `inner` serves them.
fn limited<SF>(inner: SF, counts: Arc<PeerCounts>, max_per_peer: usize) -> BoxedConnections
where
    SF: ServiceFactory<actix_rt::net::TcpStream, Config = (), Response = (), InitError = ()> + 'static,
    SF::Service: 'static,
    <SF::Service as Service<actix_rt::net::TcpStream>>::Future: 'static,
{
    let limited = apply_fn_factory(inner.map_err(|_| ()), move |io: actix_rt::net::TcpStream, service: &_| {
        let permit = io.peer_addr().ok().map(|peer| counts.acquire(peer.ip(), max_per_peer));
        // An address the socket cannot tell is served (it cannot be counted either).
        let admitted = !matches!(permit, Some(None));
        let call = admitted.then(|| Service::call(service, io));
        async move {
            match call {
                Some(call) => {
                    let outcome = call.await;
                    drop(permit);
                    outcome
                }
                None => {
                    metrics::counter!(CONNECTIONS_REFUSED_TOTAL, "reason" => "peer_limit").increment(1);
                    Ok(())
                }
            }
        }
    });
    actix_service::boxed::factory(limited)
}

/// The connection services of both stream kinds, as one type.
type BoxedConnections = actix_service::boxed::BoxServiceFactory<(), actix_rt::net::TcpStream, (), (), ()>;

/// Starts serving the app `factory` builds on `listener`, over TLS when `tls` is given.
pub fn serve<F, I, S, B>(
    listener: TcpListener,
    tls: Option<rustls::ServerConfig>,
    settings: ListenerSettings,
    factory: F,
) -> std::io::Result<Server>
where
    F: Fn() -> I + Send + Clone + 'static,
    I: IntoServiceFactory<S, Request>,
    S: ServiceFactory<Request, Config = AppConfig> + 'static,
    S::Error: Into<actix_web::Error> + 'static,
    S::InitError: std::fmt::Debug,
    S::Response: Into<Response<B>> + 'static,
    <S::Service as Service<Request>>::Future: 'static,
    B: MessageBody + 'static,
{
    actix_tls::accept::max_concurrent_tls_connect(settings.max_handshakes_per_worker);
    let counts = Arc::new(PeerCounts::default());
    let max_per_peer = settings.max_connections_per_peer;
    let local = listener.local_addr()?;
    let mut builder = Server::build().disable_signals().shutdown_timeout(settings.shutdown_timeout.as_secs());
    if settings.workers > 0 {
        builder = builder.workers(settings.workers);
    }
    let server_settings = settings.clone();
    let builder = builder.listen("certctl-api", listener, move || {
        let settings = &server_settings;
        // The same HTTP service over either stream type (the type is part of the service's).
        macro_rules! http {
            () => {
                HttpService::build()
                    .keep_alive(KeepAlive::Timeout(Duration::from_secs(5)))
                    .client_request_timeout(settings.client_request_timeout)
                    .client_disconnect_timeout(Duration::from_secs(1))
                    .local_addr(local)
                    // The app reads nothing from its AppConfig (no connection_info, no url_for).
                    .finish(map_config(factory().into_factory().map_err(|err| err.into().error_response()), |_| {
                        AppConfig::default()
                    }))
            };
        }
        let counts = counts.clone();
        match &tls {
            Some(tls) => {
                let acceptor = TlsAcceptorConfig::default().handshake_timeout(settings.tls_handshake_timeout);
                limited(http!().rustls_0_23_with_config(tls.clone(), acceptor), counts, max_per_peer)
            }
            None => limited(http!().tcp(), counts, max_per_peer),
        }
    })?;
    Ok(builder.run())
}
