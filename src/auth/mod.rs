//! Authentication of API requests.
//!
//! `Authorization: Bearer <key>` is checked by [`require_api_key`] (a middleware on `/api/v1`)
//! against the [`keys::KeyStore`]; the [`Caller`] it finds goes into the request's extensions.
//! Admin-only handlers take the [`Admin`] extractor, which answers 403 to other keys.
//! [`bootstrap`] builds the store at start-up and makes the first admin key when there is none.
//!
//! - [`keys`]: hashing, constant-time comparison, key generation.
//! - [`bootstrap`]: configured + stored keys, the first-start admin key and its banner.

pub mod bootstrap;
pub mod keys;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{web, Error, FromRequest, HttpMessage, HttpRequest};
use futures_util::future::{ready, Ready};

pub use keys::{Caller, KeyStore};

use crate::http::problem::ApiError;

/// How requests are authenticated, shared by every worker.
pub enum Authenticator {
    /// Bearer keys checked against the store.
    ApiKeys(KeyStore),
    /// `CERTCTL_AUTH_TYPE=none`: every request acts as an anonymous admin.
    Disabled,
}

impl Authenticator {
    /// The caller for an `Authorization` header value, or why it is refused.
    pub fn check(&self, authorization: Option<&str>) -> Result<Caller, ApiError> {
        let store = match self {
            Authenticator::Disabled => {
                return Ok(Caller { name: "anonymous".into(), admin: true, authenticated: false })
            }
            Authenticator::ApiKeys(store) => store,
        };
        let Some(value) = authorization else {
            return Err(ApiError::Unauthorized("send an API key as `Authorization: Bearer <key>`".into()));
        };
        // The scheme name is case-insensitive (RFC 9110 §11.1).
        let token = value
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::Unauthorized("the Authorization header must be `Bearer <key>`".into()))?;
        store.authenticate(token).ok_or_else(|| ApiError::Unauthorized("the API key is not valid".into()))
    }
}

/// Middleware: authenticates the request or answers 401 with `WWW-Authenticate`. Refusals are
/// rendered here, inside the request's scope, so the problem document carries the request id.
pub async fn require_api_key(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let checked = match req.app_data::<web::Data<Authenticator>>() {
        Some(auth) => auth.check(req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())),
        None => Err(ApiError::Internal(anyhow::anyhow!("authenticator missing from app data"))),
    };
    match checked {
        Ok(caller) => {
            tracing::Span::current().record("caller", caller.name.as_str());
            req.extensions_mut().insert(caller);
            next.call(req).await.map(ServiceResponse::map_into_boxed_body)
        }
        Err(refusal) => Ok(req.error_response(refusal)),
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Caller, ApiError>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        ready(
            req.extensions()
                .get::<Caller>()
                .cloned()
                .ok_or_else(|| ApiError::Unauthorized("send an API key as `Authorization: Bearer <key>`".into())),
        )
    }
}

/// Extractor for admin-only handlers: the caller, known to be an admin.
pub struct Admin(pub Caller);

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Ready<Result<Admin, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        ready(Caller::from_request(req, payload).into_inner().and_then(|caller| {
            if caller.admin {
                Ok(Admin(caller))
            } else {
                Err(ApiError::Forbidden(format!("the API key `{}` is not an admin key", caller.name)))
            }
        }))
    }
}
