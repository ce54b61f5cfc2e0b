//! Every metric the engine records: names as constants and their help texts, registered once by
//! [`describe`]. Names follow Prometheus conventions (`_total` counters, `_seconds` histograms in
//! base units); label values come from small fixed sets, never ids.

use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};

/// Histogram: time a query waited for a pooled connection.
pub const DB_POOL_WAIT_SECONDS: &str = "certctl_db_pool_wait_seconds";
/// Histogram, label `statement` (the query's `DbQuery::NAME`) and `outcome` (`ok` | error kind):
/// time from holding a connection to the query's result.
pub const DB_QUERY_DURATION_SECONDS: &str = "certctl_db_query_duration_seconds";
/// Gauge: connections currently open in the pool.
pub const DB_POOL_SIZE: &str = "certctl_db_pool_size";
/// Gauge: open connections idle in the pool.
pub const DB_POOL_AVAILABLE: &str = "certctl_db_pool_available";
/// Gauge: callers waiting for a connection.
pub const DB_POOL_WAITING: &str = "certctl_db_pool_waiting";
/// Gauge: the pool's maximum size (`CERTCTL_DATABASE_MAX_CONNS`).
pub const DB_POOL_MAX: &str = "certctl_db_pool_max";
/// Counter: idle connections closed by the pool maintenance timer.
pub const DB_POOL_PRUNED_TOTAL: &str = "certctl_db_pool_pruned_total";
/// Gauge, label `actor`: messages sent to an actor and not yet started.
pub const ACTOR_BACKLOG: &str = "certctl_actor_backlog";
/// Gauge, label `actor`: messages an actor is working on right now.
pub const ACTOR_INFLIGHT: &str = "certctl_actor_inflight";
/// Counter, label `reason` (`backlog` | `actor_gone` | `pool`): queries answered as unavailable
/// without reaching PostgreSQL.
pub const DB_QUERIES_REFUSED_TOTAL: &str = "certctl_db_queries_refused_total";
/// Counter: audit events deleted by the retention actor.
pub const AUDIT_EVENTS_PURGED_TOTAL: &str = "certctl_audit_events_purged_total";
/// Counter: retention ticks skipped because the previous pass was still running.
pub const AUDIT_RETENTION_SKIPPED_TOTAL: &str = "certctl_audit_retention_skipped_ticks_total";
/// Histogram: certificates written per batch by the certificate writer.
pub const CERTIFICATE_WRITER_BATCH_SIZE: &str = "certctl_certificate_writer_batch_size";
/// Gauge: certificate creations waiting for the next batch.
pub const CERTIFICATE_WRITER_QUEUED: &str = "certctl_certificate_writer_queued";
/// Histogram, label `loop`: duration of a scheduler tick this replica ran.
pub const SCHEDULER_TICK_DURATION_SECONDS: &str = "certctl_scheduler_tick_duration_seconds";
/// Counter, labels `loop` and `outcome` (`ok` | `error` | `not_leader`): ticks started (a tick
/// skipped because the previous one still runs counts in the skipped-ticks counter instead).
pub const SCHEDULER_TICKS_TOTAL: &str = "certctl_scheduler_ticks_total";
/// Counter, label `loop`: ticks skipped because the previous one was still running.
pub const SCHEDULER_SKIPPED_TICKS_TOTAL: &str = "certctl_scheduler_skipped_ticks_total";
/// Gauge, label `loop`: Unix time of the last tick that completed on this replica.
pub const SCHEDULER_LAST_SUCCESS_TIMESTAMP: &str = "certctl_scheduler_last_success_timestamp_seconds";
/// Gauge, label `status`: issuance and renewal jobs by status (Pending, Running, AwaitingCSR,
/// AwaitingApproval, and Failed ones waiting for a retry as `RetryWaiting`).
pub const JOBS_QUEUE_DEPTH: &str = "certctl_jobs_queue_depth";
/// Gauge: issuances the dispatcher is running now.
pub const DISPATCHER_IN_FLIGHT: &str = "certctl_renewal_in_flight";
/// Gauge: the dispatcher's concurrency cap (`CERTCTL_RENEWAL_CONCURRENCY`).
pub const DISPATCHER_CAP: &str = "certctl_renewal_concurrency_cap";
/// Histogram: results per dispatcher write-back transaction.
pub const DISPATCHER_WRITE_BATCH_SIZE: &str = "certctl_renewal_write_batch_size";
/// Histogram, label `issuer_type`: time one issuance took.
pub const ISSUANCE_DURATION_SECONDS: &str = "certctl_issuance_duration_seconds";
/// Counter, labels `issuer_type` and `error_class`: failed issuances.
pub const ISSUANCE_FAILURES_TOTAL: &str = "certctl_issuance_failures_total";
/// Gauge, label `issuer` (an issuer id: configuration, a handful per deployment): orders with
/// remote CAs not yet issued or refused.
pub const CA_ORDERS_PENDING: &str = "certctl_ca_orders_pending";
/// Counter, labels `issuer_type` and `outcome` (`pending` | `issued` | `rejected` | `error` |
/// `failed`): answers to the CA poller's submissions and polls.
pub const CA_POLLS_TOTAL: &str = "certctl_ca_polls_total";
/// Histogram, label `issuer_type`: time from an order's submission to its issuance.
pub const CA_ISSUANCE_SECONDS: &str = "certctl_ca_issuance_seconds";
/// Counter, label `issuer_type`: orders whose poll budget ran out (the job went back to the scheduler).
pub const CA_POLL_BUDGET_EXPIRIES_TOTAL: &str = "certctl_ca_poll_budget_expiries_total";
/// Histogram, labels `issuer` (an issuer id) and `endpoint`: time of requests to remote CAs.
pub const CA_REQUEST_DURATION_SECONDS: &str = "certctl_ca_request_duration_seconds";
/// Counter, labels `issuer`, `endpoint` and `error_class`: requests to remote CAs that failed.
pub const CA_REQUEST_ERRORS_TOTAL: &str = "certctl_ca_request_errors_total";
/// Counter, label `outcome` (`accepted` | `failed`): revocations told to remote CAs.
pub const CA_REVOCATIONS_TOTAL: &str = "certctl_ca_revocations_total";
/// Counter, label `result` (`success` | `failure` | `not_renewable`): Vault token renewals.
pub const VAULT_TOKEN_RENEWALS_TOTAL: &str = "certctl_vault_token_renewals_total";
/// Counter: renewal jobs enqueued by the renewal scan.
pub const RENEWALS_ENQUEUED_TOTAL: &str = "certctl_renewals_enqueued_total";
/// Counter, label `trigger` (`api` | `bulk`): renewal jobs enqueued through the API.
pub const RENEWALS_REQUESTED_TOTAL: &str = "certctl_renewals_requested_total";
/// Counter, label `actor`: restarts performed by the actor's supervisor.
pub const ACTOR_RESTARTS_TOTAL: &str = "certctl_actor_restarts_total";

