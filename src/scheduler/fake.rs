//! An in-memory kernel for unit tests of the scheduler's logic (never a proof that a feature
//! works against the real kernel: the integration tests are).

use super::ops::l3::{L3Op, L3Outcome};
use super::ops::{FailureKind, Op, OpOutcome, OwnedLink};
use super::rounds::{run_plan, Kernel};
use super::{Plan, Scheduler};
use crate::kernel::{KernelEvent, KernelLink, KernelNeighbour, KernelRoute, LinkPresence, NsId};
use crate::keys::KeyTree;
use crate::model::{MacAddr, NamespaceRef};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// A link in the fake kernel: what the kernel holds plus its VETH peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeLink {
    pub link: KernelLink,
    pub peer: (NsId, u32),
}

/// The fake kernel and the namespaces that exist in its world.
#[derive(Clone, Debug)]
pub struct FakeKernel {
    pub keys: KeyTree,
    pub group: u32,
    /// The transient group links are deleted through (derived from `group`, as by default).
    pub delete_group: u32,
    /// Which references name an existing namespace.
    pub world: BTreeMap<NamespaceRef, NsId>,
    pub links: BTreeMap<NsId, BTreeMap<u32, FakeLink>>,
    next_id: u64,
    next_index: u32,
    /// Write operations executed (creates, updates, deletes).
    pub writes: usize,
    /// One-shot faults: the next operation of this kind fails. For group deletions:
    /// `delete` fails the whole operation, `group` the group deletion after the links were
    /// moved (they are then deleted one by one), `stranded` everything after the moves (the
    /// links stay in the transient group, as when the agent stops half-way).
    pub fail_next: BTreeSet<&'static str>,
    /// Lasting faults: creating a link with one of these names fails (after creating it, as
    /// when the kernel refuses the alias of a new pair).
    pub fail_names: BTreeSet<String>,
    /// Routes of every namespace (any protocol).
    pub routes: BTreeMap<NsId, Vec<KernelRoute>>,
    /// Neighbour entries of every namespace (any protocol).
    pub neighbours: BTreeMap<NsId, Vec<KernelNeighbour>>,
    /// Route/neighbour writes executed.
    pub l3_writes: usize,
}

impl FakeKernel {
    pub fn new(keys: KeyTree, group: u32) -> Self {
        let mut k = FakeKernel {
            delete_group: crate::owned::marks::default_delete_group(group),
            keys,
            group,
            world: BTreeMap::new(),
            links: BTreeMap::new(),
            next_id: 1,
            next_index: 10,
            writes: 0,
            fail_next: BTreeSet::new(),
            fail_names: BTreeSet::new(),
            routes: BTreeMap::new(),
            neighbours: BTreeMap::new(),
            l3_writes: 0,
        };
        k.add_namespace(NamespaceRef::Default);
        k
    }

    /// Makes a namespace exist (a process starts, `ip netns add`, ...).
    pub fn add_namespace(&mut self, r: NamespaceRef) -> NsId {
        if let Some(id) = self.world.get(&r) {
            return *id;
        }
        let id = NsId {
            dev: 4,
            ino: self.next_id,
        };
        self.next_id += 1;
        // Every namespace has its loopback link, up only in the initial namespace.
        let lo = FakeLink {
            link: KernelLink {
                ifindex: 1,
                name: "lo".into(),
                alias: None,
                group: 0,
                mtu: 65536,
                mac: None,
                up: r == NamespaceRef::Default,
                addresses: Vec::new(),
                kind: String::new(),
                master: 0,
                vrf_table: None,
                marked_addresses: Vec::new(),
            },
            peer: (id, 1),
        };
        self.world.insert(r, id);
        self.links.insert(id, BTreeMap::from([(1, lo)]));
        id
    }

