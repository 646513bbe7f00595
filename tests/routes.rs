//! End-to-end tests of static routes and ARP/NDP entries: the `nsagent` binary, a real etcd,
//! real namespaces. Every test uses its own label and a unique prefix for namespaces and
//! links, removed afterwards.

mod agent_support;
mod common;

use agent_support::*;
use common::*;
use serde_json::{json, Value};

/// The routing-protocol number the agents of these tests are given (`--route-protocol`).
const PROTO: &str = "196";

impl TestEnv {
    fn nsx(&self) -> String {
        format!("{}x", self.p)
    }

    fn nsy(&self) -> String {
        format!("{}y", self.p)
    }

    /// Puts the pair x1 (in nsx, `addrs`) / y1 (in nsy, 10.210.0.2/24, 2001:db8:210::2/64).
    async fn put_pair(&self, addrs: &[&str], enabled: bool) {
        let mut x = json!({
            "name": "x1", "host_if_name": format!("{}1", self.p), "enabled": enabled,
            "ip_addresses": addrs, "namespace": {"type": "NAMED_NS", "name": self.nsx()},
            "veth": {"peer_if_name": "y1"}});
        x["enabled"] = json!(enabled);
        self.put_v("interface", "x1", x).await;
        self.put_v(
            "interface",
            "y1",
            json!({"name": "y1", "host_if_name": format!("{}2", self.p), "enabled": true,
                   "ip_addresses": ["10.210.0.2/24", "2001:db8:210::2/64"],
                   "namespace": {"type": "NAMED_NS", "name": self.nsy()},
                   "veth": {"peer_if_name": "x1"}}),
        )
        .await;
    }
}

/// `ip -j -n NS route show table all proto 196` (both families) as JSON objects.
fn our_routes(ns: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for family in ["-4", "-6"] {
        let text = try_ip(&[
            "-j", family, "-n", ns, "route", "show", "table", "all", "proto", PROTO,
        ])
        .unwrap_or_default();
        if let Ok(Value::Array(a)) = serde_json::from_str(&text) {
            out.extend(a);
        }
    }
    out
}

fn neighbours(ns: &str) -> Vec<Value> {
    let text = try_ip(&["-j", "-n", ns, "neigh", "show", "nud", "all"]).unwrap_or_default();
    match serde_json::from_str(&text) {
        Ok(Value::Array(a)) => a,
        _ => vec![],
    }
}

