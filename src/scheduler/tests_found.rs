//! Links the agent finds instead of creating (EXISTING, LOOPBACK), on the fake kernel.

use super::l3::route;
use super::*;
use crate::kernel::KernelEvent;
use crate::model::link::{existing::Existing, loopback::Loopback};
use ipnet::IpNet;

fn existing(name: &str, host: &str, link_only: bool, ns: NamespaceRef) -> Interface {
    Interface {
        link: LinkKind::Existing(Existing { link_only }),
        host_if_name: host.into(),
        ..veth(name, "unused", ns)
    }
}

fn loopback(name: &str, ns: NamespaceRef) -> Interface {
    Interface {
        link: LinkKind::Loopback(Loopback),
        host_if_name: "lo".into(),
        ..veth(name, "unused", ns)
    }
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

impl World {
    /// A link someone else makes in `r`, reported to the scheduler as the kernel would.
    fn someone_adds_link(&mut self, r: &NamespaceRef, name: &str) -> u32 {
        let ns = self.k.world[r];
        let index = self.k.add_foreign_link(ns, name);
        let link = self.k.links[&ns][&index].link.clone();
        self.s.kernel_events(ns, &[KernelEvent::Link(link)]);
        index
    }

    /// The link `name` of `r`, loopback included.
    fn link(&self, r: &NamespaceRef, name: &str) -> KernelLink {
        self.k.by_name(r)[name].clone()
    }
}

#[test]
fn an_existing_link_is_waited_for_then_configured_and_only_its_own_addresses_removed() {
    let mut w = World::new();
    let n1 = named("n1");
    w.k.add_namespace(n1.clone());
    let mut e = existing("e", "eth9", false, n1.clone());
    e.mtu = 9000;
    e.ip_addresses = vec![net("10.9.0.1/24")];
    w.put(e.clone());
    w.converge();
    assert_eq!(
        w.status("e"),
        ItemStatus::Pending {
            reason: "waiting for a link named `eth9` in the named namespace n1".into()
        }
    );
    // Nothing was created for it.
    assert!(w.links(&n1).is_empty());

    let index = w.someone_adds_link(&n1, "eth9");
    let ns = w.k.world[&n1];
    // Someone else's address on it stays whatever the agent does.
    let theirs = net("192.168.7.1/24");
    w.k.links
        .get_mut(&ns)
        .unwrap()
        .get_mut(&index)
        .unwrap()
        .link
        .addresses = vec![theirs];
    w.converge();
    assert_eq!(w.status("e"), ItemStatus::Applied);
    let l = w.link(&n1, "eth9");
    assert_eq!((l.ifindex, l.mtu, l.up), (index, 9000, true));
    assert_eq!(l.addresses, vec![net("10.9.0.1/24"), theirs]);
    assert_eq!(l.marked_addresses, vec![net("10.9.0.1/24")]);
    assert_eq!((l.alias, l.group), (None, 0), "never marked as the agent's");
    assert!(w.s.plan(w.now).is_empty(), "in sync: nothing to do");

    // A configured address that someone else added is left unmarked (and stays theirs).
    e.ip_addresses = vec![net("10.9.0.2/24"), theirs];
    w.put(e);
    w.converge();
    let l = w.link(&n1, "eth9");
    assert_eq!(l.addresses, vec![net("10.9.0.2/24"), theirs]);
    assert_eq!(l.marked_addresses, vec![net("10.9.0.2/24")]);

    // Deleting the item removes only the agent's address; the link and its state stay.
    let writes = w.k.writes;
    w.s.delete("e");
    w.converge();
    assert_eq!(w.k.writes, writes + 1, "one update, no delete");
    let l = w.link(&n1, "eth9");
    assert_eq!(l.addresses, vec![theirs]);
    assert!(l.marked_addresses.is_empty());
    assert_eq!((l.mtu, l.up), (9000, true));
    assert!(w.s.plan(w.now).is_empty());
}

#[test]
fn a_link_only_existing_link_is_never_changed_but_carries_routes() {
    let mut w = World::new();
    let n1 = named("n1");
    w.k.add_namespace(n1.clone());
    let index = {
        let ns = w.k.world[&n1];
        let i = w.k.add_foreign_link(ns, "ext0");
        let l = &mut w.k.links.get_mut(&ns).unwrap().get_mut(&i).unwrap().link;
        l.up = true;
        l.addresses = vec![net("10.7.0.1/24")];
        i
    };
    let mut e = existing("e", "ext0", true, n1.clone());
    e.mtu = 1400;
    e.ip_addresses = vec![net("10.8.0.1/24")];
    e.enabled = false;
    w.put(e);
    w.put_route(route(
        "r",
        "10.50.0.0/16",
        Some("10.7.0.254"),
        "e",
        n1.clone(),
    ));
    let writes = w.k.writes;
    w.converge();
    assert_eq!(w.k.writes, writes, "a link_only link is not written");
    assert_eq!(w.status("e"), ItemStatus::Applied);
    let l = w.link(&n1, "ext0");
    assert_eq!((l.mtu, l.up, l.addresses.len()), (1500, true, 1));
    let routes = w.k.routes_in(&n1);
    assert!(
        routes
            .iter()
            .any(|r| r.oif == index && r.dst == net("10.50.0.0/16")),
        "{routes:?}"
    );
}

#[test]
fn a_vanished_existing_link_makes_its_item_and_routes_wait_until_it_is_back() {
    let mut w = World::new();
    let n1 = named("n1");
    w.k.add_namespace(n1.clone());
    let index = w.someone_adds_link(&n1, "eth9");
    let mut e = existing("e", "eth9", false, n1.clone());
    e.ip_addresses = vec![net("10.9.0.1/24")];
    w.put(e);
    w.put_route(route("r", "10.50.0.0/16", None, "e", n1.clone()));
    w.converge();
    assert_eq!(w.status("e"), ItemStatus::Applied);
    assert_eq!(w.k.routes_in(&n1).len(), 1);

    let ns = w.k.world[&n1];
    w.k.links.get_mut(&ns).unwrap().remove(&index);
    w.k.routes.get_mut(&ns).unwrap().clear();
    assert!(w
        .s
        .kernel_events(ns, &[KernelEvent::LinkGone { ifindex: index }]));
    w.converge();
    assert!(matches!(w.status("e"), ItemStatus::Pending { .. }));
    let route_status = &w.s.status()[&(ItemKind::Route, "r".to_string())];
    assert!(
        matches!(route_status, ItemStatus::Pending { .. }),
        "{route_status:?}"
    );

    w.someone_adds_link(&n1, "eth9");
    w.converge();
    assert_eq!(w.status("e"), ItemStatus::Applied);
    assert_eq!(w.link(&n1, "eth9").addresses, vec![net("10.9.0.1/24")]);
    assert_eq!(w.k.routes_in(&n1).len(), 1);
}

#[test]
fn the_loopback_is_configured_and_a_second_one_in_its_namespace_is_invalid() {
    let mut w = World::new();
    let n1 = named("n1");
    w.k.add_namespace(n1.clone());
    let mut lo = loopback("lo1", n1.clone());
    lo.ip_addresses = vec![net("10.255.0.1/32")];
    w.put(lo);
    w.put(loopback("lo2", n1.clone()));
    // Another namespace's loopback is another link; a missing named namespace is made for
    // it (every namespace has one).
    w.put(loopback("lo3", named("n2")));
    w.converge();
    assert_eq!(w.status("lo1"), ItemStatus::Applied);
    assert_eq!(w.status("lo3"), ItemStatus::Applied);
    assert!(w.link(&named("n2"), "lo").up);
    let ItemStatus::Invalid { error } = w.status("lo2") else {
        panic!("{:?}", w.status("lo2"));
    };
    assert!(error.contains("host name `lo`"), "{error}");
    assert!(error.contains("/interface/lo1"), "names the first: {error}");
    let l = w.link(&n1, "lo");
    assert!(l.up);
    assert_eq!(l.addresses, vec![net("10.255.0.1/32")]);

    w.s.delete("lo1");
    w.converge();
    // The second item takes over; the first's address goes.
    assert_eq!(w.status("lo2"), ItemStatus::Applied);
    assert!(w.link(&n1, "lo").addresses.is_empty());
}

#[test]
fn an_address_removal_that_fails_is_retried_with_backoff() {
    let mut w = World::new();
    let n1 = named("n1");
    w.k.add_namespace(n1.clone());
    w.someone_adds_link(&n1, "eth9");
    let mut e = existing("e", "eth9", false, n1.clone());
    e.ip_addresses = vec![net("10.9.0.1/24")];
    w.put(e);
    w.converge();
    w.s.delete("e");
    w.k.fail_next.insert("update");
    w.converge();
    assert_eq!(w.link(&n1, "eth9").marked_addresses.len(), 1);
    // Waiting for the retry: nothing is planned meanwhile.
    assert!(w
        .s
        .plan(w.now)
        .phases
        .iter()
        .flatten()
        .all(|op| !op.writes()));
    w.settle(1);
    assert!(w.link(&n1, "eth9").marked_addresses.is_empty());
}

#[test]
fn a_restart_with_everything_in_place_writes_nothing() {
    let mut w = World::new();
    let n1 = named("n1");
    w.k.add_namespace(n1.clone());
    w.someone_adds_link(&n1, "eth9");
    let mut e = existing("e", "eth9", false, n1.clone());
    e.ip_addresses = vec![net("10.9.0.1/24")];
    e.mtu = 1400;
    w.put(e);
    let mut lo = loopback("lo1", n1.clone());
    lo.ip_addresses = vec![net("10.255.0.1/32")];
    w.put(lo);
    w.converge();

    let mut s = Scheduler::new(keys());
    s.resync(w.s.items().values().cloned().collect());
    let writes = w.k.writes;
    w.k.converge(&mut s, w.now);
    assert_eq!(w.k.writes, writes);
    assert_eq!(
        s.status()[&(ItemKind::Interface, "e".into())],
        ItemStatus::Applied
    );
}

#[test]
fn a_route_through_the_loopback_by_host_name_follows_the_loopback_item() {
    let mut w = World::new();
    let n1 = named("n1");
    w.put(veth("x", "y", n1.clone()));
    w.put(veth("y", "x", named("n2")));
    w.converge();
    w.put(loopback("a", n1.clone()));
    let plan = w.s.plan(w.now);
    w.k.run(&mut w.s, &plan, w.now);
    w.put_route(route("r1", "10.9.0.0/16", None, "lo", n1.clone()));
    let plan = w.s.plan(w.now);
    w.k.run(&mut w.s, &plan, w.now);
    w.settle(8);
    assert!(w.link(&n1, "lo").up);
    assert_eq!(w.k.routes_in(&n1).len(), 1, "{:?}", w.s.status());
}

#[test]
fn a_loopback_item_then_a_route_through_lo_ends_as_at_once() {
    let events = [
        super::Event::Put(loopback("a", named("n1"))),
        super::Event::Vanish(NamespaceRef::Pid(100)),
        super::Event::PutRoute(route("r1", "10.9.0.0/16", None, "lo", named("n1"))),
    ];
    super::check_event_sequence(&Default::default(), &events, true).unwrap();
}
