//! Test-only fault injection into the netlink connection of one namespace, and counters of
//! what its recovery did, for the real-kernel tests of the timeout, reopen, interrupted-dump
//! and EBUSY paths ([`Executor::inject_netlink_fault`](super::Executor::inject_netlink_fault),
//! [`Executor::netlink_counters`](super::Executor::netlink_counters)). Nothing in the agent
//! arms a fault; an unarmed one costs an atomic load.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// A fault to inject (test-only).
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The next `n` requests are lost: never sent, so no answer comes and each one times out.
    DropRequests(u32),
    /// The next `n` dump answers count as interrupted (`NLM_F_DUMP_INTR`), whatever the kernel
    /// said.
    InterruptDumps(u32),
    /// The next `n` changes of link attributes (name, alias, MTU, MAC) are refused with EBUSY
    /// without reaching the kernel, as by a driver that cannot change a running link.
    BusyLinkChanges(u32),
    /// The request and event sockets close now, as after a read or send error: the next
    /// request opens another request socket, and the event socket is opened again at once.
    CloseSockets,
    /// The next `n` group deletions are refused with EBUSY without reaching the kernel
    /// (after their links were moved into the group).
    RefuseGroupDeletes(u32),
    /// The next `n` link creations ignore the kernel's echo of the new link, as on kernels
    /// older than 6.3, which send none: the agent then finds the link by name.
    IgnoreEchoes(u32),
}

/// Counters of one namespace's netlink connection (test-only).
#[doc(hidden)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetlinkCounters {
    /// Request sockets opened again after one failed (timeout, closed).
    pub reopened: u64,
    /// Dump answers the kernel (or a fault) marked as interrupted; each one is repeated or,
    /// the last time, given up.
    pub dumps_interrupted: u64,
    /// Dumps given up after being interrupted every time.
    pub dumps_given_up: u64,
    /// Event sockets opened again after one closed.
    pub events_resubscribed: u64,
}

/// The armed faults of one connection: how many of each are left.
#[derive(Debug, Default)]
pub(crate) struct Armed {
    drop_requests: AtomicU32,
    interrupt_dumps: AtomicU32,
    busy_link_changes: AtomicU32,
    refuse_group_deletes: AtomicU32,
    ignore_echoes: AtomicU32,
}

impl Armed {
    /// Arms a counted fault (`CloseSockets` acts at once instead, see the connection).
    pub(crate) fn arm(&self, fault: Fault) {
        let (counter, n) = match fault {
            Fault::DropRequests(n) => (&self.drop_requests, n),
            Fault::InterruptDumps(n) => (&self.interrupt_dumps, n),
            Fault::BusyLinkChanges(n) => (&self.busy_link_changes, n),
            Fault::RefuseGroupDeletes(n) => (&self.refuse_group_deletes, n),
            Fault::IgnoreEchoes(n) => (&self.ignore_echoes, n),
            Fault::CloseSockets => return,
        };
        counter.store(n, Ordering::SeqCst);
    }

    /// True (once per armed count) when this request is to be lost.
    pub(crate) fn drop_request(&self) -> bool {
        take(&self.drop_requests)
    }

    /// True (once per armed count) when this dump answer counts as interrupted.
    pub(crate) fn interrupt_dump(&self) -> bool {
        take(&self.interrupt_dumps)
    }

    /// True (once per armed count) when this link change is refused with EBUSY.
    pub(crate) fn busy_link_change(&self) -> bool {
        take(&self.busy_link_changes)
    }

    /// True (once per armed count) when this group deletion is refused.
    pub(crate) fn refuse_group_delete(&self) -> bool {
        take(&self.refuse_group_deletes)
    }

    /// True (once per armed count) when this creation's echo is to be ignored.
    pub(crate) fn ignore_echo(&self) -> bool {
        take(&self.ignore_echoes)
    }
}

/// Takes one from `counter` if it is not zero.
fn take(counter: &AtomicU32) -> bool {
    counter.load(Ordering::Relaxed) > 0
        && counter
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
}

/// An event counter.
#[derive(Debug, Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    /// Counts one.
    pub(crate) fn bump(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// The count so far.
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_armed_fault_fires_as_often_as_armed() {
        let armed = Armed::default();
        assert!(!armed.interrupt_dump());
        armed.arm(Fault::InterruptDumps(2));
        assert!(armed.interrupt_dump());
        assert!(armed.interrupt_dump());
        assert!(!armed.interrupt_dump());
        assert!(!armed.drop_request(), "other faults stay unarmed");
    }
}
