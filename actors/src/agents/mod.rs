//! Agents, on the server side: who they are, when they last spoke, and what they do.
//!
//! - [`directory`]: every agent's key hash and whether it is retired, in memory, so
//!   authenticating an agent and accepting its heartbeat cost no query.
//! - [`registry`]: registration (the agent's key made here), retirement and finding a key's
//!   agent; each keeps the directory current itself.
//! - [`heartbeats`]: the heartbeat buffer handlers write into, and the supervised heartbeat
//!   aggregator actor that flushes it in batches and keeps the directory current.
//! - [`work`]: the agents' flows: claiming work, CSRs, chain pickup with key hand-over,
//!   deployment reports.

pub mod directory;
pub mod heartbeats;
pub mod registry;
pub mod work;
