//! The load-test harness shared by the scenario benches: start the real `certctl-server` release
//! binary as its own process (embedded PostgreSQL, TLS on), seed fixtures with set-based SQL,
//! drive an open-model load (constant arrival rate, latency measured from each request's intended
//! send time, so a stall cannot hide queued requests), measure the machine's ceiling on `/health`
//! in the same run, and report HDR percentiles, errors, achieved rate, and the server's CPU and
//! RSS, as text and JSON.
//!
//! - [`server`]: the server process, its key and TLS client, and process statistics.
//! - [`load`]: open-model streams and the closed-loop ceiling.
//! - [`sampler`]: the server's peak RSS during a phase.
//! - [`seed`]: managed certificates in set-based chunks.
//! - [`verify`]: issued chains checked with `openssl verify`.
//! - [`report`]: verdicts against certctl's contract and our goal, text and JSON output.

#![allow(dead_code)]

pub mod load;
pub mod report;
pub mod sampler;
pub mod seed;
pub mod server;
pub mod verify;
