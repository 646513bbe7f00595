//! Benchmark (not a test): how fast the agent repairs changes made behind its back.
//!
//! `cargo bench --bench repair -- [--samples 10]` (root).
//!
//! One pair (an end with an address, MTU and MAC in a named namespace), a route and an ARP
//! entry on it, applied by the agent; the periodic re-read is off, so every repair comes
//! from kernel events. For each kind of change (link deleted, renamed, moved out, set down,
//! other MTU, other MAC, address removed, foreign address added, route deleted, route
//! changed, entry deleted, entry changed) the bench makes the change with `ip` and polls the
//! kernel until it is as configured again; it prints p50 and the slowest time per kind. The
//! time includes the polling (`ip` runs take 1-3 ms each). Samples of one kind are a second
//! and more apart: closer repairs of one item are a fight, which backs off on purpose.

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use clap::Parser;
use nsagent::config::AgentConfig;
use nsagent::keys::{ItemKind, KeyTree};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::{ms, percentile, AgentThread};

#[derive(Parser, Debug)]
struct Args {
    /// Samples per kind of change.
    #[arg(long, default_value_t = 10)]
    samples: usize,
    /// Accepted for `cargo bench` compatibility.
    #[arg(long)]
    bench: bool,
}

/// `ip -j ARGS` as JSON (`Null` when it fails).
fn ip_json(args: &[&str]) -> Value {
    let mut all = vec!["-j"];
    all.extend(args);
    common::try_ip(&all)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null)
}

struct World {
    ns: String,
    other_ns: String,
    host: String,
    proto: String,
}

impl World {
    fn link(&self) -> Value {
        ip_json(&["-d", "-n", &self.ns, "addr", "show", "dev", &self.host])[0].clone()
    }

    fn link_ok(&self) -> bool {
        let l = self.link();
        l["mtu"] == 1400
            && l["address"] == "02:00:00:81:00:01"
            && l["flags"]
                .as_array()
                .is_some_and(|f| f.iter().any(|x| x == "UP"))
            && l["ifalias"].as_str().is_some_and(|a| a.ends_with("/r1/r2"))
            && {
                let v4: Vec<&Value> = l["addr_info"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|a| a["family"] == "inet")
                    .collect();
                v4.len() == 1 && v4[0]["local"] == "10.81.0.1"
            }
    }

    fn route_ok(&self) -> bool {
        let routes = ip_json(&["-n", &self.ns, "route", "show", "10.98.0.0/24"]);
        routes
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r["gateway"] == "10.81.0.2"))
    }

    fn entry_ok(&self) -> bool {
        let n = ip_json(&["-n", &self.ns, "neigh", "show", "to", "10.81.0.9"]);
        n[0]["lladdr"] == "02:00:00:81:00:09"
    }

    fn intact(&self) -> bool {
        self.link_ok() && self.route_ok() && self.entry_ok()
    }

    fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", self.ns.as_str()];
        all.extend(args);
        common::ip(&all);
    }
}

