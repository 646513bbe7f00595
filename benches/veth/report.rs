//! The figures of one size, printed next to their floors, and the growth over sizes.

use super::agent::Restart;
use super::floor::Floors;
use super::phases::{Creation, Singles};
use crate::support::{ms, percentile, ratio, us_per};
use std::time::Duration;

/// Everything measured for one size.
pub struct Figures {
    /// Pairs.
    pub pairs: usize,
    /// Namespaces they are spread over.
    pub namespaces: usize,
    /// `ip` doing the same work.
    pub floors: Floors,
    /// One transaction of every key.
    pub create: Creation,
    /// The same keys in transactions of 128 operations, each with the one-transaction
    /// creation it is compared with (the first: `create`'s).
    pub chunked: Vec<(Duration, Creation)>,
    /// Agent memory after the bulk creation (now, peak), KiB.
    pub memory_kib: (u64, u64),
    /// Agent memory a second after the bulk creation (settled), KiB.
    pub settled_kib: u64,
    /// Single pairs with everything in place.
    pub singles: Singles,
    /// Restart with everything in place.
    pub restart: Restart,
    /// One delete of every key.
    pub delete: Duration,
    /// From the last end gone until the agent's last deletion request returned.
    pub delete_tail: Duration,
}

impl Figures {
    /// The median ratio of chunked to one-transaction creation.
    fn chunked_ratio(&self) -> f64 {
        let mut ratios: Vec<f64> = self
            .chunked
            .iter()
            .map(|(one, c)| c.total.as_secs_f64() / one.as_secs_f64())
            .collect();
        ratios.sort_by(f64::total_cmp);
        ratios[ratios.len() / 2]
    }

    /// The floor of a single pair: etcd's acknowledgement of the put (p50) plus the kernel
    /// time per pair of `ip -batch`.
    fn single_floor(&self) -> Duration {
        percentile(&self.singles.puts, 0.5) + self.floors.create / self.pairs.max(1) as u32
    }

    /// Prints every figure of this size.
    pub fn print(&self) {
        println!();
        println!(
            "== {} pairs over {} namespaces ({} keys)",
            self.pairs,
            self.namespaces,
            2 * self.pairs
        );
        self.print_create();
        self.print_single();
        self.print_delete();
        self.print_chunked();
        self.print_restart_and_memory();
    }

    fn print_create(&self) {
        let (c, f) = (&self.create, &self.floors);
        println!("bulk, one etcd transaction until every end has its address:");
        println!(
            "  nsagent          {:>10}   {:>10}/pair",
            ms(c.total),
            us_per(c.total, self.pairs)
        );
        println!(
            "  ip -batch        {:>10}   {:>10}/pair   (floor: the same links by ip, {} ip processes)",
            ms(f.create),
            us_per(f.create, self.pairs),
            f.create_processes
        );
        println!(
            "  etcd commit      {:>10}   (the transaction alone, included in nsagent's time)",
            ms(c.committed)
        );
        println!(
            "  ratio nsagent / ip -batch: {} (target <= 1.2x)",
            ratio(c.total, f.create)
        );
    }

    fn print_single(&self) {
        let s = &self.singles;
        let per_pair = self.floors.create / self.pairs.max(1) as u32;
        println!(
            "single pair, second end put until both ends have their address ({} samples, {} pairs in place):",
            s.latencies.len(),
            self.pairs
        );
        let p50 = percentile(&s.latencies, 0.5);
        println!(
            "  nsagent p50 {}  |  floor {} = etcd put ack p50 {} + ip -batch per pair {}  |  ratio {} (target <= 1.3x)",
            ms(p50),
            ms(self.single_floor()),
            ms(percentile(&s.puts, 0.5)),
            ms(per_pair),
            ratio(p50, self.single_floor())
        );
        println!(
            "  nsagent p90 {}   max {}   etcd put ack p90 {}",
            ms(percentile(&s.latencies, 0.9)),
            ms(*s.latencies.last().unwrap()),
            ms(percentile(&s.puts, 0.9))
        );
    }

