//! Integration tests: real servers from `Application::build`, real PostgreSQL (one cluster per
//! test process, a fresh database per test), real HTTP and TLS over real sockets.

mod acme_issuer;
mod agent_binary;
mod agent_heartbeats;
mod agent_registration;
mod agent_support;
mod agent_work;
mod audit;
mod auth;
mod bad_input;
mod certificate_list;
mod certificate_writer;
mod certificates;
mod config;
mod database_tls;
mod discovery;
mod embedded;
mod etag;
mod fake_ca;
mod first_use;
mod freezing_proxy;
mod health;
mod helpers;
mod hostile_input;
mod jobs;
mod migrations;
mod named;
mod observability;
mod openapi;
mod pebble;
mod pool;
mod remote_issuers;
mod renewal;
mod resilience;
mod resources;
mod tls;
