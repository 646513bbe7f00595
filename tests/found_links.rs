//! End-to-end tests of issue 11 §2 for the links the agent finds instead of creating
//! (EXISTING, LOOPBACK): waited for, configured, repaired, carrying routes and ARP entries,
//! never deleted, and only the agent's own addresses removed. Real etcd, namespaces and links,
//! the real binary.
//!
//! Every test uses its own label, namespace and link names (a unique prefix) and removes what
//! it created, also on failure.

mod agent_support;
mod common;

use agent_support::*;
use common::*;
use serde_json::{json, Value};

fn has_address(ns: &str, name: &str, address: &str) -> bool {
    link(Some(ns), name).is_some_and(|l| l.addresses.iter().any(|a| a == address))
}

/// True when `ns` has a route to `dst` through link `dev`.
fn route_via(ns: &str, dst: &str, dev: &str) -> bool {
    let text = try_ip(&["-j", "-4", "-n", ns, "route", "show", dst]).unwrap_or_default();
    serde_json::from_str::<Vec<Value>>(&text)
        .unwrap_or_default()
        .iter()
        .any(|r| r["dev"] == dev)
}

fn has_neighbour(ns: &str, ip: &str, dev: &str) -> bool {
    let text = try_ip(&["-j", "-n", ns, "neigh", "show", "dev", dev]).unwrap_or_default();
    serde_json::from_str::<Vec<Value>>(&text)
        .unwrap_or_default()
        .iter()
        .any(|n| n["dst"] == ip)
}

/// An EXISTING link waits until someone makes it, then gets its MTU, admin state and address
/// (someone else's address on it stays), carries a route and an ARP entry, is repaired when
/// changed behind the agent's back, and keeps existing when its item goes: only the agent's
/// address is removed. A `link_only` one is never changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_link_is_waited_for_configured_repaired_and_left_in_place() {
    let Some(env) = TestEnv::new("f") else { return };
    let nsx = env.ns("x");
    ip(&["netns", "add", &nsx]);
    let _agent = env.agent_with(&[]);
    let (e, peer) = (env.host("e"), env.host("e2"));
    env.put_v(
        "interface",
        "e",
        json!({"name": "e", "type": "EXISTING", "host_if_name": e, "enabled": true,
            "mtu": 1400, "ip_addresses": ["10.94.0.1/24"], "namespace": named(&nsx)}),
    )
    .await;
    env.put_v(
        "route",
        "r",
        json!({"name": "r", "dst_ip_addr": "10.96.0.0/24", "gw_addr": "10.94.0.254",
            "interface": "e", "namespace": named(&nsx)}),
    )
    .await;
    env.put_v(
        "arp",
        "p",
        json!({"name": "p", "interface": "e", "ip_addr": "10.94.0.7",
            "hw_address": "02:00:00:94:00:07", "namespace": named(&nsx)}),
    )
    .await;
    env.wait_status("interface", "e", "pending", "waiting for a link named")
        .await;
    assert!(link(Some(&nsx), &e).is_none(), "nothing is created for it");

    // Someone makes it, with an address of theirs.
    ip(&[
        "-n", &nsx, "link", "add", &e, "type", "veth", "peer", "name", &peer,
    ]);
    ip(&["-n", &nsx, "addr", "add", "10.95.0.1/24", "dev", &e]);
    env.wait_status("interface", "e", "applied", "").await;
    env.wait_status("route", "r", "applied", "").await;
    env.wait_status("arp", "p", "applied", "").await;
    let l = link(Some(&nsx), &e).unwrap();
    assert_eq!((l.mtu, l.up), (1400, true));
    assert_eq!(l.addresses, vec!["10.94.0.1/24", "10.95.0.1/24"]);
    assert_eq!(l.alias, None, "never marked as the agent's");
    assert!(route_via(&nsx, "10.96.0.0/24", &e));
    assert!(has_neighbour(&nsx, "10.94.0.7", &e));

    // Changed behind the agent's back: repaired.
    ip(&["-n", &nsx, "addr", "del", "10.94.0.1/24", "dev", &e]);
    ip(&["-n", &nsx, "link", "set", &e, "mtu", "1500"]);
    wait("the address and MTU repaired", || {
        has_address(&nsx, &e, "10.94.0.1/24") && link(Some(&nsx), &e).unwrap().mtu == 1400
    })
    .await;

    // A link_only item on the other end changes nothing there.
    env.put_v(
        "interface",
        "o",
        json!({"name": "o", "type": "EXISTING", "link_only": true, "host_if_name": peer,
            "mtu": 1300, "ip_addresses": ["10.97.0.1/24"], "namespace": named(&nsx)}),
    )
    .await;
    env.wait_status("interface", "o", "applied", "").await;
    let p = link(Some(&nsx), &peer).unwrap();
    assert_eq!((p.mtu, p.addresses.len()), (1500, 0), "{p:?}");

    // Deleted: the link stays with someone else's address; the agent's address goes.
    env.del("route", "r").await;
    env.del("arp", "p").await;
    env.del("interface", "e").await;
    env.del("interface", "o").await;
    wait("the agent's address removed", || {
        !has_address(&nsx, &e, "10.94.0.1/24")
    })
    .await;
    let l = link(Some(&nsx), &e).expect("the link is never deleted");
    assert_eq!(l.addresses, vec!["10.95.0.1/24"]);
    assert!(link(Some(&nsx), &peer).is_some());
    wait("the route and entry removed", || {
        !route_via(&nsx, "10.96.0.0/24", &e) && !has_neighbour(&nsx, "10.94.0.7", &e)
    })
    .await;
}

