//! The scheduler: a pure state machine deciding what to create, update, delete or keep
//! pending. No I/O, no clock reads: time is passed in as the duration since agent start.
//!
//! It is level-based: it holds the desired configuration, what it knows of namespaces and
//! what it believes the kernel holds, and every [`Scheduler::plan`] derives the operations
//! that move the kernel towards the configuration. Events only change those three inputs,
//! so any sequence of events ends in the state the final configuration describes.
//! When only a few items changed since a plan that left everything else with nothing to
//! do, the next plan decides just those and the items related to them (see `quiet`); it
//! is checked against a full plan in every test.
//!
//! The caller runs the phases of a [`Plan`] in order (the operations inside a phase are
//! independent), reports every outcome with [`Scheduler::complete`], and plans again.

mod adopt;
mod deletes;
mod drift;
mod foreign;
mod l3;
mod l3_index;
pub mod ops;
mod plan;
mod quiet;
mod quiet_l3;
pub mod report;
pub mod rounds;
mod state;
mod status;

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;

pub use plan::DEFAULT_VETH_MTU;
pub use status::ItemStatus;

use crate::backoff::Backoff;
use crate::kernel::{KernelLink, NsId};
use crate::keys::ItemKind;
use crate::keys::KeyTree;
use crate::model::{ArpEntry, Interface, ModelError, NamespaceRef, Route};
use ops::{EndSpec, FailureKind, Op, OpOutcome};
use rustc_hash::FxHashMap;
use state::{LinkWrites, RefState, View};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// The routing-protocol number (`rtm_protocol`, and `NDA_PROTOCOL` for neighbour entries)
/// a scheduler marks routes and neighbour entries with until told otherwise
/// ([`Scheduler::set_route_protocol`]; the agent sets its label's, see
/// [`crate::owned::marks`]). Unassigned in `rtnetlink.h`.
pub const DEFAULT_ROUTE_PROTOCOL: u8 = 196;

/// Longest wait between two attempts to resolve a namespace reference that names nothing.
const REF_RETRY_MAX: Duration = Duration::from_secs(2);

/// One configured value as the scheduler keeps it: the decoded value or why it is bad.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item<T = Interface> {
    /// Full etcd key.
    pub key: String,
    /// etcd mod revision of the value (the later write loses a conflict).
    pub revision: i64,
    /// The decoded value, or the decoding/validation error.
    pub config: Result<T, ModelError>,
}

/// A configured item of any kind: what the store hands the scheduler.
#[derive(Clone, Debug)]
pub enum AnyItem {
    /// An interface.
    Interface(Item),
    /// A route.
    Route(Item<Route>),
    /// An ARP entry.
    Arp(Item<ArpEntry>),
}

impl AnyItem {
    /// Its kind and name.
    pub fn id(&self) -> (ItemKind, &str) {
        match self {
            AnyItem::Interface(i) => (ItemKind::Interface, i.name()),
            AnyItem::Route(i) => (ItemKind::Route, i.name()),
            AnyItem::Arp(i) => (ItemKind::Arp, i.name()),
        }
    }
}

impl<T> Item<T> {
    /// The item's name: the key's last segment (the decoder checks that a value's `name`
    /// equals it).
    pub fn name(&self) -> &str {
        self.key.rsplit('/').next().unwrap_or(&self.key)
    }
}

/// The operations of one planning round, in phases to run one after the other.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Phases; the operations inside one phase are independent of each other.
    pub phases: Vec<Vec<Op>>,
}

impl Plan {
    /// True when there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.phases.iter().all(|p| p.is_empty())
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.phases.iter().map(Vec::len).sum()
    }
}

