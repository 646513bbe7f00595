//! The Docker tracker against a real dockerd (found through `DOCKER_HOST`, see
//! `tests/docker_support`), with the registry fed by what it reports.
//!
//! Start the engine first: `eval "$(scripts/docker-test-env.sh start)"`. Without it the tests
//! skip, or fail under `CI=true`. The dockerd-restart test starts a private dockerd of its own.

mod docker_support;

use std::time::{Duration, Instant};

use docker_support::{require_docker, unique_label, PrivateDockerd};
use nsagent::microservice::{
    track, track_reporting, Change, Container, Registry, TrackerError, TrackerEvent,
};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use tokio::task::{block_in_place, JoinHandle};

/// Upper bound for an event-driven detection. Generous on purpose: tests run in parallel on
/// small shared machines; how fast detection is, is measured by the microservice benchmark.
const PROMPT: Duration = Duration::from_secs(15);
/// Upper bound for slower steps (reconnecting after a dockerd restart).
const SLOW: Duration = Duration::from_secs(30);

/// A running [`track_reporting`] task, a registry fed with everything it reports, and the
/// connection state it reports.
struct Tracker {
    rx: UnboundedReceiver<TrackerEvent>,
    task: JoinHandle<Result<(), TrackerError>>,
    registry: Registry,
    connected: tokio::sync::watch::Receiver<bool>,
}

impl Tracker {
    fn start(host: &str) -> Tracker {
        let (tx, rx) = unbounded_channel();
        let (connection, connected) = tokio::sync::watch::channel(false);
        Tracker {
            rx,
            task: tokio::spawn(track_reporting(Some(host.to_string()), tx, connection)),
            registry: Registry::new(),
            connected,
        }
    }

    /// Waits until the reported connection state is `up`.
    async fn wait_connected(&mut self, up: bool, timeout: Duration) {
        tokio::time::timeout(timeout, self.connected.wait_for(|c| *c == up))
            .await
            .unwrap_or_else(|_| panic!("connection state not {up} within {timeout:?}"))
            .expect("tracker stopped");
    }

    /// The next event (applied to the registry) with its changes; panics after `timeout`.
    async fn next(&mut self, timeout: Duration) -> (TrackerEvent, Vec<Change>) {
        let event = tokio::time::timeout(timeout, self.rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no tracker event within {timeout:?}"))
            .expect("tracker stopped");
        let changes = self.registry.apply(event.clone());
        (event, changes)
    }

    /// Reads events until one matches `pred` (within `timeout` in all); returns it and the
    /// changes of all events read.
    async fn wait_for(
        &mut self,
        timeout: Duration,
        what: &str,
        mut pred: impl FnMut(&TrackerEvent) -> bool,
    ) -> (TrackerEvent, Vec<Change>) {
        let deadline = Instant::now() + timeout;
        let mut all = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let event = tokio::time::timeout(left, self.rx.recv())
                .await
                .unwrap_or_else(|_| panic!("no {what} within {timeout:?}"))
                .expect("tracker stopped");
            all.extend(self.registry.apply(event.clone()));
            if pred(&event) {
                return (event, all);
            }
        }
    }

    /// Waits for the next snapshot; returns it and the changes of all events read.
    async fn snapshot(&mut self, timeout: Duration) -> (Vec<Container>, Vec<Change>) {
        let (event, changes) = self
            .wait_for(timeout, "snapshot", |e| {
                matches!(e, TrackerEvent::Snapshot(_))
            })
            .await;
        let TrackerEvent::Snapshot(list) = event else {
            unreachable!()
        };
        (list, changes)
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn started(id: &str) -> impl FnMut(&TrackerEvent) -> bool + '_ {
    move |e| matches!(e, TrackerEvent::Started(c) if c.id == id)
}

fn started_with(id: &str, pid: u32) -> impl FnMut(&TrackerEvent) -> bool + '_ {
    move |e| matches!(e, TrackerEvent::Started(c) if c.id == id && c.pid == pid)
}

fn stopped(id: &str) -> impl FnMut(&TrackerEvent) -> bool + '_ {
    move |e| matches!(e, TrackerEvent::Stopped { id: i } if i == id)
}

