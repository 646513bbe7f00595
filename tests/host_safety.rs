//! End-to-end tests of issue 8 ("never break the host"): what two agents, a downtime, a
//! failing item, swapped names, IPv6 link-local values and a dying agent must not do. Real
//! etcd, real namespaces and links, the real `nsagent` binary.
//!
//! Every test uses its own labels, namespace names and link names (a unique prefix) and
//! removes what it created, also on failure.

mod agent_support;
mod common;

use agent_support::*;
use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn named(n: &str) -> Value {
    json!({"type": "NAMED_NS", "name": n})
}

/// `ip -j [-4|-6] -n NS route show table all` as JSON objects.
fn routes(ns: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for family in ["-4", "-6"] {
        let text =
            try_ip(&["-j", family, "-n", ns, "route", "show", "table", "all"]).unwrap_or_default();
        if let Ok(Value::Array(a)) = serde_json::from_str(&text) {
            out.extend(a);
        }
    }
    out
}

/// The route to `dst` in `ns`, if any.
fn route_to(ns: &str, dst: &str) -> Option<Value> {
    routes(ns).into_iter().find(|r| r["dst"] == dst)
}

/// The neighbour entry of `ip` in `ns`, if any.
fn neighbour(ns: &str, ip_addr: &str) -> Option<Value> {
    let text = try_ip(&["-j", "-n", ns, "neigh", "show", "to", ip_addr]).unwrap_or_default();
    serde_json::from_str::<Vec<Value>>(&text)
        .ok()?
        .into_iter()
        .find(|n| n["dst"] == ip_addr)
}

/// Every address of link `name` in `ns`, link-local ones included, as `ip/len`.
fn all_addresses(ns: &str, name: &str) -> Vec<String> {
    let text = try_ip(&["-j", "-n", ns, "addr", "show", "dev", name]).unwrap_or_default();
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    v[0]["addr_info"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap_or(""), a["prefixlen"]))
        .collect()
}

async fn wait(what: &str, mut cond: impl FnMut() -> bool) {
    let ok = wait_until_async(Duration::from_secs(20), Duration::from_millis(20), || {
        cond()
    })
    .await;
    assert!(ok, "timed out waiting for {what}");
}

impl TestEnv {
    /// A pair `a` in `ns_a` (host `<p>a`-style names given) / `b` in `ns_b`.
    #[allow(clippy::too_many_arguments)]
    async fn put_pair(
        &self,
        (a, host_a, ns_a, addr_a): (&str, &str, &str, &[&str]),
        (b, host_b, ns_b, addr_b): (&str, &str, &str, &[&str]),
    ) {
        self.put("interface", a, veth_json(a, host_a, b, named(ns_a), addr_a))
            .await;
        self.put("interface", b, veth_json(b, host_b, a, named(ns_b), addr_b))
            .await;
    }

    /// The marks an agent recorded for `label`.
    async fn marks(&self, label: &str) -> Value {
        let key = format!("/vnf-agent/{label}/linux/owned/v1/marks");
        let v = self.etcd.get(&key).await.expect("marks record");
        serde_json::from_slice(&v).unwrap()
    }

    /// The mod revision of a key (0 when absent).
    async fn revision(&self, key: &str) -> i64 {
        let mut c = self.etcd.client().await;
        let resp = c.get(key, None).await.expect("etcd get");
        resp.kvs().first().map_or(0, |kv| kv.mod_revision())
    }
}

