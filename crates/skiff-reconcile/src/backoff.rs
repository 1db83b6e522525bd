//! Per-key retry delays after failed reconciles: client-go's
//! `ItemExponentialFailureRateLimiter` (base doubling per consecutive failure, capped),
//! plus jitter so keys that failed together (an API server restart) do not retry together.

use std::time::Duration;

/// Exponential backoff parameters. skiff's defaults: 5 ms doubling to 2 minutes with up to
/// 10 % jitter. Upstream caps at 1000 s; one machine recovers from a transient failure in
/// seconds, and a key that keeps failing costs one try every two minutes here, while a user
/// waiting on it is not left for a quarter of an hour.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Delay after the first failure.
    pub base: Duration,
    /// The most any delay grows to (before jitter).
    pub max: Duration,
    /// Extra random delay as a fraction of the delay (0.1 = up to 10 % longer). The delay
    /// is never shorter than the exponential step, so tests can rely on lower bounds.
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            base: Duration::from_millis(5),
            max: Duration::from_secs(120),
            jitter: 0.1,
        }
    }
}

impl Backoff {
    /// The delay without jitter after `failures` earlier consecutive failures
    /// (0 → `base`, 1 → 2 × `base`, ..., capped at `max`).
    pub fn step(&self, failures: u32) -> Duration {
        // 2^31 × any base is past every sensible max; the cap keeps the multiply in range.
        let factor = 1u32 << failures.min(31);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// The delay to wait after `failures` earlier failures, with jitter.
    pub fn delay(&self, failures: u32) -> Duration {
        let step = self.step(failures);
        let jitter = self.jitter.clamp(0.0, 1.0) * fastrand::f64();
        step + step.mul_f64(jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_the_base_up_to_the_cap() {
        let b = Backoff::default();
        assert_eq!(b.step(0), Duration::from_millis(5));
        assert_eq!(b.step(1), Duration::from_millis(10));
        assert_eq!(b.step(10), Duration::from_millis(5 * 1024));
        assert_eq!(b.step(20), Duration::from_secs(120));
        assert_eq!(b.step(u32::MAX), Duration::from_secs(120));
    }

    #[test]
    fn jitter_only_lengthens_a_delay_and_by_at_most_its_fraction() {
        let b = Backoff::default();
        for failures in 0..30 {
            let d = b.delay(failures);
            assert!(d >= b.step(failures));
            assert!(d <= b.step(failures).mul_f64(1.1));
        }
    }
}
