//! Benchmark (not a test): how fast the agent turns etcd configuration into VETH pairs.
//!
//! `cargo bench --bench veth -- [--pairs 500] [--namespaces 50] [--samples 50]` (root).
//!
//! Prints, for N pairs spread over M named namespaces:
//! * bulk: the time from committing ONE etcd transaction holding all 2N keys until every
//!   end is configured in the kernel (its address is present), next to `ip -batch` doing the
//!   same kernel work (create pair with group/MTU/MAC/up, set alias, add address) in the
//!   same run, and next to the time etcd itself takes to commit the transaction;
//! * single: p50/p90 time from putting the second end of one pair until the pair is
//!   configured, with the N pairs in place;
//! * deletion: the time from ONE etcd delete of all 2N keys until every end is gone (its
//!   address removed), next to the floor measured in the same run for the same links made
//!   the same way by `ip -batch`: one `ip -n NS link del group G` per namespace, and next to
//!   `ip -batch` deleting them one by one (`link del`, one end per pair).
//!
//! "Configured" and "gone" are observed in the kernel, not taken from the agent: one netlink
//! multicast listener per namespace records when each expected address appears or goes. The agent runs in this
//! process on its own runtime thread, against a private etcd on free ports.

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use clap::Parser;
use nsagent::config::AgentConfig;
use nsagent::keys::{ItemKind, KeyTree};
use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::process::Command;
use std::time::{Duration, Instant};
use support::{ip_batch, ms, percentile, AgentThread, Seen, Watcher};

/// An end: (item name, host name, namespace, address).
type End = (String, String, String, IpAddr);

#[derive(Parser, Debug)]
struct Args {
    /// VETH pairs.
    #[arg(long, default_value_t = 500)]
    pairs: usize,
    /// Named namespaces the pairs are spread over.
    #[arg(long, default_value_t = 50)]
    namespaces: usize,
    /// Single-pair samples for p50/p90.
    #[arg(long, default_value_t = 50)]
    samples: usize,
    /// Accepted for `cargo bench` compatibility.
    #[arg(long)]
    bench: bool,
}

struct Plan {
    /// Every end; ends 2i and 2i+1 form pair i.
    ends: Vec<End>,
}

impl Plan {
    /// Every end's address appearing.
    fn addresses(&self) -> HashSet<Seen> {
        self.ends.iter().map(|e| Seen::Address(e.3)).collect()
    }

    /// Every end's address going away.
    fn addresses_gone(&self) -> HashSet<Seen> {
        self.ends.iter().map(|e| Seen::AddressGone(e.3)).collect()
    }
}

fn plan(prefix: &str, pairs: usize, namespaces: &[String]) -> Plan {
    let mut ends = Vec::new();
    for i in 0..pairs {
        let (x, y) = (i % namespaces.len(), (i + 1) % namespaces.len());
        let (a, b) = (i / 250, i % 250);
        ends.push((
            format!("a{i}"),
            format!("{prefix}a{i}"),
            namespaces[x].clone(),
            IpAddr::from([10, 50 + a as u8, b as u8, 1]),
        ));
        ends.push((
            format!("b{i}"),
            format!("{prefix}b{i}"),
            namespaces[y].clone(),
            IpAddr::from([10, 50 + a as u8, b as u8, 2]),
        ));
    }
    Plan { ends }
}

fn end_json(end: &End, peer: &str) -> String {
    serde_json::json!({
        "name": end.0, "host_if_name": end.1, "enabled": true, "mtu": 1500,
        "ip_addresses": [format!("{}/24", end.3)],
        "namespace": {"type": "NAMED_NS", "name": end.2},
        "veth": {"peer_if_name": peer},
    })
    .to_string()
}

