//! The etcd northbound against a real etcd: snapshot then changes in order, nothing missed
//! or seen twice; after an outage the watch resumes where it stopped, with a fresh snapshot
//! only after a compaction or when another etcd answers.

mod common;

use common::cluster::EtcdCluster;
use common::{etcd_installed, require_etcd, Etcd, TcpProxy};
use nsagent::store::{self, KeyValue, StoreEvent};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use tokio::task::JoinHandle;

/// Longest wait for one event (covers a reconnect after the longest backoff).
const EVENT_TIMEOUT: Duration = Duration::from_secs(15);

/// The watcher's channel, with the events of a message not read yet.
struct Rx {
    channel: UnboundedReceiver<store::StoreEvents>,
    buffered: std::collections::VecDeque<StoreEvent>,
}

impl Rx {
    /// True when nothing more has arrived.
    fn is_empty(&mut self) -> bool {
        self.buffered.is_empty() && self.channel.try_recv().is_err()
    }
}

fn start_watch(endpoints: String, prefix: &str) -> (Rx, JoinHandle<()>) {
    let (rx, task, _connected) = start_observed_watch(&endpoints, prefix);
    (rx, task)
}

/// Starts the watcher; also returns its connection state.
fn start_observed_watch(
    endpoints: &str,
    prefix: &str,
) -> (Rx, JoinHandle<()>, tokio::sync::watch::Receiver<bool>) {
    let (tx, channel) = unbounded_channel();
    let rx = Rx {
        channel,
        buffered: Default::default(),
    };
    let settings = store::EtcdSettings::with_endpoints(endpoints).unwrap();
    let connected = tokio::sync::watch::Sender::new(false);
    let observer = connected.subscribe();
    let task = tokio::spawn(store::watch(settings, prefix.to_string(), tx, connected));
    (rx, task, observer)
}

/// Waits until the watcher's connection state is `want`.
async fn wait_connected(observer: &mut tokio::sync::watch::Receiver<bool>, want: bool) {
    tokio::time::timeout(EVENT_TIMEOUT, observer.wait_for(|c| *c == want))
        .await
        .unwrap_or_else(|_| panic!("connection state never became {want}"))
        .expect("watcher ended");
}

async fn next(rx: &mut Rx) -> StoreEvent {
    if let Some(event) = rx.buffered.pop_front() {
        return event;
    }
    let events = tokio::time::timeout(EVENT_TIMEOUT, rx.channel.recv())
        .await
        .expect("no event from the watcher in time")
        .expect("watcher ended");
    assert!(!events.is_empty(), "the watcher sent nothing");
    rx.buffered.extend(events);
    rx.buffered.pop_front().unwrap()
}

async fn next_snapshot(rx: &mut Rx) -> (i64, Vec<KeyValue>) {
    match next(rx).await {
        StoreEvent::Snapshot { revision, kvs } => (revision, kvs),
        other => panic!("expected a snapshot, got {other:?}"),
    }
}

fn kv(key: &str, value: &str, mod_revision: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: value.into(),
        mod_revision,
    }
}

fn keys(kvs: &[KeyValue]) -> Vec<&str> {
    kvs.iter().map(|kv| kv.key.as_str()).collect()
}

/// A receiver's mirror of etcd, checking that revisions only ever grow.
#[derive(Default)]
struct Mirror {
    state: BTreeMap<String, Vec<u8>>,
    revision: i64,
    snapshots: usize,
}

impl Mirror {
    fn apply(&mut self, event: StoreEvent) {
        let revision = match event {
            StoreEvent::Snapshot { revision, kvs } => {
                self.state = kvs.into_iter().map(|kv| (kv.key, kv.value)).collect();
                self.snapshots += 1;
                revision
            }
            StoreEvent::Put(kv) => {
                self.state.insert(kv.key, kv.value);
                kv.mod_revision
            }
            StoreEvent::Delete { key, revision } => {
                assert!(self.state.remove(&key).is_some(), "delete of unknown {key}");
                revision
            }
        };
        assert!(
            revision > self.revision,
            "revision {revision} seen after {}",
            self.revision
        );
        self.revision = revision;
    }

    /// Applies events until the mirror equals what etcd holds under `prefix`.
    async fn catch_up(&mut self, rx: &mut Rx, etcd: &Etcd, prefix: &str) {
        let want: BTreeMap<_, _> = etcd.get_prefix(prefix).await.into_iter().collect();
        while self.state != want {
            self.apply(next(rx).await);
        }
    }
}

