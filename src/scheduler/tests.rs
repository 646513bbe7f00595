//! Unit and property tests of the scheduler against the in-memory kernel.

use super::fake::FakeKernel;
use super::ops::l3::L3Op;
use super::ops::{FailureKind, Op, OpOutcome};
use super::*;
use crate::keys::ItemKind;
use crate::model::link::{veth::Veth, LinkKind};
use crate::model::{Interface, MacAddr, ModelError, NamespaceRef};
use proptest::prelude::*;

mod ahead;
mod deletes;

/// The link group of the tests' agent, in the fake kernel as in the scheduler.
fn group() -> u32 {
    keys().default_link_group()
}

fn keys() -> KeyTree {
    KeyTree::new("t")
}

fn veth(name: &str, peer: &str, ns: NamespaceRef) -> Interface {
    Interface {
        name: name.into(),
        description: String::new(),
        enabled: true,
        ip_addresses: vec![],
        phys_address: None,
        mtu: 0,
        host_if_name: name.into(),
        namespace: ns,
        vrf_master_interface: String::new(),
        link: LinkKind::Veth(Veth { peer: peer.into() }),
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
    /// TAPs made by hand in the agent's own namespace at the start.
    taps: Vec<&'static str>,
}

impl World {
    fn new() -> Self {
        let mut w = World {
            s: Scheduler::new(keys()),
            k: FakeKernel::new(keys(), group()),
            now: Duration::from_secs(1),
            rev: 1,
            taps: Vec::new(),
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

    /// Runs the reads the scheduler can make ahead of its next plan, as the agent does while
    /// a burst of changes is still arriving; returns them.
    fn read_ahead(&mut self) -> Vec<Op> {
        let reads = self.s.reads_ahead(self.now);
        for op in &reads {
            let outcome = self.k.execute(op);
            self.s.complete_ahead(op, outcome, self.now);
        }
        reads
    }

    fn status(&self, name: &str) -> ItemStatus {
        self.s.status()[&(ItemKind::Interface, name.to_string())].clone()
    }

    /// The links of namespace `r` other than its loopback link.
    fn links(&self, r: &NamespaceRef) -> BTreeMap<String, KernelLink> {
        let mut links = self.k.by_name(r);
        links.remove("lo");
        links
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
    }

    /// Lets every retry come due and converges, `rounds` times (each pending fault can
    /// cost a retry).
    fn settle(&mut self, rounds: usize) {
        for _ in 0..rounds {
            self.advance(Duration::from_secs(60));
            self.converge();
        }
    }

    /// The final configuration of this world applied at once to a fresh kernel with the
    /// same namespaces: the kernel and the scheduler afterwards.
    fn at_once(&self) -> (FakeKernel, Scheduler) {
        let mut fresh = FakeKernel::new(keys(), group());
        for r in self.k.world.keys() {
            fresh.add_namespace(r.clone());
        }
        let own = fresh.world[&NamespaceRef::Default];
        for tap in &self.taps {
            fresh.add_foreign_tap(own, tap);
        }
        let mut s = Scheduler::new(keys());
        s.resync(self.s.items().values().cloned().collect());
        s.resync_l3(
            self.s.routes().values().cloned().collect(),
            self.s.arps().values().cloned().collect(),
        );
        fresh.converge(&mut s, self.now);
        (fresh, s)
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
    assert_eq!(la.group, group());
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
fn a_vanished_named_namespace_is_created_again_and_its_items_reapplied() {
    let mut w = World::new();
    w.put(veth("a", "b", named("n1")));
    w.put(veth("b", "a", NamespaceRef::Default));
    w.converge();
    let before = w.k.world[&named("n1")];
    w.k.remove_namespace(&named("n1"));
    w.s.namespace_vanished(&named("n1"), w.now);
    w.converge();
    assert_ne!(
        w.k.world[&named("n1")],
        before,
        "a new namespace of that name"
    );
    assert!(w.links(&named("n1")).contains_key("a"));
    assert!(w.links(&NamespaceRef::Default).contains_key("b"));
    assert_eq!(w.status("a"), ItemStatus::Applied);
    // A process's namespace is not made again: its items wait.
    let mut w = World::new();
    w.k.add_namespace(NamespaceRef::Pid(7));
    w.put(veth("a", "b", NamespaceRef::Pid(7)));
    w.put(veth("b", "a", NamespaceRef::Default));
    w.converge();
    w.k.remove_namespace(&NamespaceRef::Pid(7));
    w.s.namespace_vanished(&NamespaceRef::Pid(7), w.now);
    w.converge();
    assert!(matches!(w.status("a"), ItemStatus::Pending { .. }));
    assert!(w.links(&NamespaceRef::Default).is_empty());
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
    // A value decoding refuses arrives as its error, naming key and field.
    let key = keys().key(ItemKind::Interface, "t");
    let tap = br#"{"name": "t", "type": "AUTO_TAP", "veth": {"peer_if_name": "u"}}"#;
    let error = crate::model::accept_value(ItemKind::Interface, &key, tap).unwrap_err();
    w.s.put(Item {
        key,
        revision: 99,
        config: Err(error),
    });
    w.converge();
    assert!(
        matches!(w.status("x"), ItemStatus::Invalid { error } if error.contains("field `mtu`"))
    );
    assert!(matches!(w.status("t"), ItemStatus::Invalid { error }
        if error.contains("field `veth.peer_if_name`")));
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

/// A pair `a` (n1) / `b` (n2) whose creation failed once (an injected fault).
fn failed_pair() -> World {
    let mut w = World::new();
    w.k.fail_next.insert("create");
    w.put(veth("a", "b", named("n1")));
    w.put(veth("b", "a", named("n2")));
    w.converge();
    w
}

#[test]
fn failures_are_retried_with_backoff() {
    let mut w = failed_pair();
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

/// A retry that comes due while the agent is busy with something that plans nothing (a
/// timer, an event that changes nothing) is still due afterwards: the wake-up is not lost.
#[test]
fn a_retry_due_while_nothing_was_planned_is_still_due() {
    let mut w = failed_pair();
    let due = w.s.wake_at().expect("a retry is scheduled");
    assert!(due > w.now);
    // Something else wakes the agent just after the retry came due, and plans nothing.
    w.now = due + Duration::from_millis(1);
    assert_eq!(w.s.wake_at(), Some(due), "the retry is still due");
    w.converge();
    assert_eq!(w.status("a"), ItemStatus::Applied);
    assert_eq!(w.s.wake_at(), None, "nothing left to wake for");
}

/// A pair `a` (10.0.0.1/24 in n1) / `b` (in n2) with route `r1` through `a`, not planned yet.
fn routed_pair() -> World {
    let mut w = World::new();
    let mut a = veth("a", "b", named("n1"));
    a.ip_addresses = vec!["10.0.0.1/24".parse().unwrap()];
    w.put(a);
    w.put(veth("b", "a", named("n2")));
    w.put_route(l3::route(
        "r1",
        "10.9.0.0/16",
        Some("10.0.0.2"),
        "a",
        named("n1"),
    ));
    w
}

/// Someone deletes the agent's pair again and again, with a route and an entry on it: the
/// repairs get held, each held repair is made when its wait ends (the agent waking at
/// [`Scheduler::wake_at`], sometimes late), and the pair, its route and entry end repaired.
#[test]
fn a_fight_over_a_pair_with_routes_ends_repaired() {
    let mut w = routed_pair();
    w.put_arp(l3::arp("p1", "10.0.0.9", "a", named("n1")));
    w.converge();
    let proto = crate::scheduler::DEFAULT_ROUTE_PROTOCOL;
    let settled = (w.k.normalized(|_| false), w.k.normalized_l3(proto));
    let ns = w.k.world[&named("n1")];
    let ids = [
        (ItemKind::Interface, "a".to_string()),
        (ItemKind::Interface, "b".to_string()),
    ];
    let mut held = 0;
    for fight in 0..12u64 {
        if let Some(link) = w.links(&named("n1")).get("a") {
            for (at, e) in w.k.delete_behind(ns, link.ifindex) {
                w.s.kernel_events(at, &[e]);
            }
        }
        // The agent's rounds until it has nothing to do, recording its repairs.
        for _ in 0..20 {
            let plan = w.s.plan(w.now);
            if plan.is_empty() {
                break;
            }
            let repairs = plan.phases.iter().flatten().any(|op| op.writes());
            w.k.run(&mut w.s, &plan, w.now);
            if repairs {
                w.s.repaired(ids.clone(), w.now);
            }
        }
        held += usize::from(w.s.repair_hold(ItemKind::Interface, "a", w.now).is_some());
        // The next deletion comes 20 ms later, or the agent wakes for its retry (late, in
        // every other fight, as when another wake-up went first).
        let late = Duration::from_millis(3 * (fight % 2));
        let wake = w.s.wake_at().map(|t| t + late);
        w.now = wake.map_or(w.now, |t| t.min(w.now + Duration::from_millis(20)));
    }
    assert!(held > 0, "the fight got repairs held");
    // The fight is over: the agent wakes whenever it said it would, until nothing is due.
    for _ in 0..20 {
        let Some(t) = w.s.wake_at() else { break };
        w.now = w.now.max(t);
        w.converge();
    }
    assert_eq!(w.s.wake_at(), None);
    assert_eq!(w.status("a"), ItemStatus::Applied);
    assert_eq!(
        (w.k.normalized(|_| false), w.k.normalized_l3(proto)),
        settled,
        "the pair, its route and entry are back as they were"
    );
}

#[test]
fn a_failing_pair_disturbs_no_other_item_and_stays_failed_between_attempts() {
    let mut w = World::new();
    w.put(veth("ok1", "ok2", named("n1")));
    w.put(veth("ok2", "ok1", named("n1")));
    w.converge();
    w.k.fail_names.insert("bad1".into());
    w.put(veth("bad1", "bad2", named("n1")));
    w.put(veth("bad2", "bad1", named("n1")));
    w.converge();
    let failed = |w: &World, n: &str| matches!(w.status(n), ItemStatus::Failed { .. });
    assert!(
        failed(&w, "bad1") && failed(&w, "bad2"),
        "{:?}",
        w.status("bad1")
    );
    w.s.take_changes();
    let mut attempts = 0;
    for _ in 0..6 {
        let due = w.s.next_deadline(w.now).expect("a retry is scheduled");
        w.now = due;
        for round in 0.. {
            assert!(round < 20, "no convergence");
            let plan = w.s.plan(w.now);
            let changed = w.s.take_changes();
            assert!(
                changed.iter().all(|(_, n)| n.starts_with("bad")),
                "a retry of another pair changed {changed:?}"
            );
            for n in ["bad1", "bad2"] {
                let s = w.status(n);
                assert!(
                    matches!(s, ItemStatus::Failed { .. } | ItemStatus::Applying),
                    "between attempts {n} is {s:?}"
                );
            }
            if plan.is_empty() {
                break;
            }
            attempts += plan
                .phases
                .iter()
                .flatten()
                .filter(|op| matches!(op, Op::CreatePair { .. } | Op::UpdateLink { .. }))
                .count();
            w.k.run(&mut w.s, &plan, w.now);
        }
        assert_eq!(w.status("ok1"), ItemStatus::Applied);
        assert!(failed(&w, "bad1"), "{:?}", w.status("bad1"));
    }
    assert!(
        attempts >= 6,
        "the failing pair was retried ({attempts} attempts)"
    );
    // Once the kernel takes it, the pair is applied.
    w.k.fail_names.clear();
    w.settle(2);
    assert_eq!(w.status("bad1"), ItemStatus::Applied);
    assert_eq!(w.status("ok1"), ItemStatus::Applied);
}

/// An end of a pair in namespace `n1` with host name `host`.
fn end_named(name: &str, peer: &str, host: &str) -> Interface {
    let mut i = veth(name, peer, named("n1"));
    i.host_if_name = host.into();
    i
}

#[test]
fn host_names_swapped_or_passed_round_in_one_write_converge() {
    let mut w = World::new();
    for (n, p, h) in [
        ("a", "b", "pa"),
        ("b", "a", "pb"),
        ("c", "d", "pc"),
        ("d", "c", "pd"),
    ] {
        w.put(end_named(n, p, h));
    }
    w.converge();
    let index = |w: &World, host: &str| w.links(&named("n1"))[host].ifindex;
    let (ia, ib, ic) = (index(&w, "pa"), index(&w, "pb"), index(&w, "pc"));
    // A swap (a <-> b) and a cycle (a -> c's name, c -> d's, d -> a's) in one write each.
    for hosts in [
        [("a", "b", "pb"), ("b", "a", "pa")],
        [("a", "b", "pc"), ("c", "d", "pd")],
    ] {
        for (n, p, h) in hosts {
            w.put(end_named(n, p, h));
        }
        if hosts[1].0 == "c" {
            w.put(end_named("d", "c", "pb"));
        }
        let rounds = w.converge();
        assert!(rounds <= 3, "{rounds} rounds");
        for n in ["a", "b", "c", "d"] {
            assert_eq!(w.status(n), ItemStatus::Applied, "{n}");
        }
    }
    // Renamed in place: the same links, now a=pc, b=pa, c=pd, d=pb.
    assert_eq!(index(&w, "pc"), ia);
    assert_eq!(index(&w, "pa"), ib);
    assert_eq!(index(&w, "pd"), ic);
    let names: Vec<String> = w.links(&named("n1")).into_keys().collect();
    assert_eq!(names, ["pa", "pb", "pc", "pd"]);
}

#[test]
fn a_new_value_of_either_end_retries_a_failed_pair_at_once() {
    let mut w = failed_pair();
    assert!(matches!(w.status("a"), ItemStatus::Failed { .. }));
    assert!(matches!(w.status("b"), ItemStatus::Failed { .. }));
    // The value of the other end is fixed: tried now, not after a's backoff.
    let mut b = veth("b", "a", named("n2"));
    b.mtu = 1400;
    w.put(b);
    w.converge();
    assert_eq!(w.status("a"), ItemStatus::Applied);
    assert_eq!(w.status("b"), ItemStatus::Applied);
    assert_eq!(w.links(&named("n2"))["b"].mtu, 1400);
}

#[test]
fn kernel_events_that_echo_the_agents_writes_are_not_drift() {
    use crate::kernel::KernelEvent;
    let mut w = World::new();
    let mut a = veth("a", "b", named("n1"));
    a.ip_addresses = vec!["10.0.0.1/24".parse().unwrap()];
    w.put(a);
    w.put(veth("b", "a", named("n2")));
    w.converge();
    let ns = w.k.world[&named("n1")];
    let mut link = w.links(&named("n1"))["a"].clone();
    let addresses = std::mem::take(&mut link.addresses);
    // The steps of its creation, ending in the state the scheduler knows: an echo.
    let mut unaliased = link.clone();
    unaliased.alias = None;
    let echo = [
        KernelEvent::Link(unaliased),
        KernelEvent::Link(link.clone()),
        KernelEvent::Address {
            ifindex: link.ifindex,
            net: addresses[0],
            added: true,
        },
    ];
    assert!(!w.s.kernel_events(ns, &echo));
    assert_eq!(w.converge(), 0, "nothing to do");
    // Someone changes the MTU: read again and repaired.
    let changed =
        w.k.links
            .get_mut(&ns)
            .unwrap()
            .get_mut(&link.ifindex)
            .unwrap();
    changed.link.mtu = 1300;
    let event = KernelEvent::Link(KernelLink {
        addresses: Vec::new(),
        ..changed.link.clone()
    });
    assert!(w.s.kernel_events(ns, &[event]));
    w.converge();
    assert_eq!(w.links(&named("n1"))["a"].mtu, 1500);
    // Someone else's address on the agent's link is drift too; an event about a namespace
    // the agent does not hold is not.
    let foreign = KernelEvent::Address {
        ifindex: link.ifindex,
        net: "10.9.9.9/24".parse().unwrap(),
        added: true,
    };
    assert!(w.s.kernel_events(ns, std::slice::from_ref(&foreign)));
    let elsewhere = NsId { dev: 9, ino: 9 };
    assert!(!w
        .s
        .kernel_events(elsewhere, &[foreign, KernelEvent::Overrun]));
    assert!(
        w.s.kernel_events(ns, &[KernelEvent::Overrun]),
        "lost events: read again"
    );
}

#[test]
fn an_item_repaired_again_and_again_waits_longer_each_time() {
    let mut w = World::new();
    w.put(veth("a", "b", named("n1")));
    w.put(veth("b", "a", named("n2")));
    w.converge();
    let id = (ItemKind::Interface, "a".to_string());
    let mut waits = Vec::new();
    for _ in 0..8 {
        w.s.repaired([id.clone()], w.now);
        let next = w.s.next_deadline(w.now).unwrap_or(w.now);
        waits.push(next - w.now);
        if let Some(ItemStatus::Pending { reason }) =
            w.s.repair_hold(ItemKind::Interface, "a", w.now)
        {
            assert!(
                reason.contains("changed behind the agent's back"),
                "{reason}"
            );
        }
        w.now = next;
    }
    // A few at once, then doubling waits, capped.
    assert_eq!(&waits[..3], [Duration::ZERO; 3]);
    assert_eq!(waits[3], Duration::from_millis(100));
    assert_eq!(waits[4], Duration::from_millis(200));
    assert!(waits.windows(2).all(|p| p[1] >= p[0]), "{waits:?}");
    assert!(
        waits.iter().all(|d| *d <= Duration::from_secs(5)),
        "{waits:?}"
    );
    // The item waits, saying so, and is repaired when the wait is over.
    w.s.repaired([id.clone()], w.now);
    let held = w.s.repair_hold(ItemKind::Interface, "a", w.now);
    assert!(held.is_some());
    // A quiet while later, the fight is over: the next repair is at once again.
    w.advance(Duration::from_secs(30));
    w.s.repaired([id], w.now);
    assert!(w.s.repair_hold(ItemKind::Interface, "a", w.now).is_none());
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
    k.delete_group = crate::owned::marks::default_delete_group(k.group);
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
        s.status()[&(ItemKind::Interface, "a".to_string())],
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
    PutPair(Interface, Interface),
    Delete(String),
    PutRoute(crate::model::Route),
    PutArp(crate::model::ArpEntry),
    DeleteL3(ItemKind, String),
    Vanish(NamespaceRef),
    Appear(NamespaceRef),
    /// The next operation of this kind fails once.
    Fail(&'static str),
    Converge,
    /// The reads the next plan would start with, made ahead of it.
    ReadAhead,
}

const NAMES: [&str; 4] = ["a", "b", "c", "d"];

/// The TAP in the agent's own namespace that AUTO_TAP items of the property tests take over.
const TAP_SEED: &str = "tapx";

fn ns_strategy() -> impl Strategy<Value = NamespaceRef> {
    prop_oneof![
        2 => Just(NamespaceRef::Default),
        4 => Just(named("n1")),
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
        prop::collection::vec(
            prop_oneof![1 => Just(0u8), 3 => Just(1), 1 => Just(2)],
            0..3,
        ),
        prop::option::of(0..3u8),
        (
            prop_oneof![
                12 => Just(0u8),
                1 => Just(1),
                1 => Just(2),
                2 => Just(3),
                1 => Just(4),
                1 => Just(5),
                1 => Just(6)
            ],
            prop_oneof![4 => Just(None), 1 => (0..4usize).prop_map(Some)],
        ),
    )
        .prop_map(|(n, p, ns, host, mtu, enabled, addrs, mac, (kind, vrf))| {
            // Mostly the partner (a-b, c-d), so that pairs form and then change.
            // Never itself: the decoder refuses a VETH that peers with itself.
            let p = p.filter(|p| *p != n).unwrap_or(n ^ 1);
            let mut i = veth(NAMES[n], NAMES[p], ns);
            // Now and then a single link instead (VRFs among them), or a VRF member.
            match kind {
                1 => i.link = LinkKind::Dummy(crate::model::link::dummy::Dummy),
                2 => i.link = LinkKind::Tap(crate::model::link::tap::Tap),
                3 => {
                    let table = 10 + n as u32 % 2;
                    i.link = LinkKind::VrfDevice(crate::model::link::vrf::Vrf { table });
                }
                // The loopback link, or a link found by name (`lo` unless another host
                // name is drawn, which no link the agent does not own has).
                4 => i.link = LinkKind::Loopback(crate::model::link::loopback::Loopback),
                5 => {
                    let link_only = n % 2 == 1;
                    i.link =
                        LinkKind::Existing(crate::model::link::existing::Existing { link_only });
                }
                // The TAP another program made in the agent's namespace (see `TAP_SEED`).
                // Never in a namespace that vanishes: its TAP would die with it (the kernel's
                // doing), which no configuration applied at once can match.
                6 => {
                    i.link = LinkKind::AutoTap(crate::model::link::auto_tap::AutoTap {
                        temp_name: TAP_SEED.into(),
                    });
                    if matches!(i.namespace, NamespaceRef::Pid(_)) {
                        i.namespace = named("n2");
                    }
                }
                _ => {}
            }
            i.vrf_master_interface = vrf
                .filter(|v| *v != n && kind != 3)
                .map(|v| NAMES[v].to_string())
                .unwrap_or_default();
            match (host, kind) {
                (_, 4) | (None, 5) => i.host_if_name = "lo".into(),
                (Some(h), _) => i.host_if_name = h.into(),
                (None, _) => {}
            }
            i.mtu = mtu;
            i.enabled = enabled;
            if kind == 4 || kind == 5 {
                // A found link keeps the admin state the agent gave it after its item goes,
                // and routes depend on it: keep the kernel's (up only in the initial
                // namespace) so that the end state does not depend on history.
                i.enabled = i.namespace == NamespaceRef::Default;
            }
            // Mostly with 10.0.1.1/24, which makes the routes' gateway 10.0.1.2 reachable.
            i.ip_addresses = addrs
                .into_iter()
                .map(|a| format!("10.0.{a}.1/24").parse().unwrap())
                .collect();
            i.phys_address = mac.map(|m| MacAddr([2, 0, 0, 0, 1, m]));
            i
        })
}

fn route_strategy() -> impl Strategy<Value = crate::model::Route> {
    (
        0..2usize,
        prop_oneof![Just("10.9.0.0/16"), Just("10.8.0.0/16")],
        prop_oneof![2 => Just(None), 3 => Just(Some("10.0.1.2")), 1 => Just(Some("10.5.5.1"))],
        prop_oneof![4 => Just("a"), 2 => Just("b"), 1 => Just("lo")],
        prop_oneof![Just(0u32), Just(100)],
        prop_oneof![3 => Just(named("n1")), 1 => ns_strategy()],
        any::<bool>(),
    )
        .prop_map(
            |(n, dst, gw, iface, metric, ns, link)| crate::model::Route {
                name: ["r1", "r2"][n].into(),
                description: String::new(),
                namespace: ns,
                interface: iface.into(),
                scope: (link && gw.is_none()).then_some(crate::model::RouteScope::Link),
                dst: dst.parse().unwrap(),
                default: false,
                src: None,
                gateway: gw.map(|g| g.parse().unwrap()),
                metric,
                table: 0,
            },
        )
}

fn arp_strategy() -> impl Strategy<Value = crate::model::ArpEntry> {
    (
        0..2usize,
        prop_oneof![Just("10.0.0.7"), Just("10.0.1.7")],
        prop_oneof![4 => Just("a"), 2 => Just("b"), 1 => Just("c")],
        prop_oneof![3 => Just(named("n1")), 1 => ns_strategy()],
        0..3u8,
    )
        .prop_map(|(n, ip, iface, ns, mac)| crate::model::ArpEntry {
            name: ["p1", "p2"][n].into(),
            namespace: ns,
            interface: iface.into(),
            ip: ip.parse().unwrap(),
            mac: MacAddr([2, 0, 0, 0, 2, mac]),
            state: crate::model::NeighbourState::Permanent,
        })
}

/// Both ends of a pair at once, mostly a-b with `a` in n1 (where most routes are), so that
/// routes and entries get applied and then changed.
fn pair_strategy() -> impl Strategy<Value = Event> {
    (
        interface_strategy(),
        interface_strategy(),
        any::<bool>(),
        0..4u8,
    )
        .prop_map(|(mut x, mut y, cd, where_x)| {
            let (nx, ny) = if cd { ("c", "d") } else { ("a", "b") };
            x.name = nx.into();
            x.link = LinkKind::Veth(Veth { peer: ny.into() });
            y.name = ny.into();
            y.link = LinkKind::Veth(Veth { peer: nx.into() });
            x.host_if_name = nx.into();
            y.host_if_name = ny.into();
            if where_x > 0 {
                x.namespace = named("n1");
            }
            Event::PutPair(x, y)
        })
}

fn event_strategy() -> impl Strategy<Value = Event> {
    prop_oneof![
        3 => pair_strategy(),
        2 => interface_strategy().prop_map(Event::Put),
        2 => route_strategy().prop_map(Event::PutRoute),
        2 => arp_strategy().prop_map(Event::PutArp),
        1 => (0..2usize).prop_map(|n| Event::DeleteL3(ItemKind::Route, ["r1", "r2"][n].into())),
        1 => (0..2usize).prop_map(|n| Event::DeleteL3(ItemKind::Arp, ["p1", "p2"][n].into())),
        1 => (0..4usize).prop_map(|n| Event::Delete(NAMES[n].into())),
        1 => prop_oneof![Just(NamespaceRef::Pid(100)), Just(NamespaceRef::Pid(200))].prop_map(Event::Vanish),
        1 => prop_oneof![Just(NamespaceRef::Pid(100)), Just(NamespaceRef::Pid(200))].prop_map(Event::Appear),
        1 => prop_oneof![
            Just("resolve"),
            Just("dump"),
            Just("create"),
            Just("update"),
            Just("delete"),
            Just("group"),
            Just("stranded"),
            Just("l3")
        ]
        .prop_map(Event::Fail),
        2 => Just(Event::Converge),
        2 => Just(Event::ReadAhead),
    ]
}

proptest! {
    // 600 cases in CI; `PROPTEST_CASES=50000` for a deep run before a release.
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(600)
    ))]

    #[test]
    fn any_event_sequence_ends_like_the_final_configuration_at_once(
        initial in prop::collection::btree_set(prop_oneof![Just(NamespaceRef::Pid(100)), Just(NamespaceRef::Pid(200))], 0..3),
        events in prop::collection::vec(event_strategy(), 1..40),
    ) {
        check_event_sequence(&initial, &events, false)?;
    }

    /// The same with pairs in place that the events never touch, as in a real configuration:
    /// most plans then decide only what the events touched (each checked against a full plan).
    #[test]
    fn any_event_sequence_next_to_untouched_pairs_ends_like_the_final_configuration(
        initial in prop::collection::btree_set(prop_oneof![Just(NamespaceRef::Pid(100)), Just(NamespaceRef::Pid(200))], 0..3),
        events in prop::collection::vec(event_strategy(), 1..40),
    ) {
        check_event_sequence(&initial, &events, true)?;
    }
}

/// Applies `events` (after untouched background pairs, if asked) and checks that the kernel
/// and the statuses end as applying the final configuration at once does.
fn check_event_sequence(
    initial: &BTreeSet<NamespaceRef>,
    events: &[Event],
    background: bool,
) -> Result<(), TestCaseError> {
    let mut w = World::new();
    let own = w.k.world[&NamespaceRef::Default];
    w.k.add_foreign_tap(own, TAP_SEED);
    w.taps.push(TAP_SEED);
    if background {
        let places = [
            (named("n1"), named("n2")),
            (NamespaceRef::Default, named("n1")),
            (named("n2"), NamespaceRef::Default),
        ];
        for (i, (x, y)) in places.into_iter().enumerate() {
            let (nx, ny) = (format!("x{i}"), format!("y{i}"));
            w.put(veth(&nx, &ny, x));
            w.put(veth(&ny, &nx, y));
        }
        w.converge();
    }
    for r in initial {
        w.k.add_namespace(r.clone());
    }
    for e in events {
        match e {
            Event::Put(i) => w.put(i.clone()),
            Event::PutPair(x, y) => {
                w.put(x.clone());
                w.put(y.clone());
            }
            Event::Delete(n) => w.s.delete(n),
            Event::PutRoute(r) => w.put_route(r.clone()),
            Event::PutArp(a) => w.put_arp(a.clone()),
            Event::DeleteL3(kind, n) => w.s.delete_l3(*kind, n),
            Event::Vanish(r) => {
                w.k.remove_namespace(r);
                w.s.namespace_vanished(r, w.now);
            }
            Event::Appear(r) => {
                w.k.add_namespace(r.clone());
            }
            Event::Fail(what) => {
                w.k.fail_next.insert(what);
            }
            Event::Converge => {
                w.converge();
            }
            Event::ReadAhead => {
                w.read_ahead();
            }
        }
        if background {
            // As the agent does: one round after each batch of events.
            let plan = w.s.plan(w.now);
            w.k.run(&mut w.s, &plan, w.now);
        }
        w.advance(Duration::from_millis(50));
    }
    w.settle(8);

    // The same final configuration and world, applied at once.
    let (fresh, s) = w.at_once();
    let proto = crate::scheduler::DEFAULT_ROUTE_PROTOCOL;
    prop_assert_eq!(w.k.normalized_l3(proto), fresh.normalized_l3(proto));

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
    Ok(())
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

// ---- plans that decide only what changed ----------------------------------------------

/// A world with `n` applied pairs spread over three named namespaces.
fn settled_world(n: usize) -> World {
    let mut w = World::new();
    for i in 0..n {
        w.put(veth(
            &format!("a{i}"),
            &format!("b{i}"),
            named(&format!("n{}", i % 3)),
        ));
        w.put(veth(
            &format!("b{i}"),
            &format!("a{i}"),
            named(&format!("n{}", (i + 1) % 3)),
        ));
    }
    w.converge();
    w
}

/// One plan and its execution; whether the plan was scoped (every scoped plan is checked
/// against a full plan of the same state inside `plan`).
fn step(w: &mut World) -> (Plan, bool) {
    let before = w.s.scoped_plans;
    let plan = w.s.plan(w.now);
    w.k.run(&mut w.s, &plan, w.now);
    (plan, w.s.scoped_plans > before)
}

#[test]
fn changes_next_to_applied_pairs_are_planned_from_what_they_touch() {
    let mut w = settled_world(20);
    // A new pair: nothing for the first end, the pair for the second, then quiet again.
    w.put(veth("sa", "sb", named("n0")));
    assert_eq!(step(&mut w), (Plan::default(), true));
    w.put(veth("sb", "sa", named("n1")));
    let (plan, scoped) = step(&mut w);
    assert!(scoped);
    assert!(matches!(plan.phases[..], [ref p] if matches!(p[..], [Op::CreatePair { .. }])));
    assert_eq!(step(&mut w), (Plan::default(), true));
    assert_eq!(w.status("sa"), ItemStatus::Applied);

    // In-place changes, a move to another namespace, a peer change.
    let mut sa = veth("sa", "sb", named("n0"));
    sa.mtu = 9000;
    sa.host_if_name = "sa-renamed".into();
    w.put(sa.clone());
    let (plan, scoped) = step(&mut w);
    assert!(
        scoped && matches!(plan.phases[..], [ref p] if matches!(p[..], [Op::UpdateLink { .. }]))
    );
    sa.namespace = named("n2");
    w.put(sa.clone());
    assert!(step(&mut w).1);
    assert!(w.links(&named("n2")).contains_key("sa-renamed"));
    assert!(!w.links(&named("n0")).contains_key("sa-renamed"));
    sa.link = LinkKind::Veth(Veth { peer: "b3".into() });
    w.put(sa.clone());
    assert!(step(&mut w).1);
    assert!(
        matches!(w.status("sb"), ItemStatus::Pending { reason } if reason.contains("names `b3`"))
    );
    assert_eq!(w.converge(), 0, "scoped plans left nothing to do");
    sa.link = LinkKind::Veth(Veth { peer: "sb".into() });
    w.put(sa);
    let (plan, scoped) = step(&mut w);
    assert!(
        scoped && matches!(plan.phases[..], [ref p] if matches!(p[..], [Op::CreatePair { .. }]))
    );

    // A host-name conflict with an applied item: the later one loses, the applied one stays.
    let mut c = veth("c", "sb", named("n0"));
    c.host_if_name = "a0".into();
    w.put(c);
    assert!(step(&mut w).1);
    assert!(
        matches!(w.status("c"), ItemStatus::Invalid { error } if error.contains("/interface/a0"))
    );
    assert_eq!(w.status("a0"), ItemStatus::Applied);

    // Deleting a pair.
    w.s.delete("sa");
    w.s.delete("sb");
    let (plan, scoped) = step(&mut w);
    assert!(
        scoped && matches!(plan.phases[..], [ref p] if matches!(p[..], [Op::DeleteLink { .. }]))
    );
    assert_eq!(w.converge(), 0);
    w.s.delete("c");
    assert!(step(&mut w).1);

    // The kernel and the statuses are what the configuration describes.
    let (fresh, s) = w.at_once();
    assert_eq!(w.k.normalized(|_| false), fresh.normalized(|_| false));
    assert_eq!(w.s.status(), s.status());
}

#[test]
fn routes_and_entries_are_planned_where_they_changed() {
    let mut w = settled_world(6);
    let mut a0 = veth("a0", "b0", named("n0"));
    a0.ip_addresses = vec!["10.0.0.1/24".parse().unwrap()];
    w.put(a0.clone());
    w.converge();
    // The first routes naming `a0`: a full plan (nothing remembered of `a0` yet).
    for i in 1..=5 {
        let dst = format!("10.{i}.0.0/16");
        w.put_route(l3::route(
            &format!("r{i}"),
            &dst,
            Some("10.0.0.2"),
            "a0",
            named("n0"),
        ));
    }
    assert!(!step(&mut w).1);
    w.converge();
    assert_eq!(w.l3_status(ItemKind::Route, "r1"), ItemStatus::Applied);
    // Another route through it: a scoped plan that decides and writes just that one.
    w.put_route(l3::route(
        "r6",
        "10.6.0.0/16",
        Some("10.0.0.2"),
        "a0",
        named("n0"),
    ));
    let scope = w.s.quiet_scope(w.now).expect("scoped");
    let decided: Vec<&str> = scope.l3.routes.iter().map(|(n, _)| *n).collect();
    assert_eq!(decided, ["r6"]);
    assert!(scope.l3.reach.full.is_empty());
    let (plan, scoped) = step(&mut w);
    assert!(scoped);
    assert!(
        matches!(plan.phases[..], [ref p] if matches!(p[..], [Op::L3(L3Op::AddRoute { .. })])),
        "{plan:?}"
    );
    assert_eq!(step(&mut w), (Plan::default(), true));
    assert_eq!(w.l3_status(ItemKind::Route, "r6"), ItemStatus::Applied);
    // An entry, a route to the destination of another (refused), changes and deletions.
    w.put_arp(l3::arp("p1", "10.0.0.9", "a0", named("n0")));
    let (plan, scoped) = step(&mut w);
    assert!(scoped);
    assert!(
        matches!(plan.phases[..], [ref p] if matches!(p[..], [Op::L3(L3Op::SetNeighbour { .. })])),
        "{plan:?}"
    );
    w.put_route(l3::route(
        "r7",
        "10.6.0.0/16",
        Some("10.0.0.2"),
        "a0",
        named("n0"),
    ));
    assert!(step(&mut w).1);
    assert!(
        matches!(w.l3_status(ItemKind::Route, "r7"), ItemStatus::Invalid { error } if error.contains("already configured"))
    );
    w.s.delete_l3(ItemKind::Route, "r6");
    assert!(step(&mut w).1);
    w.put_route(l3::route(
        "r2",
        "10.7.0.0/16",
        Some("10.0.0.2"),
        "a0",
        named("n0"),
    ));
    w.s.delete_l3(ItemKind::Arp, "p1");
    assert!(step(&mut w).1);
    w.converge();
    assert_eq!(w.l3_status(ItemKind::Route, "r7"), ItemStatus::Applied);
    // A direct route plans its whole namespace (it may make gateways reachable).
    w.put_route(l3::route("d1", "10.9.0.0/16", None, "a0", named("n0")));
    let scope = w.s.quiet_scope(w.now).expect("scoped");
    assert!(scope.l3.reach.full.len() == 1 && scope.l3.routes.len() == 7);
    assert!(step(&mut w).1);
    w.converge();
    // A change of the interface the routes use plans their namespace with it.
    a0.mtu = 1400;
    w.put(a0);
    assert!(step(&mut w).1);
    w.converge();
    let (fresh, s) = w.at_once();
    assert_eq!(w.k.normalized(|_| false), fresh.normalized(|_| false));
    assert_eq!(
        w.k.normalized_l3(crate::scheduler::DEFAULT_ROUTE_PROTOCOL),
        fresh.normalized_l3(crate::scheduler::DEFAULT_ROUTE_PROTOCOL)
    );
    assert_eq!(w.s.status(), s.status());
}

#[test]
fn what_a_scoped_plan_cannot_account_for_gets_a_full_plan() {
    let mut w = settled_world(6);
    // A namespace only the touched items refer to (it must be resolved first; later it is
    // let go of).
    let mut sa = veth("sa", "sb", named("fresh"));
    w.put(sa.clone());
    w.put(veth("sb", "sa", named("n1")));
    assert!(!step(&mut w).1);
    w.converge();
    sa.mtu = 1400;
    w.put(sa);
    assert!(!step(&mut w).1);
    w.converge();
    // A failed operation: what it leaves is read again.
    w.k.fail_next.insert("update");
    let mut a1 = veth("a1", "b1", named("n1"));
    a1.mtu = 1400;
    w.put(a1);
    assert!(step(&mut w).1);
    assert!(!step(&mut w).1);
    w.settle(2);
    // A route in a namespace nothing else refers to (it must be resolved first).
    w.put_route(l3::route(
        "r",
        "10.9.0.0/16",
        None,
        "lo",
        named("elsewhere"),
    ));
    assert!(!step(&mut w).1);
    w.converge();
    // A route naming an interface no route named at the last plan.
    w.put_route(l3::route("r2", "10.9.0.0/16", None, "a1", named("n1")));
    assert!(!step(&mut w).1);
    w.converge();
    // A namespace nothing refers to any more after the change.
    w.s.delete_l3(ItemKind::Route, "r");
    assert!(!step(&mut w).1);
    w.converge();
    w.s.delete("sa");
    w.s.delete("sb");
    assert!(!step(&mut w).1);
    w.converge();
    let (fresh, s) = w.at_once();
    assert_eq!(w.k.normalized(|_| false), fresh.normalized(|_| false));
    assert_eq!(w.s.status(), s.status());
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
    w.s.verify_scoped = false;
    let started = std::time::Instant::now();
    let n: u32 = std::env::var("PLAN_COST_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100);
    for _ in 0..n {
        w.s.disturb(); // a full plan
        assert!(w.s.plan(w.now).is_empty());
    }
    println!("plan with 1000 ends: {:?}", started.elapsed() / n);
    // Scoped plans: one end put and deleted again, next to the 1000 ends.
    let before = w.s.scoped_plans;
    let started = std::time::Instant::now();
    for _ in 0..n {
        w.put(veth("sa", "sb", named("n0")));
        assert!(w.s.plan(w.now).is_empty());
        w.s.delete("sa");
        assert!(w.s.plan(w.now).is_empty());
    }
    println!(
        "plan after one put or delete next to 1000 ends: {:?}",
        started.elapsed() / (2 * n)
    );
    assert_eq!(w.s.scoped_plans - before, 2 * n as usize);
}

// ---- routes and neighbour entries ------------------------------------------------------

mod l3 {
    use super::*;
    use crate::kernel::KernelRoute;
    use crate::model::{ArpEntry, NeighbourState, Route, RouteScope};
    use crate::scheduler::DEFAULT_ROUTE_PROTOCOL as PROTO;
    use std::net::IpAddr;

    pub(super) fn route(
        name: &str,
        dst: &str,
        gw: Option<&str>,
        iface: &str,
        ns: NamespaceRef,
    ) -> Route {
        Route {
            name: name.into(),
            description: String::new(),
            namespace: ns,
            interface: iface.into(),
            scope: None,
            dst: dst.parse().unwrap(),
            default: false,
            src: None,
            gateway: gw.map(|g| g.parse().unwrap()),
            metric: 0,
            table: 0,
        }
    }

    pub(super) fn arp(name: &str, ip: &str, iface: &str, ns: NamespaceRef) -> ArpEntry {
        ArpEntry {
            name: name.into(),
            namespace: ns,
            interface: iface.into(),
            ip: ip.parse().unwrap(),
            mac: MacAddr([2, 0, 0, 0, 0, 9]),
            state: NeighbourState::Permanent,
        }
    }

    fn key(kind: ItemKind, name: &str) -> String {
        keys().key(kind, name)
    }

    impl World {
        pub(super) fn put_route(&mut self, r: Route) {
            self.rev += 1;
            self.s.put_route(Item {
                key: key(ItemKind::Route, &r.name),
                revision: self.rev,
                config: Ok(r),
            });
        }

        pub(super) fn put_arp(&mut self, a: ArpEntry) {
            self.rev += 1;
            self.s.put_arp(Item {
                key: key(ItemKind::Arp, &a.name),
                revision: self.rev,
                config: Ok(a),
            });
        }

        pub(super) fn l3_status(&self, kind: ItemKind, name: &str) -> ItemStatus {
            self.s.status()[&(kind, name.to_string())].clone()
        }

        fn pair(&mut self, addr_a: &str) {
            let mut a = veth("a", "b", named("n1"));
            a.ip_addresses = vec![addr_a.parse().unwrap()];
            self.put(a);
            self.put(veth("b", "a", named("n2")));
        }
    }

    fn ours(k: &FakeKernel, r: &NamespaceRef) -> Vec<KernelRoute> {
        k.routes_in(r)
            .into_iter()
            .filter(|r| r.protocol == PROTO)
            .collect()
    }

    #[test]
    fn route_and_arp_wait_for_their_interface_and_follow_it() {
        let mut w = World::new();
        w.put_route(route(
            "r1",
            "10.9.0.0/16",
            Some("10.0.0.2"),
            "a",
            named("n1"),
        ));
        w.put_arp(arp("p1", "10.0.0.7", "a", named("n1")));
        w.converge();
        // Nothing needs the named namespace yet, so it does not exist: that is the reason.
        assert!(
            matches!(w.l3_status(ItemKind::Route, "r1"), ItemStatus::Pending { reason } if reason.contains("named namespace n1"))
        );
        assert!(matches!(
            w.l3_status(ItemKind::Arp, "p1"),
            ItemStatus::Pending { .. }
        ));

        w.pair("10.0.0.1/24");
        w.converge();
        let routes = ours(&w.k, &named("n1"));
        assert_eq!(routes.len(), 1, "{routes:?}");
        assert_eq!(routes[0].gateway, Some("10.0.0.2".parse().unwrap()));
        assert_eq!(routes[0].table, 254);
        assert_eq!(routes[0].oif, w.links(&named("n1"))["a"].ifindex);
        assert_eq!(w.k.neighbours_in(&named("n1")).len(), 1);
        assert_eq!(w.l3_status(ItemKind::Route, "r1"), ItemStatus::Applied);
        assert_eq!(w.l3_status(ItemKind::Arp, "p1"), ItemStatus::Applied);
        assert!(w.s.plan(w.now).is_empty(), "stable once applied");

        // The pair goes: withdrawn (the kernel flushed them) and remembered.
        w.s.delete("b");
        w.converge();
        assert!(ours(&w.k, &named("n1")).is_empty());
        assert!(matches!(
            w.l3_status(ItemKind::Route, "r1"),
            ItemStatus::Pending { .. }
        ));
        w.put(veth("b", "a", named("n2")));
        w.converge();
        assert_eq!(ours(&w.k, &named("n1")).len(), 1);
        assert_eq!(w.k.neighbours_in(&named("n1")).len(), 1);
        assert_eq!(w.l3_status(ItemKind::Arp, "p1"), ItemStatus::Applied);
    }

    #[test]
    fn unreachable_gateway_waits_for_a_covering_address_or_link_route() {
        let mut w = World::new();
        w.pair("10.0.0.1/24");
        w.put_route(route(
            "r1",
            "10.9.0.0/16",
            Some("10.5.5.1"),
            "a",
            named("n1"),
        ));
        w.converge();
        assert!(
            matches!(w.l3_status(ItemKind::Route, "r1"), ItemStatus::Pending { reason } if reason.contains("10.5.5.1 is not reachable"))
        );
        assert!(ours(&w.k, &named("n1")).is_empty());
        // A link-scope route covering the gateway makes it reachable.
        let mut link = route("l1", "10.5.5.0/24", None, "a", named("n1"));
        link.scope = Some(RouteScope::Link);
        w.put_route(link);
        w.converge();
        assert_eq!(ours(&w.k, &named("n1")).len(), 2);
        assert_eq!(w.l3_status(ItemKind::Route, "r1"), ItemStatus::Applied);
        // Without it, an address works too.
        w.s.delete_l3(ItemKind::Route, "l1");
        w.converge();
        assert!(matches!(
            w.l3_status(ItemKind::Route, "r1"),
            ItemStatus::Pending { .. }
        ));
        let mut a = veth("a", "b", named("n1"));
        a.ip_addresses = vec![
            "10.0.0.1/24".parse().unwrap(),
            "10.5.5.9/24".parse().unwrap(),
        ];
        w.put(a);
        w.converge();
        assert_eq!(w.l3_status(ItemKind::Route, "r1"), ItemStatus::Applied);
    }

    #[test]
    fn metric_change_adds_the_new_route_before_deleting_the_old_one() {
        let mut w = World::new();
        w.pair("10.0.0.1/24");
        let mut r = route("r1", "10.9.0.0/16", Some("10.0.0.2"), "a", named("n1"));
        r.metric = 100;
        w.put_route(r.clone());
        w.converge();
        r.metric = 55;
        w.put_route(r.clone());
        let plan = w.s.plan(w.now);
        let flat: Vec<&Op> = plan.phases.iter().flatten().collect();
        let add = flat
            .iter()
            .position(|op| matches!(op, Op::L3(L3Op::AddRoute { .. })))
            .unwrap();
        let del = flat
            .iter()
            .position(|op| matches!(op, Op::L3(L3Op::DeleteRoute { .. })))
            .unwrap();
        let phase = |i: usize| {
            plan.phases
                .iter()
                .scan(0, |n, p| {
                    *n += p.len();
                    Some(*n)
                })
                .position(|end| i < end)
        };
        assert!(
            phase(add) < phase(del),
            "add in an earlier phase than delete"
        );
        w.k.run(&mut w.s, &plan, w.now);
        w.converge();
        let routes = ours(&w.k, &named("n1"));
        assert_eq!(routes.len(), 1);
        assert_eq!(routes[0].metric, 55);
        // A gateway change replaces in place (one write).
        r.gateway = Some("10.0.0.3".parse().unwrap());
        w.put_route(r);
        let before = w.k.l3_writes;
        w.converge();
        assert_eq!(w.k.l3_writes, before + 1);
        assert_eq!(
            ours(&w.k, &named("n1"))[0].gateway,
            Some("10.0.0.3".parse().unwrap())
        );
    }

    #[test]
    fn disabling_the_interface_withdraws_its_routes_and_enabling_restores_them() {
        let mut w = World::new();
        w.pair("10.0.0.1/24");
        w.put_route(route(
            "r1",
            "10.9.0.0/16",
            Some("10.0.0.2"),
            "a",
            named("n1"),
        ));
        w.converge();
        let mut a = veth("a", "b", named("n1"));
        a.ip_addresses = vec!["10.0.0.1/24".parse().unwrap()];
        a.enabled = false;
        w.put(a.clone());
        w.converge();
        assert!(ours(&w.k, &named("n1")).is_empty());
        assert!(
            matches!(w.l3_status(ItemKind::Route, "r1"), ItemStatus::Pending { reason } if reason.contains("down"))
        );
        a.enabled = true;
        w.put(a);
        w.converge();
        assert_eq!(ours(&w.k, &named("n1")).len(), 1);
    }

    #[test]
    fn routes_use_links_the_agent_does_not_own_and_wait_for_missing_ones() {
        let mut w = World::new();
        let ns = w.k.add_namespace(named("n1"));
        // A new namespace's loopback link is down; bring it up like `ip link set lo up`.
        let lo = 1;
        w.k.links
            .get_mut(&ns)
            .unwrap()
            .get_mut(&lo)
            .unwrap()
            .link
            .up = true;
        w.put_route(route("r1", "10.7.0.0/16", None, "lo", named("n1")));
        w.put_route(route("r2", "10.8.0.0/16", None, "eth9", named("n1")));
        w.put_arp(arp("p1", "10.7.0.9", "lo", named("n1")));
        w.converge();
        assert_eq!(w.l3_status(ItemKind::Route, "r1"), ItemStatus::Applied);
        assert_eq!(
            ours(&w.k, &named("n1"))[0].scope,
            253,
            "direct routes get link scope"
        );
        assert!(
            matches!(w.l3_status(ItemKind::Route, "r2"), ItemStatus::Pending { reason } if reason.contains("eth9"))
        );
        assert_eq!(w.l3_status(ItemKind::Arp, "p1"), ItemStatus::Applied);
    }

    #[test]
    fn resync_removes_stale_owned_state_and_keeps_foreign_routes() {
        let mut w = World::new();
        w.pair("10.0.0.1/24");
        w.put_route(route(
            "r1",
            "10.9.0.0/16",
            Some("10.0.0.2"),
            "a",
            named("n1"),
        ));
        w.put_route(route(
            "r2",
            "10.8.0.0/16",
            Some("10.0.0.2"),
            "a",
            named("n1"),
        ));
        w.put_arp(arp("p1", "10.0.0.7", "a", named("n1")));
        w.converge();
        let ns = w.k.world[&named("n1")];
        let mut foreign = ours(&w.k, &named("n1"))[0].clone();
        foreign.protocol = 3; // ip route add (boot)
        foreign.dst = "10.6.0.0/16".parse().unwrap();
        w.k.add_foreign_route(ns, foreign.clone());
        // Restart with r2 and p1 deleted meanwhile.
        let mut s = Scheduler::new(keys());
        s.resync(w.s.items().values().cloned().collect());
        let r1 = Item {
            key: key(ItemKind::Route, "r1"),
            revision: 1,
            config: Ok(route(
                "r1",
                "10.9.0.0/16",
                Some("10.0.0.2"),
                "a",
                named("n1"),
            )),
        };
        s.resync_l3(vec![r1], vec![]);
        let before = w.k.l3_writes;
        w.k.converge(&mut s, w.now);
        assert_eq!(
            w.k.l3_writes,
            before + 2,
            "one route and one entry deleted, nothing else"
        );
        let all = w.k.routes_in(&named("n1"));
        assert!(
            all.contains(&foreign),
            "a route the agent did not make is kept"
        );
        assert_eq!(ours(&w.k, &named("n1")).len(), 1);
        assert!(w.k.neighbours_in(&named("n1")).is_empty());
    }

    #[test]
    fn a_direct_route_added_by_hand_makes_a_gateway_reachable() {
        let mut w = World::new();
        w.pair("10.0.0.1/24");
        w.put_route(route(
            "r",
            "10.8.0.0/16",
            Some("172.16.0.1"),
            "a",
            named("n1"),
        ));
        w.converge();
        let pending = w.l3_status(ItemKind::Route, "r");
        assert!(
            matches!(&pending, ItemStatus::Pending { reason } if reason.contains("direct (link-scope) route")),
            "{pending:?}"
        );
        // `ip route add 172.16.0.0/24 dev a` by someone else (protocol boot, link scope).
        let ns = w.k.world[&named("n1")];
        let oif = w.links(&named("n1"))["a"].ifindex;
        let by_hand = KernelRoute {
            table: 254,
            dst: "172.16.0.0/24".parse().unwrap(),
            gateway: None,
            source: None,
            metric: 0,
            scope: 253,
            oif,
            protocol: 3,
        };
        w.k.add_foreign_route(ns, by_hand.clone());
        w.s.refresh_kernel_views();
        w.converge();
        assert_eq!(w.l3_status(ItemKind::Route, "r"), ItemStatus::Applied);
        assert!(
            w.k.routes_in(&named("n1")).contains(&by_hand),
            "not ours to touch"
        );
    }

    #[test]
    fn a_route_waits_until_its_source_is_an_address_of_the_namespace() {
        let mut w = World::new();
        w.pair("10.0.0.1/24");
        let mut r = route("r", "10.8.0.0/16", Some("10.0.0.2"), "a", named("n1"));
        r.src = Some("10.0.0.5".parse().unwrap());
        w.put_route(r);
        w.converge();
        let pending = w.l3_status(ItemKind::Route, "r");
        assert_eq!(
            pending,
            ItemStatus::Pending {
                reason: "source address 10.0.0.5 is not an address of any link in the named namespace n1".into()
            }
        );
        w.pair("10.0.0.5/24");
        w.converge();
        assert_eq!(w.l3_status(ItemKind::Route, "r"), ItemStatus::Applied);
        assert_eq!(
            ours(&w.k, &named("n1"))[0].source,
            Some("10.0.0.5".parse().unwrap())
        );
    }

    #[test]
    fn a_route_via_a_link_local_gateway_needs_only_its_interface_up() {
        let mut w = World::new();
        let mut a = veth("a", "b", named("n1"));
        a.ip_addresses = vec!["2001:db8::1/64".parse().unwrap()];
        w.put(a.clone());
        w.put(veth("b", "a", named("n2")));
        w.put_route(route(
            "ll",
            "2001:db8:9::/48",
            Some("fe80::1"),
            "a",
            named("n1"),
        ));
        w.converge();
        assert_eq!(w.l3_status(ItemKind::Route, "ll"), ItemStatus::Applied);
        assert_eq!(
            ours(&w.k, &named("n1"))[0].gateway,
            Some("fe80::1".parse().unwrap())
        );
        a.enabled = false;
        w.put(a);
        w.converge();
        assert!(
            matches!(w.l3_status(ItemKind::Route, "ll"), ItemStatus::Pending { reason } if reason.contains("down"))
        );
    }

    #[test]
    fn ipv6_default_route_and_aging_neighbours_cause_no_churn() {
        let mut w = World::new();
        let mut a = veth("a", "b", named("n1"));
        a.ip_addresses = vec!["2001:db8::1/64".parse().unwrap()];
        w.put(a);
        w.put(veth("b", "a", named("n2")));
        let mut d = route("d6", "::/0", Some("2001:db8::2"), "a", named("n1"));
        d.default = true;
        w.put_route(d);
        let mut n = arp("p6", "2001:db8::9", "a", named("n1"));
        n.state = NeighbourState::Reachable;
        w.put_arp(n);
        w.converge();
        let r = &ours(&w.k, &named("n1"))[0];
        assert_eq!(
            (r.metric, r.scope),
            (1024, 0),
            "as the kernel reports IPv6 routes"
        );
        // The kernel ages the entry; that is not a difference to repair.
        let ns = w.k.world[&named("n1")];
        w.k.neighbours.get_mut(&ns).unwrap()[0].state = 0x04;
        let mut s = Scheduler::new(keys());
        s.resync(w.s.items().values().cloned().collect());
        let routes: Vec<_> = vec![Item {
            key: key(ItemKind::Route, "d6"),
            revision: 1,
            config: Ok({
                let mut d = route("d6", "::/0", Some("2001:db8::2"), "a", named("n1"));
                d.default = true;
                d
            }),
        }];
        let arps = vec![Item {
            key: key(ItemKind::Arp, "p6"),
            revision: 2,
            config: Ok({
                let mut n = arp("p6", "2001:db8::9", "a", named("n1"));
                n.state = NeighbourState::Reachable;
                n
            }),
        }];
        s.resync_l3(routes, arps);
        let before = w.k.l3_writes;
        w.k.converge(&mut s, w.now);
        assert_eq!(w.k.l3_writes, before);
    }

    #[test]
    fn two_routes_with_one_kernel_identity_fail_the_later_write() {
        let mut w = World::new();
        w.pair("10.0.0.1/24");
        w.put_route(route(
            "r1",
            "10.9.0.0/16",
            Some("10.0.0.2"),
            "a",
            named("n1"),
        ));
        w.put_route(route(
            "r2",
            "10.9.0.0/16",
            Some("10.0.0.3"),
            "a",
            named("n1"),
        ));
        w.converge();
        assert_eq!(w.l3_status(ItemKind::Route, "r1"), ItemStatus::Applied);
        assert!(
            matches!(w.l3_status(ItemKind::Route, "r2"), ItemStatus::Invalid { error } if error.contains("/route/r1"))
        );
    }

    #[test]
    fn routes_on_a_link_that_appears_later_are_applied_after_a_refresh() {
        let mut w = World::new();
        let ns = w.k.add_namespace(named("n1"));
        w.put_route(route("r1", "10.7.0.0/16", None, "eth9", named("n1")));
        w.converge();
        assert_eq!(
            w.l3_status(ItemKind::Route, "r1"),
            ItemStatus::Pending {
                reason:
                    "no configured interface and no link named `eth9` in the named namespace n1"
                        .into()
            },
            "the reason names the namespace"
        );
        let eth9 = w.k.add_foreign_link(ns, "eth9");
        w.k.links
            .get_mut(&ns)
            .unwrap()
            .get_mut(&eth9)
            .unwrap()
            .link
            .up = true;
        w.converge();
        assert!(
            ours(&w.k, &named("n1")).is_empty(),
            "nothing told the scheduler yet"
        );
        w.s.refresh_waiting_links();
        w.converge();
        assert_eq!(w.l3_status(ItemKind::Route, "r1"), ItemStatus::Applied);
        assert_eq!(ours(&w.k, &named("n1"))[0].oif, eth9);
    }

    #[test]
    fn a_kernel_refresh_repairs_changes_made_behind_the_agents_back() {
        let mut w = World::new();
        w.pair("10.0.0.1/24");
        w.put_route(route(
            "r1",
            "10.9.0.0/16",
            Some("10.0.0.2"),
            "a",
            named("n1"),
        ));
        w.put_arp(arp("p1", "10.0.0.7", "a", named("n1")));
        w.converge();
        let ns = w.k.world[&named("n1")];
        w.k.routes.get_mut(&ns).unwrap().clear();
        w.k.neighbours.get_mut(&ns).unwrap()[0].mac = Some(MacAddr([2, 9, 9, 9, 9, 9]));
        let a = w.links(&named("n1"))["a"].ifindex;
        w.k.links
            .get_mut(&ns)
            .unwrap()
            .get_mut(&a)
            .unwrap()
            .link
            .mtu = 9000;
        w.s.refresh_kernel_views();
        // Statuses never go through "pending" while the namespaces are read again.
        for _ in 0..10 {
            let plan = w.s.plan(w.now);
            let pending: Vec<_> =
                w.s.status()
                    .iter()
                    .filter(|(_, s)| matches!(s, ItemStatus::Pending { .. }))
                    .collect();
            assert!(pending.is_empty(), "{pending:?}");
            if plan.is_empty() {
                break;
            }
            w.k.run(&mut w.s, &plan, w.now);
        }
        assert_eq!(ours(&w.k, &named("n1")).len(), 1);
        assert_eq!(
            w.k.neighbours_in(&named("n1"))[0].mac,
            Some(MacAddr([2, 0, 0, 0, 0, 9]))
        );
        assert_eq!(w.links(&named("n1"))["a"].mtu, 1500);
    }

    #[test]
    fn failed_route_writes_are_retried() {
        let mut w = World::new();
        w.pair("10.0.0.1/24");
        w.converge();
        w.k.fail_next.insert("l3");
        w.put_route(route(
            "r1",
            "10.9.0.0/16",
            Some("10.0.0.2"),
            "a",
            named("n1"),
        ));
        for _ in 0..5 {
            w.converge();
            w.advance(Duration::from_secs(1));
        }
        assert!(w.k.fail_next.is_empty(), "the fault was hit");
        assert_eq!(ours(&w.k, &named("n1")).len(), 1);
        assert_eq!(w.l3_status(ItemKind::Route, "r1"), ItemStatus::Applied);
        let _: IpAddr = "10.0.0.2".parse().unwrap();
    }

    /// Found by the property test: a failed delete of the last entry in a namespace that
    /// nothing references any more must be retried, not forgotten with the namespace.
    #[test]
    fn a_failed_entry_delete_is_retried_before_its_namespace_is_released() {
        let mut w = World::new();
        let ns = w.k.add_namespace(named("n1"));
        w.k.links.get_mut(&ns).unwrap().get_mut(&1).unwrap().link.up = true;
        w.put_arp(arp("p1", "10.0.1.7", "lo", named("n1")));
        w.converge();
        assert_eq!(w.k.neighbours_in(&named("n1")).len(), 1);
        w.s.delete_l3(ItemKind::Arp, "p1");
        w.k.fail_next.insert("l3");
        w.converge();
        assert!(w.k.fail_next.is_empty(), "the fault was hit");
        for _ in 0..10 {
            w.advance(Duration::from_secs(30));
            w.converge();
        }
        assert!(w.k.neighbours_in(&named("n1")).is_empty());
    }

    /// Found by the property test: the addresses of a deleted pair's end stayed in the
    /// namespace's route view and made a later gateway look reachable.
    #[test]
    fn addresses_of_a_deleted_pair_do_not_make_a_gateway_reachable() {
        let mut w = World::new();
        w.put_arp(arp("p1", "10.0.0.7", "a", named("n1")));
        let mut c = veth("c", "d", NamespaceRef::Default);
        c.enabled = false;
        let mut d = veth("d", "c", named("n1"));
        d.enabled = false;
        d.ip_addresses = vec!["10.0.1.1/24".parse().unwrap()];
        w.put(c);
        w.put(d);
        w.converge();
        w.s.delete_l3(ItemKind::Arp, "p1");
        let mut a = veth("a", "b", NamespaceRef::Default);
        a.enabled = false;
        w.put(a);
        w.put(veth("b", "a", named("n1")));
        w.s.delete("c");
        w.converge();
        assert!(!w.links(&named("n1")).contains_key("d"));
        w.put_route(route(
            "r1",
            "10.9.0.0/16",
            Some("10.0.1.2"),
            "b",
            named("n1"),
        ));
        w.converge();
        assert!(ours(&w.k, &named("n1")).is_empty());
        assert!(matches!(
            w.l3_status(ItemKind::Route, "r1"),
            ItemStatus::Pending { reason } if reason.contains("not reachable")
        ));
    }
}

#[test]
fn microservice_items_are_held_until_docker_has_listed_its_containers() {
    let mut w = World::new();
    let web = NamespaceRef::Microservice("web".into());
    w.k.add_namespace(web.clone());
    w.s.set_microservices_known();
    w.put(veth("a", "b", web.clone()));
    w.put(veth("b", "a", named("n1")));
    w.converge();
    assert!(w.links(&named("n1")).contains_key("b"));
    // A restarted agent: Docker has not answered yet; nothing is withdrawn meanwhile.
    let mut s = Scheduler::new(keys());
    s.resync(w.s.items().values().cloned().collect());
    let writes = w.k.writes;
    w.k.converge(&mut s, w.now);
    assert_eq!(w.k.writes, writes);
    assert!(
        matches!(&s.status()[&(ItemKind::Interface, "a".to_string())],
        ItemStatus::Pending { reason } if reason.contains("waiting for Docker"))
    );
    s.set_microservices_known();
    w.k.converge(&mut s, w.now);
    assert_eq!(w.k.writes, writes, "the pair matched: not touched");
    assert_eq!(
        s.status()[&(ItemKind::Interface, "a".to_string())],
        ItemStatus::Applied
    );
}

#[test]
fn microservice_items_follow_the_container() {
    let mut w = World::new();
    let web = NamespaceRef::Microservice("web".into());
    w.s.set_microservices_known();
    let mut a = veth("a", "b", web.clone());
    a.ip_addresses = vec!["10.0.0.1/24".parse().unwrap()];
    w.put(a);
    w.put(veth("b", "a", named("n1")));
    w.converge();
    assert!(
        matches!(w.status("a"), ItemStatus::Pending { reason } if reason.contains("microservice web"))
    );
    assert!(w.links(&named("n1")).is_empty());

    // The container starts.
    let first = w.k.add_namespace(web.clone());
    w.s.namespace_changed(&web);
    w.converge();
    assert_eq!(w.k.world[&web], first);
    assert!(w.links(&web).contains_key("a"));
    assert!(w.links(&named("n1")).contains_key("b"));

    // It stops: withdrawn (the kernel destroyed its end; ours is removed too).
    w.k.remove_namespace(&web);
    w.s.namespace_vanished(&web, w.now);
    w.converge();
    assert!(w.links(&named("n1")).is_empty());
    assert!(matches!(w.status("b"), ItemStatus::Pending { .. }));

    // A new container takes the label: re-created in its namespace with the same config.
    let second = w.k.add_namespace(web.clone());
    assert_ne!(first, second);
    w.s.namespace_changed(&web);
    w.converge();
    assert_eq!(
        w.links(&web)["a"].addresses,
        vec!["10.0.0.1/24".parse().unwrap()]
    );
    assert!(w.links(&named("n1")).contains_key("b"));

    // Replaced while running (restart with a new namespace, no stop seen in between).
    w.k.world.remove(&web);
    let third = w.k.add_namespace(web.clone());
    w.s.namespace_changed(&web);
    w.converge();
    assert_eq!(w.k.world[&web], third);
    assert!(w.links(&web).contains_key("a"));
    assert_eq!(w.links(&named("n1")).len(), 1, "the old pair's end is gone");
}

/// A property test aimed at routes and entries: two pairs that mostly exist and are up, with
/// addresses that come and go, so that routes and entries are applied, changed, withdrawn
/// and restored far more often than in the general property test.
mod l3_property {
    use super::*;
    use crate::model::{ArpEntry, NeighbourState, Route, RouteScope};
    use crate::scheduler::DEFAULT_ROUTE_PROTOCOL as PROTO;

    #[derive(Clone, Debug)]
    enum L3Event {
        /// End `a` (or `c`) in n1 with this admin state and these addresses.
        PutEnd(&'static str, bool, Vec<&'static str>),
        /// Its peer (`b` in n2 for `a`, `d` in the default namespace for `c`).
        PutPeer(&'static str),
        Delete(&'static str),
        PutRoute(Route),
        DeleteRoute(&'static str),
        PutArp(ArpEntry),
        DeleteArp(&'static str),
        /// The next route or neighbour write fails.
        FailL3,
        Converge,
        Wait,
    }

    fn end_strategy() -> impl Strategy<Value = L3Event> {
        (
            prop_oneof![3 => Just("a"), 1 => Just("c")],
            prop_oneof![4 => Just(true), 1 => Just(false)],
            prop::sample::subsequence(vec![0, 1, 2], 0..=3),
        )
            .prop_map(|(n, up, picks)| {
                // Different prefixes on `a` and `c`: which of two links with one prefix a
                // gateway resolves to is the kernel's choice, not the agent's.
                let pool = if n == "a" {
                    ["10.0.1.1/24", "10.0.5.1/24", "fd00::1/64"]
                } else {
                    ["10.0.2.1/24", "10.0.4.1/24", "fd04::1/64"]
                };
                L3Event::PutEnd(n, up, picks.into_iter().map(|i| pool[i]).collect())
            })
    }

    /// Valid routes only (as the decoder would let through): one address family per route,
    /// an interface wherever there is no gateway. Gateways are mostly in a prefix of the
    /// route's interface, sometimes elsewhere (pending until reachable).
    fn route_strategy() -> impl Strategy<Value = Route> {
        let v4 = (
            prop_oneof![
                Just("10.9.0.0/16"),
                Just("10.8.0.0/16"),
                Just("10.0.3.0/24"),
                Just("0.0.0.0/0")
            ],
            // a's prefixes, c's prefixes, or only behind a link-scope route.
            prop_oneof![
                Just(["10.0.1.2", "10.0.2.2", "10.0.3.2"]),
                Just(["10.0.5.2", "10.0.4.2", "10.0.3.2"])
            ],
        );
        let v6 = (
            prop_oneof![Just("fd09::/32"), Just("fd03::/64"), Just("::/0")],
            Just(["fd00::2", "fd04::2", "fd03::2"]),
        );
        (
            prop_oneof![Just("r1"), Just("r2"), Just("r3")],
            prop_oneof![4 => v4, 1 => v6],
            // Index into the gateways above: none, the interface's own, the other's, behind a
            // link-scope route.
            prop_oneof![2 => Just(None), 4 => Just(Some(0)), 1 => Just(Some(1)), 1 => Just(Some(2))],
            prop_oneof![5 => Just("a"), 3 => Just("c"), 1 => Just("lo"), 1 => Just("")],
            prop_oneof![Just(0u32), Just(100)],
            prop_oneof![4 => Just(0u32), 1 => Just(100)],
            any::<bool>(),
            prop_oneof![6 => Just(named("n1")), 1 => Just(NamespaceRef::Default)],
        )
            .prop_map(|(name, (dst, gws), pick, iface, metric, table, link, ns)| {
                // For `c`, its own prefix comes first.
                let gw = pick.map(|i| match (iface, i) {
                    ("c", 0) => gws[1],
                    ("c", 1) => gws[0],
                    _ => gws[i],
                });
                Route {
                    name: name.into(),
                    description: String::new(),
                    namespace: ns,
                    interface: if iface.is_empty() && gw.is_none() { "a" } else { iface }.into(),
                    scope: (link && gw.is_none()).then_some(RouteScope::Link),
                    dst: dst.parse().unwrap(),
                    default: false,
                    src: None,
                    gateway: gw.map(|g| g.parse().unwrap()),
                    metric,
                    table,
                }
            })
    }

    fn arp_strategy() -> impl Strategy<Value = ArpEntry> {
        (
            prop_oneof![Just("p1"), Just("p2")],
            prop_oneof![Just("10.0.1.7"), Just("10.0.2.7"), Just("fd00::7")],
            prop_oneof![3 => Just("a"), 1 => Just("c"), 1 => Just("lo")],
            0..3u8,
            prop_oneof![
                Just(NeighbourState::Permanent),
                Just(NeighbourState::NoArp),
                Just(NeighbourState::Reachable),
                Just(NeighbourState::Stale)
            ],
            prop_oneof![5 => Just(named("n1")), 1 => Just(NamespaceRef::Default)],
        )
            .prop_map(|(name, ip, iface, mac, state, ns)| ArpEntry {
                name: name.into(),
                namespace: ns,
                interface: iface.into(),
                ip: ip.parse().unwrap(),
                mac: MacAddr([2, 0, 0, 0, 2, mac]),
                state,
            })
    }

    fn event_strategy() -> impl Strategy<Value = L3Event> {
        prop_oneof![
            3 => end_strategy(),
            2 => prop_oneof![Just("a"), Just("c")].prop_map(L3Event::PutPeer),
            1 => prop_oneof![Just("a"), Just("b"), Just("c"), Just("d")].prop_map(L3Event::Delete),
            4 => route_strategy().prop_map(L3Event::PutRoute),
            1 => prop_oneof![Just("r1"), Just("r2"), Just("r3")].prop_map(L3Event::DeleteRoute),
            3 => arp_strategy().prop_map(L3Event::PutArp),
            1 => prop_oneof![Just("p1"), Just("p2")].prop_map(L3Event::DeleteArp),
            1 => Just(L3Event::FailL3),
            3 => Just(L3Event::Converge),
            1 => Just(L3Event::Wait),
        ]
    }

    fn end(name: &str, up: bool, addrs: &[&str]) -> Interface {
        let peer = if name == "a" { "b" } else { "d" };
        let mut i = veth(name, peer, named("n1"));
        i.enabled = up;
        i.ip_addresses = addrs.iter().map(|a| a.parse().unwrap()).collect();
        i
    }

    fn peer(of: &str) -> Interface {
        match of {
            "a" => veth("b", "a", named("n2")),
            _ => veth("d", "c", NamespaceRef::Default),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(
            std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(300)
        ))]

        #[test]
        fn route_and_entry_sequences_end_like_the_final_configuration_at_once(
            events in prop::collection::vec(event_strategy(), 1..40),
        ) {
            let mut w = World::new();
            // Both pairs up with an address each to start with.
            w.put(end("a", true, &["10.0.1.1/24"]));
            w.put(peer("a"));
            w.put(end("c", true, &["10.0.2.1/24"]));
            w.put(peer("c"));
            w.converge();
            for e in &events {
                match e {
                    L3Event::PutEnd(n, up, addrs) => w.put(end(n, *up, addrs)),
                    L3Event::PutPeer(n) => w.put(peer(n)),
                    L3Event::Delete(n) => w.s.delete(n),
                    L3Event::PutRoute(r) => w.put_route(r.clone()),
                    L3Event::DeleteRoute(n) => w.s.delete_l3(ItemKind::Route, n),
                    L3Event::PutArp(a) => w.put_arp(a.clone()),
                    L3Event::DeleteArp(n) => w.s.delete_l3(ItemKind::Arp, n),
                    L3Event::FailL3 => {
                        w.k.fail_next.insert("l3");
                    }
                    L3Event::Converge => {
                        w.converge();
                    }
                    L3Event::Wait => w.advance(Duration::from_secs(2)),
                }
                w.advance(Duration::from_millis(50));
            }
            w.settle(4);

            let (fresh, s) = w.at_once();
            prop_assert_eq!(w.k.normalized_l3(PROTO), fresh.normalized_l3(PROTO));
            prop_assert_eq!(w.s.status(), s.status());
            prop_assert!(w.s.plan(w.now).is_empty());
        }
    }
}

#[test]
fn a_failed_link_delete_is_retried_before_its_namespace_is_released() {
    let mut w = World::new();
    w.put(veth("a", "b", named("n1")));
    w.put(veth("b", "a", named("n2")));
    w.converge();
    w.s.delete("a");
    w.s.delete("b");
    w.k.fail_next.insert("delete");
    w.converge();
    assert!(w.k.fail_next.is_empty(), "the fault was hit");
    for _ in 0..10 {
        w.advance(Duration::from_secs(30));
        w.converge();
    }
    assert!(w.links(&named("n1")).is_empty());
    assert!(w.links(&named("n2")).is_empty());
}

/// Found by the property test: while the delete of an old pair waits for its retry, the new
/// pair of one of its items must not be deleted and re-created in every round.
#[test]
fn a_new_pair_is_kept_while_the_old_pair_of_an_end_waits_for_its_delete() {
    let mut w = World::new();
    w.put(veth("c", "d", NamespaceRef::Default));
    w.put(veth("d", "c", NamespaceRef::Default));
    w.put(veth("a", "d", NamespaceRef::Default));
    w.converge();
    let mut d = veth("d", "a", NamespaceRef::Default);
    d.host_if_name = "h1".into();
    w.put(d);
    w.k.fail_next.insert("delete");
    w.converge();
    assert!(w.k.fail_next.is_empty(), "the fault was hit");
    let links = w.links(&NamespaceRef::Default);
    let (a, h1) = (links["a"].ifindex, links["h1"].ifindex);
    assert!(links.contains_key("c"), "the old pair waits for its retry");
    let writes = w.k.writes;
    w.converge();
    assert_eq!(w.k.writes, writes, "nothing churns meanwhile");
    w.advance(Duration::from_secs(60));
    w.converge();
    let links = w.links(&NamespaceRef::Default);
    assert!(!links.contains_key("c") && !links.contains_key("d"));
    assert_eq!((links["a"].ifindex, links["h1"].ifindex), (a, h1));
    assert_eq!(w.status("d"), ItemStatus::Applied);
}

/// Lost kernel events (an overrun) make the namespace be read again; when that read fails
/// (e.g. a dump interrupted again and again), the old view is kept and the read is retried
/// after its backoff, until the drift it would have found is repaired.
#[test]
fn a_failed_read_after_lost_events_is_retried_until_it_succeeds() {
    use crate::kernel::KernelEvent;
    let mut w = routed_pair();
    w.converge();
    let ns = w.k.world[&named("n1")];
    let ifindex = w.links(&named("n1"))["a"].ifindex;
    let ours = |k: &FakeKernel| {
        k.routes_in(&named("n1"))
            .iter()
            .filter(|r| r.protocol == DEFAULT_ROUTE_PROTOCOL)
            .count()
    };
    assert_eq!(ours(&w.k), 1);
    // Changed while the events were lost.
    w.k.links
        .get_mut(&ns)
        .unwrap()
        .get_mut(&ifindex)
        .unwrap()
        .link
        .mtu = 1300;
    w.k.routes.get_mut(&ns).unwrap().clear();
    assert!(w.s.kernel_events(ns, &[KernelEvent::Overrun]));
    w.k.fail_next.extend(["dump", "l3"]);
    w.converge();
    assert_eq!(w.links(&named("n1"))["a"].mtu, 1300, "the read failed");
    assert_eq!(w.status("a"), ItemStatus::Applied, "the old view is kept");
    w.settle(1);
    assert_eq!(
        w.links(&named("n1"))["a"].mtu,
        1500,
        "read again and repaired"
    );
    assert_eq!(ours(&w.k), 1, "the route is back");
}

// ---- single owned links: DUMMY, TAP, VRF_DEVICE ----------------------------------------

#[path = "tests_kinds.rs"]
mod kinds;

#[path = "tests_found.rs"]
mod found;

#[path = "tests_adopt.rs"]
mod adopt;
