//! How long a copy waits before SQS delivers it (`DelaySeconds`).
//!
//! A copy exists only because an invocation could not publish the whole
//! submission: Kinesis throttled, failed or answered slowly, or the
//! submission is larger than one invocation publishes. Sent back with no
//! delay, a throttled submission's copy comes straight back onto the shard
//! that is still saturated, together with every other copy, and each hop
//! costs an invocation. So copy number `hop` waits up to
//! `min(max, base · 2^(hop−1))` seconds, with equal jitter: a delay drawn
//! uniformly from the upper half of that ceiling, so that copies throttled
//! together come back spread out, and each copy still waits at least half
//! as long as its ceiling says. The first copies wait seconds (a shard's
//! limits are per second); a submission that keeps needing copies soon
//! costs one invocation per few minutes instead of one per poll.

/// The largest `DelaySeconds` SQS accepts (15 minutes).
pub const MAX_DELAY_SECONDS: u32 = 900;

/// The delay curve of copies: `RESUME_BASE_DELAY_SECONDS` doubling up to
/// `RESUME_MAX_DELAY_SECONDS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyDelay {
    base: u32,
    max: u32,
}

impl CopyDelay {
    /// From `base` seconds doubling up to `max` (taken as at least `base`,
    /// and at most [`MAX_DELAY_SECONDS`]). A `base` of 0 sends every copy
    /// without delay.
    pub fn new(base: u32, max: u32) -> Self {
        let max = max.max(base).min(MAX_DELAY_SECONDS);
        CopyDelay {
            base: base.min(max),
            max,
        }
    }

    /// The longest wait of copy number `hop` (1 for the first copy):
    /// `min(max, base · 2^(hop−1))` seconds.
    pub fn ceiling(&self, hop: u32) -> u32 {
        let factor = 1u32.checked_shl(hop.saturating_sub(1)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// A wait drawn uniformly from the upper half of the ceiling:
    /// `ceil(ceiling / 2) ..= ceiling` seconds.
    pub fn draw(&self, hop: u32) -> u32 {
        let ceiling = self.ceiling(hop);
        fastrand::u32(ceiling.div_ceil(2)..=ceiling)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ceiling_doubles_per_copy_up_to_the_maximum() {
        let delay = CopyDelay::new(1, 900);
        let ceilings: Vec<u32> = (1..=12).map(|hop| delay.ceiling(hop)).collect();
        assert_eq!(ceilings, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900]);
        assert_eq!(delay.ceiling(u32::MAX), 900);
        assert_eq!(CopyDelay::new(0, 900).ceiling(7), 0);
        assert_eq!(CopyDelay::new(5, 60).ceiling(5), 60);
        assert_eq!(CopyDelay::new(1, 10_000).ceiling(20), MAX_DELAY_SECONDS);
    }

    #[test]
    fn a_drawn_delay_lies_in_the_upper_half_of_its_ceiling() {
        let delay = CopyDelay::new(3, 900);
        for hop in 1..=12 {
            let ceiling = delay.ceiling(hop);
            let drawn: Vec<u32> = (0..200).map(|_| delay.draw(hop)).collect();
            assert!(
                drawn
                    .iter()
                    .all(|d| (ceiling.div_ceil(2)..=ceiling).contains(d)),
                "hop {hop}: {drawn:?}"
            );
            if ceiling >= 8 {
                assert!(drawn.iter().any(|&d| d != ceiling), "jittered");
            }
        }
        assert_eq!(CopyDelay::new(0, 900).draw(3), 0);
    }
}