/// The changes that concern `label`.
fn of(label: &str, changes: &[Change]) -> Vec<Change> {
    changes
        .iter()
        .filter(|c| match c {
            Change::Up { label: l, .. } | Change::Down { label: l } => l == label,
        })
        .cloned()
        .collect()
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

fn now_nanos() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(d.as_nanos()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_lists_running_labelled_containers_only() {
    let Some(docker) = require_docker() else {
        return;
    };
    let label = unique_label("snap");
    let before = now_nanos();
    let (labelled, unlabelled, stopped_one) = block_in_place(|| {
        let stopped_one = docker.run(Some(&unique_label("snap-stopped")), &[]);
        docker.stop(&stopped_one);
        let labelled = docker.run(Some(&label), &[]);
        let unlabelled = docker.run(None, &["-e", "MICROSERVICE_LABEL="]);
        (labelled, unlabelled, stopped_one)
    });
    let pid = docker.pid(&labelled);

    let mut t = Tracker::start(docker.host());
    let (first, changes) = t.next(SLOW).await;
    let TrackerEvent::Snapshot(list) = first else {
        panic!("first event is not a snapshot: {first:?}");
    };
    let mine: Vec<_> = list.iter().filter(|c| c.id == labelled).collect();
    assert_eq!(mine.len(), 1, "labelled container not in {list:?}");
    assert_eq!((mine[0].label.as_str(), mine[0].pid), (label.as_str(), pid));
    // Creation time in nanoseconds, between the test's start and now (1 s clock slack).
    assert!(
        mine[0].created > before - 1_000_000_000 && mine[0].created < now_nanos(),
        "created {} not around {before}",
        mine[0].created
    );
    assert!(!list
        .iter()
        .any(|c| c.id == unlabelled || c.id == stopped_one));
    assert_eq!(of(&label, &changes), vec![up(&label, &labelled, pid)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_after_start_is_reported_promptly_and_rm_as_stopped() {
    let Some(docker) = require_docker() else {
        return;
    };
    let mut t = Tracker::start(docker.host());
    t.snapshot(SLOW).await;

    let label = unique_label("run");
    let id = block_in_place(|| docker.run(Some(&label), &[]));
    let ran = Instant::now();
    let pid = docker.pid(&id);
    let (event, changes) = t.wait_for(PROMPT, "Started", started(&id)).await;
    eprintln!("Started after {:?}", ran.elapsed());
    let TrackerEvent::Started(c) = event else {
        unreachable!()
    };
    assert_eq!((c.label.as_str(), c.pid), (label.as_str(), pid));
    assert_eq!(of(&label, &changes), vec![up(&label, &id, pid)]);

    // An unlabelled container is never reported as started.
    let plain = block_in_place(|| docker.run(None, &[]));
    let (_, changes) = t.wait_for(PROMPT, "Stopped", stopped(&plain)).await;
    assert_eq!(of(&label, &changes), vec![]);

    block_in_place(|| docker.rm(&id));
    let (_, changes) = t.wait_for(PROMPT, "Stopped", stopped(&id)).await;
    assert_eq!(of(&label, &changes), vec![down(&label)]);
    assert_eq!(t.registry.get(&label), None);

    // The tracker ends when its receiver is dropped.
    let (_, closed) = unbounded_channel();
    drop(std::mem::replace(&mut t.rx, closed));
    let result = tokio::time::timeout(PROMPT, &mut t.task).await;
    assert!(matches!(result, Ok(Ok(Ok(())))), "{result:?}");
}

/// `docker restart`: the label goes Down and comes back Up with the new pid. (Whether the
/// tracker saw the container stopped in between depends on how fast its inspect after `die`
/// is; the registry reports Down + Up either way.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_reports_the_new_pid() {
    let Some(docker) = require_docker() else {
        return;
    };
    let label = unique_label("restart");
    let id = block_in_place(|| docker.run(Some(&label), &[]));
    let old_pid = docker.pid(&id);
    let mut t = Tracker::start(docker.host());
    t.snapshot(SLOW).await;
    assert_eq!(t.registry.get(&label), Some((id.as_str(), old_pid)));

    block_in_place(|| docker.restart(&id));
    let new_pid = docker.pid(&id);
    assert_ne!(new_pid, old_pid);
    let mut saw_stopped = false;
    let (_, changes) = t
        .wait_for(SLOW, "Started with the new pid", |e| {
            saw_stopped |= matches!(e, TrackerEvent::Stopped { id: i } if *i == id);
            started_with(&id, new_pid)(e)
        })
        .await;
    eprintln!("tracker saw Stopped before the new Started: {saw_stopped}");
    assert_eq!(
        of(&label, &changes),
        vec![down(&label), up(&label, &id, new_pid)]
    );
    assert_eq!(t.registry.get(&label), Some((id.as_str(), new_pid)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newest_container_wins_and_an_older_one_does_not_take_the_label_back() {
    let Some(docker) = require_docker() else {
        return;
    };
    let label = unique_label("two");
    let mut t = Tracker::start(docker.host());
    t.snapshot(SLOW).await;

    let older = block_in_place(|| docker.run(Some(&label), &[]));
    t.wait_for(PROMPT, "Started", started(&older)).await;
    let newer = block_in_place(|| docker.run(Some(&label), &[]));
    let newer_pid = docker.pid(&newer);
    let (_, changes) = t.wait_for(PROMPT, "Started", started(&newer)).await;
    assert_eq!(
        of(&label, &changes),
        vec![down(&label), up(&label, &newer, newer_pid)]
    );

    // Restarting the older one: reported as started, but it does not take the label.
    block_in_place(|| docker.restart(&older));
    let older_pid = docker.pid(&older);
    let (_, changes) = t
        .wait_for(SLOW, "Started", started_with(&older, older_pid))
        .await;
    assert_eq!(of(&label, &changes), vec![]);
    assert_eq!(t.registry.get(&label), Some((newer.as_str(), newer_pid)));

    // The winner goes away: the label is down although the older one still runs.
    block_in_place(|| docker.rm(&newer));
    let (_, changes) = t.wait_for(PROMPT, "Stopped", stopped(&newer)).await;
    assert_eq!(of(&label, &changes), vec![down(&label)]);
    assert_eq!(docker.pid(&older), older_pid);

    // A fresh snapshot (as after a reconnect) starts over: the older one is the newest.
    let mut t2 = Tracker::start(docker.host());
    t2.snapshot(SLOW).await;
    assert_eq!(t2.registry.get(&label), Some((older.as_str(), older_pid)));
}

/// dockerd goes away and comes back (`--live-restore`, so containers keep running). A
/// container whose process died meanwhile is Down after the new snapshot, one that kept
/// running yields no change, and events flow again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracker_survives_a_dockerd_restart() {
    if require_docker().is_none() {
        return;
    }
    let Some(private) = block_in_place(|| PrivateDockerd::start("--live-restore")) else {
        return;
    };
    let docker = private.docker();
    let (keep_label, gone_label) = (unique_label("keep"), unique_label("gone"));
    let (keep, gone) = block_in_place(|| {
        (
            docker.run(Some(&keep_label), &[]),
            docker.run(Some(&gone_label), &[]),
        )
    });
    let (keep_pid, gone_pid) = (docker.pid(&keep), docker.pid(&gone));

    let mut t = Tracker::start(docker.host());
    let (list, _) = t.snapshot(SLOW).await;
    assert_eq!(list.len(), 2, "{list:?}");
    t.wait_connected(true, PROMPT).await;

    block_in_place(|| private.stop_daemon());
    t.wait_connected(false, SLOW).await;
    // While dockerd is down, one container's process dies.
    let gone_proc = nix::unistd::Pid::from_raw(gone_pid as i32);
    nix::sys::signal::kill(gone_proc, nix::sys::signal::Signal::SIGKILL).unwrap();
    block_in_place(|| private.start_daemon());

    let (list, changes) = t.snapshot(SLOW).await;
    t.wait_connected(true, PROMPT).await;
    assert!(
        list.iter().any(|c| c.id == keep && c.pid == keep_pid),
        "{list:?}"
    );
    assert!(!list.iter().any(|c| c.id == gone), "{list:?}");
    assert_eq!(of(&keep_label, &changes), vec![]);
    assert_eq!(of(&gone_label, &changes), vec![down(&gone_label)]);
    assert_eq!(t.registry.get(&keep_label), Some((keep.as_str(), keep_pid)));

    // Events are followed again.
    let label = unique_label("after");
    let id = block_in_place(|| docker.run(Some(&label), &[]));
    let (_, changes) = t.wait_for(PROMPT, "Started", started(&id)).await;
    assert_eq!(of(&label, &changes), vec![up(&label, &id, docker.pid(&id))]);
    drop(t);
}

#[tokio::test]
async fn unsupported_docker_hosts_are_refused() {
    let (tx, _rx) = unbounded_channel();
    let result = track(Some("tcp://127.0.0.1:2375".into()), tx).await;
    assert!(matches!(result, Err(TrackerError::UnsupportedHost(_))));
}

/// With no engine at the socket the tracker keeps retrying quietly and sends nothing.
#[tokio::test]
async fn unreachable_docker_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Tracker::start(&format!("unix://{}/none.sock", dir.path().display()));
    let got = tokio::time::timeout(Duration::from_millis(700), t.rx.recv()).await;
    assert!(got.is_err(), "unexpected {got:?}");
    assert!(!t.task.is_finished());
    assert!(
        !*t.connected.borrow(),
        "reported connected without an engine"
    );
}