    /// Destroys a namespace with every link in it; VETH peers elsewhere die too.
    pub fn remove_namespace(&mut self, r: &NamespaceRef) {
        let Some(id) = self.world.remove(r) else {
            return;
        };
        let dead = self.links.remove(&id).unwrap_or_default();
        self.routes.remove(&id);
        self.neighbours.remove(&id);
        for l in dead.values() {
            self.remove_link(l.peer.0, l.peer.1);
        }
    }

    /// Removes a link; the kernel flushes its routes and neighbour entries with it.
    fn remove_link(&mut self, ns: NsId, ifindex: u32) -> Option<FakeLink> {
        let links = self.links.get_mut(&ns)?;
        let l = links.remove(&ifindex)?;
        // The links enslaved to a VRF are released with it.
        for other in links.values_mut().filter(|o| o.link.master == ifindex) {
            other.link.master = 0;
        }
        self.flush_routes(ns, ifindex);
        if let Some(n) = self.neighbours.get_mut(&ns) {
            n.retain(|e| e.ifindex != ifindex);
        }
        Some(l)
    }

    /// Someone deletes a link behind the agent's back (its VETH peer goes with it); the
    /// events the kernel sends about it.
    pub fn delete_behind(&mut self, ns: NsId, ifindex: u32) -> Vec<(NsId, KernelEvent)> {
        let Some(gone) = self.remove_link(ns, ifindex) else {
            return Vec::new();
        };
        let (peer_ns, peer_index) = gone.peer;
        let mut events = vec![(ns, KernelEvent::LinkGone { ifindex })];
        if self.remove_link(peer_ns, peer_index).is_some() {
            events.push((
                peer_ns,
                KernelEvent::LinkGone {
                    ifindex: peer_index,
                },
            ));
        }
        events
    }

    fn flush_routes(&mut self, ns: NsId, ifindex: u32) {
        if let Some(r) = self.routes.get_mut(&ns) {
            r.retain(|r| r.oif != ifindex);
        }
    }

    /// Adds a route by hand (another program's).
    pub fn add_foreign_route(&mut self, ns: NsId, route: KernelRoute) {
        self.routes.entry(ns).or_default().push(route);
    }

    /// Routes of a namespace.
    pub fn routes_in(&self, r: &NamespaceRef) -> Vec<KernelRoute> {
        self.world
            .get(r)
            .and_then(|id| self.routes.get(id))
            .cloned()
            .unwrap_or_default()
    }

    /// Neighbour entries of a namespace.
    pub fn neighbours_in(&self, r: &NamespaceRef) -> Vec<KernelNeighbour> {
        self.world
            .get(r)
            .and_then(|id| self.neighbours.get(id))
            .cloned()
            .unwrap_or_default()
    }