/// The same kernel work as the agent's bulk creation, by `ip -batch` (one process for the
/// pairs, one per namespace for aliases and addresses); the time until every address is
/// there, and the number of `ip` processes.
fn ip_create(p: &Plan, keys: &KeyTree, group: u32, namespaces: &[String]) -> (Duration, usize) {
    let watcher = Watcher::start(namespaces);
    let started = Instant::now();
    let mut links = String::new();
    let mut per_ns: BTreeMap<&str, String> = BTreeMap::new();
    for pair in p.ends.chunks(2) {
        let (a, b) = (&pair[0], &pair[1]);
        links.push_str(&format!(
            "link add {} netns {} group {group} mtu 1500 up type veth peer name {} netns {} group {group} mtu 1500\n",
            a.1, a.2, b.1, b.2
        ));
        for (e, peer) in [(a, &b.0), (b, &a.0)] {
            let s = per_ns.entry(&e.2).or_default();
            // The kernel refuses IFF_UP for the peer in the create request (ENOTCONN).
            let up = if std::ptr::eq(e, b) { " up" } else { "" };
            s.push_str(&format!(
                "link set dev {} alias {}{up}\n",
                e.1,
                keys.link_alias(&e.0, peer)
            ));
            s.push_str(&format!("addr add {}/24 dev {}\n", e.3, e.1));
        }
    }
    ip_batch(&[], &links);
    for (ns, cmds) in &per_ns {
        ip_batch(&["-n", ns], cmds);
    }
    let done = watcher
        .wait_all(&p.addresses(), Duration::from_secs(120))
        .expect("ip -batch addresses");
    (done - started, 1 + per_ns.len())
}

/// Deletes the pairs `ip_create` made one by one (`link del` of end `a` of each pair, one
/// `ip -batch` per namespace); the time until every address is gone.
fn ip_delete_one_by_one(p: &Plan, namespaces: &[String]) -> Duration {
    let mut per_ns: BTreeMap<&str, String> = BTreeMap::new();
    for pair in p.ends.chunks(2) {
        let a = &pair[0];
        per_ns
            .entry(&a.2)
            .or_default()
            .push_str(&format!("link del {}\n", a.1));
    }
    let watcher = Watcher::start(namespaces);
    let started = Instant::now();
    for (ns, cmds) in &per_ns {
        ip_batch(&["-n", ns], cmds);
    }
    let done = watcher
        .wait_all(&p.addresses_gone(), Duration::from_secs(300))
        .expect("ip -batch deleted every end");
    done - started
}

/// Deletes the pairs `ip_create` made by group: `ip -n NS link del group G` for every
/// namespace in turn (one finding its links gone with their peers fails, harmlessly); the
/// time until every address is gone.
fn ip_delete_by_group(p: &Plan, group: u32, namespaces: &[String]) -> Duration {
    let watcher = Watcher::start(namespaces);
    let group = group.to_string();
    let started = Instant::now();
    for ns in namespaces {
        let _ = common::try_ip(&["-n", ns, "link", "del", "group", &group]);
    }
    let done = watcher
        .wait_all(&p.addresses_gone(), Duration::from_secs(300))
        .expect("ip link del group deleted every end");
    done - started
}

/// The figures of one run.
struct Figures {
    agent_create: Duration,
    ip_create: Duration,
    ip_processes: usize,
    committed: Duration,
    singles: Vec<Duration>,
    single_puts: Vec<Duration>,
    agent_delete: Duration,
    group_delete: Duration,
    one_by_one_delete: Duration,
}

/// The agent's bulk creation: one transaction of every key until every address is there;
/// the time, and how long etcd took to commit the transaction.
fn agent_create(
    rt: &tokio::runtime::Runtime,
    client: &mut etcd_client::Client,
    keys: &KeyTree,
    p: &Plan,
    namespaces: &[String],
) -> (Duration, Duration) {
    let watcher = Watcher::start(namespaces);
    let ops: Vec<etcd_client::TxnOp> = p
        .ends
        .chunks(2)
        .flat_map(|pair| {
            let (a, b) = (&pair[0], &pair[1]);
            [
                etcd_client::TxnOp::put(
                    keys.key(ItemKind::Interface, &a.0),
                    end_json(a, &b.0),
                    None,
                ),
                etcd_client::TxnOp::put(
                    keys.key(ItemKind::Interface, &b.0),
                    end_json(b, &a.0),
                    None,
                ),
            ]
        })
        .collect();
    let started = Instant::now();
    rt.block_on(client.txn(etcd_client::Txn::new().and_then(ops)))
        .expect("txn");
    let committed = started.elapsed();
    let done = watcher
        .wait_all(&p.addresses(), Duration::from_secs(300))
        .expect("agent applied all pairs");
    (done - started, committed)
}

