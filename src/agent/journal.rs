//! The operator's journal: one log line per change of an item, status published to etcd,
//! repairs of changes made behind the agent's back, and the resync summary.
//!
//! Statuses are logged and published only when the agent has settled (nothing left to do),
//! so that the passing states of a round ("reading the namespace", "applying") never reach
//! the log or etcd. Invalid values are warnings, failed kernel operations errors; items that
//! a start or resync finds already in place are logged at debug level only.

use crate::keys::{ItemKind, KeyTree};
use crate::scheduler::report::{Change, OpReport};
use crate::scheduler::{ItemStatus, Scheduler};
use crate::status::{Repairs, StatusPublisher};
use crate::tally::Tally;
use std::collections::{BTreeMap, BTreeSet};

/// What the journal remembers between rounds.
pub(super) struct Journal {
    keys: KeyTree,
    status: StatusPublisher,
    /// Status last logged and published, per item.
    logged: BTreeMap<(ItemKind, String), ItemStatus>,
    /// The items applied when the agent last settled whose value has not been written since:
    /// a write for one of them is a repair.
    settled: BTreeSet<(ItemKind, String)>,
    /// Items whose place in `settled` is decided again at the next settle, besides those
    /// whose status changed: their value was written or deleted since.
    recheck: BTreeSet<(ItemKind, String)>,
    /// `settled` is rebuilt from every status at the next settle (after a resync, or a
    /// namespace gone), instead of updated from what changed.
    rebuild: bool,
    /// Repairs of each item in this run.
    repairs: BTreeMap<(ItemKind, String), Repairs>,
    /// Items an operation wrote since the statuses were last logged.
    touched: BTreeSet<(ItemKind, String)>,
    /// Set by a snapshot; cleared by the summary once the kernel matches it.
    resync_revision: Option<i64>,
    tally: Tally,
    /// The agent has been in sync once (its liveness says OK).
    ready: bool,
}

impl Journal {
    pub(super) fn new(keys: KeyTree, status: StatusPublisher) -> Self {
        Journal {
            keys,
            status,
            logged: BTreeMap::new(),
            settled: BTreeSet::new(),
            recheck: BTreeSet::new(),
            rebuild: true,
            repairs: BTreeMap::new(),
            touched: BTreeSet::new(),
            resync_revision: None,
            tally: Tally::default(),
            ready: false,
        }
    }

    /// A snapshot at `revision` replaced the configuration of `names` (per kind).
    pub(super) fn resync(&mut self, revision: i64, names: &BTreeMap<ItemKind, BTreeSet<String>>) {
        for (kind, set) in names {
            self.status.retain(*kind, set.clone());
        }
        self.logged
            .retain(|(kind, name), _| names.get(kind).is_some_and(|s| s.contains(name)));
        self.unsettle_all();
        self.resync_revision = Some(revision);
        self.tally = Tally::default();
    }

    /// An item's value was written.
    pub(super) fn put(&mut self, kind: ItemKind, name: &str) {
        let id = (kind, name.to_string());
        self.settled.remove(&id);
        self.recheck.insert(id);
    }

    /// A namespace went away: what follows for its items is a withdrawal, not a repair.
    pub(super) fn unsettle_all(&mut self) {
        self.settled.clear();
        self.rebuild = true;
    }

    /// An item's key was deleted.
    pub(super) fn delete(&mut self, kind: ItemKind, name: &str) {
        let id = (kind, name.to_string());
        self.settled.remove(&id);
        self.recheck.insert(id.clone());
        self.repairs.remove(&id);
        self.status.set(kind, name, None);
        if self.logged.remove(&id).is_some() {
            tracing::info!(key = self.keys.key(kind, name), "deleted");
        }
    }

