//! Planning only what changed.
//!
//! A plan reads every item, which costs time proportional to the whole configuration (about
//! half a millisecond for a thousand VETH ends), on the path from an etcd event to the kernel.
//! When the scheduler is *quiet* (the last plan had nothing to do for any item outside a known
//! set, and nothing that could change that has happened since), a plan only has to decide
//! the items that were touched since and those whose decision depends on them: their peers,
//! the items naming them as peer, and the items sharing a host name with them. Everything
//! else would be decided exactly as before, with no operation and the same status.
//!
//! Routes and ARP entries are planned only where what they depend on changed (see
//! `quiet_l3`).
//!
//! Anything this module cannot account for (a namespace resolved or read, a failure, a
//! retry coming due, a link without our alias) makes the next plan a full one. In tests
//! every scoped plan is checked against a full plan of the same state.

use super::quiet_l3::{L3Scope, L3Touched};
use super::state::{Claim, RefState, View};
use super::{Item, ItemStatus, Scheduler};
use crate::kernel::NsId;
use crate::keys::ItemKind;
use crate::model::{Interface, NamespaceRef};
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::BTreeSet;
use std::time::Duration;

/// Reverse indexes over the valid interface values, kept with the items, so that the items
/// related to a touched one are found without reading every item.
#[derive(Clone, Debug, Default)]
pub(super) struct ItemIndex {
    /// Peer (or VRF) name → names of the items naming it as their peer (or VRF).
    by_peer: FxHashMap<String, FxHashSet<String>>,
    /// Host name → names of the items with it.
    by_host: FxHashMap<String, FxHashSet<String>>,
    /// Namespace reference → names of the items referring to it.
    by_ref: FxHashMap<NamespaceRef, FxHashSet<String>>,
}

impl ItemIndex {
    /// Indexes the value of item `name`.
    pub(super) fn add(&mut self, name: &str, item: &Item) {
        let Ok(i) = &item.config else { return };
        let set = |map: &mut FxHashMap<String, FxHashSet<String>>, key: &str| {
            if key.is_empty() {
                return;
            }
            map.entry(key.to_string())
                .or_default()
                .insert(name.to_string());
        };
        set(&mut self.by_peer, i.veth_peer());
        set(&mut self.by_peer, &i.vrf_master_interface);
        set(&mut self.by_host, &i.host_if_name);
        self.by_ref
            .entry(i.namespace.clone())
            .or_default()
            .insert(name.to_string());
    }

    /// Removes the value of item `name` from the indexes.
    pub(super) fn remove(&mut self, name: &str, item: &Item) {
        let Ok(i) = &item.config else { return };
        let unset = |map: &mut FxHashMap<String, FxHashSet<String>>, key: &str| {
            if let Some(set) = map.get_mut(key) {
                set.remove(name);
                if set.is_empty() {
                    map.remove(key);
                }
            }
        };
        unset(&mut self.by_peer, i.veth_peer());
        unset(&mut self.by_peer, &i.vrf_master_interface);
        unset(&mut self.by_host, &i.host_if_name);
        if let Some(set) = self.by_ref.get_mut(&i.namespace) {
            set.remove(name);
            if set.is_empty() {
                self.by_ref.remove(&i.namespace);
            }
        }
    }

    fn named_as_peer(&self, name: &str) -> impl Iterator<Item = &str> {
        self.by_peer
            .get(name)
            .into_iter()
            .flatten()
            .map(String::as_str)
    }

    fn with_host(&self, host: &str) -> impl Iterator<Item = &str> {
        self.by_host
            .get(host)
            .into_iter()
            .flatten()
            .map(String::as_str)
    }
}

/// What a quiet scheduler has seen since its last plan.
#[derive(Clone, Debug, Default)]
pub(super) struct Quiet {
    /// The earliest retry that was still waiting at the last plan.
    until: Option<Duration>,
    /// Items written or deleted since, or with operations in, the last plan.
    names: FxHashSet<String>,
    /// Host names, peers and namespace references those items had before they changed.
    old_hosts: FxHashSet<String>,
    old_peers: FxHashSet<String>,
    old_refs: FxHashSet<NamespaceRef>,
    /// Namespaces whose link views changed since.
    namespaces: BTreeSet<NsId>,
    /// Routes and entries changed since.
    l3: L3Touched,
}

impl Quiet {
    /// Quiet after a plan: nothing outside `names` had anything to do, and the earliest
    /// retry waiting is at `until`.
    pub(super) fn after_plan(until: Option<Duration>, names: FxHashSet<String>) -> Self {
        Quiet {
            until,
            names,
            ..Quiet::default()
        }
    }

    /// Item `name` is written or deleted; `old` is its value until now.
    pub(super) fn touch(&mut self, name: &str, old: Option<&Interface>) {
        self.names.insert(name.to_string());
        if let Some(i) = old {
            self.old_hosts.insert(i.host_if_name.clone());
            self.old_peers.insert(i.veth_peer().to_string());
            self.old_refs.insert(i.namespace.clone());
        }
    }

    /// The routes and entries changed since.
    pub(super) fn l3(&self) -> &L3Touched {
        &self.l3
    }

    /// To note routes and entries changed.
    pub(super) fn l3_mut(&mut self) -> &mut L3Touched {
        &mut self.l3
    }