/// The pure scheduler.
#[derive(Clone, Debug)]
pub struct Scheduler {
    keys: KeyTree,
    items: BTreeMap<String, Item>,
    routes: BTreeMap<String, Item<Route>>,
    arps: BTreeMap<String, Item<ArpEntry>>,
    refs: FxHashMap<NamespaceRef, RefState>,
    views: BTreeMap<NsId, View>,
    /// The links the agent works with but does not own, by namespace (see `foreign`).
    foreign: BTreeMap<NsId, state::Foreign>,
    item_backoff: FxHashMap<String, Backoff>,
    view_backoff: BTreeMap<NsId, Backoff>,
    link_backoff: BTreeMap<(NsId, u32), Backoff>,
    /// (name, peer) from the alias of each link in `link_backoff`, kept while its
    /// namespace's view is read again: its peer end stays until it can be deleted.
    link_backoff_ends: BTreeMap<(NsId, u32), (String, String)>,
    status: FxHashMap<(ItemKind, String), ItemStatus>,
    /// Items whose status changed since [`Scheduler::take_changes`] was last called.
    changed: Vec<(ItemKind, String)>,
    /// Routes and neighbour entries of each namespace, as far as the agent manages them.
    l3_views: BTreeMap<NsId, state::L3View>,
    l3_view_backoff: BTreeMap<NsId, Backoff>,
    /// Routes and ARP entries whose last write failed.
    l3_backoff: FxHashMap<(ItemKind, String), Backoff>,
    /// The state each neighbour entry was last written with, so that a configured change
    /// between two aging states (REACHABLE, STALE) is written although the kernel's aging
    /// makes the two indistinguishable in a dump.
    neighbours_written: FxHashMap<(NsId, u32, std::net::IpAddr), u16>,
    /// Which item each route/neighbour write of the last plan was for.
    l3_writes: FxHashMap<state::L3Target, (ItemKind, String)>,
    /// Which item each link update of the last plan was for.
    link_writes: LinkWrites,
    /// `rtm_protocol` / `NDA_PROTOCOL` that marks routes and neighbour entries as ours.
    protocol: u8,
    /// `IFLA_GROUP` that marks links as ours (with the alias).
    link_group: u32,
    /// `IFLA_GROUP` of the links being deleted together (see [`crate::owned::marks`]).
    delete_group: u32,
    /// Items repaired in quick succession after changes made behind the agent's back.
    fights: FxHashMap<(ItemKind, String), drift::Fight>,
    /// Namespaces to read again while planning with what is known of them meanwhile.
    refresh: BTreeSet<NsId>,
    /// Namespaces where a route or entry waits for a link the agent does not own.
    waiting_on_links: BTreeSet<NsId>,
    /// The Docker tracker has listed the running microservices at least once; until then
    /// microservice references are not resolved (so nothing is withdrawn at start-up just
    /// because Docker has not answered yet).
    microservices_known: bool,
    /// Namespaces on the agent's record (it put things there before) that no configuration
    /// may mention any more: resolved (never created), read and cleaned like lingering ones.
    recorded: BTreeSet<NamespaceRef>,
    /// References let go of whose namespace may still hold something of ours.
    unreferenced: FxHashMap<NsId, BTreeSet<NamespaceRef>>,
    /// References whose namespaces hold nothing of ours any more (released, gone, or not
    /// there), for [`Scheduler::take_released_namespaces`].
    released: Vec<NamespaceRef>,
    /// Reverse indexes over `items`.
    index: quiet::ItemIndex,
    /// Set while the next plan may decide only what changed since the last one.
    quiet: Option<quiet::Quiet>,
    /// Reverse indexes over `routes` and `arps`.
    l3_index: l3_index::L3Index,
    /// The state the last plans found for each interface routes and entries name.
    iface_memo: FxHashMap<String, Option<quiet_l3::IfaceMemo>>,
    /// The time the last plan was made at: retries due after it are still to be made.
    planned_at: Duration,
    /// Scoped plans made (tests).
    #[cfg(test)]
    scoped_plans: usize,
    /// Check every scoped plan against a full plan of the same state (tests; off only to
    /// measure).
    #[cfg(test)]
    verify_scoped: bool,
}

impl Scheduler {
    /// A scheduler for the agent of `keys`.
    pub fn new(keys: KeyTree) -> Self {
        let link_group = keys.default_link_group();
        Scheduler {
            link_group,
            delete_group: crate::owned::marks::default_delete_group(link_group),
            keys,
            items: BTreeMap::new(),
            routes: BTreeMap::new(),
            arps: BTreeMap::new(),
            refs: FxHashMap::default(),
            views: BTreeMap::new(),
            foreign: BTreeMap::new(),
            item_backoff: FxHashMap::default(),
            view_backoff: BTreeMap::new(),
            link_backoff: BTreeMap::new(),
            link_backoff_ends: BTreeMap::new(),
            status: FxHashMap::default(),
            changed: Vec::new(),
            l3_views: BTreeMap::new(),
            l3_view_backoff: BTreeMap::new(),
            l3_backoff: FxHashMap::default(),
            l3_writes: FxHashMap::default(),
            link_writes: FxHashMap::default(),
            neighbours_written: FxHashMap::default(),
            protocol: DEFAULT_ROUTE_PROTOCOL,
            fights: FxHashMap::default(),
            refresh: BTreeSet::new(),
            waiting_on_links: BTreeSet::new(),
            microservices_known: false,
            recorded: BTreeSet::new(),
            unreferenced: FxHashMap::default(),
            released: Vec::new(),
            index: quiet::ItemIndex::default(),
            quiet: None,
            l3_index: l3_index::L3Index::default(),
            iface_memo: FxHashMap::default(),
            planned_at: Duration::ZERO,
            #[cfg(test)]
            scoped_plans: 0,
            #[cfg(test)]
            verify_scoped: true,
        }
    }

