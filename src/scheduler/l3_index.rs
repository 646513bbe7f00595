//! Reverse indexes over the configured routes and ARP entries, so that a scoped plan finds
//! the ones a change concerns without reading all of them.

use super::Item;
use crate::keys::ItemKind;
use crate::model::{ArpEntry, NamespaceRef, Route};
use ipnet::IpNet;
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::BTreeMap;

/// A route or entry by kind and name.
pub(super) type L3Id = (ItemKind, String);

/// Where a valid route or entry is, as the indexes see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Place {
    /// Its namespace.
    pub ns: NamespaceRef,
    /// The interface it names (empty when none).
    pub iface: String,
    /// A route's destination, an entry's address (as a host prefix).
    pub target: IpNet,
    /// A route without a gateway (it may make other routes' gateways reachable).
    pub direct: bool,
}

/// A route or entry that has a [`Place`].
pub(super) trait Placed {
    /// Where it is.
    fn place(&self) -> Place;
    /// The interface it names (empty when none).
    fn interface(&self) -> &str;
}

impl Placed for Route {
    fn place(&self) -> Place {
        Place {
            ns: self.namespace.clone(),
            iface: self.interface.clone(),
            target: self.dst,
            direct: self.gateway.is_none(),
        }
    }

    fn interface(&self) -> &str {
        &self.interface
    }
}

impl Placed for ArpEntry {
    fn place(&self) -> Place {
        Place {
            ns: self.namespace.clone(),
            iface: self.interface.clone(),
            target: IpNet::from(self.ip),
            direct: false,
        }
    }

    fn interface(&self) -> &str {
        &self.interface
    }
}

/// Where a configured route or entry is, if its value is valid.
pub(super) fn place_of<T: Placed>(item: &Item<T>) -> Option<Place> {
    item.config.as_ref().ok().map(Placed::place)
}

/// Stores route or entry `item` in `map`: its name, and where its previous and its new
/// value are (when valid).
pub(super) fn insert<T: Placed>(
    map: &mut BTreeMap<String, Item<T>>,
    item: Item<T>,
) -> (String, Option<Place>, Option<Place>) {
    let new = place_of(&item);
    let name = item.name().to_string();
    let old = map.insert(name.clone(), item);
    (name, old.as_ref().and_then(place_of), new)
}

fn index<K: std::hash::Hash + Eq>(map: &mut FxHashMap<K, FxHashSet<L3Id>>, key: K, id: &L3Id) {
    map.entry(key).or_default().insert(id.clone());
}

fn remove<K: std::hash::Hash + Eq>(map: &mut FxHashMap<K, FxHashSet<L3Id>>, key: &K, id: &L3Id) {
    if let Some(set) = map.get_mut(key) {
        set.remove(id);
        if set.is_empty() {
            map.remove(key);
        }
    }
}

/// Reverse indexes over the valid routes and entries.
#[derive(Clone, Debug, Default)]
pub(super) struct L3Index {
    /// Namespace reference → the routes and entries in it.
    by_ref: FxHashMap<NamespaceRef, FxHashSet<L3Id>>,
    /// Namespace reference → the routes without a gateway in it.
    direct: FxHashMap<NamespaceRef, FxHashSet<L3Id>>,
    /// (Namespace reference, destination or address) → the routes and entries for it.
    by_target: FxHashMap<(NamespaceRef, IpNet), FxHashSet<L3Id>>,
    /// Interface name → the routes and entries naming it.
    by_iface: FxHashMap<String, FxHashSet<L3Id>>,
}

impl L3Index {
    /// Indexes route or entry `id` at `place`.
    pub(super) fn add(&mut self, id: &L3Id, place: &Place) {
        index(&mut self.by_ref, place.ns.clone(), id);
        index(&mut self.by_target, (place.ns.clone(), place.target), id);
        if place.direct {
            index(&mut self.direct, place.ns.clone(), id);
        }
        if !place.iface.is_empty() {
            index(&mut self.by_iface, place.iface.clone(), id);
        }
    }

    /// Removes route or entry `id`, which was at `place`.
    pub(super) fn remove(&mut self, id: &L3Id, place: &Place) {
        remove(&mut self.by_ref, &place.ns, id);
        remove(&mut self.by_target, &(place.ns.clone(), place.target), id);
        remove(&mut self.direct, &place.ns, id);
        remove(&mut self.by_iface, &place.iface, id);
    }

    /// True when a valid route or entry is in the namespace `r` names.
    pub(super) fn refers_to(&self, r: &NamespaceRef) -> bool {
        self.by_ref.contains_key(r)
    }

    /// The namespace references of the valid routes and entries, each once.
    pub(super) fn namespaces(&self) -> impl Iterator<Item = &NamespaceRef> {
        self.by_ref.keys()
    }

    /// The routes and entries in the namespace `r` names.
    pub(super) fn in_namespace(&self, r: &NamespaceRef) -> impl Iterator<Item = &L3Id> {
        self.by_ref.get(r).into_iter().flatten()
    }

    /// The routes without a gateway in the namespace `r` names.
    pub(super) fn direct_in(&self, r: &NamespaceRef) -> impl Iterator<Item = &L3Id> {
        self.direct.get(r).into_iter().flatten()
    }

    /// The routes to `target` and entries for it in the namespace `r` names.
    pub(super) fn for_target(
        &self,
        r: &NamespaceRef,
        target: IpNet,
    ) -> impl Iterator<Item = &L3Id> {
        self.by_target
            .get(&(r.clone(), target))
            .into_iter()
            .flatten()
    }

    /// The routes and entries naming interface `name`.
    pub(super) fn naming(&self, name: &str) -> impl Iterator<Item = &L3Id> {
        self.by_iface.get(name).into_iter().flatten()
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
