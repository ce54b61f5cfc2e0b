//! The renewal engine's moving part: [`dispatcher::RenewalDispatcher`], the actor that turns due
//! jobs into issued certificates under a concurrency cap. What is due is decided by the renewal
//! scan loop ([`crate::scheduler::loops`]) and the statements in [`crate::queries::renewal_scan`].

pub mod dispatcher;