    /// Something happened that a scoped plan cannot account for: the next plan reads
    /// everything.
    fn disturb(&mut self) {
        self.quiet = None;
    }

    /// The link group the agent's links carry (its label's by default); the transient
    /// deletion group becomes the one derived from it until [`Self::set_delete_group`].
    pub fn set_link_group(&mut self, group: u32) {
        self.disturb();
        self.link_group = group;
        self.delete_group = crate::owned::marks::default_delete_group(group);
    }

    /// The transient group the agent deletes several links of a namespace through.
    pub fn set_delete_group(&mut self, group: u32) {
        self.disturb();
        self.delete_group = group;
    }

    /// Uses `protocol` instead of [`DEFAULT_ROUTE_PROTOCOL`] to mark routes and neighbours.
    pub fn set_route_protocol(&mut self, protocol: u8) {
        self.disturb();
        self.protocol = protocol;
    }

    /// Reads every namespace again (links, routes, entries) and repairs what differs; items
    /// keep their state meanwhile. A safety net for changes made behind the agent's back.
    pub fn refresh_kernel_views(&mut self) {
        self.refresh.extend(self.views.keys().copied());
    }

    /// Reads again the namespaces where a route or entry waits for a link the agent does not
    /// own (`eth0`), so that it is applied soon after that link appears or comes up; false
    /// when nothing waits.
    pub fn refresh_waiting_links(&mut self) -> bool {
        self.refresh.extend(self.waiting_on_links.iter().copied());
        !self.waiting_on_links.is_empty()
    }

    /// The one entry for a fresh snapshot of items of every kind: replaces the whole
    /// configuration (see [`Self::resync`] and [`Self::resync_l3`]).
    pub fn resync_all(&mut self, items: Vec<AnyItem>) {
        let (mut interfaces, mut routes, mut arps) = (Vec::new(), Vec::new(), Vec::new());
        for item in items {
            match item {
                AnyItem::Interface(i) => interfaces.push(i),
                AnyItem::Route(r) => routes.push(r),
                AnyItem::Arp(a) => arps.push(a),
            }
        }
        self.resync(interfaces);
        self.resync_l3(routes, arps);
    }

    /// The one entry for a value of any kind that was written.
    pub fn put_any(&mut self, item: AnyItem) {
        match item {
            AnyItem::Interface(i) => self.put(i),
            AnyItem::Route(r) => self.put_route(r),
            AnyItem::Arp(a) => self.put_arp(a),
        }
    }

    /// The one entry for a value of any kind that was deleted.
    pub fn delete_any(&mut self, kind: ItemKind, name: &str) {
        self.delete_l3(kind, name);
    }

    /// Replaces the whole configuration (a fresh etcd snapshot) and forgets what it believed
    /// about the kernel, so that every namespace is read again before anything is written.
    pub fn resync(&mut self, items: Vec<Item>) {
        self.disturb();
        self.items = items
            .into_iter()
            .map(|i| (i.name().to_string(), normalized(i)))
            .collect();
        self.index = quiet::ItemIndex::default();
        for (name, item) in &self.items {
            self.index.add(name, item);
        }
        self.status.retain(|(kind, name), _| {
            *kind != ItemKind::Interface || self.items.contains_key(name)
        });
        for view in self.l3_views.values_mut() {
            *view = state::L3View::Unknown;
        }
        self.l3_view_backoff.clear();
        for view in self.views.values_mut() {
            *view = View::Unknown;
        }
        self.foreign.clear();
        self.item_backoff.clear();
        self.view_backoff.clear();
        self.link_backoff.clear();
        self.link_backoff_ends.clear();
        self.refs
            .retain(|_, state| matches!(state, RefState::Resolved(_)));
    }

    /// One value was written.
    pub fn put(&mut self, item: Item) {
        let name = item.name().to_string();
        // A new value of either end is a new configuration of the pair: try it at once (a
        // failed creation holds both ends back).
        self.item_backoff.remove(&name);
        let peers = [&item]
            .into_iter()
            .chain(self.items.get(&name))
            .filter_map(|i| i.config.as_ref().ok())
            .map(|i| i.veth_peer().to_string())
            .collect::<Vec<_>>();
        for peer in peers {
            self.item_backoff.remove(&peer);
        }
        if let Ok(interface) = &item.config {
            self.allow_namespace_again(&interface.namespace.clone());
        }
        let item = normalized(item);
        let old = self.items.remove(&name);
        if let Some(old) = &old {
            self.index.remove(&name, old);
        }
        self.index.add(&name, &item);
        self.touch(&name, old.as_ref());
        self.items.insert(name, item);
    }

    /// Notes for the next plan that item `name` changed; `old` is its value until now.
    fn touch(&mut self, name: &str, old: Option<&Item>) {
        if let Some(q) = &mut self.quiet {
            q.touch(name, old.and_then(|i| i.config.as_ref().ok()));
        }
    }

