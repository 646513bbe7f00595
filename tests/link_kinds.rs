//! End-to-end tests of issue 11 §2 for the kinds the agent creates itself (DUMMY, TAP,
//! VRF_DEVICE), VRF membership and routes in a VRF's table. Real etcd, namespaces and links,
//! the real binary.
//!
//! Every test uses its own label, namespace and link names (a unique prefix) and removes what
//! it created, also on failure.

mod agent_support;
mod common;

use agent_support::*;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

/// `ip -j -d link show dev NAME` in `ns`, if the link exists.
fn details(ns: &str, name: &str) -> Option<Value> {
    let text = try_ip(&["-j", "-d", "-n", ns, "link", "show", "dev", name]).ok()?;
    serde_json::from_str::<Vec<Value>>(&text)
        .ok()?
        .into_iter()
        .next()
}

/// The routes of `ns` to `dst`, with their tables (IPv4, all tables).
fn routes_to(ns: &str, dst: &str) -> Vec<Value> {
    let text = try_ip(&["-j", "-4", "-n", ns, "route", "show", "table", "all"]).unwrap_or_default();
    serde_json::from_str::<Vec<Value>>(&text)
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r["dst"] == dst)
        .collect()
}

/// A route's table as `ip -j` names it (`main` is left out for the main table).
fn table_of(route: &Value) -> String {
    match &route["table"] {
        Value::Null => "main".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// DUMMY, TAP and VRF_DEVICE are created with their settings and marks, a DUMMY joins the
/// VRF and a route through it goes into the VRF's table; membership drifting away is
/// repaired; leaving the VRF moves the route to main; deleting the items deletes the links.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dummy_tap_and_vrf_links_with_a_route_in_the_vrf_table() {
    let Some(env) = TestEnv::new("k") else { return };
    let nsx = env.ns("x");
    ip(&["netns", "add", &nsx]);
    if !kernel_has(&nsx, "dummy") || !kernel_has(&nsx, "vrf") {
        eprintln!(
            "this kernel has no dummy or vrf link driver: their creation is tested by \
             a_kind_the_kernel_lacks_fails_clearly_and_disturbs_no_other_item instead"
        );
        return;
    }
    let _agent = env.agent_with(&[]);
    let (d, t, v, m) = (env.host("d"), env.host("t"), env.host("v"), env.host("m"));
    env.put_v(
        "interface",
        "d",
        json!({"name": "d", "type": "DUMMY", "host_if_name": d, "enabled": true, "mtu": 1400,
            "ip_addresses": ["10.91.0.1/24"], "namespace": named(&nsx)}),
    )
    .await;
    env.put_v(
        "interface",
        "t",
        json!({"name": "t", "type": "TAP", "host_if_name": t, "enabled": true,
            "phys_address": "02:00:00:91:00:03", "ip_addresses": ["10.93.0.1/24"],
            "namespace": named(&nsx)}),
    )
    .await;
    env.put_v(
        "interface",
        "v",
        json!({"name": "v", "type": "VRF_DEVICE", "host_if_name": v, "enabled": true,
            "vrf_dev": {"routing_table": 1091}, "namespace": named(&nsx)}),
    )
    .await;
    let member = json!({"name": "m", "type": 6, "host_if_name": m, "enabled": true,
        "ip_addresses": ["10.92.0.1/24"], "vrf_master_interface": "v", "namespace": named(&nsx)});
    env.put_v("interface", "m", member.clone()).await;
    env.put_v(
        "route",
        "r",
        json!({"name": "r", "dst_ip_addr": "10.99.0.0/24", "gw_addr": "10.92.0.254",
            "interface": "m", "namespace": named(&nsx)}),
    )
    .await;
    for name in ["d", "t", "v", "m"] {
        env.wait_status("interface", name, "applied", "").await;
    }
    env.wait_status("route", "r", "applied", "").await;

    let kind = |name: &str| details(&nsx, name).map(|l| l["linkinfo"]["info_kind"].clone());
    assert_eq!(kind(&d), Some(json!("dummy")));
    assert_eq!(kind(&t), Some(json!("tun")));
    assert_eq!(kind(&v), Some(json!("vrf")));
    let vrf = details(&nsx, &v).unwrap();
    assert_eq!(vrf["linkinfo"]["info_data"]["table"], json!(1091), "{vrf}");
    let dummy = link(Some(&nsx), &d).unwrap();
    assert_eq!(dummy.mtu, 1400);
    assert!(dummy.up);
    assert_eq!(dummy.addresses, vec!["10.91.0.1/24".to_string()]);
    assert_eq!(
        dummy.alias.as_deref(),
        Some(format!("/vnf-agent/{}/d", env.label).as_str())
    );
    let tap = link(Some(&nsx), &t).unwrap();
    assert_eq!(tap.mac, "02:00:00:91:00:03");
    assert_eq!(tap.addresses, vec!["10.93.0.1/24".to_string()]);
    assert_eq!(details(&nsx, &m).unwrap()["master"], json!(v));
    let in_vrf = routes_to(&nsx, "10.99.0.0/24");
    assert_eq!(in_vrf.len(), 1, "{in_vrf:?}");
    assert_eq!(table_of(&in_vrf[0]), "1091", "{in_vrf:?}");

    // Taken out of its VRF behind the agent's back: put back.
    ip(&["-n", &nsx, "link", "set", &m, "nomaster"]);
    wait("the member back in its VRF", || {
        details(&nsx, &m).is_some_and(|l| l["master"] == json!(v))
    })
    .await;
    wait("the route back in the VRF's table", || {
        routes_to(&nsx, "10.99.0.0/24")
            .iter()
            .any(|r| table_of(r) == "1091")
    })
    .await;

    // Leaving the VRF: the same link, and the route goes to main.
    let index = link(Some(&nsx), &m).unwrap().ifindex;
    let mut plain = member;
    plain
        .as_object_mut()
        .unwrap()
        .remove("vrf_master_interface");
    env.put_v("interface", "m", plain).await;
    wait("the route in main", || {
        let r = routes_to(&nsx, "10.99.0.0/24");
        r.len() == 1 && table_of(&r[0]) == "main"
    })
    .await;
    let left = details(&nsx, &m).unwrap();
    assert!(left.get("master").is_none(), "{left}");
    assert_eq!(link(Some(&nsx), &m).unwrap().ifindex, index);

    for name in ["d", "t", "v", "m"] {
        env.del("interface", name).await;
    }
    env.del("route", "r").await;
    wait("every link gone", || {
        [&d, &t, &v, &m]
            .iter()
            .all(|n| link(Some(&nsx), n).is_none())
    })
    .await;
}

/// A second link kind under the same item replaces the link; a VRF member waiting for its
/// VRF says so, and joins it once it is configured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kind_changes_and_a_member_waiting_for_its_vrf() {
    let Some(env) = TestEnv::new("c") else { return };
    let nsx = env.ns("x");
    ip(&["netns", "add", &nsx]);
    if !kernel_has(&nsx, "dummy") || !kernel_has(&nsx, "vrf") {
        eprintln!("this kernel has no dummy or vrf link driver");
        return;
    }
    let _agent = env.agent_with(&[]);
    let (a, v) = (env.host("a"), env.host("v"));
    env.put_v(
        "interface",
        "a",
        json!({"name": "a", "type": "DUMMY", "host_if_name": a, "namespace": named(&nsx),
            "vrf_master_interface": "v"}),
    )
    .await;
    env.wait_status("interface", "a", "pending", "VRF interface `v`")
        .await;
    assert!(link(Some(&nsx), &a).is_none());
    env.put_v(
        "interface",
        "v",
        json!({"name": "v", "type": "VRF_DEVICE", "host_if_name": v, "enabled": true,
            "vrf_dev": {"routing_table": 1092}, "namespace": named(&nsx)}),
    )
    .await;
    env.wait_status("interface", "a", "applied", "").await;
    assert_eq!(details(&nsx, &a).unwrap()["master"], json!(v));

    env.put_v(
        "interface",
        "a",
        json!({"name": "a", "type": "TAP", "host_if_name": a, "namespace": named(&nsx)}),
    )
    .await;
    wait("a TAP in place of the dummy", || {
        details(&nsx, &a).is_some_and(|l| l["linkinfo"]["info_kind"] == "tun")
    })
    .await;
    env.wait_status("interface", "a", "applied", "").await;
    env.del("interface", "a").await;
    env.del("interface", "v").await;
    wait("links gone", || {
        link(Some(&nsx), &a).is_none() && link(Some(&nsx), &v).is_none()
    })
    .await;
}

