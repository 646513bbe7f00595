//! Planning: derive the operations that move the kernel towards the configuration.

use super::ops::{EndSpec, LinkChanges, Op};
use super::{ItemStatus, Plan, RefState, Scheduler, View};
use crate::kernel::{KernelLink, NsId};
use crate::model::{Interface, InterfaceType, NamespaceRef};
use ipnet::IpNet;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// The MTU a VETH end gets when its configuration leaves it at 0 (the kernel's default).
pub const DEFAULT_VETH_MTU: u32 = 1500;

/// What one valid VETH end should look like in the kernel.
#[derive(Clone, Debug)]
struct DesiredEnd {
    peer: String,
    spec: EndSpec,
}

/// What the scheduler decided for one valid item.
enum Decision {
    /// Both ends can be applied.
    Desired(DesiredEnd),
    /// A requirement is missing (or the value names something unusable): the item's links
    /// are removed and it waits with this status.
    Withdraw(ItemStatus),
    /// Not decidable yet (namespace being read, retry backoff): the kernel is left as it is.
    Hold(ItemStatus),
}

/// Namespace identity for host-name conflicts: resolved id when known, else the reference.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum NsKey {
    Id(NsId),
    Ref(NamespaceRef),
}

/// An owned link and the item it belongs to.
struct Claim<'a> {
    ns: NsId,
    link: &'a KernelLink,
    /// The peer named in its alias; `None` for a link adopted by name (marked by the group
    /// only, because the agent stopped between creating and aliasing it).
    alias_peer: Option<String>,
}

impl Scheduler {
    /// Plans the next round of operations and refreshes every item's status.
    pub fn plan(&mut self, now: Duration) -> Plan {
        let mut status: BTreeMap<String, ItemStatus> = BTreeMap::new();
        let valid = self.valid_items(&mut status);

        let mut scan: BTreeSet<NamespaceRef> = BTreeSet::from([NamespaceRef::Default]);
        let mut apply: BTreeSet<NamespaceRef> = BTreeSet::new();
        for i in valid.values() {
            scan.insert(i.namespace.clone());
            if let Some(p) = valid.get(i.veth_peer.as_str()) {
                if p.veth_peer == i.name {
                    apply.insert(i.namespace.clone());
                }
            }
        }

        // Phase 0: learn namespaces and their contents.
        let mut learn = Vec::new();
        let mut needed_views = BTreeSet::new();
        for r in &scan {
            let named = matches!(r, NamespaceRef::Named(_));
            match self.refs.get(r) {
                None => learn.push(Op::ResolveNs {
                    reference: r.clone(),
                    create: named && apply.contains(r),
                }),
                Some(RefState::Unavailable {
                    backoff,
                    allow_create,
                    tried_create,
                    ..
                }) => {
                    let create = named && apply.contains(r) && *allow_create;
                    if !backoff.waiting(now) || (create && !tried_create) {
                        learn.push(Op::ResolveNs {
                            reference: r.clone(),
                            create,
                        });
                    }
                }
                Some(RefState::Resolved(ns)) => {
                    needed_views.insert(*ns);
                }
            }
        }
        for ns in &needed_views {
            let waiting = self.view_backoff.get(ns).is_some_and(|b| b.waiting(now));
            let known = matches!(self.views.get(ns), Some(View::Known(_)));
            if !known && !waiting {
                learn.push(Op::DumpNs { ns: *ns });
            }
        }

        // Decide every valid item.
        let mut decisions: BTreeMap<&str, Decision> = BTreeMap::new();
        for (name, i) in &valid {
            decisions.insert(name, self.decide(i, &valid, now));
        }
        let desired: BTreeMap<&str, &DesiredEnd> = decisions
            .iter()
            .filter_map(|(n, d)| match d {
                Decision::Desired(e) => Some((*n, e)),
                _ => None,
            })
            .collect();

        // Who owns which link.
        let mut claims: BTreeMap<String, Vec<Claim>> = BTreeMap::new();
        let mut orphans: Vec<(NsId, &KernelLink)> = Vec::new();
        let host_names: BTreeSet<&str> = valid.values().map(|i| i.host_if_name.as_str()).collect();
        for (ns, view) in &self.views {
            let View::Known(links) = view else { continue };
            for link in links.values() {
                let parsed = link
                    .alias
                    .as_deref()
                    .and_then(|a| self.keys.parse_link_alias(a));
                if let Some((name, peer)) = parsed {
                    claims.entry(name).or_default().push(Claim {
                        ns: *ns,
                        link,
                        alias_peer: Some(peer),
                    });
                } else if let Some(end) = desired
                    .iter()
                    .find(|(_, e)| e.spec.ns == *ns && e.spec.name == link.name)
                {
                    claims.entry(end.0.to_string()).or_default().push(Claim {
                        ns: *ns,
                        link,
                        alias_peer: None,
                    });
                } else if !host_names.contains(link.name.as_str()) {
                    orphans.push((*ns, link));
                }
            }
        }

        let mut deletes: Vec<(NsId, &KernelLink)> = orphans;
        let mut writes = Vec::new();
        for (name, decision) in &decisions {
            match decision {
                Decision::Withdraw(s) => {
                    let links = claims.get(*name).map(Vec::as_slice).unwrap_or_default();
                    deletes.extend(links.iter().map(|c| (c.ns, c.link)));
                    status.insert(name.to_string(), s.clone());
                }
                Decision::Hold(s) => {
                    status.insert(name.to_string(), s.clone());
                }
                Decision::Desired(_) => {}
            }
        }
        for (name, links) in &claims {
            if !decisions.contains_key(name.as_str()) {
                deletes.extend(links.iter().map(|c| (c.ns, c.link)));
            }
        }

        // Pairs, each once (from its end with the smaller name).
        let none: Vec<Claim> = Vec::new();
        for (name, end) in &desired {
            if end.peer.as_str() < *name {
                continue;
            }
            let Some(peer_end) = desired.get(end.peer.as_str()) else {
                continue;
            };
            let ca = claims.get(*name).unwrap_or(&none);
            let cb = claims.get(end.peer.as_str()).unwrap_or(&none);
            let blocked = ca
                .iter()
                .chain(cb)
                .any(|c| self.link_waiting(c.ns, c.link.ifindex, now));
            if blocked {
                for n in [*name, end.peer.as_str()] {
                    status.insert(
                        n.to_string(),
                        ItemStatus::Pending {
                            reason: "waiting to retry removing its old link".into(),
                        },
                    );
                }
                continue;
            }
            let in_place = match (ca.as_slice(), cb.as_slice()) {
                ([a], [b]) if fits(a, end) && fits(b, peer_end) => Some((a, b)),
                _ => None,
            };
            let mut busy = false;
            if let Some((ka, kb)) = in_place {
                for (k, d) in [(ka, *end), (kb, *peer_end)] {
                    let changes = changes(k.link, &d.spec);
                    if !changes.is_empty() {
                        busy = true;
                        writes.push(Op::UpdateLink {
                            ns: k.ns,
                            ifindex: k.link.ifindex,
                            changes,
                        });
                    }
                }
            } else {
                deletes.extend(ca.iter().chain(cb).map(|c| (c.ns, c.link)));
                writes.push(Op::CreatePair {
                    a: end.spec.clone(),
                    b: peer_end.spec.clone(),
                });
                busy = true;
            }
            let s = if busy {
                ItemStatus::Applying
            } else {
                ItemStatus::Applied
            };
            status.insert(name.to_string(), s.clone());
            status.insert(end.peer.clone(), s);
        }

        let deletes = self.delete_ops(deletes, now);

        // Let go of namespaces nothing refers to any more, once they hold nothing of ours,
        // in a round that resolves nothing (a reference being resolved may name one of them).
        let mut releases = Vec::new();
        self.refs.retain(|r, _| scan.contains(r));
        let resolving = learn.iter().any(|op| matches!(op, Op::ResolveNs { .. }));
        for (ns, view) in self.views.iter().filter(|_| !resolving) {
            let empty = match view {
                View::Known(links) => links.is_empty(),
                View::Unknown => true,
            };
            if !needed_views.contains(ns) && empty {
                releases.push(Op::ReleaseNs { ns: *ns });
            }
        }

        self.status = status;
        Plan {
            phases: [learn, deletes, writes, releases]
                .into_iter()
                .filter(|p| !p.is_empty())
                .collect(),
        }
    }

