//! The etcd northbound against a real etcd: snapshot then changes in order, nothing missed
//! or seen twice, fresh snapshots after outages and compactions.

mod common;

use common::{require_etcd, Etcd, TcpProxy};
use nsagent::store::{self, KeyValue, StoreEvent};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use tokio::task::JoinHandle;

/// Longest wait for one event (covers a reconnect after the longest backoff).
const EVENT_TIMEOUT: Duration = Duration::from_secs(15);

type Rx = UnboundedReceiver<StoreEvent>;

fn start_watch(endpoint: String, prefix: &str) -> (Rx, JoinHandle<()>) {
    let (tx, rx) = unbounded_channel();
    let task = tokio::spawn(store::watch(vec![endpoint], prefix.to_string(), tx));
    (rx, task)
}

async fn next(rx: &mut Rx) -> StoreEvent {
    tokio::time::timeout(EVENT_TIMEOUT, rx.recv())
        .await
        .expect("no event from the watcher in time")
        .expect("watcher ended")
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
}

impl Mirror {
    fn apply(&mut self, event: StoreEvent) {
        let revision = match event {
            StoreEvent::Snapshot { revision, kvs } => {
                self.state = kvs.into_iter().map(|kv| (kv.key, kv.value)).collect();
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
    assert!(rx.try_recv().is_err(), "events beyond etcd's state");
}

#[tokio::test]
async fn etcd_restart_gives_fresh_snapshot() {
    let Some(mut etcd) = require_etcd() else {
        return;
    };
    let ra = etcd.put("/p/a", "1").await;
    let (mut rx, _task) = start_watch(etcd.endpoint(), "/p/");
    next_snapshot(&mut rx).await;

    etcd.stop();
    tokio::time::sleep(Duration::from_millis(500)).await;
    etcd.start();
    let (_, kvs) = next_snapshot(&mut rx).await;
    assert_eq!(kvs, vec![kv("/p/a", "1", ra)]);

    let rb = etcd.put("/p/b", "2").await;
    assert_eq!(next(&mut rx).await, StoreEvent::Put(kv("/p/b", "2", rb)));
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
    assert!(rx.try_recv().is_err(), "events while cut off");
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
    assert!(rx.try_recv().is_err());
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
