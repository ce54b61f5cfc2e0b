//! Path ids: the `{id}` segment (and the `{job_id}` and `{cert_id}` of nested paths) checked
//! once, as an extractor, before the handler runs: 1 to 128 letters, digits, `.`, `_`, `:` or
//! `-`, starting with a letter or digit; anything else is a 400 `invalid-path`.

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use futures_util::future::{ready, Ready};

use certctl_actors::domain::validation::is_valid_id;

use super::problem::ApiError;

/// What [`is_valid_id`] accepts, as the OpenAPI document's pattern for the path ids.
pub const ID_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$";

/// The path segments read as ids.
pub const ID_SEGMENTS: [&str; 3] = ["id", "job_id", "cert_id"];

/// `{id}`.
pub struct Id(pub String);
/// `{job_id}`.
pub struct JobId(pub String);
/// `{cert_id}`.
pub struct CertId(pub String);

fn segment(req: &HttpRequest, name: &str) -> Result<String, ApiError> {
    let raw = req.match_info().get(name).unwrap_or_default();
    if is_valid_id(raw) {
        Ok(raw.to_string())
    } else {
        Err(ApiError::InvalidPath(format!(
            "{name}: ids are 1 to 128 letters, digits, '.', '_', ':' or '-', starting with a letter or digit"
        )))
    }
}

macro_rules! path_id {
    ($type:ident, $name:literal) => {
        impl FromRequest for $type {
            type Error = ApiError;
            type Future = Ready<Result<$type, ApiError>>;

            fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
                ready(segment(req, $name).map($type))
            }
        }
    };
}

path_id!(Id, "id");
path_id!(JobId, "job_id");
path_id!(CertId, "cert_id");