/// A TAP is created persistent in its namespace with its MAC and address, a route and an
/// ARP entry work on it, a change is made in place and deleting the item deletes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tap_with_a_route_and_an_entry() {
    let Some(env) = TestEnv::new("t") else { return };
    let _agent = env.agent_with(&[]);
    let nsx = env.ns("x");
    let t = env.host("t");
    let tap = json!({"name": "t", "type": "TAP", "host_if_name": t, "enabled": true,
        "phys_address": "02:00:00:93:00:03", "ip_addresses": ["10.93.0.1/24"],
        "namespace": named(&nsx)});
    env.put_v("interface", "t", tap.clone()).await;
    env.put_v(
        "route",
        "r",
        json!({"name": "r", "dst_ip_addr": "10.98.0.0/24", "gw_addr": "10.93.0.254",
            "interface": "t", "namespace": named(&nsx)}),
    )
    .await;
    env.put_v(
        "arp",
        "n",
        json!({"name": "n", "interface": "t", "ip_addr": "10.93.0.254",
            "hw_address": "02:00:00:93:00:fe", "namespace": named(&nsx)}),
    )
    .await;
    env.wait_status("interface", "t", "applied", "").await;
    env.wait_status("route", "r", "applied", "").await;
    env.wait_status("arp", "n", "applied", "").await;
    let l = details(&nsx, &t).unwrap();
    assert_eq!(l["linkinfo"]["info_kind"], json!("tun"), "{l}");
    assert_eq!(l["linkinfo"]["info_data"]["type"], json!("tap"), "{l}");
    let made = link(Some(&nsx), &t).unwrap();
    assert_eq!(made.mac, "02:00:00:93:00:03");
    assert_eq!(made.addresses, vec!["10.93.0.1/24".to_string()]);
    assert_eq!(
        made.alias.as_deref(),
        Some(format!("/vnf-agent/{}/t", env.label).as_str())
    );
    assert_eq!(routes_to(&nsx, "10.98.0.0/24").len(), 1);

    let mut changed = tap;
    changed["mtu"] = json!(1300);
    env.put_v("interface", "t", changed).await;
    wait("the new MTU", || {
        link(Some(&nsx), &t).is_some_and(|l| l.mtu == 1300)
    })
    .await;
    assert_eq!(
        link(Some(&nsx), &t).unwrap().ifindex,
        made.ifindex,
        "changed in place"
    );

    env.del("interface", "t").await;
    wait("the TAP gone", || link(Some(&nsx), &t).is_none()).await;
    env.wait_status("route", "r", "pending", "").await;
}