#[tokio::test]
async fn snapshot_then_changes_in_order() {
    let Some(etcd) = require_etcd() else { return };
    let ra = etcd.put("/p/a", "1").await;
    let rb = etcd.put("/p/b", "2").await;
    etcd.put("/other", "x").await;
    let (mut rx, _task) = start_watch(etcd.endpoint(), "/p/");

    let (revision, kvs) = next_snapshot(&mut rx).await;
    assert_eq!(revision, rb + 1, "snapshot at the current revision");
    assert_eq!(kvs, vec![kv("/p/a", "1", ra), kv("/p/b", "2", rb)]);

    let rc = etcd.put("/p/c", "3").await;
    etcd.put("/other", "y").await;
    let rd = etcd.del("/p/a").await;
    assert_eq!(rd, 1);
    let rb2 = etcd.put("/p/b", "22").await;
    assert_eq!(next(&mut rx).await, StoreEvent::Put(kv("/p/c", "3", rc)));
    assert_eq!(
        next(&mut rx).await,
        StoreEvent::Delete {
            key: "/p/a".into(),
            revision: rc + 2
        }
    );
    assert_eq!(next(&mut rx).await, StoreEvent::Put(kv("/p/b", "22", rb2)));
}

#[tokio::test]
async fn nothing_missed_or_repeated_while_starting() {
    let Some(etcd) = require_etcd() else { return };
    let mut client = etcd.client().await;
    let writer = tokio::spawn(async move {
        for i in 0..200 {
            client
                .put(format!("/p/k{i}"), format!("{i}"), None)
                .await
                .unwrap();
            if i % 3 == 0 {
                client.delete(format!("/p/k{}", i / 2), None).await.unwrap();
            }
        }
    });
    let (mut rx, _task) = start_watch(etcd.endpoint(), "/p/");
    writer.await.unwrap();
    let mut mirror = Mirror::default();
    mirror.catch_up(&mut rx, &etcd, "/p/").await;
    assert!(!mirror.state.is_empty());
    // Nothing more than etcd's state arrives afterwards.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(rx.is_empty(), "events beyond etcd's state");
}

#[tokio::test]
async fn etcd_restart_resumes_the_watch_without_a_snapshot() {
    let Some(mut etcd) = require_etcd() else {
        return;
    };
    let ra = etcd.put("/p/a", "1").await;
    let (mut rx, _task, mut connected) = start_observed_watch(&etcd.endpoint(), "/p/");
    assert_eq!(next_snapshot(&mut rx).await.1, vec![kv("/p/a", "1", ra)]);
    wait_connected(&mut connected, true).await;

    etcd.stop();
    wait_connected(&mut connected, false).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    etcd.start();
    wait_connected(&mut connected, true).await;
    let rb = etcd.put("/p/b", "2").await;
    assert_eq!(next(&mut rx).await, StoreEvent::Put(kv("/p/b", "2", rb)));
}

#[tokio::test]
async fn changes_during_an_outage_arrive_in_order_after_it() {
    let Some(etcd) = require_etcd() else { return };
    let proxy = TcpProxy::new(&etcd.endpoint());
    etcd.put("/p/a", "1").await;
    let (mut rx, _task) = start_watch(proxy.endpoint(), "/p/");
    assert_eq!(keys(&next_snapshot(&mut rx).await.1), ["/p/a"]);

    proxy.cut();
    let rd = etcd.del("/p/a").await;
    assert_eq!(rd, 1);
    let rc = etcd.put("/p/c", "3").await;
    let rc2 = etcd.put("/p/c", "33").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(rx.is_empty(), "events while cut off");
    proxy.restore();

    assert_eq!(
        next(&mut rx).await,
        StoreEvent::Delete {
            key: "/p/a".into(),
            revision: rc - 1
        }
    );
    assert_eq!(next(&mut rx).await, StoreEvent::Put(kv("/p/c", "3", rc)));
    assert_eq!(next(&mut rx).await, StoreEvent::Put(kv("/p/c", "33", rc2)));
}

