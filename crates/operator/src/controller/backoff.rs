//! Per-object exponential backoff with jitter for transient errors (kube-runtime leaves this to us).
//!
//! Pure: the jitter is passed in, so tests are exact; [`Backoffs::next`] draws it at random.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

/// Backoff parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// Delay after the first failure (before jitter).
    pub base: Duration,
    /// Longest delay.
    pub cap: Duration,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        BackoffPolicy {
            base: Duration::from_millis(500),
            cap: Duration::from_secs(300),
        }
    }
}

impl BackoffPolicy {
    /// Delay after the `attempt`-th consecutive failure (1-based), with `jitter` in `[0, 1)`:
    /// "equal jitter" — half the exponential delay fixed, the other half scaled by `jitter` — so retries of
    /// many objects failing together spread out, while each delay still grows.
    pub fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        let exp = attempt.saturating_sub(1).min(30);
        let raw = self.base.saturating_mul(1u32 << exp);
        let capped = raw.min(self.cap);
        let jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let half = capped / 2;
        half + half.mul_f64(jitter)
    }
}

/// Consecutive-failure counters per object key.
#[derive(Debug)]
pub struct Backoffs<K> {
    policy: BackoffPolicy,
    attempts: HashMap<K, u32>,
}

impl<K: Eq + Hash + Clone> Backoffs<K> {
    /// Empty counters with the given policy.
    pub fn new(policy: BackoffPolicy) -> Self {
        Backoffs {
            policy,
            attempts: HashMap::new(),
        }
    }

    /// Count a failure of `key` and return the delay before its retry, with the given jitter in `[0, 1)`.
    pub fn next_with_jitter(&mut self, key: &K, jitter: f64) -> Duration {
        let attempts = self.attempts.entry(key.clone()).or_insert(0);
        *attempts = attempts.saturating_add(1);
        self.policy.delay(*attempts, jitter)
    }

    /// Count a failure of `key` and return the delay before its retry, with random jitter.
    pub fn next(&mut self, key: &K) -> Duration {
        let jitter: f64 = rand::random();
        self.next_with_jitter(key, jitter)
    }

    /// Forget the failures of `key` (after a success).
    pub fn reset(&mut self, key: &K) {
        self.attempts.remove(key);
    }

    /// Consecutive failures recorded for `key`.
    pub fn attempts(&self, key: &K) -> u32 {
        self.attempts.get(key).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> BackoffPolicy {
        BackoffPolicy {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(60),
        }
    }

    #[test]
    fn grows_exponentially_and_caps() {
        let p = policy();
        let d: Vec<_> = (1..=8).map(|a| p.delay(a, 1.0)).collect();
        assert_eq!(
            d,
            [1, 2, 4, 8, 16, 32, 60, 60]
                .map(Duration::from_secs)
                .to_vec(),
            "full jitter factor gives the whole exponential delay"
        );
        assert_eq!(p.delay(1000, 1.0), Duration::from_secs(60));
    }

    #[test]
    fn jitter_keeps_at_least_half() {
        let p = policy();
        assert_eq!(p.delay(3, 0.0), Duration::from_secs(2));
        assert_eq!(p.delay(3, 0.5), Duration::from_secs(3));
        // Out-of-range jitter is clamped, NaN treated as zero.
        assert_eq!(p.delay(3, 7.0), Duration::from_secs(4));
        assert_eq!(p.delay(3, f64::NAN), Duration::from_secs(2));
    }

    #[test]
    fn counts_per_key_and_resets_on_success() {
        let mut b = Backoffs::new(policy());
        assert_eq!(b.next_with_jitter(&"a", 1.0), Duration::from_secs(1));
        assert_eq!(b.next_with_jitter(&"a", 1.0), Duration::from_secs(2));
        assert_eq!(
            b.next_with_jitter(&"b", 1.0),
            Duration::from_secs(1),
            "keys are independent"
        );
        assert_eq!(b.next_with_jitter(&"a", 1.0), Duration::from_secs(4));
        b.reset(&"a");
        assert_eq!(b.attempts(&"a"), 0);
        assert_eq!(b.next_with_jitter(&"a", 1.0), Duration::from_secs(1));
        assert_eq!(b.attempts(&"b"), 1);
    }

    #[test]
    fn random_jitter_stays_in_bounds() {
        let mut b = Backoffs::new(policy());
        for _ in 0..4 {
            b.next(&1);
        }
        let d = b.next(&1);
        assert!(
            d >= Duration::from_secs(8) && d <= Duration::from_secs(16),
            "{d:?}"
        );
    }
}
