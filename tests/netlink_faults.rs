//! Real-kernel tests of issue 10 §3, netlink faults: an event socket that overflows (ENOBUFS)
//! or closes, a request that gets no answer (timeout), a request socket that fails (reopen),
//! dumps interrupted by concurrent changes (`NLM_F_DUMP_INTR`) and a link change refused with
//! EBUSY, at the executor and (lost events) at the agent.
//!
//! Provoked for real: the overflows (a burst of changes while nothing reads the event socket)
//! and interrupted dumps (thousands of addresses churned by another process). Injected with
//! the executor's test-only faults (`Executor::inject_netlink_fault`): a lost request (the
//! timeout), closing the sockets, a dump interrupted every time (the give-up path) and EBUSY,
//! which this kernel answers for no link type the agent manages. What follows an injected
//! fault (reopening, repeating, the down/change/up fallback) runs against the real kernel.
//!
//! Every test uses its own prefix and removes its namespaces, links and processes (guards),
//! also on failure.

mod agent_support;
mod common;
mod common_netns;

use agent_support::{veth_json, AgentProcess, TestEnv};
use common_netns::*;
use ipnet::IpNet;
use nsagent::kernel::{KernelEvent, KernelLink, NsId};
use nsagent::model::link::OwnedLink;
use nsagent::model::{MacAddr, NamespaceRef};
use nsagent::netlink::{Executor, Fault, KernelEvents, EVENT_RCVBUF_ENV};
use nsagent::scheduler::ops::l3::{L3Op, L3Outcome};
use nsagent::scheduler::ops::{EndSpec, FailureKind, LinkChanges, Op, OpOutcome};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn named(name: &str) -> NamespaceRef {
    NamespaceRef::Named(name.to_string())
}

fn net(s: &str) -> IpNet {
    s.parse().expect("address")
}

async fn resolve(ex: &mut Executor, name: &str) -> NsId {
    let op = Op::ResolveNs {
        reference: named(name),
        create: true,
    };
    match one(ex, op).await {
        OpOutcome::NsResolved { ns } => ns,
        other => panic!("resolve {name}: {other:?}"),
    }
}

/// An owned, up end named `name` (peer `peer`) in `ns`.
fn end(ns: NsId, name: &str, peer: &str) -> EndSpec {
    EndSpec {
        ns,
        name: name.to_string(),
        alias: keys().link_alias(name, peer),
        mtu: 0,
        mac: None,
        up: true,
        addresses: Vec::new(),
        master: 0,
    }
}

async fn create_pair(ex: &mut Executor, a: EndSpec, b: EndSpec) -> (KernelLink, KernelLink) {
    match one(ex, Op::CreatePair { a, b }).await {
        OpOutcome::PairCreated { a, b } => (a, b),
        other => panic!("create pair: {other:?}"),
    }
}

async fn dump(ex: &mut Executor, ns: NsId) -> Vec<KernelLink> {
    match one(ex, Op::DumpNs { ns }).await {
        OpOutcome::Dumped { links } => links,
        other => panic!("dump: {other:?}"),
    }
}

/// The error of a failed dump of `ns`.
async fn failed_dump(ex: &mut Executor, ns: NsId) -> String {
    match one(ex, Op::DumpNs { ns }).await {
        OpOutcome::Failed {
            kind: FailureKind::Other,
            error,
        } => error,
        other => panic!("a dump that should fail: {other:?}"),
    }
}

/// Waits (up to 10 s) for an event of `ns` that satisfies `wanted`.
async fn wait_event(
    events: &mut KernelEvents,
    ns: NsId,
    wanted: impl Fn(&KernelEvent) -> bool,
) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while let Ok(Some(batch)) = tokio::time::timeout_at(deadline, events.recv()).await {
        if batch.ns == ns && batch.events.iter().any(&wanted) {
            return true;
        }
    }
    false
}