    /// One value was deleted (by its logical name, the key's last segment).
    pub fn delete(&mut self, name: &str) {
        if let Some(old) = self.items.remove(name) {
            self.index.remove(name, &old);
            self.touch(name, Some(&old));
        }
        self.item_backoff.remove(name);
        self.status.remove(&(ItemKind::Interface, name.to_string()));
    }

    /// Replaces all routes and ARP entries (with a fresh etcd snapshot; call after
    /// [`Self::resync`]).
    pub fn resync_l3(&mut self, routes: Vec<Item<Route>>, arps: Vec<Item<ArpEntry>>) {
        self.disturb();
        self.routes = routes
            .into_iter()
            .map(|i| (i.name().to_string(), i))
            .collect();
        self.arps = arps
            .into_iter()
            .map(|i| (i.name().to_string(), i))
            .collect();
        self.reindex_l3();
        self.l3_backoff.clear();
        self.status.retain(|(kind, name), _| match kind {
            ItemKind::Interface => true,
            ItemKind::Route => self.routes.contains_key(name),
            ItemKind::Arp => self.arps.contains_key(name),
        });
    }

    /// One route was written.
    pub fn put_route(&mut self, item: Item<Route>) {
        let (name, old, new) = l3_index::insert(&mut self.routes, item);
        self.l3_written((ItemKind::Route, name), old, new);
    }

    /// One ARP entry was written.
    pub fn put_arp(&mut self, item: Item<ArpEntry>) {
        let (name, old, new) = l3_index::insert(&mut self.arps, item);
        self.l3_written((ItemKind::Arp, name), old, new);
    }

    /// What writing a route or ARP entry (at `new`, its namespace and interface when valid)
    /// does besides storing it: it is tried at once, and may bring a vanished named
    /// namespace back.
    fn l3_written(
        &mut self,
        id: (ItemKind, String),
        old: Option<l3_index::Place>,
        new: Option<l3_index::Place>,
    ) {
        self.l3_backoff.remove(&id);
        if let Some(place) = &new {
            self.allow_namespace_again(&place.ns);
        }
        self.l3_changed(id, old, new);
    }

    /// A route or ARP entry was deleted.
    pub fn delete_l3(&mut self, kind: ItemKind, name: &str) {
        let old = match kind {
            ItemKind::Route => self.routes.remove(name).map(|i| l3_index::place_of(&i)),
            ItemKind::Arp => self.arps.remove(name).map(|i| l3_index::place_of(&i)),
            ItemKind::Interface => return self.delete(name),
        };
        let key = (kind, name.to_string());
        self.l3_backoff.remove(&key);
        self.status.remove(&key);
        if let Some(old) = old {
            self.l3_changed(key, old, None);
        }
    }

    /// Writing configuration again allows a vanished named namespace to be made anew.
    fn allow_namespace_again(&mut self, reference: &NamespaceRef) {
        if let Some(RefState::Unavailable { .. }) = self.refs.get(reference) {
            self.refs.remove(reference);
            self.disturb();
        }
    }

    /// A namespace reference resolved earlier names nothing any more (process exited,
    /// `ip netns del`, ...). The executor has already let go of it.
    pub fn namespace_vanished(&mut self, reference: &NamespaceRef, now: Duration) {
        let Some(RefState::Resolved(ns)) = self.refs.get(reference).cloned() else {
            // Already unavailable (its process was seen gone first): look again now, so that
            // the items' status gives the latest reason.
            self.namespace_changed(reference);
            return;
        };
        self.disturb();
        let reason = format!("{reference} disappeared");
        // A named namespace deleted by hand while items live in it is made again (as when
        // it was missing at first) and its items re-applied; the agent never deletes one.
        self.refs.insert(
            reference.clone(),
            RefState::Unavailable {
                backoff: ref_backoff(None, reason.clone(), now),
                reason,
                invalid: false,
                allow_create: true,
                tried_create: false,
            },
        );
        self.released.push(reference.clone());
        let still_used = self.refs.values().any(|s| *s == RefState::Resolved(ns));
        if !still_used {
            self.forget_namespace(ns);
        }
    }

    /// Namespaces the agent put things into earlier (its record, read at start): each is
    /// resolved (never created) and read, and what the agent owns there that no
    /// configuration asks for is removed, even if no item mentions it any more.
    pub fn set_recorded_namespaces(&mut self, refs: impl IntoIterator<Item = NamespaceRef>) {
        self.disturb();
        self.recorded
            .extend(refs.into_iter().filter(|r| *r != NamespaceRef::Default));
    }

