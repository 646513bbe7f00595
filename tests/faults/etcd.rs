//! etcd compacts past the agent's watch revision while the agent is cut off (a proxy cuts
//! its connections) or paused (SIGSTOP), long enough for its status lease to expire.

use super::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The liveness record of the agent of `env`, if present.
async fn liveness(env: &TestEnv) -> Option<Vec<u8>> {
    let key = format!("/vnf-agent/{}/check/status/v1/agent", env.label);
    env.etcd.get(&key).await
}

/// Waits until the agent's lease has expired: its liveness record and every status are gone.
async fn wait_lease_expired(env: &TestEnv) {
    let prefix = format!("/vnf-agent/{}/linux/status/", env.label);
    let deadline = std::time::Instant::now() + CONVERGE;
    while liveness(env).await.is_some() || !env.etcd.get_prefix(&prefix).await.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the agent's statuses outlive its lease"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Revision of the latest write to etcd.
async fn current_revision(env: &TestEnv) -> i64 {
    let resp = env.etcd.client().await.get("/", None).await.expect("get");
    resp.header().expect("header").revision()
}

/// What the compaction tests record before the agent is cut off.
struct Offline {
    /// `k1`/`k2`: kept as they are.
    kept: (Link, Link),
}

impl TestEnv {
    async fn put_json(&self, kind: &str, name: &str, v: Value) {
        self.put(kind, name, v.to_string()).await;
    }

    /// A pair `<n>1` in nsx (`10.211.<i>.1/24` and `extra`), `<n>2` in nsy (`.2`).
    async fn put_pair(&self, n: &str, i: u8, extra: &[&str]) {
        let (nsx, nsy) = (self.ns("x"), self.ns("y"));
        let (a, b) = (format!("{n}1"), format!("{n}2"));
        let first = format!("10.211.{i}.1/24");
        let mut addresses = vec![first.as_str()];
        addresses.extend(extra);
        self.put(
            "interface",
            &a,
            veth_json(&a, &self.host(&a), &b, named(&nsx), &addresses),
        )
        .await;
        let second = format!("10.211.{i}.2/24");
        self.put(
            "interface",
            &b,
            veth_json(&b, &self.host(&b), &a, named(&nsy), &[&second]),
        )
        .await;
    }

    /// Route `r1` in nsx to 10.77.0.0/16 via `gw` on `k1`.
    async fn put_route(&self, gw: &str) {
        let ns = named(&self.ns("x"));
        self.put_json(
            "route",
            "r1",
            json!({"name": "r1", "dst_ip_addr": "10.77.0.0/16", "gw_addr": gw,
                "interface": "k1", "namespace": ns}),
        )
        .await;
    }

    /// ARP entry `name` on `k1` in nsx for 10.211.0.`host`.
    async fn put_arp(&self, name: &str, host: u8) {
        let ns = named(&self.ns("x"));
        self.put_json(
            "arp",
            name,
            json!({"name": name, "interface": "k1", "ip_addr": format!("10.211.0.{host}"),
                "hw_address": format!("02:00:00:00:00:{host:02x}"), "namespace": ns}),
        )
        .await;
    }

    /// Writes the configuration of the compaction tests and waits until it is applied: pairs
    /// k (kept), c (changed later), d (deleted later), route r1, ARP entry a1.
    async fn put_before_cut(&self) -> Offline {
        self.put_pair("k", 0, &[]).await;
        self.put_pair("c", 1, &[]).await;
        self.put_pair("d", 2, &[]).await;
        self.put_route("10.211.0.2").await;
        self.put_arp("a1", 9).await;
        for (kind, name) in [
            ("interface", "k1"),
            ("interface", "k2"),
            ("interface", "c1"),
            ("interface", "d2"),
            ("route", "r1"),
            ("arp", "a1"),
        ] {
            self.wait_status(kind, name, "applied", "").await;
        }
        let k1 = link(Some(&self.ns("x")), &self.host("k1")).expect("k1");
        let k2 = link(Some(&self.ns("y")), &self.host("k2")).expect("k2");
        assert!(route_via(&self.ns("x"), "10.211.0.2"), "route r1 in place");
        Offline { kept: (k1, k2) }
    }

    /// While the agent cannot see etcd: several revisions of changes, then a compaction
    /// past all of them. c1 gets other addresses (in two writes), the d pair and a1 are
    /// deleted, a pair n and an entry a2 are added, r1 gets another gateway.
    async fn change_and_compact(&self) -> i64 {
        self.put_pair("c", 1, &["10.211.9.1/24"]).await;
        self.put_pair("c", 1, &["10.211.8.1/24"]).await;
        self.del("interface", "d1").await;
        self.del("interface", "d2").await;
        self.put_pair("n", 3, &[]).await;
        self.put_route("10.211.0.3").await;
        self.del("arp", "a1").await;
        self.put_arp("a2", 10).await;
        let revision = current_revision(self).await;
        self.etcd
            .client()
            .await
            .compact(revision, None)
            .await
            .expect("compact");
        revision
    }

    /// Waits until the kernel and the statuses match the configuration after
    /// [`Self::change_and_compact`], and checks that the kept pair was not re-created.
    async fn wait_converged_after_cut(&self, before: &Offline) {
        let (nsx, nsy) = (self.ns("x"), self.ns("y"));
        converge("the changes made while cut off", || {
            let c1 = link(Some(&nsx), &self.host("c1")).ok_or("c1 missing")?;
            if c1.addresses != ["10.211.1.1/24", "10.211.8.1/24"] {
                return Err(format!("c1: {:?}", c1.addresses));
            }
            for (ns, name) in [(&nsx, "d1"), (&nsy, "d2")] {
                if link(Some(ns), &self.host(name)).is_some() {
                    return Err(format!("{name} still there"));
                }
            }
            for (ns, name) in [(&nsx, "n1"), (&nsy, "n2")] {
                link(Some(ns), &self.host(name)).ok_or(format!("{name} missing"))?;
            }
            if !route_via(&nsx, "10.211.0.3") {
                return Err("route r1 not via 10.211.0.3".into());
            }
            let neigh = ip(&["-n", &nsx, "neigh", "show", "dev", &self.host("k1")]);
            if neigh.contains("10.211.0.9 ") || !neigh.contains("10.211.0.10 ") {
                return Err(format!("ARP entries: {neigh}"));
            }
            Ok(())
        })
        .await;
        for (kind, name) in [
            ("interface", "k1"),
            ("interface", "k2"),
            ("interface", "c1"),
            ("interface", "c2"),
            ("interface", "n1"),
            ("interface", "n2"),
            ("route", "r1"),
            ("arp", "a2"),
        ] {
            self.wait_status(kind, name, "applied", "").await;
        }
        for (kind, name) in [("interface", "d1"), ("interface", "d2"), ("arp", "a1")] {
            self.wait_status_gone(kind, name).await;
        }
        assert!(liveness(self).await.is_some(), "liveness record back");
        let k1 = link(Some(&nsx), &self.host("k1")).expect("k1");
        let k2 = link(Some(&nsy), &self.host("k2")).expect("k2");
        assert_eq!((k1, k2), before.kept, "the kept pair is untouched");
    }
}

/// True when namespace `ns` routes 10.77.0.0/16 via `gw`.
fn route_via(ns: &str, gw: &str) -> bool {
    try_ip(&["-n", ns, "route", "show", "10.77.0.0/16"])
        .is_ok_and(|r| r.contains(&format!("via {gw} ")))
}

/// The agent reaches etcd through a proxy that cuts its connections: meanwhile keys are
/// added, changed and deleted over several revisions, etcd compacts past all of them, and
/// the status lease expires. Back in touch, the agent is told that its watch revision is
/// gone, takes a fresh snapshot, writes exactly the differences, and publishes its statuses
/// again (none for the deleted items).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_while_the_agent_is_cut_off_gives_a_fresh_snapshot() {
    let Some(env) = TestEnv::new("l") else { return };
    let proxy = TcpProxy::new(&env.etcd.endpoint());
    let agent = AgentProcess::start(&proxy.endpoint(), &env.label, &[]);
    let before = env.put_before_cut().await;

    proxy.cut();
    let compacted = env.change_and_compact().await;
    // Cut off for longer than the status lease lives: its statuses go meanwhile.
    wait_lease_expired(&env).await;
    proxy.restore();

    let noticed = "etcd compacted the watched revision, taking a fresh snapshot";
    assert!(
        agent.wait_log(noticed, 1, CONVERGE).await,
        "the compaction was not noticed"
    );
    env.wait_converged_after_cut(&before).await;
    let log = agent.log();
    let resyncs: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("in sync with etcd snapshot"))
        .collect();
    assert_eq!(
        resyncs.len(),
        2,
        "the first snapshot and the fresh one: {resyncs:?}"
    );
    let line = log.lines().find(|l| l.contains(noticed)).unwrap();
    assert!(line.contains(&format!("compacted={compacted}")), "{line}");
    // Only the differences were written: c1's addresses, the d pair, the n pair, r1's
    // gateway, a1 and a2.
    assert!(
        resyncs[1].contains("links 1/1/1, routes 0/1/0, neighbours 1/0/1"),
        "{}",
        resyncs[1]
    );
}

/// The same changes and compaction while the agent is paused (SIGSTOP) until its status lease
/// has expired; after SIGCONT it converges and publishes everything again under a new lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_while_the_agent_is_paused_and_its_lease_expires() {
    let Some(env) = TestEnv::new("s") else { return };
    let agent = env.agent_with(&[]);
    let before = env.put_before_cut().await;

    let pid = Pid::from_raw(agent.pid() as i32);
    kill(pid, Signal::SIGSTOP).expect("SIGSTOP");
    env.change_and_compact().await;
    wait_lease_expired(&env).await;
    kill(pid, Signal::SIGCONT).expect("SIGCONT");

    // Whether the paused watch got the events before the compaction or is told that its
    // revision is gone (then it takes a fresh snapshot), the agent converges, and publishes
    // its liveness record and statuses again under a new lease.
    env.wait_converged_after_cut(&before).await;
    env.wait_agent_running().await;
}
