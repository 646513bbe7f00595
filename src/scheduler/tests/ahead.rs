//! Reads made ahead of a plan (while a burst of changes is still arriving): what they are,
//! and that the plan after them only acts.

use super::*;

/// Pair a (in n1) / b (in n2), with only the namespaces `existing` in the kernel.
fn pair_between_n1_and_n2(existing: &[&str]) -> World {
    let mut w = World::new();
    for ns in existing {
        w.k.add_namespace(named(ns));
    }
    w.put(veth("a", "b", named("n1")));
    w.put(veth("b", "a", named("n2")));
    w
}

fn reads_in(plan: &Plan) -> usize {
    plan.phases
        .iter()
        .flatten()
        .filter(|op| !op.writes())
        .count()
}

#[test]
fn reads_ahead_are_the_resolutions_and_reads_the_plan_would_start_with() {
    let mut w = pair_between_n1_and_n2(&["n1", "n2"]);

    let resolutions = w.read_ahead();
    assert_eq!(resolutions.len(), 2, "{resolutions:?}");
    assert!(resolutions
        .iter()
        .all(|op| matches!(op, Op::ResolveNs { create: false, .. })));
    let reads = w.read_ahead();
    assert!(
        reads.iter().any(|op| matches!(op, Op::DumpNs { .. })),
        "{reads:?}"
    );
    assert!(reads.iter().all(|op| !op.writes()), "{reads:?}");
    assert!(w.read_ahead().is_empty(), "nothing more to read ahead");

    // The plan only acts: the pair in one round, and nothing left after it.
    let plan = w.s.plan(w.now);
    assert_eq!(reads_in(&plan), 0, "{plan:?}");
    assert!(plan
        .phases
        .iter()
        .flatten()
        .any(|op| matches!(op, Op::CreatePair { .. })));
    w.k.run(&mut w.s, &plan, w.now);
    w.converge();
    assert_eq!(w.status("a"), ItemStatus::Applied);
    assert_eq!(w.status("b"), ItemStatus::Applied);
    assert!(w.links(&named("n1")).contains_key("a"));
    assert!(w.links(&named("n2")).contains_key("b"));
}

#[test]
fn a_namespace_is_never_created_ahead_but_by_the_plan() {
    let mut w = pair_between_n1_and_n2(&["n2"]);

    w.read_ahead();
    w.read_ahead();
    assert!(!w.k.world.contains_key(&named("n1")), "created ahead");
    assert!(
        !w.s.refs.contains_key(&named("n1")),
        "a failed resolution ahead is left to the plan"
    );

    w.converge();
    assert!(w.k.world.contains_key(&named("n1")));
    assert_eq!(w.status("a"), ItemStatus::Applied);
    assert!(w.links(&named("n1")).contains_key("a"));
}

#[test]
fn nothing_is_read_ahead_once_everything_is_known() {
    let mut w = World::new();
    w.k.add_namespace(named("n1"));
    w.put(veth("a", "b", named("n1")));
    w.put(veth("b", "a", NamespaceRef::Default));
    w.converge();
    assert!(w.read_ahead().is_empty());
}
