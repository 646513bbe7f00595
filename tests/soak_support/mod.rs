//! The soak workload shared by `tests/soak.rs` and `benches/soak.rs`: VETH pairs with one
//! route and one ARP entry each, written in one etcd transaction, checked in the kernel,
//! and the figures of a process that reveal a leak: resident memory, open descriptors,
//! threads, sockets and netlink sockets.
#![allow(dead_code)] // The test and the benchmark use different subsets.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::process::Command;
use std::time::{Duration, Instant};

/// Pairs whose ends, routes and entries the kernel shows.
pub struct Workload {
    /// Start of every link host name.
    prefix: String,
    /// Named namespaces the ends are spread over.
    namespaces: Vec<String>,
    pairs: usize,
}

/// One VETH end.
pub struct End {
    pub name: String,
    pub host: String,
    pub ns: String,
    pub addr: Ipv4Addr,
}

/// Pair `i`: its two ends; the route and the ARP entry go on end `a`, in its namespace.
pub struct Pair {
    pub a: End,
    pub b: End,
    /// Destination of the route via `b`'s address.
    pub route_dst: Ipv4Addr,
    /// Address of the ARP entry on `a`.
    pub neighbour: Ipv4Addr,
    pub mac: String,
}

impl Workload {
    /// `pairs` pairs whose links are named `<prefix>a<i>` / `<prefix>b<i>`, spread over
    /// `namespaces` (end `b` of pair `i` goes to the namespace after end `a`'s).
    pub fn new(prefix: &str, namespaces: &[String], pairs: usize) -> Workload {
        assert!(
            !namespaces.is_empty() && pairs <= 250 * 40,
            "at most 10000 pairs"
        );
        Workload {
            prefix: prefix.to_string(),
            namespaces: namespaces.to_vec(),
            pairs,
        }
    }

    /// Number of pairs.
    pub fn pairs(&self) -> usize {
        self.pairs
    }

    /// The namespaces the ends are in.
    pub fn namespaces(&self) -> &[String] {
        &self.namespaces
    }

    /// Start of every link host name.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Pair `i`.
    pub fn pair(&self, i: usize) -> Pair {
        let m = self.namespaces.len();
        let (hi, lo) = ((i / 250) as u8, (i % 250) as u8);
        let end = |side: &str, ns: usize, host: u8| End {
            name: format!("{side}{i}"),
            host: format!("{}{side}{i}", self.prefix),
            ns: self.namespaces[ns % m].clone(),
            addr: Ipv4Addr::new(10, 60 + hi, lo, host),
        };
        Pair {
            a: end("a", i, 1),
            b: end("b", i + 1, 2),
            route_dst: Ipv4Addr::new(10, 160 + hi, lo, 0),
            neighbour: Ipv4Addr::new(10, 60 + hi, lo, 9),
            mac: format!("02:5a:00:00:{hi:02x}:{lo:02x}"),
        }
    }

    /// Every item as (kind, name, JSON value): 2N interfaces, N routes, N ARP entries.
    pub fn items(&self) -> Vec<(&'static str, String, String)> {
        let mut items = Vec::with_capacity(4 * self.pairs);
        for i in 0..self.pairs {
            let p = self.pair(i);
            for (end, peer) in [(&p.a, &p.b), (&p.b, &p.a)] {
                let value = serde_json::json!({
                    "name": end.name, "host_if_name": end.host, "enabled": true,
                    "ip_addresses": [format!("{}/24", end.addr)],
                    "namespace": {"type": "NAMED_NS", "name": end.ns},
                    "veth": {"peer_if_name": peer.name},
                });
                items.push(("interface", end.name.clone(), value.to_string()));
            }
            let route = serde_json::json!({
                "name": format!("r{i}"), "dst_ip_addr": format!("{}/24", p.route_dst),
                "gw_addr": p.b.addr.to_string(), "interface": p.a.name,
                "namespace": {"type": "NAMED_NS", "name": p.a.ns},
            });
            items.push(("route", format!("r{i}"), route.to_string()));
            let arp = serde_json::json!({
                "name": format!("n{i}"), "interface": p.a.name,
                "ip_addr": p.neighbour.to_string(), "hw_address": p.mac,
                "namespace": {"type": "NAMED_NS", "name": p.a.ns},
            });
            items.push(("arp", format!("n{i}"), arp.to_string()));
        }
        items
    }

