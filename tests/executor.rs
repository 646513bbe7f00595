//! Real-kernel tests of the namespace layer and the netlink executor (run as root).
//!
//! Every test uses its own short prefix (`nx<pid%1000><tag>`) for namespaces and links and
//! removes what it made through RAII guards, so tests can run in parallel and after a failure.

mod common_netns;

use common_netns::*;
use ipnet::IpNet;
use nsagent::kernel::{KernelLink, NsId};
use nsagent::model::{MacAddr, NamespaceRef};
use nsagent::netlink::Executor;
use nsagent::netns::{self, NsError};
use nsagent::scheduler::ops::{EndSpec, FailureKind, LinkChanges, Op, OpOutcome};
use std::path::PathBuf;
use std::time::{Duration, Instant};

async fn resolve(ex: &mut Executor, reference: NamespaceRef, create: bool) -> NsId {
    match one(
        ex,
        Op::ResolveNs {
            reference: reference.clone(),
            create,
        },
    )
    .await
    {
        OpOutcome::NsResolved { ns } => ns,
        other => panic!("resolve {reference}: {other:?}"),
    }
}

fn named(name: &str) -> NamespaceRef {
    NamespaceRef::Named(name.to_string())
}

fn net(s: &str) -> IpNet {
    s.parse().expect("address")
}

