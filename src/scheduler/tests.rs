//! Unit and property tests of the scheduler against the in-memory kernel.

use super::fake::FakeKernel;
use super::ops::{FailureKind, Op, OpOutcome};
use super::*;
use crate::model::{Interface, InterfaceType, MacAddr, ModelError, NamespaceRef};
use proptest::prelude::*;

const GROUP: u32 = 0x4000_0001;

fn keys() -> KeyTree {
    KeyTree::new("t")
}

fn veth(name: &str, peer: &str, ns: NamespaceRef) -> Interface {
    Interface {
        name: name.into(),
        description: String::new(),
        if_type: InterfaceType::Veth,
        enabled: true,
        ip_addresses: vec![],
        phys_address: None,
        mtu: 0,
        host_if_name: name.into(),
        namespace: ns,
        veth_peer: peer.into(),
        tap_temp_if_name: String::new(),
    }
}

fn named(n: &str) -> NamespaceRef {
    NamespaceRef::Named(n.into())
}

fn item(i: Interface, revision: i64) -> Item {
    Item {
        key: keys().key(crate::keys::ItemKind::Interface, &i.name),
        revision,
        config: Ok(i),
    }
}

fn bad(name: &str, revision: i64) -> Item {
    let key = keys().key(crate::keys::ItemKind::Interface, name);
    Item {
        config: Err(ModelError {
            key: key.clone(),
            field: "mtu".into(),
            message: "expected a number".into(),
        }),
        key,
        revision,
    }
}

struct World {
    s: Scheduler,
    k: FakeKernel,
    now: Duration,
    rev: i64,
}

impl World {
    fn new() -> Self {
        let mut w = World {
            s: Scheduler::new(keys()),
            k: FakeKernel::new(keys(), GROUP),
            now: Duration::from_secs(1),
            rev: 1,
        };
        w.s.resync(vec![]);
        w.converge();
        w
    }

    fn put(&mut self, i: Interface) {
        self.rev += 1;
        self.s.put(item(i, self.rev));
    }

    fn converge(&mut self) -> usize {
        self.k.converge(&mut self.s, self.now)
    }

    fn status(&self, name: &str) -> ItemStatus {
        self.s.status()[name].clone()
    }

    fn links(&self, r: &NamespaceRef) -> BTreeMap<String, KernelLink> {
        self.k.by_name(r)
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
    }
}

#[test]
fn one_end_alone_creates_nothing() {
    let mut w = World::new();
    w.put(veth("a", "b", named("n1")));
    w.converge();
    assert!(w.links(&named("n1")).is_empty());
    assert_eq!(
        w.status("a"),
        ItemStatus::Pending {
            reason: "peer interface `b` is not configured".into()
        }
    );
    // The namespace is not even needed yet: not created.
    assert!(!w.k.world.contains_key(&named("n1")));
}

#[test]
fn pair_is_created_when_both_ends_are_configured() {
    let mut w = World::new();
    let mut a = veth("a", "b", named("n1"));
    a.ip_addresses = vec!["10.0.0.1/24".parse().unwrap()];
    a.mtu = 1400;
    a.phys_address = Some(MacAddr([2, 1, 2, 3, 4, 5]));
    w.put(a);
    w.put(veth("b", "a", NamespaceRef::Default));
    w.converge();
    let la = &w.links(&named("n1"))["a"];
    assert_eq!(la.mtu, 1400);
    assert_eq!(la.addresses, vec!["10.0.0.1/24".parse().unwrap()]);
    assert_eq!(la.alias.as_deref(), Some("/vnf-agent/t/a/b"));
    assert_eq!(la.group, GROUP);
    assert!(w.links(&NamespaceRef::Default).contains_key("b"));
    assert_eq!(w.status("a"), ItemStatus::Applied);
    assert_eq!(w.status("b"), ItemStatus::Applied);
    // Converged: planning again does nothing.
    assert!(w.s.plan(w.now).is_empty());
}

#[test]
fn deleting_one_end_removes_the_pair_and_putting_it_back_restores_it() {
    let mut w = World::new();
    let mut a = veth("a", "b", named("n1"));
    a.ip_addresses = vec!["10.0.0.1/24".parse().unwrap()];
    w.put(a);
    let mut b = veth("b", "a", named("n2"));
    b.ip_addresses = vec!["10.0.0.2/24".parse().unwrap()];
    w.put(b.clone());
    w.converge();
    w.s.delete("b");
    w.converge();
    assert!(w.links(&named("n1")).is_empty());
    assert!(w.links(&named("n2")).is_empty());
    assert!(matches!(w.status("a"), ItemStatus::Pending { .. }));
    w.put(b);
    w.converge();
    assert_eq!(
        w.links(&named("n1"))["a"].addresses,
        vec!["10.0.0.1/24".parse().unwrap()]
    );
    assert_eq!(
        w.links(&named("n2"))["b"].addresses,
        vec!["10.0.0.2/24".parse().unwrap()]
    );
}

