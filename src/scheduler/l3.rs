//! Routes and neighbour (ARP/NDP) entries: when each can be applied, and the operations that
//! make the kernel match.
//!
//! A route waits until its interface exists and is up in the route's namespace and, with a
//! gateway, until the gateway is reachable (inside the prefix of an address in that namespace
//! or of a link-scope route configured there). A neighbour entry waits until its interface
//! exists in its namespace. Both are withdrawn, and remembered, when that stops being true.
//! Only routes carrying the agent's routing-protocol number and neighbour entries carrying it
//! in `NDA_PROTOCOL` are ever changed or deleted.

use super::ops::l3::{L3Op, L3Outcome};
use super::ops::{FailureKind, Op};
use super::quiet_l3::{L3Reach, L3Scope};
use super::state::{
    route_key, IfaceState, L3Target, L3View, L3Writes, RefState, RouteKey, StatusBook, View,
};
use super::{Item, ItemStatus, Scheduler};
use crate::backoff::Backoff;
use crate::kernel::{KernelLink, KernelNeighbour, KernelRoute, NsId};
use crate::keys::ItemKind;
use crate::model::{ArpEntry, NamespaceRef, Route};
use ipnet::IpNet;
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

/// True when a decision waits for a link the agent does not own.
fn waits_on_foreign<T>(d: &L3Decision<T>) -> bool {
    matches!(d, L3Decision::WaitLink(_))
}

/// The main routing table.
pub const MAIN_TABLE: u32 = 254;
/// The metric the kernel reports for IPv6 routes added without one.
pub const IPV6_DEFAULT_METRIC: u32 = 1024;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RT_SCOPE_LINK: u8 = 253;

/// Route and neighbour operations of one plan.
pub(super) struct L3Plan {
    /// Neighbour entries and routes without a gateway (link-scope routes among them).
    pub writes: Vec<Op>,
    /// Routes through a gateway: after `writes`, since the kernel refuses a gateway that a
    /// link-scope route written in the same plan has yet to make reachable.
    pub gateway_writes: Vec<Op>,
    pub deletes: Vec<Op>,
    pub targets: L3Writes,
    /// Namespaces where an item waits for a link the agent does not own.
    pub waiting_on_links: BTreeSet<NsId>,
}

impl L3Plan {
    /// Adds a route write to the phase its gateway (or none) puts it in.
    fn route_write(&mut self, op: L3Op) {
        let via_gateway = matches!(
            &op,
            L3Op::AddRoute { route, .. } | L3Op::ReplaceRoute { route, .. } if route.gateway.is_some()
        );
        if via_gateway {
            self.gateway_writes.push(Op::L3(op));
        } else {
            self.writes.push(Op::L3(op));
        }
    }
}

/// The routes and entries a plan decides, and the namespaces whose routes and entries it
/// compares with them.
pub(super) struct L3Items<'a> {
    pub routes: Vec<(&'a str, &'a Item<Route>)>,
    pub arps: Vec<(&'a str, &'a Item<ArpEntry>)>,
    /// Where they are compared with the kernel's (`None`: everywhere).
    pub reach: Option<&'a L3Reach>,
}

impl<'a> L3Items<'a> {
    /// Every route and entry, in every namespace.
    pub(super) fn all(s: &'a Scheduler) -> Self {
        L3Items {
            routes: s.routes.iter().map(|(n, i)| (n.as_str(), i)).collect(),
            arps: s.arps.iter().map(|(n, i)| (n.as_str(), i)).collect(),
            reach: None,
        }
    }

    /// True when the plan compares the kernel's route `have` in `ns`.
    fn compares_route(&self, ns: &NsId, have: &KernelRoute) -> bool {
        self.reach.is_none_or(|r| r.route(ns, &have.dst))
    }

    /// True when the plan compares the kernel's entry `have` in `ns`.
    fn compares_neighbour(&self, ns: &NsId, have: &KernelNeighbour) -> bool {
        self.reach.is_none_or(|r| r.neighbour(ns, have.ip))
    }
}

/// What was decided for one valid route or entry.
enum L3Decision<T> {
    Desired(T),
    Withdraw(ItemStatus),
    /// Withdrawn until a link the agent does not own appears or comes up.
    WaitLink(ItemStatus),
    Hold(ItemStatus),
}

