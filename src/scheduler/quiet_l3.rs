//! Planning only the routes and neighbour entries that may have changed.
//!
//! What a route or entry may become depends on its interface, on the links, addresses and
//! direct (gateway-less) routes of its namespace, and on the others for the same
//! destination or address there (one of two alike is refused), and on nothing else. So a
//! quiet scheduler plans every route and entry only of the namespaces whose links or
//! direct routes changed, or where one names an interface it decides again; elsewhere it
//! plans only the destinations and addresses written, deleted or applied since its last
//! plan ([`L3Reach`]). The other interfaces keep the state the last plan found for them,
//! remembered for the ones routes and entries name ([`IfaceMemo`]).

use super::l3_index::{place_of, L3Id, L3Index, Place, Placed};
use super::state::{IfaceState, L3View, RefState, View};
use super::{Item, Scheduler};
use crate::kernel::NsId;
use crate::keys::ItemKind;
use crate::model::{ArpEntry, NamespaceRef, Route};
use ipnet::IpNet;
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// What routes and entries could assume of an interface at the last plan (an
/// [`IfaceState`] without borrowed links).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum IfaceMemo {
    /// Applied: its link, by namespace and index.
    Usable { ns: NsId, ifindex: u32 },
    /// Being applied or held.
    Busy,
    /// Not applied; why.
    Absent(String),
}

impl IfaceMemo {
    /// The memo of a state.
    pub(super) fn of(state: &IfaceState) -> Self {
        match state {
            IfaceState::Usable { ns, link } => IfaceMemo::Usable {
                ns: *ns,
                ifindex: link.ifindex,
            },
            IfaceState::Busy => IfaceMemo::Busy,
            IfaceState::Absent(why) => IfaceMemo::Absent(why.clone()),
        }
    }
}

/// How a plan changes the remembered interface states.
#[derive(Debug, Default)]
pub(super) struct MemoUpdate {
    /// Forget every remembered state first (a full plan).
    pub replace: bool,
    /// States to remember (`None`: the plan had no state for it).
    pub set: Vec<(String, Option<IfaceMemo>)>,
    /// Interfaces whose state is no longer known.
    pub forget: Vec<String>,
}

/// The routes and entries a quiet scheduler has seen change since its last plan.
#[derive(Clone, Debug, Default)]
pub(super) struct L3Touched {
    /// Written or deleted.
    pub names: FxHashSet<L3Id>,
    /// Their namespaces with their destinations and addresses, before and after.
    pub targets: FxHashSet<(NamespaceRef, IpNet)>,
    /// The references of those that are (or were) routes without a gateway.
    pub direct: FxHashSet<NamespaceRef>,
    /// Destinations and addresses written or deleted in the kernel.
    pub done: BTreeSet<(NsId, IpNet)>,
}

impl L3Touched {
    /// Route or entry `id` was written or deleted; `places` are where its valid values
    /// were and are.
    pub(super) fn touch(&mut self, id: L3Id, places: impl IntoIterator<Item = Place>) {
        self.names.insert(id);
        for p in places {
            if p.direct {
                self.direct.insert(p.ns.clone());
            }
            self.targets.insert((p.ns, p.target));
        }
    }

    /// The namespace references of the routes and entries changed (some more than once).
    pub(super) fn refs(&self) -> impl Iterator<Item = &NamespaceRef> {
        self.targets.iter().map(|(r, _)| r)
    }

    /// True when nothing changed.
    pub(super) fn is_empty(&self) -> bool {
        self.names.is_empty() && self.done.is_empty()
    }
}

/// Where a scoped plan compares routes and entries with the kernel's.
#[derive(Clone, Debug, Default)]
pub(super) struct L3Reach {
    /// Namespaces planned whole.
    pub full: BTreeSet<NsId>,
    /// Namespaces where only these destinations and addresses are planned.
    pub partial: BTreeMap<NsId, FxHashSet<IpNet>>,
}

impl L3Reach {
    /// True when the kernel's routes to `dst` in `ns` are compared.
    pub(super) fn route(&self, ns: &NsId, dst: &IpNet) -> bool {
        self.full.contains(ns) || self.partial.get(ns).is_some_and(|t| t.contains(dst))
    }

    /// True when the kernel's entries for `ip` in `ns` are compared.
    pub(super) fn neighbour(&self, ns: &NsId, ip: IpAddr) -> bool {
        self.route(ns, &IpNet::from(ip))
    }

    fn contains(&self, ns: &NsId) -> bool {
        self.full.contains(ns) || self.partial.contains_key(ns)
    }
}

