//! Single owned links (DUMMY, TAP, VRF_DEVICE) and VRF membership, on the fake kernel.

use super::l3::route;
use super::*;
use crate::model::link::{dummy::Dummy, tap::Tap, vrf::Vrf};

fn single(name: &str, link: LinkKind, ns: NamespaceRef) -> Interface {
    Interface {
        link,
        ..veth(name, "unused", ns)
    }
}

fn dummy(name: &str, ns: NamespaceRef) -> Interface {
    single(name, LinkKind::Dummy(Dummy), ns)
}

fn vrf(name: &str, table: u32, ns: NamespaceRef) -> Interface {
    single(name, LinkKind::VrfDevice(Vrf { table }), ns)
}

fn in_vrf(mut i: Interface, vrf: &str) -> Interface {
    i.vrf_master_interface = vrf.into();
    i
}

#[test]
fn a_dummy_is_created_changed_in_place_and_deleted_with_its_item() {
    let mut w = World::new();
    let mut d = dummy("d", named("n1"));
    d.ip_addresses = vec!["10.1.0.1/24".parse().unwrap()];
    w.put(d.clone());
    w.converge();
    assert_eq!(w.status("d"), ItemStatus::Applied);
    let link = &w.links(&named("n1"))["d"];
    assert_eq!(link.kind, "dummy");
    assert_eq!(link.alias.as_deref(), Some("/vnf-agent/t/d"));
    assert_eq!(link.addresses, d.ip_addresses);

    // In sync: nothing to do.
    assert!(w.s.plan(w.now).is_empty());

    let index = link.ifindex;
    d.mtu = 1400;
    w.put(d);
    let writes = w.k.writes;
    w.converge();
    assert_eq!(w.k.writes, writes + 1, "one in-place update");
    assert_eq!(w.links(&named("n1"))["d"].ifindex, index);
    assert_eq!(w.links(&named("n1"))["d"].mtu, 1400);

    w.s.delete("d");
    w.converge();
    assert!(w.links(&named("n1")).is_empty());
}

#[test]
fn a_new_kind_under_the_same_name_replaces_the_link() {
    let mut w = World::new();
    w.put(dummy("x", named("n1")));
    w.converge();
    w.put(single("x", LinkKind::Tap(Tap), named("n1")));
    w.converge();
    assert_eq!(w.links(&named("n1"))["x"].kind, "tun");
    w.put(vrf("x", 10, named("n1")));
    w.converge();
    assert_eq!(w.links(&named("n1"))["x"].vrf_table, Some(10));
    // Another table cannot be set in place: the VRF is made again.
    w.put(vrf("x", 11, named("n1")));
    w.converge();
    assert_eq!(w.links(&named("n1"))["x"].vrf_table, Some(11));
    assert_eq!(w.status("x"), ItemStatus::Applied);
}

#[test]
fn links_join_their_vrf_once_it_exists_and_leave_with_it() {
    let mut w = World::new();
    w.put(in_vrf(dummy("d", named("n1")), "red"));
    w.put(in_vrf(veth("a", "b", named("n1")), "red"));
    w.put(veth("b", "a", named("n2")));
    w.converge();
    let waiting = "VRF interface `red` (`vrf_master_interface` of `d`) is not configured";
    assert!(matches!(w.status("d"), ItemStatus::Pending { reason } if reason.contains(waiting)));
    assert!(w.links(&named("n1")).is_empty());

    w.put(vrf("red", 10, named("n1")));
    w.converge();
    let links = w.links(&named("n1"));
    let red = links["red"].ifindex;
    assert_eq!(links["d"].master, red);
    assert_eq!(links["a"].master, red);
    assert_eq!(w.links(&named("n2"))["b"].master, 0);
    for name in ["red", "d", "a", "b"] {
        assert_eq!(w.status(name), ItemStatus::Applied, "{name}");
    }
    assert!(w.s.plan(w.now).is_empty());

    // Leaving the VRF is a change in place.
    w.put(dummy("d", named("n1")));
    w.converge();
    assert_eq!(w.links(&named("n1"))["d"].master, 0);

    // Without its VRF, a member waits (and its links go).
    w.s.delete("red");
    w.converge();
    assert!(matches!(w.status("a"), ItemStatus::Pending { .. }));
    assert!(!w.links(&named("n1")).contains_key("a"));
    assert_eq!(w.status("d"), ItemStatus::Applied);
}

#[test]
fn a_vrf_elsewhere_or_of_another_kind_is_named_in_the_status() {
    let mut w = World::new();
    w.put(vrf("red", 10, named("n2")));
    w.put(dummy("plain", named("n1")));
    w.put(in_vrf(dummy("d", named("n1")), "red"));
    w.put(in_vrf(dummy("e", named("n1")), "plain"));
    w.converge();
    let reason = |n: &str| match w.status(n) {
        ItemStatus::Pending { reason } => reason,
        other => panic!("{n}: {other:?}"),
    };
    assert!(reason("d").contains("`red`"), "{}", reason("d"));
    assert!(reason("d").contains("is in another namespace"));
    assert!(reason("e").contains("is not a VRF_DEVICE"));
}

#[test]
fn routes_through_a_vrf_member_go_into_the_vrfs_table() {
    let mut w = World::new();
    w.put(vrf("red", 10, named("n1")));
    let mut d = in_vrf(dummy("d", named("n1")), "red");
    d.ip_addresses = vec!["10.2.0.1/24".parse().unwrap()];
    w.put(d);
    w.put_route(route(
        "r",
        "10.9.0.0/16",
        Some("10.2.0.254"),
        "d",
        named("n1"),
    ));
    let mut own_table = route("t", "10.8.0.0/16", Some("10.2.0.254"), "d", named("n1"));
    own_table.table = 20;
    w.put_route(own_table);
    w.converge();
    w.converge();
    let tables: BTreeMap<String, u32> =
        w.k.routes_in(&named("n1"))
            .into_iter()
            .map(|r| (r.dst.to_string(), r.table))
            .collect();
    assert_eq!(tables.get("10.9.0.0/16"), Some(&10), "{tables:?}");
    assert_eq!(tables.get("10.8.0.0/16"), Some(&20), "{tables:?}");
}
