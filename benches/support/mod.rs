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

/// Records when addresses appear (or go) in the namespaces it listens to.
pub struct Watcher {
    rx: mpsc::Receiver<(Seen, Instant)>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Watcher {
    /// Starts one listener thread per namespace; returns when all listen.
    pub fn start(namespaces: &[String]) -> Watcher {
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        let threads = namespaces
            .iter()
            .map(|ns| {
                let (tx, stop, ready, ns) =
                    (tx.clone(), stop.clone(), ready_tx.clone(), ns.clone());
                std::thread::spawn(move || listen(&ns, tx, stop, ready))
            })
            .collect();
        for _ in namespaces {
            ready_rx.recv().expect("listener ready");
        }
        Watcher { rx, stop, threads }
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
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Listens to address, route and neighbour notifications inside namespace `ns` (this thread
/// enters it; it is a dedicated thread that ends with the listener).
fn listen(
    ns: &str,
    tx: mpsc::Sender<(Seen, Instant)>,
    stop: Arc<AtomicBool>,
    ready: mpsc::Sender<()>,
) {
    // Block in recv (with a timeout to notice `stop`): polling would steal the agent's CPU.
    let socket = subscribe(&format!("/var/run/netns/{ns}"), &[3, 5, 7], 100_000)
        .unwrap_or_else(|e| panic!("cannot listen in {ns}: {e}"));
    ready.send(()).unwrap();
    let mut buf = vec![0u8; 1 << 16];
    while !stop.load(Ordering::SeqCst) {
        let n = match socket.recv(&mut &mut buf[..], 0) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
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