/// Counter, label `result` (`accepted` | `full`): heartbeats taken into the aggregator's buffer,
/// or refused because it was full.
pub const HEARTBEATS_RECEIVED_TOTAL: &str = "certctl_heartbeats_received_total";
/// Counter: agent rows the heartbeat aggregator's flushes updated.
pub const HEARTBEAT_ROWS_FLUSHED_TOTAL: &str = "certctl_heartbeat_rows_flushed_total";
/// Histogram: duration of one heartbeat flush statement.
pub const HEARTBEAT_FLUSH_DURATION_SECONDS: &str = "certctl_heartbeat_flush_duration_seconds";
/// Counter: heartbeat flushes that failed (their beats were kept for the next one).
pub const HEARTBEAT_FLUSH_FAILURES_TOTAL: &str = "certctl_heartbeat_flush_failures_total";
/// Gauge: agents with a beat waiting for the next flush.
pub const HEARTBEAT_BUFFER_SIZE: &str = "certctl_heartbeat_buffer_size";
/// Gauge: agents the in-memory agent directory knows.
pub const AGENT_DIRECTORY_SIZE: &str = "certctl_agent_directory_size";

/// Counter, labels `endpoint` (the list's route) and `result` (`hit`: 304 without a query, `miss`:
/// 200 with a fresh ETag, `bypass`: no ETag, because read auditing is on or notifications are not
/// flowing).
pub const ETAG_REQUESTS_TOTAL: &str = "certctl_etag_requests_total";
/// Histogram: how long after a change's statement ran its notification reached this replica.
pub const ETAG_NOTIFICATION_LAG_SECONDS: &str = "certctl_etag_notification_lag_seconds";
/// Counter, label `table`: change notifications received.
pub const ETAG_NOTIFICATIONS_TOTAL: &str = "certctl_etag_notifications_total";
/// Counter: times the notification listener connected again after losing its connection.
pub const ETAG_LISTENER_RECONNECTS_TOTAL: &str = "certctl_etag_listener_reconnects_total";
/// Gauge: 1 while the notification listener is connected and listening.
pub const ETAG_LISTENER_CONNECTED: &str = "certctl_etag_listener_connected";