    /// References whose namespaces hold nothing of the agent's any more (let go of after
    /// being emptied, gone, or not there at all) since the last call: their record can go.
    pub fn take_released_namespaces(&mut self) -> Vec<NamespaceRef> {
        std::mem::take(&mut self.released)
    }

    /// The references (other than the default namespace) that name namespaces `plan`
    /// writes into: to be on record before it runs.
    pub fn namespaces_written(&self, plan: &Plan) -> BTreeSet<NamespaceRef> {
        let written: BTreeSet<NsId> = plan
            .phases
            .iter()
            .flatten()
            .filter(|op| match op {
                Op::CreatePair { .. }
                | Op::CreateLink { .. }
                | Op::AdoptLink { .. }
                | Op::UpdateLink { .. } => true,
                Op::L3(op) => op.puts(),
                _ => false,
            })
            .flat_map(Op::namespaces)
            .collect();
        self.refs
            .iter()
            .filter(|(r, s)| {
                **r != NamespaceRef::Default
                    && matches!(s, RefState::Resolved(ns) if written.contains(ns))
            })
            .map(|(r, _)| r.clone())
            .collect()
    }

    /// A reference is let go of (nothing refers to it any more); its namespace is reported
    /// released once nothing of ours is left in it.
    fn unreference(&mut self, reference: NamespaceRef) {
        match self.refs.remove(&reference) {
            Some(RefState::Resolved(ns)) => {
                self.unreferenced.entry(ns).or_default().insert(reference);
            }
            _ => self.released.push(reference),
        }
    }

    /// Forgets everything believed about a namespace that is gone or let go of (its
    /// identity may be reused by a new one).
    fn forget_namespace(&mut self, ns: NsId) {
        self.released
            .extend(self.unreferenced.remove(&ns).into_iter().flatten());
        self.views.remove(&ns);
        self.foreign.remove(&ns);
        self.view_backoff.remove(&ns);
        self.l3_views.remove(&ns);
        self.l3_view_backoff.remove(&ns);
        self.neighbours_written.retain(|(at, ..), _| *at != ns);
        self.link_backoff.retain(|(at, _), _| *at != ns);
        self.link_backoff_ends.retain(|(at, _), _| *at != ns);
    }

    /// The running microservices are known (the Docker tracker's first listing arrived).
    pub fn set_microservices_known(&mut self) {
        if !self.microservices_known {
            self.disturb();
        }
        self.microservices_known = true;
    }

    /// What a reference names has changed (a microservice started or moved to a new
    /// container): resolve it again now. Items in the old namespace are re-created in the new
    /// one.
    pub fn namespace_changed(&mut self, reference: &NamespaceRef) {
        if self.refs.remove(reference).is_some() {
            self.disturb();
        }
    }

    /// Status of every configured item, by kind and name, as of the last [`Self::plan`].
    pub fn status(&self) -> &FxHashMap<(ItemKind, String), ItemStatus> {
        &self.status
    }

    /// Names of the items whose status changed since the last call (statuses of deleted
    /// items are simply gone).
    pub fn take_changes(&mut self) -> Vec<(ItemKind, String)> {
        std::mem::take(&mut self.changed)
    }

    /// The routes, by name.
    pub fn routes(&self) -> &BTreeMap<String, Item<Route>> {
        &self.routes
    }

    /// The ARP entries, by name.
    pub fn arps(&self) -> &BTreeMap<String, Item<ArpEntry>> {
        &self.arps
    }

    /// The items, by logical name.
    pub fn items(&self) -> &BTreeMap<String, Item> {
        &self.items
    }

    /// When to plan again although nothing else happens: the earliest retry that came or
    /// comes due after the last plan, if any. It may be past already (the caller was busy
    /// with something else when it came due): then at once. A deadline is never lost to a
    /// wake-up that planned nothing.
    pub fn wake_at(&self) -> Option<Duration> {
        self.next_deadline(self.planned_at)
    }

    /// The earliest time after `now` at which a waiting retry becomes due, if any. Private:
    /// the agent waits for [`Self::wake_at`], which keeps a deadline that passed unplanned.
    fn next_deadline(&self, now: Duration) -> Option<Duration> {
        let refs = self.refs.values().filter_map(|s| match s {
            RefState::Unavailable { backoff, .. } => Some(backoff.retry_at),
            RefState::Resolved(_) => None,
        });
        self.item_backoff
            .values()
            .chain(self.view_backoff.values())
            .chain(self.link_backoff.values())
            .chain(self.l3_backoff.values())
            .chain(self.l3_view_backoff.values())
            .map(|b| b.retry_at)
            .chain(refs)
            .chain(self.next_repair(now))
            .filter(|t| *t > now)
            .min()
    }

