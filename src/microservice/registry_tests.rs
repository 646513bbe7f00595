//! Unit and property tests of the label registry.
use super::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

fn c(id: &str, label: &str, pid: u32, created: i64) -> Container {
    Container {
        id: id.into(),
        label: label.into(),
        pid,
        created,
    }
}

fn started(id: &str, label: &str, pid: u32, created: i64) -> TrackerEvent {
    TrackerEvent::Started(c(id, label, pid, created))
}

fn stopped(id: &str) -> TrackerEvent {
    TrackerEvent::Stopped { id: id.into() }
}

fn up(label: &str, id: &str, pid: u32) -> Change {
    Change::Up {
        label: label.into(),
        id: id.into(),
        pid,
    }
}

fn down(label: &str) -> Change {
    Change::Down {
        label: label.into(),
    }
}

#[test]
fn first_start_is_up_and_repeats_are_silent() {
    let mut r = Registry::new();
    assert_eq!(
        r.apply(started("a", "web", 10, 1)),
        vec![up("web", "a", 10)]
    );
    assert_eq!(r.apply(started("a", "web", 10, 1)), vec![]);
    assert_eq!(r.get("web"), Some(("a", 10)));
    assert_eq!(r.get("db"), None);
}

#[test]
fn restart_of_the_winner_is_down_then_up_with_the_new_pid() {
    let mut r = Registry::new();
    r.apply(started("a", "web", 10, 1));
    assert_eq!(
        r.apply(started("a", "web", 11, 1)),
        vec![down("web"), up("web", "a", 11)]
    );
    // Through a stop in between: Down, then Up.
    assert_eq!(r.apply(stopped("a")), vec![down("web")]);
    assert_eq!(
        r.apply(started("a", "web", 12, 1)),
        vec![up("web", "a", 12)]
    );
}

#[test]
fn a_newer_container_replaces_the_winner() {
    let mut r = Registry::new();
    r.apply(started("a", "web", 10, 1));
    assert_eq!(
        r.apply(started("b", "web", 20, 2)),
        vec![down("web"), up("web", "b", 20)]
    );
    // The old one stopping changes nothing.
    assert_eq!(r.apply(stopped("a")), vec![]);
    assert_eq!(r.get("web"), Some(("b", 20)));
}

#[test]
fn an_older_container_never_takes_the_label() {
    let mut r = Registry::new();
    r.apply(started("b", "web", 20, 2));
    assert_eq!(r.apply(started("a", "web", 10, 1)), vec![]);
    assert_eq!(r.get("web"), Some(("b", 20)));
    // Not when the winner stops, and not when the older one restarts.
    assert_eq!(r.apply(stopped("b")), vec![down("web")]);
    assert_eq!(r.apply(started("a", "web", 11, 1)), vec![]);
    assert_eq!(r.get("web"), None);
    // The newest one coming back takes it again.
    assert_eq!(
        r.apply(started("b", "web", 21, 2)),
        vec![up("web", "b", 21)]
    );
}

#[test]
fn when_the_winner_stops_an_older_running_one_does_not_take_over() {
    let mut r = Registry::new();
    r.apply(started("a", "web", 10, 1));
    r.apply(started("b", "web", 20, 2));
    assert_eq!(r.apply(stopped("b")), vec![down("web")]);
    assert_eq!(r.get("web"), None);
    assert_eq!(r.apply(started("a", "web", 10, 1)), vec![]);
}

#[test]
fn equal_creation_times_let_the_later_event_win() {
    let mut r = Registry::new();
    r.apply(started("a", "web", 10, 5));
    assert_eq!(
        r.apply(started("b", "web", 20, 5)),
        vec![down("web"), up("web", "b", 20)]
    );
    assert_eq!(
        r.apply(started("a", "web", 10, 5)),
        vec![down("web"), up("web", "a", 10)]
    );
}

#[test]
fn stops_of_unknown_or_stopped_containers_are_silent() {
    let mut r = Registry::new();
    assert_eq!(r.apply(stopped("x")), vec![]);
    r.apply(started("a", "web", 10, 1));
    assert_eq!(r.apply(stopped("x")), vec![]);
    assert_eq!(r.apply(stopped("a")), vec![down("web")]);
    assert_eq!(r.apply(stopped("a")), vec![]);
}