    fn execute_l3(&mut self, op: &L3Op) -> L3Outcome {
        let fail = |kind, error: String| L3Outcome::Failed { kind, error };
        let ns = op.ns();
        if self.fail_next.remove("l3") {
            return fail(FailureKind::Other, "injected l3 failure".into());
        }
        let Some(links) = self.links.get(&ns) else {
            return fail(FailureKind::NamespaceGone, "namespace is gone".into());
        };
        match op {
            L3Op::Dump { protocol, .. } => L3Outcome::Dumped {
                routes: self
                    .routes
                    .get(&ns)
                    .into_iter()
                    .flatten()
                    .filter(|r| r.protocol == *protocol)
                    .cloned()
                    .collect(),
                neighbours: self
                    .neighbours
                    .get(&ns)
                    .into_iter()
                    .flatten()
                    .filter(|n| n.protocol == Some(*protocol))
                    .cloned()
                    .collect(),
                links: links
                    .values()
                    .map(|l| LinkPresence {
                        ifindex: l.link.ifindex,
                        name: l.link.name.clone(),
                        up: l.link.up,
                        addresses: l.link.addresses.clone(),
                        direct_routes: self
                            .routes
                            .get(&ns)
                            .into_iter()
                            .flatten()
                            .filter(|r| r.protocol != *protocol && r.gateway.is_none())
                            .filter(|r| r.oif == l.link.ifindex && r.scope != 254)
                            .map(|r| r.dst)
                            .collect(),
                    })
                    .collect(),
            },
            L3Op::AddRoute { route, .. } | L3Op::ReplaceRoute { route, .. } => {
                if route.oif != 0 {
                    match links.get(&route.oif) {
                        None => return fail(FailureKind::LinkGone, "no such device".into()),
                        Some(l) if !l.link.up => {
                            return fail(FailureKind::Other, "network is down".into())
                        }
                        _ => {}
                    }
                }
                // Like the kernel, a route without a device gets the one its gateway is
                // reached through: an address prefix, else a link-scope route.
                let mut route = route.clone();
                if let (0, Some(gw)) = (route.oif, route.gateway) {
                    // The longest prefix wins, as in a FIB lookup.
                    let by_address = links.values().filter(|l| l.link.up).flat_map(|l| {
                        l.link
                            .addresses
                            .iter()
                            .filter(|a| a.contains(&gw))
                            .map(|a| (a.prefix_len(), l.link.ifindex))
                    });
                    let by_route = self
                        .routes
                        .get(&ns)
                        .into_iter()
                        .flatten()
                        .filter(|r| r.scope == 253 && r.gateway.is_none() && r.dst.contains(&gw))
                        .map(|r| (r.dst.prefix_len(), r.oif));
                    match by_address.chain(by_route).max_by_key(|(len, _)| *len) {
                        Some((_, oif)) => route.oif = oif,
                        None => return fail(FailureKind::Other, "network is unreachable".into()),
                    }
                }
                // And refuses a gateway that is not on the route's device.
                if let (oif @ 1.., Some(gw)) = (route.oif, route.gateway) {
                    // Every IPv6 link has fe80::/64 (the kernel's own address, not listed).
                    let link_local = matches!(gw, std::net::IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80);
                    let on_link = link_local
                        || links
                            .get(&oif)
                            .is_some_and(|l| l.link.addresses.iter().any(|a| a.contains(&gw)));
                    let by_route = self.routes.get(&ns).into_iter().flatten().any(|r| {
                        r.scope == 253 && r.gateway.is_none() && r.oif == oif && r.dst.contains(&gw)
                    });
                    if !on_link && !by_route {
                        return fail(FailureKind::Other, "nexthop has invalid gateway".into());
                    }
                }
                let route = &route;
                let table = self.routes.entry(ns).or_default();
                let same = |r: &KernelRoute| {
                    (r.table, r.dst, r.metric) == (route.table, route.dst, route.metric)
                };
                if matches!(op, L3Op::AddRoute { .. }) && table.iter().any(same) {
                    return fail(FailureKind::Other, "route exists".into());
                }
                table.retain(|r| !same(r));
                table.push(route.clone());
                self.l3_writes += 1;
                L3Outcome::Done
            }
            L3Op::DeleteRoute { route, .. } => {
                // Like the kernel: the identity, and of the rest only what the request gives.
                let matches = |r: &KernelRoute| {
                    (r.table, r.dst, r.metric, r.protocol)
                        == (route.table, route.dst, route.metric, route.protocol)
                        && (route.oif == 0 || r.oif == route.oif)
                        && (route.gateway.is_none() || r.gateway == route.gateway)
                };
                // A route that is already gone is done, as in the executor (ESRCH).
                if let Some(t) = self.routes.get_mut(&ns) {
                    if let Some(i) = t.iter().position(matches) {
                        t.remove(i);
                    }
                }
                self.l3_writes += 1;
                L3Outcome::Done
            }
            L3Op::SetNeighbour { neighbour, .. } => {
                if !links.contains_key(&neighbour.ifindex) {
                    return fail(FailureKind::LinkGone, "no such device".into());
                }
                let t = self.neighbours.entry(ns).or_default();
                t.retain(|n| (n.ifindex, n.ip) != (neighbour.ifindex, neighbour.ip));
                t.push(neighbour.clone());
                self.l3_writes += 1;
                L3Outcome::Done
            }
            L3Op::DeleteNeighbour { neighbour, .. } => {
                if let Some(t) = self.neighbours.get_mut(&ns) {
                    t.retain(|n| n != neighbour);
                }
                self.l3_writes += 1;
                L3Outcome::Done
            }
        }
    }

