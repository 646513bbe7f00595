//! Exponential retry delays, one helper for every retry loop: the scheduler's per-item
//! [`Backoff`] (time passed in, no clock reads) and the [`Retry`] of the async loops that
//! reconnect to etcd or Docker, publish statuses or resubscribe to kernel events.

use std::time::Duration;

/// First retry delay.
pub const INITIAL: Duration = Duration::from_millis(100);
/// Longest retry delay.
pub const MAX: Duration = Duration::from_secs(30);

/// A failed subject waiting for its next attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Failures in a row.
    pub attempts: u32,
    /// Do not retry before this time (scheduler time, since agent start).
    pub retry_at: Duration,
    /// The last error.
    pub error: String,
}

impl Backoff {
    /// The backoff after one more failure at `now`, following `previous` (if any).
    pub fn after_failure(previous: Option<&Backoff>, error: String, now: Duration) -> Backoff {
        let attempts = previous.map_or(0, |b| b.attempts) + 1;
        Backoff {
            attempts,
            retry_at: now + delay(attempts),
            error,
        }
    }

    /// True while the subject must wait.
    pub fn waiting(&self, now: Duration) -> bool {
        now < self.retry_at
    }
}

/// Delay before retry number `attempts` (1-based): 100 ms, 200 ms, 400 ms, ... capped at 30 s.
pub fn delay(attempts: u32) -> Duration {
    doubling(INITIAL, MAX, attempts)
}

/// `first` doubled `attempts - 1` times (1-based), capped at `max`.
fn doubling(first: Duration, max: Duration, attempts: u32) -> Duration {
    let shift = attempts.saturating_sub(1).min(16);
    first.saturating_mul(1u32 << shift).min(max)
}

/// The delays of a retry loop: `first`, doubled after every failure up to `max`, back to
/// `first` after a success.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retry {
    first: Duration,
    max: Duration,
    failures: u32,
}

impl Retry {
    /// Delays from `first` doubling up to `max`.
    pub fn new(first: Duration, max: Duration) -> Self {
        Retry {
            first,
            max,
            failures: 0,
        }
    }

    /// The delay before the next attempt after one more failure.
    pub fn failed(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        doubling(self.first, self.max, self.failures)
    }

    /// The delay the next failure would give, without counting one.
    pub fn current(&self) -> Duration {
        doubling(self.first, self.max, self.failures.max(1))
    }

    /// An attempt succeeded: the next failure waits `first` again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Failures in a row.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_and_cap() {
        assert_eq!(delay(1), Duration::from_millis(100));
        assert_eq!(delay(2), Duration::from_millis(200));
        assert_eq!(delay(4), Duration::from_millis(800));
        assert_eq!(delay(100), MAX);
    }

    #[test]
    fn retry_loops_double_cap_and_reset() {
        let mut r = Retry::new(Duration::from_millis(100), Duration::from_secs(5));
        assert_eq!(r.current(), Duration::from_millis(100));
        let delays: Vec<Duration> = (0..8).map(|_| r.failed()).collect();
        assert_eq!(delays[0], Duration::from_millis(100));
        assert_eq!(delays[1], Duration::from_millis(200));
        assert_eq!(delays[5], Duration::from_millis(3200));
        assert_eq!(delays[6], Duration::from_secs(5));
        assert_eq!(r.failures(), 8);
        r.reset();
        assert_eq!(r.failed(), Duration::from_millis(100));
    }

    #[test]
    fn attempts_accumulate() {
        let now = Duration::from_secs(5);
        let b1 = Backoff::after_failure(None, "e".into(), now);
        assert_eq!(b1.attempts, 1);
        assert!(b1.waiting(now));
        assert!(!b1.waiting(now + INITIAL));
        let b2 = Backoff::after_failure(Some(&b1), "e".into(), now);
        assert_eq!(b2.attempts, 2);
        assert_eq!(b2.retry_at, now + Duration::from_millis(200));
    }
}
