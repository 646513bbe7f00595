//! Giving memory back to the system after large rounds of work.
//!
//! A bulk create or delete of thousands of links allocates and frees a lot on several
//! threads (dump parsing, plans, operation batches). glibc keeps freed memory in its arenas
//! for reuse, so the agent's resident size stays at its peak long after the work is done
//! and creeps up over create/delete cycles. Trimming the arenas once a large piece of work
//! has settled returns those pages; it costs a few milliseconds, so it runs only after
//! many operations.

/// Operations executed since the last trim that make the next settle trim.
pub const TRIM_AFTER_OPS: usize = 256;

/// Counts the operations executed and trims the allocator's free memory once enough
/// work has settled.
#[derive(Debug, Default)]
pub struct Trimmer {
    ops: usize,
}

impl Trimmer {
    /// `n` operations were executed.
    pub fn executed(&mut self, n: usize) {
        self.ops = self.ops.saturating_add(n);
    }

    /// The agent has nothing left to do: trims when enough work was done since the last
    /// trim; true when it trimmed.
    pub fn settled(&mut self) -> bool {
        if self.ops < TRIM_AFTER_OPS {
            return false;
        }
        self.ops = 0;
        release_free_memory();
        true
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
    fn trims_only_after_enough_work() {
        let mut t = Trimmer::default();
        t.executed(TRIM_AFTER_OPS - 1);
        assert!(!t.settled());
        t.executed(1);
        assert!(t.settled());
        assert!(!t.settled(), "the count starts again");
    }
}
