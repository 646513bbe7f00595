//! Links the agent works with but does not own: EXISTING links and the LOOPBACK of a
//! namespace. They are read by host name ([`Op::ReadLinks`]), never created or deleted; the
//! agent changes admin state, MTU, MAC and master as configured, and marks the addresses it
//! adds (`IFA_PROTO`) so that it removes only those, also when the item goes.

use super::ops::{LinkChanges, Op};
use super::state::{Foreign, IfaceState, L3View, RefState, Work};
use super::{ItemStatus, Scheduler};
use crate::kernel::{KernelLink, NsId};
use crate::model::link::Lifecycle;
use crate::model::{Interface, NamespaceRef};
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Host names of the found links valid items want, by namespace (resolved ones only).
pub(super) type Wanted<'a> = BTreeMap<NsId, BTreeSet<&'a str>>;

impl Scheduler {
    /// The host names valid items want found, by the namespace they resolve to.
    pub(super) fn wanted_foreign<'a>(&self, valid: &HashMap<&'a str, &'a Interface>) -> Wanted<'a> {
        let mut wanted = Wanted::new();
        for i in valid.values() {
            if let Some(RefState::Resolved(ns)) = self.refs.get(&i.namespace) {
                if let Some((at, name)) = self.found_by(i, *ns) {
                    wanted.entry(at).or_default().insert(name);
                }
            }
        }
        wanted
    }

