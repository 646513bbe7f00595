//! End-to-end tests of the `nsagent` binary: a real etcd, real namespaces, real links.
//!
//! Every test uses its own label, namespace names and link names (a unique prefix) and
//! removes what it created, also on failure.

mod agent_support;
mod common;

use agent_support::*;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(20);

impl TestEnv {
    fn agent(&self) -> AgentProcess {
        self.agent_with(&[])
    }
}

fn named(n: &str) -> Value {
    json!({"type": "NAMED_NS", "name": n})
}

async fn wait_link(ns: Option<&str>, name: &str, cond: impl Fn(&Link) -> bool) -> Link {
    let mut last = None;
    let ok = wait_until_async(WAIT, POLL, || {
        last = link(ns, name);
        last.as_ref().is_some_and(&cond)
    })
    .await;
    assert!(
        ok,
        "link {name} in {ns:?} never matched; last seen: {last:?}"
    );
    last.unwrap()
}

async fn wait_gone(ns: Option<&str>, name: &str) {
    let ok = wait_until_async(WAIT, POLL, || link(ns, name).is_none()).await;
    assert!(ok, "link {name} in {ns:?} is still there");
}

fn netns_exists(name: &str) -> bool {
    std::path::Path::new(&format!("/var/run/netns/{name}")).exists()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pair_across_existing_and_new_named_namespaces_with_ping() {
    let Some(env) = TestEnv::new("a") else { return };
    let (nsx, nsy) = (env.ns("x"), env.ns("y"));
    ip(&["netns", "add", &nsx]);
    let agent = env.agent();

    let mut v1: Value = serde_json::from_str(&veth_json(
        "e1",
        &env.host("1"),
        "e2",
        named(&nsx),
        &["10.201.0.1/24", "2001:db8:201::1/64"],
    ))
    .unwrap();
    v1["phys_address"] = json!("d2:74:8c:12:67:d2");
    v1["mtu"] = json!(1400);
    env.put("interface", "e1", v1.to_string()).await;
    let s = env.wait_status("interface", "e1", "pending", "").await;
    assert_eq!(s["detail"], "peer interface `e2` is not configured");
    // One end alone creates nothing, and the second namespace is not needed yet.
    assert!(link(Some(&nsx), &env.host("1")).is_none());
    assert!(!netns_exists(&nsy));

    env.put(
        "interface",
        "e2",
        veth_json("e2", &env.host("2"), "e1", named(&nsy), &["10.201.0.2/24"]),
    )
    .await;
    let l1 = wait_link(Some(&nsx), &env.host("1"), |l| l.addresses.len() == 2).await;
    let l2 = wait_link(Some(&nsy), &env.host("2"), |l| l.addresses.len() == 1).await;
    assert!(
        netns_exists(&nsy),
        "the missing named namespace was created"
    );
    assert_eq!(l1.mtu, 1400);
    assert_eq!(l1.mac, "d2:74:8c:12:67:d2");
    assert!(l1.up && l2.up);
    assert_eq!(l1.addresses, vec!["10.201.0.1/24", "2001:db8:201::1/64"]);
    assert_eq!(l2.addresses, vec!["10.201.0.2/24"]);
    assert_eq!(
        l1.alias.as_deref(),
        Some(format!("/vnf-agent/{}/e1/e2", env.label).as_str())
    );
    let group = nsagent::keys::KeyTree::new(&env.label).default_link_group();
    assert_eq!(l1.group, group.to_string());
    assert_eq!(l2.group, group.to_string());
    env.wait_status("interface", "e1", "applied", "").await;
    env.wait_status("interface", "e2", "applied", "").await;

    let ping = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &nsx,
            "ping",
            "-c",
            "1",
            "-W",
            "2",
            "10.201.0.2",
        ])
        .output()
        .expect("ping");
    assert!(
        ping.status.success(),
        "ping across the pair failed: {}",
        String::from_utf8_lossy(&ping.stdout)
    );
    drop(agent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_one_end_removes_the_pair_and_putting_it_back_restores_it() {
    let Some(env) = TestEnv::new("b") else { return };
    let (nsx, nsy) = (env.ns("x"), env.ns("y"));
    let _agent = env.agent();
    let e2 = veth_json("e2", &env.host("2"), "e1", named(&nsy), &["10.202.0.2/24"]);
    env.put(
        "interface",
        "e1",
        veth_json("e1", &env.host("1"), "e2", named(&nsx), &["10.202.0.1/24"]),
    )
    .await;
    env.put("interface", "e2", e2.clone()).await;
    wait_link(Some(&nsx), &env.host("1"), |_| true).await;
    wait_link(Some(&nsy), &env.host("2"), |_| true).await;

    env.del("interface", "e2").await;
    wait_gone(Some(&nsx), &env.host("1")).await;
    wait_gone(Some(&nsy), &env.host("2")).await;
    // An earlier pending status ("reading the named namespace ...") may still be in etcd
    // for a moment after the links are gone: wait for this exact one.
    let s = env
        .wait_status("interface", "e1", "pending", "is not configured")
        .await;
    assert_eq!(s["detail"], "peer interface `e2` is not configured");
    // The status of a deleted item is removed.
    env.wait_status_gone("interface", "e2").await;

    env.put("interface", "e2", e2).await;
    let l1 = wait_link(Some(&nsx), &env.host("1"), |l| !l.addresses.is_empty()).await;
    let l2 = wait_link(Some(&nsy), &env.host("2"), |l| !l.addresses.is_empty()).await;
    assert_eq!(l1.addresses, vec!["10.202.0.1/24"]);
    assert_eq!(l2.addresses, vec!["10.202.0.2/24"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_place_changes_keep_the_ifindex() {
    let Some(env) = TestEnv::new("c") else { return };
    let (nsx, nsy) = (env.ns("x"), env.ns("y"));
    let _agent = env.agent();
    env.put(
        "interface",
        "e1",
        veth_json("e1", &env.host("1"), "e2", named(&nsx), &["10.203.0.1/24"]),
    )
    .await;
    env.put(
        "interface",
        "e2",
        veth_json("e2", &env.host("2"), "e1", named(&nsy), &["10.203.0.2/24"]),
    )
    .await;
    let before = wait_link(Some(&nsx), &env.host("1"), |l| !l.addresses.is_empty()).await;
    let peer_before = wait_link(Some(&nsy), &env.host("2"), |_| true).await;

    let mut v: Value = serde_json::from_str(&veth_json(
        "e1",
        &env.host("r"),
        "e2",
        named(&nsx),
        &["10.203.1.1/24", "2001:db8:203::1/64"],
    ))
    .unwrap();
    v["mtu"] = json!(1280);
    v["phys_address"] = json!("02:11:22:33:44:55");
    v["enabled"] = json!(false);
    env.put("interface", "e1", v.to_string()).await;
    wait_gone(Some(&nsx), &env.host("1")).await;
    let after = wait_link(Some(&nsx), &env.host("r"), |l| {
        l.mtu == 1280 && l.addresses.len() == 2
    })
    .await;
    assert_eq!(
        after.ifindex, before.ifindex,
        "renamed and changed in place"
    );
    assert_eq!(after.mac, "02:11:22:33:44:55");
    assert!(!after.up);
    assert_eq!(after.addresses, vec!["10.203.1.1/24", "2001:db8:203::1/64"]);
    let peer_after = link(Some(&nsy), &env.host("2")).expect("peer still there");
    assert_eq!(
        peer_after.ifindex, peer_before.ifindex,
        "the peer is untouched"
    );

    // Admin state back up, still the same link.
    v["enabled"] = json!(true);
    env.put("interface", "e1", v.to_string()).await;
    let up = wait_link(Some(&nsx), &env.host("r"), |l| l.up).await;
    assert_eq!(up.ifindex, before.ifindex);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pid_and_file_namespaces_follow_the_process() {
    let Some(env) = TestEnv::new("d") else { return };
    let nsy = env.ns("y");
    ip(&["netns", "add", &nsy]);
    let mut proc_ = NsProcess::start();
    let _agent = env.agent();
    env.put(
        "interface",
        "e1",
        veth_json(
            "e1",
            &env.host("1"),
            "e2",
            json!({"type": "PID_REF_NS", "pid": proc_.pid()}),
            &["10.204.0.1/24"],
        ),
    )
    .await;
    env.put(
        "interface",
        "e2",
        veth_json(
            "e2",
            &env.host("2"),
            "e1",
            json!({"type": "FILE_REF_NS", "filepath": format!("/var/run/netns/{nsy}")}),
            &["10.204.0.2/24"],
        ),
    )
    .await;
    wait_link(Some(&nsy), &env.host("2"), |l| !l.addresses.is_empty()).await;
    // The two ends get their addresses concurrently: wait for this one too.
    let mut inside = None;
    let ok = wait_until_async(WAIT, POLL, || {
        inside = proc_.link(&env.host("1"));
        inside.as_ref().is_some_and(|l| !l.addresses.is_empty())
    })
    .await;
    assert!(ok, "end inside the process's namespace: {inside:?}");
    assert_eq!(inside.unwrap().addresses, vec!["10.204.0.1/24"]);

    // A FILE reference to something that is not a namespace: an error on that item only.
    env.put(
        "interface",
        "f1",
        veth_json(
            "f1",
            &env.host("f"),
            "f2",
            json!({"type": 3, "filepath": "/etc/hostname"}),
            &[],
        ),
    )
    .await;
    env.put(
        "interface",
        "f2",
        veth_json("f2", &env.host("g"), "f1", Value::Null, &[]),
    )
    .await;
    let s = env.wait_status("interface", "f1", "failed", "").await;
    let detail = s["detail"].as_str().unwrap();
    assert!(detail.contains("field `namespace.filepath`"), "{s}");
    assert!(detail.contains("not a network namespace"), "{s}");
    assert!(link(None, &env.host("g")).is_none());

    // The process exits: its items are withdrawn, the peer end goes too.
    proc_.kill();
    wait_gone(Some(&nsy), &env.host("2")).await;
    let s = env.wait_status("interface", "e2", "pending", "").await;
    assert!(s["detail"].as_str().unwrap().contains("pid"), "{s}");
}

/// With the namespace poll practically off (one check an hour), namespaces that go away are
/// still noticed at once: a process exiting (its pidfd) and `ip netns del` (the entry
/// removed from /var/run/netns). Their items are withdrawn, and their peer ends in the
/// default namespace go once the agent lets go of the namespace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_that_go_away_are_noticed_without_polling() {
    let Some(env) = TestEnv::new("v") else { return };
    let mut proc_ = NsProcess::start();
    let nsx = env.ns("x");
    let _agent = env.agent_with(&["--namespace-check-interval-ms", "3600000"]);
    let pid_ns = json!({"type": "PID_REF_NS", "pid": proc_.pid()});
    for (name, host, peer, ns) in [
        ("p1", "1", "p2", pid_ns),
        ("p2", "2", "p1", Value::Null),
        ("q1", "3", "q2", named(&nsx)),
        ("q2", "4", "q1", Value::Null),
    ] {
        let value = veth_json(name, &env.host(host), peer, ns, &[]);
        env.put("interface", name, value).await;
    }
    wait_link(None, &env.host("2"), |_| true).await;
    wait_link(None, &env.host("4"), |_| true).await;
    wait_link(Some(&nsx), &env.host("3"), |_| true).await;

    proc_.kill();
    wait_gone(None, &env.host("2")).await;
    let s = env.wait_status("interface", "p2", "pending", "").await;
    assert!(s["detail"].as_str().unwrap().contains("pid"), "{s}");
    assert!(link(None, &env.host("4")).is_some(), "the other pair stays");

    // A named namespace deleted by hand is noticed at once too, made again, and its pair
    // re-created in it (issue 10 §2): the other end is a new link.
    let before = link(None, &env.host("4")).unwrap().ifindex;
    ip(&["netns", "del", &nsx]);
    wait_link(None, &env.host("4"), |l| l.ifindex != before).await;
    wait_link(Some(&nsx), &env.host("3"), |_| true).await;
    env.wait_status("interface", "q2", "applied", "").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resync_after_offline_changes_touches_only_what_differs() {
    let Some(env) = TestEnv::new("e") else { return };
    let (nsx, nsy) = (env.ns("x"), env.ns("y"));
    let mut agent = env.agent();
    for (i, a) in ["k", "c", "d"].iter().enumerate() {
        env.put(
            "interface",
            &format!("{a}1"),
            veth_json(
                &format!("{a}1"),
                &env.host(&format!("{a}1")),
                &format!("{a}2"),
                named(&nsx),
                &[&format!("10.205.{i}.1/24")],
            ),
        )
        .await;
        env.put(
            "interface",
            &format!("{a}2"),
            veth_json(
                &format!("{a}2"),
                &env.host(&format!("{a}2")),
                &format!("{a}1"),
                Value::Null,
                &[&format!("10.205.{i}.2/24")],
            ),
        )
        .await;
    }
    let kept = wait_link(Some(&nsx), &env.host("k1"), |_| true).await;
    let kept_peer = wait_link(None, &env.host("k2"), |_| true).await;
    let changed = wait_link(Some(&nsx), &env.host("c1"), |_| true).await;
    wait_link(Some(&nsx), &env.host("d1"), |_| true).await;

    // SIGTERM: the agent stops cleanly and leaves the kernel as it is.
    assert!(agent.stop(), "clean exit on SIGTERM");
    assert!(link(Some(&nsx), &env.host("k1")).is_some());

    // While it is down: change c1, delete d1/d2, add n1/n2, and configure o1/o2 whose name
    // is taken by a link someone else made.
    env.put(
        "interface",
        "c1",
        veth_json(
            "c1",
            &env.host("c1"),
            "c2",
            named(&nsx),
            &["10.205.1.1/24", "10.205.9.1/24"],
        ),
    )
    .await;
    env.del("interface", "d1").await;
    env.del("interface", "d2").await;
    env.put(
        "interface",
        "n1",
        veth_json("n1", &env.host("n1"), "n2", named(&nsx), &[]),
    )
    .await;
    env.put(
        "interface",
        "n2",
        veth_json("n2", &env.host("n2"), "n1", named(&nsy), &[]),
    )
    .await;
    // A link someone else made (a veth: the dummy type is not built into every kernel).
    ip(&[
        "-n",
        &nsx,
        "link",
        "add",
        &env.host("o1"),
        "type",
        "veth",
        "peer",
        "name",
        &env.host("o9"),
    ]);
    let foreign = link(Some(&nsx), &env.host("o1")).unwrap();
    env.put(
        "interface",
        "o1",
        veth_json("o1", &env.host("o1"), "o2", named(&nsx), &[]),
    )
    .await;
    env.put(
        "interface",
        "o2",
        veth_json("o2", &env.host("o2"), "o1", Value::Null, &[]),
    )
    .await;

    agent.restart();
    assert!(
        agent.wait_log("in sync with etcd snapshot", 1, WAIT).await,
        "resync did not finish"
    );
    let log = agent.log();
    let line = log
        .lines()
        .find(|l| l.contains("in sync with etcd snapshot"))
        .unwrap();
    assert!(line.contains("created=1"), "{line}");
    assert!(line.contains("updated=1"), "{line}");
    assert!(line.contains("deleted=1"), "{line}");

    let k = link(Some(&nsx), &env.host("k1")).unwrap();
    assert_eq!(k.ifindex, kept.ifindex, "unchanged link kept");
    assert_eq!(
        link(None, &env.host("k2")).unwrap().ifindex,
        kept_peer.ifindex
    );
    let c = link(Some(&nsx), &env.host("c1")).unwrap();
    assert_eq!(c.ifindex, changed.ifindex, "changed in place");
    assert_eq!(c.addresses, vec!["10.205.1.1/24", "10.205.9.1/24"]);
    assert!(
        link(Some(&nsx), &env.host("d1")).is_none(),
        "deleted config removed"
    );
    assert!(link(None, &env.host("d2")).is_none());
    wait_link(Some(&nsy), &env.host("n2"), |_| true).await;
    // The foreign link is left alone, and the item says why it is not applied.
    let s = env.wait_status("interface", "o1", "failed", "").await;
    assert!(s["detail"].as_str().unwrap().contains("not owned"), "{s}");
    assert_eq!(link(Some(&nsx), &env.host("o1")), Some(foreign));
    assert!(link(None, &env.host("o2")).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_values_are_reported_once_and_good_values_still_apply() {
    let Some(env) = TestEnv::new("f") else { return };
    let (nsx, nsy) = (env.ns("x"), env.ns("y"));
    let mut agent = env.agent();
    let bad: Vec<(&str, String, &str)> = vec![
        ("m1", "{\"name\": \"m1\",".to_string(), ""),
        ("u1", json!({"name": "u1", "hostIfNme": "x", "veth": {"peer_if_name": "g2"}}).to_string(), "host_if_name"),
        ("t1", json!({"name": "t1", "type": "BRIDGE", "veth": {"peer_if_name": "g2"}}).to_string(), "type"),
        ("i1", json!({"name": "i1", "ip_addresses": ["10.0.0.300/24"], "veth": {"peer_if_name": "g2"}}).to_string(), "ip_addresses[0]"),
        ("a1", json!({"name": "a1", "phys_address": "zz:00:00:00:00:01", "veth": {"peer_if_name": "g2"}}).to_string(), "phys_address"),
        ("l1", json!({"name": "l1", "host_if_name": "this-name-is-too-long", "veth": {"peer_if_name": "g2"}}).to_string(), "host_if_name"),
        ("s1", json!({"name": "s1", "veth": {"peer_if_name": "s1"}}).to_string(), "veth.peer_if_name"),
        ("w1", json!({"name": "other", "veth": {"peer_if_name": "g2"}}).to_string(), "name"),
    ];
    for (name, value, _) in &bad {
        env.put("interface", name, value.clone()).await;
    }
    env.put(
        "interface",
        "g1",
        veth_json("g1", &env.host("g1"), "g2", named(&nsx), &["10.206.0.1/24"]),
    )
    .await;
    env.put(
        "interface",
        "g2",
        veth_json("g2", &env.host("g2"), "g1", named(&nsy), &["10.206.0.2/24"]),
    )
    .await;
    // Same host name in the same namespace, written later: a conflict naming the other key.
    env.put(
        "interface",
        "h1",
        veth_json("h1", &env.host("g1"), "h2", named(&nsx), &[]),
    )
    .await;
    env.put(
        "interface",
        "h2",
        veth_json("h2", &env.host("h2"), "h1", named(&nsy), &[]),
    )
    .await;

    wait_link(Some(&nsx), &env.host("g1"), |l| !l.addresses.is_empty()).await;
    for (name, _, field) in &bad {
        let s = env.wait_status("interface", name, "invalid", "").await;
        let detail = s["detail"].as_str().unwrap();
        assert!(
            detail.contains(&env.key("interface", name)),
            "names the key: {detail}"
        );
        if !field.is_empty() {
            assert!(
                detail.contains(&format!("`{field}`")),
                "names field {field}: {detail}"
            );
        }
    }
    let s = env.wait_status("interface", "h1", "invalid", "").await;
    assert!(
        s["detail"]
            .as_str()
            .unwrap()
            .contains(&env.key("interface", "g1")),
        "{s}"
    );
    assert!(agent.running(), "bad values do not stop the agent");
    // Its address is in the kernel before its status reaches etcd.
    env.wait_status("interface", "g1", "applied", "").await;
    // The control tool shows the same statuses.
    env.wait_agent_running().await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nsagent-ctl"))
        .args([
            "--etcd-endpoints",
            &env.etcd.endpoint(),
            "--label",
            &env.label,
            "status",
        ])
        .output()
        .expect("nsagent-ctl status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("interface/u1 ")
            && l.contains("invalid")
            && l.contains("hostIfNme")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("interface/g1 ") && l.contains("applied")),
        "{text}"
    );

    // Logged once each, even while other items keep changing.
    env.put(
        "interface",
        "g2",
        veth_json("g2", &env.host("g2"), "g1", named(&nsy), &["10.206.0.3/24"]),
    )
    .await;
    wait_link(Some(&nsy), &env.host("g2"), |l| {
        l.addresses == vec!["10.206.0.3/24"]
    })
    .await;
    let log = agent.log();
    for (name, _, _) in &bad {
        let key = env.key("interface", name);
        let n = log
            .lines()
            .filter(|l| l.contains("invalid") && l.contains(&key))
            .count();
        assert_eq!(n, 1, "{key} logged {n} times");
    }

    // Fixing a value applies it.
    env.put(
        "interface",
        "s1",
        veth_json("s1", &env.host("s1"), "s2", named(&nsx), &[]),
    )
    .await;
    env.put(
        "interface",
        "s2",
        veth_json("s2", &env.host("s2"), "s1", named(&nsy), &[]),
    )
    .await;
    wait_link(Some(&nsy), &env.host("s2"), |_| true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_killed_and_restarted_while_the_agent_runs() {
    let Some(mut env) = TestEnv::new("g") else {
        return;
    };
    let (nsx, nsy) = (env.ns("x"), env.ns("y"));
    let mut agent = env.agent();
    env.put(
        "interface",
        "e1",
        veth_json("e1", &env.host("1"), "e2", named(&nsx), &["10.207.0.1/24"]),
    )
    .await;
    env.put(
        "interface",
        "e2",
        veth_json("e2", &env.host("2"), "e1", named(&nsy), &["10.207.0.2/24"]),
    )
    .await;
    let before = wait_link(Some(&nsx), &env.host("1"), |_| true).await;

    env.etcd.stop();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(agent.running(), "the agent survives losing etcd");
    assert_eq!(
        link(Some(&nsx), &env.host("1")).unwrap().ifindex,
        before.ifindex
    );

    env.etcd.start();
    env.del("interface", "e2").await;
    env.put(
        "interface",
        "n1",
        veth_json("n1", &env.host("n1"), "n2", named(&nsx), &[]),
    )
    .await;
    env.put(
        "interface",
        "n2",
        veth_json("n2", &env.host("n2"), "n1", named(&nsy), &[]),
    )
    .await;
    wait_gone(Some(&nsx), &env.host("1")).await;
    wait_link(Some(&nsy), &env.host("n2"), |_| true).await;
    assert!(agent.running());
    drop(agent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_during_bulk_apply_leaves_only_marked_links_and_restart_completes() {
    let Some(env) = TestEnv::new("h") else { return };
    let (nsx, nsy) = (env.ns("x"), env.ns("y"));
    let group = nsagent::keys::KeyTree::new(&env.label)
        .default_link_group()
        .to_string();
    let mut agent = env.agent();
    const PAIRS: usize = 60;
    let mut ops = Vec::new();
    for i in 0..PAIRS {
        let (a, b) = (format!("a{i}"), format!("b{i}"));
        ops.push(etcd_client::TxnOp::put(
            env.key("interface", &a),
            veth_json(
                &a,
                &env.host(&a),
                &b,
                named(&nsx),
                &[&format!("10.208.{i}.1/24")],
            ),
            None,
        ));
        ops.push(etcd_client::TxnOp::put(
            env.key("interface", &b),
            veth_json(
                &b,
                &env.host(&b),
                &a,
                named(&nsy),
                &[&format!("10.208.{i}.2/24")],
            ),
            None,
        ));
    }
    let mut c = env.etcd.client().await;
    c.txn(etcd_client::Txn::new().and_then(ops))
        .await
        .expect("txn");
    // Kill it as soon as the first links exist, in the middle of the bulk apply.
    let started = wait_until_async(WAIT, Duration::from_millis(1), || {
        netns_exists(&nsx) && links(Some(&nsx)).iter().any(|l| l.name.starts_with(&env.p))
    })
    .await;
    assert!(started);
    agent.kill9();
    let ours = |l: &Link| l.name.starts_with(&env.p);
    for ns in [&nsx, &nsy] {
        for l in links(Some(ns)).iter().filter(|l| ours(l)) {
            assert_eq!(l.group, group, "{} exists unmarked after the crash", l.name);
        }
    }
    agent.restart();
    for i in 0..PAIRS {
        wait_link(Some(&nsx), &env.host(&format!("a{i}")), |l| {
            l.alias.is_some() && !l.addresses.is_empty()
        })
        .await;
        wait_link(Some(&nsy), &env.host(&format!("b{i}")), |l| {
            l.alias.is_some() && !l.addresses.is_empty()
        })
        .await;
    }
    for ns in [&nsx, &nsy] {
        let n = links(Some(ns)).iter().filter(|l| ours(l)).count();
        assert_eq!(n, PAIRS, "exactly one end per pair in {ns}");
    }
}
