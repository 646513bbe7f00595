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
//!   configured, with the N pairs in place.
//!
//! "Configured" is observed in the kernel, not taken from the agent: one netlink multicast
//! listener per namespace records when each expected address appears. The agent runs in this
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
    /// (name, host, namespace, address) per end, ends 2i and 2i+1 form pair i.
    ends: Vec<(String, String, String, IpAddr)>,
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

fn end_json(end: &(String, String, String, IpAddr), peer: &str) -> String {
    serde_json::json!({
        "name": end.0, "host_if_name": end.1, "enabled": true, "mtu": 1500,
        "ip_addresses": [format!("{}/24", end.3)],
        "namespace": {"type": "NAMED_NS", "name": end.2},
        "veth": {"peer_if_name": peer},
    })
    .to_string()
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

    // ---- ip -batch doing the same kernel work -------------------------------------------
    let watcher = Watcher::start(&namespaces);
    let want: HashSet<Seen> = p.ends.iter().map(|e| Seen::Address(e.3)).collect();
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
    let ip_done = watcher
        .wait_all(&want, Duration::from_secs(120))
        .expect("ip -batch addresses");
    let ip_time = ip_done - started;
    for ns in &namespaces {
        // Deleting the ends in one namespace deletes their peers too.
        let out = common::ip(&["-n", ns, "-j", "link", "show"]);
        let names: Vec<String> = serde_json::from_str::<serde_json::Value>(&out)
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|l| l["ifname"].as_str().map(str::to_string))
            .filter(|n| n.starts_with(&prefix))
            .collect();
        let cmds: String = names.iter().map(|n| format!("link del {n}\n")).collect();
        let _ = Command::new("ip")
            .args(["-n", ns, "-force", "-batch", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .map(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(cmds.as_bytes()).unwrap();
                c.wait()
            });
    }
    drop(watcher);

    // ---- the agent ------------------------------------------------------------------------
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

    let watcher = Watcher::start(&namespaces);
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
        .wait_all(&want, Duration::from_secs(300))
        .expect("agent applied all pairs");
    let agent_time = done - started;

    // ---- single pair latency with all pairs in place --------------------------------------
    let mut samples = Vec::new();
    // How long etcd takes to acknowledge the put (its commit, fsync included).
    let mut put_samples = Vec::new();
    let ns0 = &namespaces[0];
    let ns1 = &namespaces[1 % namespaces.len()];
    for i in 0..args.samples {
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
        put_samples.push(t0.elapsed());
        let done = watcher
            .wait_all(
                &HashSet::from([Seen::Address(a.3), Seen::Address(b.3)]),
                Duration::from_secs(10),
            )
            .expect("single pair applied");
        samples.push(done - t0);
        for n in [&a.0, &b.0] {
            rt.block_on(client.delete(keys.key(ItemKind::Interface, n), None))
                .unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    samples.sort();
    put_samples.sort();

    println!();
    println!(
        "bulk, one etcd transaction of {} keys until every end has its address:",
        2 * args.pairs
    );
    println!("  nsagent          {:>10}", ms(agent_time));
    println!(
        "  ip -batch        {:>10}   (same kernel work, {} ip processes)",
        ms(ip_time),
        1 + per_ns.len()
    );
    println!(
        "  etcd commit      {:>10}   (the transaction alone, included in nsagent's time)",
        ms(committed)
    );
    println!(
        "  ratio nsagent / ip -batch: {:.2}x (target <= 1.5x)",
        agent_time.as_secs_f64() / ip_time.as_secs_f64()
    );
    println!();
    println!("single pair, second end put until both ends have their address ({} samples, {} pairs in place):", samples.len(), args.pairs);
    println!(
        "  p50 {}   p90 {}   max {}   (target p50 < 5 ms)",
        ms(percentile(&samples, 0.5)),
        ms(percentile(&samples, 0.9)),
        ms(*samples.last().unwrap())
    );
    println!(
        "  of which etcd acknowledging the put: p50 {}   p90 {}",
        ms(percentile(&put_samples, 0.5)),
        ms(percentile(&put_samples, 0.9))
    );

    // ---- clean up: deleting the configuration removes every pair ---------------------------
    drop(watcher);
    let gone = support::remove_config_and_wait(
        &rt,
        &mut client,
        keys.config_prefix(),
        &namespaces,
        &prefix,
        Duration::from_secs(60),
    );
    drop(agent);
    assert!(
        gone,
        "the agent did not remove the pairs after their configuration was deleted"
    );
}
