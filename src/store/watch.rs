//! The watch loop: snapshot, follow, and after a broken connection resume on any member from
//! the last revision delivered.

use super::connect::etcd_error;
use super::{
    connect, Connection, EtcdSettings, KeyValue, StoreEvent, StoreEvents, MAX_MESSAGE_BYTES,
};
use anyhow::anyhow;
use etcd_client::{EventType, GetOptions, WatchOptions, WatchResponse};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::watch;
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

/// What the receiver has seen: everything up to `revision` of the history of `cluster_id`.
#[derive(Clone, Copy, Debug)]
struct Mirror {
    revision: i64,
    cluster_id: u64,
}

/// Reconnection state across attempts.
pub(super) struct Retry {
    /// Delays between attempts.
    backoff: crate::backoff::Retry,
    /// Set while etcd is unreachable: the outage has been reported already.
    outage: bool,
}

impl Retry {
    pub(super) fn new() -> Self {
        Retry {
            backoff: crate::backoff::Retry::new(BACKOFF_MIN, BACKOFF_MAX),
            outage: false,
        }
    }
}

/// Sends the contents of `prefix` and then every change under it to `tx`, until `tx` is
/// closed. Starts with a [`StoreEvent::Snapshot`]; when the connection breaks it connects
/// again (to the first member that answers) and resumes after the last revision it delivered,
/// so that nothing is lost or repeated. It sends a fresh snapshot only when that revision was
/// compacted away or etcd's history is not the one it followed (another cluster, or a
/// revision lower than the one delivered). Retries with exponential backoff (100 ms to 5 s)
/// and logs one warning per outage.
///
/// `connected` is set to true while the watch is established and to false as soon as it is
/// lost (for readiness and metrics).
pub async fn watch(
    settings: EtcdSettings,
    prefix: String,
    tx: UnboundedSender<StoreEvents>,
    connected: watch::Sender<bool>,
) {
    let mut retry = Retry::new();
    let mut mirror: Option<Mirror> = None;
    // When a watch that was established broke, the first reconnection is tried at once:
    // another member is probably up. At most once per BACKOFF_MAX, so that a member that
    // accepts watches and drops them is not hammered.
    let mut last_immediate: Option<Instant> = None;
    loop {
        let end = tokio::select! {
            _ = tx.closed() => End::Closed,
            end = session(&settings, &prefix, &tx, &connected, &mut mirror, &mut retry) => end,
        };
        let was_established = connected.send_replace(false);
        match end {
            End::Closed => return,
            End::Compacted(at) => {
                info!(
                    compacted = at,
                    "etcd compacted the watched revision, taking a fresh snapshot"
                );
                mirror = None;
                continue;
            }
            End::Lost(e) if !retry.outage => {
                warn!("etcd connection lost or unavailable, reconnecting: {e:#}");
                retry.outage = true;
                let now = Instant::now();
                if was_established && last_immediate.is_none_or(|t| now - t >= BACKOFF_MAX) {
                    last_immediate = Some(now);
                    continue;
                }
            }
            End::Lost(e) => debug!(
                "etcd still unreachable, next try in {:?}: {e:#}",
                retry.backoff.current()
            ),
        }
        let delay = retry.backoff.failed();
        tokio::select! {
            _ = tx.closed() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// One connection: connect, make sure the receiver mirrors this history (snapshot if not),
/// and follow the watch until it ends.
async fn session(
    settings: &EtcdSettings,
    prefix: &str,
    tx: &UnboundedSender<StoreEvents>,
    connected: &watch::Sender<bool>,
    mirror: &mut Option<Mirror>,
    retry: &mut Retry,
) -> End {
    let mut connection = match connect(settings).await {
        Ok(c) => c,
        Err(e) => return End::Lost(e),
    };
    if let Err(e) = check_history(&mut connection, prefix, mirror).await {
        return End::Lost(e);
    }
    let current = match *mirror {
        Some(m) => m,
        None => match snapshot(&mut connection, prefix).await {
            Ok((m, kvs)) => {
                debug!(
                    revision = m.revision,
                    keys = kvs.len(),
                    "etcd snapshot of {prefix}"
                );
                let event = StoreEvent::Snapshot {
                    revision: m.revision,
                    kvs,
                };
                if tx.send(vec![event]).is_err() {
                    return End::Closed;
                }
                *mirror = Some(m);
                m
            }
            Err(e) => return End::Lost(e),
        },
    };
    let mut revision = current.revision;
    let end = follow(&mut connection, prefix, &mut revision, tx, connected, retry).await;
    *mirror = Some(Mirror {
        revision,
        ..current
    });
    end
}

/// Forgets `mirror` when etcd's history is not the one it was taken from: another cluster
/// answers, or its revision is lower than one already delivered (data restored or replaced).
/// The read is linearizable, so a member that lags behind does not count as lower.
async fn check_history(
    connection: &mut Connection,
    prefix: &str,
    mirror: &mut Option<Mirror>,
) -> anyhow::Result<()> {
    let Some(m) = *mirror else { return Ok(()) };
    let resp = connection
        .client
        .get(
            prefix,
            Some(GetOptions::new().with_prefix().with_count_only()),
        )
        .await
        .map_err(etcd_error)?;
    let header = resp
        .header()
        .ok_or_else(|| anyhow!("etcd range response without header"))?;
    if header.cluster_id() != m.cluster_id || header.revision() < m.revision {
        warn!(
            revision = header.revision(),
            delivered = m.revision,
            cluster = header.cluster_id(),
            "etcd's history is not the one watched before (restored or replaced?), \
             taking a fresh snapshot"
        );
        *mirror = None;
    }
    Ok(())
}

/// Reads everything under `prefix` in one range request.
async fn snapshot(
    connection: &mut Connection,
    prefix: &str,
) -> anyhow::Result<(Mirror, Vec<KeyValue>)> {
    let mut kv = connection
        .client
        .kv_client()
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
    let mut resp = kv
        .get(prefix, Some(GetOptions::new().with_prefix()))
        .await
        .map_err(etcd_error)?;
    let header = resp
        .header()
        .ok_or_else(|| anyhow!("etcd range response without header"))?;
    let mirror = Mirror {
        revision: header.revision(),
        cluster_id: header.cluster_id(),
    };
    let kvs = resp
        .take_kvs()
        .into_iter()
        .map(|kv| KeyValue {
            key: String::from_utf8_lossy(kv.key()).into_owned(),
            value: kv.value().to_vec(),
            mod_revision: kv.mod_revision(),
        })
        .collect();
    Ok((mirror, kvs))
}

/// Watches `prefix` after `revision` and sends every event to `tx`, in order, advancing
/// `revision` to the last one delivered (or reported by a progress notification). Once etcd
/// has accepted the watch: sets `connected`, resets the backoff and reports the end of an
/// outage.
pub(super) async fn follow(
    connection: &mut Connection,
    prefix: &str,
    revision: &mut i64,
    tx: &UnboundedSender<StoreEvents>,
    connected: &watch::Sender<bool>,
    retry: &mut Retry,
) -> End {
    let start = *revision + 1;
    let options = WatchOptions::new()
        .with_prefix()
        .with_start_revision(start)
        .with_progress_notify();
    let mut stream = match connection
        .client
        .watch_client()
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .watch(prefix, Some(options))
        .await
    {
        Ok(stream) => stream,
        Err(e) => return End::Lost(etcd_error(e)),
    };
    loop {
        let resp = match stream.message().await {
            Ok(Some(resp)) => resp,
            Ok(None) => return End::Lost(anyhow!("etcd closed the watch stream")),
            Err(e) => return End::Lost(etcd_error(e)),
        };
        if resp.canceled() {
            return match resp.compact_revision() {
                0 => End::Lost(anyhow!("etcd canceled the watch: {}", resp.cancel_reason())),
                at => End::Compacted(at),
            };
        }
        if resp.created() {
            established(&connection.endpoint, prefix, start, connected, retry);
        }
        if is_progress_notification(&resp) {
            if let Some(header) = resp.header() {
                *revision = (*revision).max(header.revision());
            }
        }
        let mut events = Vec::with_capacity(resp.events().len());
        for event in resp.events() {
            let Some(kv) = event.kv() else { continue };
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            *revision = kv.mod_revision();
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
            events.push(event);
        }
        // One watch response at once: the agent never plans with half a transaction.
        if !events.is_empty() && tx.send(events).is_err() {
            return End::Closed;
        }
    }
}

/// etcd accepted the watch.
fn established(
    endpoint: &str,
    prefix: &str,
    start: i64,
    connected: &watch::Sender<bool>,
    retry: &mut Retry,
) {
    connected.send_replace(true);
    retry.backoff.reset();
    if std::mem::take(&mut retry.outage) {
        info!("etcd reachable again: watching {prefix} on {endpoint} from revision {start}");
    } else {
        debug!("watching {prefix} on {endpoint} from revision {start}");
    }
}

/// A response that only says that every event up to its header's revision has been sent
/// (etcd sends these to watches that are in sync, see Go's `IsProgressNotify`).
fn is_progress_notification(resp: &WatchResponse) -> bool {
    resp.events().is_empty()
        && !resp.created()
        && !resp.canceled()
        && resp.compact_revision() == 0
        && resp.header().is_some_and(|h| h.revision() != 0)
}