    /// Adds a link nobody owns (made by hand).
    pub fn add_foreign_link(&mut self, ns: NsId, name: &str) -> u32 {
        let index = self.index();
        let link = KernelLink {
            ifindex: index,
            name: name.into(),
            alias: None,
            group: 0,
            mtu: 1500,
            mac: None,
            up: false,
            addresses: vec![],
            kind: "veth".into(),
            master: 0,
            vrf_table: None,
            marked_addresses: Vec::new(),
        };
        self.links.get_mut(&ns).unwrap().insert(
            index,
            FakeLink {
                link,
                peer: (ns, 0),
            },
        );
        index
    }

    /// The failure of creating `end` when a link already has its name in its namespace (a
    /// conflict unless the agent owns that link), as the kernel's EEXIST is classified.
    fn name_taken(&self, end: &super::ops::EndSpec) -> Option<OpOutcome> {
        let l = self.links[&end.ns]
            .values()
            .find(|l| l.link.name == end.name)?;
        let kind = if self.owned(&l.link) {
            FailureKind::Other
        } else {
            FailureKind::Conflict
        };
        Some(OpOutcome::Failed {
            kind,
            error: format!("link {} exists", end.name),
        })
    }

    /// Creates a single owned link (dummy, TAP, VRF) as the kernel would.
    fn create_single(&mut self, end: &super::ops::EndSpec, kind: OwnedLink) -> OpOutcome {
        if let Some(f) = self.fault("create") {
            return f;
        }
        if !self.links.contains_key(&end.ns) {
            return gone();
        }
        if let Some(taken) = self.name_taken(end) {
            return taken;
        }
        self.writes += 1;
        let index = self.index();
        let link = KernelLink {
            ifindex: index,
            name: end.name.clone(),
            alias: Some(end.alias.clone()),
            group: self.group,
            mtu: match (end.mtu, kind) {
                (0, kind) => kind.default_mtu,
                (m, _) => m,
            },
            mac: Some(end.mac.unwrap_or(MacAddr([2, 0, 0, 0, 1, index as u8]))),
            up: end.up,
            addresses: end.addresses.clone(),
            kind: kind.kernel_kind().into(),
            master: end.master,
            vrf_table: kind.table,
            marked_addresses: Vec::new(),
        };
        let fake = FakeLink {
            link: link.clone(),
            peer: (end.ns, 0),
        };
        self.links.get_mut(&end.ns).unwrap().insert(index, fake);
        OpOutcome::Created { link }
    }

    fn index(&mut self) -> u32 {
        self.next_index += 1;
        self.next_index
    }

    /// Adds a TAP nobody owns (made by another program, for an AUTO_TAP).
    pub fn add_foreign_tap(&mut self, ns: NsId, name: &str) -> u32 {
        let index = self.add_foreign_link(ns, name);
        let link = &mut self
            .links
            .get_mut(&ns)
            .unwrap()
            .get_mut(&index)
            .unwrap()
            .link;
        link.kind = "tun".into();
        link.mac = Some(MacAddr([2, 0, 0, 0, 9, index as u8]));
        index
    }

