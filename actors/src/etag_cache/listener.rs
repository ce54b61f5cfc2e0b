//! The ETag cache actor: owns a dedicated PostgreSQL connection that `LISTEN`s on
//! `certctl_changes` (the V11 statement-level triggers notify it) and bumps the generation of each
//! table a notification names.
//!
//! While the connection is down, [`Generations::listening`] is false and nothing is answered 304:
//! a change made elsewhere would go unseen. After it reconnects it bumps every generation before
//! trusting them again (notifications sent while it was away are lost), so every ETag handed out
//! before is stale. It reconnects with exponential backoff (0.5 s doubling to 30 s).

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures_util::StreamExt;
use tokio_postgres::AsyncMessage;

use super::generations::{Generations, Table};
use crate::db::PgConnector;
use crate::metrics::{
    ACTOR_RESTARTS_TOTAL, ETAG_LISTENER_CONNECTED, ETAG_LISTENER_RECONNECTS_TOTAL, ETAG_NOTIFICATIONS_TOTAL,
    ETAG_NOTIFICATION_LAG_SECONDS,
};

/// The channel the V11 triggers notify.
pub const CHANNEL: &str = "certctl_changes";
/// The listener's `application_name`, so an operator can find (or end) its session.
pub const APPLICATION_NAME: &str = "certctl-etag-listener";

const FIRST_RETRY: Duration = Duration::from_millis(500);
const MAX_RETRY: Duration = Duration::from_secs(30);

/// One notification's payload, parsed: the table and when the statement ran (Unix seconds).
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct Changed(String);

/// See the module docs.
pub struct EtagCache {
    generations: Arc<Generations>,
    config: tokio_postgres::Config,
    tls: PgConnector,
    /// Keeps the session open; dropped when the connection ends.
    client: Option<tokio_postgres::Client>,
    connected_before: bool,
    failures: u32,
    /// Set by [`Shutdown`]: the connection's end is expected, not a fault.
    stopping: bool,
}

impl EtagCache {
    /// The actor for `generations`, connecting with the pool's `config` (its application name
    /// replaced) and TLS settings.
    pub fn new(generations: Arc<Generations>, mut config: tokio_postgres::Config, tls: PgConnector) -> Self {
        config.application_name(APPLICATION_NAME);
        EtagCache { generations, config, tls, client: None, connected_before: false, failures: 0, stopping: false }
    }

    fn connect(&mut self, ctx: &mut Context<Self>) {
        let (config, tls) = (self.config.clone(), self.tls.clone());
        let work = async move {
            let (client, mut connection) = config.connect(tls).await?;
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            // The connection must be polled for the session to make progress; notifications come
            // out of it as messages, which go to the actor. When it ends, so does the stream.
            tokio::spawn(async move {
                let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                while let Some(Ok(message)) = messages.next().await {
                    if let AsyncMessage::Notification(n) = message {
                        if tx.send(Changed(n.payload().to_owned())).is_err() {
                            break;
                        }
                    }
                }
            });
            client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
            Ok::<_, tokio_postgres::Error>((client, rx))
        };
        ctx.spawn(work.into_actor(self).map(|result, act, ctx| match result {
            Ok((client, rx)) => {
                act.client = Some(client);
                act.failures = 0;
                ctx.add_stream(futures_util::stream::unfold(rx, |mut rx| async move {
                    rx.recv().await.map(|message| (message, rx))
                }));
                // Whatever changed while nobody listened: every ETag handed out before is stale.
                act.generations.bump_all();
                act.generations.set_listening(true);
                metrics::gauge!(ETAG_LISTENER_CONNECTED).set(1.0);
                if act.connected_before {
                    metrics::counter!(ETAG_LISTENER_RECONNECTS_TOTAL).increment(1);
                    tracing::info!("change notifications listening again; every list ETag renewed");
                }
                act.connected_before = true;
            }
            Err(e) => {
                act.failures += 1;
                let wait = FIRST_RETRY.saturating_mul(2u32.saturating_pow(act.failures.min(8) - 1)).min(MAX_RETRY);
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "cannot listen for change notifications");
                ctx.run_later(wait, |act, ctx| act.connect(ctx));
            }
        }));
    }
}

impl Actor for EtagCache {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        metrics::gauge!(ETAG_LISTENER_CONNECTED).set(0.0);
        self.connect(ctx);
    }
}

impl Supervised for EtagCache {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        self.generations.set_listening(false);
        self.client = None;
        metrics::counter!(ACTOR_RESTARTS_TOTAL, "actor" => "etag_cache").increment(1);
        tracing::warn!(actor = "etag_cache", "supervised actor restarting");
    }
}

impl StreamHandler<Changed> for EtagCache {
    fn handle(&mut self, Changed(payload): Changed, _ctx: &mut Self::Context) {
        let mut words = payload.split(' ');
        let Some(table) = words.next().and_then(Table::from_name) else { return };
        self.generations.bump(table);
        metrics::counter!(ETAG_NOTIFICATIONS_TOTAL, "table" => table.name()).increment(1);
        if let Some(sent) = words.next().and_then(|t| t.parse::<f64>().ok()) {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            metrics::histogram!(ETAG_NOTIFICATION_LAG_SECONDS).record((now.as_secs_f64() - sent).max(0.0));
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        // The connection ended: stop trusting generations until a new one listens.
        self.generations.set_listening(false);
        self.client = None;
        if self.stopping {
            return;
        }
        metrics::gauge!(ETAG_LISTENER_CONNECTED).set(0.0);
        tracing::warn!("the change notification connection ended; no 304s until it is back");
        self.failures = 1;
        ctx.run_later(FIRST_RETRY, |act, ctx| act.connect(ctx));
    }
}

/// The server is stopping: close the listening session quietly and do not reconnect.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

impl Handler<Shutdown> for EtagCache {
    type Result = ();

    fn handle(&mut self, _msg: Shutdown, _ctx: &mut Self::Context) {
        // Dropping the client ends the session; the actor itself stays (its supervisor would
        // restart a stopped one) but reconnects no more.
        self.stopping = true;
        self.generations.set_listening(false);
        self.client = None;
    }
}