    /// The link item `i` (in namespace `ns`) is found by, with its namespace: an EXISTING or
    /// LOOPBACK link by host name in `ns`, an AUTO_TAP by its temporary name in the agent's
    /// own namespace; `None` for the links the agent creates (or while its own namespace is
    /// not resolved).
    pub(super) fn found_by<'a>(&self, i: &'a Interface, ns: NsId) -> Option<(NsId, &'a str)> {
        match i.link.lifecycle() {
            Lifecycle::Existing { .. } => Some((ns, &i.host_if_name)),
            Lifecycle::Adopted { temp_name } => match self.refs.get(&NamespaceRef::Default) {
                Some(RefState::Resolved(own)) => Some((*own, temp_name)),
                _ => None,
            },
            Lifecycle::Pair { .. } | Lifecycle::Owned(_) => None,
        }
    }

    /// Reads of found links due in namespaces `read`: where links are wanted or marks of the
    /// agent may be left, when not read yet, to be read again, or asked for new names.
    pub(super) fn foreign_reads<'a>(
        &self,
        read: impl Iterator<Item = &'a NsId>,
        wanted: &Wanted,
        now: Duration,
    ) -> Vec<Op> {
        let mut ops = Vec::new();
        for ns in read {
            let names = wanted.get(ns);
            let known = self.foreign.get(ns);
            if names.is_none() && known.is_none() {
                continue;
            }
            let backoff = self.view_backoff.get(ns);
            if backoff.is_some_and(|b| b.waiting(now)) {
                continue;
            }
            let asked_all = match (known, names) {
                (Some(k), Some(names)) => names.iter().all(|n| k.names.contains(*n)),
                (Some(_), None) => true,
                (None, _) => false,
            };
            if !asked_all || self.refresh.contains(ns) || backoff.is_some() {
                ops.push(Op::ReadLinks {
                    ns: *ns,
                    names: names.into_iter().flatten().map(|n| n.to_string()).collect(),
                    protocol: self.protocol,
                });
            }
        }
        ops
    }

    /// True once namespace `ns` has been read for the found link `name`.
    pub(super) fn foreign_known(&self, ns: NsId, name: &str) -> bool {
        self.foreign
            .get(&ns)
            .is_some_and(|f| f.names.contains(name))
    }

    /// The found link of item `name` (`i`, in namespace `ns`) as configured: changed in
    /// place if it differs, or usable; pending while it does not exist.
    pub(super) fn plan_found<'a>(
        &'a self,
        name: &'a str,
        (ns, i): (NsId, &'a Interface),
        master: u32,
        link_only: bool,
        work: &mut Work<'a>,
    ) -> ItemStatus {
        let found = self
            .foreign
            .get(&ns)
            .and_then(|f| f.links.values().find(|l| l.name == i.host_if_name));
        let Some(link) = found else {
            let reason = format!(
                "waiting for a link named `{}` in the {}",
                i.host_if_name, i.namespace
            );
            work.ifaces.insert(name, IfaceState::Absent(reason.clone()));
            return ItemStatus::Pending { reason };
        };
        if !link_only {
            work.found.insert((ns, link.ifindex));
        }
        let changes = (!link_only)
            .then(|| found_changes(link, i, master, self.protocol))
            .flatten();
        let Some(changes) = changes else {
            work.ifaces.insert(name, IfaceState::Usable { ns, link });
            return ItemStatus::Applied;
        };
        work.link_writes.insert((ns, link.ifindex), i.name.clone());
        work.updates.push(Op::UpdateLink {
            ns,
            ifindex: link.ifindex,
            changes,
        });
        work.ifaces.insert(name, IfaceState::Busy);
        ItemStatus::Applying
    }

    /// Removes the agent's addresses from the found links no applied item configures
    /// (`applied`: those that are, by namespace and index); a removal that failed waits for
    /// its retry.
    pub(super) fn release_marks(&self, applied: &HashSet<(NsId, u32)>, now: Duration) -> Vec<Op> {
        let mut ops = Vec::new();
        for (ns, f) in &self.foreign {
            for l in f.links.values() {
                let key = (*ns, l.ifindex);
                if l.marked_addresses.is_empty()
                    || applied.contains(&key)
                    || self.link_waiting(*ns, l.ifindex, now)
                {
                    continue;
                }
                ops.push(Op::UpdateLink {
                    ns: *ns,
                    ifindex: l.ifindex,
                    changes: LinkChanges {
                        del_addresses: l.marked_addresses.clone(),
                        address_mark: Some(self.protocol),
                        ..Default::default()
                    },
                });
            }
        }
        ops
    }

    /// True when no found link of `ns` carries an address of the agent's any more.
    pub(super) fn no_marks_in(&self, ns: &NsId) -> bool {
        self.foreign
            .get(ns)
            .is_none_or(|f| f.links.values().all(|l| l.marked_addresses.is_empty()))
    }

    /// Folds in a read of found links; a namespace where nothing is wanted or marked is
    /// forgotten.
    pub(super) fn foreign_read(&mut self, ns: NsId, names: &[String], links: Vec<KernelLink>) {
        if names.is_empty() && links.iter().all(|l| l.marked_addresses.is_empty()) {
            self.foreign.remove(&ns);
            return;
        }
        let foreign = Foreign {
            names: names.iter().cloned().collect(),
            links: links.into_iter().map(|l| (l.ifindex, l)).collect(),
        };
        self.foreign.insert(ns, foreign);
    }

    /// Keeps a found link as an update left it; false when `link` is not a found one.
    pub(super) fn foreign_updated(&mut self, ns: NsId, link: &KernelLink) -> bool {
        let Some(known) = self
            .foreign
            .get_mut(&ns)
            .and_then(|f| f.links.get_mut(&link.ifindex))
        else {
            return false;
        };
        *known = link.clone();
        // Routes naming it by host name see it as it now is.
        if let Some(L3View::Known { links, .. }) = self.l3_views.get_mut(&ns) {
            if let Some(p) = links.iter_mut().find(|p| p.ifindex == link.ifindex) {
                p.name.clone_from(&link.name);
                p.up = link.up;
                p.addresses.clone_from(&link.addresses);
            }
        }
        true
    }

    /// The found link with this index in `ns`, if any.
    pub(super) fn found_link(&self, ns: NsId, ifindex: u32) -> Option<&KernelLink> {
        self.foreign.get(&ns)?.links.get(&ifindex)
    }

    /// True when a found link of `ns` has this host name (asked for, present or not).
    pub(super) fn foreign_name(&self, ns: NsId, name: &str) -> bool {
        self.foreign
            .get(&ns)
            .is_some_and(|f| f.names.contains(name))
    }
}

/// The changes that make found link `k` match `i`: admin state always; MTU, MAC and master
/// when configured; the configured addresses it lacks added with the agent's mark, and the
/// marked ones no longer configured removed (addresses someone else added stay).
fn found_changes(k: &KernelLink, i: &Interface, master: u32, protocol: u8) -> Option<LinkChanges> {
    let add: Vec<_> = i
        .ip_addresses
        .iter()
        .filter(|a| k.addresses.binary_search(a).is_err())
        .copied()
        .collect();
    let del: Vec<_> = k
        .marked_addresses
        .iter()
        .filter(|a| i.ip_addresses.binary_search(a).is_err())
        .copied()
        .collect();
    let changes = LinkChanges {
        mtu: Some(i.mtu).filter(|m| *m != 0 && *m != k.mtu),
        mac: i.phys_address.filter(|m| k.mac != Some(*m)),
        up: (k.up != i.enabled).then_some(i.enabled),
        master: (!i.vrf_master_interface.is_empty() && k.master != master).then_some(master),
        add_addresses: add,
        del_addresses: del,
        address_mark: Some(protocol),
        ..Default::default()
    };
    (!changes.is_empty()).then_some(changes)
}
