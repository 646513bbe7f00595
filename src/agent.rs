//! The agent main loop: feeds etcd events and namespace facts into the scheduler, runs its
//! plans through the executor, and keeps the journal (log, published status).

mod burst;
mod gather;
mod journal;

use crate::config::AgentConfig;
use crate::kernel::{KernelEvent, NsEvents, NsId};
use crate::keys::{ItemKind, KeyTree};
use crate::microservice::{self, Change, Registry, TrackerEvent};
use crate::model::{self, ConfigItem, NamespaceRef};
use crate::netlink::Executor;
use crate::owned::marks::{self, Requested};
use crate::owned::places::Places;
use crate::scheduler::rounds::run_plan;
use crate::scheduler::{AnyItem, Item, Plan, Scheduler};
use crate::status::StatusPublisher;
use crate::store::{self, EtcdSettings, KeyValue, StoreEvent, StoreEvents};
use journal::Journal;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How often namespaces are read again where a route or entry waits for a link the agent
/// does not own (there is no event for a link appearing in another program's namespace).
const LINK_WAIT_CHECK: Duration = Duration::from_secs(1);
/// Rounds of plan-and-execute in one go before new events are looked at again.
const MAX_ROUNDS: usize = 64;

/// `d` give or take up to a tenth, varying from call to call.
fn jittered(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |t| t.subsec_nanos());
    // A fraction in [-0.1, 0.1) from the clock's nanoseconds: enough to spread agents.
    let fraction = f64::from(nanos % 2_000) / 10_000.0 - 0.1;
    d.mul_f64(1.0 + fraction)
}

/// The running agent.
pub struct Agent {
    keys: KeyTree,
    scheduler: Scheduler,
    executor: Executor,
    journal: Journal,
    places: Places,
    /// The namespaces on record (a mirror of what `places` wrote).
    recorded: BTreeSet<NamespaceRef>,
    /// The marks and the namespace record have been read (at the first snapshot).
    owning: bool,
    requested: Requested,
    etcd: EtcdSettings,
    started: Instant,
    /// The HTTP API's view of the loop.
    api: crate::api::AgentHooks,
    api_server: Option<crate::api::Server>,
    /// Gives freed memory back after large rounds of work.
    trimmer: crate::memory::Trimmer,
    /// When a burst of etcd changes is gathered before planning.
    burst: burst::Burst,
}

impl Agent {
    /// Creates the agent (opens the executor's netlink socket of the default namespace).
    pub async fn new(config: &AgentConfig) -> anyhow::Result<Self> {
        let keys = KeyTree::new(&config.label);
        let requested = Requested {
            route_protocol: config.route_protocol,
            link_group: config.link_group,
        };
        // The marks are settled at the first snapshot (see `take_ownership`); nothing is
        // planned before.
        let group = requested
            .link_group
            .unwrap_or_else(|| keys.default_link_group());
        let executor = Executor::new(keys.clone(), group).await?;
        let status = StatusPublisher::spawn(config.etcd.clone(), keys.clone());
        let (api, api_server) = crate::api::start(config.http_listen, &keys).await?;
        Ok(Agent {
            scheduler: Scheduler::new(keys.clone()),
            journal: Journal::new(keys.clone(), status),
            places: Places::spawn(config.etcd.clone(), keys.clone()),
            recorded: BTreeSet::new(),
            owning: false,
            requested,
            etcd: config.etcd.clone(),
            keys,
            executor,
            started: Instant::now(),
            api,
            api_server,
            trimmer: Default::default(),
            burst: burst::Burst::agent(config.burst_quiet),
        })
    }

    fn now(&self) -> Duration {
        self.started.elapsed()
    }