/// Issue 8 §1: two agents with different labels and default settings, with routes and
/// neighbour entries in one namespace, never delete each other's, also at their periodic
/// re-reads and after a restart; marks shared with a running agent refuse the start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_with_different_labels_keep_each_others_routes_and_entries() {
    let Some(env) = TestEnv::new("l") else { return };
    let (nsx, nsy, nsz) = (env.ns("x"), env.ns("y"), env.ns("z"));
    let label2 = format!("{}-2", env.label);
    let resync = ["--kernel-resync-interval-s", "1"];
    let mut first = env.agent_with(&resync);
    let mut second = AgentProcess::start(&env.etcd.endpoint(), &label2, &resync);
    // The first agent's items under its label; the second's under label2.
    env.put_pair(
        ("a1", &env.host("a1"), &nsx, &["10.71.0.1/24"]),
        ("b1", &env.host("b1"), &nsy, &["10.71.0.2/24"]),
    )
    .await;
    env.put_v(
        "route",
        "r1",
        json!({"name": "r1", "dst_ip_addr": "10.81.0.0/24",
        "gw_addr": "10.71.0.2", "interface": "a1", "namespace": named(&nsx)}),
    )
    .await;
    env.put_v(
        "arp",
        "n1",
        json!({"name": "n1", "interface": "a1", "ip_addr": "10.71.0.9",
        "hw_address": "02:00:00:71:00:09", "namespace": named(&nsx)}),
    )
    .await;
    let key2 =
        |kind: &str, name: &str| format!("/vnf-agent/{label2}/linux/config/v1/{kind}/{name}");
    let put2 = |kind: &'static str, name: &'static str, v: String| {
        let key = key2(kind, name);
        let etcd = &env.etcd;
        async move {
            etcd.put(&key, v).await;
        }
    };
    put2(
        "interface",
        "a2",
        veth_json("a2", &env.host("a2"), "b2", named(&nsx), &["10.72.0.1/24"]),
    )
    .await;
    put2(
        "interface",
        "b2",
        veth_json("b2", &env.host("b2"), "a2", named(&nsz), &["10.72.0.2/24"]),
    )
    .await;
    put2(
        "route",
        "r2",
        json!({"name": "r2", "dst_ip_addr": "10.82.0.0/24",
        "gw_addr": "10.72.0.2", "interface": "a2", "namespace": named(&nsx)})
        .to_string(),
    )
    .await;
    put2(
        "arp",
        "n2",
        json!({"name": "n2", "interface": "a2", "ip_addr": "10.72.0.9",
        "hw_address": "02:00:00:72:00:09", "namespace": named(&nsx)})
        .to_string(),
    )
    .await;

    let all_there = || {
        route_to(&nsx, "10.81.0.0/24").is_some()
            && route_to(&nsx, "10.82.0.0/24").is_some()
            && neighbour(&nsx, "10.71.0.9").is_some()
            && neighbour(&nsx, "10.72.0.9").is_some()
    };
    wait("both agents' routes and entries", all_there).await;
    let (m1, m2) = (env.marks(&env.label).await, env.marks(&label2).await);
    assert_ne!(m1["route_protocol"], m2["route_protocol"], "{m1} {m2}");
    assert_ne!(m1["link_group"], m2["link_group"], "{m1} {m2}");
    // `ip -j` prints a protocol number it has no name for as a string.
    let proto = |dst: &str| route_to(&nsx, dst).unwrap()["protocol"].clone();
    assert_eq!(
        proto("10.81.0.0/24"),
        json!(m1["route_protocol"].to_string())
    );
    assert_eq!(
        proto("10.82.0.0/24"),
        json!(m2["route_protocol"].to_string())
    );

    // Several periodic re-reads of both, then a restart of either: nothing goes.
    let steady = Instant::now() + Duration::from_secs(3);
    while Instant::now() < steady {
        assert!(
            all_there(),
            "an agent removed the other's routes or entries"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(second.stop());
    second.restart();
    first.kill9();
    first.restart();
    assert!(
        first
            .wait_log("in sync with etcd snapshot", 1, Duration::from_secs(20))
            .await
    );
    assert!(
        second
            .wait_log("in sync with etcd snapshot", 1, Duration::from_secs(20))
            .await
    );
    let steady = Instant::now() + Duration::from_secs(3);
    while Instant::now() < steady {
        assert!(
            all_there(),
            "a restarted agent removed the other's routes or entries"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        env.marks(&env.label).await,
        m1,
        "the marks survive restarts"
    );
    for log in [first.log(), second.log()] {
        assert!(!log.contains("deleted route"), "{log}");
        assert!(!log.contains("deleted neighbour"), "{log}");
    }

    // A third agent told to use the first one's protocol is refused while it runs.
    let taken = m1["route_protocol"].to_string();
    let label3 = format!("{}-3", env.label);
    let endpoint = env.etcd.endpoint();
    let out = run_agent_to_exit(
        &[
            "--etcd-endpoints",
            &endpoint,
            "--label",
            &label3,
            "--route-protocol",
            &taken,
            "--http-listen",
            "off",
        ],
        &[],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("label {} ", env.label))
            && stderr.contains(&format!("route protocol {taken}")),
        "{stderr}"
    );
}

/// Issue 8 §2: what the agent put into namespaces that no configuration mentions any more
/// (keys deleted while it was stopped) is removed at start; the summary counts routes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_was_applied_is_cleaned_after_the_agents_downtime() {
    let Some(env) = TestEnv::new("d") else { return };
    let (nsx, nsy, nsz) = (env.ns("x"), env.ns("y"), env.ns("z"));
    ip(&["netns", "add", &nsz]);
    ip(&["-n", &nsz, "link", "set", "lo", "up"]);
    let mut agent = env.agent_with(&[]);
    env.put_pair(
        ("a", &env.host("a"), &nsx, &["10.73.0.1/24"]),
        ("b", &env.host("b"), &nsy, &["10.73.0.2/24"]),
    )
    .await;
    env.put_v(
        "route",
        "r",
        json!({"name": "r", "dst_ip_addr": "10.93.0.0/24",
        "interface": "lo", "namespace": named(&nsz)}),
    )
    .await;
    env.wait_status("interface", "a", "applied", "").await;
    env.wait_status("route", "r", "applied", "").await;
    let records = format!("/vnf-agent/{}/linux/owned/v1/namespace/", env.label);
    let recorded: Vec<String> = env
        .etcd
        .get_prefix(&records)
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    for ns in [&nsx, &nsy, &nsz] {
        assert!(
            recorded.contains(&format!("{records}named/{ns}")),
            "{ns} not recorded: {recorded:?}"
        );
    }

    assert!(agent.stop());
    for (kind, name) in [("interface", "a"), ("interface", "b"), ("route", "r")] {
        env.del(kind, name).await;
    }
    agent.restart();
    assert!(
        agent
            .wait_log("in sync with etcd snapshot", 1, Duration::from_secs(20))
            .await
    );
    wait("the pair and the route to go", || {
        link(Some(&nsx), &env.host("a")).is_none()
            && link(Some(&nsy), &env.host("b")).is_none()
            && route_to(&nsz, "10.93.0.0/24").is_none()
    })
    .await;
    let log = agent.log();
    let summary = log
        .lines()
        .find(|l| l.contains("in sync with etcd snapshot"))
        .unwrap();
    assert!(summary.contains("routes 0/0/1"), "{summary}");
    assert!(summary.contains("links 0/0/1"), "{summary}");
    assert!(summary.contains("deleted=2"), "{summary}");
    assert!(
        log.contains("no configuration asks for it"),
        "removals are logged: {log}"
    );
    let ok = wait_until_async(Duration::from_secs(10), Duration::from_millis(50), || {
        futures_lite_block(env.etcd.get_prefix(&records)).is_empty()
    })
    .await;
    assert!(ok, "the namespace records are dropped once nothing is left");
}

