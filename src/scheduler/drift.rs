//! Changes the kernel reports (netlink events). The echo of the agent's own writes matches
//! what the scheduler believes and is ignored; any other change to what the agent owns, or to
//! what its routes and entries wait for, makes the namespace be read again, and the next plan
//! repairs it. Someone fighting the agent (a loop deleting a link) gets repairs with capped
//! backoff instead of a busy loop: after a few repairs of one item in quick succession, each
//! waits longer than the last, and the item says so in its status. Reading again is free;
//! only repairs count, so that the passing states of the agent's own writes never slow one.

use super::l3::neighbour_matches;
use super::state::{L3View, View};
use super::{ItemStatus, Scheduler};
use crate::backoff;
use crate::kernel::{KernelEvent, KernelLink, NsId};
use crate::keys::ItemKind;
use std::collections::BTreeSet;
use std::time::Duration;

/// Repairs of one item closer together than this are one fight.
const FIGHT_WINDOW: Duration = Duration::from_secs(1);
/// Repairs of a fight made at once before the waits begin.
const FREE_REPAIRS: u32 = 3;
/// Longest wait between two repairs of one item while someone fights the agent.
const FIGHT_MAX_DELAY: Duration = Duration::from_secs(5);

/// Repairs of one item: how many in a row, and when the next one may run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Fight {
    /// Repairs in a row, each less than [`FIGHT_WINDOW`] after the previous one was allowed.
    repairs: u32,
    /// No repair before this time.
    not_before: Duration,
}

impl Fight {
    /// The wait after the `repairs`-th repair in a row.
    fn delay(repairs: u32) -> Duration {
        match repairs.checked_sub(FREE_REPAIRS) {
            None | Some(0) => Duration::ZERO,
            Some(n) => backoff::delay(n).min(FIGHT_MAX_DELAY),
        }
    }
}

impl Scheduler {
    /// Folds in what the kernel reported for namespace `ns`, in order; true when the namespace
    /// is to be read again now (a repair follows if the kernel differs from the configuration).
    pub fn kernel_events(&mut self, ns: NsId, events: &[KernelEvent]) -> bool {
        if !self.views.contains_key(&ns) {
            return false;
        }
        // Only the latest state of each object counts: the steps of the agent's own writes
        // end where the scheduler believes they did.
        let mut seen = BTreeSet::new();
        let drift = events
            .iter()
            .rev()
            .filter(|e| seen.insert(e.subject()))
            .find(|e| self.contradicts(ns, e));
        match drift {
            Some(e) => {
                tracing::debug!(%ns, event = ?e, "the kernel differs from what the agent made");
                self.drifted(ns)
            }
            None => false,
        }
    }

