//! Planning: derive the operations that move the kernel towards the configuration.
//!
//! Planning runs after every batch of events, over every item (or, when the scheduler is
//! quiet, over the items a [`Scope`] names), so it borrows instead of copying: owned values
//! are built only for the operations it emits and the statuses that change.

use super::l3::L3Items;
use super::ops::{EndSpec, LinkChanges, Op};
use super::quiet::{Quiet, Scope};
use super::state::{Claim, IfaceState, L3View, LinkWrites, RefState, StatusBook, View, Work};
use super::{Item, ItemStatus, Plan, Scheduler};
use crate::kernel::{KernelLink, NsId};
use crate::keys::{ItemKind, KeyTree};
use crate::model::link::Lifecycle;
use crate::model::{Interface, NamespaceRef};
use ipnet::IpNet;
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::collections::BTreeSet;
use std::time::Duration;

/// The MTU a VETH end gets when its configuration leaves it at 0 (the kernel's default).
pub const DEFAULT_VETH_MTU: u32 = 1500;

/// One valid link (VETH end or single owned link) that can be applied, in the namespace it
/// resolves to.
#[derive(Clone, Copy, Debug)]
struct DesiredEnd<'a> {
    item: &'a Interface,
    ns: NsId,
}

impl<'a> DesiredEnd<'a> {
    fn peer(&self) -> &'a str {
        self.item.veth_peer()
    }

    fn spec(&self, keys: &KeyTree, master: u32) -> EndSpec {
        let i = self.item;
        EndSpec {
            master,
            ns: self.ns,
            name: i.host_if_name.clone(),
            alias: keys.link_alias(&i.name, i.alias_suffix()),
            mtu: i.mtu,
            mac: i.phys_address,
            up: i.enabled,
            addresses: i.ip_addresses.clone(),
        }
    }
}

/// What the scheduler decided for one valid item.
enum Decision<'a> {
    /// Both ends can be applied.
    Desired(DesiredEnd<'a>),
    /// A requirement is missing (or the value names something unusable): the item's links
    /// are removed and it waits with this status.
    Withdraw(ItemStatus),
    /// Not decidable yet (namespace being read, retry backoff): the kernel is left as it is.
    Hold(ItemStatus),
}

/// Why links cannot be applied yet, found while planning them.
enum Waiting {
    /// Their links are removed meanwhile.
    Withdraw(ItemStatus),
    /// The kernel is left as it is meanwhile.
    Hold(ItemStatus),
}

/// Namespace identity for host-name conflicts: resolved id when known, else the reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum NsKey<'a> {
    Id(NsId),
    Ref(&'a NamespaceRef),
}

/// What one planning round decided, besides statuses.
struct Planned {
    plan: Plan,
    /// References nothing refers to any more.
    stale_refs: Vec<NamespaceRef>,
    /// Routes and neighbour entries.
    l3: super::l3::L3Plan,
    /// Where it planned routes and entries (`None`: everywhere).
    l3_reach: Option<super::quiet_l3::L3Reach>,
    /// How it changes the remembered interface states.
    memo: super::quiet_l3::MemoUpdate,
    /// The item each link update is for (a link adopted by name has no alias to tell).
    link_writes: LinkWrites,
}

/// The namespace references a plan looks at.
struct Scan<'a> {
    /// To resolve and read.
    refs: HashSet<&'a NamespaceRef>,
    /// Where a pair can be applied (a missing named namespace is created).
    apply: HashSet<&'a NamespaceRef>,
}

/// The first phase of a plan.
struct Learned {
    /// Resolutions and reads.
    ops: Vec<Op>,
    /// The namespaces in use (resolved references).
    needed: BTreeSet<NsId>,
}

/// The owned links by item, and those no item names.
struct Claimed<'a> {
    claims: HashMap<&'a str, Vec<Claim<'a>>>,
    orphans: Vec<(NsId, &'a KernelLink)>,
}

/// What routes and entries may assume of each interface before pairs are planned: absent
/// when invalid or waiting, busy while held or about to be applied.
fn interface_states<'a>(
    order: &[(&'a str, &'a Item)],
    valid: &HashMap<&'a str, &'a Interface>,
    decisions: &[(&'a str, Decision<'a>)],
) -> HashMap<&'a str, IfaceState<'a>> {
    let mut ifaces = HashMap::default();
    for (name, item) in order {
        if !valid.contains_key(name) {
            let why = match &item.config {
                Err(_) => "its value is invalid".to_string(),
                Ok(_) => "it is not valid".to_string(),
            };
            ifaces.insert(*name, IfaceState::Absent(why));
        }
    }
    for (name, decision) in decisions {
        let state = match decision {
            Decision::Withdraw(s) => IfaceState::Absent(s.detail().to_string()),
            Decision::Hold(_) | Decision::Desired(_) => IfaceState::Busy,
        };
        ifaces.insert(*name, state);
    }
    ifaces
}

/// The phases of a plan, in order, without empty ones: learn; delete links; update links
/// (renames before new pairs, which may take a name being given up); create links; routes
/// and neighbours after the links they use, routes through a gateway after the link-scope
/// routes that may make it reachable; delete old routes and entries (new routes first, so
/// that no moment has none); let namespaces go.
fn assemble(
    learn: Vec<Op>,
    deletes: Vec<Op>,
    updates: Vec<Op>,
    creates: Vec<Op>,
    l3: &mut super::l3::L3Plan,
    releases: Vec<Op>,
) -> Plan {
    Plan {
        phases: [
            learn,
            deletes,
            updates,
            creates,
            std::mem::take(&mut l3.writes),
            std::mem::take(&mut l3.gateway_writes),
            std::mem::take(&mut l3.deletes),
            releases,
        ]
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect(),
    }
}

