//! The request body limits (`CERTCTL_MAX_BODY_SIZE`, `CERTCTL_REQUEST_BODY_TIMEOUT`), kept in
//! app data so the body extractors enforce them and a bare 413 can say what the limit is.

use std::time::Duration;

/// The body limit in bytes.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimit(pub u64);

/// The longest a body may take to arrive.
#[derive(Clone, Copy, Debug)]
pub struct BodyTimeout(pub Duration);

/// The body timeout of a request's app (the default when none is configured).
pub fn body_timeout(req: &actix_web::HttpRequest) -> Duration {
    req.app_data::<actix_web::web::Data<BodyTimeout>>().map_or(Duration::from_secs(15), |t| t.0)
}
