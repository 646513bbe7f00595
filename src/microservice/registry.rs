//! Which container serves each microservice label: pure state, no I/O.
//!
//! The [`Registry`] consumes [`TrackerEvent`]s and reports a [`Change`] only when the
//! *effective* container of a label changes. Rules (Go vpp-agent, reference §3.C):
//!
//! * The most recently **created** container with a label wins. The registry remembers, per
//!   label, the newest `created` time it has seen; a container created before that never
//!   takes the label, not even when it (re)starts later ("ignoring older container").
//!   Equal creation times are accepted, so the later event wins.
//! * When the winner stops, the label is `Down`, even if an older container with the same
//!   label still runs: it does not take over (the Go agent behaves the same; it only picks
//!   up a container on its `start`).
//! * A restart of the winner (same id, new pid) is `Down` followed by `Up` with the new pid:
//!   the items must be re-created in the new namespace. The same holds when a newer
//!   container replaces a running winner. So per label, `Up` and `Down` strictly alternate,
//!   starting with `Up`, and a consumer never sees two `Up`s in a row.
//! * A [`TrackerEvent::Snapshot`] replaces the whole state, including the memory of creation
//!   times, as on a fresh start: per label, the newest running container in the snapshot
//!   wins. Only the differences to the previous effective containers are reported: labels
//!   whose container (id and pid) is unchanged yield nothing, labels that are gone yield
//!   `Down`.

use std::collections::BTreeMap;

/// A running container that carries a non-empty `MICROSERVICE_LABEL` in its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    /// Full Docker container id.
    pub id: String,
    /// Value of `MICROSERVICE_LABEL` (never empty).
    pub label: String,
    /// Pid of the container's init process (`State.Pid`, > 0); its network namespace is
    /// `/proc/<pid>/ns/net`.
    pub pid: u32,
    /// Creation time (`Created`) in nanoseconds since the Unix epoch (0 if Docker's value
    /// could not be read).
    pub created: i64,
}

/// What the tracker observed in Docker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackerEvent {
    /// All running labelled containers, listed after (re)connecting to Docker.
    Snapshot(Vec<Container>),
    /// A labelled container is running (after `start` or `restart`, or seen running when
    /// inspected because of another event). May repeat for the same container and pid.
    Started(Container),
    /// A container is no longer running (`die`, `stop`, `kill`, `destroy`), or is gone.
    /// May concern containers that were never reported as started.
    Stopped {
        /// Full Docker container id.
        id: String,
    },
}

/// A change of the effective container of a label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The label is now served by this container; its namespace is `/proc/<pid>/ns/net`.
    /// Always preceded by a `Down` when the label was up before.
    Up {
        /// The microservice label.
        label: String,
        /// Full Docker container id.
        id: String,
        /// Pid of the container's init process.
        pid: u32,
    },
    /// The label has no container any more; items in its namespace are gone.
    Down {
        /// The microservice label.
        label: String,
    },
}

/// What the registry knows about one label.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LabelState {
    /// Newest creation time seen for the label (since the last snapshot).
    newest_created: i64,
    /// The effective container: (id, pid).
    winner: Option<(String, u32)>,
}

/// The effective container per microservice label. See the module docs for the rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registry {
    labels: BTreeMap<String, LabelState>,
}

impl Registry {
    /// An empty registry: no label is up.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Applies one event and returns the resulting changes, in order. For a snapshot: first
    /// every `Down`, then every `Up`, each sorted by label.
    pub fn apply(&mut self, event: TrackerEvent) -> Vec<Change> {
        match event {
            TrackerEvent::Snapshot(containers) => self.snapshot(containers),
            TrackerEvent::Started(c) => self.started(c),
            TrackerEvent::Stopped { id } => self.stopped(&id),
        }
    }

    /// The effective container (id, pid) of `label`, if the label is up.
    pub fn get(&self, label: &str) -> Option<(&str, u32)> {
        let (id, pid) = self.labels.get(label)?.winner.as_ref()?;
        Some((id.as_str(), *pid))
    }

    /// Every label that is up, with its container (id, pid), sorted by label.
    pub fn up(&self) -> impl Iterator<Item = (&str, &str, u32)> {
        self.labels.iter().filter_map(|(label, s)| {
            let (id, pid) = s.winner.as_ref()?;
            Some((label.as_str(), id.as_str(), *pid))
        })
    }

    fn started(&mut self, c: Container) -> Vec<Change> {
        let state = self
            .labels
            .entry(c.label.clone())
            .or_insert_with(|| LabelState {
                newest_created: i64::MIN,
                winner: None,
            });
        if c.created < state.newest_created {
            return Vec::new(); // An older container never takes the label.
        }
        state.newest_created = c.created;
        let new = (c.id, c.pid);
        if state.winner.as_ref() == Some(&new) {
            return Vec::new();
        }
        let mut changes = Vec::with_capacity(2);
        if state.winner.is_some() {
            changes.push(Change::Down {
                label: c.label.clone(),
            });
        }
        changes.push(Change::Up {
            label: c.label,
            id: new.0.clone(),
            pid: new.1,
        });
        state.winner = Some(new);
        changes
    }

    fn stopped(&mut self, id: &str) -> Vec<Change> {
        for (label, state) in &mut self.labels {
            if state.winner.as_ref().is_some_and(|(w, _)| w == id) {
                state.winner = None;
                return vec![Change::Down {
                    label: label.clone(),
                }];
            }
        }
        Vec::new()
    }

    fn snapshot(&mut self, containers: Vec<Container>) -> Vec<Change> {
        let mut new: BTreeMap<String, LabelState> = BTreeMap::new();
        for c in containers {
            let state = new.entry(c.label).or_insert_with(|| LabelState {
                newest_created: i64::MIN,
                winner: None,
            });
            // Newest creation time wins; ties are broken by id so the result does not
            // depend on the order Docker lists containers in.
            let better = match &state.winner {
                None => true,
                Some((id, _)) => (c.created, &c.id) > (state.newest_created, id),
            };
            if better {
                state.newest_created = c.created;
                state.winner = Some((c.id, c.pid));
            }
        }

        let mut changes = Vec::new();
        for (label, old) in &self.labels {
            let Some(old_winner) = &old.winner else {
                continue;
            };
            let new_winner = new.get(label).and_then(|s| s.winner.as_ref());
            if new_winner != Some(old_winner) {
                changes.push(Change::Down {
                    label: label.clone(),
                });
            }
        }
        for (label, state) in &new {
            let Some((id, pid)) = &state.winner else {
                continue;
            };
            let old_winner = self.labels.get(label).and_then(|s| s.winner.as_ref());
            if old_winner != Some(&(id.clone(), *pid)) {
                changes.push(Change::Up {
                    label: label.clone(),
                    id: id.clone(),
                    pid: *pid,
                });
            }
        }
        self.labels = new;
        changes
    }
}

#[cfg(test)]
#[path = "registry_tests.rs"]
mod tests;