/// A kind whose driver the kernel lacks fails with an error that says so, is retried, and
/// disturbs no other item (a TAP next to it is applied). Where the kernel has both drivers,
/// a VRF with a table another VRF of the namespace has takes its place as the refused item.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kind_the_kernel_lacks_fails_clearly_and_disturbs_no_other_item() {
    let Some(env) = TestEnv::new("m") else { return };
    let nsx = env.ns("x");
    ip(&["netns", "add", &nsx]);
    let lacking = ["dummy", "vrf"].into_iter().find(|k| !kernel_has(&nsx, k));
    let _agent = env.agent_with(&[]);
    let (b, t) = (env.host("b"), env.host("t"));
    let (bad, expected) = match lacking {
        Some("dummy") => (
            json!({"name": "b", "type": "DUMMY", "host_if_name": b, "namespace": named(&nsx)}),
            "the kernel has no `dummy` link driver".to_string(),
        ),
        Some(_) => (
            json!({"name": "b", "type": "VRF_DEVICE", "host_if_name": b,
                "vrf_dev": {"routing_table": 1093}, "namespace": named(&nsx)}),
            "the kernel has no `vrf` link driver".to_string(),
        ),
        None => {
            ip(&[
                "-n",
                &nsx,
                "link",
                "add",
                &env.host("o"),
                "type",
                "vrf",
                "table",
                "1093",
            ]);
            (
                json!({"name": "b", "type": "VRF_DEVICE", "host_if_name": b,
                    "vrf_dev": {"routing_table": 1093}, "namespace": named(&nsx)}),
                format!("cannot create vrf {b}"),
            )
        }
    };
    env.put_v("interface", "b", bad).await;
    env.put_v(
        "interface",
        "t",
        json!({"name": "t", "type": "TAP", "host_if_name": t, "namespace": named(&nsx)}),
    )
    .await;
    let status = env.wait_status("interface", "b", "failed", &expected).await;
    assert!(status["detail"].as_str().unwrap().contains(&b), "{status}");
    env.wait_status("interface", "t", "applied", "").await;
    assert!(link(Some(&nsx), &t).is_some());
    // Retried meanwhile, failed between attempts, and still failed with its error later.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    env.wait_status("interface", "b", "failed", &expected).await;
}

