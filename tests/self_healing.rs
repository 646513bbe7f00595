//! End-to-end tests of issue 10 §1-§2: changes made behind the agent's back are repaired
//! from kernel events (the periodic re-read is turned off in these tests), the echo of the
//! agent's own writes is not drift, someone fighting the agent gets backoff, and a named
//! namespace deleted by hand comes back. Real etcd, namespaces and links, the real binary.
//!
//! Every test uses its own label, namespace and link names (a unique prefix) and removes what
//! it created, also on failure.

mod agent_support;
mod common;

use agent_support::*;
use common::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

fn named(n: &str) -> Value {
    json!({"type": "NAMED_NS", "name": n})
}

async fn wait(what: &str, mut cond: impl FnMut() -> bool) {
    let ok = wait_until_async(Duration::from_secs(10), Duration::from_millis(10), || {
        cond()
    })
    .await;
    assert!(ok, "timed out waiting for {what}");
}

/// The routes of `ns` to `dst` (both families, all tables).
fn route_to(ns: &str, dst: &str) -> Option<Value> {
    ["-4", "-6"]
        .iter()
        .filter_map(|f| try_ip(&["-j", f, "-n", ns, "route", "show", "table", "all"]).ok())
        .filter_map(|t| serde_json::from_str::<Vec<Value>>(&t).ok())
        .flatten()
        .find(|r| r["dst"] == dst)
}

fn neighbour(ns: &str, ip_addr: &str) -> Option<Value> {
    let text = try_ip(&["-j", "-n", ns, "neigh", "show", "to", ip_addr]).ok()?;
    serde_json::from_str::<Vec<Value>>(&text)
        .ok()?
        .into_iter()
        .find(|n| n["dst"] == ip_addr)
}