    /// A link of item `name` in namespace `ns` was created, changed or deleted.
    pub(super) fn touch_link(&mut self, ns: NsId, name: Option<&str>) {
        self.namespaces.insert(ns);
        if let Some(name) = name {
            self.names.insert(name.to_string());
        }
    }
}

/// The items a scoped plan decides, with the links they own.
pub(super) struct Scope<'a> {
    /// Names of the items (configured or not) whose decisions may have changed.
    pub names: FxHashSet<&'a str>,
    /// The configured ones among them, in name order.
    pub order: Vec<(&'a str, &'a Item)>,
    /// The links each of them owns.
    pub claims: FxHashMap<&'a str, Vec<Claim<'a>>>,
    /// The routes and entries to decide with them.
    pub l3: L3Scope<'a>,
}

impl Scheduler {
    /// The scope of a plan that decides only what changed, or `None` when the next plan must
    /// read everything.
    pub(super) fn quiet_scope(&self, now: Duration) -> Option<Scope<'_>> {
        let q = self.quiet.as_ref()?;
        if q.until.is_some_and(|t| now >= t)
            || !self.refresh.is_empty()
            || !self.link_backoff.is_empty()
            || !self.foreign.is_empty()
        {
            return None;
        }
        if self.too_many(q.names.len()) {
            return None;
        }
        // The touched items and everything whose decision depends on them.
        let mut names: FxHashSet<&str> = FxHashSet::default();
        let mut work: Vec<&str> = Vec::new();
        for n in q.names.iter().chain(&q.old_peers) {
            if names.insert(n) {
                work.push(n);
            }
        }
        for h in &q.old_hosts {
            for n in self.index.with_host(h) {
                if names.insert(n) {
                    work.push(n);
                }
            }
        }
        while let Some(n) = work.pop() {
            let mut related: Vec<&str> = self.index.named_as_peer(n).collect();
            if let Some(Ok(i)) = self.items.get(n).map(|i| &i.config) {
                related.push(i.veth_peer());
                related.push(&i.vrf_master_interface);
                related.extend(self.index.with_host(&i.host_if_name));
            }
            for r in related.into_iter().filter(|r| !r.is_empty()) {
                if names.insert(r) {
                    work.push(r);
                }
            }
        }
        if self.too_many(names.len()) {
            return None;
        }

        // Every namespace of the configured ones is resolved (nothing to look up).
        let mut namespaces = q.namespaces.clone();
        let mut order = Vec::with_capacity(names.len());
        for (name, item) in names.iter().filter_map(|n| self.items.get_key_value(*n)) {
            order.push((name.as_str(), item));
            if let Ok(i) = &item.config {
                // Links the agent does not own are planned in full plans only.
                if !i.link.created_by_agent() {
                    return None;
                }
                match self.refs.get(&i.namespace) {
                    Some(RefState::Resolved(ns)) => namespaces.insert(*ns),
                    _ => return None,
                };
            }
        }
        order.sort_unstable_by_key(|(n, _)| *n);
        for r in &q.old_refs {
            if let Some(RefState::Resolved(ns)) = self.refs.get(r) {
                namespaces.insert(*ns);
            }
        }
        // A namespace that may no longer be referred to is let go of by a full plan.
        let scope_refs = order
            .iter()
            .filter_map(|(_, i)| i.config.as_ref().ok().map(|i| &i.namespace));
        if q.old_refs
            .iter()
            .chain(q.l3().refs())
            .chain(scope_refs)
            .any(|r| !self.referenced_outside(r, &names))
        {
            return None;
        }

        // Their links. After a plan that left them quiet, a link carrying an item's alias is
        // in that item's namespace, in one it was configured in before (`old_refs`), or in
        // one whose links changed since (`q.namespaces`): only those are read, not the links
        // of every namespace. A link without our alias there (adopted by name, or an orphan)
        // may concern any item, so it needs a full plan.
        let mut claims: FxHashMap<&str, Vec<Claim>> = FxHashMap::default();
        for ns in &namespaces {
            let Some(View::Known(links)) = self.views.get(ns) else {
                continue;
            };
            for link in links.values() {
                let (name, peer) = link
                    .alias
                    .as_deref()
                    .and_then(|a| self.keys.split_link_alias(a))?;
                if let Some(&name) = names.get(name) {
                    claims.entry(name).or_default().push(Claim {
                        ns: *ns,
                        link,
                        alias_peer: Some(peer),
                    });
                }
            }
        }

        let l3 = self.l3_scope(q.l3(), &names, &namespaces)?;
        Some(Scope {
            names,
            order,
            claims,
            l3,
        })
    }

    /// True when deciding `n` items is about as costly as reading everything.
    fn too_many(&self, n: usize) -> bool {
        self.items.len() > 32 && n * 2 > self.items.len()
    }

    /// True when `r` is referred to regardless of the items `names`: it is the default
    /// namespace, or a route or ARP entry, or a valid item outside `names` refers to it
    /// (their validity has not changed since the last plan, which marked invalid ones).
    fn referenced_outside(&self, r: &NamespaceRef, names: &FxHashSet<&str>) -> bool {
        let valid_outside = |n: &String| {
            !names.contains(n.as_str())
                && !matches!(
                    self.status.get(&(ItemKind::Interface, n.clone())),
                    Some(ItemStatus::Invalid { .. })
                )
        };
        *r == NamespaceRef::Default
            || self
                .index
                .by_ref
                .get(r)
                .is_some_and(|ns| ns.iter().any(valid_outside))
            || self.l3_index.refers_to(r)
    }
}
