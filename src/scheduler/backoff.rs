//! Exponential retry delays, computed from the attempt count (no clock reads).

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
    let shift = attempts.saturating_sub(1).min(16);
    INITIAL.saturating_mul(1u32 << shift).min(MAX)
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