    /// Runs until `shutdown` completes. The kernel is left as it is on exit; the agent's
    /// published statuses go with its lease.
    pub async fn run(
        mut self,
        config: AgentConfig,
        shutdown: impl Future<Output = ()>,
    ) -> anyhow::Result<()> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        // Whether the etcd watch is established (for readiness and metrics).
        let etcd_connected = tokio::sync::watch::Sender::new(false);
        let watcher = tokio::spawn(store::watch(
            config.etcd.clone(),
            self.keys.config_prefix(),
            tx,
            etcd_connected.clone(),
        ));
        self.api.follow_etcd(etcd_connected.subscribe());
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
        let mut kernel_events = self.executor.take_events();
        // Also turns an idle loop every second, which keeps the liveness heartbeat fresh.
        let mut link_waits = tokio::time::interval(LINK_WAIT_CHECK);
        link_waits.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let resync_every = config
            .kernel_resync_interval
            .unwrap_or(Duration::from_secs(3600));
        let mut kernel_resync =
            tokio::time::interval_at(Instant::now() + jittered(resync_every), resync_every);
        kernel_resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut synced = false;
        tracing::info!(
            label = self.keys.label(),
            endpoints = config.etcd.endpoint_list(),
            http = self
                .api_server
                .as_ref()
                .map(|s| format!("http://{}/", s.address())),
            "nsagent started; watching {}",
            self.keys.config_prefix()
        );
        let result = loop {
            self.api.turned();
            let deadline = self
                .scheduler
                .wake_at()
                .map(|d| self.started + d)
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            let trim_at = self.trimmer.due().map(|d| self.started + d);
            // Whether anything happened that planning could act on.
            let work = tokio::select! {
                _ = &mut shutdown => break Ok(()),
                events = rx.recv() => {
                    let Some(events) = events else {
                        break Err(anyhow::anyhow!("the etcd watcher stopped"));
                    };
                    synced |= self.gather(events, &mut rx).await;
                    true
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
                    true
                }
                _ = ns_check.tick() => self.check_namespaces(),
                _ = vanish.changed() => self.check_namespaces(),
                _ = link_waits.tick() => self.scheduler.refresh_waiting_links(),
                _ = kernel_resync.tick(), if config.kernel_resync_interval.is_some() => {
                    // Jittered, so that agents started together do not re-read in step.
                    kernel_resync.reset_after(jittered(resync_every));
                    tracing::trace!("re-reading the managed kernel state");
                    self.api.kernel_resync();
                    self.scheduler.refresh_kernel_views();
                    true
                }
                Some(batch) = kernel_events.recv() => {
                    let mut batches = vec![batch];
                    while let Some(batch) = kernel_events.try_recv() {
                        batches.push(batch);
                    }
                    let mut work = false;
                    for (ns, events) in by_namespace(batches) {
                        work |= self.scheduler.kernel_events(ns, &events);
                    }
                    work
                }
                Some(command) = commands.recv() => {
                    self.api.answer(command, &mut self.scheduler);
                    true
                }
                _ = tokio::time::sleep_until(deadline) => true,
                _ = tokio::time::sleep_until(trim_at.unwrap_or(deadline)), if trim_at.is_some() => {
                    self.trimmer.trim_if_due(self.now());
                    false
                }
            };
            if !synced || !work {
                continue;
            }
            if !self.owning {
                match self.take_ownership().await {
                    Ok(()) => self.owning = true,
                    Err(e) if e.is::<marks::Refused>() => break Err(e),
                    Err(e) => {
                        tracing::warn!("cannot read the agent's ownership records yet: {e:#}");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                }
            }
            for _ in 0..MAX_ROUNDS {
                if !self.round().await {
                    self.trimmer.settled(self.now());
                    break;
                }
                // Fold in what arrived meanwhile before planning again.
                while let Ok(events) = rx.try_recv() {
                    synced |= self.on_store_events(events);
                }
            }
            if let Some(sources) = self.executor.vanish_sources(&mut refs_seen) {
                vanish.track(sources);
            }
        };
        watcher.abort();
        tracker.abort();
        self.journal.shutdown().await;
        if result.is_ok() {
            tracing::info!("nsagent stopped; kernel state left as it is");
        }
        result
    }