/// The events of `ns` that arrive until none has come for 500 ms.
async fn drain(events: &mut KernelEvents, ns: NsId) -> Vec<KernelEvent> {
    let mut out = Vec::new();
    while let Ok(Some(batch)) =
        tokio::time::timeout(Duration::from_millis(500), events.recv()).await
    {
        if batch.ns == ns {
            out.extend(batch.events);
        }
    }
    out
}

/// Runs `ip [-force] -n ns -batch` of `lines` (blocking).
fn ip_batch(ns: &str, lines: &[String], force: bool) {
    let mut file = tempfile::NamedTempFile::new().expect("batch file");
    for line in lines {
        writeln!(file, "{line}").expect("batch file");
    }
    let path = file.path().to_str().expect("path").to_string();
    let mut args = Vec::new();
    if force {
        args.push("-force");
    }
    args.extend(["-n", ns, "-batch", &path]);
    if force {
        // Some lines fail on purpose (an address that is not there yet).
        try_run("ip", &args);
    } else {
        run("ip", &args);
    }
}

/// `n` changes of addresses and MTU of `link`: hundreds of events in a moment.
fn burst(link: &str, n: usize) -> Vec<String> {
    (0..n)
        .flat_map(|i| {
            [
                format!("addr add 10.250.{}.{}/32 dev {link}", i / 250, i % 250 + 1),
                format!("link set dev {link} mtu {}", 1300 + i % 100),
            ]
        })
        .collect()
}

/// The event socket of a namespace overflows when a burst of changes comes while nothing reads
/// it: the executor reports the lost events (`Overrun`) and goes on with the same socket.
/// A current-thread runtime: while this test's one thread runs `ip`, no task reads the socket.
#[tokio::test]
async fn an_overflowing_event_socket_reports_lost_events_and_keeps_working() {
    if !can_run("event_overflow") {
        return;
    }
    let p = prefix("o");
    let g = NsGuard::new(format!("{p}a"));
    let mut ex = executor().await;
    ex.set_event_buffer(1);
    let mut events = ex.take_events();
    let ns = resolve(&mut ex, g.name()).await;
    let link = format!("{p}0");
    let peer = format!("{p}1");
    ip(
        Some(g.name()),
        &["link", "add", &link, "type", "veth", "peer", "name", &peer],
    );

    ip_batch(g.name(), &burst(&link, 300), false);
    assert!(
        wait_event(&mut events, ns, |e| *e == KernelEvent::Overrun).await,
        "no Overrun after a burst into a full event socket"
    );

    // The socket survived the overflow: what happens next still arrives.
    ip(
        Some(g.name()),
        &["addr", "add", "10.251.0.1/32", "dev", &link],
    );
    let added = net("10.251.0.1/32");
    assert!(
        wait_event(&mut events, ns, |e| matches!(
            e,
            KernelEvent::Address { net, added: true, .. } if *net == added
        ))
        .await,
        "a change after the overflow arrives as an event"
    );
    let counters = ex.netlink_counters(ns).expect("open");
    assert_eq!(counters.events_resubscribed, 0, "{counters:?}");
    assert!(dump(&mut ex, ns).await.is_empty(), "nothing of ours there");
}

/// The events the agent takes of a namespace include everything the kernel queued until it
/// takes them, not only what its forwarder had read when it said there were some: otherwise
/// a change made in steps (a link created down, then set up) could be seen half-way.
/// A current-thread runtime: while this test's one thread runs `ip`, no task reads the socket.
#[tokio::test]
async fn taken_events_include_what_the_socket_holds() {
    if !can_run("taken_events") {
        return;
    }
    let p = prefix("q");
    let g = NsGuard::new(format!("{p}a"));
    let mut ex = executor().await;
    let mut events = ex.take_events();
    let ns = resolve(&mut ex, g.name()).await;
    let (a, b) = (format!("{p}0"), format!("{p}1"));
    ip(
        Some(g.name()),
        &["link", "add", &a, "type", "veth", "peer", "name", &b],
    );
    // The forwarder reads the creation and tells that events wait.
    tokio::time::sleep(Duration::from_millis(200)).await;
    ip(
        Some(g.name()),
        &["link", "set", "dev", &a, "alias", "second-step", "up"],
    );

    let batch = events.recv().await.expect("events");
    assert_eq!(batch.ns, ns);
    let latest = batch.events.iter().rev().find_map(|e| match e {
        KernelEvent::Link(l) if l.name == a => Some(l),
        _ => None,
    });
    assert!(
        latest.is_some_and(|l| l.up && l.alias.as_deref() == Some("second-step")),
        "the latest state of {a} is taken with the first: {:?}",
        batch.events
    );
    assert!(events.try_recv().is_none_or(|b| b.events.is_empty()));
}

