//! Benchmark (not a test): a soak of the agent binary.
//!
//! `cargo bench --bench soak -- [--cycles 200] [--pairs 100] [--namespaces 10]
//! [--report-every 20] [--settle-s 12]` (root).
//!
//! Every cycle writes N VETH pairs (2N interface keys) with one route and one ARP entry per
//! pair in ONE etcd transaction, waits until every address, route and entry is in the
//! kernel (netlink listeners in the namespaces), deletes every key and waits until the
//! links are gone. The ends are spread over `--namespaces` namespaces that stay and one made
//! for the cycle, deleted afterwards: in odd cycles while its pairs are still configured,
//! in even ones after their keys are gone.
//!
//! Prints the agent's resident memory, open descriptors, threads, sockets and netlink
//! sockets at the start, after the first cycle, every `--report-every` cycles and at the
//! end (start, first cycle and end once the counts have settled), with the cycle times, and
//! the resident memory at the end against the one after the first cycle (end / first). The
//! agent is the real `nsagent` binary in a child process, so every figure is its own.

#[path = "../tests/agent_support/mod.rs"]
mod agent_support;
#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/soak_support/mod.rs"]
mod soak_support;
mod support;

use clap::Parser;
use soak_support::{delete_all, put_all, Applied, Figures, Workload};
use std::collections::HashSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};
use support::{ms, Seen, Watcher};

#[derive(Parser, Debug)]
struct Args {
    /// Cycles of creating and deleting everything.
    #[arg(long, default_value_t = 200)]
    cycles: usize,
    /// VETH pairs per cycle (each with one route and one ARP entry).
    #[arg(long, default_value_t = 100)]
    pairs: usize,
    /// Namespaces that stay, besides the one made for each cycle.
    #[arg(long, default_value_t = 10)]
    namespaces: usize,
    /// Seconds without a change after which the counts are taken as settled (idle threads
    /// of tokio's blocking pool exit after 10 s).
    #[arg(long, default_value_t = 12)]
    settle_s: u64,
    /// Print the figures every this many cycles.
    #[arg(long, default_value_t = 20)]
    report_every: usize,
    /// Accepted for `cargo bench` compatibility.
    #[arg(long)]
    bench: bool,
}

/// The longest wait for the counts to settle.
const SETTLE_LIMIT: Duration = Duration::from_secs(120);
/// How long one cycle may take to apply, or to remove, everything.
const CYCLE_TIMEOUT: Duration = Duration::from_secs(300);

/// What the netlink listeners see once `w` is applied.
fn wanted(w: &Workload) -> HashSet<Seen> {
    w.expected()
        .into_iter()
        .map(|(_, applied)| match applied {
            Applied::Address(a) => Seen::Address(IpAddr::V4(a)),
            Applied::Route(dst) => Seen::Route(IpAddr::V4(dst), 24),
            Applied::Neighbour(n) => Seen::Neighbour(IpAddr::V4(n)),
        })
        .collect()
}

/// Apply and remove times of the cycles since the last report.
#[derive(Default)]
struct Times {
    apply: Vec<Duration>,
    remove: Vec<Duration>,
}

impl Times {
    fn summary(&mut self) -> String {
        let line = |d: &[Duration]| {
            let mean = d.iter().sum::<Duration>() / d.len().max(1) as u32;
            let max = d.iter().max().copied().unwrap_or_default();
            format!("{} / {}", ms(mean), ms(max))
        };
        let out = format!(
            "apply mean/max {}   remove mean/max {}",
            line(&self.apply),
            line(&self.remove)
        );
        *self = Times::default();
        out
    }
}