    /// What the kernel shows once everything is applied, per namespace: (namespace, what).
    pub fn expected(&self) -> HashSet<(String, Applied)> {
        let mut out = HashSet::new();
        for i in 0..self.pairs {
            let p = self.pair(i);
            out.insert((p.a.ns.clone(), Applied::Address(p.a.addr)));
            out.insert((p.b.ns.clone(), Applied::Address(p.b.addr)));
            out.insert((p.a.ns.clone(), Applied::Route(p.route_dst)));
            out.insert((p.a.ns.clone(), Applied::Neighbour(p.neighbour)));
        }
        out
    }

    /// What of [`Self::expected`] the kernel shows now (read with `ip -j`).
    pub fn applied(&self) -> HashSet<(String, Applied)> {
        let mut out = HashSet::new();
        for ns in &self.namespaces {
            let read = |what: &[&str]| -> Vec<serde_json::Value> {
                let mut args = vec!["-n", ns, "-j", "-4"];
                args.extend(what);
                let out = Command::new("ip").args(&args).output().expect("ip");
                serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout).unwrap_or_default()
            };
            let ip = |v: &serde_json::Value| v.as_str().and_then(|s| s.parse::<Ipv4Addr>().ok());
            for link in read(&["addr", "show"]) {
                for a in link["addr_info"].as_array().into_iter().flatten() {
                    out.extend(ip(&a["local"]).map(|a| (ns.clone(), Applied::Address(a))));
                }
            }
            for r in read(&["route", "show"]) {
                let dst = r["dst"].as_str().and_then(|d| d.strip_suffix("/24"));
                let dst = dst.and_then(|d| d.parse().ok());
                out.extend(dst.map(|d| (ns.clone(), Applied::Route(d))));
            }
            for n in read(&["neigh", "show"]) {
                let permanent = n["state"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|x| x == "PERMANENT"));
                if permanent {
                    out.extend(ip(&n["dst"]).map(|d| (ns.clone(), Applied::Neighbour(d))));
                }
            }
        }
        out
    }

    /// Links of the workload still present in its namespaces.
    pub fn links_left(&self) -> usize {
        self.namespaces
            .iter()
            .map(|ns| {
                let out = Command::new("ip")
                    .args(["-n", ns, "-o", "link", "show"])
                    .output()
                    .expect("ip");
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .filter(|l| l.contains(&format!(": {}", self.prefix)))
                    .count()
            })
            .sum()
    }
}

/// Something applied, as the kernel shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Applied {
    /// An address on a link.
    Address(Ipv4Addr),
    /// A route to this /24.
    Route(Ipv4Addr),
    /// A permanent neighbour entry.
    Neighbour(Ipv4Addr),
}

/// The figures of a process that reveal a leak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Figures {
    /// Resident memory (`VmRSS`), KiB.
    pub rss_kib: u64,
    /// Peak resident memory (`VmHWM`), KiB.
    pub peak_rss_kib: u64,
    /// Open file descriptors.
    pub fds: usize,
    /// Threads.
    pub threads: usize,
    /// Descriptors that are sockets.
    pub sockets: usize,
    /// Sockets that are netlink sockets of the agent's namespace or of the namespaces
    /// passed to [`Figures::of`].
    pub netlink: usize,
}

