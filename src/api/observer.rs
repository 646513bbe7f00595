//! What the HTTP API shows, shared between the agent loop (which writes it) and the server
//! (which reads it): the heartbeat of the loop, readiness facts, connection states, every
//! item's published status with the time it entered its state, and the metrics.

use super::health;
use super::metrics::Metrics;
use crate::keys::{ItemKind, KeyTree};
use crate::scheduler::ItemStatus;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;
use tokio::sync::watch;
use tokio::time::Instant;

/// One item's status as `GET /status` and `nsagent-ctl status --json` show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusRecord {
    /// The item's configuration key.
    pub key: String,
    /// `interface`, `route` or `arp`.
    pub kind: String,
    /// The item's name.
    pub name: String,
    /// `applied`, `pending`, `failed` or `invalid`.
    pub state: String,
    /// Why (empty when applied).
    pub detail: String,
    /// When the item entered this state (RFC 3339, UTC); `None` when unknown.
    pub since: Option<String>,
}

/// A time as RFC 3339 in UTC with milliseconds (`2024-05-01T12:00:00.123Z`).
pub fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

/// A connection's state: set by the agent, or followed from a watch channel.
enum Connection {
    Set(bool),
    Follow(watch::Receiver<bool>),
}

impl Connection {
    fn is_up(&self) -> bool {
        match self {
            Connection::Set(up) => *up,
            Connection::Follow(rx) => *rx.borrow(),
        }
    }
}

struct Published {
    status: ItemStatus,
    since: SystemTime,
}

/// The shared observations (behind an `Arc`).
pub struct Observer {
    keys: KeyTree,
    started: Instant,
    /// Milliseconds from `started` to the last turn of the main loop.
    last_turn_ms: AtomicU64,
    snapshot_applied: AtomicBool,
    etcd: Mutex<Connection>,
    docker: Mutex<Connection>,
    statuses: Mutex<BTreeMap<(ItemKind, String), Published>>,
    metrics: Metrics,
}

impl Observer {
    /// Observations of the agent of `keys`, alive from now on.
    pub fn new(keys: KeyTree) -> Self {
        Observer {
            keys,
            started: Instant::now(),
            last_turn_ms: AtomicU64::new(0),
            snapshot_applied: AtomicBool::new(false),
            etcd: Mutex::new(Connection::Set(false)),
            docker: Mutex::new(Connection::Set(false)),
            statuses: Mutex::new(BTreeMap::new()),
            metrics: Metrics::new(),
        }
    }

    /// The metrics, to count into.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The main loop turned.
    pub fn turned(&self) {
        let ms = self
            .started
            .elapsed()
            .as_millis()
            .try_into()
            .unwrap_or(u64::MAX);
        self.last_turn_ms.store(ms, Ordering::Relaxed);
    }

    /// The first etcd snapshot is in the kernel.
    pub fn set_snapshot_applied(&self) {
        self.snapshot_applied.store(true, Ordering::Relaxed);
    }

    /// Sets whether etcd is connected (ignored once [`Self::follow_etcd`] was called).
    pub fn set_etcd_connected(&self, up: bool) {
        let mut etcd = self.etcd.lock().unwrap();
        if matches!(*etcd, Connection::Set(_)) {
            *etcd = Connection::Set(up);
        }
    }

    /// Follows etcd's connection state from a watch channel from now on.
    pub fn follow_etcd(&self, rx: watch::Receiver<bool>) {
        *self.etcd.lock().unwrap() = Connection::Follow(rx);
    }

    /// Follows Docker's connection state from a watch channel from now on.
    pub fn follow_docker(&self, rx: watch::Receiver<bool>) {
        *self.docker.lock().unwrap() = Connection::Follow(rx);
    }

    fn etcd_connected(&self) -> bool {
        self.etcd.lock().unwrap().is_up()
    }

    fn docker_connected(&self) -> bool {
        self.docker.lock().unwrap().is_up()
    }

    /// `Ok` while the main loop turns; otherwise why not.
    pub fn liveness(&self) -> Result<(), String> {
        let last = std::time::Duration::from_millis(self.last_turn_ms.load(Ordering::Relaxed));
        health::liveness(self.started.elapsed().saturating_sub(last))
    }

    /// `Ok` once the first etcd snapshot is in the kernel and while etcd is connected;
    /// otherwise why not.
    pub fn readiness(&self) -> Result<(), String> {
        health::readiness(
            self.snapshot_applied.load(Ordering::Relaxed),
            self.etcd_connected(),
        )
    }

