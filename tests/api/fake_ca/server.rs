//! The fakes' HTTPS plumbing: a tokio listener, a rustls handshake per connection (with or
//! without a client certificate, as the behaviour says when the connection opens), and hyper's
//! HTTP/1.1 server. Each request is read whole into a [`Call`], logged, and handed to the vendor's
//! handler, whose [`Reply`] is either an answer or "drop the connection" (a service error, on
//! which hyper closes the connection without writing a response).

use std::sync::Arc;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use super::Shared;

/// Accepts connections until the task is aborted; aborting it also ends every connection it
/// opened (they live in its `JoinSet`), which is how a fake stops.
pub(super) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            // Out of file descriptors, say: wait rather than spin.
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        while connections.try_join_next().is_some() {}
        let acceptor = TlsAcceptor::from(shared.tls_config());
        let shared = shared.clone();
        connections.spawn(async move {
            // A failed handshake (no or a wrong client certificate) just ends the connection.
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let service = service_fn(move |request| answer(shared.clone(), request));
            let _ = http1::Builder::new().serve_connection(TokioIo::new(tls), service).await;
        });
    }
}

/// The error that makes hyper close a connection without answering.
#[derive(Debug)]
struct NoAnswer;

impl std::fmt::Display for NoAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the fake CA closes the connection without answering")
    }
}

impl std::error::Error for NoAnswer {}

async fn answer(shared: Arc<Shared>, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, NoAnswer> {
    let (parts, body) = request.into_parts();
    // A body that cannot be read means the connection broke: there is no one to answer.
    let body = body.collect().await.map_err(|_| NoAnswer)?.to_bytes();
    let path_and_query = parts.uri.path_and_query().map_or_else(|| parts.uri.path().to_string(), |p| p.to_string());
    let query = parts.uri.query().and_then(|q| serde_urlencoded::from_str(q).ok()).unwrap_or_default();
    let call = Call {
        method: parts.method,
        path: parts.uri.path().to_string(),
        path_and_query,
        query,
        headers: parts.headers,
        body,
    };
    shared.record_request(&call);
    match shared.handle(&call) {
        Reply::Answer(response) => Ok(response),
        Reply::Drop => Err(NoAnswer),
    }
}

/// One request, read whole.
pub(super) struct Call {
    pub method: Method,
    /// The path, without the query.
    pub path: String,
    pub path_and_query: String,
    /// The decoded query parameters, in order.
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Call {
    /// A header's value, when it is present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The first query parameter called `name`.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The path's segments after `prefix`, or `None` when the path is not under it.
    pub fn segments(&self, prefix: &str) -> Option<Vec<&str>> {
        let rest = self.path.strip_prefix(prefix).filter(|rest| rest.is_empty() || rest.starts_with('/'))?;
        Some(rest.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect())
    }

    /// The body as JSON of type `T`; the error says what is wrong (for a 400).
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, String> {
        serde_json::from_slice(&self.body).map_err(|e| format!("the body is not the JSON expected: {e}"))
    }
}

/// What a handler decided.
pub(super) enum Reply {
    Answer(Response<Full<Bytes>>),
    /// Close the connection without an answer.
    Drop,
}

impl Reply {
    /// `status` with a JSON body.
    pub fn json(status: u16, body: &Value) -> Reply {
        Reply::body(status, "application/json", body.to_string())
    }

    /// `status` with `body` of `content_type`.
    pub fn body(status: u16, content_type: &'static str, body: String) -> Reply {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        Reply::Answer(response)
    }

    /// `status` without a body.
    pub fn empty(status: u16) -> Reply {
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Reply::Answer(response)
    }

    /// 429 with `Retry-After: retry_after_secs` and the vendor's JSON error `body`.
    pub fn rate_limited(retry_after_secs: u64, body: &Value) -> Reply {
        Reply::json(429, body).with_header(RETRY_AFTER, HeaderValue::from(retry_after_secs))
    }

    /// The same answer with one more header (nothing to add it to when the connection is dropped).
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Reply {
        if let Reply::Answer(response) = &mut self {
            response.headers_mut().insert(name, value);
        }
        self
    }
}