impl Scheduler {
    /// Plans the next round of operations and refreshes every item's status.
    pub fn plan(&mut self, now: Duration) -> Plan {
        #[cfg(test)]
        let reference = (self.quiet.is_some() && self.verify_scoped).then(|| self.clone());
        let mut book = StatusBook::new(
            std::mem::take(&mut self.status),
            std::mem::take(&mut self.changed),
        );
        let scope = self.quiet_scope(now);
        let scoped: Option<HashSet<String>> = scope
            .as_ref()
            .map(|s| s.names.iter().map(|n| n.to_string()).collect());
        let Planned {
            plan,
            stale_refs,
            l3,
            l3_reach,
            memo,
            link_writes,
        } = self.plan_with(now, &mut book, scope);
        self.link_writes = link_writes;
        for r in stale_refs {
            self.unreference(r);
        }
        self.l3_writes = l3.targets;
        match l3_reach {
            // Nothing waited in the namespaces planned in part (see `quiet_l3`).
            Some(reach) => {
                self.waiting_on_links.retain(|ns| !reach.full.contains(ns));
                self.waiting_on_links.extend(l3.waiting_on_links);
            }
            None => self.waiting_on_links = l3.waiting_on_links,
        }
        self.apply_memo(memo);
        self.refresh.clear();
        self.status = book.map;
        self.changed = book.changed;
        // Quiet when nothing is left to do, or when only the scope had something to do.
        self.planned_at = now;
        let until = self.next_deadline(now);
        tracing::trace!(
            scoped = scoped.is_some(),
            ops = plan.len(),
            ?now,
            next_retry = ?until,
            "scheduler planned"
        );
        #[cfg(test)]
        let fast = scoped.is_some();
        self.quiet = if plan.is_empty() {
            Some(Quiet::after_plan(until, HashSet::default()))
        } else {
            scoped.map(|names| Quiet::after_plan(until, names))
        };
        #[cfg(test)]
        {
            self.scoped_plans += usize::from(fast);
            if let Some(reference) = reference.filter(|_| fast) {
                self.check_against_full(reference, &plan, now);
            }
        }
        plan
    }

    /// The resolutions and namespace reads the next plan would start with, decided without
    /// changing anything: what can run while more changes are still arriving. Nothing is
    /// created ahead (a resolution never creates its namespace), and what only a full plan
    /// reads (namespaces on record, lingering views) is left to it; the outcomes go to
    /// [`Scheduler::complete_ahead`].
    pub fn reads_ahead(&self, now: Duration) -> Vec<Op> {
        let order: Vec<(&str, &Item)> = self.items.iter().map(|(n, i)| (n.as_str(), i)).collect();
        let mut scratch = StatusBook::new(Default::default(), Vec::new());
        let valid = self.valid_items(&order, &mut scratch);
        let scan = self.namespaces_to_scan(&valid, true);
        let wanted = self.wanted_foreign(&valid);
        let mut ops = self.learn(&scan, &wanted, now, true).ops;
        ops.retain(|op| !op.writes());
        for op in &mut ops {
            if let Op::ResolveNs { create, .. } = op {
                *create = false;
            }
        }
        ops
    }

    /// Test check: a scoped plan equals a full plan of the same state.
    #[cfg(test)]
    fn check_against_full(&mut self, mut reference: Scheduler, plan: &Plan, now: Duration) {
        reference.quiet = None;
        let full = reference.plan(now);
        assert_eq!(*plan, full, "a scoped plan differs from the full plan");
        assert_eq!(
            self.status, reference.status,
            "scoped plan: statuses differ"
        );
        let sorted = |v: &[(ItemKind, String)]| v.iter().cloned().collect::<BTreeSet<_>>();
        assert_eq!(sorted(&self.changed), sorted(&reference.changed));
        assert_eq!(self.refs, reference.refs);
        assert_eq!(self.waiting_on_links, reference.waiting_on_links);
        assert_eq!(self.l3_writes, reference.l3_writes);
        for (name, memo) in &self.iface_memo {
            if self.l3_index.names_interface(name) {
                assert_eq!(
                    Some(memo),
                    reference.iface_memo.get(name),
                    "scoped plan: remembered state of `{name}`"
                );
            }
        }
        assert_eq!(self.link_writes, reference.link_writes);
    }

