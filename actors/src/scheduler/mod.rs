//! The scheduler: every periodic job is a supervised [`loop_actor::SchedulerLoop`] driven by a
//! jittered timer, run by exactly one replica at a time (advisory locks in [`leader`]).
//!
//! - [`loop_actor`]: the loop actor, its [`loop_actor::LoopTask`] trait and `RunNow`.
//! - [`leader`]: one advisory lock per loop on a connection of its own.
//! - [`ticker`]: the jittered delay between ticks.
//! - [`loops`]: the loops of the renewal engine (renewal scan, job processor, retry, reaper,
//!   expiry sweep) and [`loops::Scheduler`], which starts them and finds one by name.

pub mod leader;
pub mod loop_actor;
pub mod loops;
pub mod ticker;
