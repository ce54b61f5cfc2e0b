//! The ACME client's HTTP: instant-acme's requests carried by the issuer's pooled reqwest client
//! (its timeouts, its `tls_ca_file`, the request metrics), instead of a second HTTP stack.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use http_body_util::BodyExt;
use instant_acme::{BodyWrapper, BytesResponse, HttpClient};

use crate::issuers::http::CaHttp;
use crate::issuers::IssueFailure;

/// instant-acme's HTTP client over [`CaHttp`].
pub struct AcmeTransport(pub CaHttp);

impl HttpClient for AcmeTransport {
    fn request(
        &self,
        request: http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let http = self.0.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            // The body is an in-memory buffer: collecting it cannot fail.
            let body = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
            let url =
                reqwest::Url::parse(&parts.uri.to_string()).map_err(|e| instant_acme::Error::Other(Box::new(e)))?;
            let mut outgoing = reqwest::Request::new(parts.method, url);
            *outgoing.headers_mut() = parts.headers;
            *outgoing.body_mut() = Some(body.into());
            let response =
                http.exchange("acme", outgoing).await.map_err(|f| instant_acme::Error::Other(Box::new(f)))?;
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
