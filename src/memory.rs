//! Giving memory back to the system after large rounds of work.
//!
//! A bulk create or delete of thousands of links allocates and frees a lot on several
//! threads (dump parsing, plans, operation batches). glibc keeps freed memory in its arenas
//! for reuse, so the agent's resident size stays at its peak long after the work is done
//! and creeps up over create/delete cycles. Trimming the arenas once a large piece of work
//! has settled returns those pages; it costs a few milliseconds, so it runs only after
//! many operations.

use std::time::Duration;

/// Operations executed since the last trim that make the next settle trim.
pub const TRIM_AFTER_OPS: usize = 256;

/// How long after a trim a second one follows: what comes after a round (statuses
/// published to etcd, the echo of its changes, the namespaces read again) allocates and
/// frees too, and the first trim leaves that memory resident.
pub const TRIM_AGAIN_AFTER: Duration = Duration::from_secs(2);

/// Counts the operations executed and trims the allocator's free memory once enough work
/// has settled, and once more a while later (times are the agent's clock, passed in).
#[derive(Debug, Default)]
pub struct Trimmer {
    ops: usize,
    again: Option<Duration>,
}

impl Trimmer {
    /// `n` operations were executed.
    pub fn executed(&mut self, n: usize) {
        self.ops = self.ops.saturating_add(n);
    }

    /// The agent has nothing left to do at `now`: trims when enough work was done since
    /// the last trim, and then once more [`TRIM_AGAIN_AFTER`] later; true when it trimmed.
    pub fn settled(&mut self, now: Duration) -> bool {
        if self.ops < TRIM_AFTER_OPS {
            return false;
        }
        self.ops = 0;
        self.again = Some(now + TRIM_AGAIN_AFTER);
        release_free_memory();
        true
    }

    /// When the second trim is due, if one is.
    pub fn due(&self) -> Option<Duration> {
        self.again
    }

    /// Trims again if that is due at `now`; true when it trimmed.
    pub fn trim_if_due(&mut self, now: Duration) -> bool {
        if self.again.is_none_or(|due| now < due) {
            return false;
        }
        self.again = None;
        release_free_memory();
        true
    }
}

/// Threads of the runtime's blocking pool: the openings of namespaces and, on at most half
/// of them, the sends of link deletions (which wait for the kernel's network
/// synchronisation). Without a cap the pool grew to about a hundred threads in every large
/// deletion, each leaving memory behind (see [`use_one_arena`]).
pub const BLOCKING_THREADS: usize = 8;

/// Makes every thread allocate from one glibc arena (`M_ARENA_MAX` 1), unless the operator
/// chose otherwise (`MALLOC_ARENA_MAX` or `GLIBC_TUNABLES` set); call before any thread
/// starts. The agent's threads come and go (the blocking pool, one short-lived thread per
/// namespace opened), and each may take another arena: what outlives the thread that
/// allocated it stays scattered over arenas, where trimming cannot return the pages around
/// it. Over 100 create/delete cycles of 500 pairs the resident size grew by 15-22% with one
/// arena per thread, by 9% with one arena; the agent allocates too little for the shared
/// arena's lock to matter (the cycles were no slower).
pub fn use_one_arena() {
    #[cfg(target_env = "gnu")]
    if ["MALLOC_ARENA_MAX", "GLIBC_TUNABLES"]
        .iter()
        .all(|v| std::env::var_os(v).is_none())
    {
        // SAFETY: mallopt only changes a setting of the allocator; no pointer is passed.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }
}

/// Returns the allocator's free pages to the system (glibc's `malloc_trim`, which walks
/// every arena); nothing on other C libraries.
pub fn release_free_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free memory of the allocator; no pointer is passed.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_after_enough_work_and_once_more_a_while_later() {
        let secs = Duration::from_secs;
        let mut t = Trimmer::default();
        t.executed(TRIM_AFTER_OPS - 1);
        assert!(!t.settled(secs(1)), "too little work");
        assert_eq!(t.due(), None);
        t.executed(1);
        assert!(t.settled(secs(2)));
        assert_eq!(t.due(), Some(secs(2) + TRIM_AGAIN_AFTER));
        assert!(!t.settled(secs(3)), "the count starts again");
        assert!(!t.trim_if_due(secs(2) + TRIM_AGAIN_AFTER - Duration::from_millis(1)));
        assert!(t.trim_if_due(secs(2) + TRIM_AGAIN_AFTER));
        assert_eq!(t.due(), None);
        assert!(!t.trim_if_due(secs(100)), "once");
    }
}
