//! Benchmark (not a test): how fast the agent applies static routes and ARP entries.
//!
//! `cargo bench --bench l3 -- [--interfaces 100] [--namespaces 10] [--routes 1000]
//! [--arps 1000] [--single-routes 100]` (root).
//!
//! With `--interfaces` VETH ends in place (applied by the agent first), it prints:
//! * bulk: the time from ONE etcd transaction writing all routes and ARP entries (spread
//!   over the interfaces, each route via the peer's address) until every route and entry is
//!   in the kernel, next to `ip -batch` doing the same kernel work (same routes and entries,
//!   another protocol number) in the same run, and next to etcd's commit time;
//! * routes one by one: `--single-routes` more routes, each put alone and waited for until
//!   it is in the kernel; p50/p90 next to the floor: etcd's acknowledgement of the put (p50)
//!   plus the kernel time per route of `ip -batch` adding the bulk routes.
//!
//! Completion is observed in the kernel with netlink listeners. The agent runs in this
//! process on its own runtime thread, against a private etcd on free ports. Exits non-zero
//! when something does not converge; never because of a timing.

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use clap::Parser;
use nsagent::keys::{ItemKind, KeyTree};
use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};
use support::{ip_batch, ms, percentile, ratio, AgentThread, Seen, Watcher};

/// How long the kernel may take to show everything of one phase.
const TIMEOUT: Duration = Duration::from_secs(300);
/// Protocol number of the routes and entries `ip -batch` adds (then flushes).
const IP_PROTO: &str = "197";

#[derive(Parser, Debug)]
struct Args {
    /// VETH ends (half as many pairs).
    #[arg(long, default_value_t = 100)]
    interfaces: usize,
    /// Named namespaces the pairs are spread over.
    #[arg(long, default_value_t = 10)]
    namespaces: usize,
    /// Routes.
    #[arg(long, default_value_t = 1000)]
    routes: usize,
    /// ARP entries.
    #[arg(long, default_value_t = 1000)]
    arps: usize,
    /// Routes put one at a time, each waited for.
    #[arg(long, default_value_t = 100)]
    single_routes: usize,
    /// Accepted for `cargo bench` compatibility.
    #[arg(long)]
    bench: bool,
}

/// One VETH end: logical name, host name, namespace, own address, peer address.
struct End {
    name: String,
    host: String,
    ns: String,
    addr: [u8; 4],
    peer_addr: [u8; 4],
}

/// A route: item name, the end it goes out of (via the peer's address), destination /24.
struct Route<'a> {
    name: String,
    end: &'a End,
    dst: [u8; 4],
}

/// An ARP entry: item name, the end it is on, address, MAC.
struct Arp<'a> {
    name: String,
    end: &'a End,
    ip: [u8; 4],
    mac: String,
}

/// The agent, an etcd client and the kernel listeners of one run.
struct World {
    rt: tokio::runtime::Runtime,
    client: etcd_client::Client,
    keys: KeyTree,
    watcher: Watcher,
}

/// `pairs` pairs, end b of each in the namespace after end a's.
fn make_ends(prefix: &str, namespaces: &[String], pairs: usize) -> Vec<End> {
    let mut ends = Vec::new();
    for i in 0..pairs {
        let (hi, lo) = ((i / 250) as u8, (i % 250) as u8);
        let a = [172, 16 + hi, lo, 1];
        let b = [172, 16 + hi, lo, 2];
        for (side, ns, addr, peer_addr) in [("a", i, a, b), ("b", i + 1, b, a)] {
            ends.push(End {
                name: format!("{side}{i}"),
                host: format!("{prefix}{side}{i}"),
                ns: namespaces[ns % namespaces.len()].clone(),
                addr,
                peer_addr,
            });
        }
    }
    ends
}

