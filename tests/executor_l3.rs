//! Real-kernel tests of the executor's route and neighbour operations (run as root).
//!
//! Every test works inside its own namespaces (prefix `nx<pid%1000><tag>`), which RAII guards
//! remove, also after a failure. Nothing outside them is touched.

mod common_netns;

use common_netns::*;
use ipnet::IpNet;
use nsagent::kernel::{KernelLink, KernelNeighbour, KernelRoute, LinkPresence, NsId};
use nsagent::model::{MacAddr, NamespaceRef};
use nsagent::netlink::Executor;
use nsagent::scheduler::ops::l3::{L3Op, L3Outcome};
use nsagent::scheduler::ops::{EndSpec, FailureKind, Op, OpOutcome};
use serde_json::Value;
use std::net::IpAddr;

/// The routing-protocol number of the tests (unassigned in `rtnetlink.h`).
const PROTO: u8 = 201;
const MAIN: u32 = 254;
const SCOPE_LINK: u8 = 253;
const NUD_REACHABLE: u16 = 0x02;
const NUD_STALE: u16 = 0x04;
const NUD_NOARP: u16 = 0x40;
const NUD_PERMANENT: u16 = 0x80;

async fn l3(ex: &mut Executor, op: L3Op) -> L3Outcome {
    ex.execute_l3(vec![op]).await.remove(0)
}

fn net(s: &str) -> IpNet {
    s.parse().expect("prefix")
}

fn addr(s: &str) -> IpAddr {
    s.parse().expect("address")
}

fn mac(last: u8) -> MacAddr {
    MacAddr([0x02, 0, 0, 0, 0x81, last])
}

/// Two namespaces joined by a veth pair: `a` (10.81.0.1/24, fd81::1/64) in `ns`, its peer
/// (10.81.0.2/24, fd81::2/64) in the other one; both up.
struct Setup {
    ex: Executor,
    guard: NsGuard,
    _peer_guard: NsGuard,
    ns: NsId,
    a: KernelLink,
}

impl Setup {
    fn name(&self) -> &str {
        self.guard.name()
    }
}

async fn setup(tag: &str) -> Setup {
    let p = prefix(tag);
    let (ga, gb) = (NsGuard::new(format!("{p}a")), NsGuard::new(format!("{p}b")));
    let mut ex = executor().await;
    let mut ids = Vec::new();
    for g in [&ga, &gb] {
        match one(
            &mut ex,
            Op::ResolveNs {
                reference: NamespaceRef::Named(g.name().to_string()),
                create: true,
            },
        )
        .await
        {
            OpOutcome::NsResolved { ns } => ids.push(ns),
            other => panic!("resolve {}: {other:?}", g.name()),
        }
    }
    let end = |ns: NsId, name: String, addresses: &[&str]| EndSpec {
        ns,
        alias: keys().link_alias(&name, "peer"),
        name,
        mtu: 0,
        mac: None,
        up: true,
        addresses: addresses.iter().map(|a| net(a)).collect(),
        master: 0,
    };
    let a = end(ids[0], format!("{p}0"), &["10.81.0.1/24", "fd81::1/64"]);
    let b = end(ids[1], format!("{p}1"), &["10.81.0.2/24", "fd81::2/64"]);
    let a = match one(&mut ex, Op::CreatePair { a, b }).await {
        OpOutcome::PairCreated { a, .. } => a,
        other => panic!("create pair: {other:?}"),
    };
    Setup {
        ex,
        guard: ga,
        _peer_guard: gb,
        ns: ids[0],
        a,
    }
}

async fn dump(
    ex: &mut Executor,
    ns: NsId,
) -> (Vec<KernelRoute>, Vec<KernelNeighbour>, Vec<LinkPresence>) {
    match l3(
        ex,
        L3Op::Dump {
            ns,
            protocol: PROTO,
        },
    )
    .await
    {
        L3Outcome::Dumped {
            routes,
            neighbours,
            links,
        } => (routes, neighbours, links),
        other => panic!("dump: {other:?}"),
    }
}

