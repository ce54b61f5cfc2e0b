//! The jittered delay between two ticks: the interval ±`jitter_percent`, so loops with the same
//! cadence (and the same loop on several replicas) do not fire together.

use std::time::Duration;

/// `interval` moved by a random amount within ±`jitter_percent` of it.
pub fn jittered(interval: Duration, jitter_percent: u8) -> Duration {
    let spread = interval.as_secs_f64() * f64::from(jitter_percent.min(100)) / 100.0;
    if spread <= 0.0 {
        return interval;
    }
    let mut bytes = [0u8; 8];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system random source");
    let unit = (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
    Duration::from_secs_f64((interval.as_secs_f64() - spread + 2.0 * spread * unit).max(0.001))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_within_the_jitter_band() {
        let interval = Duration::from_secs(100);
        let delays: Vec<Duration> = (0..1000).map(|_| jittered(interval, 10)).collect();
        assert!(delays.iter().all(|d| *d >= Duration::from_secs(90) && *d <= Duration::from_secs(110)));
        assert!(
            delays.iter().any(|d| *d < Duration::from_secs(97)) && delays.iter().any(|d| *d > Duration::from_secs(103))
        );
        assert_eq!(jittered(interval, 0), interval);
    }
}
