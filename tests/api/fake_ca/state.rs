//! What a fake remembers, across stops and restarts: its [`State`] (the behaviour and what is
//! left of its counts, the orders, the counters, the tokens, the revocations and the request
//! log), and the [`Order`]s in it. A status poll moves orders on here: the behaviour's faults
//! first, in their order, then "not issued yet" as often as the behaviour says, then issued
//! (signed now) or rejected. The vendors' files turn what this answers into their wire formats.

use std::collections::HashSet;
use std::time::Instant;

use serde_json::Value;

use super::signing::{self, Authority, Leaf, Subject};
use super::Behaviour;

/// Everything a fake remembers.
pub(super) struct State {
    pub(super) behaviour: Behaviour,
    /// Oldest first.
    pub(super) orders: Vec<Order>,
    next_number: u64,
    pub(super) submissions: usize,
    pub(super) status_polls: usize,
    pub(super) token_renewals: usize,
    /// When Vault's token was created or last renewed.
    pub(super) token_since: Instant,
    /// GlobalSign's logins that got a token, and the tokens still valid.
    pub(super) logins: usize,
    pub(super) tokens: HashSet<String>,
    /// step-ca: the `jti`s of the tokens it accepted (each is good once), their claims, and why
    /// refused ones were refused.
    pub(super) used_token_ids: HashSet<String>,
    pub(super) accepted_tokens: Vec<Value>,
    pub(super) token_errors: Vec<String>,
    pub(super) revocations: Vec<(String, String)>,
    pub(super) requests: Vec<(String, String, String)>,
}

/// An order (DigiCert, Sectigo) or a signed certificate (Vault).
pub(super) struct Order {
    /// DigiCert's order id, Sectigo's sslId.
    pub(super) id: u64,
    /// DigiCert's certificate id (not the order id, so mixing them up fails).
    pub(super) certificate_id: u64,
    /// DigiCert's request id.
    pub(super) request_id: u64,
    /// The certificate's serial, chosen when the order comes in (GlobalSign's id for it).
    pub(super) serial: Vec<u8>,
    pub(super) common_name: String,
    pub(super) names: Vec<String>,
    /// The names and key usages the leaf carries instead of the CSR's (GlobalSign).
    pub(super) subject: Option<Subject>,
    pub(super) csr_pem: String,
    pub(super) comments: String,
    pub(super) validity_secs: u64,
    /// RFC 3339.
    pub(super) created: String,
    /// When the status last changed, Unix seconds.
    pub(super) updated_at: i64,
    /// "Not issued yet" answers given so far.
    pub(super) pending_answers: u32,
    pub(super) status: OrderStatus,
    /// The reason given when it was revoked (`updated_at` says when).
    pub(super) revocation_reason: String,
}

pub(super) enum OrderStatus {
    Pending,
    Issued(Leaf),
    Rejected,
    Revoked(Leaf),
}

impl Order {
    /// The certificate, once issued (revoked ones included).
    pub(super) fn leaf(&self) -> Option<&Leaf> {
        match &self.status {
            OrderStatus::Issued(leaf) | OrderStatus::Revoked(leaf) => Some(leaf),
            OrderStatus::Pending | OrderStatus::Rejected => None,
        }
    }
}

/// An order as it comes in, before the fake numbers it.
pub(super) struct NewOrder {
    pub(super) common_name: String,
    pub(super) names: Vec<String>,
    pub(super) subject: Option<Subject>,
    pub(super) csr_pem: String,
    pub(super) comments: String,
    pub(super) validity_secs: u64,
    pub(super) status: OrderStatus,
}

/// What a status poll answers instead of the order.
pub(super) enum PollFault {
    Drop,
    ServerError,
    RateLimited { retry_after_secs: u64 },
}

/// What a status poll of every pending order at once (Entrust's certificate events) did.
pub(super) enum Sweep {
    Fault(PollFault),
    /// Signing a leaf failed (a bug in the fake, answered as a 500).
    Failed(String),
    /// Every pending order moved on.
    Done,
}

/// What a status poll answers.
pub(super) enum Poll<'a> {
    Fault(PollFault),
    Unknown,
    /// Signing the leaf failed (a bug in the fake, answered as a 500).
    Failed(String),
    Order(&'a Order),
}

impl State {
    pub(super) fn new(behaviour: Behaviour) -> State {
        State {
            behaviour,
            orders: Vec::new(),
            next_number: 1,
            submissions: 0,
            status_polls: 0,
            token_renewals: 0,
            token_since: Instant::now(),
            logins: 0,
            tokens: HashSet::new(),
            used_token_ids: HashSet::new(),
            accepted_tokens: Vec::new(),
            token_errors: Vec::new(),
            revocations: Vec::new(),
            requests: Vec::new(),
        }
    }