/// Runs a future to completion on the current runtime from a synchronous closure.
fn futures_lite_block<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

/// Issue 8 §3: values the kernel would refuse are invalid up front; an item that keeps
/// failing stays `failed` between attempts and its retries write nothing for the healthy
/// pair beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_failing_item_disturbs_no_other_in_its_namespace() {
    let Some(env) = TestEnv::new("f") else { return };
    let (nsx, nsy) = (env.ns("x"), env.ns("y"));
    ip(&["netns", "add", &nsx]);
    // Someone else's link holds the name the failing pair wants.
    let taken = env.host("c1");
    ip(&[
        "-n",
        &nsx,
        "link",
        "add",
        &taken,
        "type",
        "veth",
        "peer",
        "name",
        &env.host("c9"),
    ]);
    let agent = env.agent_with(&[]);
    env.put_pair(
        ("h1", &env.host("h1"), &nsx, &["10.74.0.1/24"]),
        ("h2", &env.host("h2"), &nsy, &["10.74.0.2/24"]),
    )
    .await;
    env.wait_status("interface", "h1", "applied", "").await;
    // 132-character logical names: the ownership alias would not fit the kernel's limit.
    let (long_a, long_b) = ("a".repeat(132), "b".repeat(132));
    env.put_pair(
        (&long_a, &env.host("l1"), &nsx, &[]),
        (&long_b, &env.host("l2"), &nsy, &[]),
    )
    .await;
    env.wait_status("interface", &long_a, "invalid", "ownership alias")
        .await;
    let value = tempfile::NamedTempFile::new().unwrap();
    let long = veth_json(&long_a, &env.host("l1"), &long_b, named(&nsx), &[]);
    std::fs::write(value.path(), long).unwrap();
    let out = run_ctl(
        &[
            "--etcd-endpoints",
            &env.etcd.endpoint(),
            "--label",
            &env.label,
            "put",
            &format!("interface/{long_a}"),
            value.path().to_str().unwrap(),
        ],
        &[],
    );
    assert!(!out.status.success(), "nsagent-ctl put refuses it too");
    assert!(String::from_utf8_lossy(&out.stderr).contains("ownership alias"));

    env.put_pair(
        ("c1", &taken, &nsx, &["10.75.0.1/24"]),
        ("c2", &env.host("c2"), &nsy, &["10.75.0.2/24"]),
    )
    .await;
    env.wait_status("interface", "c1", "failed", "not owned by this agent")
        .await;
    let healthy = format!("/vnf-agent/{}/linux/status/v1/interface/h1", env.label);
    let before = env.revision(&healthy).await;
    let lines_before = agent.log().lines().count();
    // Several retries (100 ms, 200 ms, ... backoff): the failing item is never shown
    // pending, the healthy one is never written again.
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        let s = env.status("interface", "c1").await;
        assert_eq!(s["state"], "failed", "between attempts: {s}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        env.revision(&healthy).await,
        before,
        "h1's status was rewritten"
    );
    let new_lines: Vec<String> = agent
        .log()
        .lines()
        .skip(lines_before)
        .filter(|l| l.contains(" INFO ") || l.contains(" WARN ") || l.contains(" ERROR "))
        .map(str::to_string)
        .collect();
    assert!(new_lines.is_empty(), "retries are quiet: {new_lines:#?}");
    assert!(link(Some(&nsx), &env.host("h1")).is_some());
}