/// The kernel form of a configured route through `oif`, in routing table `table`.
fn kernel_route(r: &Route, oif: u32, table: u32, protocol: u8) -> KernelRoute {
    let v6 = matches!(r.dst, IpNet::V6(_));
    let scope = if v6 {
        // The kernel keeps no scope for IPv6 routes; it reports universe for all of them.
        RT_SCOPE_UNIVERSE
    } else {
        match r.scope {
            Some(s) => s.rtm_scope(),
            // What `ip route add` does: link scope for direct routes.
            None if r.gateway.is_none() => RT_SCOPE_LINK,
            None => RT_SCOPE_UNIVERSE,
        }
    };
    KernelRoute {
        table,
        dst: r.dst,
        gateway: r.gateway,
        source: r.src,
        metric: if v6 && r.metric == 0 {
            IPV6_DEFAULT_METRIC
        } else {
            r.metric
        },
        scope,
        oif,
        protocol,
    }
}

/// True when the kernel's route is what `want` asks for (an unset outgoing interface or
/// source lets the kernel choose).
fn route_matches(have: &KernelRoute, want: &KernelRoute) -> bool {
    have.gateway == want.gateway
        && have.scope == want.scope
        && (want.oif == 0 || have.oif == want.oif)
        && (want.source.is_none() || have.source == want.source)
}

/// True when the kernel's entry is what `want` asks for. An entry the kernel ages (REACHABLE,
/// STALE) matches while the kernel keeps it in one of its aging states (REACHABLE, STALE,
/// DELAY, PROBE), but not a PERMANENT or NOARP one, nor a FAILED or INCOMPLETE one.
/// `written` is the state the agent last wrote the entry with, if it did: a different one
/// means the configuration changed, and the entry is written again.
pub(super) fn neighbour_matches(
    have: &KernelNeighbour,
    want: &KernelNeighbour,
    written: Option<u16>,
) -> bool {
    const AGING: u16 = 0x02 | 0x04;
    const KERNEL_AGED: u16 = 0x02 | 0x04 | 0x08 | 0x10;
    let state_ok = if want.state & AGING != 0 {
        have.state & KERNEL_AGED != 0 && written.is_none_or(|w| w == want.state)
    } else {
        have.state == want.state
    };
    have.mac == want.mac && state_ok
}

impl Scheduler {
    /// Namespaces referenced by valid routes and entries (they are resolved and read too).
    pub(super) fn l3_namespaces(&self) -> impl Iterator<Item = &NamespaceRef> {
        self.l3_index.namespaces()
    }

