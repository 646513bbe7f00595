//! Counting finished kernel operations: what a resync created, updated and deleted, and the
//! names the metrics give operations and their results.

use crate::scheduler::ops::l3::{L3Op, L3Outcome};
use crate::scheduler::ops::{Op, OpOutcome};
use crate::scheduler::report::{Change, Object, OpReport};

/// Counts of the kernel objects (links, routes, neighbour entries) that operations created,
/// updated and deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Tally {
    /// Objects created (a VETH pair counts once).
    pub created: usize,
    /// Objects changed in place.
    pub updated: usize,
    /// Objects deleted.
    pub deleted: usize,
    /// The same per kind of object: links, routes, neighbour entries.
    #[serde(skip)]
    by_object: [[usize; 3]; 3],
}

impl Tally {
    /// Counts one successful write operation.
    pub fn count(&mut self, report: &OpReport) {
        let slot = match report.change {
            Change::Create => &mut self.created,
            Change::Update => &mut self.updated,
            Change::Delete => &mut self.deleted,
        };
        *slot += 1;
        let object = match report.object {
            Object::Link => 0,
            Object::Route => 1,
            Object::Neighbour => 2,
        };
        self.by_object[object][report.change as usize] += 1;
    }

    /// `links 1/0/2, routes 3/0/0, neighbours 0/0/0` (created/updated/deleted).
    pub fn detail(&self) -> String {
        let [l, r, n] = self.by_object;
        format!(
            "links {}/{}/{}, routes {}/{}/{}, neighbours {}/{}/{}",
            l[0], l[1], l[2], r[0], r[1], r[2], n[0], n[1], n[2]
        )
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
        Op::ReadLinks { .. } => "read_found_links",
        Op::CreatePair { .. } => "create_pair",
        Op::CreateLink { .. } => "create_link",
        Op::AdoptLink { .. } => "adopt_link",
        Op::ReturnLink { .. } => "return_link",
        Op::UpdateLink { .. } => "update_link",
        Op::DeleteLink { .. } => "delete_link",
        Op::DeleteLinks { .. } => "delete_links",
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
    fn reports_are_counted_by_change_and_object() {
        let report = |object, change| OpReport {
            items: Vec::new(),
            object,
            change,
            what: String::new(),
        };
        let mut t = Tally::default();
        t.count(&report(Object::Link, Change::Delete));
        t.count(&report(Object::Route, Change::Create));
        t.count(&report(Object::Neighbour, Change::Update));
        t.count(&report(Object::Route, Change::Create));
        assert_eq!((t.created, t.updated, t.deleted), (2, 1, 1));
        assert_eq!(t.detail(), "links 0/0/1, routes 2/0/0, neighbours 0/1/0");
        assert_eq!(
            serde_json::to_value(t).unwrap(),
            serde_json::json!({"created": 2, "updated": 1, "deleted": 1})
        );
    }

    #[test]
    fn operations_and_outcomes_have_metric_names() {
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
        assert_eq!(op_name(&delete), "delete_link");
        assert_eq!(outcome_name(&failed), "failed");
        assert_eq!(outcome_name(&OpOutcome::Deleted), "ok");
    }
}