    /// Valid VETH items by name, with host-name conflicts removed; statuses for the rest.
    fn valid_items(&self, status: &mut BTreeMap<String, ItemStatus>) -> BTreeMap<&str, &Interface> {
        let mut valid = BTreeMap::new();
        for (name, item) in &self.items {
            match &item.config {
                Err(e) => {
                    status.insert(
                        name.clone(),
                        ItemStatus::Invalid {
                            error: e.to_string(),
                        },
                    );
                }
                Ok(i) if i.if_type == InterfaceType::AutoTap => {
                    let error = format!(
                        "{}: field `type`: AUTO_TAP interfaces are not supported yet",
                        item.key
                    );
                    status.insert(name.clone(), ItemStatus::Invalid { error });
                }
                Ok(i) => {
                    valid.insert(name.as_str(), i);
                }
            }
        }
        let mut by_host: BTreeMap<(NsKey, &str), Vec<&str>> = BTreeMap::new();
        for (name, i) in &valid {
            let key = match self.refs.get(&i.namespace) {
                Some(RefState::Resolved(id)) => NsKey::Id(*id),
                _ => NsKey::Ref(i.namespace.clone()),
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
                status.insert(loser.to_string(), ItemStatus::Invalid { error });
                valid.remove(loser);
            }
        }
        valid
    }

