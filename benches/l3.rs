//! Benchmark (not a test): how fast the agent applies static routes and ARP entries.
//!
//! `cargo bench --bench l3 -- [--interfaces 100] [--namespaces 10] [--routes 1000] [--arps 1000]`
//! (root).
//!
//! With `--interfaces` VETH ends in place (applied by the agent first), ONE etcd transaction
//! writes all routes and ARP entries (spread over the interfaces, each route via the peer's
//! address). Prints the time from that transaction until every route and entry is in the
//! kernel, next to `ip -batch` doing the same kernel work (same routes and entries, another
//! protocol number) in the same run, and next to the time etcd takes to commit the
//! transaction. Completion is observed in the kernel with netlink listeners.

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use clap::Parser;
use nsagent::config::AgentConfig;
use nsagent::keys::{ItemKind, KeyTree};
use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};
use support::{ip_batch, ms, AgentThread, Seen, Watcher};

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

fn main() {
    let args = Args::parse();
    support::init_logging();
    assert!(nix::unistd::geteuid().is_root(), "the benchmark needs root");
    assert!(
        args.interfaces >= 2 && args.interfaces % 2 == 0,
        "an even number of interfaces"
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
    let pairs = args.interfaces / 2;
    let mut ends = Vec::new();
    for i in 0..pairs {
        let (hi, lo) = ((i / 250) as u8, (i % 250) as u8);
        let a = [172, 16 + hi, lo, 1];
        let b = [172, 16 + hi, lo, 2];
        ends.push(End {
            name: format!("a{i}"),
            host: format!("{prefix}a{i}"),
            ns: namespaces[i % namespaces.len()].clone(),
            addr: a,
            peer_addr: b,
        });
        ends.push(End {
            name: format!("b{i}"),
            host: format!("{prefix}b{i}"),
            ns: namespaces[(i + 1) % namespaces.len()].clone(),
            addr: b,
            peer_addr: a,
        });
    }
    let agent = AgentThread::start(AgentConfig {
        etcd: nsagent::store::EtcdSettings::with_endpoints(&etcd.endpoint()).unwrap(),
        label: label.clone(),
        link_group: Some(keys.default_link_group()),
        namespace_check_interval: Duration::from_millis(250),
        route_protocol: Some(nsagent::scheduler::DEFAULT_ROUTE_PROTOCOL),
        kernel_resync_interval: None,
        docker_host: None,
        http_listen: None,
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut client = rt.block_on(etcd.client());
    let watcher = Watcher::start(&namespaces);

    // The interfaces, applied by the agent first.
    let ops: Vec<etcd_client::TxnOp> = ends
        .chunks(2)
        .flat_map(|p| [(&p[0], &p[1]), (&p[1], &p[0])])
        .map(|(e, peer)| {
            let v = serde_json::json!({
                "name": e.name, "host_if_name": e.host, "enabled": true,
                "ip_addresses": [format!("{}/24", IpAddr::from(e.addr))],
                "namespace": {"type": "NAMED_NS", "name": e.ns},
                "veth": {"peer_if_name": peer.name}});
            etcd_client::TxnOp::put(keys.key(ItemKind::Interface, &e.name), v.to_string(), None)
        })
        .collect();
    rt.block_on(client.txn(etcd_client::Txn::new().and_then(ops)))
        .expect("txn");
    let want: HashSet<Seen> = ends
        .iter()
        .map(|e| Seen::Address(IpAddr::from(e.addr)))
        .collect();
    watcher
        .wait_all(&want, Duration::from_secs(120))
        .expect("interfaces applied");
    std::thread::sleep(Duration::from_millis(300));

    // The routes and entries: route j via interface j % N to the peer; entry j on
    // interface j % N for an address in its subnet.
    let routes: Vec<(String, &End, [u8; 4])> = (0..args.routes)
        .map(|j| {
            let dst = [10, 100 + (j / 250) as u8, (j % 250) as u8, 0];
            (format!("r{j}"), &ends[j % ends.len()], dst)
        })
        .collect();
    let arps: Vec<(String, &End, [u8; 4], String)> = (0..args.arps)
        .map(|j| {
            let e = &ends[j % ends.len()];
            let ip = [e.addr[0], e.addr[1], e.addr[2], 10 + (j / ends.len()) as u8];
            let mac = format!(
                "02:00:{:02x}:{:02x}:{:02x}:{:02x}",
                ip[0], ip[1], ip[2], ip[3]
            );
            (format!("p{j}"), e, ip, mac)
        })
        .collect();
    let want: HashSet<Seen> = routes
        .iter()
        .map(|(_, _, dst)| Seen::Route(IpAddr::from(*dst), 24))
        .chain(
            arps.iter()
                .map(|(_, _, ip, _)| Seen::Neighbour(IpAddr::from(*ip))),
        )
        .collect();
    println!(
        "nsagent L3 benchmark: {} routes and {} ARP entries over {} interfaces in {} namespaces",
        args.routes,
        args.arps,
        ends.len(),
        namespaces.len()
    );

    // ---- ip -batch doing the same kernel work (protocol 197, removed afterwards) ----------
    let mut per_ns: BTreeMap<&str, String> = BTreeMap::new();
    for (_, e, dst) in &routes {
        per_ns.entry(&e.ns).or_default().push_str(&format!(
            "route add {}/24 via {} dev {} proto 197\n",
            IpAddr::from(*dst),
            IpAddr::from(e.peer_addr),
            e.host
        ));
    }
    for (_, e, ip, mac) in &arps {
        per_ns.entry(&e.ns).or_default().push_str(&format!(
            "neigh add {} lladdr {mac} dev {} nud permanent proto 197\n",
            IpAddr::from(*ip),
            e.host
        ));
    }
    watcher.drain();
    let started = Instant::now();
    for (ns, cmds) in &per_ns {
        ip_batch(&["-n", ns], cmds);
    }
    let ip_time = watcher
        .wait_all(&want, Duration::from_secs(120))
        .expect("ip -batch applied")
        - started;
    for ns in per_ns.keys() {
        common::ip(&["-n", ns, "route", "flush", "proto", "197"]);
    }
    for (_, e, ip, _) in &arps {
        common::ip(&[
            "-n",
            &e.ns,
            "neigh",
            "del",
            &IpAddr::from(*ip).to_string(),
            "dev",
            &e.host,
        ]);
    }
    std::thread::sleep(Duration::from_millis(300));

    // ---- the agent: one transaction with every route and entry ---------------------------
    let mut ops = Vec::new();
    for (name, e, dst) in &routes {
        let v = serde_json::json!({
            "name": name, "dst_ip_addr": format!("{}/24", IpAddr::from(*dst)),
            "gw_addr": IpAddr::from(e.peer_addr).to_string(), "interface": e.name,
            "namespace": {"type": "NAMED_NS", "name": e.ns}});
        ops.push(etcd_client::TxnOp::put(
            keys.key(ItemKind::Route, name),
            v.to_string(),
            None,
        ));
    }
    for (name, e, ip, mac) in &arps {
        let v = serde_json::json!({
            "name": name, "interface": e.name, "ip_addr": IpAddr::from(*ip).to_string(),
            "hw_address": mac, "namespace": {"type": "NAMED_NS", "name": e.ns}});
        ops.push(etcd_client::TxnOp::put(
            keys.key(ItemKind::Arp, name),
            v.to_string(),
            None,
        ));
    }
    watcher.drain();
    let started = Instant::now();
    rt.block_on(client.txn(etcd_client::Txn::new().and_then(ops)))
        .expect("txn");
    let committed = started.elapsed();
    let agent_time = watcher
        .wait_all(&want, Duration::from_secs(300))
        .expect("the agent applied every route and entry")
        - started;

    println!();
    println!(
        "one etcd transaction of {} keys until every route and entry is in the kernel:",
        args.routes + args.arps
    );
    println!("  nsagent          {:>10}", ms(agent_time));
    println!(
        "  ip -batch        {:>10}   (same kernel work, {} ip processes)",
        ms(ip_time),
        per_ns.len()
    );
    println!(
        "  etcd commit      {:>10}   (the transaction alone, included in nsagent's time)",
        ms(committed)
    );
    let budget = ip_time + committed;
    println!(
        "  ratio nsagent / (ip -batch + etcd commit): {:.2}x (target <= 1.5x)",
        agent_time.as_secs_f64() / budget.as_secs_f64()
    );

    // ---- clean up: deleting the configuration removes everything ----------------------------
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