#[test]
fn in_place_changes_keep_the_ifindex() {
    let mut w = World::new();
    w.put(veth("a", "b", named("n1")));
    w.put(veth("b", "a", named("n2")));
    w.converge();
    let before = w.links(&named("n1"))["a"].ifindex;
    let mut a = veth("a", "b", named("n1"));
    a.mtu = 9000;
    a.enabled = false;
    a.phys_address = Some(MacAddr([2, 9, 9, 9, 9, 9]));
    a.ip_addresses = vec![
        "10.1.0.1/24".parse().unwrap(),
        "2001:db8::1/64".parse().unwrap(),
    ];
    a.host_if_name = "renamed".into();
    w.put(a);
    let writes = w.k.writes;
    w.converge();
    assert_eq!(w.k.writes, writes + 1, "one in-place update");
    let l = &w.links(&named("n1"))["renamed"];
    assert_eq!(l.ifindex, before);
    assert_eq!((l.mtu, l.up), (9000, false));
    assert_eq!(l.mac, Some(MacAddr([2, 9, 9, 9, 9, 9])));
    assert_eq!(l.addresses.len(), 2);
    // Back to MTU 0: the kernel default.
    w.put(veth("a", "b", named("n1")));
    w.converge();
    assert_eq!(w.links(&named("n1"))["a"].mtu, 1500);
}

#[test]
fn namespace_or_peer_change_recreates_the_pair() {
    let mut w = World::new();
    w.put(veth("a", "b", named("n1")));
    w.put(veth("b", "a", named("n2")));
    w.converge();
    w.put(veth("a", "b", named("n3")));
    w.converge();
    assert!(w.links(&named("n1")).is_empty());
    assert!(w.links(&named("n3")).contains_key("a"));
    assert!(w.links(&named("n2")).contains_key("b"));
    // Re-point both ends to new peers.
    w.put(veth("a", "c", named("n3")));
    w.put(veth("c", "a", named("n1")));
    w.converge();
    assert!(w.links(&named("n2")).is_empty(), "b's pair is gone");
    assert!(w.links(&named("n1")).contains_key("c"));
    assert_eq!(
        w.status("b"),
        ItemStatus::Pending {
            reason: "peer interface `a` names `c` as its peer".into()
        }
    );
}

#[test]
fn vanished_namespace_withdraws_and_returning_namespace_restores() {
    let mut w = World::new();
    let pid = NamespaceRef::Pid(4242);
    w.k.add_namespace(pid.clone());
    w.put(veth("a", "b", pid.clone()));
    w.put(veth("b", "a", named("n1")));
    w.converge();
    assert!(w.links(&named("n1")).contains_key("b"));
    w.k.remove_namespace(&pid);
    w.s.namespace_vanished(&pid, w.now);
    w.converge();
    assert!(w.links(&named("n1")).is_empty());
    assert!(
        matches!(w.status("a"), ItemStatus::Pending { reason } if reason.contains("disappeared"))
    );
    // The process is back (same pid for the test): retried after the backoff.
    w.k.add_namespace(pid.clone());
    w.advance(Duration::from_secs(3));
    w.converge();
    assert!(w.links(&pid).contains_key("a"));
    assert!(w.links(&named("n1")).contains_key("b"));
}

#[test]
fn vanished_named_namespace_is_not_recreated_until_configured_again() {
    let mut w = World::new();
    w.put(veth("a", "b", named("n1")));
    w.put(veth("b", "a", NamespaceRef::Default));
    w.converge();
    w.k.remove_namespace(&named("n1"));
    w.s.namespace_vanished(&named("n1"), w.now);
    w.converge();
    w.advance(Duration::from_secs(10));
    w.converge();
    assert!(!w.k.world.contains_key(&named("n1")));
    assert!(w.links(&NamespaceRef::Default).is_empty());
    w.put(veth("a", "b", named("n1")));
    w.converge();
    assert!(w.links(&named("n1")).contains_key("a"));
}

