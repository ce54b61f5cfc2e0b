//! ACME Renewal Information (RFC 9773) in front of a real Pebble, whose Debian version (2.4)
//! predates it: a plain-HTTP listener that serves Pebble's directory with a `renewalInfo` URL
//! added, and answers that URL with a fixed suggested window. Everything else (accounts, orders,
//! challenges, certificates) goes straight to Pebble at the URLs its directory names, so the ACME
//! exchange stays real and only the renewal information is supplied here.

use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, SecondsFormat, Utc};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::pebble::Pebble;

/// A running shim. Dropping it stops it.
pub struct AriShim {
    /// The directory to give certctl: Pebble's, with `renewalInfo`.
    pub directory_url: String,
    /// The certificate ids (`<AKI>.<serial>`, base64url) asked about, in order.
    asked: Arc<Mutex<Vec<String>>>,
    server: JoinHandle<()>,
}

/// What the listener's connections share.
struct Shim {
    /// Pebble's directory, with `renewalInfo` pointing here.
    directory: Value,
    window: (DateTime<Utc>, DateTime<Utc>),
    asked: Arc<Mutex<Vec<String>>>,
}

impl AriShim {
    /// Starts a shim whose every certificate's suggested window is `window`.
    pub async fn start(pebble: &Pebble, window: (DateTime<Utc>, DateTime<Utc>)) -> AriShim {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binding the ARI shim's port");
        let port = listener.local_addr().unwrap().port();
        let root = reqwest::Certificate::from_pem(&std::fs::read(&pebble.tls_ca_file).unwrap()).unwrap();
        let client = reqwest::Client::builder().tls_certs_only([root]).build().unwrap();
        let mut directory: Value =
            client.get(&pebble.directory_url).send().await.unwrap().json().await.expect("Pebble's directory");
        directory["renewalInfo"] = json!(format!("http://127.0.0.1:{port}/renewal-info"));
        let asked = Arc::new(Mutex::new(Vec::new()));
        let shim = Arc::new(Shim { directory, window, asked: asked.clone() });
        let server = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { continue };
                let shim = shim.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let shim = shim.clone();
                        async move { Ok::<_, std::convert::Infallible>(shim.answer(&request)) }
                    });
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(tcp), service).await;
                });
            }
        });
        AriShim { directory_url: format!("http://127.0.0.1:{port}/dir"), asked, server }
    }

    /// The certificate ids asked about.
    pub fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl Drop for AriShim {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Shim {
    fn answer(&self, request: &Request<Incoming>) -> Response<Full<Bytes>> {
        let path = request.uri().path();
        let json = |status: u16, body: &Value| {
            Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .header("retry-after", "21600")
                .body(Full::new(Bytes::from(body.to_string())))
                .unwrap()
        };
        if path == "/dir" {
            return json(200, &self.directory);
        }
        match path.strip_prefix("/renewal-info/") {
            // RFC 9773 §4.1: base64url(AKI keyIdentifier) "." base64url(serial DER value).
            Some(id) if id.split('.').count() == 2 && id.split('.').all(|part| !part.is_empty()) => {
                self.asked.lock().unwrap_or_else(PoisonError::into_inner).push(id.to_owned());
                let at = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
                json(200, &json!({"suggestedWindow": {"start": at(self.window.0), "end": at(self.window.1)}}))
            }
            _ => json(
                404,
                &json!({"type": "urn:ietf:params:acme:error:malformed", "detail": format!("no such resource {path}")}),
            ),
        }
    }
}
