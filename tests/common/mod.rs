//! Shared integration-test harness: a real etcd per test (plain, TLS with client certificates
//! and generated certificates ([`pki`]), or a cluster ([`cluster`])), a TCP proxy to cut
//! connections, root and tool checks, unique names, namespace cleanup and polling helpers.
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

pub mod cluster;
pub mod pki;
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
    require_etcd_with(EtcdSetup::default())
}

/// Like [`require_etcd`], with TLS or other settings.
pub fn require_etcd_with(setup: EtcdSetup) -> Option<Etcd> {
    if !etcd_installed() {
        return None;
    }
    Some(Etcd::start_with(setup))
}

/// True when etcd is installed; otherwise prints "skipping: etcd not installed" and returns
/// false, or panics when `CI=true`.
pub fn etcd_installed() -> bool {
    if etcd_binary().is_some() {
        return true;
    }
    assert!(
        !in_ci(),
        "etcd not installed (CI=true): install the etcd-server package"
    );
    eprintln!("skipping: etcd not installed");
    false
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

/// How a test etcd serves its clients.
#[derive(Clone, Default)]
pub struct EtcdSetup {
    /// Serve clients over TLS only, and accept only clients whose certificate the CA of
    /// these certificates signed (`--client-cert-auth`). The harness's own client uses the
    /// client certificate.
    pub tls: Option<Arc<pki::Pki>>,
    /// Arguments after the harness's own (a repeated flag's last value wins).
    pub extra_args: Vec<String>,
}

/// A real etcd member on free loopback ports with its data in a temporary directory: a
/// single-member cluster ([`Etcd::start_new`], [`Etcd::start_with`]) or a member of a
/// [`cluster::EtcdCluster`]. Its `/health` is served on a separate plain-HTTP metrics port,
/// so that readiness can be checked whatever the client port requires. Killed on drop.
pub struct Etcd {
    binary: PathBuf,
    dir: tempfile::TempDir,
    name: String,
    client_port: u16,
    peer_port: u16,
    metrics_port: u16,
    /// `--initial-cluster` (this member alone unless it is part of a cluster).
    initial_cluster: String,
    /// `--initial-cluster-token`, unique per cluster so that clusters never mix.
    cluster_token: String,
    setup: EtcdSetup,
    /// Credentials of the harness's own client (root, once [`Etcd::enable_auth`] ran).
    root: Option<(String, String)>,
    child: Option<Child>,
}

impl Etcd {
    /// Starts a plain etcd on free ports (retrying with other ports if they were taken
    /// meanwhile). Panics with etcd's log when it does not come up; prefer [`require_etcd`]
    /// in tests.
    pub fn start_new() -> Etcd {
        Etcd::start_with(EtcdSetup::default())
    }

    /// Like [`Etcd::start_new`], with `extra_args` after the harness's own (such as
    /// `--max-txn-ops=128` for etcd's default limit).
    pub fn start_new_with(extra_args: &[&str]) -> Etcd {
        Etcd::start_with(EtcdSetup {
            extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
            ..EtcdSetup::default()
        })
    }

    /// Starts a single-member etcd set up as `setup` says.
    pub fn start_with(setup: EtcdSetup) -> Etcd {
        let mut last_error = String::new();
        for _ in 0..5 {
            let mut etcd = Etcd::new("test", setup.clone());
            etcd.initial_cluster = format!("test={}", etcd.peer_url());
            match etcd.spawn().and_then(|()| etcd.wait_ready()) {
                Ok(()) => return etcd,
                Err(e) => last_error = e,
            }
        }
        panic!("etcd does not start: {last_error}");
    }

    /// A member that is not started yet, on fresh free ports.
    fn new(name: &str, setup: EtcdSetup) -> Etcd {
        Etcd {
            binary: etcd_binary().expect("etcd not installed"),
            dir: tempfile::tempdir().expect("cannot create a temporary directory for etcd"),
            name: name.to_string(),
            client_port: free_port(),
            peer_port: free_port(),
            metrics_port: free_port(),
            initial_cluster: String::new(),
            cluster_token: unique_prefix("etcd"),
            setup,
            root: None,
            child: None,
        }
    }

    /// `127.0.0.1:PORT` of the client URL.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    /// The client URL: `http://127.0.0.1:PORT`, or `https://` with TLS.
    pub fn url(&self) -> String {
        let scheme = if self.setup.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }

    /// The client port.
    pub fn client_port(&self) -> u16 {
        self.client_port
    }

    fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }

    /// File that holds etcd's output.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("etcd.log")
    }

    /// Whether the process runs.
    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills etcd with SIGKILL (like a crash); data and ports are kept for [`Etcd::start`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts etcd again on the same ports and data directory; waits until it answers.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "etcd is already running");
        if let Err(e) = self.spawn().and_then(|()| self.wait_ready()) {
            panic!("etcd does not restart: {e}");
        }
    }

    /// Adds the user `root` with `password` and the root role, enables authentication, and
    /// makes the harness's own client log in as root from then on.
    pub async fn enable_auth(&mut self, password: &str) {
        let mut c = self.client().await;
        c.user_add("root", password, None)
            .await
            .expect("user add root");
        c.user_grant_role("root", "root")
            .await
            .expect("grant root role");
        c.auth_enable().await.expect("auth enable");
        self.root = Some(("root".to_string(), password.to_string()));
    }

    /// A client connected to this etcd (over TLS with the client certificate, and as root
    /// once authentication is enabled).
    pub async fn client(&self) -> etcd_client::Client {
        let mut options = etcd_client::ConnectOptions::new();
        if let Some(pki) = &self.setup.tls {
            let read = |p: PathBuf| std::fs::read(p).expect("test certificate");
            let tls = etcd_client::TlsOptions::new()
                .ca_certificate(etcd_client::Certificate::from_pem(read(pki.ca())))
                .identity(etcd_client::Identity::from_pem(
                    read(pki.client_cert()),
                    read(pki.client_key()),
                ));
            options = options.with_tls(tls);
        }
        if let Some((user, password)) = &self.root {
            options = options.with_user(user, password);
        }
        etcd_client::Client::connect([self.url()], Some(options))
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

    /// Starts the process (without waiting for it to answer).
    fn spawn(&mut self) -> Result<(), String> {
        let client_url = self.url();
        let peer_url = self.peer_url();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(|e| format!("cannot open {}: {e}", self.log_path().display()))?;
        let mut command = Command::new(&self.binary);
        command
            .arg(format!("--name={}", self.name))
            .arg(format!(
                "--data-dir={}",
                self.dir.path().join("data").display()
            ))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster={}", self.initial_cluster))
            .arg(format!("--initial-cluster-token={}", self.cluster_token))
            .arg(format!(
                "--listen-metrics-urls=http://127.0.0.1:{}",
                self.metrics_port
            ))
            // Whole configurations go in one transaction (benchmarks: thousands of keys).
            .arg("--max-txn-ops=100000")
            .arg("--max-request-bytes=33554432");
        if let Some(pki) = &self.setup.tls {
            command
                .arg(format!("--cert-file={}", pki.server_cert().display()))
                .arg(format!("--key-file={}", pki.server_key().display()))
                .arg(format!("--trusted-ca-file={}", pki.ca().display()))
                .arg("--client-cert-auth");
        }
        command.args(&self.setup.extra_args);
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.binary.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// Waits until the started process reports healthy (or kills it and returns its log).
    fn wait_ready(&mut self) -> Result<(), String> {
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
            if health_ok(self.metrics_port) {
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

/// True when the kernel can make links of `kind` (`dummy`, `vrf`): tried in a namespace of
/// this test's own. Kernels built without the driver (and without modules to load) cannot.
pub fn kernel_has(ns: &str, kind: &str) -> bool {
    let probe = format!("probe{kind}");
    let mut args = vec!["-n", ns, "link", "add", probe.as_str(), "type", kind];
    if kind == "vrf" {
        args.extend(["table", "4242"]);
    }
    let made = try_ip(&args).is_ok();
    if made {
        let _ = try_ip(&["-n", ns, "link", "del", &probe]);
    }
    made
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

/// A `kB` field of `/proc/<pid>/status` (`VmRSS:`, `VmHWM:`, ...), in KiB; `None` when the
/// process or the field is not there.
pub fn process_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}