/// Issue 8 §4: host names swapped between two ends in one transaction converge, renamed in
/// place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_names_swapped_in_one_transaction_converge() {
    let Some(env) = TestEnv::new("s") else { return };
    let nsx = env.ns("x");
    let (pa, pb) = (env.host("pa"), env.host("pb"));
    let _agent = env.agent_with(&[]);
    env.put_pair(
        ("s1", &pa, &nsx, &["10.76.0.1/24"]),
        ("s2", &pb, &nsx, &["10.76.0.2/24"]),
    )
    .await;
    env.wait_status("interface", "s1", "applied", "").await;
    let index_a = link(Some(&nsx), &pa).unwrap().ifindex;
    let swapped = [
        (
            "s1",
            veth_json("s1", &pb, "s2", named(&nsx), &["10.76.0.1/24"]),
        ),
        (
            "s2",
            veth_json("s2", &pa, "s1", named(&nsx), &["10.76.0.2/24"]),
        ),
    ];
    let ops: Vec<etcd_client::TxnOp> = swapped
        .iter()
        .map(|(n, v)| etcd_client::TxnOp::put(env.key("interface", n), v.as_str(), None))
        .collect();
    let mut c = env.etcd.client().await;
    c.txn(etcd_client::Txn::new().and_then(ops)).await.unwrap();
    wait("the swap", || {
        link(Some(&nsx), &pb).is_some_and(|l| {
            l.ifindex == index_a && l.alias.as_deref().is_some_and(|a| a.ends_with("/s1/s2"))
        }) && link(Some(&nsx), &pa)
            .is_some_and(|l| l.alias.as_deref().is_some_and(|a| a.ends_with("/s2/s1")))
    })
    .await;
    env.wait_status("interface", "s1", "applied", "").await;
    env.wait_status("interface", "s2", "applied", "").await;
}