    fn plan_with<'a>(
        &'a self,
        now: Duration,
        book: &mut StatusBook,
        scope: Option<Scope<'a>>,
    ) -> Planned {
        let (order, scoped_claims, l3_scope) = match scope {
            Some(s) => (s.order, Some(s.claims), Some((s.names, s.l3))),
            None => (
                self.items.iter().map(|(n, i)| (n.as_str(), i)).collect(),
                None,
                None,
            ),
        };
        let scoped = scoped_claims.is_some();
        let valid = self.valid_items(&order, book);
        let scan = self.namespaces_to_scan(&valid, scoped);
        let wanted = self.wanted_foreign(&valid);
        let learned = self.learn(&scan, &wanted, now, scoped);
        let decisions = self.decide_all(&order, &valid, now);
        let claimed = self.claim_links(&decisions, &valid, scoped_claims);
        let mut work = Work::new(claimed.orphans);
        self.withdraw(&decisions, &claimed.claims, &valid, &mut work, book);
        work.ifaces = interface_states(&order, &valid, &decisions);
        self.plan_links(&decisions, &claimed.claims, now, &mut work, book);
        let released_marks = self.release_marks(&work.found, now);
        work.updates.extend(released_marks);

        let (deletes, returns) = self.return_ops(std::mem::take(&mut work.deletes), now);
        let mut deletes = self.delete_ops(deletes, now);
        deletes.extend(returns);
        self.untangle_renames(&mut work.updates);
        let memo = self.memo_update(&work.ifaces, l3_scope.as_ref().map(|(names, _)| names));
        let (mut l3, l3_reach) = match l3_scope {
            Some((_, l3_scope)) => {
                let (l3, reach) = self.plan_scoped_l3(now, &work.ifaces, book, l3_scope);
                (l3, Some(reach))
            }
            None => (
                self.plan_l3(now, &work.ifaces, book, L3Items::all(self)),
                None,
            ),
        };
        let stale_refs = self.stale_refs(&scan.refs, scoped);
        let releases = self.releases(&learned, scoped);
        Planned {
            plan: assemble(
                learned.ops,
                deletes,
                work.updates,
                work.creates,
                &mut l3,
                releases,
            ),
            stale_refs,
            l3,
            l3_reach,
            memo,
            link_writes: work.link_writes,
        }
    }

    /// The namespace references to resolve and read (the agent's own, those of valid
    /// interfaces, routes, entries and the record), and those where a pair can be applied
    /// (a missing named one is created there).
    fn namespaces_to_scan<'a>(
        &'a self,
        valid: &HashMap<&'a str, &'a Interface>,
        scoped: bool,
    ) -> Scan<'a> {
        let mut refs: HashSet<&NamespaceRef> = HashSet::default();
        refs.insert(&NamespaceRef::Default);
        refs.extend(self.l3_namespaces());
        refs.extend(self.recorded.iter().filter(|_| !scoped));
        let mut apply: HashSet<&NamespaceRef> = HashSet::default();
        for i in valid.values() {
            refs.insert(&i.namespace);
            let applicable = match i.link.lifecycle() {
                Lifecycle::Pair { peer } => {
                    valid.get(peer).is_some_and(|p| p.veth_peer() == i.name)
                }
                Lifecycle::Owned(_) => true,
                // Every namespace has a loopback link: a missing one may be made for it; an
                // AUTO_TAP is moved into its namespace.
                Lifecycle::Existing { .. } => i.link.fixed_host_name().is_some(),
                Lifecycle::Adopted { .. } => true,
            };
            if applicable {
                apply.insert(&i.namespace);
            }
        }
        Scan { refs, apply }
    }

    /// The first phase: resolve references, read namespaces (those in use, and those no
    /// longer referenced while something of ours may be left in them).
    fn learn(
        &self,
        scan: &Scan,
        wanted: &super::foreign::Wanted,
        now: Duration,
        scoped: bool,
    ) -> Learned {
        let mut ops = Vec::new();
        let mut needed = BTreeSet::new();
        let mut ordered: Vec<&NamespaceRef> = scan.refs.iter().copied().collect();
        ordered.sort();
        for r in ordered {
            if matches!(r, NamespaceRef::Microservice(_)) && !self.microservices_known {
                continue;
            }
            match self.refs.get(r) {
                Some(RefState::Resolved(ns)) => {
                    needed.insert(*ns);
                }
                state => ops.extend(self.resolve_op(r, state, scan.apply.contains(r), now)),
            }
        }
        // A delete that failed left the view forgotten: the namespace is read and the delete
        // retried before it is released.
        let lingering: Vec<NsId> = self
            .views
            .iter()
            .filter(|_| !scoped)
            .filter(|(ns, view)| {
                !needed.contains(ns)
                    && (matches!(view, View::Unknown)
                        || self.refresh.contains(ns)
                        || matches!(self.l3_views.get(ns), Some(L3View::Unknown)))
            })
            .map(|(ns, _)| *ns)
            .collect();
        let read = needed.iter().chain(&lingering);
        for ns in read.clone() {
            // A read that failed is retried after its backoff (the old view is kept meanwhile).
            let backoff = self.view_backoff.get(ns);
            let waiting = backoff.is_some_and(|b| b.waiting(now));
            let known = matches!(self.views.get(ns), Some(View::Known(_)));
            if (!known || self.refresh.contains(ns) || backoff.is_some()) && !waiting {
                ops.push(Op::DumpNs { ns: *ns });
            }
        }
        ops.extend(self.foreign_reads(read.clone(), wanted, now));
        ops.extend(self.l3_dumps(read, now));
        Learned { ops, needed }
    }

    /// The resolution of reference `r` (not resolved: never tried, or unavailable), if it is
    /// due; a missing named namespace is created where something is to be applied.
    fn resolve_op(
        &self,
        r: &NamespaceRef,
        state: Option<&RefState>,
        apply: bool,
        now: Duration,
    ) -> Option<Op> {
        let creatable = matches!(r, NamespaceRef::Named(_)) && apply;
        let create = match state {
            None => creatable,
            Some(RefState::Unavailable {
                backoff,
                allow_create,
                tried_create,
                ..
            }) => {
                let create = creatable && *allow_create;
                let first_creation = create && !tried_create;
                if backoff.waiting(now) && !first_creation {
                    return None;
                }
                create
            }
            Some(RefState::Resolved(_)) => return None,
        };
        Some(Op::ResolveNs {
            reference: r.clone(),
            create,
        })
    }

    /// Decides every valid item, in name order (plans are deterministic).
    fn decide_all<'a>(
        &self,
        order: &[(&'a str, &'a Item)],
        valid: &HashMap<&'a str, &'a Interface>,
        now: Duration,
    ) -> Vec<(&'a str, Decision<'a>)> {
        order
            .iter()
            .filter_map(|(n, _)| valid.get(n).map(|i| (*n, *i)))
            .map(|(n, i)| (n, self.decide(i, valid, now)))
            .collect()
    }

    /// Who owns which link: by alias, or (a link the agent created but had not aliased yet)
    /// by host name; owned links no item names are orphans. A scoped plan has the links of
    /// its items already.
    fn claim_links<'a>(
        &'a self,
        decisions: &[(&'a str, Decision<'a>)],
        valid: &HashMap<&'a str, &'a Interface>,
        scoped_claims: Option<HashMap<&'a str, Vec<Claim<'a>>>>,
    ) -> Claimed<'a> {
        let scoped = scoped_claims.is_some();
        let mut claims = scoped_claims.unwrap_or_default();
        let mut orphans = Vec::new();
        let desired: Vec<(&str, &DesiredEnd)> = decisions
            .iter()
            .filter_map(|(n, d)| match d {
                Decision::Desired(e) => Some((*n, e)),
                _ => None,
            })
            .collect();
        let mut host_names: Option<HashSet<&str>> = None;
        for (ns, view) in self.views.iter().filter(|_| !scoped) {
            let View::Known(links) = view else { continue };
            for link in links.values() {
                let parsed = link
                    .alias
                    .as_deref()
                    .and_then(|a| self.keys.split_link_alias(a));
                if let Some((name, peer)) = parsed {
                    claims.entry(name).or_default().push(Claim {
                        ns: *ns,
                        link,
                        alias_peer: Some(peer),
                    });
                } else if let Some((name, _)) = desired.iter().find(|(_, e)| {
                    e.ns == *ns
                        && e.item.host_if_name == link.name
                        && e.item.link.created_by_agent()
                }) {
                    claims.entry(name).or_default().push(Claim {
                        ns: *ns,
                        link,
                        alias_peer: None,
                    });
                } else if !host_names
                    .get_or_insert_with(|| {
                        valid.values().map(|i| i.host_if_name.as_str()).collect()
                    })
                    .contains(link.name.as_str())
                {
                    orphans.push((*ns, link));
                }
            }
        }
        Claimed { claims, orphans }
    }

    /// Statuses of items that wait or are held; the links of items that wait or are no
    /// longer configured (validly) are deleted.
    fn withdraw<'a>(
        &self,
        decisions: &[(&'a str, Decision<'a>)],
        claims: &HashMap<&'a str, Vec<Claim<'a>>>,
        valid: &HashMap<&'a str, &'a Interface>,
        work: &mut Work<'a>,
        book: &mut StatusBook,
    ) {
        for (name, decision) in decisions {
            match decision {
                Decision::Withdraw(s) => {
                    let links = claims.get(name).map(Vec::as_slice).unwrap_or_default();
                    work.deletes.extend(links.iter().map(|c| (c.ns, c.link)));
                    book.set(name, s.clone());
                }
                Decision::Hold(s) => book.set(name, s.clone()),
                Decision::Desired(_) => {}
            }
        }
        for (name, links) in claims {
            if !valid.contains_key(name) {
                work.deletes.extend(links.iter().map(|c| (c.ns, c.link)));
            }
        }
    }

    /// Links: VRFs first (the links that join one find it usable), then VETH pairs, each
    /// once (from its end with the smaller name), and single links; each changed in place
    /// when it exists where it should, else (re)created.
    fn plan_links<'a>(
        &'a self,
        decisions: &[(&'a str, Decision<'a>)],
        claims: &HashMap<&'a str, Vec<Claim<'a>>>,
        now: Duration,
        work: &mut Work<'a>,
        book: &mut StatusBook,
    ) {
        let mut desired: Vec<(&'a str, &DesiredEnd<'a>)> = decisions
            .iter()
            .filter_map(|(n, d)| match d {
                Decision::Desired(e) => Some((*n, e)),
                _ => None,
            })
            .collect();
        let by_name: HashMap<&str, &DesiredEnd> = desired.iter().copied().collect();
        // Ends (name, peer) of links whose delete waits for a retry.
        let waiting_ends = self.waiting_ends(now);
        desired.sort_by_key(|(_, e)| e.item.link.vrf_table().is_none());
        for (name, end) in desired {
            let ends = match end.item.link.lifecycle() {
                Lifecycle::Pair { peer } if peer >= name => match by_name.get(peer) {
                    Some(peer_end) => vec![(name, end), (end.peer(), *peer_end)],
                    None => continue,
                },
                Lifecycle::Owned(_) => vec![(name, end)],
                Lifecycle::Existing { link_only } => {
                    self.plan_existing((name, end), link_only, claims, work, book);
                    continue;
                }
                Lifecycle::Adopted { temp_name } => {
                    let status = match self.masters(&[(name, end)], work) {
                        Ok(m) => self.plan_adopted(
                            (name, end.ns, end.item),
                            temp_name,
                            m[0],
                            claims,
                            work,
                        ),
                        Err(waiting) => wait(&[name], waiting, claims, work),
                    };
                    book.set(name, status);
                    continue;
                }
                _ => continue,
            };
            let status = match self.masters(&ends, work) {
                Ok(masters) => self.plan_ends(&ends, &masters, claims, &waiting_ends, now, work),
                Err(waiting) => {
                    let names: Vec<&str> = ends.iter().map(|(n, _)| *n).collect();
                    wait(&names, waiting, claims, work)
                }
            };
            for (n, _) in &ends {
                book.set(n, status.clone());
            }
        }
    }

    /// A link found by host name (EXISTING, LOOPBACK): the links of an earlier value of the
    /// item (another kind) go; the found one is changed as configured once its VRF is there.
    fn plan_existing<'a>(
        &'a self,
        (name, end): (&'a str, &DesiredEnd<'a>),
        link_only: bool,
        claims: &HashMap<&'a str, Vec<Claim<'a>>>,
        work: &mut Work<'a>,
        book: &mut StatusBook,
    ) {
        let links = claims.get(name).map(Vec::as_slice).unwrap_or_default();
        work.deletes.extend(links.iter().map(|c| (c.ns, c.link)));
        let status = match self.masters(&[(name, end)], work) {
            Ok(masters) => self.plan_found(name, (end.ns, end.item), masters[0], link_only, work),
            Err(waiting) => wait(&[name], waiting, claims, work),
        };
        book.set(name, status);
    }

    /// The index of the VRF each end joins (0 for none), or why they wait: held while a
    /// VRF is being applied in the end's namespace, withdrawn while it cannot be.
    fn masters(&self, ends: &[(&str, &DesiredEnd)], work: &Work) -> Result<Vec<u32>, Waiting> {
        ends.iter()
            .map(|(_, end)| {
                let vrf = end.item.vrf_master_interface.as_str();
                if vrf.is_empty() {
                    return Ok(0);
                }
                let reason = format!("waiting for VRF interface `{vrf}` to be applied");
                match work.ifaces.get(vrf) {
                    Some(IfaceState::Usable { ns, link }) if *ns == end.ns => Ok(link.ifindex),
                    Some(IfaceState::Busy) => Err(Waiting::Hold(ItemStatus::Pending { reason })),
                    _ => Err(Waiting::Withdraw(ItemStatus::Pending { reason })),
                }
            })
            .collect()
    }

    /// The links of one item (or pair): the operations that make them (into `work`), and
    /// their status.
    fn plan_ends<'a>(
        &self,
        ends: &[(&'a str, &DesiredEnd<'a>)],
        masters: &[u32],
        claims: &HashMap<&'a str, Vec<Claim<'a>>>,
        waiting_ends: &HashSet<(&str, &str)>,
        now: Duration,
        work: &mut Work<'a>,
    ) -> ItemStatus {
        let mut fitting = Vec::with_capacity(ends.len());
        let mut all_claims = Vec::new();
        for (name, end) in ends {
            let claimed = claims.get(name).map(Vec::as_slice).unwrap_or_default();
            // Links of an earlier value of the item (another peer, namespace or kind) are
            // removed on their own; they do not stand in the way of the current one.
            let (fit, stale): (Vec<&Claim>, Vec<&Claim>) =
                claimed.iter().partition(|c| fits(c, end));
            work.deletes.extend(stale.iter().map(|c| (c.ns, c.link)));
            all_claims.extend(claimed);
            fitting.push(fit);
        }
        let in_place: Option<Vec<&Claim>> = fitting
            .iter()
            .map(|fit| match fit.as_slice() {
                [one] => Some(*one),
                _ => None,
            })
            .collect();
        // A link that has to go first but cannot yet (its delete, or its peer's, waits for a
        // retry) holds the item back.
        let blocked = match &in_place {
            Some(kept) => kept
                .iter()
                .any(|c| self.link_waiting(c.ns, c.link.ifindex, now)),
            None => all_claims
                .iter()
                .any(|c| self.claim_waiting(c, waiting_ends, now)),
        };
        if blocked {
            return ItemStatus::Pending {
                reason: "waiting to retry removing its old link".into(),
            };
        }
        let Some(kept) = in_place else {
            work.deletes
                .extend(fitting.iter().flatten().map(|c| (c.ns, c.link)));
            work.creates.push(self.create_op(ends, masters));
            return ItemStatus::Applying;
        };
        let mut busy = false;
        for ((k, (_, d)), master) in kept.iter().zip(ends).zip(masters) {
            if let Some(changes) = self.link_changes(k.link, d.item, *master) {
                busy = true;
                work.link_writes
                    .insert((k.ns, k.link.ifindex), d.item.name.clone());
                work.updates.push(Op::UpdateLink {
                    ns: k.ns,
                    ifindex: k.link.ifindex,
                    changes,
                });
            }
        }
        if busy {
            return ItemStatus::Applying;
        }
        for (k, (n, _)) in kept.iter().zip(ends) {
            work.ifaces.insert(
                n,
                IfaceState::Usable {
                    ns: k.ns,
                    link: k.link,
                },
            );
        }
        ItemStatus::Applied
    }

    /// The operation that creates the links of one item (or pair).
    fn create_op(&self, ends: &[(&str, &DesiredEnd)], masters: &[u32]) -> Op {
        let spec = |i: usize| ends[i].1.spec(&self.keys, masters[i]);
        match ends[0].1.item.link.lifecycle() {
            Lifecycle::Owned(kind) => Op::CreateLink { end: spec(0), kind },
            _ => Op::CreatePair {
                a: spec(0),
                b: spec(1),
            },
        }
    }

    /// References nothing refers to any more (let go of after this plan).
    fn stale_refs(&self, scan: &HashSet<&NamespaceRef>, scoped: bool) -> Vec<NamespaceRef> {
        self.refs
            .keys()
            .filter(|_| !scoped)
            .filter(|r| !scan.contains(r))
            .cloned()
            .collect()
    }

    /// Namespaces to let go of: nothing refers to them and nothing of ours is known to be
    /// left in them; only in a round that resolves nothing (a reference being resolved may
    /// name one of them).
    fn releases(&self, learned: &Learned, scoped: bool) -> Vec<Op> {
        let resolving = learned
            .ops
            .iter()
            .any(|op| matches!(op, Op::ResolveNs { .. }));
        if resolving || scoped {
            return Vec::new();
        }
        self.views
            .iter()
            .filter(|(ns, view)| {
                let links_clear = matches!(view, View::Known(links) if links.is_empty());
                let l3_clear = match self.l3_views.get(ns) {
                    None => true,
                    Some(L3View::Known {
                        routes, neighbours, ..
                    }) => routes.is_empty() && neighbours.is_empty(),
                    Some(L3View::Unknown) => false,
                };
                !learned.needed.contains(ns) && links_clear && l3_clear && self.no_marks_in(ns)
            })
            .map(|(ns, _)| Op::ReleaseNs { ns: *ns })
            .collect()
    }

    /// Valid VETH items among `items` by name, with host-name conflicts removed; statuses
    /// for the rest.
    fn valid_items<'a>(
        &'a self,
        items: &[(&'a str, &'a Item)],
        book: &mut StatusBook,
    ) -> HashMap<&'a str, &'a Interface> {
        let mut valid = HashMap::with_capacity_and_hasher(items.len(), Default::default());
        for (name, item) in items {
            match &item.config {
                Err(e) => book.set(
                    name,
                    ItemStatus::Invalid {
                        error: e.to_string(),
                    },
                ),
                Ok(i) => {
                    valid.insert(*name, i);
                }
            }
        }
        let mut by_host: HashMap<(NsKey, &str), Vec<&str>> =
            HashMap::with_capacity_and_hasher(valid.len(), Default::default());
        for (name, i) in &valid {
            let key = match self.refs.get(&i.namespace) {
                Some(RefState::Resolved(id)) => NsKey::Id(*id),
                _ => NsKey::Ref(&i.namespace),
            };
            by_host
                .entry((key, &i.host_if_name))
                .or_default()
                .push(name);
        }
        for ((_, host), mut names) in by_host {
            if names.len() < 2 {
                continue;
            }
            names.sort_by_key(|n| (self.items[*n].revision, *n));
            let winner = &self.items[names[0]];
            for loser in &names[1..] {
                let item = &self.items[*loser];
                let ns = &valid[loser].namespace;
                let error = format!(
                    "{}: field `host_if_name`: host name `{host}` in the {ns} is already used by {}",
                    item.key, winner.key
                );
                book.set(loser, ItemStatus::Invalid { error });
                valid.remove(loser);
            }
        }
        self.drop_shared_taps(&mut valid, book);
        valid
    }

    /// One TAP can be taken over by one AUTO_TAP: of the items naming the same temporary
    /// name, the one written first stays valid.
    fn drop_shared_taps(&self, valid: &mut HashMap<&str, &Interface>, book: &mut StatusBook) {
        let mut by_temp: HashMap<&str, Vec<&str>> = HashMap::default();
        for (name, i) in valid.iter() {
            if let Lifecycle::Adopted { temp_name } = i.link.lifecycle() {
                by_temp.entry(temp_name).or_default().push(name);
            }
        }
        for (temp, mut names) in by_temp.into_iter().filter(|(_, n)| n.len() > 1) {
            names.sort_by_key(|n| (self.items[*n].revision, *n));
            let winner = &self.items[names[0]].key;
            for loser in &names[1..] {
                let error = format!(
                    "{}: field `tap.temp_if_name`: the TAP `{temp}` is already taken over by {winner}",
                    self.items[*loser].key
                );
                book.set(loser, ItemStatus::Invalid { error });
                valid.remove(loser);
            }
        }
    }

    /// What to do with one valid item: its requirements (peer, VRF, namespaces) met or not,
    /// and whether a retry or repair holds it.
    fn decide<'a>(
        &self,
        i: &'a Interface,
        valid: &HashMap<&str, &'a Interface>,
        now: Duration,
    ) -> Decision<'a> {
        let mut involved = vec![i];
        match i.link.lifecycle() {
            Lifecycle::Pair { peer } => match self.peer_of(i, peer, valid) {
                Ok(p) => involved.push(p),
                Err(waiting) => return waiting,
            },
            Lifecycle::Owned(_) | Lifecycle::Existing { .. } | Lifecycle::Adopted { .. } => {}
        }
        for j in &involved {
            if let Err(waiting) = vrf_of(j, valid) {
                return waiting;
            }
        }
        let own_ns = match self.namespaces_of(&involved) {
            Ok(ns) => ns,
            Err(waiting) => return waiting,
        };
        if let Some((ns, name)) = self.found_by(i, own_ns) {
            if !self.foreign_known(ns, name) {
                return Decision::Hold(ItemStatus::Pending {
                    reason: self.reading(&i.namespace),
                });
            }
        }
        for j in &involved {
            if let Some(b) = self.item_backoff.get(&j.name).filter(|b| b.waiting(now)) {
                return Decision::Hold(ItemStatus::Failed {
                    error: b.error.clone(),
                });
            }
            if let Some(s) = self.repair_hold(ItemKind::Interface, &j.name, now) {
                return Decision::Hold(s);
            }
        }
        Decision::Desired(DesiredEnd {
            item: i,
            ns: own_ns,
        })
    }

    /// The valid peer of VETH end `i`, naming `i` as its own peer.
    fn peer_of<'a>(
        &self,
        i: &Interface,
        peer_name: &str,
        valid: &HashMap<&str, &'a Interface>,
    ) -> Result<&'a Interface, Decision<'a>> {
        let Some(peer) = valid.get(peer_name) else {
            return Err(pending(if self.items.contains_key(peer_name) {
                format!("peer interface `{peer_name}` is not valid")
            } else {
                format!("peer interface `{peer_name}` is not configured")
            }));
        };
        if peer.veth_peer() != i.name {
            return Err(pending(format!(
                "peer interface `{peer_name}` names `{}` as its peer",
                peer.veth_peer()
            )));
        }
        Ok(peer)
    }

    /// The namespace of the first of `involved` (the item; then its peer), once every one of
    /// theirs is resolved and read.
    fn namespaces_of<'a>(&self, involved: &[&Interface]) -> Result<NsId, Decision<'a>> {
        let i = involved[0];
        let mut own_ns = None;
        for (n, j) in involved.iter().enumerate() {
            let r = &j.namespace;
            match self.refs.get(r) {
                Some(RefState::Unavailable {
                    reason,
                    invalid: true,
                    ..
                }) => {
                    let key = &self.items[&i.name].key;
                    let field = namespace_field(r);
                    return Err(Decision::Withdraw(ItemStatus::Failed {
                        error: if n == 0 {
                            format!("{key}: field `{field}`: {reason}")
                        } else {
                            format!(
                                "the namespace of peer interface `{}` is unusable: {reason}",
                                j.name
                            )
                        },
                    }));
                }
                Some(RefState::Unavailable { reason, .. }) => {
                    return Err(pending(format!("waiting for the {r}: {reason}")));
                }
                Some(RefState::Resolved(ns))
                    if matches!(self.views.get(ns), Some(View::Known(_))) =>
                {
                    own_ns = own_ns.or(Some(*ns));
                }
                _ => {
                    return Err(Decision::Hold(ItemStatus::Pending {
                        reason: self.reading(r),
                    }));
                }
            }
        }
        own_ns.ok_or_else(|| {
            Decision::Hold(ItemStatus::Pending {
                reason: format!("reading the {}", i.namespace),
            })
        })
    }

    /// Why an item waits while its namespace is being looked up.
    pub(super) fn reading(&self, r: &NamespaceRef) -> String {
        if matches!(r, NamespaceRef::Microservice(_)) && !self.microservices_known {
            format!("waiting for Docker to list the running containers ({r})")
        } else {
            format!("reading the {r}")
        }
    }

    /// (name, peer) from the alias of every link whose delete waits for a retry.
    fn waiting_ends(&self, now: Duration) -> HashSet<(&str, &str)> {
        self.link_backoff
            .iter()
            .filter(|(_, b)| b.waiting(now))
            .filter_map(|(key, _)| self.link_backoff_ends.get(key))
            .map(|(name, peer)| (name.as_str(), peer.as_str()))
            .collect()
    }

    /// The claimed link cannot be deleted now: its own delete or its peer's waits.
    fn claim_waiting(
        &self,
        c: &Claim,
        waiting_ends: &HashSet<(&str, &str)>,
        now: Duration,
    ) -> bool {
        if self.link_waiting(c.ns, c.link.ifindex, now) {
            return true;
        }
        let own = c
            .link
            .alias
            .as_deref()
            .and_then(|a| self.keys.split_link_alias(a));
        own.is_some_and(|(name, peer)| waiting_ends.contains(&(peer, name)))
    }

    pub(super) fn link_waiting(&self, ns: NsId, ifindex: u32, now: Duration) -> bool {
        self.link_backoff
            .get(&(ns, ifindex))
            .is_some_and(|b| b.waiting(now))
    }

    /// Gives a temporary name first to every link whose new name another link renamed in
    /// the same plan still holds: names swapped between two links, or passed along a chain
    /// or a cycle, would otherwise fail with EEXIST for ever. The next round, with those
    /// names given up, renames them to their final names.
    fn untangle_renames(&self, updates: &mut [Op]) {
        let current_name = |ns: &NsId, ifindex: &u32| match self.views.get(ns) {
            Some(View::Known(links)) => links.get(ifindex).map(|l| l.name.as_str()),
            _ => None,
        };
        let given_up: HashSet<(NsId, &str)> = updates
            .iter()
            .filter_map(|op| match op {
                Op::UpdateLink {
                    ns,
                    ifindex,
                    changes,
                } if changes.rename.is_some() => current_name(ns, ifindex).map(|n| (*ns, n)),
                _ => None,
            })
            .collect();
        for op in updates.iter_mut() {
            if let Op::UpdateLink {
                ns,
                ifindex,
                changes,
            } = op
            {
                if let Some(target) = &mut changes.rename {
                    if given_up.contains(&(*ns, target.as_str())) {
                        *target = temporary_name(*ifindex);
                    }
                }
            }
        }
    }

    /// The in-place changes that make owned link `k` match `i`, if any; a link left in the
    /// transient deletion group (by a group deletion that failed or was cut short) goes back
    /// to the agent's own group.
    pub(super) fn link_changes(
        &self,
        k: &KernelLink,
        i: &Interface,
        master: u32,
    ) -> Option<LinkChanges> {
        let regroup = (k.group == self.delete_group).then_some(self.link_group);
        match changes(&self.keys, k, i, master) {
            Some(c) => Some(LinkChanges {
                group: regroup,
                ..c
            }),
            None => regroup.map(|g| LinkChanges {
                group: Some(g),
                ..Default::default()
            }),
        }
    }
}