    /// Settles the marks that tell the agent's objects from others' (recorded per label in
    /// etcd) and reads back the namespaces it put things into earlier, before anything is
    /// planned.
    async fn take_ownership(&mut self) -> anyhow::Result<()> {
        let mut client = store::connect(&self.etcd).await?.client;
        let marks = marks::resolve(&mut client, &self.keys, self.requested).await?;
        self.executor.set_link_group(marks.link_group);
        self.executor.set_delete_group(marks.delete_group);
        self.scheduler.set_link_group(marks.link_group);
        self.scheduler.set_delete_group(marks.delete_group);
        self.scheduler.set_route_protocol(marks.route_protocol);
        let recorded = self.places.load().await?;
        tracing::info!(
            route_protocol = marks.route_protocol,
            link_group = marks.link_group,
            delete_group = marks.delete_group,
            recorded_namespaces = recorded.len(),
            "ownership marks of label {}",
            self.keys.label()
        );
        self.recorded.extend(recorded.iter().cloned());
        self.scheduler.set_recorded_namespaces(recorded);
        Ok(())
    }

    /// One plan-and-execute round; false when there was nothing to do.
    async fn round(&mut self) -> bool {
        self.api.turned();
        let started = Instant::now();
        let plan = self.scheduler.plan(self.now());
        self.forget_released();
        if plan.is_empty() {
            for (id, status) in self.journal.settled(&mut self.scheduler) {
                self.api.status_changed(id.0, &id.1, &status);
            }
            self.api.settled(&self.scheduler);
            return false;
        }
        // Plans that only read (the periodic re-read) are not worth a debug line each.
        let writes = plan.phases.iter().flatten().any(|op| op.writes());
        if writes {
            tracing::debug!(ops = plan.len(), elapsed = ?started.elapsed(), "planned");
        } else {
            tracing::trace!(ops = plan.len(), elapsed = ?started.elapsed(), "planned");
        }
        self.trimmer.executed(plan.len());
        self.record_places(&plan).await;
        let mut repaired = BTreeSet::new();
        let Agent {
            scheduler,
            executor,
            journal,
            api,
            started,
            ..
        } = self;
        let now = || started.elapsed();
        run_plan(scheduler, executor, plan, now, |done| {
            if let (false, Some(report)) = (done.failed(), &done.report) {
                for item in journal.done(report) {
                    api.kernel_repair(item.0);
                    repaired.insert(item);
                }
            }
            api.operation_done(done.op, done.outcome, done.report.as_ref());
            tracing::trace!(op = ?done.op, outcome = ?done.outcome, "done");
        })
        .await;
        self.scheduler.repaired(repaired, self.now());
        self.forget_released();
        true
    }

    /// Puts the namespaces `plan` writes into on record before it runs, so that a restart
    /// finds them even if their configuration is gone by then.
    async fn record_places(&mut self, plan: &Plan) {
        let new: Vec<NamespaceRef> = self
            .scheduler
            .namespaces_written(plan)
            .into_iter()
            .filter(|r| !self.recorded.contains(r))
            .collect();
        if new.is_empty() {
            return;
        }
        self.recorded.extend(new.iter().cloned());
        if !self.places.record(new.clone()).await {
            tracing::warn!(
                namespaces = ?new,
                "etcd did not confirm the namespace record in time; writing anyway (it is recorded as soon as etcd answers)"
            );
        }
    }