    /// Moves link `ifindex` of `from` into `to` as `name` (keeping its index when it is free
    /// there); its new index, or the failure.
    fn move_link(
        &mut self,
        from: NsId,
        ifindex: u32,
        to: NsId,
        name: &str,
    ) -> Result<u32, Box<OpOutcome>> {
        let busy = self.links.get(&to).is_some_and(|links| {
            links
                .values()
                .any(|l| l.link.name == name && (from, l.link.ifindex) != (to, ifindex))
        });
        if busy {
            return Err(Box::new(OpOutcome::Failed {
                kind: FailureKind::Other,
                error: format!("name {name} busy"),
            }));
        }
        let Some(mut l) = self.links.get_mut(&from).and_then(|m| m.remove(&ifindex)) else {
            return Err(Box::new(OpOutcome::Failed {
                kind: FailureKind::LinkGone,
                error: "no such link".into(),
            }));
        };
        // The kernel flushes its routes and neighbour entries as it leaves.
        self.flush_routes(from, ifindex);
        if let Some(n) = self.neighbours.get_mut(&from) {
            n.retain(|e| e.ifindex != ifindex);
        }
        let index = if self.links[&to].contains_key(&ifindex) {
            self.index()
        } else {
            ifindex
        };
        l.link.ifindex = index;
        l.link.name = name.to_string();
        l.peer = (to, 0);
        self.links.get_mut(&to).unwrap().insert(index, l);
        Ok(index)
    }

    fn adopt(&mut self, from: NsId, ifindex: u32, end: &super::ops::EndSpec) -> OpOutcome {
        if let Some(f) = self.fault("create") {
            return f;
        }
        if !self.links.contains_key(&from) || !self.links.contains_key(&end.ns) {
            return gone();
        }
        let index = match self.move_link(from, ifindex, end.ns, &end.name) {
            Ok(index) => index,
            Err(failed) => return *failed,
        };
        self.writes += 1;
        let l = &mut self
            .links
            .get_mut(&end.ns)
            .unwrap()
            .get_mut(&index)
            .unwrap()
            .link;
        l.alias = Some(end.alias.clone());
        if end.mtu != 0 {
            l.mtu = end.mtu;
        }
        if let Some(mac) = end.mac {
            l.mac = Some(mac);
        }
        l.up = end.up;
        l.master = end.master;
        l.addresses = end.addresses.clone();
        l.addresses.sort();
        l.marked_addresses.clear();
        OpOutcome::Created { link: l.clone() }
    }

    fn give_back(&mut self, ns: NsId, ifindex: u32, temp_name: &str, to: NsId) -> OpOutcome {
        if let Some(f) = self.fault("delete") {
            return f;
        }
        if !self
            .links
            .get(&ns)
            .is_some_and(|m| m.contains_key(&ifindex))
        {
            return OpOutcome::Deleted;
        }
        let index = match self.move_link(ns, ifindex, to, temp_name) {
            Ok(index) => index,
            Err(failed) => return *failed,
        };
        self.writes += 1;
        let l = &mut self
            .links
            .get_mut(&to)
            .unwrap()
            .get_mut(&index)
            .unwrap()
            .link;
        l.alias = None;
        l.up = false;
        l.master = 0;
        l.addresses.clear();
        OpOutcome::Deleted
    }

    fn owned(&self, l: &KernelLink) -> bool {
        l.group == self.group
            || l.group == self.delete_group
            || l.alias
                .as_deref()
                .is_some_and(|a| a.starts_with(&self.keys.agent_prefix()))
    }

    fn fault(&mut self, what: &'static str) -> Option<OpOutcome> {
        self.fail_next.remove(what).then(|| OpOutcome::Failed {
            kind: FailureKind::Other,
            error: format!("injected {what} failure"),
        })
    }