/// The status of items whose links wait: withdrawn, their links go (a TAP taken over is
/// given back) and what depends on them sees them absent; held, the kernel is left as it is.
fn wait<'a>(
    names: &[&'a str],
    waiting: Waiting,
    claims: &HashMap<&'a str, Vec<Claim<'a>>>,
    work: &mut Work<'a>,
) -> ItemStatus {
    match waiting {
        Waiting::Withdraw(status) => {
            for n in names {
                let links = claims.get(n).map(Vec::as_slice).unwrap_or_default();
                work.deletes.extend(links.iter().map(|c| (c.ns, c.link)));
                let absent = IfaceState::Absent(status.detail().to_string());
                work.ifaces.insert(n, absent);
            }
            status
        }
        Waiting::Hold(status) => status,
    }
}

/// A link name no configuration is likely to use, unique in its namespace: `nsatmp` and the
/// link's index in hex (at most 14 bytes).
fn temporary_name(ifindex: u32) -> String {
    format!("nsatmp{ifindex:x}")
}

/// The VRF interface `i` names is configured, valid, a VRF_DEVICE and in `i`'s namespace
/// (else `i` waits for it).
fn vrf_of<'a>(i: &Interface, valid: &HashMap<&str, &'a Interface>) -> Result<(), Decision<'a>> {
    let vrf = i.vrf_master_interface.as_str();
    if vrf.is_empty() {
        return Ok(());
    }
    let problem = match valid.get(vrf) {
        None => "is not configured (or not valid)",
        Some(v) if v.link.vrf_table().is_none() => "is not a VRF_DEVICE",
        Some(v) if v.namespace != i.namespace => "is in another namespace",
        Some(_) => return Ok(()),
    };
    Err(pending(format!(
        "VRF interface `{vrf}` (`vrf_master_interface` of `{}`) {problem}",
        i.name
    )))
}

