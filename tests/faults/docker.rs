//! The Docker daemon stops and starts again while containers keep running, die, or start.

use super::*;
use crate::docker_support::{require_docker, unique_label, PrivateDockerd};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::process::{Child, Command, Stdio};
use tokio::task::block_in_place;

fn microservice(label: &str) -> Value {
    json!({"type": "MICROSERVICE_REF_NS", "microservice": label})
}

/// Commands run inside one network namespace through `nsenter`.
struct InNetns {
    enter: Vec<String>,
}

impl InNetns {
    /// A named namespace (`/var/run/netns/<name>`).
    fn named(name: &str) -> InNetns {
        InNetns {
            enter: vec!["nsenter".into(), format!("--net=/var/run/netns/{name}")],
        }
    }

    /// The namespace of process `pid`.
    fn of_process(pid: u32) -> InNetns {
        InNetns {
            enter: ["nsenter", "-t", &pid.to_string(), "-n"]
                .map(String::from)
                .to_vec(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.enter[0]);
        command.args(&self.enter[1..]).args(args);
        command
    }

    /// Runs `args` inside; panics when it fails.
    fn run(&self, args: &[&str]) {
        let out = self.command(args).output().expect("nsenter");
        assert!(
            out.status.success(),
            "{args:?} in {:?}: {}",
            self.enter,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Turns IPv6 off for the links made from now on, so that no address autoconfiguration
    /// makes events of its own.
    fn disable_ipv6(&self) {
        self.run(&[
            "sh",
            "-c",
            "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6 && \
             echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6",
        ]);
    }

    /// Starts recording every link and address change inside.
    fn monitor(&self) -> Monitor {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = std::fs::File::create(dir.path().join("events")).expect("events file");
        let child = self
            .command(&["ip", "-o", "monitor", "link", "address"])
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(Stdio::null())
            .spawn()
            .expect("ip monitor");
        Monitor {
            netns: InNetns {
                enter: self.enter.clone(),
            },
            child,
            dir,
        }
    }
}

/// `ip -o monitor link address` in a namespace: one line per netlink notification (every
/// write to a link or an address there makes one). Killed on drop.
struct Monitor {
    netns: InNetns,
    child: Child,
    dir: tempfile::TempDir,
}

impl Monitor {
    fn events(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("events")).unwrap_or_default()
    }

    fn marker(n: u8) -> String {
        format!("inet 127.0.0.{n}/8 ")
    }

    /// Writes a marker event (address 127.0.0.`n`/8 on `lo`) and waits until it is recorded,
    /// so that everything before it is recorded too. The monitor may not listen yet when it
    /// has just started (a loaded machine): the marker is written again until it is seen.
    async fn mark(&self, n: u8) {
        let address = format!("127.0.0.{n}/8");
        let marker = Monitor::marker(n);
        let deadline = std::time::Instant::now() + CONVERGE;
        loop {
            self.netns
                .run(&["ip", "addr", "replace", &address, "dev", "lo"]);
            let seen = wait_until_async(Duration::from_secs(1), POLL, || {
                self.events().contains(&marker)
            })
            .await;
            if seen {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the monitor's marker never came: {}",
                self.events()
            );
            self.netns
                .run(&["ip", "addr", "del", &address, "dev", "lo"]);
        }
    }

    /// The events recorded between markers `from` and `to` (after the last writing of
    /// `from`, which may have been written more than once; markers left out).
    fn between(&self, from: u8, to: u8) -> Vec<String> {
        let (from, to) = (Monitor::marker(from), Monitor::marker(to));
        let events = self.events();
        let lines: Vec<&str> = events.lines().collect();
        let start = lines
            .iter()
            .rposition(|l| l.contains(&from))
            .map_or(0, |i| i + 1);
        lines[start..]
            .iter()
            .take_while(|l| !l.contains(&to))
            .map(|l| l.to_string())
            .collect()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TestEnv {
    /// A pair `m<n>a` (`eth9`, 10.221.`n`.1/24) inside microservice `label`, `m<n>b`
    /// (`<prefix>m<n>`, .2) in named namespace `ns`.
    async fn put_microservice_pair(&self, label: &str, n: u8, ns: &str) {
        let (a, b) = (format!("m{n}a"), format!("m{n}b"));
        let inside = veth_json(
            &a,
            "eth9",
            &b,
            microservice(label),
            &[&format!("10.221.{n}.1/24")],
        );
        self.put("interface", &a, inside).await;
        let host = self.host(&format!("m{n}"));
        let outside = veth_json(&b, &host, &a, named(ns), &[&format!("10.221.{n}.2/24")]);
        self.put("interface", &b, outside).await;
    }
}

/// The end `name` in process `pid`'s namespace once it has `address`.
fn inside_with(pid: u32, name: &str, address: &str) -> Result<Link, String> {
    let l = link_in_process(pid, name).ok_or(format!("no {name} in process {pid}"))?;
    if l.addresses.iter().any(|a| a == address) {
        Ok(l)
    } else {
        Err(format!("{name} in process {pid}: {:?}", l.addresses))
    }
}

/// The end `name` in namespace `ns` once it has `address`.
fn in_ns_with(ns: &str, name: &str, address: &str) -> Result<Link, String> {
    let l = link(Some(ns), name).ok_or(format!("no {name} in {ns}"))?;
    if l.addresses.iter().any(|a| a == address) {
        Ok(l)
    } else {
        Err(format!("{name} in {ns}: {:?}", l.addresses))
    }
}

/// dockerd is killed (SIGKILL) and started again (a private one with `--live-restore`, so
/// containers outlive it) while the agent runs with three microservices: `keep` runs throughout, `dies`
/// loses its process while dockerd is down, and `new` is started after dockerd is back but
/// while the agent still cannot reach it (its socket is reached through a symlink that the
/// test removes meanwhile). Then the agent reconnects: keep's pair gets no write at all (a
/// netlink monitor on both of its namespaces sees nothing), dies's items are withdrawn, and
/// new's are applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_restart_leaves_running_containers_untouched_withdraws_dead_ones_finds_new_ones() {
    if require_docker().is_none() {
        return;
    }
    let Some(private) = block_in_place(|| PrivateDockerd::start("--live-restore")) else {
        return;
    };
    let Some(env) = TestEnv::new("r") else { return };
    let docker = private.docker();
    let socket = docker.host().strip_prefix("unix://").expect("unix socket");
    let view = tempfile::Builder::new()
        .prefix("nsa-view-")
        .tempdir_in("/tmp")
        .expect("tempdir");
    let seen = view.path().join("docker.sock");
    std::os::unix::fs::symlink(socket, &seen).expect("symlink");
    let agent = env.agent_with(&["--docker-host", &format!("unix://{}", seen.display())]);

    let (keep, dies, new) = (
        unique_label("keep"),
        unique_label("dies"),
        unique_label("new"),
    );
    let (nsx, nsz) = (env.ns("x"), env.ns("z"));
    // keep's host end is alone in nsz, its other end alone in its container: every event
    // there is a write for keep's pair.
    ip(&["netns", "add", &nsz]);
    let keep_host = InNetns::named(&nsz);
    keep_host.disable_ipv6();
    let ck = block_in_place(|| docker.run(Some(&keep), &[]));
    let cd = block_in_place(|| docker.run(Some(&dies), &[]));
    let (keep_pid, dies_pid) = (docker.pid(&ck), docker.pid(&cd));
    let keep_inside = InNetns::of_process(keep_pid);
    keep_inside.disable_ipv6();
    env.put_microservice_pair(&keep, 1, &nsz).await;
    env.put_microservice_pair(&dies, 2, &nsx).await;
    env.put_microservice_pair(&new, 3, &nsx).await;
    let (m1, m2, m3) = (env.host("m1"), env.host("m2"), env.host("m3"));
    for name in ["m1a", "m1b", "m2a", "m2b"] {
        env.wait_status("interface", name, "applied", "").await;
    }
    let s = env
        .wait_status("interface", "m3a", "pending", "is not running")
        .await;
    assert!(s["detail"].as_str().unwrap().contains(&new), "{s}");
    let kept_outside = in_ns_with(&nsz, &m1, "10.221.1.2/24").unwrap();
    let kept_inside = inside_with(keep_pid, "eth9", "10.221.1.1/24").unwrap();
    in_ns_with(&nsx, &m2, "10.221.2.2/24").unwrap();
    let monitors = [keep_host.monitor(), keep_inside.monitor()];
    for m in &monitors {
        m.mark(91).await;
    }

    // The agent loses Docker; dockerd is killed, `dies`'s process is killed meanwhile,
    // dockerd comes back and `new` starts while the agent still cannot reach it.
    let lost = agent.log().matches("Docker unreachable").count() + 1;
    std::fs::remove_file(&seen).expect("remove the symlink");
    block_in_place(|| private.kill_daemon());
    assert!(
        agent.wait_log("Docker unreachable", lost, CONVERGE).await,
        "the agent did not notice that dockerd went away"
    );
    kill(Pid::from_raw(dies_pid as i32), Signal::SIGKILL).expect("kill dies's process");
    block_in_place(|| private.start_daemon());
    let cn = block_in_place(|| docker.run(Some(&new), &[]));
    let new_pid = docker.pid(&cn);
    assert!(
        link_in_process(new_pid, "eth9").is_none(),
        "applied before the agent could see the container"
    );
    std::os::unix::fs::symlink(socket, &seen).expect("symlink again");

    converge("new's pair", || {
        inside_with(new_pid, "eth9", "10.221.3.1/24")?;
        in_ns_with(&nsx, &m3, "10.221.3.2/24")
    })
    .await;
    for name in ["m3a", "m3b"] {
        env.wait_status("interface", name, "applied", "").await;
    }
    for name in ["m2a", "m2b"] {
        let s = env
            .wait_status("interface", name, "pending", "is not running")
            .await;
        assert!(s["detail"].as_str().unwrap().contains(&dies), "{s}");
    }
    assert!(link(Some(&nsx), &m2).is_none(), "dies's host end is gone");

    for m in &monitors {
        m.mark(92).await;
        assert_eq!(
            m.between(91, 92),
            Vec::<String>::new(),
            "writes to keep's pair"
        );
    }
    assert_eq!(link(Some(&nsz), &m1), Some(kept_outside));
    assert_eq!(link_in_process(keep_pid, "eth9"), Some(kept_inside));
    for name in ["m1a", "m1b"] {
        env.wait_status("interface", name, "applied", "").await;
    }
    let running = agent
        .log()
        .lines()
        .filter(|l| l.contains("microservice running") && l.contains(&keep))
        .count();
    assert_eq!(running, 1, "keep's container was taken for a new one");
}
