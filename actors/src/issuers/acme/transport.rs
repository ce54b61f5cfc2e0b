//! The ACME client's HTTP: instant-acme's requests carried by the issuer's pooled reqwest client
//! (its timeouts, its `tls_ca_file`, the request metrics), instead of a second HTTP stack. It
//! also notes the alternate chains a certificate download offers (`super::alternates`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use instant_acme::{BodyWrapper, BytesResponse, HttpClient};

use super::alternates::Alternates;
use crate::issuers::http::CaHttp;
use crate::issuers::IssueFailure;

/// instant-acme's HTTP client over [`CaHttp`].
pub struct AcmeTransport {
    /// The issuer's pooled client.
    pub http: CaHttp,
    /// Where certificate downloads' alternate chains are noted.
    pub alternates: Arc<Alternates>,
}

impl HttpClient for AcmeTransport {
    fn request(
        &self,
        request: http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let (http, alternates) = (self.http.clone(), self.alternates.clone());
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            // The body is an in-memory buffer: collecting it cannot fail.
            let body = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
            let url =
                reqwest::Url::parse(&parts.uri.to_string()).map_err(|e| instant_acme::Error::Other(Box::new(e)))?;
            let mut outgoing = reqwest::Request::new(parts.method, url.clone());
            *outgoing.headers_mut() = parts.headers;
            *outgoing.body_mut() = Some(body.into());
            let response =
                http.exchange("acme", outgoing).await.map_err(|f| instant_acme::Error::Other(Box::new(f)))?;
            let is_chain = response
                .headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|t| t.starts_with("application/pem-certificate-chain"));
            if is_chain {
                alternates.record(&url, response.headers());
            }
            Ok(BytesResponse::from(http::Response::from(response)))
        })
    }
}

/// The failure inside an instant-acme error, when the request never got an answer.
pub fn transport_failure(error: &instant_acme::Error) -> Option<&IssueFailure> {
    match error {
        instant_acme::Error::Other(inner) => inner.downcast_ref::<IssueFailure>(),
        _ => None,
    }
}
