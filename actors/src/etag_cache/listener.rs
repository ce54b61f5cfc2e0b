//! The ETag cache actor: owns a dedicated PostgreSQL connection that `LISTEN`s on
//! `certctl_changes` (the V11 statement-level triggers notify it) and bumps the generation of each
//! table a notification names.
//!
//! While the connection is down, [`Generations::listening`] is false and nothing is answered 304:
//! a change made elsewhere would go unseen. After it reconnects it bumps every generation before
//! trusting them again (notifications sent while it was away are lost), so every ETag handed out
//! before is stale. It reconnects with exponential backoff (0.5 s doubling to 30 s).
//!
//! A session can also die silently (a NAT or firewall dropping an idle connection) or never
//! deliver (a transaction-mode pooler). So the actor proves delivery: every [`PROBE_INTERVAL`] it
//! notifies its own channel with a probe and expects the echo within [`PROBE_TIMEOUT`]; it trusts
//! generations only after the first echo, and a missing one counts as a lost connection. TCP
//! keepalives are also tightened on its session, and a connection attempt that gets no answer
//! within [`CONNECT_TIMEOUT`] is given up and retried.

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
/// How often delivery is proved with a probe notification.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(5);
/// How long a probe's echo may take before the session counts as lost.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long connecting and `LISTEN` may take. A path that went silent can accept the TCP
/// connection yet never answer the start-up; without a limit that attempt would wait forever.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The payload prefix of probes (never a table name).
const PROBE: &str = "probe";

/// What a session's stream yields, tagged with the session's number: a notification's payload
/// (`<table> <unix time>` or a probe), or the session's end.
#[derive(Debug, Message)]
#[rtype(result = "()")]
enum Event {
    Notice(u64, String),
    Ended(u64),
}

/// See the module docs.
pub struct EtagCache {
    /// The per-table counters it bumps on notifications, and whose `listening` flag it keeps honest.
    generations: Arc<Generations>,
    /// The pool's connection settings, under the listener's own name, for each reconnection.
    config: tokio_postgres::Config,
    /// The pool's TLS settings, so the listening session is secured like every other one.
    tls: PgConnector,
    /// Keeps the session open; dropped when the connection ends.
    client: Option<Arc<tokio_postgres::Client>>,
    /// Whether a session was ever trusted, so a later first echo counts (and logs) as a reconnection.
    connected_before: bool,
    /// Connection failures since the last success; sets the backoff before the next attempt.
    failures: u32,
    /// The probe sent and not yet echoed: its number and when it was sent.
    probe: Option<(u64, std::time::Instant)>,
    /// Probes sent so far; numbers the next one, so a late echo of an older probe is not mistaken for it.
    probes_sent: u64,
    /// Number of the current session; events of earlier ones are ignored.
    session: u64,
    /// Set by [`Shutdown`]: the connection's end is expected, not a fault.
    stopping: bool,
}