    /// True when `e` says something about `ns` that differs from what the scheduler believes
    /// and matters to it.
    fn contradicts(&self, ns: NsId, e: &KernelEvent) -> bool {
        let owned = match self.views.get(&ns) {
            Some(View::Known(links)) => links,
            _ => return false,
        };
        let l3 = match self.l3_views.get(&ns) {
            Some(L3View::Known {
                routes,
                neighbours,
                links,
            }) => Some((routes, neighbours, links)),
            _ => None,
        };
        let presence =
            |ifindex: u32| l3.and_then(|(_, _, links)| links.iter().find(|l| l.ifindex == ifindex));
        match e {
            KernelEvent::Overrun => true,
            // Only the agent moves links into its transient group, to delete them in the
            // same operation; a failure there makes it read the namespace again anyway.
            KernelEvent::Link(l) if l.group == self.delete_group => false,
            KernelEvent::Link(l) => match owned.get(&l.ifindex) {
                Some(known) => !same_link(known, l),
                None if self.is_ours(l) => true,
                // Someone else's link: it matters when it is one the agent configures or
                // waits for, when something waits for a link there, or when a route or entry
                // uses it and it changed.
                None => {
                    let used_changed =
                        presence(l.ifindex).is_some_and(|p| p.name != l.name || p.up != l.up);
                    match self.found_link(ns, l.ifindex) {
                        Some(found) => !same_link(found, l) || used_changed,
                        None => {
                            self.foreign_name(ns, &l.name)
                                || self.waiting_on_links.contains(&ns)
                                || used_changed
                        }
                    }
                }
            },
            KernelEvent::LinkGone { ifindex } => {
                owned.contains_key(ifindex)
                    || self.found_link(ns, *ifindex).is_some()
                    || presence(*ifindex).is_some()
            }
            KernelEvent::Address {
                ifindex,
                net,
                added,
            } => match owned.get(ifindex) {
                Some(known) => known.addresses.contains(net) != *added,
                None => match self.found_link(ns, *ifindex) {
                    Some(found) => found.addresses.contains(net) != *added,
                    None => presence(*ifindex).is_some_and(|p| p.addresses.contains(net) != *added),
                },
            },
            KernelEvent::Route { route, added } if route.protocol == self.protocol => {
                let known = l3.is_some_and(|(routes, ..)| routes.contains(route));
                known != *added
            }
            KernelEvent::Neighbour { neighbour, added }
                if neighbour.protocol == Some(self.protocol) =>
            {
                let id = (ns, neighbour.ifindex, neighbour.ip);
                let known = l3.and_then(|(_, neighbours, _)| {
                    neighbours
                        .iter()
                        .find(|n| (n.ifindex, n.ip) == (neighbour.ifindex, neighbour.ip))
                });
                match (known, added) {
                    (Some(k), true) => {
                        !neighbour_matches(neighbour, k, self.neighbours_written.get(&id).copied())
                    }
                    (None, true) | (Some(_), false) => true,
                    (None, false) => false,
                }
            }
            // Others' routes and entries are not the agent's to repair.
            KernelEvent::Route { .. } | KernelEvent::Neighbour { .. } => false,
        }
    }

    /// True for a link that carries this agent's group (or its transient one) or alias.
    fn is_ours(&self, l: &KernelLink) -> bool {
        l.group == self.link_group
            || l.group == self.delete_group
            || l.alias
                .as_deref()
                .is_some_and(|a| self.keys.split_link_alias(a).is_some())
    }

    /// Namespace `ns` drifted from what the agent made: read it again.
    fn drifted(&mut self, ns: NsId) -> bool {
        self.refresh.insert(ns);
        self.disturb();
        true
    }

    /// The agent repaired these items (it wrote to undo a change made behind its back): the
    /// next repair of each may have to wait.
    pub fn repaired(&mut self, items: impl IntoIterator<Item = (ItemKind, String)>, now: Duration) {
        // A fight goes on while repairs come less than a window after the last one was
        // allowed.
        self.fights.retain(|_, f| now < f.not_before + FIGHT_WINDOW);
        let mut items = items.into_iter().peekable();
        if items.peek().is_some() {
            // Waits begun after the last plan: the next plan decides every item, so that
            // the held ones are decided when their waits end.
            self.disturb();
        }
        for id in items {
            let f = self.fights.entry(id).or_default();
            let in_fight = f.repairs > 0 && now < f.not_before + FIGHT_WINDOW;
            f.repairs = if in_fight { f.repairs + 1 } else { 1 };
            f.not_before = now + Fight::delay(f.repairs);
        }
    }

    /// The status of an item whose next repair must wait (someone keeps changing it), if so.
    pub(super) fn repair_hold(
        &self,
        kind: ItemKind,
        name: &str,
        now: Duration,
    ) -> Option<ItemStatus> {
        let f = self.fights.get(&(kind, name.to_string()))?;
        // The same words for the whole wait (a countdown would change with every plan).
        (now < f.not_before).then(|| ItemStatus::Pending {
            reason: format!(
                "changed behind the agent's back {} times in a row; repaired again after a \
                 {} ms wait",
                f.repairs,
                Fight::delay(f.repairs).as_millis()
            ),
        })
    }

    /// When the next held repair becomes due, if any.
    pub(super) fn next_repair(&self, now: Duration) -> Option<Duration> {
        self.fights
            .values()
            .map(|f| f.not_before)
            .filter(|t| *t > now)
            .min()
    }
}

/// True when the event's link is the link the scheduler believes in (addresses are compared
/// through their own events).
fn same_link(known: &KernelLink, event: &KernelLink) -> bool {
    known.name == event.name
        && known.mtu == event.mtu
        && known.mac == event.mac
        && known.up == event.up
        && known.alias == event.alias
        && known.group == event.group
        && known.master == event.master
}
