//! The ACME http-01 challenge listener (`CERTCTL_ACME_HTTP01_LISTEN`): plain HTTP, one route,
//! `GET /.well-known/acme-challenge/{token}`, answered with the key authorization an ACME issuer
//! published in the database, so whichever replica the CA's validation request reaches answers
//! it. Anything else is a 404 problem document.

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpResponse, HttpServer};

use certctl_actors::Engine;

use crate::http::problem::ApiError;
use crate::http::request_context::request_context;

/// Serves the challenge route on `listener` (one worker: a CA's validation requests are few).
pub fn serve(listener: TcpListener, engine: Engine) -> std::io::Result<Server> {
    let engine = web::Data::new(engine);
    Ok(HttpServer::new(move || {
        App::new()
            .wrap(from_fn(request_context))
            .app_data(engine.clone())
            .route("/.well-known/acme-challenge/{token}", web::get().to(answer))
            .default_service(web::to(not_found))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run())
}

/// The key authorization for `token`, as `text/plain` (RFC 8555 §8.3).
async fn answer(engine: web::Data<Engine>, token: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let token = token.into_inner();
    // Tokens are base64url (RFC 8555 §8.1): anything else is not one we published.
    let plausible = !token.is_empty()
        && token.len() <= 256
        && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !plausible {
        return Err(ApiError::NotFound("no ACME challenge answer has this token".into()));
    }
    match engine.acme_http01_answer(&token).await? {
        Some(key_authorization) => Ok(HttpResponse::Ok().content_type("text/plain").body(key_authorization)),
        None => Err(ApiError::NotFound("no ACME challenge answer has this token".into())),
    }
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::RouteNotFound)
}