    fn print_delete(&self) {
        let f = &self.floors;
        println!("deletion, one etcd delete of every key until every end is gone:");
        println!(
            "  nsagent          {:>10}   {:>10}/pair",
            ms(self.delete),
            us_per(self.delete, self.pairs)
        );
        println!(
            "  ip link del group{:>10}   {:>10}/pair   (floor: one `ip -n NS link del group G` per namespace)",
            ms(f.group_delete),
            us_per(f.group_delete, self.pairs)
        );
        if let Some(t) = f.one_by_one_delete {
            println!(
                "  ip -batch        {:>10}   {:>10}/pair   (one by one: `link del` of one end per pair)",
                ms(t),
                us_per(t, self.pairs)
            );
        }
        println!(
            "  ratio nsagent / group floor: {} (target <= 1.5x)",
            ratio(self.delete, f.group_delete)
        );
        println!(
            "  the agent's last deletion request returned {} after the last end was gone (the kernel's network synchronisation); the chunked creation starts after it",
            ms(self.delete_tail)
        );
    }

    fn print_chunked(&self) {
        let Some((_, first)) = self.chunked.first() else {
            return;
        };
        println!(
            "chunked, the same keys in {} transaction(s) of <= 128 operations, back to back, against one transaction ({} runs from an agent at rest):",
            first.transactions,
            self.chunked.len()
        );
        for (i, (one, c)) in self.chunked.iter().enumerate() {
            println!(
                "  run {}: chunked {:>10} ({}/pair; etcd acknowledged the last after {}), one transaction {:>10}: {}",
                i + 1,
                ms(c.total),
                us_per(c.total, self.pairs),
                ms(c.committed),
                ms(*one),
                ratio(c.total, *one)
            );
        }
        println!(
            "  ratio chunked / one transaction, median: {:.2}x (target ~1x)",
            self.chunked_ratio()
        );
    }

    fn print_restart_and_memory(&self) {
        let r = &self.restart;
        println!(
            "restart with everything in place: ready (/readyz 200) {} after start (target <= 1 s); kernel writes {} at ready, {} a second later (target 0)",
            ms(r.ready),
            r.writes_at_ready,
            r.writes_after
        );
        let (rss, peak) = self.memory_kib;
        println!(
            "agent memory after bulk creation: RSS {:.1} MiB at completion, {:.1} MiB a second later (peak {:.1} MiB) (target <= 64 MiB)",
            rss as f64 / 1024.0,
            self.settled_kib as f64 / 1024.0,
            peak as f64 / 1024.0
        );
    }
}

/// One line per size: cost per pair of every phase next to its floor, and the ratios.
pub fn print_growth(all: &[Figures]) {
    println!();
    println!("growth by size (µs per pair; ratios to the floor of the same run):");
    println!(
        "{:>6} {:>5} | {:>9} {:>9} {:>6} | {:>9} {:>9} {:>6} | {:>8} | {:>7} {:>6} | {:>8} {:>6} | {:>7} {:>7}",
        "pairs", "ns", "create", "ip-batch", "ratio", "delete", "group", "ratio", "chunked", "single", "ratio", "restart", "writes", "RSS MiB", "settled"
    );
    for f in all {
        let per = |d: Duration| format!("{:.0}", d.as_secs_f64() * 1e6 / f.pairs.max(1) as f64);
        let p50 = percentile(&f.singles.latencies, 0.5);
        println!(
            "{:>6} {:>5} | {:>9} {:>9} {:>6} | {:>9} {:>9} {:>6} | {:>8} | {:>7} {:>6} | {:>8} {:>6} | {:>7.1} {:>7.1}",
            f.pairs,
            f.namespaces,
            per(f.create.total),
            per(f.floors.create),
            ratio(f.create.total, f.floors.create),
            per(f.delete),
            per(f.floors.group_delete),
            ratio(f.delete, f.floors.group_delete),
            format!("{:.2}x", f.chunked_ratio()),
            ms(p50),
            ratio(p50, f.single_floor()),
            ms(f.restart.ready),
            f.restart.writes_after,
            f.memory_kib.0 as f64 / 1024.0,
            f.settled_kib as f64 / 1024.0
        );
    }
}
