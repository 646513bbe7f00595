//! Benchmark (not a test): how fast the agent turns etcd configuration into VETH pairs, and
//! how that grows with the number of pairs.
//!
//! `cargo bench --bench veth -- [--sizes 500,1000,2000,5000 | --pairs 500]
//! [--per-namespace 10] [--samples 50] [--one-by-one]` (root).
//!
//! For each size N (pairs spread over N / `--per-namespace` named namespaces, end b of a pair
//! in the namespace after end a's) it prints, next to floors measured in the same run:
//! * bulk: the time from committing ONE etcd transaction holding all 2N keys until every
//!   end has its address, next to `ip -batch` making the same links (create pair with
//!   group/MTU/up, set alias, add address; iproute2's defaults otherwise: one queue per CPU
//!   where the agent asks for one) and to etcd's commit time, with the cost per pair;
//! * single: p50/p90 time from putting the second end of one pair until both ends have their
//!   address, with the N pairs in place, next to its floor: etcd's acknowledgement of the put
//!   (p50) plus the kernel time per pair of `ip -batch`;
//! * deletion: ONE etcd delete of all 2N keys until every end is gone, next to one `ip -n NS
//!   link del group G` per namespace for the same links (and, with `--one-by-one`, `ip
//!   -batch` deleting one end per pair);
//! * chunked: the same 2N keys written as transactions of 128 operations (etcd's default
//!   `--max-txn-ops`) back to back, until every end has its address, against one transaction;
//!   `--chunked-runs` times, each pair of creations from an agent at rest, with the median
//!   ratio (one run of a few hundred milliseconds varies by a tenth from run to run);
//! * restart: with everything in place, the agent stopped (SIGTERM) and started again: the
//!   time until its `/readyz` answers 200, and the kernel writes it made (its
//!   `nsagent_operations_total`, reads left out);
//! * memory: the agent's resident memory (`VmRSS`, and `VmHWM`) after the bulk creation;
//!
//! then one line per size with the cost per pair of every phase. "Configured" and "gone" are
//! observed in the kernel (netlink listeners in every namespace), not taken from the agent.
//! The agent is the real `nsagent` binary in a child process, against a private etcd on free
//! ports; it is not running while the floors are measured. Every name starts with a prefix
//! unique to the run; namespaces and links are removed afterwards, also on failure. Exits
//! non-zero when something does not converge; never because of a timing.

#[path = "../tests/agent_support/mod.rs"]
mod agent_support;
#[path = "../tests/common/mod.rs"]
mod common;
mod support;

#[path = "veth/agent.rs"]
mod agent;
#[path = "veth/floor.rs"]
mod floor;
#[path = "veth/phases.rs"]
mod phases;
#[path = "veth/plan.rs"]
mod plan;
#[path = "veth/report.rs"]
mod report;

use agent::Agent;
use clap::Parser;
use nsagent::keys::KeyTree;
use phases::Phases;
use plan::Plan;
use report::Figures;
use std::process::Command;
use std::time::Duration;

/// How long the agent's kernel writes stay unchanged before it counts as at rest.
const AT_REST: Duration = Duration::from_secs(1);

/// etcd's default `--max-txn-ops`: the chunk of the chunked writes.
const ETCD_DEFAULT_MAX_TXN_OPS: usize = 128;

#[derive(Parser, Debug)]
struct Args {
    /// Sizes in pairs, comma-separated (e.g. 500,1000,2000,5000); overrides --pairs.
    #[arg(long, value_delimiter = ',')]
    sizes: Vec<usize>,
    /// VETH pairs, when --sizes is not given.
    #[arg(long, default_value_t = 500)]
    pairs: usize,
    /// Pairs per named namespace (namespaces = pairs / this, rounded up).
    #[arg(long, default_value_t = 10)]
    per_namespace: usize,
    /// Single-pair samples for p50/p90 (at most 250).
    #[arg(long, default_value_t = 50)]
    samples: usize,
    /// Comparisons of chunked against one-transaction creation (the median is reported).
    #[arg(long, default_value_t = 3)]
    chunked_runs: usize,
    /// Also measure `ip -batch` deleting the links one by one (slow: ~20 ms per pair).
    #[arg(long)]
    one_by_one: bool,
    /// Accepted for `cargo bench` compatibility.
    #[arg(long)]
    bench: bool,
}

