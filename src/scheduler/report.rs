//! What an operation does, in words, and which items it is for: the operator's journal, the
//! resync summary and repair detection are made from these.

use super::ops::l3::L3Op;
use super::ops::{LinkChanges, Op};
use super::state::{route_key, L3Target, L3View, RefState, View};
use super::Scheduler;
use crate::kernel::{KernelLink, NsId};
use crate::keys::ItemKind;

/// The kind of kernel object an operation writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Object {
    /// A link (a VETH pair counts once).
    Link,
    /// A route.
    Route,
    /// A neighbour (ARP/NDP) entry.
    Neighbour,
}

/// What an operation does to its object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Creates it.
    Create,
    /// Changes it in place.
    Update,
    /// Deletes it.
    Delete,
}

/// One write operation, described.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpReport {
    /// The configured items it is for (none for something no configuration asks for).
    pub items: Vec<(ItemKind, String)>,
    /// The object it writes.
    pub object: Object,
    /// What it does to it.
    pub change: Change,
    /// What it does, in words (`mtu 1400 -> 1500, up`).
    pub what: String,
}

impl Scheduler {
    /// Describes a write operation of the last plan (`None` for reads and releases). Call it
    /// before [`Scheduler::complete`], while the scheduler still knows the object as it was.
    pub fn report(&self, op: &Op) -> Option<OpReport> {
        let report = |items, object, change, what| {
            Some(OpReport {
                items,
                object,
                change,
                what,
            })
        };
        match op {
            Op::CreatePair { a, b } => {
                let items = [a, b]
                    .iter()
                    .filter_map(|e| self.keys.parse_link_alias(&e.alias))
                    .map(|(name, _)| (ItemKind::Interface, name))
                    .collect();
                let what = format!(
                    "created veth pair {} in the {} / {} in the {}",
                    a.name,
                    self.place(a.ns),
                    b.name,
                    self.place(b.ns)
                );
                report(items, Object::Link, Change::Create, what)
            }
            Op::CreateLink { end, kind } => {
                let items = self
                    .keys
                    .parse_link_alias(&end.alias)
                    .map(|(name, _)| (ItemKind::Interface, name))
                    .into_iter()
                    .collect();
                let what = format!(
                    "created {} {} in the {}",
                    kind.kernel_kind(),
                    end.name,
                    self.place(end.ns)
                );
                report(items, Object::Link, Change::Create, what)
            }
            Op::UpdateLink {
                ns,
                ifindex,
                changes,
            } => {
                let items = self
                    .link_writes
                    .get(&(*ns, *ifindex))
                    .map(|n| vec![(ItemKind::Interface, n.clone())])
                    .unwrap_or_default();
                let what = describe_changes(self.known_link(*ns, *ifindex), changes);
                report(items, Object::Link, Change::Update, what)
            }
            Op::DeleteLink { ns, ifindex, name } => {
                let items = self.link_item(*ns, *ifindex).into_iter().collect();
                let what = format!("deleted link {name} in the {}", self.place(*ns));
                report(items, Object::Link, Change::Delete, what)
            }
            Op::DeleteLinks { ns, links } => {
                let items = links
                    .iter()
                    .filter_map(|l| self.link_item(*ns, l.ifindex))
                    .collect();
                let names: Vec<&str> = links.iter().map(|l| l.name.as_str()).collect();
                let what = format!(
                    "deleted links {} in the {}",
                    names.join(", "),
                    self.place(*ns)
                );
                report(items, Object::Link, Change::Delete, what)
            }
            Op::AdoptLink { from, end, .. } => {
                let items = self
                    .keys
                    .parse_link_alias(&end.alias)
                    .map(|(name, _)| vec![(ItemKind::Interface, name)])
                    .unwrap_or_default();
                let temp = self
                    .keys
                    .split_link_alias(&end.alias)
                    .map_or("", |(_, t)| t);
                let what = format!(
                    "took over TAP {temp} of the {} as {} in the {}",
                    self.place(*from),
                    end.name,
                    self.place(end.ns)
                );
                report(items, Object::Link, Change::Create, what)
            }
            Op::ReturnLink {
                ns,
                ifindex,
                name,
                temp_name,
                to,
                ..
            } => {
                let items = self.link_item(*ns, *ifindex).into_iter().collect();
                let what = format!(
                    "gave back TAP {name} of the {} to the {} as {temp_name}",
                    self.place(*ns),
                    self.place(*to)
                );
                report(items, Object::Link, Change::Delete, what)
            }
            Op::L3(op) => self.report_l3(op),
            Op::ResolveNs { .. }
            | Op::DumpNs { .. }
            | Op::ReadLinks { .. }
            | Op::ReleaseNs { .. } => None,
        }
    }

