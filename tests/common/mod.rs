//! Shared integration-test harness: a real etcd per test, a TCP proxy to cut connections,
//! root and tool checks, unique names, namespace cleanup and polling helpers.
//!
//! Use it with `mod common;` from a test file. It must not refer to the `nsagent` crate: the
//! library's own unit tests include it too.
//!
//! Rule for missing prerequisites (etcd, root): with `CI=true` a test fails loudly; otherwise
//! it prints "skipping: ..." and returns early.
#![allow(dead_code)] // Every test file uses a different subset.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a starting etcd may take to answer.
const ETCD_START_TIMEOUT: Duration = Duration::from_secs(10);

/// True when running under CI (`CI=true`), where missing prerequisites are failures.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Path of the `etcd` binary: from `PATH`, else `/usr/bin/etcd`.
pub fn etcd_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("etcd"))
        .chain([PathBuf::from("/usr/bin/etcd")])
        .find(|p| p.is_file())
}

/// Starts a fresh etcd, or returns `None` (after printing "skipping: etcd not installed")
/// when etcd is missing. Panics when etcd is missing and `CI=true`.
pub fn require_etcd() -> Option<Etcd> {
    if etcd_binary().is_none() {
        assert!(
            !in_ci(),
            "etcd not installed (CI=true): install the etcd-server package"
        );
        eprintln!("skipping: etcd not installed");
        return None;
    }
    Some(Etcd::start_new())
}

/// True when running as root. Otherwise prints "skipping: not root" and returns false, or
/// panics when `CI=true`.
pub fn require_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(!in_ci(), "test needs root (CI=true)");
    eprintln!("skipping: not root");
    false
}

/// True when Graphviz's `dot` runs. Otherwise prints "skipping: ..." and returns false, or
/// panics when `CI=true` (scripts/install-deps.sh installs it).
pub fn graphviz_installed() -> bool {
    let found = Command::new("dot")
        .arg("-V")
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found || !in_ci(),
        "Graphviz is not installed (CI=true): scripts/install-deps.sh installs it"
    );
    if !found {
        eprintln!("skipping the SVG check: Graphviz is not installed");
    }
    found
}

/// A real single-member etcd on free loopback ports with its data in a temporary directory.
/// Killed on drop.
pub struct Etcd {
    binary: PathBuf,
    dir: tempfile::TempDir,
    client_port: u16,
    peer_port: u16,
    /// Arguments after the harness's own (a repeated flag's last value wins).
    extra_args: Vec<String>,
    child: Option<Child>,
}

impl Etcd {
    /// Starts etcd on free ports (retrying with other ports if they were taken meanwhile).
    /// Panics with etcd's log when it does not come up; prefer [`require_etcd`] in tests.
    pub fn start_new() -> Etcd {
        Etcd::start_new_with(&[])
    }

    /// Like [`Etcd::start_new`], with `extra_args` after the harness's own (such as
    /// `--max-txn-ops=128` for etcd's default limit).
    pub fn start_new_with(extra_args: &[&str]) -> Etcd {
        let binary = etcd_binary().expect("etcd not installed");
        let mut last_error = String::new();
        for _ in 0..5 {
            let mut etcd = Etcd {
                binary: binary.clone(),
                dir: tempfile::tempdir().expect("cannot create a temporary directory for etcd"),
                client_port: free_port(),
                peer_port: free_port(),
                extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
                child: None,
            };
            match etcd.spawn() {
                Ok(()) => return etcd,
                Err(e) => last_error = e,
            }
        }
        panic!("etcd does not start: {last_error}");
    }

    /// `127.0.0.1:PORT` of the client URL.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    /// File that holds etcd's output.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("etcd.log")
    }

    /// Kills etcd (like a crash); data and ports are kept for [`Etcd::start`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts etcd again on the same ports and data directory; waits until it answers.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "etcd is already running");
        if let Err(e) = self.spawn() {
            panic!("etcd does not restart: {e}");
        }
    }

    /// A client connected to this etcd.
    pub async fn client(&self) -> etcd_client::Client {
        etcd_client::Client::connect([self.endpoint()], None)
            .await
            .expect("cannot connect to the test etcd")
    }

    /// Writes `key`; returns the revision of the write.
    pub async fn put(&self, key: &str, value: impl Into<Vec<u8>>) -> i64 {
        let resp = self
            .client()
            .await
            .put(key, value, None)
            .await
            .unwrap_or_else(|e| panic!("etcd put {key}: {e}"));
        resp.header().expect("put response header").revision()
    }

    /// Deletes exactly `key`; returns how many keys were deleted (0 or 1).
    pub async fn del(&self, key: &str) -> i64 {
        self.client()
            .await
            .delete(key, None)
            .await
            .unwrap_or_else(|e| panic!("etcd delete {key}: {e}"))
            .deleted()
    }

    /// Value of `key`, if present.
    pub async fn get(&self, key: &str) -> Option<Vec<u8>> {
        let resp = self
            .client()
            .await
            .get(key, None)
            .await
            .unwrap_or_else(|e| panic!("etcd get {key}: {e}"));
        resp.kvs().first().map(|kv| kv.value().to_vec())
    }

    /// All keys under `prefix` with their values, sorted by key.
    pub async fn get_prefix(&self, prefix: &str) -> Vec<(String, Vec<u8>)> {
        let options = etcd_client::GetOptions::new().with_prefix();
        let resp = self
            .client()
            .await
            .get(prefix, Some(options))
            .await
            .unwrap_or_else(|e| panic!("etcd get {prefix}: {e}"));
        resp.kvs()
            .iter()
            .map(|kv| {
                (
                    String::from_utf8_lossy(kv.key()).into_owned(),
                    kv.value().to_vec(),
                )
            })
            .collect()
    }

    fn spawn(&mut self) -> Result<(), String> {
        let client_url = format!("http://127.0.0.1:{}", self.client_port);
        let peer_url = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(|e| format!("cannot open {}: {e}", self.log_path().display()))?;
        let child = Command::new(&self.binary)
            .arg("--name=test")
            .arg(format!(
                "--data-dir={}",
                self.dir.path().join("data").display()
            ))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=test={peer_url}"))
            // Whole configurations go in one transaction (benchmarks: thousands of keys).
            .arg("--max-txn-ops=100000")
            .arg("--max-request-bytes=33554432")
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.binary.display()))?;
        self.child = Some(child);
        let deadline = Instant::now() + ETCD_START_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return Err(format!("etcd exited ({status}); log:\n{}", self.log_tail()));
            }
            if health_ok(self.client_port) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.stop();
        Err(format!(
            "etcd did not answer within {ETCD_START_TIMEOUT:?}; log:\n{}",
            self.log_tail()
        ))
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("cannot bind a loopback port")
        .port()
}