#[test]
fn unavailable_namespace_keeps_items_pending_with_the_reason() {
    let mut w = World::new();
    w.put(veth("a", "b", NamespaceRef::Pid(77)));
    w.put(veth("b", "a", NamespaceRef::Default));
    w.converge();
    assert_eq!(
        w.status("b"),
        ItemStatus::Pending {
            reason: "waiting for the namespace of pid 77: namespace of pid 77 does not exist"
                .into()
        }
    );
    assert!(w.links(&NamespaceRef::Default).is_empty());
}

#[test]
fn invalid_values_are_reported_and_others_still_apply() {
    let mut w = World::new();
    w.s.put(bad("x", 2));
    w.put(veth("a", "b", named("n1")));
    w.put(veth("b", "a", named("n2")));
    let mut tap = veth("t", "", NamespaceRef::Default);
    tap.if_type = InterfaceType::AutoTap;
    w.put(tap);
    w.converge();
    assert!(
        matches!(w.status("x"), ItemStatus::Invalid { error } if error.contains("field `mtu`"))
    );
    assert!(matches!(w.status("t"), ItemStatus::Invalid { error } if error.contains("AUTO_TAP")));
    assert_eq!(w.status("a"), ItemStatus::Applied);
    // Fixing the value applies it.
    w.put(veth("x", "y", named("n1")));
    w.put(veth("y", "x", named("n2")));
    w.converge();
    assert!(w.links(&named("n1")).contains_key("x"));
}

#[test]
fn peer_that_is_invalid_keeps_the_other_end_pending() {
    let mut w = World::new();
    w.put(veth("a", "b", named("n1")));
    w.s.put(bad("b", 10));
    w.converge();
    assert_eq!(
        w.status("a"),
        ItemStatus::Pending {
            reason: "peer interface `b` is not valid".into()
        }
    );
}