    /// Runs one operation.
    pub fn execute(&mut self, op: &Op) -> OpOutcome {
        match op {
            Op::ResolveNs { reference, create } => {
                if let Some(f) = self.fault("resolve") {
                    return f;
                }
                match self.world.get(reference) {
                    Some(ns) => OpOutcome::NsResolved { ns: *ns },
                    None if *create && matches!(reference, NamespaceRef::Named(_)) => {
                        OpOutcome::NsResolved {
                            ns: self.add_namespace(reference.clone()),
                        }
                    }
                    None if matches!(reference, NamespaceRef::File(p) if p.starts_with("/etc")) => {
                        OpOutcome::NsUnavailable {
                            reason: format!("{} is not a network namespace", reference),
                            invalid: true,
                        }
                    }
                    None => OpOutcome::NsUnavailable {
                        invalid: false,
                        reason: format!("{reference} does not exist"),
                    },
                }
            }
            Op::DumpNs { ns } => {
                if let Some(f) = self.fault("dump") {
                    return f;
                }
                match self.links.get(ns) {
                    None => gone(),
                    Some(links) => OpOutcome::Dumped {
                        links: links
                            .values()
                            .map(|l| l.link.clone())
                            .filter(|l| self.owned(l))
                            .collect(),
                    },
                }
            }
            Op::ReadLinks { ns, names, .. } => {
                if let Some(f) = self.fault("dump") {
                    return f;
                }
                match self.links.get(ns) {
                    None => gone(),
                    Some(links) => OpOutcome::LinksRead {
                        links: links
                            .values()
                            .map(|l| l.link.clone())
                            .filter(|l| !self.owned(l))
                            .filter(|l| names.contains(&l.name) || !l.marked_addresses.is_empty())
                            .collect(),
                    },
                }
            }
            Op::CreatePair { a, b } => {
                if let Some(f) = self.fault("create") {
                    return f;
                }
                if !self.links.contains_key(&a.ns) || !self.links.contains_key(&b.ns) {
                    return gone();
                }
                if let Some(taken) = [a, b].into_iter().find_map(|s| self.name_taken(s)) {
                    return taken;
                }
                if a.ns == b.ns && a.name == b.name {
                    return OpOutcome::Failed {
                        kind: FailureKind::Other,
                        error: "both ends have one name".into(),
                    };
                }
                self.writes += 1;
                let (ia, ib) = (self.index(), self.index());
                let mk = |s: &super::ops::EndSpec, index: u32| KernelLink {
                    ifindex: index,
                    name: s.name.clone(),
                    alias: Some(s.alias.clone()),
                    group: self.group,
                    mtu: if s.mtu == 0 { 1500 } else { s.mtu },
                    mac: Some(s.mac.unwrap_or(MacAddr([2, 0, 0, 0, 0, index as u8]))),
                    up: s.up,
                    addresses: s.addresses.clone(),
                    kind: "veth".into(),
                    master: s.master,
                    vrf_table: None,
                    marked_addresses: Vec::new(),
                };
                let (mut la, mut lb) = (mk(a, ia), mk(b, ib));
                for l in [&mut la, &mut lb] {
                    if self.fail_names.contains(&l.name) {
                        l.alias = None;
                    }
                }
                self.links.get_mut(&a.ns).unwrap().insert(
                    ia,
                    FakeLink {
                        link: la.clone(),
                        peer: (b.ns, ib),
                    },
                );
                self.links.get_mut(&b.ns).unwrap().insert(
                    ib,
                    FakeLink {
                        link: lb.clone(),
                        peer: (a.ns, ia),
                    },
                );
                if let Some(name) = [a, b]
                    .into_iter()
                    .map(|s| &s.name)
                    .find(|n| self.fail_names.contains(*n))
                {
                    return OpOutcome::Failed {
                        kind: FailureKind::Other,
                        error: format!("veth {name} created, but cannot set its alias"),
                    };
                }
                OpOutcome::PairCreated { a: la, b: lb }
            }
            Op::CreateLink { end, kind } => self.create_single(end, *kind),
            Op::UpdateLink {
                ns,
                ifindex,
                changes,
            } => {
                if let Some(f) = self.fault("update") {
                    return f;
                }
                let Some(links) = self.links.get_mut(ns) else {
                    return gone();
                };
                if let Some(name) = &changes.rename {
                    if links.values().any(|l| l.link.name == *name) {
                        return OpOutcome::Failed {
                            kind: FailureKind::Other,
                            error: format!("name {name} busy"),
                        };
                    }
                }
                let Some(l) = links.get_mut(ifindex) else {
                    return OpOutcome::Failed {
                        kind: FailureKind::LinkGone,
                        error: "no such link".into(),
                    };
                };
                if changes.alias.is_some() && self.fail_names.contains(&l.link.name) {
                    return OpOutcome::Failed {
                        kind: FailureKind::Other,
                        error: format!("cannot set the alias of {}", l.link.name),
                    };
                }
                let l = &mut l.link;
                if let Some(n) = &changes.rename {
                    l.name = n.clone();
                }
                if let Some(a) = &changes.alias {
                    l.alias = Some(a.clone());
                }
                if let Some(m) = changes.mtu {
                    l.mtu = m;
                }
                if let Some(m) = changes.mac {
                    l.mac = Some(m);
                }
                if let Some(u) = changes.up {
                    l.up = u;
                }
                if let Some(m) = changes.master {
                    l.master = m;
                }
                if let Some(g) = changes.group {
                    l.group = g;
                }
                l.addresses.retain(|a| !changes.del_addresses.contains(a));
                l.marked_addresses
                    .retain(|a| !changes.del_addresses.contains(a));
                for a in &changes.add_addresses {
                    // Adding an address that is there replaces it, with the new mark or none.
                    l.marked_addresses.retain(|m| m != a);
                    if changes.address_mark.is_some() {
                        l.marked_addresses.push(*a);
                    }
                    if !l.addresses.contains(a) {
                        l.addresses.push(*a);
                    }
                }
                l.addresses.sort();
                l.marked_addresses.sort();
                let mut link = l.clone();
                if changes.address_mark.is_none() {
                    link.marked_addresses.clear();
                }
                self.writes += 1;
                if changes.up == Some(false) {
                    // The kernel drops the routes of a link that goes down.
                    self.flush_routes(*ns, *ifindex);
                }
                OpOutcome::Updated { link }
            }
            Op::AdoptLink { from, ifindex, end } => self.adopt(*from, *ifindex, end),
            Op::ReturnLink {
                ns,
                ifindex,
                temp_name,
                to,
                ..
            } => self.give_back(*ns, *ifindex, temp_name, *to),
            Op::DeleteLink { ns, ifindex, .. } => {
                if let Some(f) = self.fault("delete") {
                    return f;
                }
                self.writes += 1;
                if let Some(l) = self.remove_link(*ns, *ifindex) {
                    self.remove_link(l.peer.0, l.peer.1);
                }
                OpOutcome::Deleted
            }
            Op::DeleteLinks { ns, links } => {
                if let Some(f) = self.fault("delete") {
                    return f;
                }
                let outcomes = self.delete_links(*ns, links);
                OpOutcome::EachDeleted { outcomes }
            }
            Op::ReleaseNs { .. } => OpOutcome::Released,
            Op::L3(op) => OpOutcome::L3(self.execute_l3(op)),
        }
    }