/// True when etcd's `/health` on `port` reports healthy.
fn health_ok(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let request = format!("GET /health HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    let mut response = String::new();
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_to_string(&mut response).is_ok()
        && response.contains("\"health\":\"true\"")
}

/// A TCP proxy on a free loopback port that can cut all connections to the target and
/// refuse new ones, to simulate a network outage while the target stays up.
pub struct TcpProxy {
    port: u16,
    shared: Arc<ProxyShared>,
}

struct ProxyShared {
    open: AtomicBool,
    stopped: AtomicBool,
    conns: Mutex<Vec<TcpStream>>,
}

impl TcpProxy {
    /// Starts forwarding a new loopback port to `target` (`HOST:PORT`).
    pub fn new(target: &str) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("cannot bind the proxy port");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let port = listener.local_addr().expect("proxy address").port();
        let shared = Arc::new(ProxyShared {
            open: AtomicBool::new(true),
            stopped: AtomicBool::new(false),
            conns: Mutex::new(Vec::new()),
        });
        let target = target.to_string();
        let state = shared.clone();
        std::thread::spawn(move || {
            while !state.stopped.load(Ordering::SeqCst) {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                if !state.open.load(Ordering::SeqCst) {
                    continue; // Dropping `client` refuses the connection.
                }
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                let _ = client.set_nonblocking(false);
                let mut conns = state.conns.lock().unwrap();
                for (from, to) in [(&client, &server), (&server, &client)] {
                    let (mut from, mut to) = (from.try_clone().unwrap(), to.try_clone().unwrap());
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Both);
                        let _ = from.shutdown(Shutdown::Both);
                    });
                }
                conns.extend([client, server]);
            }
        });
        TcpProxy { port, shared }
    }

    /// `127.0.0.1:PORT` to connect to instead of the target.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Closes every forwarded connection and refuses new ones until [`TcpProxy::restore`].
    pub fn cut(&self) {
        self.shared.open.store(false, Ordering::SeqCst);
        for conn in self.shared.conns.lock().unwrap().drain(..) {
            let _ = conn.shutdown(Shutdown::Both);
        }
    }

    /// Accepts and forwards connections again.
    pub fn restore(&self) {
        self.shared.open.store(true, Ordering::SeqCst);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.cut();
        self.shared.stopped.store(true, Ordering::SeqCst);
    }
}

/// A short name that differs between calls and concurrent test processes: `tag` followed by
/// four base-36 characters (`tag` should be 1-3 characters so that link names built from it
/// stay within 15 bytes).
pub fn unique_prefix(tag: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    const SPACE: u32 = 36 * 36 * 36 * 36;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    // Differs between processes; consecutive calls in one process never collide.
    let base = std::process::id().wrapping_mul(2_654_435_761) ^ nanos;
    let mut n = base.wrapping_add(COUNTER.fetch_add(1, Ordering::SeqCst)) % SPACE;
    let mut suffix = [b'0'; 4];
    for c in suffix.iter_mut().rev() {
        *c = b"0123456789abcdefghijklmnopqrstuvwxyz"[(n % 36) as usize];
        n /= 36;
    }
    format!("{tag}{}", std::str::from_utf8(&suffix).unwrap())
}

/// Deletes the named network namespaces it holds (`ip netns del`) when dropped.
#[derive(Default)]
pub struct NetnsGuard {
    names: Vec<String>,
}

impl NetnsGuard {
    /// A guard for these namespace names.
    pub fn new<S: Into<String>>(names: impl IntoIterator<Item = S>) -> NetnsGuard {
        NetnsGuard {
            names: names.into_iter().map(Into::into).collect(),
        }
    }

    /// Adds a namespace to delete on drop.
    pub fn add(&mut self, name: impl Into<String>) {
        self.names.push(name.into());
    }
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = Command::new("ip")
                .args(["netns", "del", name])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Runs `ip ARGS` and returns its stdout, or its stderr as the error.
pub fn try_ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// Runs `ip ARGS` and returns its stdout; panics when it fails.
pub fn ip(args: &[&str]) -> String {
    try_ip(args).unwrap_or_else(|e| panic!("ip {}: {e}", args.join(" ")))
}

/// Polls `cond` every `poll` until it holds (true) or `timeout` has passed (false). Blocks the
/// thread: in async tests use [`wait_until_async`].
pub fn wait_until(timeout: Duration, poll: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(poll);
    }
}

/// Like [`wait_until`], but sleeps with tokio so that tasks on the same runtime keep running.
pub async fn wait_until_async(
    timeout: Duration,
    poll: Duration,
    mut cond: impl FnMut() -> bool,
) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(poll).await;
    }
}
