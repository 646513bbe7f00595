//! Running a plan: its phases one after the other on a [`Kernel`], every outcome folded back
//! into the scheduler. The agent runs its rounds through this on the netlink executor, the
//! unit tests on their in-memory kernel: one round loop for both.

use super::ops::{per_link, Op, OpOutcome};
use super::report::OpReport;
use super::{Plan, Scheduler};
use std::future::Future;
use std::time::Duration;

/// The kernel as plans see it: runs one phase of independent operations and answers each.
/// Implemented by the netlink executor and by the unit tests' in-memory kernel.
pub trait Kernel {
    /// Runs `ops` (independent of each other); outcome `i` belongs to `ops[i]`.
    fn execute(&mut self, ops: Vec<Op>) -> impl Future<Output = Vec<OpOutcome>> + Send;
}

/// One operation as it finished: what it was, what the kernel answered, and what the
/// scheduler made of it before it learnt the answer (for writes).
pub struct Finished<'a> {
    /// The operation.
    pub op: &'a Op,
    /// The kernel's answer.
    pub outcome: &'a OpOutcome,
    /// The operation described (`None` for reads).
    pub report: Option<OpReport>,
}

impl Finished<'_> {
    /// True when the operation failed.
    pub fn failed(&self) -> bool {
        matches!(
            self.outcome,
            OpOutcome::Failed { .. } | OpOutcome::L3(super::ops::l3::L3Outcome::Failed { .. })
        )
    }
}

/// Runs `plan` on `kernel`, phase by phase, and folds every outcome into `scheduler` at the
/// time `now` gives after each phase; `finished` sees each operation first, a group deletion
/// as the deletion of each of its links ([`per_link`]).
pub async fn run_plan<K: Kernel>(
    scheduler: &mut Scheduler,
    kernel: &mut K,
    plan: Plan,
    now: impl Fn() -> Duration,
    mut finished: impl FnMut(Finished),
) {
    for phase in plan.phases {
        let outcomes = kernel.execute(phase.clone()).await;
        let at = now();
        let done: Vec<(Op, OpOutcome)> = phase.into_iter().zip(outcomes).collect();
        // Described while the scheduler still knows every object as it was.
        for (op, outcome) in &done {
            for (op, outcome) in per_link(op.clone(), outcome.clone()) {
                let report = scheduler.report(&op);
                finished(Finished {
                    op: &op,
                    outcome: &outcome,
                    report,
                });
            }
        }
        for (op, outcome) in done {
            scheduler.complete(&op, outcome, at);
        }
    }
}