    /// A group deletion, as the executor does it: move every link into the transient group,
    /// delete every link of that group in the namespace (with their peers); links one by one
    /// when the group deletion fails.
    fn delete_links(&mut self, ns: NsId, links: &[super::ops::LinkRef]) -> Vec<OpOutcome> {
        let group = self.delete_group;
        self.writes += links.len();
        for l in links {
            if let Some(fl) = self.links.get_mut(&ns).and_then(|m| m.get_mut(&l.ifindex)) {
                fl.link.group = group;
            }
        }
        if let Some(f) = self.fault("stranded") {
            return vec![f; links.len()];
        }
        let doomed: Vec<u32> = match self.fault("group") {
            Some(_) => links.iter().map(|l| l.ifindex).collect(),
            None => self
                .links
                .get(&ns)
                .into_iter()
                .flatten()
                .filter(|(_, l)| l.link.group == group)
                .map(|(i, _)| *i)
                .collect(),
        };
        for ifindex in doomed {
            if let Some(l) = self.remove_link(ns, ifindex) {
                self.remove_link(l.peer.0, l.peer.1);
            }
        }
        vec![OpOutcome::Deleted; links.len()]
    }

    /// Runs a plan through the agent's round loop, feeding every outcome back.
    pub fn run(&mut self, s: &mut Scheduler, plan: &Plan, now: Duration) {
        futures::executor::block_on(run_plan(s, self, plan.clone(), || now, |_| {}));
    }