#[test]
fn duplicate_host_names_in_one_namespace_fail_the_later_write() {
    let mut w = World::new();
    w.put(veth("a", "b", named("n1")));
    w.put(veth("b", "a", named("n2")));
    let mut c = veth("c", "d", named("n1"));
    c.host_if_name = "a".into();
    w.put(c);
    w.put(veth("d", "c", named("n2")));
    w.converge();
    assert_eq!(w.status("a"), ItemStatus::Applied);
    match w.status("c") {
        ItemStatus::Invalid { error } => {
            assert!(error.contains("field `host_if_name`"), "{error}");
            assert!(
                error.contains("/interface/a"),
                "names the other key: {error}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(w.status("d"), ItemStatus::Pending { .. }));
}

#[test]
fn unowned_link_with_the_configured_name_is_a_conflict_and_left_alone() {
    let mut w = World::new();
    let ns = w.k.add_namespace(named("n1"));
    let foreign = w.k.add_foreign_link(ns, "a");
    w.put(veth("a", "b", named("n1")));
    w.put(veth("b", "a", named("n2")));
    w.converge();
    assert!(matches!(w.status("a"), ItemStatus::Failed { .. }));
    assert_eq!(w.links(&named("n1"))["a"].ifindex, foreign);
    assert_eq!(w.links(&named("n1"))["a"].group, 0);
    // Retried with backoff, and still left alone.
    w.advance(Duration::from_secs(1));
    w.converge();
    assert_eq!(w.links(&named("n1"))["a"].ifindex, foreign);
    assert!(w.links(&named("n2")).is_empty());
}

#[test]
fn failures_are_retried_with_backoff() {
    let mut w = World::new();
    w.k.fail_next.insert("create");
    w.put(veth("a", "b", named("n1")));
    w.put(veth("b", "a", named("n2")));
    w.converge();
    assert!(matches!(w.status("a"), ItemStatus::Failed { error } if error.contains("injected")));
    let due = w.s.next_deadline(w.now).expect("a retry is scheduled");
    assert_eq!(
        w.s.next_deadline(due),
        None,
        "nothing due after the retry time"
    );
    assert!(due > w.now);
    w.now = due;
    w.converge();
    assert_eq!(w.status("a"), ItemStatus::Applied);
    assert!(w.k.fail_next.is_empty(), "the fault was hit");
}

#[test]
fn every_kind_of_fault_converges() {
    for fault in ["resolve", "dump", "create", "update", "delete"] {
        let mut w = World::new();
        w.put(veth("a", "b", named("n1")));
        w.put(veth("b", "a", named("n2")));
        w.put(veth("c", "d", named("n1")));
        w.put(veth("d", "c", named("n2")));
        w.converge();
        w.k.fail_next.insert(fault);
        let mut a = veth("a", "b", named("n1"));
        a.mtu = 1400;
        w.put(a);
        w.s.delete("c");
        w.put(veth("e", "f", named("n3")));
        w.put(veth("f", "e", NamespaceRef::Default));
        w.s.resync(w.s.items().values().cloned().collect());
        for _ in 0..10 {
            w.converge();
            w.advance(Duration::from_secs(1));
        }
        assert!(w.k.fail_next.is_empty(), "{fault} fault was hit");
        assert_eq!(w.links(&named("n1"))["a"].mtu, 1400, "{fault}");
        assert!(!w.links(&named("n1")).contains_key("c"), "{fault}");
        assert_eq!(w.status("a"), ItemStatus::Applied, "{fault}");
        assert!(w.links(&named("n3")).contains_key("e"), "{fault}");
    }
}

#[test]
fn resync_keeps_matching_links_and_removes_stale_owned_ones() {
    let mut w = World::new();
    w.put(veth("a", "b", named("n1")));
    w.put(veth("b", "a", NamespaceRef::Default));
    w.put(veth("c", "d", named("n1")));
    w.put(veth("d", "c", NamespaceRef::Default));
    w.converge();
    let ns1 = w.k.world[&named("n1")];
    let foreign = w.k.add_foreign_link(ns1, "hand");
    // A restarted agent: fresh scheduler, "c"/"d" deleted while it was down, "a" changed.
    let mut s = Scheduler::new(keys());
    let mut a = veth("a", "b", named("n1"));
    a.mtu = 1300;
    s.resync(vec![
        item(a, 5),
        item(veth("b", "a", NamespaceRef::Default), 6),
    ]);
    let index_b = w.links(&NamespaceRef::Default)["b"].ifindex;
    let index_a = w.links(&named("n1"))["a"].ifindex;
    let writes = w.k.writes;
    w.k.converge(&mut s, w.now);
    assert_eq!(w.k.writes, writes + 2, "one delete (c/d), one update (a)");
    assert_eq!(w.links(&named("n1"))["a"].ifindex, index_a);
    assert_eq!(w.links(&named("n1"))["a"].mtu, 1300);
    assert_eq!(w.links(&NamespaceRef::Default)["b"].ifindex, index_b);
    assert!(!w.links(&named("n1")).contains_key("c"));
    assert_eq!(w.links(&named("n1"))["hand"].ifindex, foreign);
    // A second resync with nothing changed writes nothing.
    let writes = w.k.writes;
    s.resync(s.items().values().cloned().collect());
    w.k.converge(&mut s, w.now);
    assert_eq!(w.k.writes, writes);
}

#[test]
fn group_marked_link_without_alias_is_adopted_or_removed() {
    // The agent was killed between creating a pair and aliasing it.
    let mut w = World::new();
    w.put(veth("a", "b", named("n1")));
    w.put(veth("b", "a", named("n2")));
    w.put(veth("x", "y", named("n1")));
    w.put(veth("y", "x", named("n2")));
    w.converge();
    for r in [named("n1"), named("n2")] {
        let id = w.k.world[&r];
        for l in w.k.links.get_mut(&id).unwrap().values_mut() {
            l.link.alias = None;
        }
    }
    let index_a = w.links(&named("n1"))["a"].ifindex;
    let mut s = Scheduler::new(keys());
    s.resync(vec![
        item(veth("a", "b", named("n1")), 1),
        item(veth("b", "a", named("n2")), 2),
    ]);
    w.k.converge(&mut s, w.now);
    let a = &w.links(&named("n1"))["a"];
    assert_eq!(a.ifindex, index_a, "adopted, not re-created");
    assert_eq!(a.alias.as_deref(), Some("/vnf-agent/t/a/b"));
    assert!(
        !w.links(&named("n1")).contains_key("x"),
        "unconfigured leftover removed"
    );
}

#[test]
fn links_of_another_label_are_never_touched() {
    let mut w = World::new();
    w.put(veth("a", "b", named("n1")));
    w.put(veth("b", "a", named("n2")));
    w.converge();
    // Another agent on the same host (other label, other group) with no configuration.
    let other = KeyTree::new("other");
    let mut s = Scheduler::new(other.clone());
    s.resync(vec![]);
    let mut k = w.k.clone();
    k.keys = other.clone();
    k.group = other.default_link_group();
    let writes = k.writes;
    k.converge(&mut s, w.now);
    assert_eq!(k.writes, writes);
}

#[test]
fn no_write_before_the_namespaces_are_read() {
    let mut s = Scheduler::new(keys());
    s.resync(vec![
        item(veth("a", "b", named("n1")), 1),
        item(veth("b", "a", named("n2")), 2),
    ]);
    let plan = s.plan(Duration::ZERO);
    assert!(plan
        .phases
        .iter()
        .flatten()
        .all(|op| matches!(op, Op::ResolveNs { .. })));
    assert_eq!(
        s.status()["a"],
        ItemStatus::Pending {
            reason: "reading the named namespace n1".into()
        }
    );
}

#[test]
fn namespace_gone_during_dump_is_resolved_again() {
    let mut w = World::new();
    w.put(veth("a", "b", NamespaceRef::Pid(9)));
    w.put(veth("b", "a", NamespaceRef::Default));
    w.k.add_namespace(NamespaceRef::Pid(9));
    // Resolve succeeds, then the process exits before the dump.
    let plan = w.s.plan(w.now);
    w.k.run(&mut w.s, &plan, w.now);
    w.k.remove_namespace(&NamespaceRef::Pid(9));
    let plan = w.s.plan(w.now);
    assert!(matches!(plan.phases[0][0], Op::DumpNs { .. }));
    let op = &plan.phases[0][0];
    let out = w.k.execute(op);
    assert!(matches!(
        out,
        OpOutcome::Failed {
            kind: FailureKind::NamespaceGone,
            ..
        }
    ));
    w.s.complete(op, out, w.now);
    w.converge();
    assert!(matches!(w.status("a"), ItemStatus::Pending { reason } if reason.contains("pid 9")));
}

#[test]
fn unreferenced_namespaces_are_released() {
    let mut w = World::new();
    w.put(veth("a", "b", named("n1")));
    w.put(veth("b", "a", named("n2")));
    w.converge();
    w.s.delete("a");
    w.s.delete("b");
    let mut released = 0;
    for _ in 0..5 {
        let plan = w.s.plan(w.now);
        released += plan
            .phases
            .iter()
            .flatten()
            .filter(|op| matches!(op, Op::ReleaseNs { .. }))
            .count();
        w.k.run(&mut w.s, &plan, w.now);
    }
    assert_eq!(released, 2);
}

// ---- property: any sequence of events ends where the final configuration leads at once ----

#[derive(Clone, Debug)]
enum Event {
    Put(Interface),
    Delete(String),
    Vanish(NamespaceRef),
    Appear(NamespaceRef),
    Converge,
}

const NAMES: [&str; 4] = ["a", "b", "c", "d"];

fn ns_strategy() -> impl Strategy<Value = NamespaceRef> {
    prop_oneof![
        2 => Just(NamespaceRef::Default),
        2 => Just(named("n1")),
        2 => Just(named("n2")),
        1 => Just(NamespaceRef::Pid(100)),
        1 => Just(NamespaceRef::Pid(200)),
    ]
}

fn interface_strategy() -> impl Strategy<Value = Interface> {
    (
        0..4usize,
        prop_oneof![4 => Just(None), 1 => (0..4usize).prop_map(Some)],
        ns_strategy(),
        prop_oneof![4 => Just(None), 1 => Just(Some("h1")), 1 => Just(Some("h2"))],
        prop_oneof![Just(0u32), Just(1400), Just(9000)],
        any::<bool>(),
        prop::collection::vec(0..3u8, 0..3),
        prop::option::of(0..3u8),
    )
        .prop_map(|(n, p, ns, host, mtu, enabled, addrs, mac)| {
            // Mostly the partner (a-b, c-d), so that pairs form and then change.
            let p = p.unwrap_or(n ^ 1);
            let mut i = veth(NAMES[n], NAMES[p], ns);
            if let Some(h) = host {
                i.host_if_name = h.into();
            }
            i.mtu = mtu;
            i.enabled = enabled;
            i.ip_addresses = addrs
                .into_iter()
                .map(|a| format!("10.0.{a}.1/24").parse().unwrap())
                .collect();
            i.phys_address = mac.map(|m| MacAddr([2, 0, 0, 0, 1, m]));
            i
        })
}

fn event_strategy() -> impl Strategy<Value = Event> {
    prop_oneof![
        4 => interface_strategy().prop_map(Event::Put),
        1 => (0..4usize).prop_map(|n| Event::Delete(NAMES[n].into())),
        1 => prop_oneof![Just(NamespaceRef::Pid(100)), Just(NamespaceRef::Pid(200))].prop_map(Event::Vanish),
        1 => prop_oneof![Just(NamespaceRef::Pid(100)), Just(NamespaceRef::Pid(200))].prop_map(Event::Appear),
        2 => Just(Event::Converge),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn any_event_sequence_ends_like_the_final_configuration_at_once(
        initial in prop::collection::btree_set(prop_oneof![Just(NamespaceRef::Pid(100)), Just(NamespaceRef::Pid(200))], 0..3),
        events in prop::collection::vec(event_strategy(), 1..40),
    ) {
        let mut w = World::new();
        for r in &initial {
            w.k.add_namespace(r.clone());
        }
        for e in &events {
            match e {
                Event::Put(i) => w.put(i.clone()),
                Event::Delete(n) => w.s.delete(n),
                Event::Vanish(r) => {
                    w.k.remove_namespace(r);
                    w.s.namespace_vanished(r, w.now);
                }
                Event::Appear(r) => {
                    w.k.add_namespace(r.clone());
                }
                Event::Converge => {
                    w.converge();
                }
            }
            w.advance(Duration::from_millis(50));
        }
        // Let every retry come due, then converge.
        w.advance(Duration::from_secs(60));
        w.converge();
        w.advance(Duration::from_secs(60));
        w.converge();

        // The same final configuration and world, applied at once.
        let mut fresh = FakeKernel::new(keys(), GROUP);
        for r in w.k.world.keys() {
            fresh.add_namespace(r.clone());
        }
        let mut s = Scheduler::new(keys());
        s.resync(w.s.items().values().cloned().collect());
        fresh.converge(&mut s, w.now);

        let items = w.s.items().clone();
        let keep_mac = |l: &KernelLink| {
            l.alias
                .as_deref()
                .and_then(|a| keys().parse_link_alias(a))
                .and_then(|(n, _)| items.get(&n))
                .and_then(|i| i.config.as_ref().ok())
                .is_some_and(|i| i.phys_address.is_some())
        };
        prop_assert_eq!(w.k.normalized(keep_mac), fresh.normalized(keep_mac));
        prop_assert_eq!(w.s.status(), s.status());
        // And it is stable: nothing more to do.
        prop_assert!(w.s.plan(w.now).is_empty());
    }
}

#[test]
fn a_namespace_referenced_again_while_being_released_is_read_again() {
    let mut w = World::new();
    w.put(veth("a", "b", named("n1")));
    let b = veth("b", "a", named("n2"));
    w.put(b.clone());
    w.converge();
    // Delete one end and put it back before the released namespace is planned again.
    w.s.delete("b");
    let plan = w.s.plan(w.now);
    w.k.run(&mut w.s, &plan, w.now);
    w.put(b);
    w.converge();
    assert!(w.links(&named("n2")).contains_key("b"));
    assert_eq!(w.status("a"), ItemStatus::Applied);
}

#[test]
fn a_file_that_is_not_a_namespace_is_an_error_naming_the_field() {
    let mut w = World::new();
    w.put(veth("a", "b", NamespaceRef::File("/etc/hostname".into())));
    w.put(veth("b", "a", NamespaceRef::Default));
    w.converge();
    match w.status("a") {
        ItemStatus::Failed { error } => {
            assert!(
                error.contains("/interface/a: field `namespace.filepath`"),
                "{error}"
            );
            assert!(error.contains("not a network namespace"), "{error}");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(w.status("b"), ItemStatus::Failed { error } if error.contains("peer interface `a`"))
    );
}

/// Not a test: `cargo test --release --lib plan_cost -- --ignored --nocapture` prints how
/// long one plan takes with 1000 configured ends in place.
#[test]
#[ignore]
fn plan_cost() {
    let mut w = World::new();
    for i in 0..500 {
        let mut a = veth(
            &format!("a{i}"),
            &format!("b{i}"),
            named(&format!("n{}", i % 50)),
        );
        a.ip_addresses = vec![format!("10.1.{}.1/24", i % 250).parse().unwrap()];
        w.put(a);
        w.put(veth(
            &format!("b{i}"),
            &format!("a{i}"),
            named(&format!("n{}", (i + 1) % 50)),
        ));
    }
    w.converge();
    let started = std::time::Instant::now();
    for _ in 0..100 {
        assert!(w.s.plan(w.now).is_empty());
    }
    println!("plan with 1000 ends: {:?}", started.elapsed() / 100);
}
