//! Exponential backoff with full jitter.
//!
//! When Kinesis throttles a shard, every submission on it failed at the same
//! moment; retrying them after the same delay would throttle them again
//! together. Full jitter (a delay drawn uniformly from zero to the
//! exponential ceiling) spreads the retries out, which is what AWS recommends
//! for throttled clients.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// Exponential backoff ceilings from `base` doubling up to `max`, with full jitter.
pub struct Backoff {
    base: Duration,
    max: Duration,
}

impl Backoff {
    /// A backoff from `base` up to `max` (a `max` below `base` is taken as `base`).
    pub fn new(base: Duration, max: Duration) -> Self {
        Backoff {
            base,
            max: max.max(base),
        }
    }

    /// The largest delay before retry number `attempt` (1 for the first
    /// retry): `min(max, base * 2^(attempt-1))`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// A delay drawn uniformly from `0..=ceiling(attempt)`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt).as_micros();
        let ceiling = u64::try_from(ceiling).unwrap_or(u64::MAX);
        Duration::from_micros(fastrand::u64(0..=ceiling))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_doubles_from_base_and_stops_at_max() {
        let b = Backoff::new(Duration::from_millis(50), Duration::from_millis(2_000));
        let ceilings: Vec<u128> = (1..=8).map(|a| b.ceiling(a).as_millis()).collect();
        assert_eq!(ceilings, [50, 100, 200, 400, 800, 1600, 2000, 2000]);
        assert_eq!(
            b.ceiling(200),
            Duration::from_millis(2_000),
            "no overflow on huge attempts"
        );
    }

    #[test]
    fn delays_are_jittered_within_the_ceiling() {
        let b = Backoff::new(Duration::from_millis(50), Duration::from_millis(2_000));
        let delays: Vec<Duration> = (0..200).map(|_| b.delay(3)).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_millis(200)));
        let distinct: std::collections::HashSet<_> = delays.iter().collect();
        assert!(
            distinct.len() > 100,
            "full jitter spreads delays: {} distinct",
            distinct.len()
        );
    }
}