/// Registers help texts and units for the engine's metrics. Call once after installing a recorder.
pub fn describe() {
    describe_histogram!(
        SCHEDULER_TICK_DURATION_SECONDS,
        Unit::Seconds,
        "Duration of scheduler ticks this replica ran, by loop."
    );
    describe_counter!(SCHEDULER_TICKS_TOTAL, "Scheduler ticks by loop and outcome (ok, error, not_leader).");
    describe_counter!(
        SCHEDULER_SKIPPED_TICKS_TOTAL,
        "Scheduler ticks skipped because the previous tick was still running."
    );
    describe_gauge!(
        SCHEDULER_LAST_SUCCESS_TIMESTAMP,
        "Unix time of the last tick of each loop that completed on this replica."
    );
    describe_gauge!(
        JOBS_QUEUE_DEPTH,
        "Issuance and renewal jobs by status (RetryWaiting: failed, waiting for a retry)."
    );
    describe_gauge!(DISPATCHER_IN_FLIGHT, "Issuances the renewal dispatcher is running now.");
    describe_gauge!(DISPATCHER_CAP, "The renewal dispatcher's concurrency cap (CERTCTL_RENEWAL_CONCURRENCY).");
    describe_histogram!(
        DISPATCHER_WRITE_BATCH_SIZE,
        Unit::Count,
        "Results written per dispatcher write-back transaction."
    );
    describe_histogram!(ISSUANCE_DURATION_SECONDS, Unit::Seconds, "Time one issuance took, by issuer type.");
    describe_counter!(ISSUANCE_FAILURES_TOTAL, "Failed issuances by issuer type and error class.");
    describe_gauge!(CA_ORDERS_PENDING, "Orders with remote CAs not yet issued or refused, by issuer.");
    describe_counter!(CA_POLLS_TOTAL, "Answers to the CA poller's submissions and polls, by issuer type and outcome.");
    describe_histogram!(
        CA_ISSUANCE_SECONDS,
        Unit::Seconds,
        "Time from an order's submission to its issuance, by issuer type."
    );
    describe_counter!(CA_POLL_BUDGET_EXPIRIES_TOTAL, "Orders whose poll budget ran out, by issuer type.");
    describe_histogram!(
        CA_REQUEST_DURATION_SECONDS,
        Unit::Seconds,
        "Time of requests to remote CAs, by issuer and endpoint."
    );
    describe_counter!(
        CA_REQUEST_ERRORS_TOTAL,
        "Requests to remote CAs that failed, by issuer, endpoint and error class."
    );
    describe_counter!(CA_REVOCATIONS_TOTAL, "Revocations told to remote CAs, by outcome.");
    describe_counter!(VAULT_TOKEN_RENEWALS_TOTAL, "Vault token renewals, by result.");
    describe_counter!(RENEWALS_ENQUEUED_TOTAL, "Renewal and issuance jobs enqueued by the renewal scan.");
    describe_counter!(RENEWALS_REQUESTED_TOTAL, "Renewal jobs enqueued through the API, by trigger (api, bulk).");
    describe_histogram!(
        CERTIFICATE_WRITER_BATCH_SIZE,
        Unit::Count,
        "Certificates written per batch by the certificate writer (1 when creations do not overlap)."
    );
    describe_gauge!(
        CERTIFICATE_WRITER_QUEUED,
        "Certificate creations waiting for the certificate writer's next batch."
    );
    describe_histogram!(
        DB_QUERY_DURATION_SECONDS,
        Unit::Seconds,
        "Time from holding a pooled connection to the query's result, by statement and outcome."
    );
    describe_histogram!(DB_POOL_WAIT_SECONDS, Unit::Seconds, "Time a query waited for a pooled PostgreSQL connection.");
    describe_counter!(
        DB_QUERIES_REFUSED_TOTAL,
        "Queries answered as unavailable without reaching PostgreSQL, by reason (backlog, actor_gone, pool)."
    );
    describe_gauge!(DB_POOL_SIZE, "Connections currently open in the PostgreSQL pool.");
    describe_gauge!(DB_POOL_AVAILABLE, "Open connections idle in the PostgreSQL pool.");
    describe_gauge!(DB_POOL_WAITING, "Callers waiting for a PostgreSQL connection.");
    describe_gauge!(DB_POOL_MAX, "Maximum size of the PostgreSQL pool (CERTCTL_DATABASE_MAX_CONNS).");
    describe_counter!(DB_POOL_PRUNED_TOTAL, "Idle PostgreSQL connections closed after CERTCTL_DATABASE_IDLE_TIMEOUT.");
    describe_gauge!(ACTOR_BACKLOG, "Messages sent to an actor that it has not started yet.");
    describe_gauge!(ACTOR_INFLIGHT, "Messages an actor is processing right now.");
    describe_counter!(ACTOR_RESTARTS_TOTAL, "Restarts of a supervised actor.");
    describe_counter!(HEARTBEATS_RECEIVED_TOTAL, "Agent heartbeats by result (accepted, full: buffer full, 503).");
    describe_counter!(HEARTBEAT_ROWS_FLUSHED_TOTAL, "Agent rows updated by the heartbeat aggregator's flushes.");
    describe_histogram!(
        HEARTBEAT_FLUSH_DURATION_SECONDS,
        Unit::Seconds,
        "Duration of one heartbeat flush statement (one UPDATE for a batch of agents)."
    );
    describe_counter!(HEARTBEAT_FLUSH_FAILURES_TOTAL, "Heartbeat flushes that failed; their beats are retried.");
    describe_gauge!(HEARTBEAT_BUFFER_SIZE, "Agents with a heartbeat waiting for the next flush.");
    describe_counter!(
        ETAG_REQUESTS_TOTAL,
        "List requests by endpoint and ETag result (hit: 304 without a query, miss: 200, bypass: no ETag)."
    );
    describe_histogram!(
        ETAG_NOTIFICATION_LAG_SECONDS,
        Unit::Seconds,
        "Delay from a change's statement to its notification reaching this replica."
    );
    describe_counter!(ETAG_NOTIFICATIONS_TOTAL, "Change notifications received, by table.");
    describe_counter!(ETAG_LISTENER_RECONNECTS_TOTAL, "Reconnections of the change notification listener.");
    describe_gauge!(ETAG_LISTENER_CONNECTED, "1 while the change notification listener is connected.");
    describe_gauge!(AGENT_DIRECTORY_SIZE, "Agents known to this replica's in-memory agent directory.");
    describe_counter!(AUDIT_EVENTS_PURGED_TOTAL, "Audit events deleted after CERTCTL_AUDIT_RETENTION_DAYS.");
    describe_counter!(
        AUDIT_RETENTION_SKIPPED_TOTAL,
        "Audit retention ticks skipped while the previous pass still ran."
    );
}