fn route_to<'a>(routes: &'a [Value], dst: &str) -> Option<&'a Value> {
    routes.iter().find(|r| r["dst"] == dst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_and_entries_wait_for_their_interface_and_follow_it() {
    let Some(env) = TestEnv::new("r") else { return };
    let _agent = AgentProcess::start(
        &env.etcd.endpoint(),
        &env.label,
        &["--route-protocol", PROTO],
    );
    let nsx = env.nsx();
    env.put_v(
        "route",
        "r1",
        json!({"name": "r1", "dst_ip_addr": "10.99.0.0/16", "gw_addr": "10.210.0.2",
        "interface": "x1", "metric": 100, "namespace": {"type": "NAMED_NS", "name": nsx}}),
    )
    .await;
    env.put_v(
        "arp",
        "a1",
        json!({"name": "a1", "interface": "x1", "ip_addr": "10.210.0.9",
        "hw_address": "46:06:18:db:05:3a", "namespace": {"type": "NAMED_NS", "name": nsx}}),
    )
    .await;
    env.wait_status("route", "r1", "pending", "").await;
    env.wait_status("arp", "a1", "pending", "").await;

    env.put_pair(&["10.210.0.1/24", "2001:db8:210::1/64"], true)
        .await;
    let r = wait_for("route r1", || {
        route_to(&our_routes(&nsx), "10.99.0.0/16").cloned()
    })
    .await;
    assert_eq!(r["gateway"], "10.210.0.2");
    assert_eq!(r["metric"], 100);
    assert_eq!(r["dev"], format!("{}1", env.p));
    let n = wait_for("entry a1", || {
        neighbours(&nsx)
            .into_iter()
            .find(|n| n["dst"] == "10.210.0.9")
    })
    .await;
    assert_eq!(n["lladdr"], "46:06:18:db:05:3a");
    assert!(
        n["state"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "PERMANENT"),
        "{n}"
    );
    env.wait_status("route", "r1", "applied", "").await;

    // The pair goes: both are withdrawn; it comes back: both return.
    env.del("interface", "y1").await;
    wait_for("route withdrawn", || {
        route_to(&our_routes(&nsx), "10.99.0.0/16")
            .is_none()
            .then_some(())
    })
    .await;
    env.wait_status("route", "r1", "pending", "x1").await;
    env.wait_status("arp", "a1", "pending", "x1").await;
    env.put_pair(&["10.210.0.1/24", "2001:db8:210::1/64"], true)
        .await;
    wait_for("route restored", || {
        route_to(&our_routes(&nsx), "10.99.0.0/16").cloned()
    })
    .await;
    wait_for("entry restored", || {
        neighbours(&nsx)
            .into_iter()
            .find(|n| n["dst"] == "10.210.0.9")
    })
    .await;

    // Disabling the interface withdraws its routes; enabling restores them.
    env.put_pair(&["10.210.0.1/24", "2001:db8:210::1/64"], false)
        .await;
    wait_for("route withdrawn on down", || {
        route_to(&our_routes(&nsx), "10.99.0.0/16")
            .is_none()
            .then_some(())
    })
    .await;
    env.wait_status("route", "r1", "pending", "down").await;
    env.put_pair(&["10.210.0.1/24", "2001:db8:210::1/64"], true)
        .await;
    wait_for("route back on up", || {
        route_to(&our_routes(&nsx), "10.99.0.0/16").cloned()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defaults_tables_states_gateways_and_metric_changes() {
    let Some(env) = TestEnv::new("s") else { return };
    let _agent = AgentProcess::start(
        &env.etcd.endpoint(),
        &env.label,
        &["--route-protocol", PROTO],
    );
    let nsx = env.nsx();
    let ns = json!({"type": "NAMED_NS", "name": nsx});
    env.put_pair(&["10.210.0.1/24", "2001:db8:210::1/64"], true)
        .await;
    env.put_v("route", "d4", json!({"name": "d4", "default": true, "gw_addr": "10.210.0.2", "interface": "x1", "namespace": ns})).await;
    env.put_v("route", "d6", json!({"name": "d6", "default": true, "gw_addr": "2001:db8:210::2", "interface": "x1", "namespace": ns})).await;
    env.put_v("route", "t1", json!({"name": "t1", "dst_ip_addr": "10.98.0.0/16", "gw_addr": "10.210.0.2", "interface": "x1", "table": 100, "namespace": ns})).await;
    // A gateway outside every configured prefix waits until an address covers it.
    env.put_v("route", "g1", json!({"name": "g1", "dst_ip_addr": "10.97.0.0/16", "gw_addr": "10.211.0.2", "interface": "x1", "namespace": ns})).await;
    for (i, state) in ["PERMANENT", "NOARP", "REACHABLE", "STALE"]
        .iter()
        .enumerate()
    {
        env.put_v("arp", &format!("n{i}"), json!({"name": format!("n{i}"), "interface": "x1",
            "ip_addr": format!("10.210.0.{}", 20 + i), "hw_address": format!("02:00:00:00:00:{:02x}", 20 + i),
            "state": {"type": state}, "namespace": ns})).await;
    }
    let routes = wait_for("defaults and table 100", || {
        let r = our_routes(&nsx);
        (r.iter().filter(|r| r["dst"] == "default").count() == 2
            && route_to(&r, "10.98.0.0/16").is_some())
        .then_some(r)
    })
    .await;
    assert_eq!(route_to(&routes, "10.98.0.0/16").unwrap()["table"], "100");
    env.wait_status("route", "g1", "pending", "10.211.0.2 is not reachable")
        .await;
    assert!(route_to(&our_routes(&nsx), "10.97.0.0/16").is_none());
    for (i, state) in ["PERMANENT", "NOARP", "REACHABLE", "STALE"]
        .iter()
        .enumerate()
    {
        let ip = format!("10.210.0.{}", 20 + i);
        let n = wait_for(&format!("entry {ip}"), || {
            neighbours(&nsx)
                .into_iter()
                .find(|n| n["dst"] == ip.as_str())
        })
        .await;
        if i < 2 {
            assert!(
                n["state"].as_array().unwrap().iter().any(|s| s == state),
                "{n}"
            );
        }
    }

    env.put_pair(
        &["10.210.0.1/24", "2001:db8:210::1/64", "10.211.0.1/24"],
        true,
    )
    .await;
    wait_for("g1 after the address", || {
        route_to(&our_routes(&nsx), "10.97.0.0/16").cloned()
    })
    .await;

    // A metric change leaves exactly one route.
    env.put_v("route", "t1", json!({"name": "t1", "dst_ip_addr": "10.98.0.0/16", "gw_addr": "10.210.0.2", "interface": "x1", "table": 100, "metric": 55, "namespace": ns})).await;
    let r = wait_for("t1 with metric 55", || {
        let all: Vec<Value> = our_routes(&nsx)
            .into_iter()
            .filter(|r| r["dst"] == "10.98.0.0/16")
            .collect();
        (all.len() == 1 && all[0]["metric"] == 55).then_some(all)
    })
    .await;
    assert_eq!(r.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resync_removes_stale_owned_state_and_keeps_hand_made_routes() {
    let Some(env) = TestEnv::new("t") else { return };
    let mut agent = AgentProcess::start(
        &env.etcd.endpoint(),
        &env.label,
        &["--route-protocol", PROTO],
    );
    let nsx = env.nsx();
    let ns = json!({"type": "NAMED_NS", "name": nsx});
    env.put_pair(&["10.210.0.1/24"], true).await;
    env.put_v("route", "k1", json!({"name": "k1", "dst_ip_addr": "10.96.0.0/16", "gw_addr": "10.210.0.2", "interface": "x1", "namespace": ns})).await;
    env.put_v("route", "s1", json!({"name": "s1", "dst_ip_addr": "10.95.0.0/16", "gw_addr": "10.210.0.2", "interface": "x1", "namespace": ns})).await;
    env.put_v("arp", "s2", json!({"name": "s2", "interface": "x1", "ip_addr": "10.210.0.44", "hw_address": "02:00:00:00:00:44", "namespace": ns})).await;
    wait_for("routes", || (our_routes(&nsx).len() == 2).then_some(())).await;
    wait_for("entry", || {
        neighbours(&nsx)
            .into_iter()
            .find(|n| n["dst"] == "10.210.0.44")
    })
    .await;
    assert!(agent.stop());

    env.del("route", "s1").await;
    env.del("arp", "s2").await;
    let dev = format!("{}1", env.p);
    ip(&[
        "-n",
        &nsx,
        "route",
        "add",
        "10.94.0.0/16",
        "via",
        "10.210.0.2",
        "dev",
        &dev,
    ]);
    ip(&[
        "-n",
        &nsx,
        "neigh",
        "add",
        "10.210.0.45",
        "lladdr",
        "02:00:00:00:00:45",
        "dev",
        &dev,
    ]);

    agent.restart();
    wait_for("stale route removed", || {
        let r = our_routes(&nsx);
        (route_to(&r, "10.95.0.0/16").is_none() && route_to(&r, "10.96.0.0/16").is_some())
            .then_some(())
    })
    .await;
    wait_for("stale entry removed", || {
        neighbours(&nsx)
            .iter()
            .all(|n| n["dst"] != "10.210.0.44")
            .then_some(())
    })
    .await;
    let hand = try_ip(&["-n", &nsx, "route", "show", "10.94.0.0/16"]).unwrap();
    assert!(
        hand.contains("10.94.0.0/16"),
        "hand-made route kept: {hand}"
    );
    assert!(
        neighbours(&nsx).iter().any(|n| n["dst"] == "10.210.0.45"),
        "hand-made entry kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_route_and_arp_values_name_key_and_field_and_good_ones_apply() {
    let Some(env) = TestEnv::new("u") else { return };
    let _agent = AgentProcess::start(
        &env.etcd.endpoint(),
        &env.label,
        &["--route-protocol", PROTO],
    );
    let nsx = env.nsx();
    let ns = json!({"type": "NAMED_NS", "name": nsx});
    env.put_pair(&["10.210.0.1/24"], true).await;
    let bad: Vec<(&str, &str, Value, &str)> = vec![
        (
            "route",
            "b1",
            json!({"name": "b1", "gw_addr": "10.210.0.2", "interface": "x1"}),
            "dst_ip_addr",
        ),
        (
            "route",
            "b2",
            json!({"name": "b2", "dst_ip_addr": "10.1.0.0", "interface": "x1"}),
            "dst_ip_addr",
        ),
        (
            "route",
            "b3",
            json!({"name": "b3", "default": true, "interface": "x1"}),
            "gw_addr",
        ),
        (
            "route",
            "b4",
            json!({"name": "b4", "dst_ip_addr": "10.1.0.0/16", "gw_addr": "10.210.0.2", "scope": {"type": "LINK"}, "interface": "x1"}),
            "scope.type",
        ),
        (
            "route",
            "b5",
            json!({"name": "b5", "dst_ip_addr": "10.1.0.0/16", "gw_addr": "2001:db8::1", "interface": "x1"}),
            "gw_addr",
        ),
        (
            "route",
            "b6",
            json!({"name": "b6", "dst_ip_addr": "10.1.0.0/16", "gw_addr": "10.210.0.300", "interface": "x1"}),
            "gw_addr",
        ),
        (
            "arp",
            "c1",
            json!({"name": "c1", "interface": "x1", "hw_address": "02:00:00:00:00:01"}),
            "ip_addr",
        ),
        (
            "arp",
            "c2",
            json!({"name": "c2", "interface": "x1", "ip_addr": "10.210.0.5", "hw_address": "zz:00:00:00:00:01"}),
            "hw_address",
        ),
        (
            "arp",
            "c3",
            json!({"name": "c3", "interface": "x1", "ip_addr": "10.210.0.5", "hw_address": "02:00:00:00:00:01", "ip_family": {"family": "IPV6"}}),
            "ip_family.family",
        ),
    ];
    for (kind, name, v, _) in &bad {
        env.put_v(kind, name, v.clone()).await;
    }
    env.put_v("route", "ok", json!({"name": "ok", "dst_ip_addr": "10.93.0.0/16", "gw_addr": "10.210.0.2", "interface": "x1", "namespace": ns})).await;
    env.put_v("arp", "ok", json!({"name": "ok", "interface": "x1", "ip_addr": "10.210.0.66", "hw_address": "02:00:00:00:00:66", "namespace": ns})).await;
    for (kind, name, _, field) in &bad {
        let s = env.wait_status(kind, name, "invalid", "").await;
        let detail = s["detail"].as_str().unwrap();
        assert!(
            detail.contains(&env.key(kind, name)),
            "names the key: {detail}"
        );
        assert!(
            detail.contains(&format!("`{field}`")),
            "names field {field}: {detail}"
        );
    }
    wait_for("good route", || {
        route_to(&our_routes(&nsx), "10.93.0.0/16").cloned()
    })
    .await;
    wait_for("good entry", || {
        neighbours(&nsx)
            .into_iter()
            .find(|n| n["dst"] == "10.210.0.66")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_on_a_host_link_waits_until_the_link_exists() {
    let Some(env) = TestEnv::new("v") else { return };
    let _agent = AgentProcess::start(
        &env.etcd.endpoint(),
        &env.label,
        &["--route-protocol", PROTO],
    );
    let nsx = env.nsx();
    ip(&["netns", "add", &nsx]);
    let host = format!("{}h", env.p);
    env.put_v(
        "route",
        "h1",
        json!({"name": "h1", "dst_ip_addr": "10.92.0.0/16", "interface": host,
        "namespace": {"type": "NAMED_NS", "name": nsx}}),
    )
    .await;
    env.put_v(
        "route",
        "lo",
        json!({"name": "lo", "dst_ip_addr": "10.91.0.0/16", "interface": "lo",
        "namespace": {"type": "NAMED_NS", "name": nsx}}),
    )
    .await;
    env.wait_status("route", "h1", "pending", &host).await;
    // lo exists but is down in a new namespace; bringing it up applies the route.
    env.wait_status("route", "lo", "pending", "is down").await;
    ip(&["-n", &nsx, "link", "set", "lo", "up"]);
    wait_for("route via lo", || {
        route_to(&our_routes(&nsx), "10.91.0.0/16").cloned()
    })
    .await;
    // A link made by someone else appears: the route follows within the link-wait interval.
    ip(&[
        "-n",
        &nsx,
        "link",
        "add",
        &host,
        "type",
        "veth",
        "peer",
        "name",
        &format!("{}i", env.p),
    ]);
    ip(&["-n", &nsx, "link", "set", &host, "up"]);
    let r = wait_for("route via the new link", || {
        route_to(&our_routes(&nsx), "10.92.0.0/16").cloned()
    })
    .await;
    assert_eq!(r["dev"], host);
    env.wait_status("route", "h1", "applied", "").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_pick_their_interface_and_entry_state_changes_apply() {
    let Some(env) = TestEnv::new("g") else { return };
    let _agent = AgentProcess::start(
        &env.etcd.endpoint(),
        &env.label,
        &["--route-protocol", PROTO],
    );
    let nsx = env.nsx();
    let ns = json!({"type": "NAMED_NS", "name": nsx});
    env.put_pair(&["10.210.0.1/24"], true).await;
    // A second pair x2 (nsx) / y2 (nsy) on 10.212.0.0/24.
    let x2 = |addrs: &[&str]| {
        json!({"name": "x2", "host_if_name": format!("{}3", env.p), "enabled": true,
               "ip_addresses": addrs, "namespace": ns, "veth": {"peer_if_name": "y2"}})
    };
    env.put_v("interface", "x2", x2(&["10.212.0.1/24"])).await;
    env.put_v(
        "interface",
        "y2",
        json!({"name": "y2", "host_if_name": format!("{}4", env.p), "enabled": true,
               "ip_addresses": ["10.212.0.2/24", "10.210.0.2/24"],
               "namespace": {"type": "NAMED_NS", "name": env.nsy()},
               "veth": {"peer_if_name": "x2"}}),
    )
    .await;
    // No interface: the route takes the link its gateway is on.
    env.put_v("route", "f1", json!({"name": "f1", "dst_ip_addr": "10.96.0.0/16", "gw_addr": "10.210.0.2", "namespace": ns})).await;
    // A gateway that is not on the named interface waits, saying so.
    env.put_v("route", "w1", json!({"name": "w1", "dst_ip_addr": "10.95.0.0/16", "gw_addr": "10.212.0.2", "interface": "x1", "namespace": ns})).await;
    let f1 = wait_for("f1", || {
        route_to(&our_routes(&nsx), "10.96.0.0/16").cloned()
    })
    .await;
    assert_eq!(f1["dev"], format!("{}1", env.p));
    env.wait_status(
        "route",
        "w1",
        "pending",
        "10.212.0.2 is not reachable through interface `x1`",
    )
    .await;
    assert!(route_to(&our_routes(&nsx), "10.95.0.0/16").is_none());

    // The gateway's prefix moves from x1 to x2: the route follows it.
    env.put_pair(&[], true).await;
    env.put_v("interface", "x2", x2(&["10.212.0.1/24", "10.210.0.1/24"]))
        .await;
    wait_for("f1 on x2", || {
        route_to(&our_routes(&nsx), "10.96.0.0/16")
            .filter(|r| r["dev"] == format!("{}3", env.p))
            .cloned()
    })
    .await;
    env.wait_status("route", "f1", "applied", "").await;

    // An entry changed from REACHABLE to STALE is written again (the kernel keeps a
    // REACHABLE entry for 15-45 s before it ages it to STALE itself).
    let entry = |state: &str| {
        json!({"name": "e1", "interface": "x2", "ip_addr": "10.212.0.30",
               "hw_address": "02:00:00:00:00:30", "state": {"type": state}, "namespace": ns})
    };
    let state_of = |nsx: &str| {
        neighbours(nsx)
            .into_iter()
            .find(|n| n["dst"] == "10.212.0.30")
            .map(|n| n["state"].clone())
    };
    env.put_v("arp", "e1", entry("REACHABLE")).await;
    wait_for("e1 REACHABLE", || {
        state_of(&nsx).filter(|s| s.to_string().contains("REACHABLE"))
    })
    .await;
    env.put_v("arp", "e1", entry("STALE")).await;
    wait_for("e1 STALE", || {
        state_of(&nsx).filter(|s| s.to_string().contains("STALE"))
    })
    .await;
}
