//! Agents, on the server side: who they are and when they last spoke.
//!
//! - [`directory`]: every agent's key hash and whether it is retired, in memory, so
//!   authenticating an agent and accepting its heartbeat cost no query.
//! - [`heartbeats`]: the heartbeat buffer handlers write into, and the supervised heartbeat
//!   aggregator actor that flushes it in batches and keeps the directory current.

pub mod directory;
pub mod heartbeats;
