//! Timing of the agent's loops: jittered intervals, and exponential backoff with full jitter after
//! errors (a `Retry-After` from the server wins), so a fleet that failed together does not come
//! back together.

use std::time::Duration;

use rand::Rng;

/// Longest wait after repeated errors.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// `interval` plus or minus 10%, at random.
pub fn jittered(interval: Duration) -> Duration {
    let spread = interval.as_secs_f64() * 0.1;
    Duration::from_secs_f64((interval.as_secs_f64() + rand::rng().random_range(-spread..=spread)).max(0.05))
}

/// The wait after the `failures`-th error in a row: a random point in `[base/2, base·2^n]`
/// capped at five minutes, or the server's `Retry-After` when it gave one.
pub fn after_error(base: Duration, failures: u32, retry_after: Option<Duration>) -> Duration {
    if let Some(wait) = retry_after {
        return wait.min(MAX_BACKOFF);
    }
    let ceiling = base.saturating_mul(2u32.saturating_pow(failures.min(16))).min(MAX_BACKOFF);
    let floor = (base / 2).min(ceiling);
    Duration::from_secs_f64(rand::rng().random_range(floor.as_secs_f64()..=ceiling.as_secs_f64()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_honours_retry_after() {
        let base = Duration::from_secs(1);
        for _ in 0..100 {
            assert!(after_error(base, 1, None) <= Duration::from_secs(2));
            assert!(after_error(base, 30, None) <= MAX_BACKOFF);
            assert!(after_error(base, 3, None) >= Duration::from_millis(500));
        }
        assert_eq!(after_error(base, 5, Some(Duration::from_secs(7))), Duration::from_secs(7));
        let j = jittered(Duration::from_secs(10));
        assert!(j >= Duration::from_secs(9) && j <= Duration::from_secs(11));
    }
}
