//! Apply latency: the time from receiving an item's etcd event until the item is applied.

use crate::keys::ItemKind;
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

/// The receive times of item values that are not applied yet.
#[derive(Debug, Default)]
pub struct ApplyLatency {
    received: HashMap<(ItemKind, String), Instant>,
}

impl ApplyLatency {
    /// Notes that a value of the item arrived at `at` (a newer value replaces an older one).
    pub fn received(&mut self, id: (ItemKind, String), at: Instant) {
        self.received.insert(id, at);
    }

    /// Forgets the item (deleted).
    pub fn forget(&mut self, id: &(ItemKind, String)) {
        self.received.remove(id);
    }

    /// The item was applied at `at`: its latency, if a value of it was waiting.
    pub fn applied(&mut self, id: &(ItemKind, String), at: Instant) -> Option<Duration> {
        let received = self.received.remove(id)?;
        Some(at.saturating_duration_since(received))
    }

    /// The agent has nothing left to do: the latencies of the items that are applied (a new
    /// value that needed no kernel change leaves the status as it was, so it is not seen as a
    /// change). Items not applied keep waiting.
    pub fn settled(
        &mut self,
        mut is_applied: impl FnMut(&(ItemKind, String)) -> bool,
        at: Instant,
    ) -> Vec<Duration> {
        let mut latencies = Vec::new();
        self.received.retain(|id, received| {
            if is_applied(id) {
                latencies.push(at.saturating_duration_since(*received));
                false
            } else {
                true
            }
        });
        latencies
    }

    /// Number of values waiting to be applied.
    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.received.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(name: &str) -> (ItemKind, String) {
        (ItemKind::Interface, name.to_string())
    }

    #[test]
    fn latency_runs_from_the_latest_value_to_applied() {
        let t0 = Instant::now();
        let mut l = ApplyLatency::default();
        l.received(id("a"), t0);
        l.received(id("a"), t0 + Duration::from_millis(5));
        assert_eq!(
            l.applied(&id("a"), t0 + Duration::from_millis(12)),
            Some(Duration::from_millis(7))
        );
        assert_eq!(l.applied(&id("a"), t0 + Duration::from_millis(20)), None);
        l.received(id("b"), t0);
        l.forget(&id("b"));
        assert_eq!(l.waiting(), 0);
    }

    #[test]
    fn settling_takes_applied_items_and_keeps_pending_ones() {
        let t0 = Instant::now();
        let mut l = ApplyLatency::default();
        l.received(id("applied"), t0);
        l.received(id("pending"), t0);
        let got = l.settled(|i| i.1 == "applied", t0 + Duration::from_millis(3));
        assert_eq!(got, vec![Duration::from_millis(3)]);
        assert_eq!(l.waiting(), 1);
    }
}
