//! Counting finished kernel operations: what a resync created, updated and deleted, and the
//! names the metrics give operations and their results.

use crate::scheduler::ops::l3::{L3Op, L3Outcome};
use crate::scheduler::ops::{Op, OpOutcome};

/// Counts of the kernel objects (links, routes, neighbour entries) that operations created,
/// updated and deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Tally {
    /// Objects created (a VETH pair counts once).
    pub created: usize,
    /// Objects changed in place (a neighbour entry written with create-or-replace counts here).
    pub updated: usize,
    /// Objects deleted.
    pub deleted: usize,
}

impl Tally {
    /// Counts `op` if its outcome is a success.
    pub fn count(&mut self, op: &Op, outcome: &OpOutcome) {
        if !succeeded(outcome) {
            return;
        }
        match op {
            Op::CreatePair { .. } | Op::L3(L3Op::AddRoute { .. }) => self.created += 1,
            Op::UpdateLink { .. }
            | Op::L3(L3Op::ReplaceRoute { .. })
            | Op::L3(L3Op::SetNeighbour { .. }) => self.updated += 1,
            Op::DeleteLink { .. }
            | Op::L3(L3Op::DeleteRoute { .. })
            | Op::L3(L3Op::DeleteNeighbour { .. }) => self.deleted += 1,
            Op::ResolveNs { .. } | Op::DumpNs { .. } | Op::ReleaseNs { .. } => {}
            Op::L3(L3Op::Dump { .. }) => {}
        }
    }
}

/// True unless the outcome is a failure (or a namespace that could not be resolved).
pub fn succeeded(outcome: &OpOutcome) -> bool {
    outcome_name(outcome) == "ok"
}

/// The name of an operation in metrics (`create_pair`, `add_route`, ...).
pub fn op_name(op: &Op) -> &'static str {
    match op {
        Op::ResolveNs { .. } => "resolve_namespace",
        Op::DumpNs { .. } => "read_links",
        Op::CreatePair { .. } => "create_pair",
        Op::UpdateLink { .. } => "update_link",
        Op::DeleteLink { .. } => "delete_link",
        Op::ReleaseNs { .. } => "release_namespace",
        Op::L3(L3Op::Dump { .. }) => "read_routes_and_neighbours",
        Op::L3(L3Op::AddRoute { .. }) => "add_route",
        Op::L3(L3Op::ReplaceRoute { .. }) => "replace_route",
        Op::L3(L3Op::DeleteRoute { .. }) => "delete_route",
        Op::L3(L3Op::SetNeighbour { .. }) => "set_neighbour",
        Op::L3(L3Op::DeleteNeighbour { .. }) => "delete_neighbour",
    }
}

/// The result of an operation in metrics: `ok`, `failed`, or `unavailable` (a namespace
/// reference that names no usable namespace now).
pub fn outcome_name(outcome: &OpOutcome) -> &'static str {
    match outcome {
        OpOutcome::Failed { .. } | OpOutcome::L3(L3Outcome::Failed { .. }) => "failed",
        OpOutcome::NsUnavailable { .. } => "unavailable",
        _ => "ok",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::NsId;
    use crate::scheduler::ops::FailureKind;

    #[test]
    fn only_successes_are_counted_by_what_they_did() {
        let ns = NsId { dev: 1, ino: 2 };
        let delete = Op::DeleteLink {
            ns,
            ifindex: 3,
            name: "x".into(),
        };
        let failed = OpOutcome::Failed {
            kind: FailureKind::Other,
            error: "e".into(),
        };
        let mut t = Tally::default();
        t.count(&delete, &OpOutcome::Deleted);
        t.count(&delete, &failed);
        t.count(&Op::DumpNs { ns }, &OpOutcome::Dumped { links: vec![] });
        assert_eq!(
            t,
            Tally {
                created: 0,
                updated: 0,
                deleted: 1
            }
        );
        assert_eq!(op_name(&delete), "delete_link");
        assert_eq!(outcome_name(&failed), "failed");
        assert_eq!(outcome_name(&OpOutcome::Deleted), "ok");
    }
}
