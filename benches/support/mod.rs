//! Shared pieces of the benchmarks: kernel-side observation of what the agent (or `ip`) did,
//! the agent on its own runtime thread, and figure formatting.
#![allow(dead_code)] // Each benchmark uses a different subset.

use nsagent::agent::Agent;
use nsagent::config::AgentConfig;
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::neighbour::{NeighbourAddress, NeighbourAttribute};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute};
use rtnetlink::packet_route::RouteNetlinkMessage;
use std::collections::HashSet;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// Something that appeared in a namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Seen {
    /// An address (RTM_NEWADDR).
    Address(IpAddr),
    /// An address went away (RTM_DELADDR), as when its link is deleted.
    AddressGone(IpAddr),
    /// A route to this destination prefix (RTM_NEWROUTE).
    Route(IpAddr, u8),
    /// A neighbour entry (RTM_NEWNEIGH).
    Neighbour(IpAddr),
}

/// Records when addresses, routes and neighbours appear (or addresses go) in the namespaces
/// it listens to.
pub struct Watcher {
    rx: mpsc::Receiver<(Seen, Instant)>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watcher {
    /// Starts one listener thread with a socket in every namespace (one thread, however
    /// many namespaces: it must not steal the agent's CPU); returns when all sockets listen.
    pub fn start(namespaces: &[String]) -> Watcher {
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        let (namespaces, stopping) = (namespaces.to_vec(), stop.clone());
        let thread = std::thread::spawn(move || listen(&namespaces, tx, stopping, ready_tx));
        ready_rx.recv().expect("listeners ready");
        Watcher {
            rx,
            stop,
            thread: Some(thread),
        }
    }

    /// Waits until everything in `want` has appeared; returns when the last one did.
    pub fn wait_all(&self, want: &HashSet<Seen>, timeout: Duration) -> Option<Instant> {
        let mut seen = HashSet::new();
        let mut last = None;
        let deadline = Instant::now() + timeout;
        while seen.len() < want.len() {
            let left = deadline.checked_duration_since(Instant::now())?;
            let (addr, at) = self.rx.recv_timeout(left).ok()?;
            if want.contains(&addr) && seen.insert(addr) {
                last = Some(at);
            }
        }
        last
    }

    /// Forgets what was seen so far.
    pub fn drain(&self) {
        while self.rx.try_recv().is_ok() {}
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Listens to address, route and neighbour notifications inside every namespace of
/// `namespaces` (this dedicated thread enters each in turn to open its socket, then waits
/// on all of them with `poll`).
fn listen(
    namespaces: &[String],
    tx: mpsc::Sender<(Seen, Instant)>,
    stop: Arc<AtomicBool>,
    ready: mpsc::Sender<()>,
) {
    let sockets: Vec<rtnetlink::sys::Socket> = namespaces
        .iter()
        .map(|ns| {
            subscribe(&format!("/var/run/netns/{ns}"), &[3, 5, 7], 100_000)
                .unwrap_or_else(|e| panic!("cannot listen in {ns}: {e}"))
        })
        .collect();
    ready.send(()).unwrap();
    let mut fds: Vec<libc::pollfd> = sockets
        .iter()
        .map(|s| libc::pollfd {
            fd: std::os::fd::AsRawFd::as_raw_fd(s),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let mut buf = vec![0u8; 1 << 16];
    while !stop.load(Ordering::SeqCst) {
        // A timeout to notice `stop`.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 100) };
        if n <= 0 {
            continue;
        }
        for (i, fd) in fds.iter_mut().enumerate() {
            if std::mem::take(&mut fd.revents) != 0 {
                drain_socket(&sockets[i], &namespaces[i], &mut buf, &tx);
            }
        }
    }
}

/// Reads every datagram waiting on `socket` (of namespace `ns`) and sends what it reports.
fn drain_socket(
    socket: &rtnetlink::sys::Socket,
    ns: &str,
    buf: &mut [u8],
    tx: &mpsc::Sender<(Seen, Instant)>,
) {
    loop {
        let n = match socket.recv(&mut &mut buf[..], libc::MSG_DONTWAIT) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(e) => panic!("netlink recv in {ns}: {e}"),
        };
        let at = Instant::now();
        for seen in seen_in_datagram(&buf[..n]) {
            let _ = tx.send((seen, at));
        }
    }
}

/// Enters the namespace file `ns` (on the calling thread, which must be a dedicated one)
/// and opens a netlink socket there, joined to `groups`, with a receive timeout.
fn subscribe(ns: &str, groups: &[u32], timeout_us: i64) -> std::io::Result<rtnetlink::sys::Socket> {
    let file = std::fs::File::open(ns)?;
    nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)?;
    let mut socket = rtnetlink::sys::Socket::new(rtnetlink::sys::protocols::NETLINK_ROUTE)?;
    socket.bind_auto()?;
    for group in groups {
        socket.add_membership(*group)?;
    }
    socket.set_rx_buf_sz(8 << 20)?;
    let fd =
        unsafe { std::os::fd::BorrowedFd::borrow_raw(std::os::fd::AsRawFd::as_raw_fd(&socket)) };
    nix::sys::socket::setsockopt(
        &fd,
        nix::sys::socket::sockopt::ReceiveTimeout,
        &nix::sys::time::TimeVal::new(0, timeout_us as _),
    )?;
    Ok(socket)
}

/// Everything one netlink datagram (possibly several messages) reports.
fn seen_in_datagram(mut buf: &[u8]) -> Vec<Seen> {
    let mut out = Vec::new();
    while let Ok(msg) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(buf) {
        if let NetlinkPayload::InnerMessage(m) = &msg.payload {
            out.extend(seen_in(m));
        }
        let len = (msg.header.length as usize + 3) & !3;
        if len == 0 || len >= buf.len() {
            break;
        }
        buf = &buf[len..];
    }
    out
}

fn seen_in(m: &RouteNetlinkMessage) -> Vec<Seen> {
    match m {
        RouteNetlinkMessage::NewAddress(a) => a
            .attributes
            .iter()
            .filter_map(|attr| match attr {
                AddressAttribute::Address(ip) => Some(Seen::Address(*ip)),
                _ => None,
            })
            .collect(),
        RouteNetlinkMessage::DelAddress(a) => a
            .attributes
            .iter()
            .filter_map(|attr| match attr {
                AddressAttribute::Address(ip) => Some(Seen::AddressGone(*ip)),
                _ => None,
            })
            .collect(),
        RouteNetlinkMessage::NewRoute(r) => r
            .attributes
            .iter()
            .filter_map(|attr| match attr {
                RouteAttribute::Destination(RouteAddress::Inet(ip)) => Some(Seen::Route(
                    IpAddr::V4(*ip),
                    r.header.destination_prefix_length,
                )),
                RouteAttribute::Destination(RouteAddress::Inet6(ip)) => Some(Seen::Route(
                    IpAddr::V6(*ip),
                    r.header.destination_prefix_length,
                )),
                _ => None,
            })
            .collect(),
        RouteNetlinkMessage::NewNeighbour(n) => n
            .attributes
            .iter()
            .filter_map(|attr| match attr {
                NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) => {
                    Some(Seen::Neighbour(IpAddr::V4(*ip)))
                }
                NeighbourAttribute::Destination(NeighbourAddress::Inet6(ip)) => {
                    Some(Seen::Neighbour(IpAddr::V6(*ip)))
                }
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The `p`-quantile of sorted durations.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Milliseconds with one decimal.
pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Runs `ip ARGS -batch` on `input`; panics when it fails.
pub fn ip_batch(args: &[&str], input: &str) {
    let path = std::env::temp_dir().join(format!("nsagent-bench-{}.batch", std::process::id()));
    std::fs::write(&path, input).unwrap();
    let out = Command::new("ip")
        .args(args)
        .arg("-batch")
        .arg(&path)
        .output()
        .expect("ip");
    assert!(
        out.status.success(),
        "ip -batch failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_file(path);
}

/// The configuration benchmarks run an in-process agent with: label `keys`' label, etcd at
/// `endpoint`, its default link group and the default route protocol, no periodic kernel
/// re-read, no HTTP server, no Docker.
pub fn bench_config(endpoint: &str, keys: &nsagent::keys::KeyTree) -> AgentConfig {
    AgentConfig {
        etcd: nsagent::store::EtcdSettings::with_endpoints(endpoint).unwrap(),
        label: keys.label().to_string(),
        link_group: Some(keys.default_link_group()),
        namespace_check_interval: Duration::from_millis(250),
        route_protocol: Some(nsagent::scheduler::DEFAULT_ROUTE_PROTOCOL),
        kernel_resync_interval: None,
        burst_quiet: Duration::from_millis(nsagent::config::DEFAULT_BURST_QUIET_MS),
        docker_host: None,
        http_listen: None,
    }
}

/// The agent running on its own runtime thread; stopped on drop.
pub struct AgentThread {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl AgentThread {
    /// Starts the agent with `config`.
    pub fn start(config: AgentConfig) -> AgentThread {
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let agent = Agent::new(&config).await.expect("agent");
                agent
                    .run(config, async {
                        let _ = stop_rx.await;
                    })
                    .await
                    .expect("agent run");
            });
        });
        AgentThread {
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }
}

impl Drop for AgentThread {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Logs to stderr when `RUST_LOG` is set.
pub fn init_logging() {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
}

/// Waits until `addr` is on a link inside the network namespace of process `pid`, watching
/// from a fresh netlink socket inside it: subscribe first, then dump, so an address that
/// arrived before the socket existed is found by the dump (timestamped then: an upper bound).
pub fn wait_address_in_process(pid: u32, addr: IpAddr, timeout: Duration) -> Option<Instant> {
    use rtnetlink::packet_core::{NetlinkHeader, NLM_F_DUMP, NLM_F_REQUEST};
    use rtnetlink::packet_route::address::AddressMessage;
    let handle = std::thread::spawn(move || -> Option<Instant> {
        let socket = subscribe(&format!("/proc/{pid}/ns/net"), &[5], 50_000).ok()?;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        let mut req = NetlinkMessage::new(
            header,
            NetlinkPayload::from(RouteNetlinkMessage::GetAddress(AddressMessage::default())),
        );
        req.finalize();
        let mut bytes = vec![0u8; req.buffer_len()];
        req.serialize(&mut bytes);
        socket.send(&bytes, 0).ok()?;
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 1 << 16];
        while Instant::now() < deadline {
            let n = match socket.recv(&mut &mut buf[..], 0) {
                Ok(n) => n,
                Err(_) => continue,
            };
            let at = Instant::now();
            if seen_in_datagram(&buf[..n]).contains(&Seen::Address(addr)) {
                return Some(at);
            }
        }
        None
    });
    handle.join().ok().flatten()
}

/// Deletes every key under `prefix` and waits until no link whose name contains
/// `link_prefix` is left in `namespaces` (the agent removes what it made).
pub fn remove_config_and_wait(
    rt: &tokio::runtime::Runtime,
    client: &mut etcd_client::Client,
    prefix: String,
    namespaces: &[String],
    link_prefix: &str,
    timeout: Duration,
) -> bool {
    rt.block_on(client.delete(
        prefix,
        Some(etcd_client::DeleteOptions::new().with_prefix()),
    ))
    .expect("delete the configuration");
    crate::common::wait_until(timeout, Duration::from_millis(50), || {
        namespaces
            .iter()
            .all(|ns| !crate::common::ip(&["-n", ns, "link", "show"]).contains(link_prefix))
    })
}

/// `GET path` from the agent's HTTP API at `listen` (HTTP/1.0): the status code and the
/// body, or `None` when nothing answers there (yet).
pub fn http_get(listen: &str, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(listen).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: bench\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Some((status, body.to_string()))
}

/// Operations in `nsagent_operations_total` that only read the kernel or resolve
/// namespaces; every other operation writes.
const READ_OPERATIONS: [&str; 5] = [
    "resolve_namespace",
    "read_links",
    "read_found_links",
    "read_routes_and_neighbours",
    "release_namespace",
];

/// The kernel writes the agent at `listen` has made since it started: the sum of
/// `nsagent_operations_total` over every operation that is not a read (whatever its result).
pub fn kernel_writes(listen: &str) -> Option<u64> {
    let (status, text) = http_get(listen, "/metrics")?;
    if status != 200 {
        return None;
    }
    let writes = text
        .lines()
        .filter(|l| l.starts_with("nsagent_operations_total{"))
        .filter(|l| {
            !READ_OPERATIONS
                .iter()
                .any(|op| l.contains(&format!("op=\"{op}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>();
    Some(writes as u64)
}

/// Resident memory of process `pid` now and at its peak (`VmRSS`, `VmHWM`), KiB.
pub fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let kib = |field| crate::common::process_status_kib(pid, field);
    Some((kib("VmRSS:")?, kib("VmHWM:")?))
}

/// Microseconds per unit with one decimal: `d / n`.
pub fn us_per(d: Duration, n: usize) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6 / n.max(1) as f64)
}

/// `a / b` as a ratio with two decimals.
pub fn ratio(a: Duration, b: Duration) -> String {
    format!("{:.2}x", a.as_secs_f64() / b.as_secs_f64())
}