/// Route and neighbour changes are followed only in namespaces whose routes and entries the
/// agent reads (nowhere else do they matter, and a group nobody follows costs the kernel
/// nothing); from the first read on they arrive as events.
#[tokio::test(flavor = "multi_thread")]
async fn route_changes_are_followed_once_routes_are_read() {
    if !can_run("route_events") {
        return;
    }
    let p = prefix("r");
    let g = NsGuard::new(format!("{p}a"));
    let mut ex = executor().await;
    let mut events = ex.take_events();
    let ns = resolve(&mut ex, g.name()).await;
    let (a, b) = (format!("{p}0"), format!("{p}1"));
    ip(
        Some(g.name()),
        &["link", "add", &a, "type", "veth", "peer", "name", &b],
    );
    ip(Some(g.name()), &["link", "set", "dev", &a, "up"]);
    let route_to = |dst: &str| {
        let dst = net(dst);
        move |e: &KernelEvent| matches!(e, KernelEvent::Route { route, added: true } if route.dst == dst)
    };
    let add_route = |dst: &str| {
        ip(
            Some(g.name()),
            &["route", "add", dst, "dev", &a, "proto", "199"],
        )
    };
    add_route("10.253.1.0/24");
    let before = drain(&mut events, ns).await;
    assert!(
        !before.iter().any(route_to("10.253.1.0/24")),
        "a route event before the routes were read: {before:?}"
    );

    let read = ex
        .execute_l3(vec![L3Op::Dump { ns, protocol: 199 }])
        .await
        .remove(0);
    assert!(matches!(read, L3Outcome::Dumped { .. }), "{read:?}");
    add_route("10.253.2.0/24");
    assert!(
        wait_event(&mut events, ns, route_to("10.253.2.0/24")).await,
        "a route added after the read arrives as an event"
    );
}

/// When both sockets of a namespace close (as after a read or send error), the event
/// subscription opens another socket and asks for a full read (`Overrun`), and a request
/// goes to a reopened socket: nothing was sent on the closed one, so it does not fail.
#[tokio::test(flavor = "multi_thread")]
async fn closed_sockets_are_reopened() {
    if !can_run("closed_sockets") {
        return;
    }
    let p = prefix("c");
    let g = NsGuard::new(format!("{p}a"));
    let mut ex = executor().await;
    let mut events = ex.take_events();
    let ns = resolve(&mut ex, g.name()).await;
    let (a, b) = (format!("{p}0"), format!("{p}1"));
    create_pair(&mut ex, end(ns, &a, "b"), end(ns, &b, "a")).await;
    assert_eq!(ex.netlink_counters(ns).expect("open").reopened, 0);

    assert!(ex.inject_netlink_fault(ns, Fault::CloseSockets).await);
    assert!(
        wait_event(&mut events, ns, |e| *e == KernelEvent::Overrun).await,
        "a closed event socket asks for a full read"
    );
    assert_eq!(ex.netlink_counters(ns).unwrap().events_resubscribed, 1);
    ip(Some(g.name()), &["link", "set", "dev", &a, "mtu", "1280"]);
    assert!(
        wait_event(&mut events, ns, |e| matches!(
            e,
            KernelEvent::Link(l) if l.name == a && l.mtu == 1280
        ))
        .await,
        "changes arrive on the new event socket"
    );

    let links = dump(&mut ex, ns).await;
    assert_eq!(links.len(), 2, "{links:?}");
    assert_eq!(ex.netlink_counters(ns).unwrap().reopened, 1);
}