    /// Plans and runs until nothing is left to do; returns the number of rounds.
    pub fn converge(&mut self, s: &mut Scheduler, now: Duration) -> usize {
        for round in 0..50 {
            let plan = s.plan(now);
            if plan.is_empty() {
                return round;
            }
            self.run(s, &plan, now);
        }
        panic!("scheduler did not converge in 50 rounds");
    }

    /// Routes and neighbour entries carrying `protocol`, per namespace reference, with
    /// interfaces by name instead of index.
    pub fn normalized_l3(&self, protocol: u8) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for (r, id) in &self.world {
            let name = |ifindex: u32| {
                self.links
                    .get(id)
                    .and_then(|m| m.get(&ifindex))
                    .map(|l| l.link.name.clone())
                    .unwrap_or_default()
            };
            for rt in self.routes.get(id).into_iter().flatten() {
                if rt.protocol == protocol {
                    let mut k = rt.clone();
                    let dev = name(k.oif);
                    k.oif = 0;
                    out.insert(format!("{r:?} route {k:?} dev {dev}"));
                }
            }
            for n in self.neighbours.get(id).into_iter().flatten() {
                if n.protocol == Some(protocol) {
                    let mut k = n.clone();
                    let dev = name(k.ifindex);
                    k.ifindex = 0;
                    out.insert(format!("{r:?} neigh {k:?} dev {dev}"));
                }
            }
        }
        out
    }

    /// The links of a namespace by host name.
    pub fn by_name(&self, r: &NamespaceRef) -> BTreeMap<String, KernelLink> {
        let Some(id) = self.world.get(r) else {
            return BTreeMap::new();
        };
        self.links[id]
            .values()
            .map(|l| (l.link.name.clone(), l.link.clone()))
            .collect()
    }

    /// The state of the kernel without ifindexes or namespace ids: per namespace reference,
    /// each link with its peer's namespace reference and name, and its master's name. MACs the kernel chose are
    /// left out (they differ between runs by design).
    pub fn normalized(&self, keep_mac: impl Fn(&KernelLink) -> bool) -> BTreeSet<String> {
        let name_of = |id: &NsId| {
            self.world
                .iter()
                .find(|(_, v)| *v == id)
                .map(|(r, _)| format!("{r:?}"))
                .unwrap_or_else(|| "?".into())
        };
        let mut out = BTreeSet::new();
        for (id, links) in &self.links {
            for l in links.values() {
                let peer = self
                    .links
                    .get(&l.peer.0)
                    .and_then(|m| m.get(&l.peer.1))
                    .map(|p| p.link.name.clone())
                    .unwrap_or_default();
                let mut k = l.link.clone();
                k.ifindex = 0;
                if !keep_mac(&k) {
                    k.mac = None;
                }
                if !self.owned(&k) {
                    // What the agent sets on a link it does not own stays after its item
                    // goes (only its addresses are removed): history, not configuration.
                    k.up = false;
                    k.mtu = 0;
                }
                let master = links
                    .get(&k.master)
                    .map(|m| m.link.name.clone())
                    .unwrap_or_default();
                k.master = 0;
                out.insert(format!(
                    "{} {:?} peer={}@{} master={master}",
                    name_of(id),
                    k,
                    peer,
                    name_of(&l.peer.0)
                ));
            }
        }
        out
    }
}

fn gone() -> OpOutcome {
    OpOutcome::Failed {
        kind: FailureKind::NamespaceGone,
        error: "namespace is gone".into(),
    }
}

impl Kernel for FakeKernel {
    fn execute(
        &mut self,
        ops: Vec<Op>,
    ) -> impl std::future::Future<Output = Vec<OpOutcome>> + Send {
        let outcomes: Vec<OpOutcome> = ops.iter().map(|op| FakeKernel::execute(self, op)).collect();
        std::future::ready(outcomes)
    }
}