/// `count` routes whose destinations start at `10.<first>.0.0`, route j via end j % N.
fn make_routes<'a>(ends: &'a [End], count: usize, tag: &str, first: usize) -> Vec<Route<'a>> {
    (0..count)
        .map(|j| Route {
            name: format!("{tag}{j}"),
            end: &ends[j % ends.len()],
            dst: [10, (first + j / 250) as u8, (j % 250) as u8, 0],
        })
        .collect()
}

/// `count` ARP entries, entry j on end j % N for an address in its subnet.
fn make_arps(ends: &[End], count: usize) -> Vec<Arp<'_>> {
    (0..count)
        .map(|j| {
            let end = &ends[j % ends.len()];
            let a = end.addr;
            let ip = [a[0], a[1], a[2], 10 + (j / ends.len()) as u8];
            let mac = format!(
                "02:00:{:02x}:{:02x}:{:02x}:{:02x}",
                ip[0], ip[1], ip[2], ip[3]
            );
            Arp {
                name: format!("p{j}"),
                end,
                ip,
                mac,
            }
        })
        .collect()
}

/// Every route and entry, as the listeners see them.
fn wanted(routes: &[Route], arps: &[Arp]) -> HashSet<Seen> {
    routes
        .iter()
        .map(|r| Seen::Route(IpAddr::from(r.dst), 24))
        .chain(arps.iter().map(|a| Seen::Neighbour(IpAddr::from(a.ip))))
        .collect()
}

fn interface_json(e: &End, peer: &End) -> String {
    serde_json::json!({
        "name": e.name, "host_if_name": e.host, "enabled": true,
        "ip_addresses": [format!("{}/24", IpAddr::from(e.addr))],
        "namespace": {"type": "NAMED_NS", "name": e.ns},
        "veth": {"peer_if_name": peer.name}})
    .to_string()
}

fn route_json(r: &Route) -> String {
    serde_json::json!({
        "name": r.name, "dst_ip_addr": format!("{}/24", IpAddr::from(r.dst)),
        "gw_addr": IpAddr::from(r.end.peer_addr).to_string(), "interface": r.end.name,
        "namespace": {"type": "NAMED_NS", "name": r.end.ns}})
    .to_string()
}

fn arp_json(a: &Arp) -> String {
    serde_json::json!({
        "name": a.name, "interface": a.end.name, "ip_addr": IpAddr::from(a.ip).to_string(),
        "hw_address": a.mac, "namespace": {"type": "NAMED_NS", "name": a.end.ns}})
    .to_string()
}

impl World {
    /// Commits `ops` in one transaction; returns how long etcd took.
    fn txn(&mut self, ops: Vec<etcd_client::TxnOp>) -> Duration {
        let started = Instant::now();
        self.rt
            .block_on(self.client.txn(etcd_client::Txn::new().and_then(ops)))
            .expect("txn");
        started.elapsed()
    }

    /// The interfaces, applied by the agent (one transaction, waited for).
    fn apply_interfaces(&mut self, ends: &[End]) {
        let ops = ends
            .chunks(2)
            .flat_map(|p| [(&p[0], &p[1]), (&p[1], &p[0])])
            .map(|(e, peer)| {
                let key = self.keys.key(ItemKind::Interface, &e.name);
                etcd_client::TxnOp::put(key, interface_json(e, peer), None)
            })
            .collect();
        self.txn(ops);
        let want: HashSet<Seen> = ends
            .iter()
            .map(|e| Seen::Address(IpAddr::from(e.addr)))
            .collect();
        self.watcher
            .wait_all(&want, TIMEOUT)
            .expect("the agent did not apply the interfaces");
        std::thread::sleep(Duration::from_millis(300));
    }