impl Figures {
    /// The figures of process `pid`; netlink sockets are looked for in its own namespace
    /// and in the named `namespaces`.
    pub fn of(pid: u32, namespaces: &[String]) -> std::io::Result<Figures> {
        let kib = |field| crate::common::process_status_kib(pid, field).unwrap_or(0);
        let mut fds = 0;
        let mut socket_inodes = Vec::new();
        for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))? {
            fds += 1;
            // A descriptor closed meanwhile has no link any more: counted, not a socket.
            let Ok(target) = std::fs::read_link(entry?.path()) else {
                continue;
            };
            let target = target.to_string_lossy();
            if let Some(inode) = target
                .strip_prefix("socket:[")
                .and_then(|s| s.strip_suffix(']'))
            {
                socket_inodes.push(inode.parse::<u64>().unwrap_or(0));
            }
        }
        let netlink = netlink_inodes(pid, namespaces);
        Ok(Figures {
            rss_kib: kib("VmRSS:"),
            peak_rss_kib: kib("VmHWM:"),
            fds,
            threads: std::fs::read_dir(format!("/proc/{pid}/task"))?.count(),
            sockets: socket_inodes.len(),
            netlink: socket_inodes.iter().filter(|i| netlink.contains(i)).count(),
        })
    }

    /// The counts (descriptors, threads, sockets), without memory.
    pub fn counts(&self) -> (usize, usize, usize, usize) {
        (self.fds, self.threads, self.sockets, self.netlink)
    }

    /// Waits until the counts of `pid` have not changed for `quiet` (idle threads of the
    /// runtime's blocking pool exit after 10 s) and returns the figures; after `limit`
    /// without such a pause, returns those with the lowest counts seen (a leak raises even
    /// the lowest).
    pub fn settled(
        pid: u32,
        namespaces: &[String],
        quiet: Duration,
        limit: Duration,
    ) -> std::io::Result<Figures> {
        let deadline = Instant::now() + limit;
        let mut last = Figures::of(pid, namespaces)?;
        let mut lowest = last;
        let mut since = Instant::now();
        while since.elapsed() < quiet {
            if Instant::now() >= deadline {
                return Ok(lowest);
            }
            std::thread::sleep(Duration::from_millis(250));
            let now = Figures::of(pid, namespaces)?;
            if now.counts() != last.counts() {
                since = Instant::now();
            }
            if now.counts() < lowest.counts() {
                lowest = now;
            }
            last = now;
        }
        Ok(last)
    }
}

impl std::fmt::Display for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RSS {:>7} KiB (peak {:>7} KiB)  fds {:>4}  threads {:>3}  sockets {:>4}  netlink {:>4}",
            self.rss_kib, self.peak_rss_kib, self.fds, self.threads, self.sockets, self.netlink
        )
    }
}

/// Inodes of the netlink sockets of the namespace of process `pid` and of the named
/// `namespaces` (each read from `/proc/thread-self/net/netlink` by a thread inside it;
/// namespaces that no longer exist are skipped).
fn netlink_inodes(pid: u32, namespaces: &[String]) -> HashSet<u64> {
    let mut inodes = parse_netlink_table(
        &std::fs::read_to_string(format!("/proc/{pid}/net/netlink")).unwrap_or_default(),
    );
    for ns in namespaces {
        let path = format!("/var/run/netns/{ns}");
        let table = std::thread::spawn(move || -> Option<String> {
            let file = std::fs::File::open(path).ok()?;
            nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).ok()?;
            std::fs::read_to_string("/proc/thread-self/net/netlink").ok()
        })
        .join()
        .ok()
        .flatten();
        inodes.extend(parse_netlink_table(&table.unwrap_or_default()));
    }
    inodes
}

/// The inode column (the last one) of `/proc/net/netlink`.
fn parse_netlink_table(table: &str) -> HashSet<u64> {
    table
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().last()?.parse().ok())
        .collect()
}

/// The configuration prefix of agent `label`.
pub fn config_prefix(label: &str) -> String {
    format!("/vnf-agent/{label}/linux/config/v1/")
}

/// Writes every item of `workload` for agent `label` in one etcd transaction.
pub async fn put_all(client: &mut etcd_client::Client, label: &str, workload: &Workload) {
    let prefix = config_prefix(label);
    let ops: Vec<etcd_client::TxnOp> = workload
        .items()
        .into_iter()
        .map(|(kind, name, value)| {
            etcd_client::TxnOp::put(format!("{prefix}{kind}/{name}"), value, None)
        })
        .collect();
    client
        .txn(etcd_client::Txn::new().and_then(ops))
        .await
        .expect("the transaction with every item");
}

/// Deletes every configuration key of agent `label` (one request).
pub async fn delete_all(client: &mut etcd_client::Client, label: &str) {
    client
        .delete(
            config_prefix(label),
            Some(etcd_client::DeleteOptions::new().with_prefix()),
        )
        .await
        .expect("delete the configuration");
}
