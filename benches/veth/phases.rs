//! What the agent is measured doing: creation in one transaction or in chunks, single pairs
//! with everything in place, and deletion. Completion is observed in the kernel.

use super::plan::{end_json, End, Plan};
use crate::common;
use crate::support::{Seen, Watcher};
use nsagent::keys::{ItemKind, KeyTree};
use std::collections::HashSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How long the agent may take to apply or remove every pair of one size.
const TIMEOUT: Duration = Duration::from_secs(600);
/// How long one sample pair may take.
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(30);

/// An etcd client and the configuration of one size.
pub struct Phases<'a> {
    /// Runs the client's requests.
    pub rt: &'a tokio::runtime::Runtime,
    /// Client of the benchmark's etcd.
    pub client: etcd_client::Client,
    /// The agent's keys.
    pub keys: &'a KeyTree,
    /// The pairs.
    pub plan: &'a Plan,
}

/// A creation: from the first write until every address is there, and until etcd
/// acknowledged the last write.
pub struct Creation {
    /// Until every end has its address.
    pub total: Duration,
    /// Until etcd acknowledged the last transaction.
    pub committed: Duration,
    /// Transactions written.
    pub transactions: usize,
}

/// Single-pair samples, sorted.
pub struct Singles {
    /// Second end put until both ends have their address.
    pub latencies: Vec<Duration>,
    /// etcd acknowledging that put.
    pub puts: Vec<Duration>,
}

impl Phases<'_> {
    /// Writes every key in transactions of at most `chunk` operations, back to back, and
    /// waits until every end has its address.
    pub fn create(&mut self, chunk: usize) -> Creation {
        let watcher = Watcher::start(&self.plan.namespaces);
        let ops = self.plan.puts(self.keys);
        let chunks: Vec<Vec<etcd_client::TxnOp>> = ops
            .chunks(chunk)
            .map(<[etcd_client::TxnOp]>::to_vec)
            .collect();
        let transactions = chunks.len();
        let started = Instant::now();
        for ops in chunks {
            self.rt
                .block_on(self.client.txn(etcd_client::Txn::new().and_then(ops)))
                .expect("txn");
        }
        let committed = started.elapsed();
        let done = watcher
            .wait_all(&self.plan.addresses(), TIMEOUT)
            .unwrap_or_else(|| panic!("the agent did not apply every pair within {TIMEOUT:?}"));
        Creation {
            total: done - started,
            committed,
            transactions,
        }
    }

    /// One etcd delete of every key until every end's address is gone.
    pub fn delete(&mut self) -> Duration {
        let watcher = Watcher::start(&self.plan.namespaces);
        let started = Instant::now();
        self.rt
            .block_on(self.client.delete(
                self.keys.config_prefix(),
                Some(etcd_client::DeleteOptions::new().with_prefix()),
            ))
            .expect("delete the configuration");
        let done = watcher
            .wait_all(&self.plan.addresses_gone(), TIMEOUT)
            .unwrap_or_else(|| panic!("the agent did not delete every end within {TIMEOUT:?}"));
        done - started
    }

    /// `samples` single pairs between the first two namespaces, with every pair in place:
    /// end a put, then end b put and timed until both ends have their address; both deleted
    /// again and waited for, by the kernel and by the agent (`writes` counts its kernel
    /// writes), before the next sample.
    pub fn single_pairs(&mut self, samples: usize, writes: &dyn Fn() -> u64) -> Singles {
        assert!(samples <= 250, "at most 250 samples (address space)");
        let ns = &self.plan.namespaces;
        let watched = [ns[0].clone(), ns[1 % ns.len()].clone()];
        let watcher = Watcher::start(&watched);
        let (mut latencies, mut puts) = (Vec::new(), Vec::new());
        for i in 0..samples {
            let end = |side: &str, ns: &str, host: u8| End {
                name: format!("s{side}{i}"),
                host: format!("{}s{side}{i}", self.plan.prefix),
                ns: ns.to_string(),
                addr: IpAddr::from([10, 49, i as u8, host]),
            };
            let (a, b) = (end("a", &watched[0], 1), end("b", &watched[1], 2));
            let (latency, put) = self.single_pair(&watcher, &a, &b, writes);
            latencies.push(latency);
            puts.push(put);
        }
        latencies.sort();
        puts.sort();
        Singles { latencies, puts }
    }

    /// One sample: the time from putting `b` until both ends have their address, and the
    /// time etcd took to acknowledge that put. It returns once the agent has finished
    /// deleting the pair again (`writes` counts the agent's kernel writes: the pair's
    /// creation and its deletion), so that the next sample times its pair alone: a
    /// deletion's request returns only after the kernel's network synchronisation, well
    /// after the addresses are gone.
    fn single_pair(
        &mut self,
        watcher: &Watcher,
        a: &End,
        b: &End,
        writes: &dyn Fn() -> u64,
    ) -> (Duration, Duration) {
        let writes_before = writes();
        self.put(a, &b.name);
        std::thread::sleep(Duration::from_millis(20));
        watcher.drain();
        let started = Instant::now();
        self.put(b, &a.name);
        let put = started.elapsed();
        let both = HashSet::from([Seen::Address(a.addr), Seen::Address(b.addr)]);
        let done = watcher
            .wait_all(&both, SAMPLE_TIMEOUT)
            .expect("a single pair was not applied");
        for end in [a, b] {
            let key = self.keys.key(ItemKind::Interface, &end.name);
            self.rt.block_on(self.client.delete(key, None)).unwrap();
        }
        let gone = HashSet::from([Seen::AddressGone(a.addr), Seen::AddressGone(b.addr)]);
        watcher
            .wait_all(&gone, SAMPLE_TIMEOUT)
            .expect("a single pair was not deleted");
        let finished = common::wait_until(SAMPLE_TIMEOUT, Duration::from_millis(1), || {
            writes() >= writes_before + 2
        });
        assert!(finished, "the agent did not finish deleting a single pair");
        (done - started, put)
    }

    /// Puts the key of `end`, whose peer is `peer`.
    fn put(&mut self, end: &End, peer: &str) {
        let key = self.keys.key(ItemKind::Interface, &end.name);
        self.rt
            .block_on(self.client.put(key, end_json(end, peer), None))
            .expect("put");
    }
}