#[test]
fn labels_are_independent() {
    let mut r = Registry::new();
    r.apply(started("a", "web", 10, 1));
    assert_eq!(r.apply(started("b", "db", 20, 0)), vec![up("db", "b", 20)]);
    assert_eq!(r.apply(stopped("a")), vec![down("web")]);
    assert_eq!(r.get("db"), Some(("b", 20)));
    assert_eq!(r.up().collect::<Vec<_>>(), vec![("db", "b", 20)]);
}

#[test]
fn snapshot_from_empty_brings_up_the_newest_per_label() {
    let mut r = Registry::new();
    let changes = r.apply(TrackerEvent::Snapshot(vec![
        c("w2", "web", 12, 2),
        c("d1", "db", 20, 1),
        c("w1", "web", 11, 1),
        c("w3", "web", 13, 3),
    ]));
    assert_eq!(changes, vec![up("db", "d1", 20), up("web", "w3", 13)]);
    assert_eq!(
        r.up().collect::<Vec<_>>(),
        vec![("db", "d1", 20), ("web", "w3", 13)]
    );
}

#[test]
fn snapshot_ties_do_not_depend_on_list_order() {
    let list = vec![c("a", "web", 10, 5), c("b", "web", 20, 5)];
    let mut r1 = Registry::new();
    let mut r2 = Registry::new();
    let c1 = r1.apply(TrackerEvent::Snapshot(list.clone()));
    let c2 = r2.apply(TrackerEvent::Snapshot(list.into_iter().rev().collect()));
    assert_eq!(c1, c2);
    assert_eq!(c1, vec![up("web", "b", 20)]);
}

#[test]
fn unchanged_snapshot_yields_nothing() {
    let mut r = Registry::new();
    r.apply(started("a", "web", 10, 1));
    r.apply(started("b", "db", 20, 1));
    let changes = r.apply(TrackerEvent::Snapshot(vec![
        c("b", "db", 20, 1),
        c("a", "web", 10, 1),
    ]));
    assert_eq!(changes, vec![]);
}

#[test]
fn snapshot_reports_gone_changed_and_new_labels() {
    let mut r = Registry::new();
    r.apply(started("a", "web", 10, 1)); // gone
    r.apply(started("b", "db", 20, 1)); // new pid
    r.apply(started("c", "kv", 30, 1)); // replaced by another container
    r.apply(started("d", "mq", 40, 1)); // unchanged
    let changes = r.apply(TrackerEvent::Snapshot(vec![
        c("b", "db", 21, 1),
        c("e", "kv", 50, 2),
        c("d", "mq", 40, 1),
        c("f", "new", 60, 1),
    ]));
    assert_eq!(
        changes,
        vec![
            down("db"),
            down("kv"),
            down("web"),
            up("db", "b", 21),
            up("kv", "e", 50),
            up("new", "f", 60),
        ]
    );
}

#[test]
fn snapshot_replaces_the_memory_of_creation_times() {
    let mut r = Registry::new();
    r.apply(started("a", "web", 10, 1));
    r.apply(started("b", "web", 20, 2));
    r.apply(stopped("b"));
    // After a reconnect only the older container runs: it is up, as on a fresh start.
    assert_eq!(
        r.apply(TrackerEvent::Snapshot(vec![c("a", "web", 10, 1)])),
        vec![up("web", "a", 10)]
    );
    // The memory now holds a's time: b (newer) takes over, an even older one does not.
    assert_eq!(r.apply(started("z", "web", 5, 0)), vec![]);
    assert_eq!(
        r.apply(started("b", "web", 21, 2)),
        vec![down("web"), up("web", "b", 21)]
    );
}

#[test]
fn empty_snapshot_brings_everything_down() {
    let mut r = Registry::new();
    r.apply(started("a", "web", 10, 1));
    r.apply(started("b", "db", 20, 1));
    r.apply(stopped("b"));
    assert_eq!(r.apply(TrackerEvent::Snapshot(vec![])), vec![down("web")]);
    assert_eq!(r, Registry::new());
}

// --- property test -------------------------------------------------------------------

/// Containers of the generated scenarios: id `cN` has label `LABELS[N % 3]` and a fixed
/// creation time (ties included), as in Docker, where both never change.
const LABELS: [&str; 3] = ["web", "db", "kv"];
const CREATED: [i64; 8] = [3, 1, 4, 1, 5, 9, 2, 6];