fn end(ns: NsId, name: &str, peer: &str) -> EndSpec {
    EndSpec {
        ns,
        name: name.to_string(),
        alias: keys().link_alias(name, peer),
        mtu: 0,
        mac: None,
        up: false,
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

/// Polls `cond` every 20 ms for up to `secs` seconds.
fn eventually(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every long-lived thread of this process (tokio workers, the blocking pool) is in the
/// initial network namespace. The short-lived threads that enter namespaces by design
/// (`netns-worker`, `netns-create`, possibly from a test running in parallel) are skipped, and
/// so is a thread that exits between listing and reading.
fn all_threads_in_initial_ns() -> bool {
    let me = netns::current_id(&NamespaceRef::Default);
    std::fs::read_dir("/proc/self/task")
        .expect("tasks")
        .flatten()
        .all(|t| {
            let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
            if matches!(comm.trim(), "netns-worker" | "netns-create") {
                return true;
            }
            match netns::current_id(&NamespaceRef::File(t.path().join("ns/net"))) {
                None => true,
                id => id == me,
            }
        })
}

#[tokio::test(flavor = "multi_thread")]
async fn resolve_named_creates_once_and_aliases_share_an_id() {
    if !can_run("resolve_named") {
        return;
    }
    let p = prefix("r");
    let guard = NsGuard::new(format!("{p}a"));
    let name = guard.name().to_string();
    let mut ex = executor().await;

    // Without create: missing.
    let missing = one(
        &mut ex,
        Op::ResolveNs {
            reference: named(&name),
            create: false,
        },
    )
    .await;
    assert_eq!(
        missing,
        OpOutcome::NsUnavailable {
            invalid: false,
            reason: format!("/var/run/netns/{name} does not exist")
        }
    );

    // Concurrent creates of one name: one namespace, no failure.
    let outcomes = ex
        .execute(vec![
            Op::ResolveNs {
                reference: named(&name),
                create: true,
            },
            Op::ResolveNs {
                reference: named(&name),
                create: true,
            },
            Op::ResolveNs {
                reference: named(&name),
                create: true,
            },
        ])
        .await;
    let ids: Vec<NsId> = outcomes
        .iter()
        .map(|o| match o {
            OpOutcome::NsResolved { ns } => *ns,
            other => panic!("concurrent create: {other:?}"),
        })
        .collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    assert!(ip(None, &["netns", "list"]).contains(&name));

    // The same namespace through its file and through a process inside it.
    let file = PathBuf::from(format!("/var/run/netns/{name}"));
    assert_eq!(
        resolve(&mut ex, NamespaceRef::File(file), false).await,
        ids[0]
    );
    let mut child = std::process::Command::new("ip")
        .args(["netns", "exec", &name, "sleep", "30"])
        .spawn()
        .expect("spawn");
    let pid_ref = NamespaceRef::Pid(child.id());
    let entered = eventually(5, || netns::current_id(&pid_ref) == Some(ids[0]));
    let by_pid = if entered {
        Some(resolve(&mut ex, pid_ref, false).await)
    } else {
        None
    };
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(by_pid, Some(ids[0]), "process in the namespace");

    // The default namespace is the process's own, and differs.
    let default = resolve(&mut ex, NamespaceRef::Default, false).await;
    assert_ne!(default, ids[0]);
    assert_eq!(Some(default), netns::current_id(&NamespaceRef::Default));
    assert!(all_threads_in_initial_ns());
}

#[tokio::test(flavor = "multi_thread")]
async fn resolve_reports_missing_and_non_namespaces() {
    if !can_run("resolve_errors") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let plain = dir.path().join("plain");
    std::fs::write(&plain, b"").expect("write");
    match netns::resolve(&NamespaceRef::File(plain.clone()), false) {
        Err(NsError::NotANamespace(m)) => {
            assert_eq!(m, format!("{} is not a network namespace", plain.display()))
        }
        other => panic!("regular file: {other:?}"),
    }
    // nsfs, but a mount namespace.
    let mnt = PathBuf::from("/proc/self/ns/mnt");
    assert!(matches!(
        netns::resolve(&NamespaceRef::File(mnt), false),
        Err(NsError::NotANamespace(_))
    ));
    let pid_max: u32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .expect("pid_max")
        .trim()
        .parse()
        .expect("number");
    match netns::resolve(&NamespaceRef::Pid(pid_max + 1), false) {
        Err(NsError::Missing(m)) => {
            assert_eq!(m, format!("process {} does not exist", pid_max + 1))
        }
        other => panic!("pid: {other:?}"),
    }
    let missing = dir.path().join("missing");
    assert!(matches!(
        netns::resolve(&NamespaceRef::File(missing.clone()), true),
        Err(NsError::Missing(_))
    ));
    assert!(matches!(
        netns::resolve(&NamespaceRef::Microservice("m1".into()), true),
        Err(NsError::MicroserviceNotRunning(_))
    ));
    assert_eq!(netns::current_id(&NamespaceRef::File(missing)), None);
    assert_eq!(netns::current_id(&NamespaceRef::File(plain)), None);
    assert_eq!(
        netns::current_id(&NamespaceRef::Named(format!("{}-none", prefix("e")))),
        None
    );

    // Through the executor: the reason is the error text.
    let mut ex = executor().await;
    let out = one(
        &mut ex,
        Op::ResolveNs {
            reference: NamespaceRef::Pid(pid_max + 1),
            create: false,
        },
    )
    .await;
    assert_eq!(
        out,
        OpOutcome::NsUnavailable {
            invalid: false,
            reason: format!("process {} does not exist", pid_max + 1)
        }
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn create_pair_across_two_namespaces() {
    if !can_run("create_pair") {
        return;
    }
    let p = prefix("c");
    let (ga, gb) = (NsGuard::new(format!("{p}a")), NsGuard::new(format!("{p}b")));
    let mut ex = executor().await;
    let na = resolve(&mut ex, named(ga.name()), true).await;
    let nb = resolve(&mut ex, named(gb.name()), true).await;
    let (an, bn) = (format!("{p}0"), format!("{p}1"));
    let mac_a = MacAddr([0x02, 0, 0, 0x12, 0x34, 0x56]);
    let mac_b = MacAddr([0x02, 0, 0, 0x12, 0x34, 0x57]);
    let mut a = end(na, &an, &bn);
    a.mtu = 1400;
    a.mac = Some(mac_a);
    a.up = true;
    a.addresses = vec![net("10.77.0.1/24"), net("fd77::1/64")];
    let mut b = end(nb, &bn, &an);
    b.mtu = 1400;
    b.mac = Some(mac_b);
    b.up = true;
    b.addresses = vec![net("10.77.0.2/24"), net("fd77::2/64")];
    let (ka, kb) = create_pair(&mut ex, a.clone(), b.clone()).await;

    let group = keys().default_link_group();
    for (k, spec) in [(&ka, &a), (&kb, &b)] {
        assert_eq!(k.name, spec.name);
        assert_eq!(k.alias.as_deref(), Some(spec.alias.as_str()));
        assert_eq!(k.group, group);
        assert_eq!(k.mtu, 1400);
        assert_eq!(k.mac, spec.mac);
        assert!(k.up);
        let mut want = spec.addresses.clone();
        want.sort();
        assert_eq!(k.addresses, want);
    }

    // What `ip` sees.
    for (ns, spec) in [(ga.name(), &a), (gb.name(), &b)] {
        let link = ip(Some(ns), &["-d", "link", "show", "dev", &spec.name]);
        // iproute2 prints groups as signed numbers.
        assert!(link.contains(&format!("group {}", group as i32)), "{link}");
        assert!(link.contains(&format!("alias {}", spec.alias)), "{link}");
        assert!(link.contains(&spec.mac.expect("mac").to_string()), "{link}");
        assert!(link.contains("mtu 1400"), "{link}");
        assert!(link.contains("veth"), "{link}");
        assert!(link.contains(",UP"), "{link}");
        // One queue each way, not one per CPU (see `veth::QUEUES`).
        assert!(link.contains("numtxqueues 1 numrxqueues 1"), "{link}");
        let addrs = ip(Some(ns), &["addr", "show", "dev", &spec.name]);
        for a in &spec.addresses {
            assert!(addrs.contains(&a.to_string()), "{addrs}");
        }
    }
    assert!(
        !link_exists(None, &an) && !link_exists(None, &bn),
        "nothing in the default ns"
    );

    // Traffic flows (IPv6 without DAD delay).
    assert!(ping_in(ga.name(), "10.77.0.2"), "ping 10.77.0.2");
    assert!(ping_in(gb.name(), "fd77::1"), "ping fd77::1");
    assert!(all_threads_in_initial_ns());
}

#[tokio::test(flavor = "multi_thread")]
async fn create_pair_with_one_end_in_the_default_namespace() {
    if !can_run("create_pair_default") {
        return;
    }
    let p = prefix("d");
    let gb = NsGuard::new(format!("{p}b"));
    let host = format!("{p}h");
    let _host_guard = LinkGuard {
        ns: None,
        name: host.clone(),
    };
    let mut ex = executor().await;
    let nd = resolve(&mut ex, NamespaceRef::Default, false).await;
    let nb = resolve(&mut ex, named(gb.name()), true).await;
    let mut a = end(nd, &host, "peer");
    a.addresses = vec![net("10.78.0.1/30")];
    let mut b = end(nb, &format!("{p}c"), &host);
    b.up = true;
    let (ka, kb) = create_pair(&mut ex, a.clone(), b.clone()).await;
    assert!(!ka.up && kb.up);
    assert_eq!(ka.addresses, vec![net("10.78.0.1/30")]);
    assert!(link_exists(None, &host));
    assert!(link_exists(Some(gb.name()), &b.name));
    let shown = ip(None, &["-d", "link", "show", "dev", &host]);
    assert!(shown.contains(&format!("alias {}", a.alias)), "{shown}");

    // Deleting one end removes both; deleting again is fine.
    let del = Op::DeleteLink {
        ns: nd,
        ifindex: ka.ifindex,
        name: host.clone(),
    };
    assert_eq!(one(&mut ex, del.clone()).await, OpOutcome::Deleted);
    assert!(!link_exists(None, &host));
    assert!(eventually(2, || !link_exists(Some(gb.name()), &b.name)));
    assert_eq!(one(&mut ex, del).await, OpOutcome::Deleted);
}

#[tokio::test(flavor = "multi_thread")]
async fn create_pair_conflicts_with_unowned_links() {
    if !can_run("conflict") {
        return;
    }
    let p = prefix("x");
    let (ga, gb) = (NsGuard::new(format!("{p}a")), NsGuard::new(format!("{p}b")));
    let mut ex = executor().await;
    let na = resolve(&mut ex, named(ga.name()), true).await;
    let nb = resolve(&mut ex, named(gb.name()), true).await;
    let taken = format!("{p}0");
    let other = format!("{p}5");
    ip(
        Some(gb.name()),
        &[
            "link", "add", &taken, "type", "veth", "peer", "name", &other,
        ],
    );

    let out = one(
        &mut ex,
        Op::CreatePair {
            a: end(na, &format!("{p}1"), &taken),
            b: end(nb, &taken, "x"),
        },
    )
    .await;
    match out {
        OpOutcome::Failed {
            kind: FailureKind::Conflict,
            error,
        } => {
            assert!(
                error.contains(&format!("link {taken} already exists in")),
                "{error}"
            );
            assert!(error.contains(gb.name()), "{error}");
            assert!(error.contains("not owned by this agent"), "{error}");
        }
        other => panic!("conflict: {other:?}"),
    }
    // Never half a pair.
    assert!(!link_exists(Some(ga.name()), &format!("{p}1")));

    // A name taken by our own link is not a conflict.
    let (ka, _) = create_pair(
        &mut ex,
        end(na, &format!("{p}2"), "y"),
        end(nb, &format!("{p}3"), "z"),
    )
    .await;
    let again = one(
        &mut ex,
        Op::CreatePair {
            a: end(na, &format!("{p}2"), "y"),
            b: end(nb, &format!("{p}4"), "z"),
        },
    )
    .await;
    match again {
        OpOutcome::Failed {
            kind: FailureKind::Other,
            error,
        } => {
            assert!(error.contains("owned by this agent"), "{error}")
        }
        other => panic!("own link: {other:?}"),
    }
    assert!(!link_exists(Some(gb.name()), &format!("{p}4")));
    assert_eq!(dump(&mut ex, na).await.len(), 1);
    assert_eq!(dump(&mut ex, na).await[0].ifindex, ka.ifindex);
}

#[tokio::test(flavor = "multi_thread")]
async fn dump_returns_owned_links_only() {
    if !can_run("dump") {
        return;
    }
    let p = prefix("u");
    let (ga, gb) = (NsGuard::new(format!("{p}a")), NsGuard::new(format!("{p}b")));
    let mut ex = executor().await;
    let na = resolve(&mut ex, named(ga.name()), true).await;
    let nb = resolve(&mut ex, named(gb.name()), true).await;
    let mut a = end(na, &format!("{p}0"), "b");
    a.addresses = vec![net("10.79.0.1/24"), net("fd79::1/64"), net("10.79.1.1/24")];
    a.up = true;
    let (ka, _) = create_pair(&mut ex, a, end(nb, &format!("{p}1"), "a")).await;
    // Not owned: a plain pair, one end marked by another agent's alias.
    let (u2, u3) = (format!("{p}2"), format!("{p}3"));
    ip(
        Some(ga.name()),
        &["link", "add", &u2, "type", "veth", "peer", "name", &u3],
    );
    ip(
        Some(ga.name()),
        &["link", "set", &u3, "alias", "/vnf-agent/other/x/y"],
    );
    // Owned through the alias alone (e.g. made by an older agent).
    let (u4, u5) = (format!("{p}4"), format!("{p}5"));
    ip(
        Some(ga.name()),
        &["link", "add", &u4, "type", "veth", "peer", "name", &u5],
    );
    let alias = keys().link_alias("legacy", "peer");
    ip(
        Some(ga.name()),
        &["link", "set", &format!("{p}4"), "alias", &alias],
    );

    let links = dump(&mut ex, na).await;
    let names: Vec<&str> = links.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, vec![format!("{p}0"), format!("{p}4")]);
    assert_eq!(links[0], ka);
    // Sorted, without fe80::.
    let mut want = vec![net("10.79.0.1/24"), net("10.79.1.1/24"), net("fd79::1/64")];
    want.sort();
    assert_eq!(links[0].addresses, want);
    assert_eq!(links[1].alias.as_deref(), Some(alias.as_str()));
    assert_eq!(links[1].group, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn update_link_in_place_keeps_the_index() {
    if !can_run("update") {
        return;
    }
    let p = prefix("p");
    let (ga, gb) = (NsGuard::new(format!("{p}a")), NsGuard::new(format!("{p}b")));
    let mut ex = executor().await;
    let na = resolve(&mut ex, named(ga.name()), true).await;
    let nb = resolve(&mut ex, named(gb.name()), true).await;
    let mut a = end(na, &format!("{p}0"), "b");
    a.up = true;
    a.addresses = vec![net("10.80.0.1/24"), net("fd80::1/64")];
    let mut b = end(nb, &format!("{p}1"), "a");
    b.up = true;
    let (ka, _) = create_pair(&mut ex, a, b).await;

    // Rename while up, plus alias, MTU, MAC and addresses.
    let renamed = format!("{p}9");
    let mac = MacAddr([0x02, 0, 0, 0xab, 0xcd, 0xef]);
    let changes = LinkChanges {
        rename: Some(renamed.clone()),
        alias: Some(keys().link_alias("renamed", "b")),
        mtu: Some(1300),
        mac: Some(mac),
        up: None,
        master: None,
        add_addresses: vec![net("10.80.1.1/24")],
        del_addresses: vec![net("10.80.0.1/24")],
        group: None,
        address_mark: None,
    };
    let link = match one(
        &mut ex,
        Op::UpdateLink {
            ns: na,
            ifindex: ka.ifindex,
            changes,
        },
    )
    .await
    {
        OpOutcome::Updated { link } => link,
        other => panic!("update: {other:?}"),
    };
    assert_eq!(link.ifindex, ka.ifindex);
    assert_eq!(link.name, renamed);
    assert_eq!(link.alias, Some(keys().link_alias("renamed", "b")));
    assert_eq!(link.mtu, 1300);
    assert_eq!(link.mac, Some(mac));
    assert!(link.up);
    assert_eq!(link.addresses, vec![net("10.80.1.1/24"), net("fd80::1/64")]);
    let shown = ip(Some(ga.name()), &["addr", "show", "dev", &renamed]);
    assert!(
        shown.contains("mtu 1300") && shown.contains("10.80.1.1/24"),
        "{shown}"
    );
    assert!(!shown.contains("10.80.0.1/24"), "{shown}");

    // Down.
    let down = LinkChanges {
        up: Some(false),
        ..Default::default()
    };
    match one(
        &mut ex,
        Op::UpdateLink {
            ns: na,
            ifindex: ka.ifindex,
            changes: down,
        },
    )
    .await
    {
        OpOutcome::Updated { link } => {
            assert!(!link.up);
            assert_eq!(link.ifindex, ka.ifindex);
        }
        other => panic!("down: {other:?}"),
    }
    assert!(!ip(Some(ga.name()), &["link", "show", "dev", &renamed]).contains(",UP"));

    // A link that is gone.
    let gone = LinkChanges {
        mtu: Some(1200),
        ..Default::default()
    };
    match one(
        &mut ex,
        Op::UpdateLink {
            ns: na,
            ifindex: 99_999,
            changes: gone,
        },
    )
    .await
    {
        OpOutcome::Failed {
            kind: FailureKind::LinkGone,
            error,
        } => {
            assert!(
                error.contains(ga.name()) && error.contains("ENODEV"),
                "{error}"
            )
        }
        other => panic!("gone: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn vanished_namespace_is_released_and_its_pair_disappears() {
    if !can_run("vanished") {
        return;
    }
    let p = prefix("v");
    let (ga, gb) = (NsGuard::new(format!("{p}a")), NsGuard::new(format!("{p}b")));
    let mut ex = executor().await;
    let na = resolve(&mut ex, named(ga.name()), true).await;
    let nb = resolve(&mut ex, named(gb.name()), true).await;
    let peer = format!("{p}1");
    create_pair(&mut ex, end(na, &format!("{p}0"), "b"), end(nb, &peer, "a")).await;
    assert!(ex.vanished_namespaces().is_empty());

    ip(None, &["netns", "del", ga.name()]);
    // Our descriptor and socket still pin the namespace, so the peer is still there.
    std::thread::sleep(Duration::from_millis(200));
    assert!(link_exists(Some(gb.name()), &peer));

    assert_eq!(ex.vanished_namespaces(), vec![named(ga.name())]);
    assert!(ex.vanished_namespaces().is_empty());
    assert!(
        eventually(10, || !link_exists(Some(gb.name()), &peer)),
        "peer still exists: namespace not freed"
    );
    match one(&mut ex, Op::DumpNs { ns: na }).await {
        OpOutcome::Failed {
            kind: FailureKind::NamespaceGone,
            ..
        } => {}
        other => panic!("dump of a released namespace: {other:?}"),
    }
    assert!(dump(&mut ex, nb).await.is_empty());

    // Explicit release.
    assert_eq!(
        one(&mut ex, Op::ReleaseNs { ns: nb }).await,
        OpOutcome::Released
    );
    assert!(matches!(
        one(&mut ex, Op::DumpNs { ns: nb }).await,
        OpOutcome::Failed {
            kind: FailureKind::NamespaceGone,
            ..
        }
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn many_pairs_in_one_batch() {
    if !can_run("batch") {
        return;
    }
    let p = prefix("m");
    let guards: Vec<NsGuard> = (0..4).map(|i| NsGuard::new(format!("{p}{i}"))).collect();
    let mut ex = executor().await;
    let resolved = ex
        .execute(
            guards
                .iter()
                .map(|g| Op::ResolveNs {
                    reference: named(g.name()),
                    create: true,
                })
                .collect(),
        )
        .await;
    let ids: Vec<NsId> = resolved
        .iter()
        .map(|o| match o {
            OpOutcome::NsResolved { ns } => *ns,
            other => panic!("{other:?}"),
        })
        .collect();
    let ops: Vec<Op> = (0..24)
        .map(|i| {
            let (x, y) = (ids[i % 4], ids[(i + 1) % 4]);
            let mut a = end(x, &format!("{p}a{i}"), "b");
            a.mac = Some(MacAddr([0x02, 0, 0, 0, 1, i as u8]));
            a.mtu = 1000 + i as u32;
            a.up = true;
            let mut b = end(y, &format!("{p}b{i}"), "a");
            b.mac = Some(MacAddr([0x02, 0, 0, 0, 2, i as u8]));
            Op::CreatePair { a, b }
        })
        .collect();
    let outcomes = ex.execute(ops).await;
    for (i, o) in outcomes.iter().enumerate() {
        match o {
            OpOutcome::PairCreated { a, b } => {
                assert_eq!(a.name, format!("{p}a{i}"));
                assert_eq!(a.mac, Some(MacAddr([0x02, 0, 0, 0, 1, i as u8])));
                assert_eq!(a.mtu, 1000 + i as u32);
                assert_eq!(b.name, format!("{p}b{i}"));
                assert!(link_exists(Some(guards[(i + 1) % 4].name()), &b.name));
            }
            other => panic!("pair {i}: {other:?}"),
        }
    }
    let total: usize = {
        let dumps = ex
            .execute(ids.iter().map(|ns| Op::DumpNs { ns: *ns }).collect())
            .await;
        dumps
            .iter()
            .map(|d| match d {
                OpOutcome::Dumped { links } => links.len(),
                other => panic!("{other:?}"),
            })
            .sum()
    };
    assert_eq!(total, 48);
    assert!(all_threads_in_initial_ns());
}
