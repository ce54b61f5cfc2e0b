//! When the CA poller asks again: the backoff between polls and the poll budget.
//!
//! Polls start `CERTCTL_ASYNC_POLL_INITIAL_INTERVAL` after a submission and triple each time up
//! to `CERTCTL_ASYNC_POLL_MAX_INTERVAL`, each with ±20% jitter so orders placed together spread
//! out; a `Retry-After` from the CA wins over the backoff. The budget (how long one hand-over
//! polls before the job goes back to the scheduler) is resolved as the reference system's guide
//! documents: the issuer's `poll_max_wait_seconds`, then the connector's env, then
//! `CERTCTL_ASYNC_POLL_MAX_WAIT_SECONDS`, then 10 minutes.

use std::time::Duration;

/// The budget when nothing sets one.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(600);
/// Growth of the interval from one poll to the next.
const BACKOFF_FACTOR: f64 = 3.0;
/// Jitter around each interval, as a fraction of it.
const JITTER: f64 = 0.2;

/// The poll budgets set by environment: per connector type and for all of them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PollBudgets {
    /// `CERTCTL_ASYNC_POLL_MAX_WAIT_SECONDS`.
    pub global: Option<Duration>,
    /// `CERTCTL_<TYPE>_POLL_MAX_WAIT_SECONDS` for `digicert`, `sectigo`, `globalsign` (and Entrust's
    /// once its connector exists).
    pub per_type: Vec<(&'static str, Duration)>,
}

impl PollBudgets {
    /// The budget for an issuer of `issuer_type` whose config says `issuer_max_wait`.
    pub fn resolve(&self, issuer_type: &str, issuer_max_wait: Option<Duration>) -> Duration {
        issuer_max_wait
            .or_else(|| self.per_type.iter().find(|(t, _)| *t == issuer_type).map(|(_, d)| *d))
            .or(self.global)
            .unwrap_or(DEFAULT_MAX_WAIT)
    }
}

/// The backoff between polls.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    /// `CERTCTL_ASYNC_POLL_INITIAL_INTERVAL`.
    pub initial: Duration,
    /// `CERTCTL_ASYNC_POLL_MAX_INTERVAL`.
    pub max: Duration,
}

impl Backoff {
    /// The step after `current` (zero: the first), before jitter.
    pub fn next_step(&self, current: Duration) -> Duration {
        if current.is_zero() {
            return self.initial.min(self.max);
        }
        current.mul_f64(BACKOFF_FACTOR).min(self.max)
    }

    /// How long to wait for a step: the step with jitter, or the CA's `Retry-After` when it gave one.
    pub fn wait(&self, step: Duration, retry_after: Option<Duration>) -> Duration {
        if let Some(retry_after) = retry_after {
            return retry_after;
        }
        let mut byte = [0u8; 2];
        // A failing random source only loses the jitter.
        let _ = aws_lc_rs::rand::fill(&mut byte);
        let unit = f64::from(u16::from_le_bytes(byte)) / f64::from(u16::MAX); // 0..=1
        step.mul_f64(1.0 - JITTER + 2.0 * JITTER * unit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_triple_up_to_the_cap() {
        let backoff = Backoff { initial: Duration::from_secs(5), max: Duration::from_secs(300) };
        let mut step = Duration::ZERO;
        let mut seen = Vec::new();
        for _ in 0..6 {
            step = backoff.next_step(step);
            seen.push(step.as_secs());
        }
        assert_eq!(seen, [5, 15, 45, 135, 300, 300]);
    }

    #[test]
    fn jitter_stays_within_twenty_percent_and_retry_after_wins() {
        let backoff = Backoff { initial: Duration::from_secs(5), max: Duration::from_secs(300) };
        for _ in 0..200 {
            let wait = backoff.wait(Duration::from_secs(100), None);
            assert!(wait >= Duration::from_secs(80) && wait <= Duration::from_secs(120), "{wait:?}");
        }
        assert_eq!(backoff.wait(Duration::from_secs(100), Some(Duration::from_secs(7))), Duration::from_secs(7));
    }

    #[test]
    fn the_budget_chain_takes_the_first_that_is_set() {
        let minutes = |m: u64| Duration::from_secs(m * 60);
        let none = PollBudgets::default();
        assert_eq!(none.resolve("digicert", None), DEFAULT_MAX_WAIT);
        let global = PollBudgets { global: Some(minutes(20)), per_type: vec![] };
        assert_eq!(global.resolve("digicert", None), minutes(20));
        let both = PollBudgets { global: Some(minutes(20)), per_type: vec![("digicert", minutes(30))] };
        assert_eq!(both.resolve("digicert", None), minutes(30));
        assert_eq!(both.resolve("sectigo", None), minutes(20), "another type falls back to the global value");
        assert_eq!(both.resolve("digicert", Some(minutes(2))), minutes(2), "the issuer's own setting wins");
        assert_eq!(none.resolve("acme", Some(minutes(2))), minutes(2));
    }

    #[test]
    fn every_combination_of_the_chain_resolves_to_its_first_set_link() {
        let (issuer, per_type, global) = (Duration::from_secs(11), Duration::from_secs(22), Duration::from_secs(33));
        for issuer_type in ["digicert", "sectigo", "entrust", "globalsign"] {
            for mask in 0..8u8 {
                let own = (mask & 1 != 0).then_some(issuer);
                let budgets = PollBudgets {
                    global: (mask & 4 != 0).then_some(global),
                    per_type: if mask & 2 != 0 { vec![(issuer_type, per_type)] } else { vec![] },
                };
                let expected =
                    own.or(budgets.per_type.first().map(|(_, d)| *d)).or(budgets.global).unwrap_or(DEFAULT_MAX_WAIT);
                assert_eq!(budgets.resolve(issuer_type, own), expected, "{issuer_type}, combination {mask:03b}");
                assert_eq!(
                    budgets.resolve("acme", own),
                    own.or(budgets.global).unwrap_or(DEFAULT_MAX_WAIT),
                    "another type skips {issuer_type}'s variable"
                );
            }
        }
    }
}
