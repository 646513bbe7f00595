//! The agent against a three-member etcd cluster on loopback: the member its watch runs on is
//! killed (SIGKILL) during a stream of puts, and every pair must still reach the kernel.
//!
//! The 3 s bound after the last put is a generous correctness deadline (nothing lost, no
//! stall until a keep-alive notices the dead member), not a speed measurement. The test
//! prints its figures for the record.

mod agent_support;
mod common;

use agent_support::*;
use common::cluster::EtcdCluster;
use common::*;
use etcd_client::Client;
use serde_json::json;
use std::time::{Duration, Instant};

/// Pairs put one by one (two keys each).
const PAIRS: usize = 100;
/// The watch's member is killed after this many pairs.
const KILL_AFTER: usize = PAIRS / 3;
/// Every pair must be in the kernel this long after the last put.
const CONVERGENCE: Duration = Duration::from_secs(3);

/// Puts `key` through the first of `clients` that takes it, moving on to the next one when a
/// member fails (for instance while the cluster elects a new leader).
async fn put_somewhere(clients: &mut [Client], key: &str, value: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut errors = Vec::new();
    while Instant::now() < deadline {
        for c in clients.iter_mut() {
            let put = tokio::time::timeout(Duration::from_secs(2), c.put(key, value, None));
            match put.await {
                Ok(Ok(_)) => return,
                Ok(Err(e)) => errors.push(e.to_string()),
                Err(_) => errors.push("timeout".into()),
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("put {key} failed on every member: {errors:?}");
}

/// Seconds of the day of a log line's timestamp (`2026-01-01T12:34:56.789Z ...`).
fn log_seconds(line: &str) -> f64 {
    let time = line.get(11..26).unwrap_or_default();
    let mut parts = time.split(':').map(|p| p.parse::<f64>().unwrap_or(0.0));
    let (h, m, s) = (
        parts.next().unwrap_or(0.0),
        parts.next().unwrap_or(0.0),
        parts.next().unwrap_or(0.0),
    );
    h * 3600.0 + m * 60.0 + s
}

/// Names of the links in namespace `ns` that start with `prefix`.
fn link_names(ns: &str, prefix: &str) -> Vec<String> {
    links(Some(ns))
        .into_iter()
        .map(|l| l.name)
        .filter(|n| n.starts_with(prefix))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_watched_member_during_a_stream_of_puts_loses_nothing() {
    if !require_root() || !etcd_installed() {
        return;
    }
    let p = unique_prefix("c");
    let label = format!("test-{p}");
    let (nsx, nsy) = (format!("{p}x"), format!("{p}y"));
    let _namespaces = NetnsGuard::new([nsx.clone(), nsy.clone()]);
    let mut cluster = EtcdCluster::start(3);
    let agent = AgentProcess::start(&cluster.endpoints(), &label, &[]);
    let prefix = format!("/vnf-agent/{label}/linux/config/v1/");
    let watched = cluster.member(0).url();
    assert!(
        agent
            .wait_log(
                &format!("watching {prefix} on {watched} "),
                1,
                Duration::from_secs(15)
            )
            .await,
        "the agent does not report its watch on the first member {watched}"
    );
    let mut writers = vec![
        cluster.member(1).client().await,
        cluster.member(2).client().await,
    ];

    let named = |n: &str| json!({"type": "NAMED_NS", "name": n});
    let mut killed_at = None;
    for i in 0..PAIRS {
        if i == KILL_AFTER {
            cluster.member_mut(0).stop();
            killed_at = Some(Instant::now());
        }
        let (a, b) = (format!("{p}{i}a"), format!("{p}{i}b"));
        let end = |name: &str, host: &str, peer: &str, ns: &str| {
            veth_json(name, host, peer, named(ns), &[])
        };
        let key = |name: &str| format!("{prefix}interface/{name}");
        put_somewhere(
            &mut writers,
            &key(&format!("a{i}")),
            &end(&format!("a{i}"), &a, &format!("b{i}"), &nsx),
        )
        .await;
        put_somewhere(
            &mut writers,
            &key(&format!("b{i}")),
            &end(&format!("b{i}"), &b, &format!("a{i}"), &nsy),
        )
        .await;
    }
    let last_put = Instant::now();
    let killed_at = killed_at.unwrap();

    let complete = |ns: &str| link_names(ns, &p).len() == PAIRS;
    let converged = wait_until_async(CONVERGENCE, Duration::from_millis(20), || {
        complete(&nsx) && complete(&nsy)
    })
    .await;
    let missing = 2 * PAIRS - link_names(&nsx, &p).len() - link_names(&nsy, &p).len();
    assert!(
        converged,
        "{missing} of {} ends missing {CONVERGENCE:?} after the last put",
        2 * PAIRS
    );
    let all_in = last_put.elapsed();
    let log = agent.log();
    let line = |needle: &str| {
        log.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in the agent log"))
    };
    let (lost, resumed) = (
        line("etcd connection lost"),
        line("etcd reachable again: watching"),
    );
    assert!(!resumed.contains(&watched), "resumed on the dead member");
    eprintln!(
        "figures: watch lost to resumed {:.0} ms (agent log); puts after the kill took {:?}; \
         every pair in the kernel {:?} after the last put",
        (log_seconds(resumed) - log_seconds(lost)) * 1000.0,
        last_put - killed_at,
        all_in
    );
    eprintln!("{lost}\n{resumed}");

    // The status publisher moved to a live member too.
    let mut reader = cluster.member(1).client().await;
    let last = format!(
        "/vnf-agent/{label}/linux/status/v1/interface/a{}",
        PAIRS - 1
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let resp = reader.get(last.as_str(), None).await.unwrap();
        let state = resp
            .kvs()
            .first()
            .and_then(|kv| serde_json::from_slice::<serde_json::Value>(kv.value()).ok())
            .map(|v| v["state"].clone());
        if state == Some(json!("applied")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{last} is {state:?}, not applied"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(agent);
}
