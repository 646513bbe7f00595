//! End-to-end tests of microservice references: the `nsagent` binary, a real etcd, a real
//! (private) Docker engine (`DOCKER_HOST`, image `NSAGENT_TEST_IMAGE`), real namespaces.

mod agent_support;
mod common;
mod docker_support;

use agent_support::*;
use docker_support::*;
use serde_json::json;
use std::time::Duration;
use tokio::task::block_in_place;

impl TestEnv {
    fn nsx(&self) -> String {
        format!("{}x", self.p)
    }

    fn agent(&self, docker: &Docker) -> AgentProcess {
        self.agent_with(&["--docker-host", docker.host()])
    }

    /// Puts a pair: `m1` inside microservice `ms` (10.220.N.1/24), `m2` in nsx (.2).
    async fn put_pair(&self, ms: &str, n: u8) {
        let (m1, m2) = (format!("m{n}a"), format!("m{n}b"));
        self.put_v(
            "interface",
            &m1,
            json!({"name": m1, "host_if_name": "eth9", "enabled": true,
            "ip_addresses": [format!("10.220.{n}.1/24")],
            "namespace": {"type": "MICROSERVICE_REF_NS", "microservice": ms},
            "veth": {"peer_if_name": m2}}),
        )
        .await;
        self.put_v(
            "interface",
            &m2,
            json!({"name": m2, "host_if_name": format!("{}{n}", self.p),
            "enabled": true, "ip_addresses": [format!("10.220.{n}.2/24")],
            "namespace": {"type": "NAMED_NS", "name": self.nsx()},
            "veth": {"peer_if_name": m1}}),
        )
        .await;
    }
}

fn has_addr(l: &Link, a: &str) -> bool {
    l.addresses.iter().any(|x| x == a)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_first_container_later_then_ping() {
    let Some(docker) = require_docker() else {
        return;
    };
    let Some(env) = TestEnv::new("m") else { return };
    let _agent = env.agent(&docker);
    let ms = unique_label("web");
    env.put_pair(&ms, 1).await;
    // Before Docker has answered once the item says it waits for the first
    // container list; once it has, it must say the label is not running.
    let s = env
        .wait_status("interface", "m1b", "pending", "is not running")
        .await;
    let detail = s["detail"].as_str().unwrap();
    assert!(detail.contains(&ms), "names the label it waits for: {s}");

    let c = block_in_place(|| docker.run(Some(&ms), &[]));
    let pid = docker.pid(&c);
    let inside = wait_for("the end inside the container", || {
        link_in_process(pid, "eth9").filter(|l| has_addr(l, "10.220.1.1/24"))
    })
    .await;
    assert!(inside.up);
    wait_for("the end in the named namespace", || {
        link(Some(&env.nsx()), &format!("{}1", env.p)).filter(|l| has_addr(l, "10.220.1.2/24"))
    })
    .await;
    let ping = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &env.nsx(),
            "ping",
            "-c",
            "1",
            "-W",
            "2",
            "10.220.1.1",
        ])
        .output()
        .expect("ping");
    assert!(
        ping.status.success(),
        "ping into the container failed: {}",
        String::from_utf8_lossy(&ping.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_replacement_and_newest_container_wins() {
    let Some(docker) = require_docker() else {
        return;
    };
    let Some(env) = TestEnv::new("n") else { return };
    let _agent = env.agent(&docker);
    let ms = unique_label("app");
    let host = format!("{}2", env.p);
    let c1 = block_in_place(|| docker.run(Some(&ms), &[]));
    env.put_pair(&ms, 2).await;
    let pid1 = docker.pid(&c1);
    wait_for("pair in c1", || link_in_process(pid1, "eth9")).await;

    // docker restart: re-created in the container's new namespace.
    block_in_place(|| docker.restart(&c1));
    let pid1b = docker.pid(&c1);
    assert_ne!(pid1, pid1b);
    wait_for("pair after restart", || {
        link_in_process(pid1b, "eth9").filter(|l| has_addr(l, "10.220.2.1/24"))
    })
    .await;
    wait_for("named end after restart", || link(Some(&env.nsx()), &host)).await;

    // docker rm -f: withdrawn; a new container with the label: re-created there.
    block_in_place(|| docker.rm(&c1));
    wait_for("named end gone", || {
        link(Some(&env.nsx()), &host).is_none().then_some(())
    })
    .await;
    let c2 = block_in_place(|| docker.run(Some(&ms), &[]));
    let pid2 = docker.pid(&c2);
    wait_for("pair in c2", || link_in_process(pid2, "eth9")).await;

    // A newer container with the same label takes it; restarting the older one does not
    // take it back.
    let c3 = block_in_place(|| docker.run(Some(&ms), &[]));
    let pid3 = docker.pid(&c3);
    wait_for("pair in c3", || link_in_process(pid3, "eth9")).await;
    wait_for("gone from c2", || {
        link_in_process(pid2, "eth9").is_none().then_some(())
    })
    .await;
    block_in_place(|| docker.restart(&c2));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid2b = docker.pid(&c2);
    assert!(
        link_in_process(pid2b, "eth9").is_none(),
        "the older container took the label back"
    );
    assert!(link_in_process(pid3, "eth9").is_some());
    assert_eq!(
        wait_for("one named end", || {
            let n = links(Some(&env.nsx()))
                .iter()
                .filter(|l| l.name == host)
                .count();
            (n == 1).then_some(n)
        })
        .await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_and_entries_inside_a_microservice_follow_it() {
    let Some(docker) = require_docker() else {
        return;
    };
    let Some(env) = TestEnv::new("o") else { return };
    let _agent = env.agent(&docker);
    let ms = unique_label("rt");
    env.put_pair(&ms, 3).await;
    let ns = json!({"type": "MICROSERVICE_REF_NS", "microservice": ms});
    env.put_v(
        "route",
        "r",
        json!({"name": "r", "dst_ip_addr": "10.88.0.0/16", "gw_addr": "10.220.3.2",
        "interface": "m3a", "namespace": ns}),
    )
    .await;
    env.put_v(
        "arp",
        "a",
        json!({"name": "a", "interface": "m3a", "ip_addr": "10.220.3.9",
        "hw_address": "02:00:00:00:03:09", "namespace": ns}),
    )
    .await;
    let c = block_in_place(|| docker.run(Some(&ms), &[]));
    let check = |pid: u32| {
        let p = pid.to_string();
        let route = std::process::Command::new("nsenter")
            .args(["-t", &p, "-n", "ip", "route", "show", "10.88.0.0/16"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains("via 10.220.3.2"))
            .unwrap_or(false);
        let neigh = std::process::Command::new("nsenter")
            .args(["-t", &p, "-n", "ip", "neigh", "show", "10.220.3.9"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains("02:00:00:00:03:09"))
            .unwrap_or(false);
        (route && neigh).then_some(())
    };
    let pid = docker.pid(&c);
    wait_for("route and entry in the container", || check(pid)).await;
    block_in_place(|| docker.restart(&c));
    let pid = docker.pid(&c);
    wait_for("route and entry after restart", || check(pid)).await;
}