fn container(n: usize, pid: u32) -> Container {
    c(&format!("c{n}"), LABELS[n % 3], pid, CREATED[n])
}

fn event() -> impl Strategy<Value = TrackerEvent> {
    prop_oneof![
        4 => (0..CREATED.len(), 1..4u32).prop_map(|(n, pid)| TrackerEvent::Started(container(n, pid))),
        3 => (0..CREATED.len() + 1).prop_map(|n| stopped(&format!("c{n}"))),
        1 => proptest::collection::btree_map(0..CREATED.len(), 1..4u32, 0..5).prop_map(|m| {
            TrackerEvent::Snapshot(m.into_iter().map(|(n, pid)| container(n, pid)).collect())
        }),
    ]
}

proptest! {
    #[test]
    fn changes_follow_the_rules(events in proptest::collection::vec(event(), 0..40)) {
        let mut r = Registry::new();
        // What a consumer knows from the changes alone.
        let mut seen: BTreeMap<String, (String, u32)> = BTreeMap::new();
        // Newest creation time per label since the last snapshot (reference model).
        let mut newest: BTreeMap<String, i64> = BTreeMap::new();
        for ev in events {
            let before: BTreeMap<String, (String, u32)> =
                r.up().map(|(l, i, p)| (l.to_string(), (i.to_string(), p))).collect();
            let changes = r.apply(ev.clone());

            // Up and Down alternate per label, and replaying them gives the registry's view.
            for ch in &changes {
                match ch {
                    Change::Up { label, id, pid } => {
                        prop_assert!(seen.insert(label.clone(), (id.clone(), *pid)).is_none(), "Up while up: {:?}", ch);
                    }
                    Change::Down { label } => {
                        prop_assert!(seen.remove(label).is_some(), "Down while down: {:?}", ch);
                    }
                }
            }
            let after: BTreeMap<String, (String, u32)> =
                r.up().map(|(l, i, p)| (l.to_string(), (i.to_string(), p))).collect();
            prop_assert_eq!(&seen, &after);

            // Minimal: a label whose container did not change yields nothing.
            for label in LABELS {
                if before.get(label) == after.get(label) {
                    prop_assert!(!changes.iter().any(|ch| match ch {
                        Change::Up { label: l, .. } | Change::Down { label: l } => l == label,
                    }), "change for unchanged label {}: {:?}", label, changes);
                }
            }

            match ev {
                TrackerEvent::Started(c) => {
                    let newest_before = newest.get(&c.label).copied().unwrap_or(i64::MIN);
                    if c.created >= newest_before {
                        newest.insert(c.label.clone(), c.created);
                        prop_assert_eq!(r.get(&c.label), Some((c.id.as_str(), c.pid)));
                    } else {
                        prop_assert_eq!(before.get(&c.label), after.get(&c.label));
                    }
                }
                TrackerEvent::Stopped { id } => {
                    prop_assert!(after.values().all(|(i, _)| *i != id));
                    for (label, w) in &before {
                        if w.0 != id {
                            prop_assert_eq!(after.get(label), Some(w));
                        }
                    }
                }
                TrackerEvent::Snapshot(list) => {
                    newest.clear();
                    let mut expect: BTreeMap<String, (i64, String, u32)> = BTreeMap::new();
                    for c in list {
                        let n = newest.entry(c.label.clone()).or_insert(c.created);
                        *n = (*n).max(c.created);
                        let e = expect.entry(c.label.clone()).or_insert((c.created, c.id.clone(), c.pid));
                        if (c.created, &c.id) > (e.0, &e.1) {
                            *e = (c.created, c.id, c.pid);
                        }
                    }
                    let expect: BTreeMap<String, (String, u32)> =
                        expect.into_iter().map(|(l, (_, i, p))| (l, (i, p))).collect();
                    prop_assert_eq!(&after, &expect);
                }
            }

            // The winner, if any, is never older than the newest creation time seen.
            for (label, (id, _)) in &after {
                let n: usize = id[1..].parse().unwrap();
                prop_assert_eq!(Some(CREATED[n]), newest.get(label).copied());
            }
        }
    }
}
