//! Planning only the routes and neighbour entries that may have changed.
//!
//! Routes and entries are decided namespace by namespace: what one may become depends on
//! its interface, the links, addresses and other routes of its namespace, and nothing
//! else. So a quiet scheduler plans them only in the namespaces where something of that
//! changed since its last plan: where a route or entry was written, deleted or applied,
//! where the links of the interfaces it decides again are, and where a route or entry
//! names one of those interfaces. The other interfaces keep the state the last plan found
//! for them, remembered for the ones routes and entries name ([`IfaceMemo`]).

use super::quiet::Quiet;
use super::state::{IfaceState, L3View, RefState, View};
use super::{Item, Scheduler};
use crate::kernel::NsId;
use crate::keys::ItemKind;
use crate::model::{ArpEntry, NamespaceRef, Route};
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::BTreeSet;

/// A route or entry as the indexes see it: its namespace and the interface it names.
pub(super) trait L3Placed {
    /// Its namespace reference and interface name (empty when it names none).
    fn place(&self) -> (&NamespaceRef, &str);
}

impl L3Placed for Route {
    fn place(&self) -> (&NamespaceRef, &str) {
        (&self.namespace, &self.interface)
    }
}

impl L3Placed for ArpEntry {
    fn place(&self) -> (&NamespaceRef, &str) {
        (&self.namespace, &self.interface)
    }
}

/// The namespace and interface of a valid route or entry, owned.
pub(super) fn owned_place<T: L3Placed>(item: &Item<T>) -> Option<(NamespaceRef, String)> {
    let (r, iface) = item.config.as_ref().ok()?.place();
    Some((r.clone(), iface.to_string()))
}

type L3Id = (ItemKind, String);

/// Reverse indexes over the valid routes and entries.
#[derive(Clone, Debug, Default)]
pub(super) struct L3Index {
    /// Namespace reference → the routes and entries in it.
    by_ref: FxHashMap<NamespaceRef, FxHashSet<L3Id>>,
    /// Interface name → the routes and entries naming it.
    by_iface: FxHashMap<String, FxHashSet<L3Id>>,
}

impl L3Index {
    /// Indexes route or entry `id` at `place`.
    pub(super) fn add(&mut self, id: &L3Id, (r, iface): &(NamespaceRef, String)) {
        self.by_ref.entry(r.clone()).or_default().insert(id.clone());
        if !iface.is_empty() {
            self.by_iface
                .entry(iface.clone())
                .or_default()
                .insert(id.clone());
        }
    }

    /// Removes route or entry `id`, which was at `place`.
    pub(super) fn remove(&mut self, id: &L3Id, (r, iface): &(NamespaceRef, String)) {
        if let Some(set) = self.by_ref.get_mut(r) {
            set.remove(id);
            if set.is_empty() {
                self.by_ref.remove(r);
            }
        }
        if let Some(set) = self.by_iface.get_mut(iface) {
            set.remove(id);
            if set.is_empty() {
                self.by_iface.remove(iface);
            }
        }
    }

    /// True when a valid route or entry is in the namespace `r` names.
    pub(super) fn refers_to(&self, r: &NamespaceRef) -> bool {
        self.by_ref.contains_key(r)
    }

    /// The namespace references of the valid routes and entries, each once.
    pub(super) fn namespaces(&self) -> impl Iterator<Item = &NamespaceRef> {
        self.by_ref.keys()
    }

    /// True when a valid route or entry names interface `name`.
    pub(super) fn names_interface(&self, name: &str) -> bool {
        self.by_iface.contains_key(name)
    }

    /// The interfaces routes and entries name.
    pub(super) fn interfaces(&self) -> impl Iterator<Item = &str> {
        self.by_iface.keys().map(String::as_str)
    }
}

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

/// The routes and entries a scoped plan decides.
#[derive(Default)]
pub(super) struct L3Scope<'a> {
    /// The namespaces whose routes and entries it plans.
    pub namespaces: BTreeSet<NsId>,
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
        q: &'a Quiet,
        names: &FxHashSet<&str>,
        namespaces: &BTreeSet<NsId>,
    ) -> Option<L3Scope<'a>> {
        let untouched = q.l3_names().is_empty() && q.l3_namespaces().is_empty();
        if untouched && self.routes.is_empty() && self.arps.is_empty() {
            return Some(L3Scope::default());
        }
        let mut scope_ns: BTreeSet<NsId> = q.l3_namespaces().clone();
        scope_ns.extend(namespaces);
        for r in q.l3_refs() {
            match self.refs.get(r) {
                Some(RefState::Resolved(ns)) => scope_ns.insert(*ns),
                // Resolving it (or letting it go) is for a full plan.
                _ => return None,
            };
        }
        let named = names
            .iter()
            .filter_map(|n| self.l3_index.by_iface.get(*n))
            .flatten();
        for (kind, name) in named {
            if let Some(Some(r)) = self.l3_ref(*kind, name) {
                if let Some(RefState::Resolved(ns)) = self.refs.get(r) {
                    scope_ns.insert(*ns);
                }
            }
        }
        // Their routes and entries are read (reading them is for a full plan).
        if scope_ns
            .iter()
            .any(|ns| matches!(self.l3_views.get(ns), Some(L3View::Unknown)))
        {
            return None;
        }
        let mut ids: FxHashSet<&L3Id> = self
            .refs
            .iter()
            .filter(|(_, s)| matches!(s, RefState::Resolved(ns) if scope_ns.contains(ns)))
            .filter_map(|(r, _)| self.l3_index.by_ref.get(r))
            .flatten()
            .collect();
        ids.extend(q.l3_names());
        let mut scope = L3Scope {
            namespaces: scope_ns,
            ..L3Scope::default()
        };
        let mut needed: FxHashSet<&str> = FxHashSet::default();
        for (kind, name) in ids {
            let iface = match kind {
                ItemKind::Route => self.routes.get_key_value(name).map(|(n, item)| {
                    scope.routes.push((n.as_str(), item));
                    item.config.as_ref().ok().map(|r| r.place().1)
                }),
                ItemKind::Arp => self.arps.get_key_value(name).map(|(n, item)| {
                    scope.arps.push((n.as_str(), item));
                    item.config.as_ref().ok().map(|a| a.place().1)
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
                .map(|i| i.config.as_ref().ok().map(|r| r.place().0)),
            ItemKind::Arp => self
                .arps
                .get(name)
                .map(|i| i.config.as_ref().ok().map(|a| a.place().0)),
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

    /// Route or entry `id` changed from `old` to `new` (namespace and interface of the
    /// valid values): reindexes it and notes it for the next plan.
    pub(super) fn l3_changed(
        &mut self,
        id: L3Id,
        old: Option<(NamespaceRef, String)>,
        new: Option<(NamespaceRef, String)>,
    ) {
        if let Some(old) = &old {
            self.l3_index.remove(&id, old);
        }
        if let Some(new) = &new {
            self.l3_index.add(&id, new);
        }
        if let Some(q) = &mut self.quiet {
            q.touch_l3(id, old.map(|p| p.0), new.map(|p| p.0));
        }
    }

    /// Rebuilds the route and entry indexes from every route and entry.
    pub(super) fn reindex_l3(&mut self) {
        let mut index = L3Index::default();
        for (name, item) in &self.routes {
            if let Some(place) = owned_place(item) {
                index.add(&(ItemKind::Route, name.clone()), &place);
            }
        }
        for (name, item) in &self.arps {
            if let Some(place) = owned_place(item) {
                index.add(&(ItemKind::Arp, name.clone()), &place);
            }
        }
        self.l3_index = index;
    }
}