    /// The published status of an item changed (`None`: the item is gone). The time it
    /// entered its state is kept while only the detail changes.
    pub fn set_status(&self, kind: ItemKind, name: &str, status: Option<&ItemStatus>) {
        let mut statuses = self.statuses.lock().unwrap();
        let id = (kind, name.to_string());
        let old_state = statuses.get(&id).map(|p| p.status.state());
        let new_state = status.map(ItemStatus::state);
        self.metrics.item_moved(kind, old_state, new_state);
        match status {
            None => {
                statuses.remove(&id);
            }
            Some(status) => {
                let since = match statuses.get(&id) {
                    Some(p) if Some(p.status.state()) == new_state => p.since,
                    _ => SystemTime::now(),
                };
                let status = status.clone();
                statuses.insert(id, Published { status, since });
            }
        }
    }

    /// Forgets the statuses of items of `kind` that are not in `names`.
    pub fn retain(&self, kind: ItemKind, names: &BTreeSet<String>) {
        let gone: Vec<String> = {
            let statuses = self.statuses.lock().unwrap();
            statuses
                .keys()
                .filter(|(k, n)| *k == kind && !names.contains(n))
                .map(|(_, n)| n.clone())
                .collect()
        };
        for name in gone {
            self.set_status(kind, &name, None);
        }
    }

    fn record(&self, (kind, name): &(ItemKind, String), p: &Published) -> StatusRecord {
        StatusRecord {
            key: self.keys.key(*kind, name),
            kind: kind.segment().to_string(),
            name: name.clone(),
            state: p.status.state().to_string(),
            detail: p.status.detail().to_string(),
            since: Some(rfc3339(p.since)),
        }
    }

    /// Every item's status, sorted by kind and name; only those in `state` when given.
    pub fn statuses(&self, state: Option<&str>) -> Vec<StatusRecord> {
        let statuses = self.statuses.lock().unwrap();
        statuses
            .iter()
            .filter(|(_, p)| state.is_none_or(|s| p.status.state() == s))
            .map(|(id, p)| self.record(id, p))
            .collect()
    }

    /// One item's status.
    pub fn status(&self, kind: ItemKind, name: &str) -> Option<StatusRecord> {
        let id = (kind, name.to_string());
        let statuses = self.statuses.lock().unwrap();
        statuses.get(&id).map(|p| self.record(&id, p))
    }

    /// The metrics text.
    pub fn render_metrics(&self) -> String {
        self.metrics
            .render(self.etcd_connected(), self.docker_connected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(reason: &str) -> ItemStatus {
        ItemStatus::Pending {
            reason: reason.into(),
        }
    }

    #[test]
    fn since_is_kept_while_only_the_detail_changes() {
        let o = Observer::new(KeyTree::new("vpp1"));
        o.set_status(ItemKind::Interface, "a", Some(&pending("x")));
        let first = o.status(ItemKind::Interface, "a").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        o.set_status(ItemKind::Interface, "a", Some(&pending("y")));
        let second = o.status(ItemKind::Interface, "a").unwrap();
        assert_eq!(second.detail, "y");
        assert_eq!(first.since, second.since);
        o.set_status(ItemKind::Interface, "a", Some(&ItemStatus::Applied));
        let third = o.status(ItemKind::Interface, "a").unwrap();
        assert_ne!(third.since, second.since);
        assert_eq!(third.key, "/vnf-agent/vpp1/linux/config/v1/interface/a");
        assert_eq!(
            (third.kind.as_str(), third.state.as_str()),
            ("interface", "applied")
        );
    }

    #[test]
    fn filter_retain_and_remove() {
        let o = Observer::new(KeyTree::new("vpp1"));
        o.set_status(ItemKind::Interface, "a", Some(&ItemStatus::Applied));
        o.set_status(ItemKind::Interface, "b", Some(&pending("p")));
        o.set_status(ItemKind::Route, "r", Some(&pending("p")));
        let names = |v: Vec<StatusRecord>| v.into_iter().map(|r| r.name).collect::<Vec<_>>();
        assert_eq!(names(o.statuses(Some("pending"))), ["b", "r"]);
        o.retain(ItemKind::Interface, &BTreeSet::from(["a".to_string()]));
        assert_eq!(names(o.statuses(None)), ["a", "r"]);
        o.set_status(ItemKind::Route, "r", None);
        assert_eq!(names(o.statuses(None)), ["a"]);
        assert!(o
            .render_metrics()
            .contains("nsagent_items{kind=\"interface\",state=\"applied\"} 1"));
    }

    #[test]
    fn readiness_and_liveness() {
        let o = Observer::new(KeyTree::new("vpp1"));
        o.turned();
        assert!(o.liveness().is_ok());
        assert_eq!(o.readiness().unwrap_err(), "etcd is not connected");
        o.set_etcd_connected(true);
        assert!(o.readiness().is_err());
        o.set_snapshot_applied();
        assert!(o.readiness().is_ok());
        let (tx, rx) = watch::channel(true);
        o.follow_etcd(rx);
        assert!(o.readiness().is_ok());
        tx.send_replace(false);
        assert!(o.readiness().is_err());
        o.set_etcd_connected(true);
        assert!(o.readiness().is_err(), "the watch channel wins");
    }
}