/// A kind of change: its name and what `ip` does.
type Change = (&'static str, fn(&World));

const CHANGES: [Change; 12] = [
    ("link deleted", |w| w.ip(&["link", "del", &w.host])),
    ("link renamed", |w| {
        w.ip(&[
            "link",
            "set",
            "dev",
            &w.host,
            "name",
            &format!("{}x", w.host),
        ])
    }),
    ("link moved out", |w| {
        w.ip(&["link", "set", "dev", &w.host, "netns", &w.other_ns])
    }),
    ("link set down", |w| {
        w.ip(&["link", "set", "dev", &w.host, "down"])
    }),
    ("other MTU", |w| {
        w.ip(&["link", "set", "dev", &w.host, "mtu", "1300"])
    }),
    ("other MAC", |w| {
        w.ip(&[
            "link",
            "set",
            "dev",
            &w.host,
            "address",
            "02:00:00:81:00:77",
        ])
    }),
    ("address removed", |w| {
        w.ip(&["addr", "del", "10.81.0.1/24", "dev", &w.host])
    }),
    ("foreign address added", |w| {
        w.ip(&["addr", "add", "10.82.0.1/24", "dev", &w.host])
    }),
    ("route deleted", |w| w.ip(&["route", "del", "10.98.0.0/24"])),
    ("route changed", |w| {
        w.ip(&[
            "route",
            "replace",
            "10.98.0.0/24",
            "dev",
            &w.host,
            "proto",
            &w.proto,
        ])
    }),
    ("entry deleted", |w| {
        w.ip(&["neigh", "del", "10.81.0.9", "dev", &w.host])
    }),
    ("entry changed", |w| {
        w.ip(&[
            "neigh",
            "replace",
            "10.81.0.9",
            "lladdr",
            "02:00:00:81:00:66",
            "dev",
            &w.host,
            "nud",
            "permanent",
        ])
    }),
];

fn main() {
    let args = Args::parse();
    support::init_logging();
    assert!(nix::unistd::geteuid().is_root(), "the benchmark needs root");
    let etcd = common::Etcd::start_new();
    let prefix = common::unique_prefix("h");
    let label = format!("bench-{prefix}");
    let keys = KeyTree::new(&label);
    let (ns, other_ns, peer_ns) = (
        format!("{prefix}x"),
        format!("{prefix}z"),
        format!("{prefix}y"),
    );
    let _guard = common::NetnsGuard::new([ns.clone(), other_ns.clone(), peer_ns.clone()]);
    common::ip(&["netns", "add", &other_ns]);
    let protocol = 201u8;
    let _agent = AgentThread::start(AgentConfig {
        route_protocol: Some(protocol),
        ..support::bench_config(&etcd.endpoint(), &keys)
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut client = rt.block_on(etcd.client());
    let host = format!("{prefix}r1");
    let named = |n: &str| json!({"type": "NAMED_NS", "name": n});
    let values = [
        (
            keys.key(ItemKind::Interface, "r1"),
            json!({"name": "r1", "host_if_name": host, "enabled": true, "mtu": 1400,
                "phys_address": "02:00:00:81:00:01", "ip_addresses": ["10.81.0.1/24"],
                "namespace": named(&ns), "veth": {"peer_if_name": "r2"}}),
        ),
        (
            keys.key(ItemKind::Interface, "r2"),
            json!({"name": "r2", "host_if_name": format!("{prefix}r2"), "enabled": true,
                "ip_addresses": ["10.81.0.2/24"], "namespace": named(&peer_ns),
                "veth": {"peer_if_name": "r1"}}),
        ),
        (
            keys.key(ItemKind::Route, "rt"),
            json!({"name": "rt", "dst_ip_addr": "10.98.0.0/24", "gw_addr": "10.81.0.2",
                "interface": "r1", "namespace": named(&ns)}),
        ),
        (
            keys.key(ItemKind::Arp, "nb"),
            json!({"name": "nb", "interface": "r1", "ip_addr": "10.81.0.9",
                "hw_address": "02:00:00:81:00:09", "namespace": named(&ns)}),
        ),
    ];
    let ops: Vec<etcd_client::TxnOp> = values
        .iter()
        .map(|(k, v)| etcd_client::TxnOp::put(k.as_str(), v.to_string(), None))
        .collect();
    rt.block_on(client.txn(etcd_client::Txn::new().and_then(ops)))
        .expect("txn");
    let world = World {
        ns,
        other_ns,
        host,
        proto: protocol.to_string(),
    };
    let settle = |what: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !world.intact() {
            assert!(Instant::now() < deadline, "{what}: not repaired in 30 s");
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    settle("the configuration");
    println!(
        "repair latency: change made with `ip` until the kernel is as configured again ({} samples per kind, polled with `ip`)",
        args.samples
    );
    println!("{:<24} {:>10} {:>10}", "change", "p50", "max");
    let mut all = Vec::new();
    for (what, change) in CHANGES {
        let mut times = Vec::new();
        for _ in 0..args.samples {
            std::thread::sleep(Duration::from_millis(1200));
            let started = Instant::now();
            change(&world);
            settle(what);
            times.push(started.elapsed());
        }
        times.sort();
        println!(
            "{:<24} {:>10} {:>10}",
            what,
            ms(percentile(&times, 0.5)),
            ms(*times.last().unwrap())
        );
        all.extend(times);
    }
    all.sort();
    println!(
        "{:<24} {:>10} {:>10}",
        "all kinds",
        ms(percentile(&all, 0.5)),
        ms(*all.last().unwrap())
    );
}