/// A route of the tests' protocol.
fn route(table: u32, dst: &str, gw: Option<&str>, metric: u32, oif: u32) -> KernelRoute {
    KernelRoute {
        table,
        dst: net(dst),
        gateway: gw.map(addr),
        source: None,
        metric,
        scope: 0,
        oif,
        protocol: PROTO,
    }
}

/// `ip -j -n ns -4|-6 route show table all proto PROTO` of both families.
fn ip_routes(ns: &str) -> Vec<Value> {
    let proto = PROTO.to_string();
    let mut all = Vec::new();
    for family in ["-4", "-6"] {
        let out = ip(
            Some(ns),
            &[
                "-j", family, "route", "show", "table", "all", "proto", &proto,
            ],
        );
        let parsed: Value = serde_json::from_str(&out).expect("ip -j route");
        all.extend(parsed.as_array().cloned().unwrap_or_default());
    }
    all
}

/// The entries of `ip -j route` with destination `dst` (as `ip` prints it).
fn ip_routes_to<'a>(routes: &'a [Value], dst: &str) -> Vec<&'a Value> {
    routes.iter().filter(|r| r["dst"] == dst).collect()
}

/// `ip -j -n ns neigh show nud all` (both families, every state, whoever made them).
fn ip_neighbours(ns: &str) -> Vec<Value> {
    let out = ip(Some(ns), &["-j", "neigh", "show", "nud", "all"]);
    let parsed: Value = serde_json::from_str(&out).expect("ip -j neigh");
    parsed.as_array().cloned().unwrap_or_default()
}

fn ip_neighbour<'a>(all: &'a [Value], dst: &str) -> Option<&'a Value> {
    all.iter().find(|n| n["dst"] == dst)
}

