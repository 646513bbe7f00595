//! The etcd northbound: a stream of snapshots, puts and deletes for one key prefix.
//!
//! [`watch`] turns etcd into [`StoreEvent`]s: a [`StoreEvent::Snapshot`] from one Get at
//! revision R, then every change from a watch that starts at R+1, so that nothing is missed or
//! seen twice. After a disconnect or a compaction it starts over with a fresh snapshot.

mod watch;

pub use watch::watch;

use anyhow::{bail, Context};
use etcd_client::{Client, ConnectOptions};
use std::time::Duration;

/// Timeout for connecting to an endpoint and for an answer to a keep-alive ping.
const TIMEOUT: Duration = Duration::from_secs(2);

/// Interval of HTTP/2 keep-alive pings, so that an etcd that vanished without closing the
/// connection is noticed even on an idle watch. etcd closes connections that ping more often
/// than every 5 s (`--grpc-keepalive-min-time`).
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// Largest gRPC response accepted (a snapshot of a big configuration is one response).
const MAX_MESSAGE_BYTES: usize = 256 << 20;

/// One key-value pair as read from etcd.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    /// Full key.
    pub key: String,
    /// Raw value.
    pub value: Vec<u8>,
    /// etcd mod revision of the value.
    pub mod_revision: i64,
}

/// What the watcher reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreEvent {
    /// Everything under the prefix at `revision` (at start, after a reconnect or a compaction).
    Snapshot {
        /// Revision of the snapshot.
        revision: i64,
        /// All pairs under the prefix.
        kvs: Vec<KeyValue>,
    },
    /// A key was written.
    Put(KeyValue),
    /// A key was deleted.
    Delete {
        /// Full key.
        key: String,
        /// Revision of the delete.
        revision: i64,
    },
}

/// Parses an `--etcd-endpoints` value: `HOST:PORT[,HOST:PORT...]`, each optionally prefixed
/// with `http://`. Returns the endpoints as `HOST:PORT`.
pub fn parse_endpoints(value: &str) -> anyhow::Result<Vec<String>> {
    let mut endpoints = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if item.starts_with("https://") {
            bail!("etcd endpoint {item}: TLS is not supported, use http:// or HOST:PORT");
        }
        let hostport = item.strip_prefix("http://").unwrap_or(item);
        let hostport = hostport.strip_suffix('/').unwrap_or(hostport);
        let valid = match hostport.rsplit_once(':') {
            Some((host, port)) => {
                !host.is_empty() && !host.contains('/') && port.parse::<u16>().is_ok()
            }
            None => false,
        };
        if !valid {
            bail!("etcd endpoint {item:?}: expected HOST:PORT");
        }
        endpoints.push(hostport.to_string());
    }
    if endpoints.is_empty() {
        bail!("no etcd endpoint given (expected HOST:PORT[,HOST:PORT...])");
    }
    Ok(endpoints)
}

/// Connects to etcd (any of `endpoints`, `HOST:PORT` or URLs) and checks that it answers.
/// Fails within a few seconds when no endpoint does.
pub async fn connect(endpoints: &[String]) -> anyhow::Result<Client> {
    let what = || format!("cannot reach etcd at {}", endpoints.join(","));
    let options = ConnectOptions::new()
        .with_connect_timeout(TIMEOUT)
        .with_keep_alive(KEEP_ALIVE_INTERVAL, TIMEOUT)
        .with_require_leader(true);
    let mut client = Client::connect(endpoints, Some(options))
        .await
        .with_context(what)?;
    // The channel connects lazily: ask for something small to know etcd is really there.
    tokio::time::timeout(2 * TIMEOUT, client.status())
        .await
        .map_err(|_| anyhow::anyhow!("timed out after {:?}", 2 * TIMEOUT))
        .and_then(|r| r.map_err(anyhow::Error::from))
        .with_context(what)?;
    Ok(client)
}

#[cfg(test)]
#[path = "../../tests/common/mod.rs"]
mod harness;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        assert_eq!(
            parse_endpoints("127.0.0.1:2379").unwrap(),
            vec!["127.0.0.1:2379"]
        );
        assert_eq!(
            parse_endpoints("http://a:1, b:2 ,http://c:3/").unwrap(),
            vec!["a:1", "b:2", "c:3"]
        );
        for bad in [
            "",
            ",",
            "a",
            "a:",
            ":1",
            "a:x",
            "a:70000",
            "https://a:1",
            "http://a/b:1",
        ] {
            assert!(parse_endpoints(bad).is_err(), "{bad:?} accepted");
        }
    }

    /// A watch whose start revision was compacted away ends with `Compacted`, which makes
    /// [`watch`] take a fresh snapshot. (Hard to provoke through `watch` itself: it needs a
    /// compaction between the snapshot and the start of the watch.)
    #[tokio::test]
    async fn compacted_start_revision_is_reported() {
        let Some(etcd) = harness::require_etcd() else {
            return;
        };
        let first = etcd.put("/c/a", "1").await;
        let last = etcd.put("/c/a", "2").await;
        etcd.client().await.compact(last, None).await.unwrap();
        let mut client = connect(&[etcd.endpoint()]).await.unwrap();
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let mut backoff = std::time::Duration::from_secs(1);
        let end = watch::follow(&mut client, "/c/", first, &tx, &mut backoff).await;
        assert!(
            matches!(end, watch::End::Compacted(at) if at == last),
            "{end:?}"
        );
    }
}
