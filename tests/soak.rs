//! Soak test (counts, not timings): the agent binary's open descriptors, threads and
//! sockets return to their baseline after cycles of creating and deleting VETH pairs with
//! a route and an ARP entry each. `benches/soak.rs` runs the long version and prints memory.
//!
//! The pairs are spread over two namespaces that stay and one made for the cycle, which goes
//! away after it: in odd cycles while the pairs are still configured (the agent notices and
//! withdraws them), in even ones after their keys are deleted. So every cycle opens and
//! releases a namespace, its descriptor and its netlink socket.

mod agent_support;
mod common;
mod soak_support;

use agent_support::TestEnv;
use common::{ip, wait_until, NetnsGuard};
use soak_support::{delete_all, put_all, Figures, Workload};
use std::time::Duration;

const CYCLES: usize = 10;
const PAIRS: usize = 20;
/// How long everything may take to be applied, or removed, in one cycle.
const CYCLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Counts are taken once they have not changed for this long: idle threads of tokio's
/// blocking pool exit after 10 s.
const QUIET: Duration = Duration::from_secs(12);
const SETTLE_LIMIT: Duration = Duration::from_secs(90);

struct Soak {
    env: TestEnv,
    rt: tokio::runtime::Runtime,
    client: etcd_client::Client,
    /// Namespaces that stay.
    fixed: Vec<String>,
    /// The namespaces of the cycles.
    fresh: NetnsGuard,
    /// The agent's process.
    pid: u32,
    /// The agent's figures with the last cycle's workload applied.
    applied: Option<Figures>,
}

impl Soak {
    /// Cycle `c`: writes the workload in one transaction, waits until the kernel shows all of
    /// it, deletes it (and the cycle's namespace) and waits until its links are gone.
    fn cycle(&mut self, c: usize) {
        let fresh = self.env.ns(&format!("f{c}"));
        ip(&["netns", "add", &fresh]);
        self.fresh.add(&fresh);
        let mut namespaces = self.fixed.clone();
        namespaces.push(fresh.clone());
        let w = Workload::new(&self.env.p, &namespaces, PAIRS);
        self.rt
            .block_on(put_all(&mut self.client, &self.env.label, &w));
        let expected = w.expected();
        let mut missing = expected.len();
        let applied = wait_until(CYCLE_TIMEOUT, Duration::from_millis(100), || {
            missing = expected.difference(&w.applied()).count();
            missing == 0
        });
        assert!(
            applied,
            "cycle {c}: {missing} of {} addresses, routes and entries not applied",
            expected.len()
        );
        self.applied = Some(Figures::of(self.pid, &namespaces).expect("the agent's figures"));
        if !c.is_multiple_of(2) {
            ip(&["netns", "del", &fresh]);
        }
        self.rt
            .block_on(delete_all(&mut self.client, &self.env.label));
        let gone = wait_until(CYCLE_TIMEOUT, Duration::from_millis(100), || {
            w.links_left() == 0
        });
        assert!(gone, "cycle {c}: {} links left", w.links_left());
        if c.is_multiple_of(2) {
            ip(&["netns", "del", &fresh]);
        }
    }
}

#[test]
fn descriptors_threads_and_sockets_return_to_their_baseline() {
    let Some(env) = TestEnv::new("k") else { return };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let fixed = vec![env.ns("x"), env.ns("y")];
    for ns in &fixed {
        ip(&["netns", "add", ns]);
    }
    let agent = env.agent_with(&[]);
    rt.block_on(env.wait_agent_running());
    let client = rt.block_on(env.etcd.client());
    let figures =
        || Figures::settled(agent.pid(), &fixed, QUIET, SETTLE_LIMIT).expect("the agent's figures");
    let mut soak = Soak {
        env,
        rt,
        client,
        fixed: fixed.clone(),
        fresh: NetnsGuard::default(),
        pid: agent.pid(),
        applied: None,
    };

    // The baseline: after one cycle, once the runtime's worker threads exist and the
    // connections of the namespaces in use have been opened (and released) once.
    soak.cycle(1);
    let baseline = figures();
    for c in 2..=CYCLES {
        soak.cycle(c);
    }
    let end = figures();
    eprintln!("after cycle 1:  {baseline}\nafter cycle {CYCLES}: {end}");
    // No growth at all: everything a cycle opens is closed again.
    assert!(
        end.fds <= baseline.fds,
        "descriptors grew: {baseline} -> {end}"
    );
    assert!(
        end.threads <= baseline.threads,
        "threads grew: {baseline} -> {end}"
    );
    assert!(
        end.sockets <= baseline.sockets,
        "sockets grew: {baseline} -> {end}"
    );
    assert!(
        end.netlink <= baseline.netlink,
        "netlink sockets grew: {baseline} -> {end}"
    );
    // The figures are real: with pairs applied, the netlink sockets of the three
    // namespaces in use are found next to the agent's own.
    let applied = soak.applied.expect("figures with the pairs applied");
    eprintln!("applied:        {applied}");
    assert!(baseline.netlink >= 1, "no netlink socket found: {baseline}");
    assert!(
        applied.netlink > baseline.netlink + fixed.len(),
        "one netlink socket per namespace in use: {baseline} -> {applied}"
    );
}
