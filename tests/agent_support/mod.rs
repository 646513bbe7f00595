//! Helpers for end-to-end tests of the `nsagent` binary: run it as a child process against a
//! test etcd, read its log, and read kernel state with `ip -j`.
#![allow(dead_code)] // Every test file uses a different subset.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Environment variables the binaries read for etcd and the label: removed from every child
/// so that tests see only the settings they give.
pub const AGENT_ENV: &[&str] = &[
    "ETCD_ENDPOINTS",
    "ETCD_CACERT",
    "ETCD_CERT",
    "ETCD_KEY",
    "ETCD_USER",
    "ETCD_PASSWORD",
    "ETCD_CONFIG",
    "MICROSERVICE_LABEL",
];

/// A command for one of the package's binaries with [`AGENT_ENV`] removed and `env` set.
fn command(binary: &str, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(binary);
    command.args(args);
    for name in AGENT_ENV {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    command
}

/// Runs `nsagent-ctl ARGS` with `env`, no input, and returns its output.
pub fn run_ctl(args: &[&str], env: &[(&str, &str)]) -> Output {
    command(env!("CARGO_BIN_EXE_nsagent-ctl"), args, env)
        .stdin(Stdio::null())
        .output()
        .expect("cannot run nsagent-ctl")
}

/// Runs `nsagent ARGS` with `env` and the default log level, expecting it to exit on its own
/// within 20 s (a start-up failure); returns its output.
pub fn run_agent_to_exit(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut child = command(env!("CARGO_BIN_EXE_nsagent"), args, env)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run nsagent");
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return child.wait_with_output().expect("nsagent output");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let out = child.wait_with_output().expect("nsagent output");
    panic!(
        "nsagent {args:?} did not exit within 20 s; stderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Asserts that a binary failed with exit code 1 and exactly one line on stderr containing
/// every one of `needles`; returns that line.
pub fn assert_one_line_failure(out: &Output, needles: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "exit status; stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "not one line on stderr: {stderr}");
    for needle in needles {
        assert!(lines[0].contains(needle), "{needle:?} missing in: {stderr}");
    }
    lines[0].to_string()
}

/// The agent binary running as a child process, logging to a file. Killed on drop.
pub struct AgentProcess {
    child: Option<Child>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    dir: tempfile::TempDir,
    starts: usize,
}

impl AgentProcess {
    /// Starts `nsagent --etcd-endpoints <endpoint> --label <label>` plus `extra` arguments
    /// (namespaces are polled every 100 ms and the HTTP API is off unless `extra` says
    /// otherwise: agents of concurrent tests would share its default port).
    pub fn start(endpoint: &str, label: &str, extra: &[&str]) -> AgentProcess {
        let mut args = vec!["--etcd-endpoints", endpoint];
        args.extend(extra);
        AgentProcess::start_with(label, &args, &[])
    }

    /// Starts `nsagent --label <label>` plus `extra` arguments and `env` (namespaces are
    /// polled every 100 ms unless `extra` says otherwise; the log level is
    /// `info,nsagent=debug`, or `NSAGENT_TEST_RUST_LOG` when set, unless `env` sets
    /// `RUST_LOG`).
    pub fn start_with(label: &str, extra: &[&str], env: &[(&str, &str)]) -> AgentProcess {
        let mut args = vec!["--label".to_string(), label.to_string()];
        let poll = "--namespace-check-interval-ms";
        if !extra.contains(&poll) {
            args.extend([poll.to_string(), "100".to_string()]);
        }
        if !extra.contains(&"--http-listen") {
            args.extend(["--http-listen".to_string(), "off".to_string()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut agent = AgentProcess {
            child: None,
            args,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            dir: tempfile::tempdir().expect("tempdir"),
            starts: 0,
        };
        agent.restart();
        agent
    }

    /// The log of the current run.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join(format!("agent-{}.log", self.starts))
    }

    /// Starts the agent again (after [`Self::kill9`] or [`Self::stop`]).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "agent already running");
        self.starts += 1;
        let log = std::fs::File::create(self.log_path()).expect("log file");
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        // A `RUST_LOG` of the caller's `env` comes later and wins.
        let level = std::env::var("NSAGENT_TEST_RUST_LOG");
        let level = level.as_deref().unwrap_or("info,nsagent=debug");
        let env: Vec<(&str, &str)> = [("RUST_LOG", level)]
            .into_iter()
            .chain(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .collect();
        let child = command(env!("CARGO_BIN_EXE_nsagent"), &args, &env)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("cannot start nsagent");
        self.child = Some(child);
    }

    /// Kills the agent with SIGKILL (a crash).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the agent with SIGTERM and waits for it; returns whether it exited successfully.
    pub fn stop(&mut self) -> bool {
        let Some(mut c) = self.child.take() else {
            return false;
        };
        let pid = nix::unistd::Pid::from_raw(c.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = c.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
        false
    }

    /// The process id of the current run (0 when not running).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// True while the process runs.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The log of the current run so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Waits until the log of the current run contains `needle` `count` times.
    pub async fn wait_log(&self, needle: &str, count: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.log().matches(needle).count() >= count {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!("---- agent log ----\n{}", self.log());
        }
    }
}

/// A link as `ip -j -d addr show` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub ifindex: u64,
    pub name: String,
    pub mtu: u64,
    pub mac: String,
    pub up: bool,
    pub alias: Option<String>,
    pub group: String,
    /// `ip/prefix`, without IPv6 link-local addresses, sorted.
    pub addresses: Vec<String>,
}

fn ns_args(ns: Option<&str>) -> Vec<String> {
    match ns {
        Some(n) => vec!["-n".into(), n.into()],
        None => vec![],
    }
}

fn parse_links(json: &str) -> Vec<Link> {
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or(serde_json::Value::Null);
    let Some(list) = v.as_array() else {
        return vec![];
    };
    list.iter()
        .map(|l| {
            let mut addresses: Vec<String> = l["addr_info"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|a| a["scope"] != "link" || a["family"] == "inet")
                .map(|a| format!("{}/{}", a["local"].as_str().unwrap_or(""), a["prefixlen"]))
                .collect();
            addresses.sort();
            Link {
                ifindex: l["ifindex"].as_u64().unwrap_or(0),
                name: l["ifname"].as_str().unwrap_or("").to_string(),
                mtu: l["mtu"].as_u64().unwrap_or(0),
                mac: l["address"].as_str().unwrap_or("").to_string(),
                up: l["flags"]
                    .as_array()
                    .is_some_and(|f| f.iter().any(|x| x == "UP")),
                alias: l["ifalias"].as_str().map(str::to_string),
                group: match &l["group"] {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                },
                addresses,
            }
        })
        .collect()
}

/// The link named `name` in namespace `ns` (`None` = the default one), if it exists.
pub fn link(ns: Option<&str>, name: &str) -> Option<Link> {
    let mut args = ns_args(ns);
    args.extend(["-j", "-d", "addr", "show", "dev", name].map(String::from));
    let out = Command::new("ip").args(&args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    parse_links(&String::from_utf8_lossy(&out.stdout))
        .into_iter()
        .next()
}

/// Every link of namespace `ns`.
pub fn links(ns: Option<&str>) -> Vec<Link> {
    let mut args = ns_args(ns);
    args.extend(["-j", "-d", "addr", "show"].map(String::from));
    let out = Command::new("ip").args(&args).output().expect("ip");
    parse_links(&String::from_utf8_lossy(&out.stdout))
}

/// Deletes the default-namespace links whose names start with `prefix` when dropped.
pub struct LinkGuard {
    prefix: String,
}

impl LinkGuard {
    /// A guard for links named `prefix*` in the default namespace.
    pub fn new(prefix: &str) -> LinkGuard {
        LinkGuard {
            prefix: prefix.to_string(),
        }
    }
}

impl Drop for LinkGuard {
    fn drop(&mut self) {
        for l in links(None) {
            if l.name.starts_with(&self.prefix) {
                let _ = Command::new("ip").args(["link", "del", &l.name]).status();
            }
        }
    }
}

/// A process sleeping in a new network namespace (`unshare -n sleep`); killed on drop.
pub struct NsProcess {
    child: Option<Child>,
}

impl NsProcess {
    /// Starts it and waits until its namespace differs from ours.
    pub fn start() -> NsProcess {
        let child = Command::new("unshare")
            .args(["-n", "sleep", "600"])
            .stdin(Stdio::null())
            .spawn()
            .expect("unshare");
        let p = NsProcess { child: Some(child) };
        let mine = std::fs::read_link("/proc/self/ns/net").unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(theirs) = std::fs::read_link(format!("/proc/{}/ns/net", p.pid())) {
                if theirs != mine {
                    return p;
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("unshare did not enter a new namespace");
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Kills it (its namespace goes away with it).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Runs `ip ARGS` inside its namespace (via nsenter).
    pub fn ip(&self, args: &[&str]) -> String {
        let pid = self.pid().to_string();
        let out = Command::new("nsenter")
            .args(["-t", &pid, "-n", "ip"])
            .args(args)
            .output()
            .expect("nsenter");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The link named `name` inside its namespace.
    pub fn link(&self, name: &str) -> Option<Link> {
        parse_links(&self.ip(&["-j", "-d", "addr", "show", "dev", name]))
            .into_iter()
            .next()
    }
}

impl Drop for NsProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A VETH end as JSON (`namespace` is a JSON object or `null`).
pub fn veth_json(
    name: &str,
    host: &str,
    peer: &str,
    namespace: serde_json::Value,
    addresses: &[&str],
) -> String {
    let mut v = serde_json::json!({
        "name": name,
        "type": "VETH",
        "enabled": true,
        "host_if_name": host,
        "ip_addresses": addresses,
        "veth": {"peer_if_name": peer},
    });
    if !namespace.is_null() {
        v["namespace"] = namespace;
    }
    v.to_string()
}

/// The link named `name` inside the network namespace of process `pid` (via nsenter).
pub fn link_in_process(pid: u32, name: &str) -> Option<Link> {
    let pid = pid.to_string();
    let out = Command::new("nsenter")
        .args([
            "-t", &pid, "-n", "ip", "-j", "-d", "addr", "show", "dev", name,
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    parse_links(&String::from_utf8_lossy(&out.stdout))
        .into_iter()
        .next()
}

/// The world of one end-to-end test: a real etcd, a label and a unique prefix of its own,
/// and guards that remove its namespaces (`<prefix>x`, `<prefix>y`, `<prefix>z`) and its
/// default-namespace links (`<prefix>*`) afterwards, also on failure.
pub struct TestEnv {
    pub etcd: crate::common::Etcd,
    pub label: String,
    /// Unique prefix of this test's namespace and link names.
    pub p: String,
    _ns: crate::common::NetnsGuard,
    _links: LinkGuard,
}

impl TestEnv {
    /// Prerequisites (root, etcd) or `None` to skip (a failure under `CI=true`).
    pub fn new(tag: &str) -> Option<TestEnv> {
        TestEnv::with_setup(tag, crate::common::EtcdSetup::default())
    }

    /// Like [`TestEnv::new`], with an etcd set up as `setup` says (TLS).
    pub fn with_setup(tag: &str, setup: crate::common::EtcdSetup) -> Option<TestEnv> {
        if !crate::common::require_root() {
            return None;
        }
        let etcd = crate::common::require_etcd_with(setup)?;
        let p = crate::common::unique_prefix(tag);
        Some(TestEnv {
            etcd,
            label: format!("test-{p}"),
            _ns: crate::common::NetnsGuard::new([
                format!("{p}x"),
                format!("{p}y"),
                format!("{p}z"),
            ]),
            _links: LinkGuard::new(&p),
            p,
        })
    }

    /// The agent of this test's label, with `extra` arguments.
    pub fn agent_with(&self, extra: &[&str]) -> AgentProcess {
        AgentProcess::start(&self.etcd.endpoint(), &self.label, extra)
    }

    /// A namespace name of this test (`x`, `y`, `z` suffixes are cleaned up).
    pub fn ns(&self, s: &str) -> String {
        format!("{}{s}", self.p)
    }

    /// A link host name of this test.
    pub fn host(&self, s: &str) -> String {
        format!("{}{s}", self.p)
    }

    /// Config key of an item (`kind`: interface, route, arp).
    pub fn key(&self, kind: &str, name: &str) -> String {
        format!("/vnf-agent/{}/linux/config/v1/{kind}/{name}", self.label)
    }

    /// Writes an item's value.
    pub async fn put(&self, kind: &str, name: &str, value: impl Into<Vec<u8>>) {
        self.etcd.put(&self.key(kind, name), value).await;
    }

    /// Deletes an item.
    pub async fn del(&self, kind: &str, name: &str) {
        self.etcd.del(&self.key(kind, name)).await;
    }

    /// The status the agent published for an item (`Null` when none).
    pub async fn status(&self, kind: &str, name: &str) -> serde_json::Value {
        let key = format!("/vnf-agent/{}/linux/status/v1/{kind}/{name}", self.label);
        match self.etcd.get(&key).await {
            Some(v) => serde_json::from_slice(&v).expect("status json"),
            None => serde_json::Value::Null,
        }
    }

    /// Waits until the agent with this label has published its liveness record
    /// (`/vnf-agent/<label>/check/status/v1/agent`, bound to its lease); returns it.
    pub async fn wait_agent_running(&self) -> serde_json::Value {
        let key = format!("/vnf-agent/{}/check/status/v1/agent", self.label);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(v) = self.etcd.get(&key).await {
                return serde_json::from_slice(&v).expect("liveness json");
            }
            assert!(Instant::now() < deadline, "no liveness record at {key}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until an item has no status any more (its key was deleted).
    pub async fn wait_status_gone(&self, kind: &str, name: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let s = self.status(kind, name).await;
            if s.is_null() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{kind}/{name}: status {s} is still there"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until an item's status is `state` with a detail containing `detail`.
    pub async fn wait_status(
        &self,
        kind: &str,
        name: &str,
        state: &str,
        detail: &str,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let s = self.status(kind, name).await;
            if s["state"] == state && s["detail"].as_str().unwrap_or("").contains(detail) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "{kind}/{name}: status {s} is not {state} with {detail:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The puts of `pairs` VETH pairs of `env`: `a<i>` in `spaces[i % n]` with `10.<net>.<i>.1/24`,
/// `b<i>` in the next one with `.2`.
pub fn pair_puts(
    env: &TestEnv,
    spaces: &[String],
    pairs: usize,
    net: u8,
) -> Vec<etcd_client::TxnOp> {
    let mut ops = Vec::new();
    for i in 0..pairs {
        let (a, b) = (format!("a{i}"), format!("b{i}"));
        let (x, y) = (&spaces[i % spaces.len()], &spaces[(i + 1) % spaces.len()]);
        let ends = [
            (&a, &b, x, format!("10.{net}.{i}.1/24")),
            (&b, &a, y, format!("10.{net}.{i}.2/24")),
        ];
        for (name, peer, ns, addr) in ends {
            let value = veth_json(name, &env.host(name), peer, named(ns), &[&addr]);
            ops.push(etcd_client::TxnOp::put(
                env.key("interface", name),
                value,
                None,
            ));
        }
    }
    ops
}

/// A `NAMED_NS` namespace reference as JSON.
pub fn named(n: &str) -> serde_json::Value {
    serde_json::json!({"type": "NAMED_NS", "name": n})
}

/// Polls `cond` every 20 ms until it holds, for up to 20 s; panics naming `what`.
pub async fn wait(what: &str, mut cond: impl FnMut() -> bool) {
    wait_for(what, || cond().then_some(())).await
}

impl TestEnv {
    /// Writes an item given as JSON.
    pub async fn put_v(&self, kind: &str, name: &str, v: serde_json::Value) {
        self.put(kind, name, v.to_string()).await;
    }
}

/// Polls `f` every 20 ms until it gives a value, for up to 20 s; panics naming `what`.
pub async fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let mut found = None;
    let ok =
        crate::common::wait_until_async(Duration::from_secs(20), Duration::from_millis(20), || {
            found = f();
            found.is_some()
        })
        .await;
    assert!(ok, "timed out waiting for {what}");
    found.unwrap()
}