    /// Dumps of route/neighbour state needed before planning.
    pub(super) fn l3_dumps<'a>(
        &self,
        needed: impl Iterator<Item = &'a NsId>,
        now: Duration,
    ) -> Vec<Op> {
        needed
            .filter(|ns| {
                !matches!(self.l3_views.get(ns), Some(L3View::Known { .. }))
                    || self.refresh.contains(ns)
                    || self.l3_view_backoff.contains_key(ns)
            })
            .filter(|ns| !self.l3_view_backoff.get(ns).is_some_and(|b| b.waiting(now)))
            .map(|ns| {
                Op::L3(L3Op::Dump {
                    ns: *ns,
                    protocol: self.protocol,
                })
            })
            .collect()
    }

    /// Plans routes and neighbour entries `items`, given what the interfaces they name are
    /// (`ifaces`).
    pub(super) fn plan_l3(
        &self,
        now: Duration,
        ifaces: &HashMap<&str, IfaceState>,
        book: &mut StatusBook,
        items: L3Items,
    ) -> L3Plan {
        let mut plan = L3Plan {
            writes: Vec::new(),
            gateway_writes: Vec::new(),
            deletes: Vec::new(),
            targets: HashMap::default(),
            waiting_on_links: BTreeSet::new(),
        };
        self.plan_routes(now, ifaces, book, &mut plan, &items);
        self.plan_neighbours(now, ifaces, book, &mut plan, &items);
        plan
    }

    /// Plans the routes and entries of a scoped plan: the interfaces it decided have the
    /// states it found (`decided`), the others those remembered. Also returns where it
    /// planned.
    pub(super) fn plan_scoped_l3(
        &self,
        now: Duration,
        decided: &HashMap<&str, IfaceState>,
        book: &mut StatusBook,
        scope: L3Scope,
    ) -> (L3Plan, L3Reach) {
        let mut ifaces = scope.ifaces;
        ifaces.extend(decided.iter().map(|(n, s)| (*n, s.clone())));
        let items = L3Items {
            routes: scope.routes,
            arps: scope.arps,
            reach: Some(&scope.reach),
        };
        let plan = self.plan_l3(now, &ifaces, book, items);
        (plan, scope.reach)
    }

    /// The namespace of `r` if it and its contents are known; otherwise the decision.
    fn l3_namespace<T>(
        &self,
        kind: ItemKind,
        key: &str,
        r: &NamespaceRef,
    ) -> Result<NsId, L3Decision<T>> {
        match self.refs.get(r) {
            Some(RefState::Unavailable {
                reason,
                invalid: true,
                ..
            }) => Err(L3Decision::Withdraw(ItemStatus::Failed {
                error: format!(
                    "{key}: field `{}`: {reason}",
                    super::plan::namespace_field(r)
                ),
            })),
            Some(RefState::Unavailable { reason, .. }) => {
                Err(L3Decision::Withdraw(ItemStatus::Pending {
                    reason: format!("waiting for the {r}: {reason}"),
                }))
            }
            Some(RefState::Resolved(ns))
                if matches!(self.l3_views.get(ns), Some(L3View::Known { .. }))
                    && matches!(self.views.get(ns), Some(View::Known(_))) =>
            {
                Ok(*ns)
            }
            _ => {
                let _ = kind;
                Err(L3Decision::Hold(ItemStatus::Pending {
                    reason: self.reading(r),
                }))
            }
        }
    }

    /// The routing table of a route: its own `table`, else the table of the VRF its
    /// interface is enslaved to, else main.
    fn route_table(&self, r: &Route) -> u32 {
        if r.table != 0 {
            return r.table;
        }
        let config = |name: &str| self.items.get(name).and_then(|i| i.config.as_ref().ok());
        config(&r.interface)
            .map(|i| i.vrf_master_interface.as_str())
            .filter(|vrf| !vrf.is_empty())
            .and_then(config)
            .and_then(|vrf| vrf.link.vrf_table())
            .unwrap_or(MAIN_TABLE)
    }

    /// The link an item names in namespace `ns`: a configured interface by its logical name,
    /// else a link the agent does not manage by its host name.
    fn l3_link<'a, T>(
        &'a self,
        ifaces: &HashMap<&str, IfaceState<'a>>,
        (ns, place): (NsId, &NamespaceRef),
        name: &str,
        need_up: bool,
    ) -> Result<(u32, bool), L3Decision<T>> {
        let withdraw = |reason: String| Err(L3Decision::Withdraw(ItemStatus::Pending { reason }));
        if self.items.contains_key(name) {
            return match ifaces.get(name) {
                Some(IfaceState::Usable { ns: at, link }) if *at == ns => {
                    if need_up && !link.up {
                        withdraw(format!("interface `{name}` is down"))
                    } else {
                        Ok((link.ifindex, link.up))
                    }
                }
                Some(IfaceState::Usable { .. }) => withdraw(format!(
                    "interface `{name}` is in another namespace than this item"
                )),
                Some(IfaceState::Absent(why)) => {
                    withdraw(format!("interface `{name}` is not applied: {why}"))
                }
                Some(IfaceState::Busy) | None => Err(L3Decision::Hold(ItemStatus::Pending {
                    reason: format!("interface `{name}` is being applied"),
                })),
            };
        }
        let Some(L3View::Known { links, .. }) = self.l3_views.get(&ns) else {
            return Err(L3Decision::Hold(ItemStatus::Pending {
                reason: "reading the namespace".into(),
            }));
        };
        let wait = |reason: String| Err(L3Decision::WaitLink(ItemStatus::Pending { reason }));
        match links.iter().find(|l| l.name == name) {
            Some(l) if need_up && !l.up => wait(format!("link `{name}` in the {place} is down")),
            Some(l) => Ok((l.ifindex, l.up)),
            None => wait(format!(
                "no configured interface and no link named `{name}` in the {place}"
            )),
        }
    }

    /// Every address of an up link in namespace `ns` (a down link's prefixes route nothing),
    /// with the index of its link: owned links as the scheduler knows them, other links as
    /// last read.
    fn addresses_in(&self, ns: NsId) -> Vec<(u32, IpNet)> {
        let owned: Vec<&KernelLink> = match self.views.get(&ns) {
            Some(View::Known(links)) => links.values().collect(),
            _ => Vec::new(),
        };
        let mut out: Vec<(u32, IpNet)> = owned
            .iter()
            .filter(|l| l.up)
            .flat_map(|l| l.addresses.iter().map(|a| (l.ifindex, *a)))
            .collect();
        if let Some(L3View::Known { links, .. }) = self.l3_views.get(&ns) {
            for l in links.iter().filter(|l| l.up) {
                if !owned.iter().any(|o| o.ifindex == l.ifindex) {
                    out.extend(l.addresses.iter().map(|a| (l.ifindex, *a)));
                }
            }
        }
        out
    }

    /// True when `ip` is an address of a link (up or down) in namespace `ns`: the kernel
    /// takes only such a preferred source.
    fn has_address(&self, ns: NsId, ip: IpAddr) -> bool {
        let owned = match self.views.get(&ns) {
            Some(View::Known(links)) => links
                .values()
                .any(|l| l.addresses.iter().any(|a| a.addr() == ip)),
            _ => false,
        };
        owned
            || matches!(self.l3_views.get(&ns), Some(L3View::Known { links, .. })
                if links.iter().any(|l| l.addresses.iter().any(|a| a.addr() == ip)))
    }

    /// The direct routes of others (a link-scope route added by hand) through each up link
    /// of namespace `ns`, as last read: (link index, destination).
    fn foreign_direct_routes(&self, ns: NsId) -> Vec<(u32, IpNet)> {
        match self.l3_views.get(&ns) {
            Some(L3View::Known { links, .. }) => links
                .iter()
                .filter(|l| l.up)
                .flat_map(|l| l.direct_routes.iter().map(|d| (l.ifindex, *d)))
                .collect(),
            _ => Vec::new(),
        }
    }

    fn l3_waiting(&self, kind: ItemKind, name: &str, now: Duration) -> Option<ItemStatus> {
        self.l3_backoff
            .get(&(kind, name.to_string()))
            .filter(|b| b.waiting(now))
            .map(|b| ItemStatus::Failed {
                error: b.error.clone(),
            })
    }

    fn plan_routes(
        &self,
        now: Duration,
        ifaces: &HashMap<&str, IfaceState>,
        book: &mut StatusBook,
        plan: &mut L3Plan,
        items: &L3Items,
    ) {
        let kind = ItemKind::Route;
        // Valid routes; the later of two with one kernel identity in one namespace is invalid.
        let mut valid: Vec<(&str, &Route)> = Vec::new();
        let mut seen: HashMap<(NsKeyRef, RouteKey), &str> = HashMap::default();
        let mut ordered = items.routes.clone();
        ordered.sort_by_key(|(n, i)| (i.revision, *n));
        for (name, item) in ordered {
            match &item.config {
                Err(e) => book.set_kind(
                    kind,
                    name,
                    ItemStatus::Invalid {
                        error: e.to_string(),
                    },
                ),
                Ok(r) => {
                    let k = route_key(&kernel_route(r, 0, self.route_table(r), self.protocol));
                    match seen.get(&(self.ns_key(&r.namespace), k)) {
                        Some(other) => {
                            let error = format!(
                                "{}: field `dst_ip_addr`: a route to {} (table {}, metric {}) in the {} is already configured by {}",
                                item.key, r.dst, k.0, k.2, r.namespace, self.routes[*other].key
                            );
                            book.set_kind(kind, name, ItemStatus::Invalid { error });
                        }
                        None => {
                            seen.insert((self.ns_key(&r.namespace), k), name);
                            valid.push((name, r));
                        }
                    }
                }
            }
        }
        valid.sort_by_key(|(n, _)| *n);

        // Decide: direct routes first, so that link-scope ones can make gateways reachable.
        let mut decided: Vec<(&str, Option<NsId>, L3Decision<KernelRoute>)> = Vec::new();
        // Link-scope destinations per namespace, with the link they are on.
        let mut link_scope: HashMap<NsId, Vec<(u32, IpNet)>> = HashMap::default();
        for pass_gateway in [false, true] {
            for (name, r) in valid
                .iter()
                .filter(|(_, r)| r.gateway.is_some() == pass_gateway)
            {
                let key = &self.routes[*name].key;
                let ns = match self.l3_namespace(kind, key, &r.namespace) {
                    Ok(ns) => ns,
                    Err(d) => {
                        decided.push((name, None, d));
                        continue;
                    }
                };
                let d = self.decide_route(now, ifaces, name, r, ns, &link_scope);
                if waits_on_foreign(&d) {
                    plan.waiting_on_links.insert(ns);
                }
                if let L3Decision::Desired(k) = &d {
                    if k.scope == RT_SCOPE_LINK {
                        link_scope.entry(ns).or_default().push((k.oif, k.dst));
                    }
                }
                decided.push((name, Some(ns), d));
            }
        }

        // Diff every namespace whose routes are known.
        let mut desired: HashMap<(NsId, RouteKey), (&str, &KernelRoute)> = HashMap::default();
        let mut held: HashSet<(NsId, RouteKey)> = HashSet::default();
        for (name, ns, d) in &decided {
            match (ns, d) {
                (Some(ns), L3Decision::Desired(k)) => {
                    desired.insert((*ns, route_key(k)), (name, k));
                }
                (Some(ns), L3Decision::Hold(s)) => {
                    let r = valid.iter().find(|(n, _)| n == name).map(|(_, r)| *r);
                    if let Some(r) = r {
                        held.insert((
                            *ns,
                            route_key(&kernel_route(r, 0, self.route_table(r), self.protocol)),
                        ));
                    }
                    book.hold_kind(kind, name, s.clone());
                }
                (_, L3Decision::Hold(s)) => book.hold_kind(kind, name, s.clone()),
                (_, L3Decision::Withdraw(s) | L3Decision::WaitLink(s)) => {
                    book.set_kind(kind, name, s.clone())
                }
                (None, L3Decision::Desired(_)) => {}
            }
        }
        let mut present: HashSet<(NsId, RouteKey)> = HashSet::default();
        for (ns, view) in &self.l3_views {
            let L3View::Known { routes, .. } = view else {
                continue;
            };
            for have in routes.iter().filter(|r| items.compares_route(ns, r)) {
                let id = (*ns, route_key(have));
                present.insert(id);
                match desired.get(&id) {
                    Some((name, want)) if route_matches(have, want) => {
                        book.set_kind(kind, name, ItemStatus::Applied);
                    }
                    Some((name, want)) => {
                        plan.targets
                            .insert(L3Target::Route(*ns, id.1), (kind, name.to_string()));
                        plan.route_write(L3Op::ReplaceRoute {
                            ns: *ns,
                            route: (*want).clone(),
                        });
                        book.set_kind(kind, name, ItemStatus::Applying);
                    }
                    None if held.contains(&id) => {}
                    None => plan.deletes.push(Op::L3(L3Op::DeleteRoute {
                        ns: *ns,
                        route: have.clone(),
                    })),
                }
            }
        }
        let mut missing: Vec<_> = desired
            .iter()
            .filter(|(id, _)| !present.contains(*id))
            .collect();
        missing.sort_by_key(|(_, (name, _))| *name);
        for ((ns, key), (name, want)) in missing {
            plan.targets
                .insert(L3Target::Route(*ns, *key), (kind, name.to_string()));
            plan.route_write(L3Op::AddRoute {
                ns: *ns,
                route: (*want).clone(),
            });
            book.set_kind(kind, name, ItemStatus::Applying);
        }
    }

    fn decide_route(
        &self,
        now: Duration,
        ifaces: &HashMap<&str, IfaceState>,
        name: &str,
        r: &Route,
        ns: NsId,
        link_scope: &HashMap<NsId, Vec<(u32, IpNet)>>,
    ) -> L3Decision<KernelRoute> {
        let mut oif = if r.interface.is_empty() {
            0
        } else {
            match self.l3_link(ifaces, (ns, &r.namespace), &r.interface, true) {
                Ok((ifindex, _)) => ifindex,
                Err(d) => return d,
            }
        };
        // A link-local gateway is on the route's interface by definition (the model requires
        // one): every IPv6 link has its fe80::/64, so the kernel takes it once the link is up.
        let on_its_link =
            matches!(r.gateway, Some(IpAddr::V6(gw)) if gw.segments()[0] & 0xffc0 == 0xfe80);
        if let Some(gw) = r.gateway.filter(|_| !on_its_link) {
            // Where the gateway is reachable: an address prefix of an up link or a link-scope
            // route; with an interface, only through that interface (the kernel wants it so).
            let on_link = |ifindex: u32| oif == 0 || ifindex == oif;
            let by_address = self
                .addresses_in(ns)
                .into_iter()
                .filter(|(i, a)| on_link(*i) && a.contains(&gw))
                .map(|(i, a)| (a.prefix_len(), 1, i));
            let foreign = self.foreign_direct_routes(ns);
            let by_route = link_scope
                .get(&ns)
                .into_iter()
                .flatten()
                .chain(&foreign)
                .filter(|(i, d)| on_link(*i) && d.contains(&gw))
                .map(|(i, d)| (d.prefix_len(), 0, *i));
            // Without an interface, the route gets the link a lookup of the gateway gives
            // (longest prefix; an address before a route, then the lower index), written
            // explicitly: the route follows the gateway when it moves to another link.
            let best = by_address
                .chain(by_route)
                .max_by_key(|(len, address, i)| (*len, *address, std::cmp::Reverse(*i)));
            match best {
                Some((_, _, ifindex)) if oif == 0 => oif = ifindex,
                Some(_) => {}
                None => {
                    let through = if oif == 0 {
                        String::new()
                    } else {
                        format!(" through interface `{}`", r.interface)
                    };
                    return L3Decision::Withdraw(ItemStatus::Pending {
                        reason: format!(
                            "gateway {gw} is not reachable{through}: no address and no direct (link-scope) route in the {} covers it",
                            r.namespace
                        ),
                    });
                }
            }
        }
        if let Some(src) = r.src.filter(|src| !self.has_address(ns, *src)) {
            return L3Decision::Withdraw(ItemStatus::Pending {
                reason: format!(
                    "source address {src} is not an address of any link in the {}",
                    r.namespace
                ),
            });
        }
        if let Some(s) = self.l3_waiting(ItemKind::Route, name, now) {
            return L3Decision::Hold(s);
        }
        if let Some(s) = self.repair_hold(ItemKind::Route, name, now) {
            return L3Decision::Hold(s);
        }
        L3Decision::Desired(kernel_route(r, oif, self.route_table(r), self.protocol))
    }

    fn plan_neighbours(
        &self,
        now: Duration,
        ifaces: &HashMap<&str, IfaceState>,
        book: &mut StatusBook,
        plan: &mut L3Plan,
        items: &L3Items,
    ) {
        let kind = ItemKind::Arp;
        let mut desired: HashMap<(NsId, u32, IpAddr), (&str, KernelNeighbour)> = HashMap::default();
        // Held entries keep every owned entry for their address in their namespace.
        let mut held: HashSet<(NsId, IpAddr)> = HashSet::default();
        let mut ordered = items.arps.clone();
        ordered.sort_by_key(|(n, i)| (i.revision, *n));
        for (name, item) in ordered {
            let a: &ArpEntry = match &item.config {
                Err(e) => {
                    book.set_kind(
                        kind,
                        name,
                        ItemStatus::Invalid {
                            error: e.to_string(),
                        },
                    );
                    continue;
                }
                Ok(a) => a,
            };
            let ns = match self.l3_namespace::<()>(kind, &item.key, &a.namespace) {
                Ok(ns) => ns,
                Err(L3Decision::Hold(s)) => {
                    book.hold_kind(kind, name, s);
                    continue;
                }
                Err(L3Decision::Withdraw(s) | L3Decision::WaitLink(s)) => {
                    book.set_kind(kind, name, s);
                    continue;
                }
                Err(L3Decision::Desired(())) => continue,
            };
            let link = self.l3_link::<()>(ifaces, (ns, &a.namespace), &a.interface, false);
            if let Err(d) = &link {
                if waits_on_foreign(d) {
                    plan.waiting_on_links.insert(ns);
                }
            }
            let ifindex = match link {
                Ok((ifindex, _)) => ifindex,
                Err(L3Decision::Hold(s)) => {
                    held.insert((ns, a.ip));
                    book.hold_kind(kind, name, s);
                    continue;
                }
                Err(L3Decision::Withdraw(s) | L3Decision::WaitLink(s)) => {
                    book.set_kind(kind, name, s);
                    continue;
                }
                Err(L3Decision::Desired(())) => continue,
            };
            if let Some(s) = self
                .l3_waiting(kind, name, now)
                .or_else(|| self.repair_hold(kind, name, now))
            {
                held.insert((ns, a.ip));
                book.set_kind(kind, name, s);
                continue;
            }
            if let Some((other, _)) = desired.get(&(ns, ifindex, a.ip)) {
                let error = format!(
                    "{}: field `ip_addr`: an entry for {} on `{}` is already configured by {}",
                    item.key, a.ip, a.interface, self.arps[*other].key
                );
                book.set_kind(kind, name, ItemStatus::Invalid { error });
                continue;
            }
            let want = KernelNeighbour {
                ifindex,
                ip: a.ip,
                mac: Some(a.mac),
                state: a.state.nud_state(),
                protocol: Some(self.protocol),
            };
            desired.insert((ns, ifindex, a.ip), (name, want));
        }

        let mut present: HashSet<(NsId, u32, IpAddr)> = HashSet::default();
        for (ns, view) in &self.l3_views {
            let L3View::Known { neighbours, .. } = view else {
                continue;
            };
            for have in neighbours
                .iter()
                .filter(|n| items.compares_neighbour(ns, n))
            {
                let id = (*ns, have.ifindex, have.ip);
                present.insert(id);
                match desired.get(&id) {
                    Some((name, want))
                        if neighbour_matches(
                            have,
                            want,
                            self.neighbours_written.get(&id).copied(),
                        ) =>
                    {
                        book.set_kind(kind, name, ItemStatus::Applied);
                    }
                    Some((name, want)) => {
                        plan.targets.insert(
                            L3Target::Neighbour(*ns, have.ifindex, have.ip),
                            (kind, name.to_string()),
                        );
                        plan.writes.push(Op::L3(L3Op::SetNeighbour {
                            ns: *ns,
                            neighbour: want.clone(),
                        }));
                        book.set_kind(kind, name, ItemStatus::Applying);
                    }
                    None if held.contains(&(*ns, have.ip)) => {}
                    None => plan.deletes.push(Op::L3(L3Op::DeleteNeighbour {
                        ns: *ns,
                        neighbour: have.clone(),
                    })),
                }
            }
        }
        let mut missing: Vec<_> = desired
            .iter()
            .filter(|(id, _)| !present.contains(*id))
            .collect();
        missing.sort_by_key(|(_, (name, _))| *name);
        for ((ns, ifindex, ip), (name, want)) in missing {
            plan.targets.insert(
                L3Target::Neighbour(*ns, *ifindex, *ip),
                (kind, name.to_string()),
            );
            plan.writes.push(Op::L3(L3Op::SetNeighbour {
                ns: *ns,
                neighbour: want.clone(),
            }));
            book.set_kind(kind, name, ItemStatus::Applying);
        }
    }

    fn ns_key<'a>(&self, r: &'a NamespaceRef) -> NsKeyRef<'a> {
        match self.refs.get(r) {
            Some(RefState::Resolved(id)) => NsKeyRef::Id(*id),
            _ => NsKeyRef::Ref(r),
        }
    }

    /// Link operations change what routes and neighbours exist (the kernel flushes them with
    /// their link): read those namespaces again before planning routes there.
    pub(super) fn links_changed(&mut self, op: &Op) {
        if self.routes.is_empty() && self.arps.is_empty() {
            return;
        }
        let touched: Vec<NsId> = match op {
            Op::CreatePair { .. } | Op::CreateLink { .. } => op.namespaces(),
            Op::UpdateLink { ns, .. } => vec![*ns],
            // Deleting a VETH end deletes its peer, in a namespace not named here.
            Op::DeleteLink { .. } | Op::DeleteLinks { .. } => {
                self.l3_views.keys().copied().collect()
            }
            _ => Vec::new(),
        };
        // Read them again but keep planning with what is known meanwhile, so that what
        // depends on these links does not flap to pending.
        self.refresh.extend(
            touched
                .into_iter()
                .filter(|ns| self.l3_views.contains_key(ns)),
        );
    }

    /// Forgets a link the agent deleted from a namespace's route view, with the routes and
    /// entries the kernel flushes with it, so that its addresses no longer make gateways
    /// reachable before that view is read again.
    pub(super) fn forget_l3_link(&mut self, ns: NsId, ifindex: u32) {
        if let Some(L3View::Known {
            links,
            routes,
            neighbours,
        }) = self.l3_views.get_mut(&ns)
        {
            links.retain(|l| l.ifindex != ifindex);
            routes.retain(|r| r.oif != ifindex);
            neighbours.retain(|n| n.ifindex != ifindex);
        }
    }

    /// Folds the outcome of one route/neighbour operation into the scheduler's beliefs.
    pub(super) fn complete_l3(&mut self, op: &L3Op, outcome: L3Outcome, now: Duration) {
        match (op, outcome) {
            (
                L3Op::Dump { ns, .. },
                L3Outcome::Dumped {
                    routes,
                    neighbours,
                    links,
                },
            ) => {
                self.l3_view_backoff.remove(ns);
                self.l3_views.insert(
                    *ns,
                    L3View::Known {
                        routes,
                        neighbours,
                        links,
                    },
                );
            }
            (L3Op::Dump { ns, .. }, L3Outcome::Failed { kind, error }) => {
                if kind == FailureKind::NamespaceGone {
                    self.refs.retain(|_, s| *s != RefState::Resolved(*ns));
                    self.l3_views.remove(ns);
                } else {
                    let b = Backoff::after_failure(self.l3_view_backoff.get(ns), error, now);
                    self.l3_view_backoff.insert(*ns, b);
                }
            }
            (L3Op::AddRoute { ns, route } | L3Op::ReplaceRoute { ns, route }, L3Outcome::Done) => {
                self.clear_l3_backoff(&L3Target::Route(*ns, route_key(route)));
                if let Some(L3View::Known { routes, .. }) = self.l3_views.get_mut(ns) {
                    routes.retain(|r| route_key(r) != route_key(route));
                    routes.push(route.clone());
                }
            }
            (L3Op::DeleteRoute { ns, route }, L3Outcome::Done) => {
                if let Some(L3View::Known { routes, .. }) = self.l3_views.get_mut(ns) {
                    routes.retain(|r| r != route);
                }
            }
            (L3Op::SetNeighbour { ns, neighbour }, L3Outcome::Done) => {
                let target = L3Target::Neighbour(*ns, neighbour.ifindex, neighbour.ip);
                self.clear_l3_backoff(&target);
                self.neighbours_written
                    .insert((*ns, neighbour.ifindex, neighbour.ip), neighbour.state);
                if let Some(L3View::Known { neighbours, .. }) = self.l3_views.get_mut(ns) {
                    neighbours.retain(|n| (n.ifindex, n.ip) != (neighbour.ifindex, neighbour.ip));
                    neighbours.push(neighbour.clone());
                }
            }
            (L3Op::DeleteNeighbour { ns, neighbour }, L3Outcome::Done) => {
                self.neighbours_written
                    .remove(&(*ns, neighbour.ifindex, neighbour.ip));
                if let Some(L3View::Known { neighbours, .. }) = self.l3_views.get_mut(ns) {
                    neighbours.retain(|n| n != neighbour);
                }
            }
            (op, outcome) => {
                let ns = op.ns();
                let target = match op {
                    L3Op::AddRoute { route, .. } | L3Op::ReplaceRoute { route, .. } => {
                        Some(L3Target::Route(ns, route_key(route)))
                    }
                    L3Op::SetNeighbour { neighbour, .. } => {
                        Some(L3Target::Neighbour(ns, neighbour.ifindex, neighbour.ip))
                    }
                    L3Op::DeleteRoute { .. } | L3Op::DeleteNeighbour { .. } | L3Op::Dump { .. } => {
                        None
                    }
                };
                let error = match outcome {
                    L3Outcome::Failed { error, .. } => error,
                    other => format!("unexpected answer {other:?}"),
                };
                match target.and_then(|t| self.l3_writes.get(&t).cloned()) {
                    Some(item) => {
                        let b = Backoff::after_failure(self.l3_backoff.get(&item), error, now);
                        self.l3_backoff.insert(item, b);
                    }
                    None => {
                        // A failed delete: wait before reading and trying again.
                        let b = Backoff::after_failure(self.l3_view_backoff.get(&ns), error, now);
                        self.l3_view_backoff.insert(ns, b);
                    }
                }
                if let Some(v) = self.l3_views.get_mut(&ns) {
                    *v = L3View::Unknown;
                }
            }
        }
    }

    fn clear_l3_backoff(&mut self, target: &L3Target) {
        if let Some(item) = self.l3_writes.get(target) {
            self.l3_backoff.remove(item);
        }
    }
}

/// Namespace identity for conflicts between routes: resolved id when known, else the
/// reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum NsKeyRef<'a> {
    Id(NsId),
    Ref(&'a NamespaceRef),
}