    fn report_l3(&self, op: &L3Op) -> Option<OpReport> {
        let ns = op.ns();
        let item = |target: L3Target| self.l3_writes.get(&target).cloned().into_iter().collect();
        let place = self.place(ns);
        let (items, object, change, what) = match op {
            L3Op::AddRoute { route, .. } => (
                item(L3Target::Route(ns, route_key(route))),
                Object::Route,
                Change::Create,
                format!("added route {route} in the {place}"),
            ),
            L3Op::ReplaceRoute { route, .. } => (
                item(L3Target::Route(ns, route_key(route))),
                Object::Route,
                Change::Update,
                format!("replaced route with {route} in the {place}"),
            ),
            L3Op::DeleteRoute { route, .. } => (
                Vec::new(),
                Object::Route,
                Change::Delete,
                format!("deleted route {route} in the {place}"),
            ),
            L3Op::SetNeighbour { neighbour, .. } => {
                let existing = matches!(self.l3_views.get(&ns), Some(L3View::Known { neighbours, .. })
                    if neighbours.iter().any(|n| (n.ifindex, n.ip) == (neighbour.ifindex, neighbour.ip)));
                let change = if existing {
                    Change::Update
                } else {
                    Change::Create
                };
                (
                    item(L3Target::Neighbour(ns, neighbour.ifindex, neighbour.ip)),
                    Object::Neighbour,
                    change,
                    format!("set neighbour {neighbour} in the {place}"),
                )
            }
            L3Op::DeleteNeighbour { neighbour, .. } => (
                Vec::new(),
                Object::Neighbour,
                Change::Delete,
                format!("deleted neighbour {neighbour} in the {place}"),
            ),
            L3Op::Dump { .. } => return None,
        };
        Some(OpReport {
            items,
            object,
            change,
            what,
        })
    }

    /// The configured item a known link's alias names, if any.
    fn link_item(&self, ns: NsId, ifindex: u32) -> Option<(ItemKind, String)> {
        let alias = self.known_link(ns, ifindex)?.alias.as_deref()?;
        let (name, _) = self.keys.split_link_alias(alias)?;
        self.items
            .contains_key(name)
            .then(|| (ItemKind::Interface, name.to_string()))
    }

    fn known_link(&self, ns: NsId, ifindex: u32) -> Option<&KernelLink> {
        match self.views.get(&ns) {
            Some(View::Known(links)) => links.get(&ifindex),
            _ => None,
        }
        .or_else(|| self.found_link(ns, ifindex))
    }

    /// How messages name a namespace: a reference to it, else its identity.
    pub(super) fn place(&self, ns: NsId) -> String {
        self.refs
            .iter()
            .filter(|(_, s)| **s == RefState::Resolved(ns))
            .map(|(r, _)| r.to_string())
            .min()
            .unwrap_or_else(|| format!("namespace {ns}"))
    }
}

/// `renamed a -> b, mtu 1400 -> 1500, mac x -> y, up, +10.0.0.1/24, -10.0.0.2/24`.
fn describe_changes(old: Option<&KernelLink>, c: &LinkChanges) -> String {
    let mut parts = Vec::new();
    let was = |f: &dyn Fn(&KernelLink) -> String| old.map(f).unwrap_or_else(|| "?".into());
    if let Some(n) = &c.rename {
        parts.push(format!("renamed {} -> {n}", was(&|l| l.name.clone())));
    }
    if let Some(m) = c.mtu {
        parts.push(format!("mtu {} -> {m}", was(&|l| l.mtu.to_string())));
    }
    if let Some(mac) = c.mac {
        let old_mac = was(&|l| l.mac.map(|m| m.to_string()).unwrap_or_default());
        parts.push(format!("mac {old_mac} -> {mac}"));
    }
    if let Some(up) = c.up {
        parts.push(if up { "set up" } else { "set down" }.to_string());
    }
    parts.extend(c.add_addresses.iter().map(|a| format!("+{a}")));
    parts.extend(c.del_addresses.iter().map(|a| format!("-{a}")));
    if c.alias.is_some() {
        parts.push("ownership alias set".to_string());
    }
    if let Some(g) = c.group {
        parts.push(format!("group {} -> {g}", was(&|l| l.group.to_string())));
    }
    let name = old.map(|l| l.name.as_str()).unwrap_or("?");
    format!("link {name}: {}", parts.join(", "))
}