impl EtagCache {
    /// The actor for `generations`, connecting with the pool's `config` (its application name
    /// replaced) and TLS settings.
    pub fn new(generations: Arc<Generations>, mut config: tokio_postgres::Config, tls: PgConnector) -> Self {
        config.application_name(APPLICATION_NAME);
        // Notice a dead session in under a minute rather than after the OS default of two hours.
        config
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30))
            .keepalives_interval(Duration::from_secs(10))
            .keepalives_retries(3);
        EtagCache {
            generations,
            config,
            tls,
            client: None,
            connected_before: false,
            failures: 0,
            probe: None,
            probes_sent: 0,
            session: 0,
            stopping: false,
        }
    }

    fn connect(&mut self, ctx: &mut Context<Self>) {
        if self.stopping {
            return;
        }
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
                        if tx.send(n.payload().to_owned()).is_err() {
                            break;
                        }
                    }
                }
            });
            client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
            Ok::<_, tokio_postgres::Error>((client, rx))
        };
        let work = async move {
            match tokio::time::timeout(CONNECT_TIMEOUT, work).await {
                Ok(result) => result.map_err(|e| e.to_string()),
                Err(_) => Err(format!("no answer within {} s", CONNECT_TIMEOUT.as_secs())),
            }
        };
        ctx.spawn(work.into_actor(self).map(|result, act, ctx| match result {
            Ok(_) if act.stopping => {}
            Ok((client, rx)) => {
                act.client = Some(Arc::new(client));
                act.failures = 0;
                act.session += 1;
                let session = act.session;
                let notices = futures_util::stream::unfold(rx, |mut rx| async move {
                    rx.recv().await.map(|payload| (payload, rx))
                });
                ctx.add_stream(
                    notices
                        .map(move |payload| Event::Notice(session, payload))
                        .chain(futures_util::stream::once(async move { Event::Ended(session) })),
                );
                // Trusted only once a probe comes back through this session (see `echoed`).
                act.send_probe(ctx);
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

impl EtagCache {
    /// Notifies our own channel; the echo proves notifications are delivered.
    fn send_probe(&mut self, ctx: &mut Context<Self>) {
        let Some(client) = self.client.clone() else { return };
        self.probes_sent += 1;
        let number = self.probes_sent;
        self.probe = Some((number, std::time::Instant::now()));
        // Every replica hears every probe: the process epoch makes ours recognisable.
        let payload = format!("{PROBE} {:x}:{number}", self.generations.epoch());
        ctx.spawn(
            async move { client.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload]).await }
                .into_actor(self)
                .map(|result, _act, _ctx| {
                    if let Err(e) = result {
                        // The session is broken; the missing echo will show it.
                        tracing::debug!(error = %e, "sending a change listener probe failed");
                    }
                }),
        );
    }

    /// A probe came back: the session delivers. The first echo after connecting makes the
    /// generations trusted again.
    fn echoed(&mut self, number: u64) {
        if self.probe.is_none_or(|(expected, _)| expected != number) {
            return;
        }
        self.probe = None;
        if !self.generations.listening() && !self.stopping {
            // Whatever changed while nobody listened: every ETag handed out before is stale.
            self.generations.bump_all();
            self.generations.set_listening(true);
            metrics::gauge!(ETAG_LISTENER_CONNECTED).set(1.0);
            if self.connected_before {
                metrics::counter!(ETAG_LISTENER_RECONNECTS_TOTAL).increment(1);
                tracing::info!("change notifications listening again; every list ETag renewed");
            }
            self.connected_before = true;
        }
    }

    /// Every probe interval: a probe unanswered for too long means a lost session.
    fn check(&mut self, ctx: &mut Context<Self>) {
        if self.stopping || self.client.is_none() {
            return;
        }
        match self.probe {
            Some((_, sent)) if sent.elapsed() > PROBE_TIMEOUT => {
                tracing::warn!("a change notification probe did not come back; reconnecting");
                self.lost(ctx);
            }
            Some(_) => {}
            None => self.send_probe(ctx),
        }
    }

    /// The session is gone or useless: stop trusting generations and connect again.
    fn lost(&mut self, ctx: &mut Context<Self>) {
        self.generations.set_listening(false);
        metrics::gauge!(ETAG_LISTENER_CONNECTED).set(0.0);
        // Dropping the client ends the session; its stream's end is then ignored (the session
        // number moves on).
        self.client = None;
        self.session += 1;
        self.probe = None;
        if self.stopping {
            return;
        }
        self.failures = self.failures.max(1);
        ctx.run_later(FIRST_RETRY, |act, ctx| act.connect(ctx));
    }
}

impl Actor for EtagCache {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        metrics::gauge!(ETAG_LISTENER_CONNECTED).set(0.0);
        self.connect(ctx);
        ctx.run_interval(PROBE_INTERVAL, |act, ctx| act.check(ctx));
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

impl StreamHandler<Event> for EtagCache {
    fn handle(&mut self, event: Event, ctx: &mut Self::Context) {
        let payload = match event {
            Event::Notice(session, payload) if session == self.session => payload,
            Event::Ended(session) if session == self.session => {
                if !self.stopping {
                    tracing::warn!("the change notification connection ended; no 304s until it is back");
                }
                self.lost(ctx);
                return;
            }
            // An earlier session's leftovers.
            _ => return,
        };
        let mut words = payload.split(' ');
        let first = words.next().unwrap_or("");
        if first == PROBE {
            let ours = format!("{:x}", self.generations.epoch());
            let number = words.next().and_then(|t| t.split_once(':')).filter(|(epoch, _)| *epoch == ours);
            if let Some(number) = number.and_then(|(_, n)| n.parse().ok()) {
                self.echoed(number);
            }
            return;
        }
        let Some(table) = Table::from_name(first) else { return };
        self.generations.bump(table);
        metrics::counter!(ETAG_NOTIFICATIONS_TOTAL, "table" => table.name()).increment(1);
        if let Some(sent) = words.next().and_then(|t| t.parse::<f64>().ok()) {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            metrics::histogram!(ETAG_NOTIFICATION_LAG_SECONDS).record((now.as_secs_f64() - sent).max(0.0));
        }
    }

    fn finished(&mut self, _ctx: &mut Self::Context) {
        // Each session's stream ends with its own `Event::Ended`, handled above.
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
        metrics::gauge!(ETAG_LISTENER_CONNECTED).set(0.0);
        self.client = None;
        self.session += 1;
    }
}