    /// One operation succeeded: logs what it did when that is news to the operator (a
    /// repair, an in-place change, the removal of something nothing configures). Returns the
    /// items it repaired, if it was a repair.
    pub(super) fn done(&mut self, report: &OpReport) -> Vec<(ItemKind, String)> {
        self.tally.count(report);
        self.touched.extend(report.items.iter().cloned());
        let repaired: Vec<(ItemKind, String)> = report
            .items
            .iter()
            .filter(|id| self.settled.contains(id))
            .cloned()
            .collect();
        if let Some((kind, name)) = repaired.first() {
            let key = self.keys.key(*kind, name);
            tracing::info!(
                key,
                "repaired: {} (changed behind the agent's back)",
                report.what
            );
            for id in &repaired {
                let r = self.repairs.entry(id.clone()).or_default();
                r.count += 1;
                r.last = report.what.clone();
                self.status.repaired(id.0, &id.1, r.clone());
            }
            return repaired;
        }
        match (report.change, report.items.first()) {
            (Change::Update, Some((kind, name))) => {
                tracing::info!(key = self.keys.key(*kind, name), "{}", report.what)
            }
            (Change::Delete, None) => {
                tracing::info!("{}: no configuration asks for it", report.what)
            }
            _ => tracing::debug!("{}", report.what),
        }
        Vec::new()
    }

    /// The agent has nothing left to do: logs and publishes every status that changed, and
    /// the resync summary when one was pending. Returns the statuses published.
    pub(super) fn settled(
        &mut self,
        scheduler: &mut Scheduler,
    ) -> Vec<((ItemKind, String), ItemStatus)> {
        let mut published = Vec::new();
        let changes = scheduler.take_changes();
        for id in &changes {
            let Some(status) = scheduler.status().get(id) else {
                continue;
            };
            if *status == ItemStatus::Applying || self.logged.get(id) == Some(status) {
                continue;
            }
            self.log(id, status, self.logged.contains_key(id));
            self.status.set(id.0, &id.1, Some(status.clone()));
            self.logged.insert(id.clone(), status.clone());
            published.push((id.clone(), status.clone()));
        }
        self.update_settled(scheduler, changes);
        self.touched.clear();
        self.report_resync();
        if !self.ready {
            self.ready = true;
            self.status.ready();
        }
        published
    }

    /// Makes `settled` the items applied now. Only the items whose status changed or whose
    /// value was written can differ from the last settle, so only those are looked at (a
    /// settle after one pair must not cost a walk over thousands of items).
    fn update_settled(&mut self, scheduler: &Scheduler, changes: Vec<(ItemKind, String)>) {
        let statuses = scheduler.status();
        let applied = |id: &(ItemKind, String)| statuses.get(id) == Some(&ItemStatus::Applied);
        let recheck = std::mem::take(&mut self.recheck);
        if std::mem::take(&mut self.rebuild) {
            self.settled = statuses
                .iter()
                .filter(|(_, s)| **s == ItemStatus::Applied)
                .map(|(id, _)| id.clone())
                .collect();
            return;
        }
        for id in changes.into_iter().chain(recheck) {
            if applied(&id) {
                self.settled.insert(id);
            } else {
                self.settled.remove(&id);
            }
        }
    }

    fn log(&self, id: &(ItemKind, String), status: &ItemStatus, known: bool) {
        let key = self.keys.key(id.0, &id.1);
        match status {
            // Found in place at start: nothing changed for the operator.
            ItemStatus::Applied if !known && !self.touched.contains(id) => {
                tracing::debug!(key, "applied (already in place)")
            }
            ItemStatus::Applied => tracing::info!(key, "applied"),
            ItemStatus::Applying => {}
            ItemStatus::Pending { reason } => tracing::info!(key, "pending: {reason}"),
            ItemStatus::Failed { error } => tracing::error!(key, "failed, will retry: {error}"),
            ItemStatus::Invalid { error } => tracing::warn!(key, "invalid: {error}"),
        }
    }

    fn report_resync(&mut self) {
        if let Some(revision) = self.resync_revision.take() {
            let t = std::mem::take(&mut self.tally);
            tracing::info!(
                revision,
                created = t.created,
                updated = t.updated,
                deleted = t.deleted,
                "in sync with etcd snapshot ({} created/updated/deleted)",
                t.detail()
            );
        }
    }

    /// Revokes the agent's lease: its statuses and liveness record vanish.
    pub(super) async fn shutdown(&self) {
        self.status.shutdown().await;
    }
}