/// Issue 8 §4: IPv6 link-local gateways and addresses, and a bad address replaced by a good
/// one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_link_local_gateways_and_addresses_converge() {
    let Some(env) = TestEnv::new("6") else { return };
    let (nsx, nsy) = (env.ns("x"), env.ns("y"));
    let host = env.host("l1");
    let _agent = env.agent_with(&[]);
    env.put_pair(
        ("l1", &host, &nsx, &["2001:db8:77::1/64", "fe80::77:1/64"]),
        ("l2", &env.host("l2"), &nsy, &["2001:db8:77::2/64"]),
    )
    .await;
    env.put_v(
        "route",
        "ll",
        json!({"name": "ll", "dst_ip_addr": "2001:db8:99::/48",
        "gw_addr": "fe80::77:2", "interface": "l1", "namespace": named(&nsx)}),
    )
    .await;
    env.wait_status("route", "ll", "applied", "").await;
    let r = route_to(&nsx, "2001:db8:99::/48").expect("route via fe80::77:2");
    assert_eq!(r["gateway"], "fe80::77:2");
    assert!(all_addresses(&nsx, &host).contains(&"fe80::77:1/64".to_string()));
    // Removed from the configuration: removed from the link.
    env.put(
        "interface",
        "l1",
        veth_json("l1", &host, "l2", named(&nsx), &["2001:db8:77::1/64"]),
    )
    .await;
    wait("fe80::77:1 to go", || {
        !all_addresses(&nsx, &host).contains(&"fe80::77:1/64".to_string())
    })
    .await;
    // A loopback address is refused with its reason; a good one then applies.
    env.put(
        "interface",
        "l1",
        veth_json("l1", &host, "l2", named(&nsx), &["::1/128"]),
    )
    .await;
    env.wait_status("interface", "l1", "invalid", "loopback")
        .await;
    env.put(
        "interface",
        "l1",
        veth_json("l1", &host, "l2", named(&nsx), &["2001:db8:78::1/64"]),
    )
    .await;
    env.wait_status("interface", "l1", "applied", "").await;
}