/// `GET /metrics` of the agent's HTTP API.
fn metrics(listen: &str) -> String {
    let mut s = std::net::TcpStream::connect(listen).expect("connect to the HTTP API");
    write!(s, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text
}

/// The sum of `nsagent_operations_total` over the operations that write to the kernel.
fn writes(listen: &str) -> u64 {
    const WRITES: [&str; 10] = [
        "create_pair",
        "create_link",
        "update_link",
        "delete_link",
        "delete_links",
        "add_route",
        "replace_route",
        "delete_route",
        "set_neighbour",
        "delete_neighbour",
    ];
    metrics(listen)
        .lines()
        .filter(|l| l.starts_with("nsagent_operations_total{"))
        .filter(|l| WRITES.iter().any(|op| l.contains(&format!("op=\"{op}\""))))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// The world of one test: a pair `r1` (in `x`, 10.78.0.1/24, MTU 1400, a MAC) / `r2` (in
/// `y`), a route and an ARP entry on `r1`.
struct Healing {
    env: TestEnv,
    nsx: String,
    host: String,
    listen: String,
}

impl Healing {
    async fn start(tag: &str) -> Option<(Healing, AgentProcess)> {
        let env = TestEnv::new(tag)?;
        let nsx = env.ns("x");
        let host = env.host("r1");
        let listen = format!("127.0.0.1:{}", free_port());
        let agent = env.agent_with(&["--kernel-resync-interval-s", "0", "--http-listen", &listen]);
        let mut r1: Value = serde_json::from_str(&veth_json(
            "r1",
            &host,
            "r2",
            named(&nsx),
            &["10.78.0.1/24"],
        ))
        .unwrap();
        r1["mtu"] = json!(1400);
        r1["phys_address"] = json!("02:00:00:78:00:01");
        env.put("interface", "r1", r1.to_string()).await;
        let r2 = veth_json(
            "r2",
            &env.host("r2"),
            "r1",
            named(&env.ns("y")),
            &["10.78.0.2/24"],
        );
        env.put("interface", "r2", r2).await;
        let route = json!({"name": "rt", "dst_ip_addr": "10.98.0.0/24", "gw_addr": "10.78.0.2",
            "interface": "r1", "metric": 7, "namespace": named(&nsx)});
        env.put("route", "rt", route.to_string()).await;
        let arp = json!({"name": "nb", "interface": "r1", "ip_addr": "10.78.0.9",
            "hw_address": "02:00:00:78:00:09", "namespace": named(&nsx)});
        env.put("arp", "nb", arp.to_string()).await;
        for (kind, name) in [("interface", "r1"), ("route", "rt"), ("arp", "nb")] {
            env.wait_status(kind, name, "applied", "").await;
        }
        Some((
            Healing {
                env,
                nsx,
                host,
                listen,
            },
            agent,
        ))
    }

    /// True when r1, its address, route and entry are as configured.
    fn intact(&self) -> bool {
        let Some(l) = link(Some(&self.nsx), &self.host) else {
            return false;
        };
        l.up && l.mtu == 1400
            && l.mac == "02:00:00:78:00:01"
            && l.addresses == ["10.78.0.1/24"]
            && l.alias.as_deref().is_some_and(|a| a.ends_with("/r1/r2"))
            && route_to(&self.nsx, "10.98.0.0/24")
                .is_some_and(|r| r["gateway"] == "10.78.0.2" && r["metric"] == 7)
            && neighbour(&self.nsx, "10.78.0.9").is_some_and(|n| n["lladdr"] == "02:00:00:78:00:09")
    }

    fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", self.nsx.as_str()];
        all.extend(args);
        ip(&all);
    }
}

/// Every kind of change to what the agent owns is repaired without the periodic re-read, and
/// each repair is logged and counted in the item's status and in the metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_behind_the_agents_back_is_repaired_from_events() {
    let Some((h, agent)) = Healing::start("e").await else {
        return;
    };
    let nsz = h.env.ns("z");
    ip(&["netns", "add", &nsz]);
    let host = h.host.clone();
    let proto = {
        let key = format!("/vnf-agent/{}/linux/owned/v1/marks", h.env.label);
        let marks: Value = serde_json::from_slice(&h.env.etcd.get(&key).await.unwrap()).unwrap();
        marks["route_protocol"].to_string()
    };
    let changes: Vec<(&str, Vec<String>)> = vec![
        (
            "link deleted",
            vec!["link", "del", &host]
                .into_iter()
                .map(String::from)
                .collect(),
        ),
        (
            "link renamed",
            vec!["link", "set", "dev", &host, "name", &format!("{host}x")]
                .into_iter()
                .map(String::from)
                .collect(),
        ),
        (
            "link moved out",
            vec!["link", "set", "dev", &host, "netns", &nsz]
                .into_iter()
                .map(String::from)
                .collect(),
        ),
        (
            "link set down",
            vec!["link", "set", "dev", &host, "down"]
                .into_iter()
                .map(String::from)
                .collect(),
        ),
        (
            "other MTU",
            vec!["link", "set", "dev", &host, "mtu", "1300"]
                .into_iter()
                .map(String::from)
                .collect(),
        ),
        (
            "other MAC",
            vec!["link", "set", "dev", &host, "address", "02:00:00:78:00:77"]
                .into_iter()
                .map(String::from)
                .collect(),
        ),
        (
            "address removed",
            vec!["addr", "del", "10.78.0.1/24", "dev", &host]
                .into_iter()
                .map(String::from)
                .collect(),
        ),
        (
            "foreign address added",
            vec!["addr", "add", "10.79.0.1/24", "dev", &host]
                .into_iter()
                .map(String::from)
                .collect(),
        ),
        (
            "route deleted",
            vec!["route", "del", "10.98.0.0/24", "metric", "7"]
                .into_iter()
                .map(String::from)
                .collect(),
        ),
        (
            "route changed",
            vec![
                "route",
                "replace",
                "10.98.0.0/24",
                "dev",
                &host,
                "metric",
                "7",
                "proto",
                &proto,
            ]
            .into_iter()
            .map(String::from)
            .collect(),
        ),
        (
            "entry deleted",
            vec!["neigh", "del", "10.78.0.9", "dev", &host]
                .into_iter()
                .map(String::from)
                .collect(),
        ),
        (
            "entry changed",
            vec![
                "neigh",
                "replace",
                "10.78.0.9",
                "lladdr",
                "02:00:00:78:00:66",
                "dev",
                &host,
                "nud",
                "permanent",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
        ),
    ];
    let mut repairs = 0;
    for (what, args) in &changes {
        // After a link was re-created its index changed: look it up afresh each time.
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let before = agent.log().matches("repaired:").count();
        h.ip(&args);
        let started = Instant::now();
        wait(what, || h.intact()).await;
        eprintln!("{what}: intact again after {:?}", started.elapsed());
        wait(&format!("{what} logged as a repair"), || {
            agent.log().matches("repaired:").count() > before
        })
        .await;
        repairs += 1;
        // Changes to one item closer together than a second are a fight (repairs back off):
        // these are separate changes.
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    assert!(
        link(Some(&nsz), &host).is_none(),
        "the moved end went with its pair"
    );
    let status = h.env.status("interface", "r1").await;
    assert!(status["repairs"].as_u64().unwrap_or(0) >= 1, "{status}");
    assert!(status["last_repair"].as_str().is_some(), "{status}");
    let text = metrics(&h.listen);
    let counted: f64 = text
        .lines()
        .filter(|l| l.starts_with("nsagent_kernel_repairs_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(counted as usize >= repairs, "{counted} < {repairs}: {text}");
}

/// The echo of the agent's own writes is not drift: with nothing changed from outside, no
/// write over a quiet period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agents_own_writes_are_not_drift() {
    let Some((h, agent)) = Healing::start("q").await else {
        return;
    };
    // More of everything: a second pair in the same namespace, with its own route and entry.
    let env = &h.env;
    let nsx = h.nsx.clone();
    env.put(
        "interface",
        "s1",
        veth_json(
            "s1",
            &env.host("s1"),
            "s2",
            named(&nsx),
            &["10.88.0.1/24", "2001:db8:88::1/64"],
        ),
    )
    .await;
    env.put(
        "interface",
        "s2",
        veth_json(
            "s2",
            &env.host("s2"),
            "s1",
            named(&env.ns("y")),
            &["10.88.0.2/24"],
        ),
    )
    .await;
    env.put(
        "route",
        "r6",
        json!({"name": "r6", "dst_ip_addr": "2001:db8:99::/48",
        "gw_addr": "2001:db8:88::2", "interface": "s1", "namespace": named(&nsx)})
        .to_string(),
    )
    .await;
    env.wait_status("route", "r6", "applied", "").await;
    wait("the agent to settle", || h.intact()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = writes(&h.listen);
    assert!(before > 0, "the metrics count the agent's writes");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        writes(&h.listen),
        before,
        "writes with nothing changed: {}",
        agent.log()
    );
    assert!(!agent.log().contains("repaired:"), "{}", agent.log());
}

/// Someone deleting the agent's link in a loop gets repairs with capped backoff, not a busy
/// loop; when they stop, the link is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn someone_fighting_the_agent_gets_repairs_with_backoff() {
    let Some((h, agent)) = Healing::start("g").await else {
        return;
    };
    let until = Instant::now() + Duration::from_secs(4);
    let mut deletions = 0;
    while Instant::now() < until {
        if try_ip(&["-n", &h.nsx, "link", "del", &h.host]).is_ok() {
            deletions += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait("the pair to come back", || h.intact()).await;
    // Each deletion costs one re-creation of the pair (and its route and entry with it).
    let repairs = agent.log().matches("repaired: created veth pair").count();
    eprintln!("{deletions} deletions, {repairs} repairs");
    assert!(repairs >= 2, "repairs went on: {repairs}");
    // Without backoff every deletion would be repaired at once, one every ~20 ms (about 200
    // in 4 s); with it the waits double (100 ms, 200 ms, ...) up to a cap.
    assert!(repairs <= 15, "{repairs} repairs for {deletions} deletions");
}

/// A named namespace deleted by hand while items live in it is created again and its items
/// re-applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_namespace_deleted_by_hand_comes_back() {
    let Some((h, _agent)) = Healing::start("n").await else {
        return;
    };
    ip(&["netns", "del", &h.nsx]);
    let started = Instant::now();
    wait("the namespace and its items to come back", || h.intact()).await;
    eprintln!("namespace and pair back after {:?}", started.elapsed());
    h.env.wait_status("interface", "r1", "applied", "").await;
    h.env.wait_status("route", "rt", "applied", "").await;
}
