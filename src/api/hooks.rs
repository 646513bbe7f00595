//! The agent loop's side of the HTTP API: one call at each point where the loop learns
//! something the API shows, and the answers to the requests that need the loop
//! (`POST /resync`, `GET /graph`).

use super::latency::ApplyLatency;
use super::observer::Observer;
use crate::graph::GraphItem;
use crate::keys::{ItemKind, KeyTree};
use crate::model::ConfigItem;
use crate::scheduler::ops::{Op, OpOutcome};
use crate::scheduler::report::OpReport;
use crate::scheduler::{Item, ItemStatus, Scheduler};
use crate::tally::{self, Tally};
use std::collections::BTreeSet;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

/// What `POST /resync` answers: the counts of the rounds that followed it, or why there
/// were none.
pub type ResyncReply = Result<Tally, String>;

/// A request from the HTTP server to the agent loop.
#[derive(Debug)]
pub enum Command {
    /// Re-read the managed kernel state now, repair differences, and answer with the counts.
    Resync(oneshot::Sender<ResyncReply>),
    /// Answer with every configured item and its current status.
    Graph(oneshot::Sender<Vec<GraphItem>>),
}

/// The agent's handle on the API: updates the shared [`Observer`] and answers [`Command`]s.
pub struct AgentHooks {
    observer: Arc<Observer>,
    keys: KeyTree,
    commands: Option<mpsc::Receiver<Command>>,
    latency: ApplyLatency,
    snapshot_seen: bool,
    resync_waiting: Vec<oneshot::Sender<ResyncReply>>,
    resync_tally: Tally,
}

impl AgentHooks {
    /// Hooks that write to `observer` and take requests from `commands`.
    pub fn new(observer: Arc<Observer>, keys: KeyTree, commands: mpsc::Receiver<Command>) -> Self {
        AgentHooks {
            observer,
            keys,
            commands: Some(commands),
            latency: ApplyLatency::default(),
            snapshot_seen: false,
            resync_waiting: Vec::new(),
            resync_tally: Tally::default(),
        }
    }

    /// The receiver of requests, for the loop's `select!` (once; later calls give a closed
    /// channel).
    pub fn take_commands(&mut self) -> mpsc::Receiver<Command> {
        self.commands.take().unwrap_or_else(|| mpsc::channel(1).1)
    }

    /// A sender for the Docker tracker's connection state.
    pub fn docker_connection(&self) -> watch::Sender<bool> {
        let (tx, rx) = watch::channel(false);
        self.observer.follow_docker(rx);
        tx
    }

    /// Sets whether etcd is connected. Until the etcd watcher reports its connection state,
    /// the agent calls this with `true` for every snapshot it receives.
    pub fn set_etcd_connected(&self, up: bool) {
        self.observer.set_etcd_connected(up);
    }

    /// Follows etcd's connection state from the watcher's channel from now on (then the
    /// snapshots no longer set it).
    pub fn follow_etcd(&self, connected: watch::Receiver<bool>) {
        self.observer.follow_etcd(connected);
    }

    /// The main loop turned (liveness).
    pub fn turned(&self) {
        self.observer.turned();
    }

    /// A snapshot of the configuration arrived from etcd (a resync follows).
    pub fn etcd_snapshot(&mut self) {
        self.snapshot_seen = true;
        self.set_etcd_connected(true);
        self.observer.metrics().resync();
    }

    /// The periodic re-read of the managed kernel state is starting.
    pub fn kernel_resync(&self) {
        self.observer.metrics().resync();
    }

    /// A kernel object of `kind` was found changed behind the agent's back and is repaired.
    pub fn kernel_repair(&self, kind: ItemKind) {
        self.observer.metrics().kernel_repair(kind);
    }

    /// A value was written to `key` (received now).
    pub fn received(&mut self, key: &str) {
        if let Some(id) = self.keys.parse(key) {
            self.latency.received(id, Instant::now());
        }
    }

