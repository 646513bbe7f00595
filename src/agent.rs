//! The agent main loop: feeds etcd events and namespace facts into the scheduler, runs its
//! plans through the executor, and reports every item's status in the log.

use crate::config::AgentConfig;
use crate::keys::{ItemKind, KeyTree};
use crate::microservice::{self, Change, Registry, TrackerEvent};
use crate::model::{self, ArpEntry, ConfigItem, NamespaceRef, Route};
use crate::netlink::Executor;
use crate::scheduler::{Item, ItemStatus, Scheduler};
use crate::status::StatusPublisher;
use crate::store::{self, KeyValue, StoreEvent};
use crate::tally::Tally;
use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How often namespaces are read again where a route or entry waits for a link the agent
/// does not own (there is no event for a link appearing in another program's namespace).
const LINK_WAIT_CHECK: Duration = Duration::from_secs(1);
/// Rounds of plan-and-execute in one go before new events are looked at again.
const MAX_ROUNDS: usize = 64;
/// Events folded into the scheduler before it plans again.
const MAX_DRAIN: usize = 100_000;

/// The names of some items.
fn names<T>(items: &[Item<T>]) -> std::collections::BTreeSet<String> {
    items.iter().map(|i| i.name().to_string()).collect()
}

/// A decoded value of one of the three kinds.
enum Decoded {
    Interface(Item),
    Route(Item<Route>),
    Arp(Item<ArpEntry>),
}

/// The running agent.
pub struct Agent {
    keys: KeyTree,
    scheduler: Scheduler,
    executor: Executor,
    status: StatusPublisher,
    started: Instant,
    /// Status last written to the log, per item.
    logged: BTreeMap<(ItemKind, String), ItemStatus>,
    /// Set by a snapshot; cleared by the report once the kernel matches it.
    resync_revision: Option<i64>,
    /// Counts of the operations that succeeded since the last report.
    tally: Tally,
    /// The HTTP API's view of the loop.
    api: crate::api::AgentHooks,
    _api_server: Option<crate::api::Server>,
}

impl Agent {
    /// Creates the agent (opens the executor's netlink socket of the default namespace).
    pub async fn new(config: &AgentConfig) -> anyhow::Result<Self> {
        let keys = KeyTree::new(&config.label);
        let executor = Executor::new(keys.clone(), config.link_group).await?;
        let mut scheduler = Scheduler::new(keys.clone());
        scheduler.set_route_protocol(config.route_protocol);
        let (api, _api_server) = crate::api::start(config.http_listen, &keys).await?;
        Ok(Agent {
            scheduler,
            status: StatusPublisher::spawn(config.etcd_endpoints.clone(), keys.clone()),
            keys,
            executor,
            started: Instant::now(),
            logged: BTreeMap::new(),
            resync_revision: None,
            tally: Tally::default(),
            api,
            _api_server,
        })
    }

    fn now(&self) -> Duration {
        self.started.elapsed()
    }

