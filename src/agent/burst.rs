//! When a burst of configuration changes has been gathered. Keys written in many
//! transactions back to back (etcd's `--max-txn-ops` is 128 by default) arrive as many
//! watch responses a few milliseconds apart; planning on the first would make a small round
//! that the rest has to wait for. A large burst is therefore gathered until etcd has been
//! quiet for a moment, so that it makes one round; a small change is planned at once. Pure:
//! the times are passed in.

use std::time::Duration;
use tokio::time::Instant;

/// When and how long a burst is gathered.
#[derive(Clone, Copy, Debug)]
pub(super) struct Burst {
    /// Changes from which a burst is gathered until etcd is quiet.
    pub changes: usize,
    /// The quiet that ends a burst.
    pub gap: Duration,
    /// The longest a burst is gathered.
    pub limit: Duration,
    /// Batches taken at most in one go.
    pub max_batches: usize,
}

impl Burst {
    /// The agent's: from 64 changes, until `quiet` passes without one, at most 1 s.
    pub(super) fn agent(quiet: Duration) -> Burst {
        Burst {
            changes: 64,
            gap: quiet,
            limit: Duration::from_secs(1),
            max_batches: 100_000,
        }
    }
}

/// What has arrived of a burst so far, and when etcd was last heard. The quiet that ends a
/// burst counts only while the agent listens: batches that arrive while it folds others wait
/// unseen until it listens again.
#[derive(Debug)]
pub(super) struct Gathering {
    burst: Burst,
    started: Instant,
    /// The last batch's arrival, or when listening last resumed if later.
    heard: Instant,
    changes: usize,
    batches: usize,
    /// A quiet as long as the gap was heard.
    quiet: bool,
}

impl Gathering {
    /// Starts with a first batch of `changes` that arrived at `now`.
    pub(super) fn start(burst: Burst, changes: usize, now: Instant) -> Self {
        Gathering {
            burst,
            started: now,
            heard: now,
            changes,
            batches: 1,
            quiet: false,
        }
    }

    /// Counts a batch of `changes` that arrived at `now`.
    pub(super) fn arrived(&mut self, changes: usize, now: Instant) {
        self.changes += changes;
        self.batches += 1;
        self.heard = now;
    }

    /// The agent listens again from `now`.
    pub(super) fn listening(&mut self, now: Instant) {
        self.heard = self.heard.max(now);
    }

    /// The agent stops listening at `now`: a quiet as long as the gap may have been heard.
    pub(super) fn deaf(&mut self, now: Instant) {
        self.quiet |= now >= self.heard + self.burst.gap;
    }

    /// True once more than one batch arrived: etcd is sending a burst in several
    /// transactions, and the time between them can be put to use.
    pub(super) fn arrives_in_parts(&self) -> bool {
        self.batches > 1
    }

    /// True while another batch may be taken in this go.
    pub(super) fn has_room(&self) -> bool {
        self.batches < self.burst.max_batches
    }

    /// True while planning waits for more: a burst whose quiet has not been heard, and that
    /// is not over its limit at `now`.
    pub(super) fn goes_on(&self, now: Instant) -> bool {
        self.changes >= self.burst.changes
            && self.has_room()
            && !self.quiet
            && now < self.started + self.burst.limit
    }

    /// When listening from now on, the burst ends unless more arrives: the quiet after what
    /// was last heard, the limit at the latest.
    pub(super) fn ends_at(&self) -> Instant {
        (self.heard + self.burst.gap).min(self.started + self.burst.limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEST: Burst = Burst {
        changes: 10,
        gap: Duration::from_millis(10),
        limit: Duration::from_secs(1),
        max_batches: 5,
    };

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_small_change_is_planned_at_once() {
        let t0 = Instant::now();
        let mut g = Gathering::start(TEST, 3, t0);
        assert!(!g.goes_on(t0));
        g.arrived(2, t0);
        assert!(!g.goes_on(t0), "still below the burst size");
    }

    #[test]
    fn a_burst_goes_on_until_a_quiet_is_heard() {
        let t0 = Instant::now();
        let mut g = Gathering::start(TEST, TEST.changes, t0);
        assert!(g.goes_on(t0));
        assert_eq!(g.ends_at(), t0 + TEST.gap);
        g.arrived(1, t0 + ms(8));
        assert_eq!(
            g.ends_at(),
            t0 + ms(18),
            "the quiet counts from the last batch"
        );
        g.deaf(t0 + ms(12));
        assert!(g.goes_on(t0 + ms(12)), "not quiet for long enough");
        g.listening(t0 + ms(30));
        assert!(
            g.goes_on(t0 + ms(30)),
            "a stretch spent deaf is not a quiet heard"
        );
        assert_eq!(g.ends_at(), t0 + ms(40));
        g.deaf(t0 + ms(40));
        assert!(
            !g.goes_on(t0 + ms(40)),
            "a quiet as long as the gap was heard"
        );
    }

    #[test]
    fn a_burst_arrives_in_parts_from_its_second_batch() {
        let t0 = Instant::now();
        let mut g = Gathering::start(TEST, 2 * TEST.changes, t0);
        assert!(!g.arrives_in_parts(), "one large transaction");
        g.arrived(1, t0 + ms(3));
        assert!(g.arrives_in_parts());
    }

    #[test]
    fn a_burst_that_goes_on_ends_at_the_limit() {
        let t0 = Instant::now();
        let mut g = Gathering::start(
            Burst {
                max_batches: 1000,
                ..TEST
            },
            TEST.changes,
            t0,
        );
        for i in 1..=200 {
            g.arrived(1, t0 + ms(5 * i));
        }
        assert_eq!(g.ends_at(), t0 + TEST.limit);
        assert!(g.goes_on(t0 + TEST.limit - ms(1)));
        assert!(!g.goes_on(t0 + TEST.limit));
    }

    #[test]
    fn a_burst_ends_at_its_batch_cap() {
        let t0 = Instant::now();
        let mut g = Gathering::start(TEST, TEST.changes, t0);
        for _ in 1..TEST.max_batches {
            assert!(g.has_room());
            g.arrived(1, t0);
        }
        assert!(!g.has_room());
        assert!(!g.goes_on(t0));
    }
}