    /// An item was deleted.
    pub fn removed(&mut self, kind: ItemKind, name: &str) {
        self.latency.forget(&(kind, name.to_string()));
        self.observer.set_status(kind, name, None);
    }

    /// After a snapshot: forgets the statuses of items of `kind` that are not in `names`.
    pub fn retain(&self, kind: ItemKind, names: &BTreeSet<String>) {
        self.observer.retain(kind, names);
    }

    /// An item's published status changed.
    pub fn status_changed(&mut self, kind: ItemKind, name: &str, status: &ItemStatus) {
        self.observer.set_status(kind, name, Some(status));
        if *status == ItemStatus::Applied {
            let id = (kind, name.to_string());
            if let Some(latency) = self.latency.applied(&id, Instant::now()) {
                self.observer.metrics().apply_latency(latency);
            }
        }
    }

    /// An operation finished (`report` describes it when it writes something).
    pub fn operation_done(&mut self, op: &Op, outcome: &OpOutcome, report: Option<&OpReport>) {
        let metrics = self.observer.metrics();
        metrics.operation(tally::op_name(op), tally::outcome_name(outcome));
        if let (false, Some(report)) = (self.resync_waiting.is_empty(), report) {
            if tally::succeeded(outcome) {
                self.resync_tally.count(report);
            }
        }
    }

    /// A plan came out empty: everything that can be done is done. Marks the first snapshot
    /// as applied, records the latency of values that left applied items applied, and answers
    /// waiting `POST /resync` requests.
    pub fn settled(&mut self, scheduler: &Scheduler) {
        if self.snapshot_seen {
            self.observer.set_snapshot_applied();
        }
        let statuses = scheduler.status();
        let applied = |id: &(ItemKind, String)| statuses.get(id) == Some(&ItemStatus::Applied);
        for latency in self.latency.settled(applied, Instant::now()) {
            self.observer.metrics().apply_latency(latency);
        }
        let tally = std::mem::take(&mut self.resync_tally);
        for reply in self.resync_waiting.drain(..) {
            let _ = reply.send(Ok(tally));
        }
    }

    /// Answers a request from the HTTP server.
    pub fn answer(&mut self, command: Command, scheduler: &mut Scheduler) {
        match command {
            Command::Graph(reply) => {
                let _ = reply.send(graph_items(scheduler));
            }
            Command::Resync(reply) if !self.snapshot_seen => {
                let _ = reply.send(Err(
                    "no etcd snapshot yet: the agent has not read its configuration".to_string(),
                ));
            }
            Command::Resync(reply) => {
                tracing::info!("re-reading the managed kernel state (POST /resync)");
                if self.resync_waiting.is_empty() {
                    self.resync_tally = Tally::default();
                }
                self.resync_waiting.push(reply);
                self.observer.metrics().resync();
                scheduler.refresh_kernel_views();
            }
        }
    }
}

/// Every configured item with its current status, for the graph.
fn graph_items(scheduler: &Scheduler) -> Vec<GraphItem> {
    let statuses = scheduler.status();
    let item = |kind: ItemKind, name: &str, config: Option<ConfigItem>| {
        let status = statuses.get(&(kind, name.to_string()));
        GraphItem {
            kind,
            name: name.to_string(),
            config,
            state: status.map(|s| s.state().to_string()),
            detail: status.map(|s| s.detail().to_string()).unwrap_or_default(),
        }
    };
    let interfaces = scheduler.items().values().map(|i: &Item| {
        let config = i.config.clone().ok().map(ConfigItem::Interface);
        item(ItemKind::Interface, i.name(), config)
    });
    let routes = scheduler.routes().values().map(|r| {
        let config = r.config.clone().ok().map(ConfigItem::Route);
        item(ItemKind::Route, r.name(), config)
    });
    let arps = scheduler.arps().values().map(|a| {
        let config = a.config.clone().ok().map(ConfigItem::Arp);
        item(ItemKind::Arp, a.name(), config)
    });
    interfaces.chain(routes).chain(arps).collect()
}