    /// Records a new order (the caller counts the submission).
    pub(super) fn add_order(&mut self, new: NewOrder) -> &Order {
        let number = self.next_number;
        self.next_number += 1;
        self.orders.push(Order {
            id: 100_000 + number,
            certificate_id: 700_000 + number,
            request_id: 300_000 + number,
            serial: match &new.status {
                OrderStatus::Issued(leaf) | OrderStatus::Revoked(leaf) => leaf.serial.clone(),
                OrderStatus::Pending | OrderStatus::Rejected => signing::random_serial(),
            },
            common_name: new.common_name,
            names: new.names,
            subject: new.subject,
            csr_pem: new.csr_pem,
            comments: new.comments,
            validity_secs: new.validity_secs,
            created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            updated_at: chrono::Utc::now().timestamp(),
            pending_answers: 0,
            status: new.status,
            revocation_reason: String::new(),
        });
        &self.orders[self.orders.len() - 1]
    }

    pub(super) fn order_index(&self, id: &str) -> Option<usize> {
        let id: u64 = id.parse().ok()?;
        self.orders.iter().position(|o| o.id == id)
    }

    /// A status poll of order `id` (DigiCert's order id, Sectigo's sslId): see [`State::poll_at`].
    pub(super) fn poll(&mut self, id: &str, authority: &Authority) -> Poll<'_> {
        let index = self.order_index(id);
        self.poll_at(index, authority)
    }

    /// A status poll of the order at `index` (`None`: an unknown one): counted, then the
    /// behaviour's faults in order, then the order, moved on first: "not issued yet" until it has
    /// given `pending_polls` such answers, then issued (signed now) or rejected.
    pub(super) fn poll_at(&mut self, index: Option<usize>, authority: &Authority) -> Poll<'_> {
        self.status_polls += 1;
        if let Some(fault) = self.take_fault() {
            return Poll::Fault(fault);
        }
        let Some(index) = index else {
            return Poll::Unknown;
        };
        match self.move_on(index, authority) {
            Ok(()) => Poll::Order(&self.orders[index]),
            Err(why) => Poll::Failed(why),
        }
    }

    /// A status poll of every order at once (Entrust's certificate events): counted, then the
    /// behaviour's faults in order, then each pending order moved on once as [`State::poll_at`]
    /// moves one.
    pub(super) fn poll_all(&mut self, authority: &Authority) -> Sweep {
        self.status_polls += 1;
        if let Some(fault) = self.take_fault() {
            return Sweep::Fault(fault);
        }
        for index in 0..self.orders.len() {
            if let Err(why) = self.move_on(index, authority) {
                return Sweep::Failed(why);
            }
        }
        Sweep::Done
    }

    /// Moves a pending order on: one more "not issued yet" until it has given `pending_polls`
    /// of them, then issued (signed now) or rejected. Other orders stay as they are.
    fn move_on(&mut self, index: usize, authority: &Authority) -> Result<(), String> {
        let (pending_polls, reject) = (self.behaviour.pending_polls, self.behaviour.reject);
        let order = &mut self.orders[index];
        if matches!(order.status, OrderStatus::Pending) {
            if order.pending_answers < pending_polls {
                order.pending_answers += 1;
            } else if reject {
                order.status = OrderStatus::Rejected;
                order.updated_at = chrono::Utc::now().timestamp();
            } else {
                let leaf =
                    authority.sign(&order.csr_pem, order.validity_secs, &order.serial, order.subject.as_ref())?;
                order.updated_at = leaf.issued_at;
                order.status = OrderStatus::Issued(leaf);
            }
        }
        Ok(())
    }

    pub(super) fn take_fault(&mut self) -> Option<PollFault> {
        let behaviour = &mut self.behaviour;
        if behaviour.dropped_connections > 0 {
            behaviour.dropped_connections -= 1;
            Some(PollFault::Drop)
        } else if behaviour.server_errors > 0 {
            behaviour.server_errors -= 1;
            Some(PollFault::ServerError)
        } else if behaviour.rate_limited_polls > 0 {
            behaviour.rate_limited_polls -= 1;
            Some(PollFault::RateLimited { retry_after_secs: behaviour.retry_after_secs })
        } else {
            None
        }
    }

    /// Marks an issued order revoked and records the revocation.
    pub(super) fn revoke(&mut self, index: usize, what: &str, reason: &str) {
        let order = &mut self.orders[index];
        if let OrderStatus::Issued(leaf) = &order.status {
            order.status = OrderStatus::Revoked(leaf.clone());
            order.updated_at = chrono::Utc::now().timestamp();
            order.revocation_reason = reason.to_string();
        }
        self.revocations.push((what.to_string(), reason.to_string()));
    }
}