fn expect_done(outcomes: &[L3Outcome]) {
    for (i, o) in outcomes.iter().enumerate() {
        assert_eq!(o, &L3Outcome::Done, "op {i}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn routes_add_dump_replace_delete() {
    if !can_run("routes") {
        return;
    }
    let mut s = setup("r").await;
    let ns = s.ns;
    let a = s.a.ifindex;
    let name = s.name().to_string();
    // Routes made by hand (`proto static`, `proto boot`) and the kernel's connected ones are
    // not ours.
    ip(
        Some(&name),
        &[
            "route",
            "add",
            "10.90.0.0/16",
            "via",
            "10.81.0.2",
            "proto",
            "static",
        ],
    );
    ip(
        Some(&name),
        &[
            "route",
            "add",
            "10.91.0.0/16",
            "via",
            "10.81.0.2",
            "table",
            "100",
        ],
    );
    ip(
        Some(&name),
        &[
            "-6",
            "route",
            "add",
            "fd90::/64",
            "via",
            "fd81::2",
            "proto",
            "static",
        ],
    );

    let mut with_src = route(MAIN, "10.82.0.0/16", Some("10.81.0.2"), 0, a);
    with_src.source = Some(addr("10.81.0.1"));
    let mut link_scope = route(100, "10.83.0.0/24", None, 10, a);
    link_scope.scope = SCOPE_LINK;
    let default4 = route(MAIN, "0.0.0.0/0", Some("10.81.0.2"), 50, a);
    let big_table = route(1000, "10.84.0.0/16", Some("10.81.0.2"), 0, 0);
    let mut v6_src = route(MAIN, "fd82::/64", Some("fd81::2"), 0, a);
    v6_src.source = Some(addr("fd81::1"));
    let default6 = route(100, "::/0", Some("fd81::2"), 300, a);
    let v6_direct = route(1000, "fd83::/64", None, 5, a);
    let ours = vec![
        with_src.clone(),
        link_scope.clone(),
        default4.clone(),
        big_table.clone(),
        v6_src.clone(),
        default6.clone(),
        v6_direct.clone(),
    ];
    let outcomes =
        s.ex.execute_l3(
            ours.iter()
                .map(|r| L3Op::AddRoute {
                    ns,
                    route: r.clone(),
                })
                .collect(),
        )
        .await;
    expect_done(&outcomes);

    // The dump: exactly ours, as the kernel reports them (IPv6 without a metric has 1024;
    // an oif of 0 comes back as the link the kernel chose).
    let (routes, _, _) = dump(&mut s.ex, ns).await;
    let mut want = ours.clone();
    want[3].oif = a;
    want[4].metric = 1024;
    want.sort();
    assert_eq!(routes, want);

    // What `ip` sees.
    let shown = ip_routes(&name);
    assert_eq!(shown.len(), 7, "{shown:?}");
    let r = ip_routes_to(&shown, "10.82.0.0/16");
    assert_eq!(r.len(), 1, "{shown:?}");
    assert_eq!(r[0]["gateway"], "10.81.0.2");
    assert_eq!(r[0]["prefsrc"], "10.81.0.1");
    let r = ip_routes_to(&shown, "10.83.0.0/24");
    assert_eq!(r[0]["scope"], "link");
    assert_eq!(r[0]["table"], "100");
    assert_eq!(r[0]["metric"], 10);
    let r = ip_routes_to(&shown, "default");
    assert_eq!(r.len(), 2, "{shown:?}");
    let r = ip_routes_to(&shown, "10.84.0.0/16");
    assert_eq!(r[0]["table"], "1000");
    let r = ip_routes_to(&shown, "fd82::/64");
    assert_eq!(r[0]["metric"], 1024);
    assert_eq!(r[0]["prefsrc"], "fd81::1");
    let static_routes = ip(Some(&name), &["route", "show", "proto", "static"]);
    assert!(static_routes.contains("10.90.0.0/16"), "{static_routes}");

    // Add of an existing (table, dst, metric): refused, named.
    match l3(
        &mut s.ex,
        L3Op::AddRoute {
            ns,
            route: with_src.clone(),
        },
    )
    .await
    {
        L3Outcome::Failed {
            kind: FailureKind::Other,
            error,
        } => {
            assert!(
                error.contains("route 10.82.0.0/16 via 10.81.0.2"),
                "{error}"
            );
            assert!(error.contains("exists"), "{error}");
            assert!(error.contains(&name), "{error}");
        }
        other => panic!("add existing: {other:?}"),
    }

    // Replace changes the gateway in place: still one route.
    let mut moved4 = with_src.clone();
    moved4.gateway = Some(addr("10.81.0.3"));
    let mut moved6 = v6_src.clone();
    moved6.gateway = Some(addr("fd81::3"));
    moved6.metric = 1024;
    let outcomes =
        s.ex.execute_l3(vec![
            L3Op::ReplaceRoute {
                ns,
                route: moved4.clone(),
            },
            L3Op::ReplaceRoute {
                ns,
                route: moved6.clone(),
            },
        ])
        .await;
    expect_done(&outcomes);
    let shown = ip_routes(&name);
    let r = ip_routes_to(&shown, "10.82.0.0/16");
    assert_eq!(r.len(), 1, "{shown:?}");
    assert_eq!(r[0]["gateway"], "10.81.0.3");
    let r = ip_routes_to(&shown, "fd82::/64");
    assert_eq!(r.len(), 1, "{shown:?}");
    assert_eq!(r[0]["gateway"], "fd81::3");
    let (routes, _, _) = dump(&mut s.ex, ns).await;
    assert!(
        routes.contains(&moved4) && routes.contains(&moved6),
        "{routes:?}"
    );
    assert_eq!(routes.len(), 7);

    // Replace of a route that does not exist creates it.
    let fresh = route(MAIN, "10.85.0.0/16", Some("10.81.0.2"), 0, a);
    assert_eq!(
        l3(
            &mut s.ex,
            L3Op::ReplaceRoute {
                ns,
                route: fresh.clone()
            }
        )
        .await,
        L3Outcome::Done
    );
    assert_eq!(ip_routes_to(&ip_routes(&name), "10.85.0.0/16").len(), 1);

    // A metric change is add new + delete old: exactly one route stays, also when the old
    // one is deleted again (an IPv4 delete without a metric would match any metric).
    let mut metric20 = moved4.clone();
    metric20.metric = 20;
    let mut metric2000 = moved6.clone();
    metric2000.metric = 2000;
    for (new, old) in [(&metric20, &moved4), (&metric2000, &moved6)] {
        assert_eq!(
            l3(
                &mut s.ex,
                L3Op::AddRoute {
                    ns,
                    route: new.clone()
                }
            )
            .await,
            L3Outcome::Done
        );
        for _ in 0..2 {
            assert_eq!(
                l3(
                    &mut s.ex,
                    L3Op::DeleteRoute {
                        ns,
                        route: old.clone()
                    }
                )
                .await,
                L3Outcome::Done
            );
            let (routes, _, _) = dump(&mut s.ex, ns).await;
            let same_dst: Vec<&KernelRoute> = routes.iter().filter(|r| r.dst == new.dst).collect();
            assert_eq!(same_dst, vec![new], "{routes:?}");
        }
    }
    let dst = ip_routes_to(&ip_routes(&name), "10.82.0.0/16")
        .into_iter()
        .cloned()
        .collect::<Vec<_>>();
    assert_eq!(dst.len(), 1, "{dst:?}");
    assert_eq!(dst[0]["metric"], 20);

    // A delete names one route: a sibling with the same destination and metric 0 in another
    // table, or with another gateway, stays.
    let sibling = route(100, "10.85.0.0/16", Some("10.81.0.2"), 0, a);
    assert_eq!(
        l3(
            &mut s.ex,
            L3Op::AddRoute {
                ns,
                route: sibling.clone()
            }
        )
        .await,
        L3Outcome::Done
    );
    let mut other_gw = fresh.clone();
    other_gw.gateway = Some(addr("10.81.0.9"));
    assert_eq!(
        l3(
            &mut s.ex,
            L3Op::DeleteRoute {
                ns,
                route: other_gw
            }
        )
        .await,
        L3Outcome::Done
    );
    assert_eq!(ip_routes_to(&ip_routes(&name), "10.85.0.0/16").len(), 2);

    // Delete everything dumped; twice.
    let (routes, _, _) = dump(&mut s.ex, ns).await;
    assert_eq!(routes.len(), 9);
    for _ in 0..2 {
        let outcomes =
            s.ex.execute_l3(
                routes
                    .iter()
                    .map(|r| L3Op::DeleteRoute {
                        ns,
                        route: r.clone(),
                    })
                    .collect(),
            )
            .await;
        expect_done(&outcomes);
        assert!(dump(&mut s.ex, ns).await.0.is_empty());
        assert!(ip_routes(&name).is_empty());
    }
    // The hand-made and connected routes are untouched.
    let left = ip(Some(&name), &["route", "show", "table", "all"]);
    for r in ["10.90.0.0/16", "10.91.0.0/16", "10.81.0.0/24"] {
        assert!(left.contains(r), "{r} missing: {left}");
    }
    let left6 = ip(Some(&name), &["-6", "route", "show"]);
    assert!(left6.contains("fd90::/64"), "{left6}");
}

#[tokio::test(flavor = "multi_thread")]
async fn route_errors_name_the_route_and_namespace() {
    if !can_run("route_errors") {
        return;
    }
    let mut s = setup("e").await;
    let ns = s.ns;
    let a = s.a.ifindex;
    let name = s.name().to_string();
    let failed = |o: L3Outcome| match o {
        L3Outcome::Failed { kind, error } => {
            assert!(error.contains(&name), "{error}");
            (kind, error)
        }
        other => panic!("expected a failure: {other:?}"),
    };

    // IPv4 gateway not on a connected subnet.
    let (kind, error) = failed(
        l3(
            &mut s.ex,
            L3Op::AddRoute {
                ns,
                route: route(MAIN, "10.86.0.0/16", Some("10.99.0.1"), 0, a),
            },
        )
        .await,
    );
    assert_eq!(kind, FailureKind::Other);
    assert!(
        error.contains("10.86.0.0/16 via 10.99.0.1")
            && error.contains(&format!("dev index {a}"))
            && error.contains("table 254 metric 0"),
        "{error}"
    );
    assert!(error.contains("gateway"), "{error}");
    // IPv6 likewise.
    let (kind, error) = failed(
        l3(
            &mut s.ex,
            L3Op::ReplaceRoute {
                ns,
                route: route(MAIN, "fd86::/64", Some("fd99::1"), 0, a),
            },
        )
        .await,
    );
    assert_eq!(kind, FailureKind::Other);
    assert!(
        error.contains("cannot replace route fd86::/64 via fd99::1"),
        "{error}"
    );
    // A link that does not exist.
    let (kind, error) = failed(
        l3(
            &mut s.ex,
            L3Op::AddRoute {
                ns,
                route: route(MAIN, "10.87.0.0/16", None, 0, 99_999),
            },
        )
        .await,
    );
    assert_eq!(kind, FailureKind::LinkGone);
    assert!(
        error.contains("ENODEV") && error.contains("99999"),
        "{error}"
    );
    // A link that is down.
    let (x, y) = (format!("{}8", prefix("e")), format!("{}9", prefix("e")));
    ip(
        Some(&name),
        &["link", "add", &x, "type", "veth", "peer", "name", &y],
    );
    let down = ip(Some(&name), &["-j", "link", "show", "dev", &x]);
    let down: Value = serde_json::from_str(&down).expect("ip -j link");
    let down = down[0]["ifindex"].as_u64().expect("ifindex") as u32;
    for dst in ["10.87.0.0/16", "fd87::/64"] {
        let (kind, error) = failed(
            l3(
                &mut s.ex,
                L3Op::AddRoute {
                    ns,
                    route: route(MAIN, dst, None, 0, down),
                },
            )
            .await,
        );
        assert_eq!(kind, FailureKind::Other);
        assert!(
            error.contains("ENETDOWN") && error.contains(&format!("index {down} is down")),
            "{error}"
        );
    }
    // Values the kernel cannot hold: refused before sending.
    let (kind, error) = failed(
        l3(
            &mut s.ex,
            L3Op::AddRoute {
                ns,
                route: route(MAIN, "10.88.0.0/16", Some("fd81::2"), 0, a),
            },
        )
        .await,
    );
    assert_eq!(kind, FailureKind::Other);
    assert!(error.contains("different families"), "{error}");
    let (kind, error) = failed(
        l3(
            &mut s.ex,
            L3Op::AddRoute {
                ns,
                route: route(MAIN, "10.88.0.1/16", Some("10.81.0.2"), 0, a),
            },
        )
        .await,
    );
    assert_eq!(kind, FailureKind::Other);
    assert!(error.contains("host bits"), "{error}");
    assert!(ip_routes(&name).is_empty());

    // A namespace that is not open: writes fail, deletes are done.
    let closed = NsId { dev: 0, ino: 1 };
    let outcomes =
        s.ex.execute_l3(vec![
            L3Op::AddRoute {
                ns: closed,
                route: route(MAIN, "10.89.0.0/16", None, 0, 1),
            },
            L3Op::DeleteRoute {
                ns: closed,
                route: route(MAIN, "10.89.0.0/16", None, 0, 1),
            },
            L3Op::Dump {
                ns: closed,
                protocol: PROTO,
            },
            L3Op::DeleteNeighbour {
                ns: closed,
                neighbour: neighbour(1, "10.89.0.1", Some(mac(1)), NUD_PERMANENT),
            },
        ])
        .await;
    assert!(matches!(
        &outcomes[0],
        L3Outcome::Failed {
            kind: FailureKind::NamespaceGone,
            ..
        }
    ));
    assert_eq!(outcomes[1], L3Outcome::Done);
    assert!(matches!(
        &outcomes[2],
        L3Outcome::Failed {
            kind: FailureKind::NamespaceGone,
            ..
        }
    ));
    assert_eq!(outcomes[3], L3Outcome::Done);
}

/// A neighbour entry of the tests' protocol.
fn neighbour(ifindex: u32, ip: &str, mac: Option<MacAddr>, state: u16) -> KernelNeighbour {
    KernelNeighbour {
        ifindex,
        ip: addr(ip),
        mac,
        state,
        protocol: Some(PROTO),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn neighbours_set_replace_dump_delete() {
    if !can_run("neighbours") {
        return;
    }
    let mut s = setup("n").await;
    let ns = s.ns;
    let a = s.a.ifindex;
    let name = s.name().to_string();
    let dev = s.a.name.clone();
    // By hand: without a protocol, and with another one. Neither is ours.
    ip(
        Some(&name),
        &[
            "neigh",
            "add",
            "10.81.0.50",
            "lladdr",
            "02:00:00:00:81:50",
            "dev",
            &dev,
        ],
    );
    ip(
        Some(&name),
        &[
            "neigh",
            "add",
            "fd81::50",
            "lladdr",
            "02:00:00:00:81:51",
            "dev",
            &dev,
            "protocol",
            "static",
        ],
    );

    let ours = vec![
        neighbour(a, "10.81.0.10", Some(mac(0x10)), NUD_PERMANENT),
        neighbour(a, "10.81.0.11", Some(mac(0x11)), NUD_NOARP),
        neighbour(a, "10.81.0.12", Some(mac(0x12)), NUD_REACHABLE),
        neighbour(a, "10.81.0.13", Some(mac(0x13)), NUD_STALE),
        neighbour(a, "fd81::10", Some(mac(0x20)), NUD_PERMANENT),
        neighbour(a, "fd81::11", Some(mac(0x21)), NUD_STALE),
    ];
    let outcomes =
        s.ex.execute_l3(
            ours.iter()
                .map(|n| L3Op::SetNeighbour {
                    ns,
                    neighbour: n.clone(),
                })
                .collect(),
        )
        .await;
    expect_done(&outcomes);

    let (_, neighbours, _) = dump(&mut s.ex, ns).await;
    let mut want = ours.clone();
    want.sort();
    assert_eq!(neighbours, want);
    let shown = ip_neighbours(&name);
    for (dst, state, lladdr) in [
        ("10.81.0.10", "PERMANENT", "02:00:00:00:81:10"),
        ("10.81.0.11", "NOARP", "02:00:00:00:81:11"),
        ("10.81.0.12", "REACHABLE", "02:00:00:00:81:12"),
        ("10.81.0.13", "STALE", "02:00:00:00:81:13"),
        ("fd81::10", "PERMANENT", "02:00:00:00:81:20"),
        ("fd81::11", "STALE", "02:00:00:00:81:21"),
    ] {
        let n = ip_neighbour(&shown, dst).unwrap_or_else(|| panic!("{dst}: {shown:?}"));
        assert_eq!(n["state"][0], state, "{n}");
        assert_eq!(n["lladdr"], lladdr, "{n}");
        assert_eq!(n["protocol"], PROTO.to_string(), "{n}");
    }

    // Replace: new MAC and state, still one entry.
    let mut changed = ours[0].clone();
    changed.mac = Some(mac(0x99));
    let mut stale = ours[4].clone();
    stale.mac = Some(mac(0x98));
    stale.state = NUD_STALE;
    let outcomes =
        s.ex.execute_l3(vec![
            L3Op::SetNeighbour {
                ns,
                neighbour: changed.clone(),
            },
            L3Op::SetNeighbour {
                ns,
                neighbour: stale.clone(),
            },
        ])
        .await;
    expect_done(&outcomes);
    let shown = ip_neighbours(&name);
    assert_eq!(
        shown.iter().filter(|n| n["dst"] == "10.81.0.10").count(),
        1,
        "{shown:?}"
    );
    let n = ip_neighbour(&shown, "10.81.0.10").expect("10.81.0.10");
    assert_eq!(n["lladdr"], "02:00:00:00:81:99", "{n}");
    let n = ip_neighbour(&shown, "fd81::10").expect("fd81::10");
    assert_eq!(n["lladdr"], "02:00:00:00:81:98", "{n}");
    assert_eq!(n["state"][0], "STALE", "{n}");
    let (_, neighbours, _) = dump(&mut s.ex, ns).await;
    assert!(neighbours.contains(&changed) && neighbours.contains(&stale));
    assert_eq!(neighbours.len(), 6);

    // A link that does not exist.
    match l3(
        &mut s.ex,
        L3Op::SetNeighbour {
            ns,
            neighbour: neighbour(99_999, "10.81.0.20", Some(mac(1)), NUD_PERMANENT),
        },
    )
    .await
    {
        L3Outcome::Failed {
            kind: FailureKind::LinkGone,
            error,
        } => assert!(
            error.contains("10.81.0.20") && error.contains(&name),
            "{error}"
        ),
        other => panic!("missing link: {other:?}"),
    }

    // Delete all of ours, twice; the hand-made entries stay.
    for _ in 0..2 {
        let outcomes =
            s.ex.execute_l3(
                neighbours
                    .iter()
                    .map(|n| L3Op::DeleteNeighbour {
                        ns,
                        neighbour: n.clone(),
                    })
                    .collect(),
            )
            .await;
        expect_done(&outcomes);
        assert!(dump(&mut s.ex, ns).await.1.is_empty());
    }
    let shown = ip_neighbours(&name);
    assert!(ip_neighbour(&shown, "10.81.0.50").is_some(), "{shown:?}");
    assert!(ip_neighbour(&shown, "fd81::50").is_some(), "{shown:?}");
    assert!(ip_neighbour(&shown, "10.81.0.10").is_none(), "{shown:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn dump_lists_every_link_with_its_addresses() {
    if !can_run("links") {
        return;
    }
    let mut s = setup("l").await;
    let name = s.name().to_string();
    ip(Some(&name), &["link", "set", "lo", "up"]);
    // A link the agent does not own, down, with an address.
    let (x, y) = (format!("{}8", prefix("l")), format!("{}9", prefix("l")));
    ip(
        Some(&name),
        &["link", "add", &x, "type", "veth", "peer", "name", &y],
    );
    ip(Some(&name), &["addr", "add", "10.92.0.1/24", "dev", &x]);
    // A link-local address someone configured (unlike the kernel's own) and a direct route
    // added by hand (protocol boot).
    ip(
        Some(&name),
        &["addr", "add", "fe80::81:5/64", "dev", &s.a.name],
    );
    ip(
        Some(&name),
        &["route", "add", "10.93.0.0/24", "dev", &s.a.name],
    );

    let (routes, neighbours, links) = dump(&mut s.ex, s.ns).await;
    assert!(routes.is_empty() && neighbours.is_empty());
    // Every link `ip` lists (a new namespace may hold fallback tunnel devices too).
    let mut names: Vec<&str> = links.iter().map(|l| l.name.as_str()).collect();
    names.sort();
    let shown: Value =
        serde_json::from_str(&ip(Some(&name), &["-j", "link", "show"])).expect("ip -j link");
    let mut want: Vec<&str> = shown
        .as_array()
        .expect("links")
        .iter()
        .filter_map(|l| l["ifname"].as_str())
        .collect();
    want.sort();
    assert_eq!(names, want);
    assert!(links.windows(2).all(|w| w[0].ifindex < w[1].ifindex));

    let lo = links.iter().find(|l| l.name == "lo").expect("lo");
    assert_eq!(lo.ifindex, 1);
    assert!(lo.up);
    assert_eq!(lo.addresses, vec![net("127.0.0.1/8"), net("::1/128")]);

    let veth = links.iter().find(|l| l.name == s.a.name).expect("veth");
    assert_eq!(veth.ifindex, s.a.ifindex);
    assert!(veth.up);
    // Without the kernel's fe80:: address, with the configured one.
    assert_eq!(
        veth.addresses,
        vec![net("10.81.0.1/24"), net("fd81::1/64"), net("fe80::81:5/64")]
    );
    // Everyone else's direct routes through it: the kernel's connected ones and the one
    // added by hand.
    for d in ["10.81.0.0/24", "10.93.0.0/24", "fd81::/64"] {
        assert!(veth.direct_routes.contains(&net(d)), "{d}: {veth:?}");
    }

    let unowned = links.iter().find(|l| l.name == x).expect("unowned link");
    assert!(!unowned.up);
    assert_eq!(unowned.addresses, vec![net("10.92.0.1/24")]);
    assert!(links.iter().any(|l| l.name == y && l.addresses.is_empty()));
}

#[tokio::test(flavor = "multi_thread")]
async fn many_routes_in_one_batch_keep_their_order() {
    if !can_run("batch_l3") {
        return;
    }
    let mut s = setup("b").await;
    let ns = s.ns;
    let a = s.a.ifindex;
    let name = s.name().to_string();
    // 200 routes over three tables, every 50th refused by the kernel (gateway not on a
    // connected subnet).
    let ops: Vec<L3Op> = (0..200u32)
        .map(|i| {
            let refused = i % 50 == 7;
            let (dst, gw) = if i % 2 == 0 {
                let gw = if refused { "10.99.0.1" } else { "10.81.0.2" };
                (format!("10.100.{i}.0/24"), gw)
            } else {
                let gw = if refused { "fd99::1" } else { "fd81::2" };
                (format!("fd00:{i:x}::/64"), gw)
            };
            let table = [MAIN, 100, 300][i as usize % 3];
            L3Op::AddRoute {
                ns,
                route: route(table, &dst, Some(gw), i, a),
            }
        })
        .collect();
    let outcomes = s.ex.execute_l3(ops.clone()).await;
    assert_eq!(outcomes.len(), 200);
    for (i, (o, op)) in outcomes.iter().zip(&ops).enumerate() {
        let L3Op::AddRoute { route, .. } = op else {
            panic!("{op:?}")
        };
        if i % 50 == 7 {
            match o {
                L3Outcome::Failed { error, .. } => {
                    assert!(error.contains(&route.dst.to_string()), "{i}: {error}")
                }
                other => panic!("{i}: {other:?}"),
            }
        } else {
            assert_eq!(o, &L3Outcome::Done, "{i}");
        }
    }
    let (routes, _, _) = dump(&mut s.ex, ns).await;
    assert_eq!(routes.len(), 196);
    assert_eq!(ip_routes(&name).len(), 196);

    // Concurrent dumps of one namespace (the kernel runs one dump per socket at a time) and
    // IPv4 deletes with metric 0 (which read the table first) in one batch.
    let metric0: Vec<KernelRoute> = routes.iter().filter(|r| r.metric == 0).cloned().collect();
    assert_eq!(metric0.len(), 1);
    let mut batch: Vec<L3Op> = (0..8)
        .map(|_| L3Op::Dump {
            ns,
            protocol: PROTO,
        })
        .collect();
    batch.push(L3Op::DeleteRoute {
        ns,
        route: metric0[0].clone(),
    });
    batch.extend((0..8).map(|_| L3Op::Dump {
        ns,
        protocol: PROTO,
    }));
    let outcomes = s.ex.execute_l3(batch).await;
    assert_eq!(outcomes[8], L3Outcome::Done);
    for (i, o) in outcomes.iter().enumerate().filter(|(i, _)| *i != 8) {
        match o {
            L3Outcome::Dumped { routes, links, .. } => {
                assert!(routes.len() == 196 || routes.len() == 195, "{i}");
                assert!(!links.is_empty(), "{i}");
            }
            other => panic!("dump {i}: {other:?}"),
        }
    }
    assert_eq!(ip_routes(&name).len(), 195);
}