#[tokio::test]
async fn another_cluster_behind_the_endpoints_gives_a_fresh_snapshot() {
    let Some(mut first) = require_etcd() else {
        return;
    };
    let second = Etcd::start_new();
    first.put("/p/a", "1").await;
    let rb = second.put("/p/b", "2").await;
    let endpoints = format!("{},{}", first.endpoint(), second.endpoint());
    let (mut rx, _task) = start_watch(endpoints, "/p/");
    assert_eq!(keys(&next_snapshot(&mut rx).await.1), ["/p/a"]);

    // The watcher moves to the second endpoint: another history, so it starts over.
    first.stop();
    let (_, kvs) = next_snapshot(&mut rx).await;
    assert_eq!(kvs, vec![kv("/p/b", "2", rb)]);
}

#[tokio::test]
async fn changes_and_compaction_during_an_outage_show_in_the_next_snapshot() {
    let Some(etcd) = require_etcd() else { return };
    let proxy = TcpProxy::new(&etcd.endpoint());
    etcd.put("/p/a", "1").await;
    let rb = etcd.put("/p/b", "2").await;
    let (mut rx, _task) = start_watch(proxy.endpoint(), "/p/");
    assert_eq!(keys(&next_snapshot(&mut rx).await.1), ["/p/a", "/p/b"]);

    proxy.cut();
    etcd.del("/p/a").await;
    let rc = etcd.put("/p/c", "3").await;
    etcd.client().await.compact(rc, None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(rx.is_empty(), "events while cut off");
    proxy.restore();

    let (revision, kvs) = next_snapshot(&mut rx).await;
    assert_eq!(revision, rc);
    assert_eq!(kvs, vec![kv("/p/b", "2", rb), kv("/p/c", "3", rc)]);
    let rd = etcd.put("/p/d", "4").await;
    assert_eq!(next(&mut rx).await, StoreEvent::Put(kv("/p/d", "4", rd)));
}

#[tokio::test]
async fn waits_for_etcd_that_is_down_at_start() {
    let Some(mut etcd) = require_etcd() else {
        return;
    };
    let ra = etcd.put("/p/a", "1").await;
    etcd.stop();
    let (mut rx, _task) = start_watch(etcd.endpoint(), "/p/");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(rx.is_empty());
    etcd.start();
    assert_eq!(next_snapshot(&mut rx).await.1, vec![kv("/p/a", "1", ra)]);
}

#[tokio::test]
async fn stops_when_the_receiver_is_dropped() {
    let Some(mut etcd) = require_etcd() else {
        return;
    };
    let (mut rx, task) = start_watch(etcd.endpoint(), "/p/");
    next_snapshot(&mut rx).await;
    drop(rx);
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("watcher still running while connected")
        .unwrap();

    // Also while etcd is unreachable and the watcher is backing off.
    etcd.stop();
    let (rx, task) = start_watch(etcd.endpoint(), "/p/");
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(rx);
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("watcher still running while reconnecting")
        .unwrap();
}

/// Retries `op` (a put or delete through `client`) until etcd takes it, for up to 15 s (a
/// killed leader makes writes fail until a new one is elected).
async fn until_done<F, Fut, T>(mut op: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        match tokio::time::timeout(Duration::from_secs(2), op()).await {
            Ok(Ok(_)) => return,
            _ if tokio::time::Instant::now() > deadline => panic!("etcd write keeps failing"),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

#[tokio::test]
async fn the_watch_moves_to_another_member_without_losing_or_repeating_events() {
    if !etcd_installed() {
        return;
    }
    let mut cluster = EtcdCluster::start(3);
    let (mut rx, _task, mut connected) = start_observed_watch(&cluster.endpoints(), "/p/");
    let mut mirror = Mirror::default();
    mirror.apply(next(&mut rx).await);
    wait_connected(&mut connected, true).await;
    // The watch runs on the first member (endpoints are tried in order); the writer uses
    // the last one, which survives.
    let writer = cluster.member(2).client().await;
    for i in 0..150 {
        if i == 50 {
            cluster.member_mut(0).stop();
        }
        until_done(|| {
            let mut c = writer.clone();
            async move { c.put(format!("/p/k{i}"), format!("{i}"), None).await }
        })
        .await;
        if i % 3 == 0 {
            until_done(|| {
                let mut c = writer.clone();
                async move { c.delete(format!("/p/k{}", i / 2), None).await }
            })
            .await;
        }
    }
    mirror.catch_up(&mut rx, cluster.member(2), "/p/").await;
    assert_eq!(
        mirror.snapshots, 1,
        "the watch resumed without a new snapshot"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(rx.is_empty(), "events beyond etcd's state");
}