    /// Folds in the outcome of an operation of [`Scheduler::reads_ahead`]. A reference that
    /// did not resolve is left as it was: the next plan resolves it again, creates its
    /// namespace where that is its due, and reports it.
    pub fn complete_ahead(&mut self, op: &Op, outcome: OpOutcome, now: Duration) {
        let unresolved =
            matches!(op, Op::ResolveNs { .. }) && !matches!(outcome, OpOutcome::NsResolved { .. });
        if !unresolved {
            self.complete(op, outcome, now);
        }
    }

    /// Folds the outcome of one operation of the last plan into the scheduler's beliefs.
    pub fn complete(&mut self, op: &Op, outcome: OpOutcome, now: Duration) {
        if let Op::DeleteLinks { ns, .. } = op {
            for (op, outcome) in ops::per_link(op.clone(), outcome) {
                if let (Op::DeleteLink { ifindex, .. }, OpOutcome::Failed { .. }) = (&op, &outcome)
                {
                    self.maybe_in_delete_group(*ns, *ifindex);
                }
                self.complete(&op, outcome, now);
            }
            return;
        }
        self.links_changed(op);
        self.note_completion(op, &outcome);
        match (op, outcome) {
            (Op::L3(op), OpOutcome::L3(outcome)) => self.complete_l3(op, outcome, now),
            (Op::ResolveNs { reference, .. }, OpOutcome::NsResolved { ns }) => {
                self.refs.insert(reference.clone(), RefState::Resolved(ns));
                self.views.entry(ns).or_insert(View::Unknown);
                // A recorded namespace is now read like any other; it is released (and its
                // record goes) once no configuration refers to it and it holds nothing of ours.
                self.recorded.remove(reference);
            }
            (Op::ResolveNs { reference, create }, outcome) => {
                if matches!(outcome, OpOutcome::NsUnavailable { .. }) {
                    // Nothing of ours can be in a namespace that is not there.
                    self.recorded.remove(reference);
                    self.released.push(reference.clone());
                }
                let (reason, invalid) = match outcome {
                    OpOutcome::NsUnavailable { reason, invalid } => (reason, invalid),
                    OpOutcome::Failed { error, .. } => (error, false),
                    other => (format!("unexpected answer {other:?}"), false),
                };
                let (previous, allow_create) = match self.refs.get(reference) {
                    Some(RefState::Unavailable {
                        backoff,
                        allow_create,
                        ..
                    }) => (Some(backoff.clone()), *allow_create),
                    _ => (None, true),
                };
                self.refs.insert(
                    reference.clone(),
                    RefState::Unavailable {
                        backoff: ref_backoff(previous.as_ref(), reason.clone(), now),
                        reason,
                        invalid,
                        allow_create,
                        tried_create: *create,
                    },
                );
            }
            (Op::DumpNs { ns }, OpOutcome::Dumped { links }) => {
                self.view_backoff.remove(ns);
                let links = links.into_iter().map(|l| (l.ifindex, l)).collect();
                self.views.insert(*ns, View::Known(links));
            }
            (Op::DumpNs { ns }, outcome) => self.view_failed(*ns, outcome, now),
            (Op::ReadLinks { ns, names, .. }, OpOutcome::LinksRead { links }) => {
                self.foreign_read(*ns, names, links);
            }
            (Op::ReadLinks { ns, .. }, outcome) => self.view_failed(*ns, outcome, now),
            (Op::CreatePair { a, b }, OpOutcome::PairCreated { a: ka, b: kb }) => {
                self.created([(a, ka), (b, kb)]);
            }
            (Op::CreateLink { end, .. }, OpOutcome::Created { link }) => {
                self.created([(end, link)]);
            }
            (Op::AdoptLink { from, end, .. }, OpOutcome::Created { link }) => {
                // It left the agent's own namespace (its view there is read again).
                self.reread_view(*from);
                self.created([(end, link)]);
            }
            (Op::AdoptLink { from, .. }, OpOutcome::Failed { error, .. }) => {
                for spec in op.created_ends() {
                    if let Some(name) = self.alias_item(&spec.alias) {
                        let prev = self.item_backoff.get(&name);
                        let b = Backoff::after_failure(prev, error.clone(), now);
                        self.item_backoff.insert(name, b);
                    }
                    self.reread_view(spec.ns);
                }
                self.reread_view(*from);
            }
            (Op::CreatePair { .. } | Op::CreateLink { .. }, OpOutcome::Failed { kind, error }) => {
                for spec in op.created_ends() {
                    if let Some(name) = self.alias_item(&spec.alias) {
                        let prev = self.item_backoff.get(&name);
                        let b = Backoff::after_failure(prev, error.clone(), now);
                        self.item_backoff.insert(name, b);
                    }
                    if kind != FailureKind::Conflict {
                        // The pair may exist half-made: read the namespace again, but keep
                        // deciding the other items there with what is known of them.
                        self.reread_view(spec.ns);
                    }
                }
            }
            (Op::UpdateLink { ns, ifindex, .. }, OpOutcome::Updated { link }) => {
                if let Some(name) = link.alias.as_deref().and_then(|a| self.alias_item(a)) {
                    self.item_backoff.remove(&name);
                }
                if let Some(name) = self.link_writes.get(&(*ns, *ifindex)) {
                    self.item_backoff.remove(name);
                }
                if self.foreign_updated(*ns, &link) {
                    self.link_backoff.remove(&(*ns, *ifindex));
                } else {
                    self.remember_link(*ns, link);
                }
            }
            (Op::UpdateLink { ns, ifindex, .. }, OpOutcome::Failed { kind, error }) => {
                if kind == FailureKind::Other || kind == FailureKind::Conflict {
                    match self.link_writes.get(&(*ns, *ifindex)).cloned() {
                        Some(name) => {
                            let prev = self.item_backoff.get(&name);
                            let b = Backoff::after_failure(prev, error, now);
                            self.item_backoff.insert(name, b);
                        }
                        // Removing the agent's addresses from a link it does not own.
                        None => {
                            let prev = self.link_backoff.get(&(*ns, *ifindex));
                            let b = Backoff::after_failure(prev, error, now);
                            self.link_backoff.insert((*ns, *ifindex), b);
                        }
                    }
                }
                if kind == FailureKind::LinkGone {
                    self.forget_deleted_link(*ns, *ifindex);
                }
                self.reread_view(*ns);
            }
            (
                Op::ReturnLink {
                    ns, ifindex, to, ..
                },
                OpOutcome::Deleted,
            ) => {
                self.link_backoff.remove(&(*ns, *ifindex));
                self.forget_deleted_link(*ns, *ifindex);
                self.reread_view(*to);
            }
            (Op::DeleteLink { ns, ifindex, .. }, OpOutcome::Deleted) => {
                self.link_backoff.remove(&(*ns, *ifindex));
                self.link_backoff_ends.remove(&(*ns, *ifindex));
                self.forget_deleted_link(*ns, *ifindex);
            }
            (Op::DeleteLink { ns, ifindex, .. } | Op::ReturnLink { ns, ifindex, .. }, outcome) => {
                let error = format!("{outcome:?}");
                let prev = self.link_backoff.get(&(*ns, *ifindex));
                let b = Backoff::after_failure(prev, error, now);
                self.link_backoff.insert((*ns, *ifindex), b);
                let ends = match self.views.get(ns) {
                    Some(View::Known(links)) => links
                        .get(ifindex)
                        .and_then(|l| l.alias.as_deref())
                        .and_then(|a| self.keys.parse_link_alias(a)),
                    _ => None,
                };
                if let Some(ends) = ends {
                    self.link_backoff_ends.insert((*ns, *ifindex), ends);
                }
                self.reread_view(*ns);
            }
            (Op::ReleaseNs { ns }, _) => {
                // The executor forgets every reference to it as well.
                self.forget_namespace(*ns);
                let refs: Vec<NamespaceRef> = self
                    .refs
                    .iter()
                    .filter(|(_, s)| **s == RefState::Resolved(*ns))
                    .map(|(r, _)| r.clone())
                    .collect();
                for r in refs {
                    self.refs.remove(&r);
                    self.released.push(r);
                }
            }
            (op, outcome) => {
                // An outcome that does not fit its operation: distrust what we believe.
                tracing::warn!(
                    ?op,
                    ?outcome,
                    "unexpected outcome; reading kernel state again"
                );
                for view in self.views.values_mut() {
                    *view = View::Unknown;
                }
                self.foreign.clear();
            }
        }
    }