    /// Runs until `shutdown` completes. The kernel is left as it is on exit.
    pub async fn run(
        mut self,
        config: AgentConfig,
        shutdown: impl Future<Output = ()>,
    ) -> anyhow::Result<()> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let watcher = tokio::spawn(store::watch(
            config.etcd_endpoints.clone(),
            self.keys.config_prefix(),
            tx,
        ));
        let (docker_tx, mut docker_rx) = mpsc::unbounded_channel();
        let docker_host = config.docker_host.clone();
        let docker_up = self.api.docker_connection();
        let tracker = tokio::spawn(async move {
            if let Err(e) = microservice::track_reporting(docker_host, docker_tx, docker_up).await {
                tracing::error!("microservice references cannot work: {e}");
            }
        });
        let mut microservices = Registry::new();
        tokio::pin!(shutdown);
        let mut vanish = crate::netns::VanishWatch::new();
        let mut refs_seen = u64::MAX;
        let mut ns_check = tokio::time::interval(config.namespace_check_interval);
        ns_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut commands = self.api.take_commands();
        // Also turns an idle loop every second, which keeps the liveness heartbeat fresh.
        let mut link_waits = tokio::time::interval(LINK_WAIT_CHECK);
        link_waits.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let resync_every = config
            .kernel_resync_interval
            .unwrap_or(Duration::from_secs(3600));
        let mut kernel_resync =
            tokio::time::interval_at(Instant::now() + resync_every, resync_every);
        kernel_resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut synced = false;
        tracing::info!(
            label = self.keys.label(),
            endpoints = ?config.etcd_endpoints,
            link_group = config.link_group,
            "nsagent started; watching {}",
            self.keys.config_prefix()
        );
        loop {
            self.api.turned();
            let deadline = self
                .scheduler
                .next_deadline(self.now())
                .map(|d| self.started + d)
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                _ = &mut shutdown => break,
                event = rx.recv() => {
                    let Some(event) = event else {
                        anyhow::bail!("the etcd watcher stopped");
                    };
                    synced |= matches!(event, StoreEvent::Snapshot { .. });
                    self.on_store_event(event);
                    for _ in 0..MAX_DRAIN {
                        match rx.try_recv() {
                            Ok(event) => {
                                synced |= matches!(event, StoreEvent::Snapshot { .. });
                                self.on_store_event(event);
                            }
                            Err(_) => break,
                        }
                    }
                }
                Some(event) = docker_rx.recv() => {
                    let mut events = vec![event];
                    while let Ok(event) = docker_rx.try_recv() {
                        events.push(event);
                    }
                    let mut changes = Vec::new();
                    for event in events {
                        if matches!(event, TrackerEvent::Snapshot(_)) {
                            self.scheduler.set_microservices_known();
                        }
                        changes.extend(microservices.apply(event));
                    }
                    for change in changes {
                        self.on_microservice(change);
                    }
                }
                _ = ns_check.tick() => self.check_namespaces(),
                _ = vanish.changed() => self.check_namespaces(),
                _ = link_waits.tick() => self.scheduler.refresh_waiting_links(),
                _ = kernel_resync.tick(), if config.kernel_resync_interval.is_some() => {
                    tracing::debug!("re-reading the managed kernel state");
                    self.api.kernel_resync();
                    self.scheduler.refresh_kernel_views();
                }
                Some(command) = commands.recv() => self.api.answer(command, &mut self.scheduler),
                _ = tokio::time::sleep_until(deadline) => {}
            }
            if !synced {
                continue;
            }
            for _ in 0..MAX_ROUNDS {
                if !self.round().await {
                    break;
                }
                // Fold in what arrived meanwhile before planning again.
                while let Ok(event) = rx.try_recv() {
                    self.on_store_event(event);
                }
            }
            if let Some(sources) = self.executor.vanish_sources(&mut refs_seen) {
                vanish.track(sources);
            }
        }
        watcher.abort();
        tracker.abort();
        tracing::info!("nsagent stopped; kernel state left as it is");
        Ok(())
    }

    /// One plan-and-execute round; false when there was nothing to do.
    async fn round(&mut self) -> bool {
        self.api.turned();
        let started = Instant::now();
        let plan = self.scheduler.plan(self.now());
        tracing::debug!(ops = plan.len(), elapsed = ?started.elapsed(), "planned");
        self.log_status();
        if plan.is_empty() {
            self.api.settled(&self.scheduler);
            self.report_resync();
            return false;
        }
        tracing::debug!(ops = plan.len(), "applying");
        for phase in plan.phases {
            let started = Instant::now();
            let outcomes = self.executor.execute(phase.clone()).await;
            tracing::debug!(ops = phase.len(), elapsed = ?started.elapsed(), "phase done");
            let now = self.now();
            for (op, outcome) in phase.iter().zip(outcomes) {
                self.tally.count(op, &outcome);
                self.api.operation_done(op, &outcome);
                tracing::debug!(?op, ?outcome, "done");
                self.scheduler.complete(op, outcome, now);
            }
        }
        true
    }

    /// A microservice label got a new container, or lost its container.
    fn on_microservice(&mut self, change: Change) {
        match change {
            Change::Up { label, id, pid } => {
                tracing::info!(label, container = id, pid, "microservice running");
                self.executor.set_microservice(&label, Some(pid));
                self.scheduler
                    .namespace_changed(&NamespaceRef::Microservice(label));
            }
            Change::Down { label } => {
                tracing::info!(label, "microservice gone; withdrawing its items");
                self.executor.set_microservice(&label, None);
                let now = self.now();
                self.scheduler
                    .namespace_vanished(&NamespaceRef::Microservice(label), now);
            }
        }
    }

    fn check_namespaces(&mut self) {
        for reference in self.executor.vanished_namespaces() {
            tracing::info!("{reference} disappeared; withdrawing its items");
            self.scheduler.namespace_vanished(&reference, self.now());
        }
    }

    fn on_store_event(&mut self, event: StoreEvent) {
        match event {
            StoreEvent::Snapshot { revision, kvs } => {
                let (mut interfaces, mut routes, mut arps) = (Vec::new(), Vec::new(), Vec::new());
                for kv in &kvs {
                    match self.decode(kv) {
                        Some(Decoded::Interface(i)) => interfaces.push(i),
                        Some(Decoded::Route(r)) => routes.push(r),
                        Some(Decoded::Arp(a)) => arps.push(a),
                        None => {}
                    }
                }
                tracing::info!(
                    revision,
                    interfaces = interfaces.len(),
                    routes = routes.len(),
                    arps = arps.len(),
                    "resync from etcd snapshot"
                );
                self.api.etcd_snapshot();
                self.api.retain(ItemKind::Interface, &names(&interfaces));
                self.api.retain(ItemKind::Route, &names(&routes));
                self.api.retain(ItemKind::Arp, &names(&arps));
                self.status.retain(ItemKind::Interface, names(&interfaces));
                self.status.retain(ItemKind::Route, names(&routes));
                self.status.retain(ItemKind::Arp, names(&arps));
                self.scheduler.resync(interfaces);
                self.scheduler.resync_l3(routes, arps);
                self.resync_revision = Some(revision);
                self.tally = Tally::default();
            }
            StoreEvent::Put(kv) => {
                self.api.received(&kv.key);
                match self.decode(&kv) {
                    Some(Decoded::Interface(i)) => self.scheduler.put(i),
                    Some(Decoded::Route(r)) => self.scheduler.put_route(r),
                    Some(Decoded::Arp(a)) => self.scheduler.put_arp(a),
                    None => {}
                }
            }
            StoreEvent::Delete { key, .. } => {
                if let Some((kind, name)) = self.keys.parse(&key) {
                    self.scheduler.delete_l3(kind, &name);
                    self.status.set(kind, &name, None);
                    self.api.removed(kind, &name);
                    if self.logged.remove(&(kind, name)).is_some() {
                        tracing::info!(key, "removed");
                    }
                }
            }
        }
    }

    /// Decodes one value into a scheduler item of its kind.
    fn decode(&self, kv: &KeyValue) -> Option<Decoded> {
        let Some((kind, _)) = self.keys.parse(&kv.key) else {
            tracing::warn!(
                key = kv.key,
                "ignoring key: not an interface, arp or route key of this agent"
            );
            return None;
        };
        let (key, revision) = (kv.key.clone(), kv.mod_revision);
        Some(match model::accept_value(kind, &kv.key, &kv.value) {
            Ok(ConfigItem::Interface(i)) => Decoded::Interface(Item {
                key,
                revision,
                config: Ok(i),
            }),
            Ok(ConfigItem::Route(r)) => Decoded::Route(Item {
                key,
                revision,
                config: Ok(r),
            }),
            Ok(ConfigItem::Arp(a)) => Decoded::Arp(Item {
                key,
                revision,
                config: Ok(a),
            }),
            Err(e) => match kind {
                ItemKind::Interface => Decoded::Interface(Item {
                    key,
                    revision,
                    config: Err(e),
                }),
                ItemKind::Route => Decoded::Route(Item {
                    key,
                    revision,
                    config: Err(e),
                }),
                ItemKind::Arp => Decoded::Arp(Item {
                    key,
                    revision,
                    config: Err(e),
                }),
            },
        })
    }

    /// Logs and publishes every status change once.
    fn log_status(&mut self) {
        for id in self.scheduler.take_changes() {
            let Some(status) = self.scheduler.status().get(&id) else {
                continue;
            };
            // `Applying` is transient: it is not remembered, so that a retry that fails the
            // same way again is not logged again.
            if self.logged.get(&id) == Some(status) || *status == ItemStatus::Applying {
                if *status == ItemStatus::Applying {
                    tracing::debug!(key = self.keys.key(id.0, &id.1), "applying");
                }
                continue;
            }
            let key = self.keys.key(id.0, &id.1);
            match status {
                ItemStatus::Applied => tracing::info!(key, "applied"),
                ItemStatus::Applying => {}
                ItemStatus::Pending { reason } => tracing::info!(key, "pending: {reason}"),
                ItemStatus::Failed { error } => tracing::warn!(key, "failed, will retry: {error}"),
                ItemStatus::Invalid { error } => tracing::error!(key, "invalid: {error}"),
            }
            self.status.set(id.0, &id.1, Some(status.clone()));
            self.api.status_changed(id.0, &id.1, status);
            self.logged.insert(id, status.clone());
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
                "in sync with etcd snapshot"
            );
        }
    }
}