/// A LOOPBACK item brings up the `lo` of its namespace with its addresses; a second one for
/// the same namespace is invalid and names the first; deleting the first removes its
/// address only, and the second takes over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loopback_of_a_namespace_is_configured_once() {
    let Some(env) = TestEnv::new("l") else { return };
    let nsx = env.ns("x");
    ip(&["netns", "add", &nsx]);
    let _agent = env.agent_with(&[]);
    env.put_v(
        "interface",
        "lo1",
        json!({"name": "lo1", "type": "LOOPBACK", "enabled": true,
            "ip_addresses": ["10.255.1.1/32"], "namespace": named(&nsx)}),
    )
    .await;
    env.wait_status("interface", "lo1", "applied", "").await;
    env.put_v(
        "interface",
        "lo2",
        json!({"name": "lo2", "type": 3, "enabled": true, "namespace": named(&nsx)}),
    )
    .await;
    let first = env.key("interface", "lo1");
    env.wait_status("interface", "lo2", "invalid", &first).await;
    let lo = link(Some(&nsx), "lo").unwrap();
    assert!(lo.up);
    assert!(lo.addresses.iter().any(|a| a == "10.255.1.1/32"), "{lo:?}");
    assert!(lo.addresses.iter().any(|a| a == "127.0.0.1/8"), "{lo:?}");

    env.del("interface", "lo1").await;
    env.wait_status("interface", "lo2", "applied", "").await;
    wait("the first item's address removed", || {
        !has_address(&nsx, "lo", "10.255.1.1/32")
    })
    .await;
    let lo = link(Some(&nsx), "lo").unwrap();
    assert!(
        lo.up && lo.addresses.iter().any(|a| a == "127.0.0.1/8"),
        "{lo:?}"
    );
}

/// An AUTO_TAP waits for a TAP another program makes in the agent's own namespace, takes it
/// over (moved into its namespace, renamed, configured, carrying a route), repairs it, follows
/// a new namespace, and gives it back when deleted: in the agent's namespace again under its
/// temporary name, without addresses or alias.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auto_tap_is_taken_over_and_given_back() {
    let Some(env) = TestEnv::new("a") else { return };
    let (nsx, nsy) = (env.ns("x"), env.ns("y"));
    ip(&["netns", "add", &nsx]);
    let _agent = env.agent_with(&[]);
    let (temp, host) = (env.host("tp"), env.host("t"));
    let mut value = json!({"name": "t", "type": "AUTO_TAP", "host_if_name": host,
        "tap": {"temp_if_name": temp}, "enabled": true, "mtu": 1400,
        "ip_addresses": ["10.98.0.1/24"], "namespace": named(&nsx)});
    env.put_v("interface", "t", value.clone()).await;
    env.put_v(
        "route",
        "r",
        json!({"name": "r", "dst_ip_addr": "10.99.0.0/24", "interface": "t",
            "namespace": named(&nsx)}),
    )
    .await;
    env.wait_status("interface", "t", "pending", "waiting for a TAP named")
        .await;

    // Another program makes the TAP.
    ip(&["tuntap", "add", "dev", &temp, "mode", "tap"]);
    env.wait_status("interface", "t", "applied", "").await;
    env.wait_status("route", "r", "applied", "").await;
    assert!(
        link(None, &temp).is_none(),
        "moved out of the agent's namespace"
    );
    let l = link(Some(&nsx), &host).expect("taken over");
    assert_eq!((l.mtu, l.up), (1400, true));
    assert_eq!(l.addresses, vec!["10.98.0.1/24"]);
    assert_eq!(l.alias, Some(format!("/vnf-agent/{}/t/{temp}", env.label)));
    assert_eq!(l.group, "default", "never in the agent's link group");
    assert!(route_via(&nsx, "10.99.0.0/24", &host));

    ip(&["-n", &nsx, "link", "set", &host, "mtu", "1500"]);
    wait("the MTU repaired", || {
        link(Some(&nsx), &host).is_some_and(|l| l.mtu == 1400)
    })
    .await;

    // Another namespace: given back, then taken over again there.
    ip(&["netns", "add", &nsy]);
    value["namespace"] = named(&nsy);
    env.put_v("interface", "t", value).await;
    wait("the TAP in its new namespace", || {
        link(Some(&nsy), &host).is_some() && link(Some(&nsx), &host).is_none()
    })
    .await;
    env.wait_status("interface", "t", "applied", "").await;

    env.del("route", "r").await;
    env.del("interface", "t").await;
    wait("the TAP given back", || link(None, &temp).is_some()).await;
    let back = link(None, &temp).unwrap();
    assert_eq!((&back.alias, back.addresses.len()), (&None, 0), "{back:?}");
    assert!(link(Some(&nsy), &host).is_none());
}