    fn decide(&self, i: &Interface, valid: &BTreeMap<&str, &Interface>, now: Duration) -> Decision {
        let peer_name = i.veth_peer.as_str();
        let Some(peer) = valid.get(peer_name) else {
            return pending(if self.items.contains_key(peer_name) {
                format!("peer interface `{peer_name}` is not valid")
            } else {
                format!("peer interface `{peer_name}` is not configured")
            });
        };
        if peer.veth_peer != i.name {
            return pending(format!(
                "peer interface `{peer_name}` names `{}` as its peer",
                peer.veth_peer
            ));
        }
        let mut ids = Vec::new();
        for (r, own) in [(&i.namespace, true), (&peer.namespace, false)] {
            match self.refs.get(r) {
                Some(RefState::Unavailable {
                    reason,
                    invalid: true,
                    ..
                }) => {
                    let key = &self.items[&i.name].key;
                    let field = namespace_field(r);
                    return Decision::Withdraw(ItemStatus::Failed {
                        error: if own {
                            format!("{key}: field `{field}`: {reason}")
                        } else {
                            format!("the namespace of peer interface `{peer_name}` is unusable: {reason}")
                        },
                    });
                }
                Some(RefState::Unavailable { reason, .. }) => {
                    return pending(format!("waiting for the {r}: {reason}"));
                }
                Some(RefState::Resolved(ns))
                    if matches!(self.views.get(ns), Some(View::Known(_))) =>
                {
                    ids.push(*ns);
                }
                _ => {
                    return Decision::Hold(ItemStatus::Pending {
                        reason: format!("reading the {r}"),
                    });
                }
            }
        }
        for n in [i.name.as_str(), peer_name] {
            if let Some(b) = self.item_backoff.get(n).filter(|b| b.waiting(now)) {
                return Decision::Hold(ItemStatus::Failed {
                    error: b.error.clone(),
                });
            }
        }
        let mut addresses: Vec<IpNet> = i.ip_addresses.clone();
        addresses.sort();
        addresses.dedup();
        Decision::Desired(DesiredEnd {
            peer: peer.name.clone(),
            spec: EndSpec {
                ns: ids[0],
                name: i.host_if_name.clone(),
                alias: self.keys.link_alias(&i.name, &peer.name),
                mtu: i.mtu,
                mac: i.phys_address,
                up: i.enabled,
                addresses,
            },
        })
    }

    fn link_waiting(&self, ns: NsId, ifindex: u32, now: Duration) -> bool {
        self.link_backoff
            .get(&(ns, ifindex))
            .is_some_and(|b| b.waiting(now))
    }

    /// Delete operations, one per VETH pair (deleting one end deletes the other), skipping
    /// links whose last delete failed until their retry is due.
    fn delete_ops(&self, mut links: Vec<(NsId, &KernelLink)>, now: Duration) -> Vec<Op> {
        links.sort_by_key(|(ns, l)| (*ns, l.ifindex));
        links.dedup_by_key(|(ns, l)| (*ns, l.ifindex));
        let aliases: BTreeSet<&str> = links
            .iter()
            .filter_map(|(_, l)| l.alias.as_deref())
            .collect();
        let mut ops = Vec::new();
        for (ns, link) in links {
            if self.link_waiting(ns, link.ifindex, now) {
                continue;
            }
            if let Some((name, peer)) = link
                .alias
                .as_deref()
                .and_then(|a| self.keys.parse_link_alias(a))
            {
                // Keep only the end with the smaller name when both ends are deleted.
                let peer_alias = self.keys.link_alias(&peer, &name);
                if peer < name && aliases.contains(peer_alias.as_str()) {
                    continue;
                }
            }
            ops.push(Op::DeleteLink {
                ns,
                ifindex: link.ifindex,
                name: link.name.clone(),
            });
        }
        ops
    }
}

fn pending(reason: String) -> Decision {
    Decision::Withdraw(ItemStatus::Pending { reason })
}

/// The value field that holds a namespace reference of this kind.
fn namespace_field(r: &NamespaceRef) -> &'static str {
    match r {
        NamespaceRef::Default => "namespace",
        NamespaceRef::Pid(_) => "namespace.pid",
        NamespaceRef::Microservice(_) => "namespace.microservice",
        NamespaceRef::Named(_) => "namespace.name",
        NamespaceRef::File(_) => "namespace.filepath",
    }
}

/// True when an owned link can be kept for this end: right namespace, right peer.
fn fits(c: &Claim, end: &DesiredEnd) -> bool {
    c.ns == end.spec.ns && c.alias_peer.as_ref().is_none_or(|p| *p == end.peer)
}

/// The in-place changes that make `k` match `d`.
fn changes(k: &KernelLink, d: &EndSpec) -> LinkChanges {
    let have: BTreeSet<IpNet> = k.addresses.iter().copied().collect();
    let want: BTreeSet<IpNet> = d.addresses.iter().copied().collect();
    let want_mtu = if d.mtu == 0 { DEFAULT_VETH_MTU } else { d.mtu };
    LinkChanges {
        rename: (k.name != d.name).then(|| d.name.clone()),
        alias: (k.alias.as_deref() != Some(d.alias.as_str())).then(|| d.alias.clone()),
        mtu: (k.mtu != want_mtu).then_some(want_mtu),
        mac: d.mac.filter(|m| k.mac != Some(*m)),
        up: (k.up != d.up).then_some(d.up),
        add_addresses: want.difference(&have).copied().collect(),
        del_addresses: have.difference(&want).copied().collect(),
    }
}