/// Issue 8 §5: statuses and the liveness record live with the agent's lease: they vanish
/// when it is killed or stopped, and `nsagent-ctl status` says no agent runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_vanish_with_the_agent() {
    let Some(env) = TestEnv::new("v") else { return };
    let (nsx, nsy) = (env.ns("x"), env.ns("y"));
    let mut agent = env.agent_with(&[]);
    env.put_pair(
        ("e1", &env.host("e1"), &nsx, &[]),
        ("e2", &env.host("e2"), &nsy, &[]),
    )
    .await;
    let s = env.wait_status("interface", "e1", "applied", "").await;
    assert!(s["since"].as_str().is_some_and(|t| t.ends_with('Z')), "{s}");
    let live = env.wait_agent_running().await;
    assert_eq!(live["state"], "OK");
    assert_eq!(live["pid"], json!(agent.pid()));
    let ctl = |args: &[&str]| {
        let endpoint = env.etcd.endpoint();
        let mut all = vec!["--etcd-endpoints", &endpoint, "--label", &env.label];
        all.extend(args);
        run_ctl(&all, &[])
    };
    // An unknown name while the agent runs is not configured, not "is the agent running?".
    let out = ctl(&["status", "nosuch"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no item named nosuch is configured"));

    agent.kill9();
    let liveness = format!("/vnf-agent/{}/check/status/v1/agent", env.label);
    let gone = wait_until_async(Duration::from_secs(12), Duration::from_millis(100), || {
        futures_lite_block(env.etcd.get(&liveness)).is_none()
    })
    .await;
    assert!(gone, "the liveness record outlived a killed agent");
    env.wait_status_gone("interface", "e1").await;
    let out = ctl(&["status"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no agent with label"), "{stderr}");

    // A clean stop revokes the lease at once.
    agent.restart();
    env.wait_status("interface", "e1", "applied", "").await;
    assert!(agent.stop());
    assert!(
        env.etcd.get(&liveness).await.is_none(),
        "still there after a stop"
    );
    assert!(env.status("interface", "e1").await.is_null());
}

/// Issue 8 §5: the log reads like an operator's journal: one line per change of an item,
/// repairs say what changed, nothing per item when a restart finds everything in place, and
/// nothing periodic when nothing happens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_is_an_operators_journal() {
    let Some(env) = TestEnv::new("j") else { return };
    let (nsx, nsy) = (env.ns("x"), env.ns("y"));
    let host = env.host("j1");
    let mut agent = env.agent_with(&["--kernel-resync-interval-s", "1"]);
    env.put_pair(
        ("j1", &host, &nsx, &["10.77.0.1/24"]),
        ("j2", &env.host("j2"), &nsy, &[]),
    )
    .await;
    env.wait_status("interface", "j1", "applied", "").await;
    let key = env.key("interface", "j1");
    let info_lines = |log: &str, needle: &str| {
        log.lines()
            .filter(|l| l.contains(" INFO ") && l.contains(&key) && l.contains(needle))
            .count()
    };
    assert_eq!(info_lines(&agent.log(), "applied"), 1, "{}", agent.log());
    assert_eq!(info_lines(&agent.log(), "pending"), 0, "{}", agent.log());

    // A configured MTU change: one line saying what changed.
    let mut v: Value = serde_json::from_str(&veth_json(
        "j1",
        &host,
        "j2",
        named(&nsx),
        &["10.77.0.1/24"],
    ))
    .unwrap();
    v["mtu"] = json!(1400);
    env.put_v("interface", "j1", v).await;
    assert!(
        agent
            .wait_log("mtu 1500 -> 1400", 1, Duration::from_secs(20))
            .await
    );
    // Changed by hand: repaired, and logged as a repair.
    ip(&["-n", &nsx, "link", "set", "dev", &host, "mtu", "1300"]);
    assert!(
        agent
            .wait_log("repaired: link", 1, Duration::from_secs(20))
            .await
    );
    let log = agent.log();
    let repair = log.lines().find(|l| l.contains("repaired: link")).unwrap();
    assert!(
        repair.contains(" INFO ") && repair.contains("mtu 1300 -> 1400"),
        "{repair}"
    );
    assert_eq!(link(Some(&nsx), &host).unwrap().mtu, 1400);
    // An invalid value is a warning.
    env.put("interface", "bad", "{\"name\": \"bad\", \"mtu\": 5}")
        .await;
    assert!(agent.wait_log("invalid:", 1, Duration::from_secs(20)).await);
    let invalid = agent
        .log()
        .lines()
        .find(|l| l.contains("invalid:"))
        .unwrap()
        .to_string();
    assert!(invalid.contains(" WARN "), "{invalid}");

    // Restart with everything in place: no line per item, nothing written.
    assert!(agent.stop());
    agent.restart();
    assert!(
        agent
            .wait_log("in sync with etcd snapshot", 1, Duration::from_secs(20))
            .await
    );
    let log = agent.log();
    assert_eq!(info_lines(&log, ""), 0, "{log}");
    assert!(log.contains("created=0 updated=0 deleted=0"), "{log}");
    // Idle (with debug logging on): no planning lines.
    let quiet_from = agent.log().lines().count();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let later: Vec<String> = agent
        .log()
        .lines()
        .skip(quiet_from)
        .filter(|l| l.contains("planned"))
        .map(str::to_string)
        .collect();
    assert!(later.is_empty(), "periodic planning lines: {later:#?}");
}
