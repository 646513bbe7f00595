//! AUTO_TAP: a TAP another program makes, taken over and given back, on the fake kernel.

use super::*;
use crate::kernel::KernelEvent;
use crate::model::link::auto_tap::AutoTap;
use ipnet::IpNet;

fn auto_tap(name: &str, temp: &str, ns: NamespaceRef) -> Interface {
    Interface {
        link: LinkKind::AutoTap(AutoTap {
            temp_name: temp.into(),
        }),
        ..veth(name, "unused", ns)
    }
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

impl World {
    /// A TAP another program makes in the agent's own namespace, reported as the kernel would.
    fn someone_makes_tap(&mut self, name: &str) -> u32 {
        let ns = self.k.world[&NamespaceRef::Default];
        let index = self.k.add_foreign_tap(ns, name);
        let link = self.k.links[&ns][&index].link.clone();
        self.s.kernel_events(ns, &[KernelEvent::Link(link)]);
        index
    }

    fn all_links(&self, r: &NamespaceRef) -> BTreeMap<String, KernelLink> {
        self.k.by_name(r)
    }
}

#[test]
fn an_auto_tap_waits_for_its_tap_takes_it_over_and_gives_it_back() {
    let mut w = World::new();
    let mut t = auto_tap("t", "tap0", named("n1"));
    t.host_if_name = "linux-tap".into();
    t.mtu = 1400;
    t.ip_addresses = vec![net("172.52.45.127/24")];
    w.put(t.clone());
    w.converge();
    assert_eq!(
        w.status("t"),
        ItemStatus::Pending {
            reason: "waiting for a TAP named `tap0` in the agent's own namespace".into()
        }
    );

    w.someone_makes_tap("tap0");
    w.converge();
    assert_eq!(w.status("t"), ItemStatus::Applied);
    assert!(!w.all_links(&NamespaceRef::Default).contains_key("tap0"));
    let l = w.links(&named("n1"))["linux-tap"].clone();
    assert_eq!(l.kind, "tun");
    assert_eq!((l.mtu, l.up), (1400, true));
    assert_eq!(l.addresses, t.ip_addresses);
    assert_eq!(l.alias.as_deref(), Some("/vnf-agent/t/t/tap0"));
    assert_ne!(l.group, group(), "never in the agent's link group");
    assert!(w.s.plan(w.now).is_empty(), "in sync");

    // Changed in place.
    t.mtu = 1300;
    w.put(t);
    w.converge();
    assert_eq!(w.links(&named("n1"))["linux-tap"].mtu, 1300);

    // Deleted: given back, never deleted.
    w.s.delete("t");
    w.converge();
    assert!(w.links(&named("n1")).is_empty());
    let back = &w.all_links(&NamespaceRef::Default)["tap0"];
    assert_eq!(back.alias, None);
    assert!(back.addresses.is_empty());
    assert!(w.s.plan(w.now).is_empty());
}

#[test]
fn an_auto_tap_moved_to_another_namespace_is_given_back_and_taken_over_again() {
    let mut w = World::new();
    w.someone_makes_tap("tap0");
    let mut t = auto_tap("t", "tap0", named("n1"));
    w.put(t.clone());
    w.converge();
    assert!(w.links(&named("n1")).contains_key("t"));
    t.namespace = named("n2");
    w.put(t);
    w.converge();
    assert!(w.links(&named("n1")).is_empty());
    assert!(w.links(&named("n2")).contains_key("t"));
    assert_eq!(w.status("t"), ItemStatus::Applied);
}

#[test]
fn a_link_under_the_temporary_name_that_is_not_a_tap_is_left_alone() {
    let mut w = World::new();
    let ns = w.k.world[&NamespaceRef::Default];
    w.k.add_foreign_link(ns, "tap0");
    w.put(auto_tap("t", "tap0", named("n1")));
    w.converge();
    let ItemStatus::Pending { reason } = w.status("t") else {
        panic!("{:?}", w.status("t"));
    };
    assert!(reason.contains("is a veth, not a TAP"), "{reason}");
    assert!(w.all_links(&NamespaceRef::Default).contains_key("tap0"));
}

#[test]
fn two_auto_taps_cannot_share_a_tap() {
    let mut w = World::new();
    w.someone_makes_tap("tap0");
    w.put(auto_tap("t1", "tap0", named("n1")));
    w.put(auto_tap("t2", "tap0", named("n2")));
    w.converge();
    assert_eq!(w.status("t1"), ItemStatus::Applied);
    let ItemStatus::Invalid { error } = w.status("t2") else {
        panic!("{:?}", w.status("t2"));
    };
    assert!(error.contains("tap.temp_if_name"), "{error}");
    assert!(error.contains("/interface/t1"), "{error}");
}

#[test]
fn a_restart_with_the_tap_taken_over_writes_nothing_and_one_cut_short_is_finished() {
    let mut w = World::new();
    w.someone_makes_tap("tap0");
    let mut t = auto_tap("t", "tap0", named("n1"));
    t.ip_addresses = vec![net("10.1.0.1/24")];
    w.put(t);
    w.converge();

    let mut s = Scheduler::new(keys());
    s.resync(w.s.items().values().cloned().collect());
    let writes = w.k.writes;
    w.k.converge(&mut s, w.now);
    assert_eq!(w.k.writes, writes, "nothing to do after a restart");

    // An agent that stopped after marking a second TAP but before moving it: the next one
    // recognises it by its alias and finishes the job.
    let ns = w.k.world[&NamespaceRef::Default];
    let index = w.k.add_foreign_tap(ns, "tap1");
    w.k.links
        .get_mut(&ns)
        .unwrap()
        .get_mut(&index)
        .unwrap()
        .link
        .alias = Some("/vnf-agent/t/u/tap1".into());
    let mut items: Vec<Item> = w.s.items().values().cloned().collect();
    items.push(item(auto_tap("u", "tap1", named("n2")), 99));
    let mut s = Scheduler::new(keys());
    s.resync(items);
    w.k.converge(&mut s, w.now);
    assert_eq!(
        s.status()[&(ItemKind::Interface, "u".into())],
        ItemStatus::Applied
    );
    assert!(w.links(&named("n2")).contains_key("u"));
    assert!(!w.all_links(&NamespaceRef::Default).contains_key("tap1"));
}

#[test]
fn an_auto_tap_whose_namespace_vanishes_waits_and_is_taken_over_when_it_is_back() {
    let mut w = World::new();
    let pid = NamespaceRef::Pid(100);
    w.k.add_namespace(pid.clone());
    w.someone_makes_tap("tap0");
    w.put(auto_tap("t", "tap0", pid.clone()));
    w.converge();
    assert_eq!(w.status("t"), ItemStatus::Applied);
    // The process exits: its namespace goes, and with it the TAP (as the kernel deletes a
    // TAP of a namespace that is destroyed).
    w.k.remove_namespace(&pid);
    w.s.namespace_vanished(&pid, w.now);
    w.converge();
    assert!(matches!(w.status("t"), ItemStatus::Pending { .. }));
    w.k.add_namespace(pid.clone());
    w.someone_makes_tap("tap0");
    w.settle(2);
    assert_eq!(w.status("t"), ItemStatus::Applied);
    assert!(w.links(&pid).contains_key("t"));
}