/// A request that gets no answer fails after the request timeout with an error that names
/// the namespace; its socket is not trusted any more and the next request reopens it.
#[tokio::test(flavor = "multi_thread")]
async fn a_request_without_answer_times_out_and_its_socket_is_reopened() {
    if !can_run("request_timeout") {
        return;
    }
    let p = prefix("t");
    let g = NsGuard::new(format!("{p}a"));
    let mut ex = executor().await;
    ex.set_request_timeout(Duration::from_millis(300));
    let ns = resolve(&mut ex, g.name()).await;
    let (a, b) = (format!("{p}0"), format!("{p}1"));
    let (ka, _) = create_pair(&mut ex, end(ns, &a, "b"), end(ns, &b, "a")).await;

    assert!(ex.inject_netlink_fault(ns, Fault::DropRequests(1)).await);
    let error = failed_dump(&mut ex, ns).await;
    assert!(error.contains("timeout"), "{error}");
    assert!(error.contains(g.name()), "names the namespace: {error}");
    assert_eq!(ex.netlink_counters(ns).unwrap().reopened, 0);
    assert_eq!(dump(&mut ex, ns).await.len(), 2);
    assert_eq!(ex.netlink_counters(ns).unwrap().reopened, 1);

    // A write too: it fails, and the next one goes through a reopened socket.
    assert!(ex.inject_netlink_fault(ns, Fault::DropRequests(1)).await);
    let mtu = |m| Op::UpdateLink {
        ns,
        ifindex: ka.ifindex,
        changes: LinkChanges {
            mtu: Some(m),
            ..Default::default()
        },
    };
    match one(&mut ex, mtu(1400)).await {
        OpOutcome::Failed { error, .. } => {
            assert!(
                error.contains("timeout") && error.contains(g.name()),
                "{error}"
            )
        }
        other => panic!("update without answer: {other:?}"),
    }
    match one(&mut ex, mtu(1400)).await {
        OpOutcome::Updated { link } => assert_eq!(link.mtu, 1400),
        other => panic!("update after the reopen: {other:?}"),
    }
    assert_eq!(ex.netlink_counters(ns).unwrap().reopened, 2);
}

/// Another process that adds and removes addresses, again and again, until dropped.
struct Churn {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<usize>>,
}

