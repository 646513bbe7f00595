//! Gathering a burst of configuration changes before planning. Keys written in many
//! transactions back to back (etcd's `--max-txn-ops` is 128 by default) arrive as many
//! watch responses a few milliseconds apart; planning on the first would make a small round
//! that the rest has to wait for. A large burst is therefore gathered until etcd has been
//! quiet for a moment, so that it makes one round; a small change is planned at once.

use crate::store::StoreEvents;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;
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
    /// The agent's: from 64 changes, until 10 ms pass without one, at most 1 s.
    pub(super) const AGENT: Burst = Burst {
        changes: 64,
        gap: Duration::from_millis(10),
        limit: Duration::from_secs(1),
        max_batches: 100_000,
    };

    /// Hands `first` and every batch `rx` holds to `fold`; when they add up to a burst,
    /// also those that follow until the quiet or the limit. True when `fold` returned true
    /// for any batch.
    pub(super) async fn gather(
        &self,
        first: StoreEvents,
        rx: &mut UnboundedReceiver<StoreEvents>,
        mut fold: impl FnMut(StoreEvents) -> bool,
    ) -> bool {
        let started = Instant::now();
        let (mut changes, mut batches) = (first.len(), 1);
        let mut any = fold(first);
        let mut take = |events: StoreEvents, changes: &mut usize, batches: &mut usize| {
            *changes += events.len();
            *batches += 1;
            any |= fold(events);
        };
        loop {
            while batches < self.max_batches {
                let Ok(events) = rx.try_recv() else {
                    break;
                };
                take(events, &mut changes, &mut batches);
            }
            if changes < self.changes
                || batches >= self.max_batches
                || started.elapsed() >= self.limit
            {
                break;
            }
            match tokio::time::timeout(self.gap, rx.recv()).await {
                Ok(Some(events)) => take(events, &mut changes, &mut batches),
                _ => break,
            }
        }
        any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{KeyValue, StoreEvent};
    use tokio::sync::mpsc;

    fn batch(n: usize) -> StoreEvents {
        (0..n)
            .map(|i| {
                StoreEvent::Put(KeyValue {
                    key: format!("k{i}"),
                    value: Vec::new(),
                    mod_revision: 1,
                })
            })
            .collect()
    }

    const TEST: Burst = Burst {
        changes: 10,
        gap: Duration::from_millis(500),
        limit: Duration::from_secs(30),
        max_batches: 1000,
    };

    #[tokio::test]
    async fn a_small_change_is_taken_at_once_with_what_is_queued() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        tx.send(batch(2)).unwrap();
        let started = Instant::now();
        let mut seen = Vec::new();
        TEST.gather(batch(1), &mut rx, |b| {
            seen.push(b.len());
            false
        })
        .await;
        assert_eq!(seen, [1, 2]);
        assert!(started.elapsed() < TEST.gap, "no wait below the burst size");
    }

    #[tokio::test]
    async fn a_burst_takes_what_follows_until_etcd_is_quiet() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let sender = tokio::spawn(async move {
            for n in [3, 4] {
                tokio::time::sleep(Duration::from_millis(50)).await;
                tx.send(batch(n)).unwrap();
            }
            // Kept open, so that only the quiet ends the burst.
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(tx);
        });
        let mut seen = Vec::new();
        let folded = TEST
            .gather(batch(TEST.changes), &mut rx, |b| {
                seen.push(b.len());
                b.len() == 3
            })
            .await;
        assert_eq!(seen, [TEST.changes, 3, 4]);
        assert!(folded, "true when any fold was");
        sender.abort();
    }

    #[tokio::test]
    async fn a_burst_that_goes_on_ends_at_the_limit() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let sender = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(5)).await;
                if tx.send(batch(1)).is_err() {
                    return;
                }
            }
        });
        let burst = Burst {
            limit: Duration::from_millis(200),
            ..TEST
        };
        let started = Instant::now();
        let mut batches = 0;
        burst
            .gather(batch(TEST.changes), &mut rx, |_| {
                batches += 1;
                false
            })
            .await;
        assert!(started.elapsed() >= burst.limit);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "ended by the limit"
        );
        assert!(batches > 1);
        sender.abort();
    }
}