    /// Keeps the scheduler quiet through the successful link operations of a scoped plan
    /// (their items are decided again next time); anything else disturbs it.
    fn note_completion(&mut self, op: &Op, outcome: &OpOutcome) {
        let Some(q) = &mut self.quiet else { return };
        let keys = &self.keys;
        fn name<'a>(keys: &KeyTree, alias: Option<&'a str>) -> Option<&'a str> {
            alias.and_then(|a| keys.split_link_alias(a)).map(|(n, _)| n)
        }
        match (op, outcome) {
            (Op::CreatePair { .. }, OpOutcome::PairCreated { .. })
            | (Op::CreateLink { .. }, OpOutcome::Created { .. }) => {
                for end in op.created_ends() {
                    q.touch_link(end.ns, name(keys, Some(&end.alias)));
                }
            }
            (Op::UpdateLink { ns, ifindex, .. }, OpOutcome::Updated { link }) => {
                let old = match self.views.get(ns) {
                    Some(View::Known(links)) => links.get(ifindex),
                    _ => None,
                };
                q.touch_link(*ns, name(keys, old.and_then(|l| l.alias.as_deref())));
                q.touch_link(*ns, name(keys, link.alias.as_deref()));
            }
            // The deleted links themselves are noted by `forget_deleted_link`.
            (Op::DeleteLink { .. }, OpOutcome::Deleted) => {}
            (Op::L3(op), OpOutcome::L3(ops::l3::L3Outcome::Done)) => match op.target() {
                Some(target) => {
                    q.l3_mut().done.insert((op.ns(), target));
                }
                None => self.quiet = None,
            },
            _ => self.quiet = None,
        }
    }

    fn view_failed(&mut self, ns: NsId, outcome: OpOutcome, now: Duration) {
        let (kind, error) = match outcome {
            OpOutcome::Failed { kind, error } => (kind, error),
            other => (FailureKind::Other, format!("unexpected answer {other:?}")),
        };
        if kind == FailureKind::NamespaceGone {
            // Resolve every reference to it again; the answer says whether it still exists.
            self.refs.retain(|_, s| *s != RefState::Resolved(ns));
            self.views.remove(&ns);
            self.view_backoff.remove(&ns);
        } else {
            let b = Backoff::after_failure(self.view_backoff.get(&ns), error, now);
            self.view_backoff.insert(ns, b);
        }
    }

    /// Reads a namespace again after a failed operation there, while the items in it keep
    /// being decided with what is known (so that one failing item does not send every other
    /// item of its namespace back to pending).
    fn reread_view(&mut self, ns: NsId) {
        if self.views.contains_key(&ns) {
            self.refresh.insert(ns);
        }
    }

    /// Links created as asked: their items' retries are over.
    fn created<'a>(&mut self, made: impl IntoIterator<Item = (&'a EndSpec, KernelLink)>) {
        for (spec, link) in made {
            if let Some(name) = self.alias_item(&spec.alias) {
                self.item_backoff.remove(&name);
            }
            self.remember_link(spec.ns, link);
        }
    }

    /// A group deletion of this link failed: it may have been moved into the transient group
    /// already. Believed to be there until its namespace is read again, so that no other
    /// group deletion there takes it along before its own retry.
    fn maybe_in_delete_group(&mut self, ns: NsId, ifindex: u32) {
        if let Some(View::Known(links)) = self.views.get_mut(&ns) {
            if let Some(link) = links.get_mut(&ifindex) {
                link.group = self.delete_group;
            }
        }
    }

    fn remember_link(&mut self, ns: NsId, link: KernelLink) {
        if let Some(View::Known(links)) = self.views.get_mut(&ns) {
            links.insert(link.ifindex, link);
        }
    }

    /// Forgets a deleted link and, for a VETH end, its peer (the kernel deletes both), in the
    /// link views and in the route views (whose addresses make gateways reachable).
    fn forget_deleted_link(&mut self, ns: NsId, ifindex: u32) {
        let Some(View::Known(links)) = self.views.get_mut(&ns) else {
            return;
        };
        let Some(link) = links.remove(&ifindex) else {
            return;
        };
        let mut gone = vec![(ns, ifindex)];
        let ends = link
            .alias
            .as_deref()
            .and_then(|a| self.keys.parse_link_alias(a));
        if let Some((name, peer)) = &ends {
            for (at, view) in self.views.iter_mut() {
                if let View::Known(links) = view {
                    links.retain(|_, l| {
                        let peer_end = l
                            .alias
                            .as_deref()
                            .and_then(|a| self.keys.split_link_alias(a))
                            == Some((peer.as_str(), name.as_str()));
                        if peer_end {
                            gone.push((*at, l.ifindex));
                        }
                        !peer_end
                    });
                }
            }
        }
        // Both items' links changed; a link without our alias needs a full plan.
        match (&mut self.quiet, &ends) {
            (Some(q), Some((name, peer))) => {
                q.touch_link(ns, Some(name));
                q.touch_link(ns, Some(peer));
                for (at, _) in &gone {
                    q.touch_link(*at, None);
                }
            }
            (Some(_), None) => self.quiet = None,
            (None, _) => {}
        }
        for (at, ifindex) in gone {
            self.forget_l3_link(at, ifindex);
        }
    }

    fn alias_item(&self, alias: &str) -> Option<String> {
        self.keys.parse_link_alias(alias).map(|(name, _)| name)
    }
}

/// The item with its addresses sorted and deduplicated, the order the planner compares in.
fn normalized(mut item: Item) -> Item {
    if let Ok(i) = &mut item.config {
        i.ip_addresses.sort();
        i.ip_addresses.dedup();
    }
    item
}

fn ref_backoff(previous: Option<&Backoff>, reason: String, now: Duration) -> Backoff {
    let mut b = Backoff::after_failure(previous, reason, now);
    b.retry_at = b.retry_at.min(now + REF_RETRY_MAX);
    b
}
