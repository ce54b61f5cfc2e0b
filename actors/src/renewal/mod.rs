//! The renewal engine's moving parts: [`dispatcher::RenewalDispatcher`], the actor that turns due
//! jobs into issued certificates under a concurrency cap, and [`requests::Renewals`], the
//! renewals asked for through the API. What is due is decided by the renewal scan loop
//! ([`crate::scheduler::loops`]) and the statements in [`crate::queries::renewal_scan`].

pub mod dispatcher;
pub mod requests;