    /// Removes from the record the namespaces that hold nothing of the agent's any more.
    fn forget_released(&mut self) {
        let released: Vec<NamespaceRef> = self
            .scheduler
            .take_released_namespaces()
            .into_iter()
            .filter(|r| self.recorded.remove(r))
            .collect();
        if !released.is_empty() {
            tracing::debug!(namespaces = ?released, "nothing of ours left; off the record");
            self.places.forget(released);
        }
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
                self.journal.unsettle_all();
                self.executor.set_microservice(&label, None);
                let now = self.now();
                self.scheduler
                    .namespace_vanished(&NamespaceRef::Microservice(label), now);
            }
        }
    }

    /// Withdraws the items of namespaces that went away; true when there were any.
    fn check_namespaces(&mut self) -> bool {
        let vanished = self.executor.vanished_namespaces();
        if !vanished.is_empty() {
            self.journal.unsettle_all();
        }
        for reference in &vanished {
            tracing::info!("{reference} disappeared; withdrawing its items");
            self.scheduler.namespace_vanished(reference, self.now());
        }
        !vanished.is_empty()
    }

    /// Folds in what the watcher sent together; true when it held a snapshot.
    fn on_store_events(&mut self, events: StoreEvents) -> bool {
        let mut snapshot = false;
        for event in events {
            snapshot |= matches!(event, StoreEvent::Snapshot { .. });
            self.on_store_event(event);
        }
        snapshot
    }

    fn on_store_event(&mut self, event: StoreEvent) {
        match event {
            StoreEvent::Snapshot { revision, kvs } => {
                let items: Vec<AnyItem> = kvs.iter().filter_map(|kv| self.decode(kv)).collect();
                let mut names: BTreeMap<ItemKind, BTreeSet<String>> =
                    [ItemKind::Interface, ItemKind::Route, ItemKind::Arp]
                        .into_iter()
                        .map(|kind| (kind, BTreeSet::new()))
                        .collect();
                for item in &items {
                    let (kind, name) = item.id();
                    names.entry(kind).or_default().insert(name.to_string());
                }
                tracing::info!(
                    revision,
                    interfaces = names[&ItemKind::Interface].len(),
                    routes = names[&ItemKind::Route].len(),
                    arps = names[&ItemKind::Arp].len(),
                    "resync from etcd snapshot"
                );
                self.api.etcd_snapshot();
                for (kind, set) in &names {
                    self.api.retain(*kind, set);
                }
                self.journal.resync(revision, &names);
                self.scheduler.resync_all(items);
            }
            StoreEvent::Put(kv) => {
                if let Some((kind, name)) = self.keys.parse(&kv.key) {
                    self.journal.put(kind, &name);
                }
                self.api.received(&kv.key);
                if let Some(item) = self.decode(&kv) {
                    self.scheduler.put_any(item);
                }
            }
            StoreEvent::Delete { key, .. } => {
                if let Some((kind, name)) = self.keys.parse(&key) {
                    self.scheduler.delete_any(kind, &name);
                    self.journal.delete(kind, &name);
                    self.api.removed(kind, &name);
                }
            }
        }
    }

    /// Decodes one value into a scheduler item of its kind.
    fn decode(&self, kv: &KeyValue) -> Option<AnyItem> {
        let Some((kind, _)) = self.keys.parse(&kv.key) else {
            tracing::warn!(
                key = kv.key,
                "ignoring key: not an interface, arp or route key of this agent"
            );
            return None;
        };
        let (key, revision) = (kv.key.clone(), kv.mod_revision);
        let decoded = model::accept_value(kind, &kv.key, &kv.value);
        Some(match (kind, decoded) {
            (_, Ok(ConfigItem::Interface(i))) => AnyItem::Interface(Item {
                key,
                revision,
                config: Ok(i),
            }),
            (_, Ok(ConfigItem::Route(r))) => AnyItem::Route(Item {
                key,
                revision,
                config: Ok(r),
            }),
            (_, Ok(ConfigItem::Arp(a))) => AnyItem::Arp(Item {
                key,
                revision,
                config: Ok(a),
            }),
            (ItemKind::Interface, Err(e)) => AnyItem::Interface(Item {
                key,
                revision,
                config: Err(e),
            }),
            (ItemKind::Route, Err(e)) => AnyItem::Route(Item {
                key,
                revision,
                config: Err(e),
            }),
            (ItemKind::Arp, Err(e)) => AnyItem::Arp(Item {
                key,
                revision,
                config: Err(e),
            }),
        })
    }
}

/// The events of `batches` per namespace, in the order they came: the steps of one write
/// that arrived in several batches are judged together (only the last state of each object
/// counts), so the agent's own writes are not mistaken for changes behind its back.
fn by_namespace(batches: Vec<NsEvents>) -> BTreeMap<NsId, Vec<KernelEvent>> {
    let mut merged: BTreeMap<NsId, Vec<KernelEvent>> = BTreeMap::new();
    for batch in batches {
        merged.entry(batch.ns).or_default().extend(batch.events);
    }
    merged
}