fn pending(reason: String) -> Decision<'static> {
    Decision::Withdraw(ItemStatus::Pending { reason })
}

/// The value field that holds a namespace reference of this kind.
pub(super) fn namespace_field(r: &NamespaceRef) -> &'static str {
    match r {
        NamespaceRef::Default => "namespace",
        NamespaceRef::Pid(_) => "namespace.pid",
        NamespaceRef::Microservice(_) => "namespace.microservice",
        NamespaceRef::Named(_) => "namespace.name",
        NamespaceRef::File(_) => "namespace.filepath",
    }
}

/// True when an owned link can be kept for this end: right namespace, peer and kind.
fn fits(c: &Claim, end: &DesiredEnd) -> bool {
    let kind_fits = match end.item.link.lifecycle() {
        Lifecycle::Pair { .. } => c.link.kind == "veth",
        Lifecycle::Owned(kind) => {
            c.link.kind == kind.kernel_kind() && c.link.vrf_table == end.item.link.vrf_table()
        }
        Lifecycle::Adopted { .. } | Lifecycle::Existing { .. } => false,
    };
    kind_fits && c.ns == end.ns && c.alias_peer.is_none_or(|p| p == end.peer())
}

/// The MTU a link must have: the configured one, else the kernel's default for a new link
/// of its kind.
fn wanted_mtu(i: &Interface) -> u32 {
    match (i.mtu, i.link.lifecycle()) {
        (0, Lifecycle::Owned(owned)) => owned.default_mtu,
        (0, _) => DEFAULT_VETH_MTU,
        (mtu, _) => mtu,
    }
}