/// The routes and entries a scoped plan decides.
#[derive(Default)]
pub(super) struct L3Scope<'a> {
    /// Where it plans them.
    pub reach: L3Reach,
    /// The routes in them, and those written since.
    pub routes: Vec<(&'a str, &'a Item<Route>)>,
    /// The entries in them, and those written since.
    pub arps: Vec<(&'a str, &'a Item<ArpEntry>)>,
    /// The remembered states of the interfaces they name that the plan does not decide.
    pub ifaces: FxHashMap<&'a str, IfaceState<'a>>,
}

impl Scheduler {
    /// The routes and entries a scoped plan of interfaces `names` (with links in
    /// `namespaces`) must decide, or `None` when only a full plan can tell.
    pub(super) fn l3_scope<'a>(
        &'a self,
        l3: &'a L3Touched,
        names: &FxHashSet<&str>,
        namespaces: &BTreeSet<NsId>,
    ) -> Option<L3Scope<'a>> {
        if l3.is_empty() && self.routes.is_empty() && self.arps.is_empty() {
            return Some(L3Scope::default());
        }
        let mut reach = self.l3_reach(l3, names, namespaces)?;
        // Their routes and entries are read (reading them is for a full plan).
        let unread = |ns: &NsId| matches!(self.l3_views.get(ns), Some(L3View::Unknown));
        if reach.full.iter().chain(reach.partial.keys()).any(unread) {
            return None;
        }
        let mut ids: FxHashSet<&L3Id> = FxHashSet::default();
        for (r, ns) in self.resolved_in(&reach) {
            if reach.full.contains(&ns) {
                ids.extend(self.l3_index.in_namespace(r));
                continue;
            }
            // Direct routes decide which gateways are reachable: always planned.
            let direct: Vec<&L3Id> = self.l3_index.direct_in(r).collect();
            let targets = reach.partial.entry(ns).or_default();
            for (_, name) in &direct {
                if let Some(Ok(route)) = self.routes.get(name).map(|i| &i.config) {
                    targets.insert(route.dst);
                }
            }
            ids.extend(direct);
            for t in targets.iter() {
                ids.extend(self.l3_index.for_target(r, *t));
            }
        }
        ids.extend(&l3.names);
        self.scope_items(ids, names, reach)
    }

    /// Where routes and entries are planned, or `None` when a reference involved is not
    /// resolved (resolving it, or letting it go, is for a full plan).
    fn l3_reach(
        &self,
        l3: &L3Touched,
        names: &FxHashSet<&str>,
        namespaces: &BTreeSet<NsId>,
    ) -> Option<L3Reach> {
        let resolved = |r: &NamespaceRef| match self.refs.get(r) {
            Some(RefState::Resolved(ns)) => Some(*ns),
            _ => None,
        };
        for r in l3.refs() {
            resolved(r)?;
        }
        let mut reach = L3Reach {
            full: namespaces.clone(),
            partial: BTreeMap::new(),
        };
        reach.full.extend(l3.direct.iter().filter_map(resolved));
        let named = names.iter().flat_map(|n| self.l3_index.naming(n));
        for (kind, name) in named {
            if let Some(Some(ns)) = self.l3_ref(*kind, name).map(|r| r.and_then(resolved)) {
                reach.full.insert(ns);
            }
        }
        let written = l3
            .targets
            .iter()
            .filter_map(|(r, t)| Some((resolved(r)?, *t)));
        for (ns, target) in written.chain(l3.done.iter().copied()) {
            reach.partial.entry(ns).or_default().insert(target);
        }
        // Whether something still waits for a link there is known from all of them only.
        let whole: Vec<NsId> = reach
            .partial
            .keys()
            .filter(|ns| reach.full.contains(ns) || self.waiting_on_links.contains(ns))
            .copied()
            .collect();
        for ns in whole {
            reach.partial.remove(&ns);
            reach.full.insert(ns);
        }
        Some(reach)
    }

    /// The references resolved into a namespace `reach` plans in, with it.
    fn resolved_in<'a>(&'a self, reach: &L3Reach) -> Vec<(&'a NamespaceRef, NsId)> {
        self.refs
            .iter()
            .filter_map(|(r, s)| match s {
                RefState::Resolved(ns) if reach.contains(ns) => Some((r, *ns)),
                _ => None,
            })
            .collect()
    }

    /// The scope of routes and entries `ids`, with the remembered states of the interfaces
    /// they name outside `names`; `None` when one of those is not remembered.
    fn scope_items<'a>(
        &'a self,
        ids: FxHashSet<&L3Id>,
        names: &FxHashSet<&str>,
        reach: L3Reach,
    ) -> Option<L3Scope<'a>> {
        let mut scope = L3Scope {
            reach,
            ..L3Scope::default()
        };
        let mut needed: FxHashSet<&str> = FxHashSet::default();
        for (kind, name) in ids {
            let iface = match kind {
                ItemKind::Route => self.routes.get_key_value(name).map(|(n, item)| {
                    scope.routes.push((n.as_str(), item));
                    item.config.as_ref().ok().map(Placed::interface)
                }),
                ItemKind::Arp => self.arps.get_key_value(name).map(|(n, item)| {
                    scope.arps.push((n.as_str(), item));
                    item.config.as_ref().ok().map(Placed::interface)
                }),
                ItemKind::Interface => None,
            };
            needed.extend(iface.flatten().filter(|i| !names.contains(i)));
        }
        for iface in needed.into_iter().filter(|i| self.items.contains_key(*i)) {
            if let (name, Some(state)) = self.remembered(iface)? {
                scope.ifaces.insert(name, state);
            }
        }
        Some(scope)
    }

    /// The namespace reference of a route or entry (`Some(None)` when its value is invalid).
    fn l3_ref(&self, kind: ItemKind, name: &str) -> Option<Option<&NamespaceRef>> {
        match kind {
            ItemKind::Route => self
                .routes
                .get(name)
                .map(|i| i.config.as_ref().ok().map(|r| &r.namespace)),
            ItemKind::Arp => self
                .arps
                .get(name)
                .map(|i| i.config.as_ref().ok().map(|a| &a.namespace)),
            ItemKind::Interface => None,
        }
    }

    /// The state the last plan found for interface `name`, with its link; `None` when it
    /// is not remembered or its link is not known any more.
    fn remembered(&self, name: &str) -> Option<(&str, Option<IfaceState<'_>>)> {
        let (name, memo) = self.iface_memo.get_key_value(name)?;
        let state = match memo {
            None => None,
            Some(IfaceMemo::Busy) => Some(IfaceState::Busy),
            Some(IfaceMemo::Absent(why)) => Some(IfaceState::Absent(why.clone())),
            Some(IfaceMemo::Usable { ns, ifindex }) => {
                let owned = match self.views.get(ns) {
                    Some(View::Known(links)) => links.get(ifindex),
                    _ => None,
                };
                let found = || self.foreign.get(ns).and_then(|f| f.links.get(ifindex));
                let link = owned.or_else(found)?;
                Some(IfaceState::Usable { ns: *ns, link })
            }
        };
        Some((name.as_str(), state))
    }

    /// How the interface states a plan found (`ifaces`) change the remembered ones: a full
    /// plan replaces them, a scoped one (deciding `scoped`) updates those it decided.
    pub(super) fn memo_update(
        &self,
        ifaces: &FxHashMap<&str, IfaceState>,
        scoped: Option<&FxHashSet<&str>>,
    ) -> MemoUpdate {
        let memo = |n: &str| (n.to_string(), ifaces.get(n).map(IfaceMemo::of));
        match scoped {
            None => MemoUpdate {
                replace: true,
                set: self.l3_index.interfaces().map(memo).collect(),
                forget: Vec::new(),
            },
            Some(names) => {
                let (set, forget): (Vec<&str>, Vec<&str>) =
                    names.iter().partition(|n| self.l3_index.names_interface(n));
                MemoUpdate {
                    replace: false,
                    set: set.into_iter().map(memo).collect(),
                    forget: forget.into_iter().map(str::to_string).collect(),
                }
            }
        }
    }

    /// Applies a [`MemoUpdate`].
    pub(super) fn apply_memo(&mut self, update: MemoUpdate) {
        if update.replace {
            self.iface_memo.clear();
        }
        for name in update.forget {
            self.iface_memo.remove(&name);
        }
        self.iface_memo.extend(update.set);
    }

    /// Route or entry `id` changed from `old` to `new` (where the valid values are):
    /// reindexes it and notes it for the next plan.
    pub(super) fn l3_changed(&mut self, id: L3Id, old: Option<Place>, new: Option<Place>) {
        if let Some(old) = &old {
            self.l3_index.remove(&id, old);
        }
        if let Some(new) = &new {
            self.l3_index.add(&id, new);
        }
        if let Some(q) = &mut self.quiet {
            q.l3_mut().touch(id, old.into_iter().chain(new));
        }
    }

    /// Rebuilds the route and entry indexes from every route and entry.
    pub(super) fn reindex_l3(&mut self) {
        let mut index = L3Index::default();
        for (name, item) in &self.routes {
            if let Some(place) = place_of(item) {
                index.add(&(ItemKind::Route, name.clone()), &place);
            }
        }
        for (name, item) in &self.arps {
            if let Some(place) = place_of(item) {
                index.add(&(ItemKind::Arp, name.clone()), &place);
            }
        }
        self.l3_index = index;
    }
}