impl Churn {
    /// Churns an IPv6 address on `link` in `ns`: the kernel puts a new IPv6 address at the
    /// head of the link's list, so a dump that is under way skips or repeats entries.
    fn start(ns: &str, link: &str) -> Churn {
        let lines: Vec<String> = (0..2000)
            .flat_map(|_| {
                [
                    format!("addr add 2001:db8:8::1/128 dev {link} nodad"),
                    format!("addr del 2001:db8:8::1/128 dev {link}"),
                ]
            })
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, ns) = (stop.clone(), ns.to_string());
        let thread = std::thread::spawn(move || {
            let mut rounds = 0;
            while !flag.load(Ordering::Relaxed) {
                ip_batch(&ns, &lines, true);
                rounds += 1;
            }
            rounds
        });
        Churn {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Churn {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Dumps of a namespace whose addresses another process churns: the kernel marks some of
/// them interrupted (`NLM_F_DUMP_INTR`, provoked for real), those are repeated, and no dump
/// result ever misses a link or an address that existed all along; a dump interrupted every
/// time fails rather than giving a partial list.
#[tokio::test(flavor = "multi_thread")]
async fn interrupted_dumps_are_repeated_and_never_read_partially() {
    if !can_run("dump_intr") {
        return;
    }
    let p = prefix("i");
    let g = NsGuard::new(format!("{p}a"));
    let mut ex = executor().await;
    let ns = resolve(&mut ex, g.name()).await;
    let (a, b) = (format!("{p}0"), format!("{p}1"));
    create_pair(&mut ex, end(ns, &a, "b"), end(ns, &b, "a")).await;
    let stable: Vec<IpNet> = (1..=2000)
        .map(|i| net(&format!("2001:db8:7::{i:x}/128")))
        .collect();
    let lines: Vec<String> = stable
        .iter()
        .map(|n| format!("addr add {n} dev {a} nodad"))
        .collect();
    ip_batch(g.name(), &lines, false);

    let churn = Churn::start(g.name(), &a);
    let started = Instant::now();
    let (mut complete, mut given_up) = (0, 0);
    while started.elapsed() < Duration::from_secs(60)
        && (complete < 20 || ex.netlink_counters(ns).unwrap().dumps_interrupted < 3)
    {
        match one(&mut ex, Op::DumpNs { ns }).await {
            OpOutcome::Dumped { links } => {
                let mut names: Vec<&str> = links.iter().map(|l| l.name.as_str()).collect();
                names.sort();
                assert_eq!(names, [a.as_str(), b.as_str()], "every owned link");
                let churned = links.iter().find(|l| l.name == a).expect("link a");
                let missing = stable
                    .iter()
                    .filter(|n| !churned.addresses.contains(n))
                    .count();
                assert_eq!(missing, 0, "addresses missing from a dump");
                complete += 1;
            }
            OpOutcome::Failed { error, .. } => {
                assert!(error.contains("interrupted"), "{error}");
                given_up += 1;
            }
            other => panic!("dump: {other:?}"),
        }
    }
    drop(churn);
    let counters = ex.netlink_counters(ns).unwrap();
    eprintln!("{complete} complete dumps, {given_up} given up, {counters:?}");
    assert!(
        counters.dumps_interrupted > 0,
        "no dump was interrupted: the churn never raced a dump"
    );
    // Up to 20 are tried within the minute; a loaded machine completes fewer, each of them
    // checked whole above.
    assert!(complete >= 5, "{complete} complete dumps");
    assert_eq!(counters.dumps_given_up, given_up);
}

/// A dump interrupted again and again is given up: the operation fails (the scheduler keeps
/// what it knew and reads again later) instead of reporting links as absent. Fewer
/// interruptions are repeated away.
#[tokio::test(flavor = "multi_thread")]
async fn a_dump_interrupted_every_time_fails_instead_of_reading_absent() {
    if !can_run("dump_give_up") {
        return;
    }
    let p = prefix("g");
    let g = NsGuard::new(format!("{p}a"));
    let mut ex = executor().await;
    let ns = resolve(&mut ex, g.name()).await;
    let (a, b) = (format!("{p}0"), format!("{p}1"));
    create_pair(&mut ex, end(ns, &a, "b"), end(ns, &b, "a")).await;

    ex.inject_netlink_fault(ns, Fault::InterruptDumps(2)).await;
    assert_eq!(
        dump(&mut ex, ns).await.len(),
        2,
        "repeated twice, then read"
    );
    let counters = ex.netlink_counters(ns).unwrap();
    assert_eq!(
        (counters.dumps_interrupted, counters.dumps_given_up),
        (2, 0)
    );

    ex.inject_netlink_fault(ns, Fault::InterruptDumps(5)).await;
    let error = failed_dump(&mut ex, ns).await;
    assert!(
        error.contains("interrupted by concurrent changes 5 times") && error.contains(g.name()),
        "{error}"
    );
    assert_eq!(ex.netlink_counters(ns).unwrap().dumps_given_up, 1);

    // The route and neighbour read too.
    ex.inject_netlink_fault(ns, Fault::InterruptDumps(5)).await;
    let l3 = ex
        .execute_l3(vec![L3Op::Dump { ns, protocol: 199 }])
        .await
        .remove(0);
    match l3 {
        L3Outcome::Failed { error, .. } => assert!(error.contains("interrupted"), "{error}"),
        other => panic!("route dump interrupted every time: {other:?}"),
    }
    assert_eq!(dump(&mut ex, ns).await.len(), 2, "read again later");
}

/// A created pair is reported exactly as the kernel then has it, both when the kernel echoes
/// the new link (since Linux 6.3; both ends' indexes come from the echo and each end is
/// finished in one round trip) and when it does not (older kernels, injected: both ends are
/// found by name).
#[tokio::test(flavor = "multi_thread")]
async fn a_created_pair_is_reported_as_the_kernel_has_it_with_or_without_echo() {
    if !can_run("echo") {
        return;
    }
    let p = prefix("e");
    let (ga, gb) = (NsGuard::new(format!("{p}a")), NsGuard::new(format!("{p}b")));
    let mut ex = executor().await;
    let na = resolve(&mut ex, ga.name()).await;
    let nb = resolve(&mut ex, gb.name()).await;
    // Indexes of the two namespaces apart, so that an end read by the wrong index shows.
    let (x, y) = (format!("{p}x"), format!("{p}y"));
    ip(
        Some(ga.name()),
        &["link", "add", &x, "type", "veth", "peer", "name", &y],
    );
    for (i, echoed) in [(0u8, true), (1, false)] {
        if !echoed {
            // The pair and the single links below (a fault armed longer does no harm).
            assert!(ex.inject_netlink_fault(na, Fault::IgnoreEchoes(3)).await);
        }
        let (a, b) = (format!("{p}a{i}"), format!("{p}b{i}"));
        let mut ea = end(na, &a, &b);
        ea.mtu = 1400;
        ea.addresses = vec![net(&format!("10.91.{i}.1/24")), net("fd91::1/64")];
        let mut eb = end(nb, &b, &a);
        // Echoed, both ends get a random MAC from the agent; the other time b has its own.
        eb.mac = (!echoed).then_some(MacAddr([0x02, 0, 0, 0x91, 0, i]));
        eb.addresses = vec![net(&format!("10.91.{i}.2/24"))];
        let (ka, kb) = create_pair(&mut ex, ea, eb).await;
        let vrf = OwnedLink {
            kind: "vrf",
            table: Some(1091 + u32::from(i)),
            default_mtu: 65575,
        };
        let mut singles = Vec::new();
        for (name, kind) in [("d", OwnedLink::plain("dummy")), ("v", vrf)] {
            if !common::kernel_has(ga.name(), kind.kind) {
                eprintln!("this kernel cannot make {} links: not tested", kind.kind);
                continue;
            }
            let mut single = end(na, &format!("{p}{name}{i}"), "");
            single.addresses = vec![net(&format!("10.92.{i}.1/32"))];
            singles.push((create_single(&mut ex, single, kind).await, na));
        }
        for (reported, ns) in [(ka, na), (kb, nb)].into_iter().chain(singles) {
            let read = dump(&mut ex, ns).await;
            let read = read.iter().find(|l| l.name == reported.name);
            assert_eq!(Some(&reported), read, "echoed: {echoed}");
        }
    }
}

async fn create_single(ex: &mut Executor, end: EndSpec, kind: OwnedLink) -> KernelLink {
    match one(ex, Op::CreateLink { end, kind }).await {
        OpOutcome::Created { link } => link,
        other => panic!("create link: {other:?}"),
    }
}

/// A running link whose driver refuses a change with EBUSY (injected: no link type of this
/// kernel that the agent manages does) is taken down around the change: the change is
/// applied, the link is up again, and the IPv6 address the kernel dropped while it was down
/// is back.
#[tokio::test(flavor = "multi_thread")]
async fn ebusy_on_a_running_link_is_applied_down_and_up_again() {
    if !can_run("ebusy") {
        return;
    }
    let p = prefix("b");
    let g = NsGuard::new(format!("{p}a"));
    let mut ex = executor().await;
    let ns = resolve(&mut ex, g.name()).await;
    let (a, b) = (format!("{p}0"), format!("{p}1"));
    let mut spec = end(ns, &a, "b");
    let v6 = net("fd81::1/64");
    spec.addresses = vec![net("10.81.0.1/24"), v6];
    let (ka, _) = create_pair(&mut ex, spec, end(ns, &b, "a")).await;
    let monitor = Monitor::start(g.name(), &b);

    ex.inject_netlink_fault(ns, Fault::BusyLinkChanges(1)).await;
    let mac = MacAddr([0x02, 0, 0, 0x81, 0, 0x01]);
    let changes = LinkChanges {
        mtu: Some(1400),
        mac: Some(mac),
        ..Default::default()
    };
    let op = Op::UpdateLink {
        ns,
        ifindex: ka.ifindex,
        changes,
    };
    let link = match one(&mut ex, op).await {
        OpOutcome::Updated { link } => link,
        other => panic!("update refused with EBUSY once: {other:?}"),
    };
    assert_eq!((link.mtu, link.mac, link.up), (1400, Some(mac), true));
    assert_eq!(link.addresses, vec![net("10.81.0.1/24"), v6]);
    let shown = ip(Some(g.name()), &["addr", "show", "dev", &a]);
    assert!(
        shown.contains("mtu 1400") && shown.contains(",UP") && shown.contains("fd81::1/64"),
        "{shown}"
    );
    // The fallback really ran: the link went down, the kernel dropped the IPv6 address, and
    // it was put back.
    let seen = monitor.stop();
    let step = |wanted: &dyn Fn(&str) -> bool| seen.lines().position(wanted);
    let down = step(&|l| l.contains(&format!(" {a}@")) && l.contains("state DOWN"));
    let dropped = step(&|l| l.starts_with("Deleted ") && l.contains("inet6 fd81::1/64"));
    let restored = step(&|l| !l.starts_with("Deleted ") && l.contains("inet6 fd81::1/64"));
    assert!(
        down.is_some() && dropped.is_some() && restored > dropped,
        "{seen}"
    );
}

/// `ip monitor link address` in a namespace, writing to a file, stopped when dropped.
struct Monitor {
    child: std::process::Child,
    output: tempfile::NamedTempFile,
}

impl Monitor {
    /// Starts the monitor in `ns` and waits until it reports changes (it sees an alias set
    /// on `link`).
    fn start(ns: &str, link: &str) -> Self {
        let output = tempfile::NamedTempFile::new().expect("monitor file");
        let child = std::process::Command::new("ip")
            .args(["-n", ns, "monitor", "link", "address"])
            .stdout(output.reopen().expect("monitor file"))
            .spawn()
            .expect("ip monitor");
        let monitor = Monitor { child, output };
        let deadline = Instant::now() + Duration::from_secs(10);
        for round in 0.. {
            let mtu = (1490 - round % 100).to_string();
            ip(Some(ns), &["link", "set", "dev", link, "mtu", &mtu]);
            std::thread::sleep(Duration::from_millis(50));
            if monitor.text().contains(&format!(" {link}@")) {
                break;
            }
            assert!(Instant::now() < deadline, "ip monitor reports nothing");
        }
        monitor
    }

    fn text(&self) -> String {
        std::fs::read_to_string(self.output.path()).expect("monitor file")
    }

    /// Stops the monitor; what it reported.
    fn stop(mut self) -> String {
        std::thread::sleep(Duration::from_millis(100));
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.text()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// End to end: while the agent is stopped (nothing reads its event sockets, which have a
/// test-sized buffer), hundreds of changes it does not care about overflow a namespace's
/// socket, and the MTU of the agent's link is changed last, so that its event is surely lost.
/// Once the agent runs again it learns of the loss, reads the namespace again and repairs the
/// MTU, with the periodic re-read off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_lost_in_an_event_overflow_is_repaired() {
    let Some(env) = TestEnv::new("l") else {
        return;
    };
    let (nsx, host) = (env.ns("x"), env.host("r1"));
    let endpoint = env.etcd.endpoint();
    let args = [
        "--etcd-endpoints",
        endpoint.as_str(),
        "--kernel-resync-interval-s",
        "0",
    ];
    let agent = AgentProcess::start_with(&env.label, &args, &[(EVENT_RCVBUF_ENV, "1")]);
    let mut r1: serde_json::Value = serde_json::from_str(&veth_json(
        "r1",
        &host,
        "r2",
        serde_json::json!({"type": "NAMED_NS", "name": nsx}),
        &["10.77.0.1/24"],
    ))
    .unwrap();
    r1["mtu"] = serde_json::json!(1400);
    env.put("interface", "r1", r1.to_string()).await;
    let ny = serde_json::json!({"type": "NAMED_NS", "name": env.ns("y")});
    let r2 = veth_json("r2", &env.host("r2"), "r1", ny, &["10.77.0.2/24"]);
    env.put("interface", "r2", r2).await;
    env.wait_status("interface", "r1", "applied", "").await;
    let mtu = || agent_support::link(Some(&nsx), &host).map(|l| l.mtu);
    assert_eq!(mtu(), Some(1400));
    tokio::time::sleep(Duration::from_millis(500)).await;

    let pid = nix::unistd::Pid::from_raw(agent.pid() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).expect("SIGSTOP");
    // Changes the agent ignores (the MTU of a link that is not its own), so that only the
    // loss can make it read the namespace again.
    let mut lines: Vec<String> = (0..300)
        .map(|i| format!("link set dev lo mtu {}", 1300 + i % 100))
        .collect();
    lines.push(format!("link set dev {host} mtu 1300"));
    ip_batch(&nsx, &lines, false);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).expect("SIGCONT");

    let repaired =
        common::wait_until_async(Duration::from_secs(10), Duration::from_millis(20), || {
            mtu() == Some(1400)
        })
        .await;
    assert!(repaired, "MTU {:?}; log:\n{}", mtu(), agent.log());
    assert!(
        agent.log().contains("kernel events lost"),
        "{}",
        agent.log()
    );
}

/// A batch that writes many times to one namespace does it without listening to that
/// namespace's events (their echo is of no use), then reports them lost so that the
/// namespace is read again; afterwards the socket listens again. A batch of a few writes
/// keeps listening.
#[tokio::test(flavor = "multi_thread")]
async fn a_large_batch_is_made_deaf_and_its_namespace_read_again() {
    if !can_run("deaf_batch") {
        return;
    }
    let p = prefix("d");
    let g = NsGuard::new(format!("{p}a"));
    let mut ex = executor().await;
    let mut events = ex.take_events();
    let ns = resolve(&mut ex, g.name()).await;
    let (a, b) = (format!("{p}x0"), format!("{p}y0"));
    create_pair(&mut ex, end(ns, &a, &b), end(ns, &b, &a)).await;
    let few = drain(&mut events, ns).await;
    assert!(
        !few.is_empty() && !few.contains(&KernelEvent::Overrun),
        "a small batch is heard: {few:?}"
    );

    let ops: Vec<Op> = (1..=4)
        .map(|i| {
            let (a, b) = (format!("{p}x{i}"), format!("{p}y{i}"));
            Op::CreatePair {
                a: end(ns, &a, &b),
                b: end(ns, &b, &a),
            }
        })
        .collect();
    let outcomes = ex.execute(ops).await;
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, OpOutcome::PairCreated { .. })),
        "{outcomes:?}"
    );
    assert!(
        wait_event(&mut events, ns, |e| *e == KernelEvent::Overrun).await,
        "after a batch of 8 writes in one namespace, it is read again"
    );
    ip(Some(g.name()), &["link", "set", "dev", &a, "mtu", "1280"]);
    assert!(
        wait_event(&mut events, ns, |e| matches!(
            e,
            KernelEvent::Link(l) if l.name == a && l.mtu == 1280
        ))
        .await,
        "the namespace is heard again after the batch"
    );
}
