//! certctl server shell: turns HTTP into messages for the engine (`certctl-actors`) and messages
//! into responses.
//!
//! - [`settings`]: typed `CERTCTL_*` settings, validation, the masked `config` listing.
//! - [`telemetry`]: tracing subscriber and the Prometheus recorder.
//! - [`embedded_postgres`]: the PostgreSQL cluster the server runs itself when no URL is given.
//! - [`tls`]: the HTTPS certificate (configured or self-signed) and the rustls config.
//! - [`auth`]: API keys (hashing, constant-time checks, first-start admin key) and the middleware.
//! - [`http`]: routes, problem documents, request ids, JSON extraction, HTTP metrics.
//! - [`startup`]: `Application::build(Settings)`, used by `main` and by the tests; it starts the
//!   engine (`certctl_actors::Engine::start`) from the settings.

pub mod auth;
pub mod embedded_postgres;
pub mod http;
pub mod settings;
pub mod startup;
pub mod telemetry;
pub mod tls;