fn main() {
    let args = Args::parse();
    assert!(nix::unistd::geteuid().is_root(), "the benchmark needs root");
    assert!(args.cycles > 0 && args.pairs > 0 && args.report_every > 0);
    let etcd = common::Etcd::start_new();
    let prefix = common::unique_prefix("s");
    let label = format!("bench-{prefix}");
    let fixed: Vec<String> = (0..args.namespaces)
        .map(|i| format!("{prefix}n{i}"))
        .collect();
    let mut namespace_guard = common::NetnsGuard::new(fixed.clone());
    let _link_guard = agent_support::LinkGuard::new(&prefix);
    for ns in &fixed {
        common::ip(&["netns", "add", ns]);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut client = rt.block_on(etcd.client());
    let agent = agent_support::AgentProcess::start(&etcd.endpoint(), &label, &[]);
    let liveness = format!("/vnf-agent/{label}/check/status/v1/agent");
    let live = common::wait_until(Duration::from_secs(30), Duration::from_millis(50), || {
        rt.block_on(etcd.get(&liveness)).is_some()
    });
    assert!(live, "the agent did not start; log:\n{}", agent.log());
    let pid = agent.pid();
    let quiet = Duration::from_secs(args.settle_s);
    let settled = || Figures::settled(pid, &fixed, quiet, SETTLE_LIMIT).expect("figures");

    println!(
        "nsagent soak: {} cycles of {} pairs ({} interface keys, {} routes, {} ARP entries in one transaction) over {} + 1 namespaces; agent pid {pid}",
        args.cycles,
        args.pairs,
        2 * args.pairs,
        args.pairs,
        args.pairs,
        args.namespaces
    );
    let start = settled();
    println!("start (settled)      {start}");
    let began = Instant::now();
    // Time spent in the cycles themselves (settling and reports excluded).
    let mut cycling = Duration::ZERO;
    let mut times = Times::default();
    let mut after_first = start;
    for c in 1..=args.cycles {
        let cycle_began = Instant::now();
        let fresh = format!("{prefix}f{c}");
        common::ip(&["netns", "add", &fresh]);
        namespace_guard.add(&fresh);
        let mut namespaces = fixed.clone();
        namespaces.push(fresh.clone());
        let w = Workload::new(&prefix, &namespaces, args.pairs);
        let want = wanted(&w);

        let watcher = Watcher::start(&namespaces);
        let t = Instant::now();
        rt.block_on(put_all(&mut client, &label, &w));
        let applied = watcher.wait_all(&want, CYCLE_TIMEOUT);
        assert!(applied.is_some(), "cycle {c}: not everything was applied");
        times.apply.push(t.elapsed());
        // The listeners' sockets would keep the cycle's namespace alive.
        drop(watcher);

        if !c.is_multiple_of(2) {
            common::ip(&["netns", "del", &fresh]);
        }
        let t = Instant::now();
        rt.block_on(delete_all(&mut client, &label));
        let gone = common::wait_until(CYCLE_TIMEOUT, Duration::from_millis(50), || {
            w.links_left() == 0
        });
        assert!(gone, "cycle {c}: {} links left", w.links_left());
        times.remove.push(t.elapsed());
        if c.is_multiple_of(2) {
            common::ip(&["netns", "del", &fresh]);
        }
        cycling += cycle_began.elapsed();

        if c == 1 {
            after_first = settled();
            println!("cycle    1 (settled) {after_first}   {}", times.summary());
        } else if c.is_multiple_of(args.report_every) || c == args.cycles {
            let now = Figures::of(pid, &fixed).expect("figures");
            println!("cycle {c:>4}           {now}   {}", times.summary());
        }
    }
    let total = began.elapsed();
    let end = settled();
    println!("end (settled)        {end}");
    let delta = |a: i64, b: i64| format!("{:+}", b - a);
    println!(
        "change since cycle 1: RSS {} KiB, fds {}, threads {}, sockets {}, netlink {}",
        delta(after_first.rss_kib as i64, end.rss_kib as i64),
        delta(after_first.fds as i64, end.fds as i64),
        delta(after_first.threads as i64, end.threads as i64),
        delta(after_first.sockets as i64, end.sockets as i64),
        delta(after_first.netlink as i64, end.netlink as i64),
    );
    println!(
        "RSS after cycle 1 {} KiB, at the end {} KiB: end / first {:.3} (target <= 1.10)",
        after_first.rss_kib,
        end.rss_kib,
        end.rss_kib as f64 / after_first.rss_kib.max(1) as f64
    );
    println!(
        "{} cycles in {:.1} s ({:.2} s per cycle; {:.1} s in all with settling and reports)",
        args.cycles,
        cycling.as_secs_f64(),
        cycling.as_secs_f64() / args.cycles as f64,
        total.as_secs_f64()
    );
    drop(agent);
}
