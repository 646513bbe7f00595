//! Helpers for real-kernel tests: unique short names, RAII cleanup of namespaces and links,
//! and running `ip`.

#![allow(dead_code)]

use std::process::Command;

/// True when the test can run (root). Without root: fails under `CI=true`, else skips.
pub fn can_run(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and CI=true");
    }
    eprintln!("skipping {test}: needs root");
    false
}

/// A short prefix unique to this process and test tag (link names have at most 15 bytes):
/// `nx<pid%1000><tag>`.
pub fn prefix(tag: &str) -> String {
    assert!(tag.len() <= 3, "keep tags short");
    format!("nx{:03}{tag}", std::process::id() % 1000)
}

/// Runs a command; returns stdout, panics (with stderr) when it fails.
pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command; returns whether it succeeded (output discarded).
pub fn try_run(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// `ip [-n ns] args...`, output.
pub fn ip(ns: Option<&str>, args: &[&str]) -> String {
    let mut all: Vec<&str> = Vec::new();
    if let Some(ns) = ns {
        all.extend(["-n", ns]);
    }
    all.extend(args);
    run("ip", &all)
}

/// A named namespace deleted (`ip netns del`) when dropped.
pub struct NsGuard(pub String);

impl NsGuard {
    /// Guards `name`, which the test creates (through the executor or `ip netns add`).
    pub fn new(name: impl Into<String>) -> Self {
        NsGuard(name.into())
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.0
    }
}

impl Drop for NsGuard {
    fn drop(&mut self) {
        let _ = try_run("ip", &["netns", "del", &self.0]);
    }
}

/// A link deleted when dropped (in the default namespace when `ns` is `None`).
pub struct LinkGuard {
    /// Namespace name, `None` = the default one.
    pub ns: Option<String>,
    /// Link name.
    pub name: String,
}

impl Drop for LinkGuard {
    fn drop(&mut self) {
        let mut args: Vec<&str> = Vec::new();
        if let Some(ns) = &self.ns {
            args.extend(["-n", ns]);
        }
        args.extend(["link", "del", &self.name]);
        let _ = try_run("ip", &args);
    }
}

/// Whether link `name` exists in `ns`.
pub fn link_exists(ns: Option<&str>, name: &str) -> bool {
    let mut args: Vec<&str> = Vec::new();
    if let Some(ns) = ns {
        args.extend(["-n", ns]);
    }
    args.extend(["link", "show", "dev", name]);
    try_run("ip", &args)
}

/// `ping` if installed, else busybox's.
pub fn ping_in(ns: &str, addr: &str) -> bool {
    let ping: &[&str] = if try_run("sh", &["-c", "command -v ping"]) {
        &["ping"]
    } else {
        &["busybox", "ping"]
    };
    let mut args = vec!["netns", "exec", ns];
    args.extend(ping);
    args.extend(["-c", "1", "-W", "2", addr]);
    try_run("ip", &args)
}

/// The label of the executor tests' agent.
pub const LABEL: &str = "nxtest";

/// Keys of the executor tests' agent.
pub fn keys() -> nsagent::keys::KeyTree {
    nsagent::keys::KeyTree::new(LABEL)
}

/// An executor that marks links with the label's default group.
pub async fn executor() -> nsagent::netlink::Executor {
    let keys = keys();
    let group = keys.default_link_group();
    nsagent::netlink::Executor::new(keys, group)
        .await
        .expect("executor")
}

/// Runs one operation.
pub async fn one(
    ex: &mut nsagent::netlink::Executor,
    op: nsagent::scheduler::ops::Op,
) -> nsagent::scheduler::ops::OpOutcome {
    ex.execute(vec![op]).await.remove(0)
}
