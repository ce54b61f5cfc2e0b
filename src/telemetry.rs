//! Logs and metrics set-up: the tracing subscriber (JSON or text, level from settings) and the
//! process-wide Prometheus recorder, plus the HTTP metrics' names and help texts.

use std::sync::OnceLock;

use metrics::{describe_counter, describe_histogram, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::{fmt, EnvFilter};

use crate::settings::{LogFormat, LogLevel};

/// Counter, labels `route` (the matched pattern), `method`, `status_class` (`2xx`…`5xx`).
pub const HTTP_REQUESTS_TOTAL: &str = "certctl_http_requests_total";
/// Connections closed at once, before TLS or HTTP, by reason (`peer_limit`).
pub const CONNECTIONS_REFUSED_TOTAL: &str = "certctl_connections_refused_total";
/// Histogram, labels `route`, `method`, `status_class`.
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "certctl_http_request_duration_seconds";

/// Buckets for request latency: sub-millisecond API calls up to slow outliers.
const HTTP_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Rows per batch (certificate writer, dispatcher write-backs).
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];
/// Scheduler ticks: milliseconds for an idle loop to minutes for a scan of a large fleet.
const TICK_BUCKETS: &[f64] = &[0.001, 0.005, 0.025, 0.1, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0, 300.0];
/// One issuance: sub-millisecond local signing to slow remote CAs.
const ISSUANCE_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0, 5.0, 30.0, 120.0];
/// From an order's submission to its issuance: seconds (Vault, ACME) to a day (a CA whose staff
/// approve orders).
const CA_ISSUANCE_BUCKETS: &[f64] = &[1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 14_400.0, 86_400.0];
/// Buckets for query latency.
const DB_BUCKETS: &[f64] = &[0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0];

/// Installs the global tracing subscriber. Later calls (tests) are ignored.
pub fn init_tracing(level: LogLevel, format: LogFormat) {
    let level = match level {
        LogLevel::Trace => "trace",
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
    };
    // The setting is the level for everything; RUST_LOG, when set, adds per-module directives
    // on top (e.g. RUST_LOG=tokio_postgres=debug).
    // The HTTP/1 parser logs every malformed request it refuses (an over-long head, a bad request
    // line) at ERROR: client mistakes, answered with a bare 400/431, that would drown real errors.
    // The PostgreSQL driver logs every statement's parameter values at DEBUG: configs with their
    // secrets, key hashes. They stay out of the log at every CERTCTL_LOG_LEVEL (RUST_LOG can still
    // name the module explicitly, on an operator's own machine).
    let filter = EnvFilter::new(level)
        .add_directive("actix_http::h1::dispatcher=off".parse().expect("a valid directive"))
        .add_directive("tokio_postgres::query=info".parse().expect("a valid directive"));
    let filter = match std::env::var("RUST_LOG") {
        Ok(extra) => extra.split(',').filter_map(|d| d.trim().parse().ok()).fold(filter, EnvFilter::add_directive),
        Err(_) => filter,
    };
    // Colours only for a person at a terminal: a journal or a log file gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let _ = match format {
        // The span list carries every enclosing span's fields, so a DB query's log line still
        // has the request_id of the HTTP request it serves.
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).with_span_list(true).try_init(),
        LogFormat::Text => builder.with_target(false).try_init(),
    };
}

/// The process-wide Prometheus recorder, installed on first use (tests build many servers in one
/// process; they share it).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            use certctl_actors::metrics as engine;
            let histograms: [(&str, &[f64]); 11] = [
                (HTTP_REQUEST_DURATION_SECONDS, HTTP_BUCKETS),
                (engine::DB_QUERY_DURATION_SECONDS, DB_BUCKETS),
                (engine::DB_POOL_WAIT_SECONDS, DB_BUCKETS),
                (engine::CERTIFICATE_WRITER_BATCH_SIZE, BATCH_BUCKETS),
                (engine::SCHEDULER_TICK_DURATION_SECONDS, TICK_BUCKETS),
                (engine::ISSUANCE_DURATION_SECONDS, ISSUANCE_BUCKETS),
                (engine::DISPATCHER_WRITE_BATCH_SIZE, BATCH_BUCKETS),
                (engine::HEARTBEAT_FLUSH_DURATION_SECONDS, DB_BUCKETS),
                (engine::ETAG_NOTIFICATION_LAG_SECONDS, DB_BUCKETS),
                (engine::CA_REQUEST_DURATION_SECONDS, ISSUANCE_BUCKETS),
                (engine::CA_ISSUANCE_SECONDS, CA_ISSUANCE_BUCKETS),
            ];
            let recorder = histograms
                .iter()
                .try_fold(PrometheusBuilder::new(), |b, (name, buckets)| {
                    b.set_buckets_for_metric(Matcher::Full((*name).into()), buckets)
                })
                .map(|b| b.build_recorder())
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            // Fails only if another recorder is already installed, in which case ours just
            // renders nothing extra; the server still runs.
            let _ = metrics::set_global_recorder(recorder);
            describe();
            certctl_actors::metrics::describe();
            handle
        })
        .clone()
}

fn describe() {
    describe_counter!(HTTP_REQUESTS_TOTAL, "HTTP requests served, by route pattern, method and status class.");
    describe_counter!(
        CONNECTIONS_REFUSED_TOTAL,
        "Connections closed at once, before TLS or HTTP, by reason (peer_limit: CERTCTL_MAX_CONNECTIONS_PER_PEER)."
    );
    describe_histogram!(
        HTTP_REQUEST_DURATION_SECONDS,
        Unit::Seconds,
        "HTTP request latency, by route pattern, method and status class."
    );
}