/// The in-place changes that make `k` match the configuration `i`, if any.
/// Addresses of both are sorted (the executor reports them sorted, the scheduler keeps its
/// configuration sorted).
fn changes(keys: &KeyTree, k: &KernelLink, i: &Interface, master: u32) -> Option<LinkChanges> {
    let mtu = Some(wanted_mtu(i)).filter(|m| k.mtu != *m);
    let alias_ok = k
        .alias
        .as_deref()
        .is_some_and(|a| keys.is_link_alias(a, &i.name, i.alias_suffix()));
    let mac = i.phys_address.filter(|m| k.mac != Some(*m));
    if k.name == i.host_if_name
        && alias_ok
        && mtu.is_none()
        && mac.is_none()
        && k.up == i.enabled
        && k.master == master
        && k.addresses == i.ip_addresses
    {
        return None;
    }
    let (add, del) = sorted_difference(&i.ip_addresses, &k.addresses);
    Some(LinkChanges {
        rename: (k.name != i.host_if_name).then(|| i.host_if_name.clone()),
        alias: (!alias_ok).then(|| keys.link_alias(&i.name, i.alias_suffix())),
        mtu,
        mac,
        up: (k.up != i.enabled).then_some(i.enabled),
        master: (k.master != master).then_some(master),
        add_addresses: add,
        del_addresses: del,
        group: None,
        address_mark: None,
    })
}

/// (in `want` but not in `have`, in `have` but not in `want`), for sorted slices.
fn sorted_difference(want: &[IpNet], have: &[IpNet]) -> (Vec<IpNet>, Vec<IpNet>) {
    let add = want
        .iter()
        .filter(|a| have.binary_search(a).is_err())
        .copied()
        .collect();
    let del = have
        .iter()
        .filter(|a| want.binary_search(a).is_err())
        .copied()
        .collect();
    (add, del)
}
