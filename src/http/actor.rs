//! The `Actor` extractor: who is making this request, for the audit rows its mutations write
//! (the authenticated key's name, or anonymous when authentication is off, plus the request id).

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use futures_util::future::{ready, Ready};

use certctl_actors::domain::audit::{ActorType, AuditActor};

use super::problem::ApiError;
use super::request_id::RequestId;
use crate::auth::Caller;

/// The acting principal of an API request.
pub struct Actor(pub AuditActor);

impl FromRequest for Actor {
    type Error = ApiError;
    type Future = Ready<Result<Actor, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let request_id = req.extensions().get::<RequestId>().map(|r| r.0.clone());
        ready(Caller::from_request(req, payload).into_inner().map(|caller| {
            let actor_type = match (&caller.agent_id, caller.authenticated) {
                (Some(_), _) => ActorType::Agent,
                (None, true) => ActorType::ApiKey,
                (None, false) => ActorType::Anonymous,
            };
            Actor(AuditActor { name: caller.name, actor_type, request_id })
        }))
    }
}
