//! An in-memory kernel for unit tests of the scheduler's logic (never a proof that a feature
//! works against the real kernel: the integration tests are).

use super::ops::{FailureKind, Op, OpOutcome};
use super::{Plan, Scheduler};
use crate::kernel::{KernelLink, NsId};
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
    /// Which references name an existing namespace.
    pub world: BTreeMap<NamespaceRef, NsId>,
    pub links: BTreeMap<NsId, BTreeMap<u32, FakeLink>>,
    next_id: u64,
    next_index: u32,
    /// Write operations executed (creates, updates, deletes).
    pub writes: usize,
    /// One-shot faults: the next operation of this kind fails.
    pub fail_next: BTreeSet<&'static str>,
}

impl FakeKernel {
    pub fn new(keys: KeyTree, group: u32) -> Self {
        let mut k = FakeKernel {
            keys,
            group,
            world: BTreeMap::new(),
            links: BTreeMap::new(),
            next_id: 1,
            next_index: 10,
            writes: 0,
            fail_next: BTreeSet::new(),
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
        self.world.insert(r, id);
        self.links.insert(id, BTreeMap::new());
        id
    }

    /// Destroys a namespace with every link in it; VETH peers elsewhere die too.
    pub fn remove_namespace(&mut self, r: &NamespaceRef) {
        let Some(id) = self.world.remove(r) else {
            return;
        };
        let dead = self.links.remove(&id).unwrap_or_default();
        for l in dead.values() {
            if let Some(links) = self.links.get_mut(&l.peer.0) {
                links.remove(&l.peer.1);
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

    fn index(&mut self) -> u32 {
        self.next_index += 1;
        self.next_index
    }

    fn owned(&self, l: &KernelLink) -> bool {
        l.group == self.group
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
            Op::CreatePair { a, b } => {
                if let Some(f) = self.fault("create") {
                    return f;
                }
                if !self.links.contains_key(&a.ns) || !self.links.contains_key(&b.ns) {
                    return gone();
                }
                for s in [a, b] {
                    if let Some(l) = self.links[&s.ns].values().find(|l| l.link.name == s.name) {
                        let kind = if self.owned(&l.link) {
                            FailureKind::Other
                        } else {
                            FailureKind::Conflict
                        };
                        return OpOutcome::Failed {
                            kind,
                            error: format!("link {} exists", s.name),
                        };
                    }
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
                };
                let (la, lb) = (mk(a, ia), mk(b, ib));
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
                OpOutcome::PairCreated { a: la, b: lb }
            }
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
                l.addresses.retain(|a| !changes.del_addresses.contains(a));
                l.addresses.extend(changes.add_addresses.iter().copied());
                l.addresses.sort();
                let link = l.clone();
                self.writes += 1;
                OpOutcome::Updated { link }
            }
            Op::DeleteLink { ns, ifindex, .. } => {
                if let Some(f) = self.fault("delete") {
                    return f;
                }
                self.writes += 1;
                if let Some(l) = self.links.get_mut(ns).and_then(|m| m.remove(ifindex)) {
                    if let Some(links) = self.links.get_mut(&l.peer.0) {
                        links.remove(&l.peer.1);
                    }
                }
                OpOutcome::Deleted
            }
            Op::ReleaseNs { .. } => OpOutcome::Released,
        }
    }

    /// Runs a plan, feeding every outcome back.
    pub fn run(&mut self, s: &mut Scheduler, plan: &Plan, now: Duration) {
        for phase in &plan.phases {
            let outcomes: Vec<_> = phase.iter().map(|op| self.execute(op)).collect();
            for (op, outcome) in phase.iter().zip(outcomes) {
                s.complete(op, outcome, now);
            }
        }
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
    /// each link with its peer's namespace reference and name. MACs the kernel chose are
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
                out.insert(format!(
                    "{} {:?} peer={}@{}",
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