/// Single-pair latency with all pairs in place: from putting the second end until both ends
/// have their address, and how long etcd took to acknowledge that put (`samples` each,
/// sorted). Each sample pair is deleted again.
fn single_pairs(
    rt: &tokio::runtime::Runtime,
    client: &mut etcd_client::Client,
    keys: &KeyTree,
    prefix: &str,
    namespaces: &[String],
    samples: usize,
) -> (Vec<Duration>, Vec<Duration>) {
    let watcher = Watcher::start(namespaces);
    let (mut latencies, mut puts) = (Vec::new(), Vec::new());
    let ns0 = &namespaces[0];
    let ns1 = &namespaces[1 % namespaces.len()];
    for i in 0..samples {
        let a = (
            format!("sa{i}"),
            format!("{prefix}s{i}"),
            ns0.clone(),
            IpAddr::from([10, 49, i as u8, 1]),
        );
        let b = (
            format!("sb{i}"),
            format!("{prefix}t{i}"),
            ns1.clone(),
            IpAddr::from([10, 49, i as u8, 2]),
        );
        rt.block_on(client.put(
            keys.key(ItemKind::Interface, &a.0),
            end_json(&a, &b.0),
            None,
        ))
        .unwrap();
        std::thread::sleep(Duration::from_millis(20));
        watcher.drain();
        let t0 = Instant::now();
        rt.block_on(client.put(
            keys.key(ItemKind::Interface, &b.0),
            end_json(&b, &a.0),
            None,
        ))
        .unwrap();
        puts.push(t0.elapsed());
        let done = watcher
            .wait_all(
                &HashSet::from([Seen::Address(a.3), Seen::Address(b.3)]),
                Duration::from_secs(10),
            )
            .expect("single pair applied");
        latencies.push(done - t0);
        for n in [&a.0, &b.0] {
            rt.block_on(client.delete(keys.key(ItemKind::Interface, n), None))
                .unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    latencies.sort();
    puts.sort();
    (latencies, puts)
}

/// The agent's deletion: one etcd delete of every key until every address is gone.
fn agent_delete(
    rt: &tokio::runtime::Runtime,
    client: &mut etcd_client::Client,
    keys: &KeyTree,
    p: &Plan,
    namespaces: &[String],
) -> Duration {
    let watcher = Watcher::start(namespaces);
    let started = Instant::now();
    rt.block_on(client.delete(
        keys.config_prefix(),
        Some(etcd_client::DeleteOptions::new().with_prefix()),
    ))
    .expect("delete the configuration");
    let done = watcher
        .wait_all(&p.addresses_gone(), Duration::from_secs(300))
        .expect("agent deleted every end");
    done - started
}

fn print_figures(args: &Args, f: &Figures) {
    println!();
    println!(
        "bulk, one etcd transaction of {} keys until every end has its address:",
        2 * args.pairs
    );
    println!("  nsagent          {:>10}", ms(f.agent_create));
    println!(
        "  ip -batch        {:>10}   (same kernel work, {} ip processes)",
        ms(f.ip_create),
        f.ip_processes
    );
    println!(
        "  etcd commit      {:>10}   (the transaction alone, included in nsagent's time)",
        ms(f.committed)
    );
    println!(
        "  ratio nsagent / ip -batch: {:.2}x (target <= 1.5x)",
        f.agent_create.as_secs_f64() / f.ip_create.as_secs_f64()
    );
    println!();
    println!("single pair, second end put until both ends have their address ({} samples, {} pairs in place):", f.singles.len(), args.pairs);
    println!(
        "  p50 {}   p90 {}   max {}   (target p50 < 5 ms)",
        ms(percentile(&f.singles, 0.5)),
        ms(percentile(&f.singles, 0.9)),
        ms(*f.singles.last().unwrap())
    );
    println!(
        "  of which etcd acknowledging the put: p50 {}   p90 {}",
        ms(percentile(&f.single_puts, 0.5)),
        ms(percentile(&f.single_puts, 0.9))
    );
    println!();
    println!(
        "deletion, one etcd delete of all {} keys until every end is gone:",
        2 * args.pairs
    );
    println!("  nsagent          {:>10}", ms(f.agent_delete));
    println!(
        "  ip link del group{:>10}   (floor: one `ip -n NS link del group G` per namespace, {} ip processes)",
        ms(f.group_delete),
        args.namespaces
    );
    println!(
        "  ip -batch        {:>10}   (one by one: `link del` of one end per pair, an ip process per namespace)",
        ms(f.one_by_one_delete)
    );
    println!(
        "  ratio nsagent / group floor: {:.2}x (target <= 1.5x)",
        f.agent_delete.as_secs_f64() / f.group_delete.as_secs_f64()
    );
}

fn main() {
    let args = Args::parse();
    support::init_logging();
    assert!(nix::unistd::geteuid().is_root(), "the benchmark needs root");
    let etcd = common::Etcd::start_new();
    let prefix = common::unique_prefix("q");
    let label = format!("bench-{prefix}");
    let keys = KeyTree::new(&label);
    let group = keys.default_link_group();
    let namespaces: Vec<String> = (0..args.namespaces)
        .map(|i| format!("{prefix}n{i}"))
        .collect();
    let _guard = common::NetnsGuard::new(namespaces.clone());
    for ns in &namespaces {
        common::ip(&["netns", "add", ns]);
    }
    let p = plan(&prefix, args.pairs, &namespaces);
    println!(
        "nsagent VETH benchmark: {} pairs over {} namespaces (kernel {})",
        args.pairs,
        args.namespaces,
        String::from_utf8_lossy(&Command::new("uname").arg("-r").output().unwrap().stdout).trim()
    );

    let (ip_time, ip_processes) = ip_create(&p, &keys, group, &namespaces);
    let one_by_one_delete = ip_delete_one_by_one(&p, &namespaces);
    ip_create(&p, &keys, group, &namespaces);
    let group_delete = ip_delete_by_group(&p, group, &namespaces);

    let config = AgentConfig {
        etcd: nsagent::store::EtcdSettings::with_endpoints(&etcd.endpoint()).unwrap(),
        label: label.clone(),
        link_group: Some(group),
        namespace_check_interval: Duration::from_millis(250),
        route_protocol: Some(nsagent::scheduler::DEFAULT_ROUTE_PROTOCOL),
        kernel_resync_interval: None,
        docker_host: None,
        http_listen: None,
    };
    let agent = AgentThread::start(config);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut client = rt.block_on(etcd.client());
    std::thread::sleep(Duration::from_millis(500)); // the agent's first (empty) resync
    let (agent_time, committed) = agent_create(&rt, &mut client, &keys, &p, &namespaces);
    let (singles, single_puts) =
        single_pairs(&rt, &mut client, &keys, &prefix, &namespaces, args.samples);
    let agent_delete = agent_delete(&rt, &mut client, &keys, &p, &namespaces);
    drop(agent);
    print_figures(
        &args,
        &Figures {
            agent_create: agent_time,
            ip_create: ip_time,
            ip_processes,
            committed,
            singles,
            single_puts,
            agent_delete,
            group_delete,
            one_by_one_delete,
        },
    );
    let left = namespaces
        .iter()
        .any(|ns| common::ip(&["-n", ns, "link", "show"]).contains(&prefix));
    assert!(!left, "links of the benchmark are left behind");
}
