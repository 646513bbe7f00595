//! Taking in etcd changes before planning: a burst is gathered until etcd is quiet (see
//! [`super::burst`]), and while it arrives in several transactions the namespaces its plan
//! will need are resolved and read, so that the plan only has to act.

use super::burst::Gathering;
use super::Agent;
use crate::scheduler::ops::Op;
use crate::store::StoreEvents;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

impl Agent {
    /// Folds `first` and what is queued behind it into the scheduler; a burst also with what
    /// follows until etcd is quiet. True when a batch held the etcd snapshot.
    pub(super) async fn gather(
        &mut self,
        first: StoreEvents,
        rx: &mut UnboundedReceiver<StoreEvents>,
    ) -> bool {
        let mut gathering = Gathering::start(self.burst, first.len(), Instant::now());
        let mut arrived = vec![first];
        let mut snapshot = false;
        loop {
            while gathering.has_room() {
                let Ok(events) = rx.try_recv() else {
                    break;
                };
                take(&mut gathering, &mut arrived, events);
            }
            let fresh = !arrived.is_empty();
            for events in arrived.drain(..) {
                snapshot |= self.on_store_events(events);
            }
            if !gathering.goes_on(Instant::now()) {
                break;
            }
            // A single large transaction leaves only the quiet to read in; reading then
            // would only reorder the round's work.
            let reads = match fresh && self.owning && gathering.arrives_in_parts() {
                true => self.scheduler.reads_ahead(self.now()),
                false => Vec::new(),
            };
            gathering.listening(Instant::now());
            if !reads.is_empty() {
                arrived = self.read_ahead(reads, rx, &mut gathering).await;
                gathering.deaf(Instant::now());
                continue;
            }
            match tokio::time::timeout_at(gathering.ends_at(), rx.recv()).await {
                Ok(Some(events)) => take(&mut gathering, &mut arrived, events),
                _ => break,
            }
        }
        snapshot
    }

    /// Runs `reads` (from [`crate::scheduler::Scheduler::reads_ahead`]) and folds their
    /// outcomes in; returns the batches that arrived meanwhile, unfolded.
    async fn read_ahead(
        &mut self,
        reads: Vec<Op>,
        rx: &mut UnboundedReceiver<StoreEvents>,
        gathering: &mut Gathering,
    ) -> Vec<StoreEvents> {
        tracing::trace!(ops = reads.len(), "reading ahead while changes arrive");
        let mut arrived = Vec::new();
        let outcomes = {
            let run = self.executor.execute(reads.clone());
            tokio::pin!(run);
            loop {
                tokio::select! {
                    outcomes = &mut run => break outcomes,
                    Some(events) = rx.recv(), if gathering.has_room() => {
                        take(gathering, &mut arrived, events);
                    }
                }
            }
        };
        let now = self.now();
        for (op, outcome) in reads.iter().zip(outcomes) {
            self.api.operation_done(op, &outcome, None);
            self.scheduler.complete_ahead(op, outcome, now);
        }
        arrived
    }
}

/// Counts `events` as arrived now and keeps them for folding.
fn take(gathering: &mut Gathering, arrived: &mut Vec<StoreEvents>, events: StoreEvents) {
    gathering.arrived(events.len(), Instant::now());
    arrived.push(events);
}