/// Every kind the kernel can make, applied, then the agent restarted: it finds everything in
/// place and writes nothing (links, routes, neighbours); a TAP changed behind its back after
/// the restart is repaired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_is_found_in_place_after_a_restart() {
    let Some(env) = TestEnv::new("r") else { return };
    let nsx = env.ns("x");
    ip(&["netns", "add", &nsx]);
    let drivers = kernel_has(&nsx, "dummy") && kernel_has(&nsx, "vrf");
    let host = |s: &str| env.host(s);
    let (e, temp) = (host("e"), host("tp"));
    ip(&[
        "-n",
        &nsx,
        "link",
        "add",
        &e,
        "type",
        "veth",
        "peer",
        "name",
        &host("e2"),
    ]);
    ip(&["tuntap", "add", "dev", &temp, "mode", "tap"]);
    let mut items = vec![
        (
            "a",
            json!({"name": "a", "host_if_name": host("a"), "veth": {"peer_if_name": "b"},
            "enabled": true, "ip_addresses": ["10.81.0.1/24"], "namespace": named(&nsx)}),
        ),
        (
            "b",
            json!({"name": "b", "host_if_name": host("b"), "veth": {"peer_if_name": "a"},
            "enabled": true, "ip_addresses": ["10.81.0.2/24"]}),
        ),
        (
            "t",
            json!({"name": "t", "type": "TAP", "host_if_name": host("t"), "enabled": true,
            "mtu": 1400, "ip_addresses": ["10.82.0.1/24"], "namespace": named(&nsx)}),
        ),
        (
            "e",
            json!({"name": "e", "type": "EXISTING", "host_if_name": e, "enabled": true,
            "ip_addresses": ["10.83.0.1/24"], "namespace": named(&nsx)}),
        ),
        (
            "l",
            json!({"name": "l", "type": "LOOPBACK", "enabled": true,
            "ip_addresses": ["10.255.2.1/32"], "namespace": named(&nsx)}),
        ),
        (
            "u",
            json!({"name": "u", "type": "AUTO_TAP", "host_if_name": host("u"),
            "tap": {"temp_if_name": temp}, "enabled": true, "ip_addresses": ["10.84.0.1/24"],
            "namespace": named(&nsx)}),
        ),
    ];
    if drivers {
        items.push((
            "v",
            json!({"name": "v", "type": "VRF_DEVICE", "host_if_name": host("v"),
            "enabled": true, "vrf_dev": {"routing_table": 1092}, "namespace": named(&nsx)}),
        ));
        items.push((
            "d",
            json!({"name": "d", "type": "DUMMY", "host_if_name": host("d"),
            "enabled": true, "vrf_master_interface": "v", "ip_addresses": ["10.85.0.1/24"],
            "namespace": named(&nsx)}),
        ));
    } else {
        eprintln!("this kernel has no dummy or vrf link driver: DUMMY and VRF_DEVICE left out");
    }
    for (name, value) in &items {
        env.put_v("interface", name, value.clone()).await;
    }
    for (via, dst) in [
        ("t", "10.91.0.0/24"),
        ("e", "10.92.0.0/24"),
        ("u", "10.93.0.0/24"),
    ] {
        env.put_v(
            "route",
            via,
            json!({"name": via, "dst_ip_addr": dst, "interface": via, "namespace": named(&nsx)}),
        )
        .await;
    }
    env.put_v(
        "arp",
        "p",
        json!({"name": "p", "interface": "e", "ip_addr": "10.83.0.7",
            "hw_address": "02:00:00:83:00:07", "namespace": named(&nsx)}),
    )
    .await;
    let mut agent = env.agent_with(&[]);
    for (name, _) in &items {
        env.wait_status("interface", name, "applied", "").await;
    }
    for via in ["t", "e", "u"] {
        env.wait_status("route", via, "applied", "").await;
    }
    env.wait_status("arp", "p", "applied", "").await;

    agent.stop();
    agent.restart();
    assert!(
        agent
            .wait_log("in sync with etcd snapshot", 1, Duration::from_secs(20))
            .await,
        "resync did not finish"
    );
    let log = agent.log();
    let line = log
        .lines()
        .find(|l| l.contains("in sync with etcd snapshot"))
        .unwrap();
    assert!(
        line.contains("created=0 updated=0 deleted=0")
            && line.contains("links 0/0/0, routes 0/0/0, neighbours 0/0/0"),
        "{line}"
    );

    ip(&["-n", &nsx, "link", "set", &host("t"), "mtu", "1500"]);
    wait("the TAP's MTU repaired", || {
        link(Some(&nsx), &host("t")).is_some_and(|l| l.mtu == 1400)
    })
    .await;
}