/// Measures one size of `pairs` pairs against the benchmark's `etcd`.
fn run_size(args: &Args, etcd: &common::Etcd, pairs: usize) -> Figures {
    let prefix = common::unique_prefix("q");
    let label = format!("bench-{prefix}");
    let keys = KeyTree::new(&label);
    let group = keys.default_link_group();
    let plan = Plan::new(&prefix, pairs, args.per_namespace);
    let _namespaces = common::NetnsGuard::new(plan.namespaces.clone());
    let _links = agent_support::LinkGuard::new(&prefix);
    for ns in &plan.namespaces {
        common::ip(&["netns", "add", ns]);
    }
    let floors = floor::measure(&plan, &keys, group, args.one_by_one);
    let mut agent = Agent::start(&etcd.endpoint(), &label, group);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = rt.block_on(etcd.client());
    let mut phases = Phases {
        rt: &rt,
        client,
        keys: &keys,
        plan: &plan,
    };
    let create = phases.create(usize::MAX);
    let memory_kib = agent.memory_kib();
    // Once the agent has settled (statuses published, freed memory given back).
    std::thread::sleep(Duration::from_secs(1));
    let settled_kib = agent.memory_kib().0;
    let singles = phases.single_pairs(args.samples, &|| agent.writes());
    let restart = agent.restart();
    let delete = phases.delete();
    // The chunked creation starts from an agent at rest, as the bulk one did: the
    // deletion's requests return only after the kernel's network synchronisation, after
    // the last end is gone.
    let delete_tail = agent.wait_writes_quiet(AT_REST);
    let mut chunked = vec![(create.total, phases.create(ETCD_DEFAULT_MAX_TXN_OPS))];
    let delete_to_rest = |phases: &mut Phases| {
        phases.delete();
        agent.wait_writes_quiet(AT_REST);
    };
    for _ in 1..args.chunked_runs {
        delete_to_rest(&mut phases);
        let one = phases.create(usize::MAX).total;
        delete_to_rest(&mut phases);
        chunked.push((one, phases.create(ETCD_DEFAULT_MAX_TXN_OPS)));
    }
    phases.delete();
    drop(agent);
    assert_no_links_left(&plan);
    Figures {
        pairs,
        namespaces: plan.namespaces.len(),
        floors,
        create,
        chunked,
        memory_kib,
        settled_kib,
        singles,
        restart,
        delete_tail,
        delete,
    }
}

/// Panics when a link of the plan's prefix is still in one of its namespaces.
fn assert_no_links_left(plan: &Plan) {
    let left = plan
        .namespaces
        .iter()
        .any(|ns| common::ip(&["-n", ns, "link", "show"]).contains(&plan.prefix));
    assert!(!left, "links of the benchmark are left behind");
}

fn main() {
    let args = Args::parse();
    assert!(nix::unistd::geteuid().is_root(), "the benchmark needs root");
    let sizes = if args.sizes.is_empty() {
        vec![args.pairs]
    } else {
        args.sizes.clone()
    };
    assert!(
        sizes.iter().all(|&n| n > 0) && args.samples > 0 && args.chunked_runs > 0,
        "sizes, samples and chunked runs must be positive"
    );
    let etcd = common::Etcd::start_new();
    println!(
        "nsagent VETH benchmark: sizes {sizes:?} pairs, {} pairs per namespace, {} single-pair samples (kernel {})",
        args.per_namespace,
        args.samples,
        String::from_utf8_lossy(&Command::new("uname").arg("-r").output().unwrap().stdout).trim()
    );
    let mut all = Vec::new();
    for &pairs in &sizes {
        let figures = run_size(&args, &etcd, pairs);
        figures.print();
        all.push(figures);
        // Let the kernel finish tearing down the namespaces of this size.
        std::thread::sleep(Duration::from_secs(1));
    }
    report::print_growth(&all);
}
