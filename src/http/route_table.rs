//! The route table: every route is registered through [`Routes`], which records its method and
//! path template as it hands it to actix, so the OpenAPI document can be checked against what the
//! router really serves (`route_table()` in [`super`], and the test in `tests/api/openapi.rs`).
//!
//! A path and its methods become one actix resource, so another method on a known path is a 405,
//! never a fall-through to a later, wider pattern.

use actix_web::{guard, web, FromRequest, Handler, Responder, Route};

/// One registered route: a method (`GET` also answers `HEAD`) and its full path template.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RouteEntry {
    /// `GET`, `POST`, `PUT` or `DELETE`.
    pub method: &'static str,
    /// The path template as registered, `/api/v1/certificates/{id}`.
    pub path: String,
}

/// Registers routes under a prefix and records each one.
pub struct Routes<'a> {
    /// Where actix collects the services.
    cfg: &'a mut web::ServiceConfig,
    /// The scope's path, prepended to the recorded templates (`/api/v1`).
    prefix: &'static str,
    /// The recorded routes.
    table: &'a mut Vec<RouteEntry>,
}

impl<'a> Routes<'a> {
    pub fn new(cfg: &'a mut web::ServiceConfig, prefix: &'static str, table: &'a mut Vec<RouteEntry>) -> Self {
        Routes { cfg, prefix, table }
    }

    /// Serves `path` (relative to the prefix) with these methods, as one resource.
    pub fn at(&mut self, path: &str, routes: impl IntoIterator<Item = (&'static str, Route)>) -> &mut Self {
        let mut resource = web::resource(path);
        for (method, route) in routes {
            self.table.push(RouteEntry { method, path: format!("{}{path}", self.prefix) });
            resource = resource.route(route);
        }
        self.cfg.service(resource);
        self
    }
}

/// `GET`, answering `HEAD` too (the same status and headers, no body), as RFC 9110 §9.3.2
/// expects of every `GET` resource.
pub fn read<F, Args>(handler: F) -> (&'static str, Route)
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    ("GET", web::route().guard(guard::Any(guard::Get()).or(guard::Head())).to(handler))
}

/// `POST`.
pub fn post<F, Args>(handler: F) -> (&'static str, Route)
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    ("POST", web::post().to(handler))
}

/// `PUT`.
pub fn put<F, Args>(handler: F) -> (&'static str, Route)
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    ("PUT", web::put().to(handler))
}

/// `DELETE`.
pub fn delete<F, Args>(handler: F) -> (&'static str, Route)
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    ("DELETE", web::delete().to(handler))
}
