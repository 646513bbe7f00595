//! The watch loop: snapshot, follow, and start over after a disconnect or a compaction.

use super::{connect, KeyValue, StoreEvent, MAX_MESSAGE_BYTES};
use anyhow::anyhow;
use etcd_client::{Client, EventType, GetOptions, WatchOptions};
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;
use tracing::{debug, info, warn};

/// First delay before reconnecting; doubled after every failed attempt.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest delay between reconnection attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Why following the watch stopped.
#[derive(Debug)]
pub(super) enum End {
    /// The receiver is gone: stop for good.
    Closed,
    /// The revision to watch from was compacted away (etcd's compact revision).
    Compacted(i64),
    /// The connection broke or etcd canceled the watch.
    Lost(anyhow::Error),
}

/// Sends the contents of `prefix` and then every change under it to `tx`, until `tx` is
/// closed. Starts with a [`StoreEvent::Snapshot`] and sends a fresh one whenever it had to
/// start over (etcd unreachable, watch canceled, watched revision compacted), so that a
/// receiver that replaces its state on every snapshot and applies puts and deletes in order
/// always mirrors etcd. Retries unreachable endpoints with exponential backoff (100 ms to 5 s)
/// and logs one warning per outage.
pub async fn watch(endpoints: Vec<String>, prefix: String, tx: UnboundedSender<StoreEvent>) {
    let mut backoff = BACKOFF_MIN;
    // Set while etcd is unreachable: the outage has been reported already.
    let mut outage = false;
    loop {
        let start = async {
            let mut client = connect(&endpoints).await?;
            let snapshot = snapshot(&mut client, &prefix).await?;
            anyhow::Ok((client, snapshot))
        };
        let started = tokio::select! {
            _ = tx.closed() => return,
            started = start => started,
        };
        let end = match started {
            Ok((mut client, (revision, kvs))) => {
                if std::mem::take(&mut outage) {
                    info!(
                        revision,
                        "etcd reachable again, resyncing from a fresh snapshot"
                    );
                } else {
                    debug!(revision, keys = kvs.len(), "etcd snapshot of {prefix}");
                }
                if tx.send(StoreEvent::Snapshot { revision, kvs }).is_err() {
                    return;
                }
                tokio::select! {
                    _ = tx.closed() => return,
                    end = follow(&mut client, &prefix, revision + 1, &tx, &mut backoff) => end,
                }
            }
            Err(e) => End::Lost(e),
        };
        match end {
            End::Closed => return,
            End::Compacted(at) => {
                info!(
                    compacted = at,
                    "etcd compacted the watched revision, taking a fresh snapshot"
                );
                continue;
            }
            End::Lost(e) if !outage => {
                warn!("etcd connection lost or unavailable, reconnecting: {e:#}");
                outage = true;
            }
            End::Lost(e) => debug!("etcd still unreachable, next try in {backoff:?}: {e:#}"),
        }
        tokio::select! {
            _ = tx.closed() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Reads everything under `prefix` in one range request: (revision, pairs).
async fn snapshot(client: &mut Client, prefix: &str) -> anyhow::Result<(i64, Vec<KeyValue>)> {
    let mut kv = client
        .kv_client()
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
    let mut resp = kv
        .get(prefix, Some(GetOptions::new().with_prefix()))
        .await?;
    let revision = resp
        .header()
        .map(|h| h.revision())
        .ok_or_else(|| anyhow!("etcd range response without header"))?;
    let kvs = resp
        .take_kvs()
        .into_iter()
        .map(|kv| KeyValue {
            key: String::from_utf8_lossy(kv.key()).into_owned(),
            value: kv.value().to_vec(),
            mod_revision: kv.mod_revision(),
        })
        .collect();
    Ok((revision, kvs))
}

/// Watches `prefix` from revision `start` and sends every event to `tx`, in order. Resets
/// `backoff` once etcd has accepted the watch.
pub(super) async fn follow(
    client: &mut Client,
    prefix: &str,
    start: i64,
    tx: &UnboundedSender<StoreEvent>,
    backoff: &mut Duration,
) -> End {
    let options = WatchOptions::new()
        .with_prefix()
        .with_start_revision(start)
        .with_progress_notify();
    let mut stream = match client
        .watch_client()
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .watch(prefix, Some(options))
        .await
    {
        Ok(stream) => stream,
        Err(e) => return End::Lost(e.into()),
    };
    loop {
        let resp = match stream.message().await {
            Ok(Some(resp)) => resp,
            Ok(None) => return End::Lost(anyhow!("etcd closed the watch stream")),
            Err(e) => return End::Lost(e.into()),
        };
        if resp.canceled() {
            return match resp.compact_revision() {
                0 => End::Lost(anyhow!("etcd canceled the watch: {}", resp.cancel_reason())),
                at => End::Compacted(at),
            };
        }
        if resp.created() {
            *backoff = BACKOFF_MIN;
        }
        for event in resp.events() {
            let Some(kv) = event.kv() else { continue };
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            let event = match event.event_type() {
                EventType::Put => StoreEvent::Put(KeyValue {
                    key,
                    value: kv.value().to_vec(),
                    mod_revision: kv.mod_revision(),
                }),
                EventType::Delete => StoreEvent::Delete {
                    key,
                    revision: kv.mod_revision(),
                },
            };
            if tx.send(event).is_err() {
                return End::Closed;
            }
        }
    }
}