    /// Runs `ip -batch` of `lines` (one process per namespace) and waits until the listeners
    /// saw `want`; the time that took and the number of processes. Flushes everything it
    /// added afterwards.
    fn ip_floor(&self, lines: &[(&str, String)], want: &HashSet<Seen>) -> (Duration, usize) {
        let mut per_ns: BTreeMap<&str, String> = BTreeMap::new();
        for (ns, line) in lines {
            per_ns.entry(*ns).or_default().push_str(line);
        }
        self.watcher.drain();
        let started = Instant::now();
        for (ns, cmds) in &per_ns {
            ip_batch(&["-n", ns], cmds);
        }
        let took = self
            .watcher
            .wait_all(want, TIMEOUT)
            .expect("ip -batch did not apply everything")
            - started;
        for ns in per_ns.keys() {
            common::ip(&["-n", ns, "route", "flush", "proto", IP_PROTO]);
            common::ip(&["-n", ns, "neigh", "flush", "nud", "permanent"]);
        }
        std::thread::sleep(Duration::from_millis(300));
        (took, per_ns.len())
    }

    /// One transaction of every route and entry until the kernel shows all of them; the
    /// time, and etcd's commit time.
    fn agent_bulk(&mut self, routes: &[Route], arps: &[Arp]) -> (Duration, Duration) {
        let mut ops = Vec::new();
        for r in routes {
            let key = self.keys.key(ItemKind::Route, &r.name);
            ops.push(etcd_client::TxnOp::put(key, route_json(r), None));
        }
        for a in arps {
            let key = self.keys.key(ItemKind::Arp, &a.name);
            ops.push(etcd_client::TxnOp::put(key, arp_json(a), None));
        }
        self.watcher.drain();
        let started = Instant::now();
        let committed = self.txn(ops);
        let took = self
            .watcher
            .wait_all(&wanted(routes, arps), TIMEOUT)
            .expect("the agent did not apply every route and entry")
            - started;
        (took, committed)
    }

    /// Puts `routes` one at a time, each waited for until it is in the kernel; the sorted
    /// latencies and etcd's acknowledgement times.
    fn routes_one_by_one(&mut self, routes: &[Route]) -> (Vec<Duration>, Vec<Duration>) {
        let (mut latencies, mut puts) = (Vec::new(), Vec::new());
        for r in routes {
            let key = self.keys.key(ItemKind::Route, &r.name);
            self.watcher.drain();
            let started = Instant::now();
            self.rt
                .block_on(self.client.put(key, route_json(r), None))
                .expect("put");
            puts.push(started.elapsed());
            let want = HashSet::from([Seen::Route(IpAddr::from(r.dst), 24)]);
            let done = self
                .watcher
                .wait_all(&want, Duration::from_secs(30))
                .expect("the agent did not apply a route put alone");
            latencies.push(done - started);
        }
        latencies.sort();
        puts.sort();
        (latencies, puts)
    }
}

/// `ip -batch` lines adding `routes` (and `arps`), by namespace.
fn ip_lines<'a>(routes: &[Route<'a>], arps: &[Arp<'a>]) -> Vec<(&'a str, String)> {
    let route = |r: &Route<'a>| {
        let (dst, via) = (IpAddr::from(r.dst), IpAddr::from(r.end.peer_addr));
        let line = format!(
            "route add {dst}/24 via {via} dev {} proto {IP_PROTO}\n",
            r.end.host
        );
        (r.end.ns.as_str(), line)
    };
    let arp = |a: &Arp<'a>| {
        let line = format!(
            "neigh add {} lladdr {} dev {} nud permanent proto {IP_PROTO}\n",
            IpAddr::from(a.ip),
            a.mac,
            a.end.host
        );
        (a.end.ns.as_str(), line)
    };
    routes
        .iter()
        .map(route)
        .chain(arps.iter().map(arp))
        .collect()
}

/// The bulk figures.
struct Bulk {
    keys: usize,
    agent: Duration,
    ip: Duration,
    ip_processes: usize,
    committed: Duration,
}

fn print_bulk(b: &Bulk) {
    println!();
    println!(
        "one etcd transaction of {} keys until every route and entry is in the kernel:",
        b.keys
    );
    println!("  nsagent          {:>10}", ms(b.agent));
    println!(
        "  ip -batch        {:>10}   (same kernel work, {} ip processes)",
        ms(b.ip),
        b.ip_processes
    );
    println!(
        "  etcd commit      {:>10}   (the transaction alone, included in nsagent's time)",
        ms(b.committed)
    );
    println!(
        "  ratio nsagent / (ip -batch + etcd commit): {} (target <= 1.5x)",
        ratio(b.agent, b.ip + b.committed)
    );
}

/// Prints the one-by-one figures; `per_route` is the kernel time per route of `ip -batch`.
fn print_one_by_one(latencies: &[Duration], puts: &[Duration], per_route: Duration) {
    println!();
    println!(
        "routes one by one, each put until it is in the kernel ({} routes, everything above in place):",
        latencies.len()
    );
    let (p50, put50) = (percentile(latencies, 0.5), percentile(puts, 0.5));
    println!(
        "  nsagent p50 {}  |  floor {} = etcd put ack p50 {} + ip -batch per route {}  |  ratio {} (target <= 1.3x)",
        ms(p50),
        ms(put50 + per_route),
        ms(put50),
        ms(per_route),
        ratio(p50, put50 + per_route)
    );
    println!(
        "  nsagent p90 {}   max {}   etcd put ack p90 {}",
        ms(percentile(latencies, 0.9)),
        ms(*latencies.last().unwrap()),
        ms(percentile(puts, 0.9))
    );
}

fn main() {
    let args = Args::parse();
    support::init_logging();
    assert!(nix::unistd::geteuid().is_root(), "the benchmark needs root");
    assert!(
        args.interfaces >= 2 && args.interfaces % 2 == 0,
        "an even number of interfaces"
    );
    assert!(
        args.routes > 0 && args.single_routes > 0 && args.routes + args.single_routes <= 250 * 50,
        "1 to 12500 routes in all"
    );
    let etcd = common::Etcd::start_new();
    let prefix = common::unique_prefix("w");
    let label = format!("bench-{prefix}");
    let keys = KeyTree::new(&label);
    let namespaces: Vec<String> = (0..args.namespaces)
        .map(|i| format!("{prefix}n{i}"))
        .collect();
    let _guard = common::NetnsGuard::new(namespaces.clone());
    for ns in &namespaces {
        common::ip(&["netns", "add", ns]);
    }
    let ends = make_ends(&prefix, &namespaces, args.interfaces / 2);
    let agent = AgentThread::start(support::bench_config(&etcd.endpoint(), &keys));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = rt.block_on(etcd.client());
    let mut world = World {
        rt,
        client,
        keys,
        watcher: Watcher::start(&namespaces),
    };
    world.apply_interfaces(&ends);

    let routes = make_routes(&ends, args.routes, "r", 100);
    let singles = make_routes(
        &ends,
        args.single_routes,
        "o",
        100 + args.routes.div_ceil(250),
    );
    let arps = make_arps(&ends, args.arps);
    println!(
        "nsagent L3 benchmark: {} routes and {} ARP entries over {} interfaces in {} namespaces",
        args.routes,
        args.arps,
        ends.len(),
        namespaces.len()
    );
    let (ip_routes, _) = world.ip_floor(&ip_lines(&routes, &[]), &wanted(&routes, &[]));
    let (ip, ip_processes) = world.ip_floor(&ip_lines(&routes, &arps), &wanted(&routes, &arps));
    let (agent_time, committed) = world.agent_bulk(&routes, &arps);
    let (latencies, puts) = world.routes_one_by_one(&singles);
    print_bulk(&Bulk {
        keys: args.routes + args.arps,
        agent: agent_time,
        ip,
        ip_processes,
        committed,
    });
    print_one_by_one(&latencies, &puts, ip_routes / args.routes as u32);

    // Deleting the configuration removes everything.
    let World {
        rt,
        mut client,
        keys,
        watcher,
    } = world;
    drop(watcher);
    let gone = support::remove_config_and_wait(
        &rt,
        &mut client,
        keys.agent_prefix(),
        &namespaces,
        &prefix,
        Duration::from_secs(120),
    );
    drop(agent);
    assert!(
        gone,
        "the agent did not remove its links after their configuration was deleted"
    );
}
