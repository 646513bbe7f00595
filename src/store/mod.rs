//! The etcd northbound: every connection to etcd, and a stream of snapshots, puts and deletes
//! for one key prefix.
//!
//! [`EtcdSettings`] says how to reach etcd (endpoints, TLS, credentials, timeouts); it comes
//! from the flags shared by both binaries ([`EtcdArgs`]), the Go agent's etcd YAML file
//! ([`EtcdFile`]) and the TOML file, layered as [`EtcdOptions`]. [`connect`] is the one way to
//! connect, used by the watcher, the status publisher and `nsagent-ctl`.
//!
//! [`watch`] turns etcd into [`StoreEvent`]s: a [`StoreEvent::Snapshot`] from one Get at
//! revision R, then every change from a watch that starts at R+1, so that nothing is missed or
//! seen twice. When the connection breaks it connects again (to any member) and resumes the
//! watch after the last revision it delivered; it takes a fresh snapshot only when that
//! revision was compacted or etcd's history was replaced.

mod args;
mod connect;
mod etcd_file;
mod settings;
mod watch;

pub use args::{EtcdArgs, ResolvedEtcd};
pub use connect::{check, connect, Connection};
pub use etcd_file::EtcdFile;
pub use settings::{
    deserialize_duration, split_user, EtcdOptions, EtcdSettings, TlsSettings, DEFAULT_DIAL_TIMEOUT,
    DEFAULT_ENDPOINT, DEFAULT_OPERATION_TIMEOUT,
};
pub use watch::watch;

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

/// What the watcher sends at once: a snapshot, or the events of one watch response (one
/// etcd transaction or more), which the receiver applies together, so that it never acts
/// on half a transaction.
pub type StoreEvents = Vec<StoreEvent>;

/// What the watcher reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreEvent {
    /// Everything under the prefix at `revision` (at start, after a compaction, or when etcd's
    /// history was replaced).
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

#[cfg(test)]
#[path = "../../tests/common/mod.rs"]
mod harness;

#[cfg(test)]
mod tests {
    use super::*;

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
        let settings = EtcdSettings::with_endpoints(&etcd.endpoint()).unwrap();
        let mut connection = connect(&settings).await.unwrap();
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let connected = tokio::sync::watch::Sender::new(false);
        let mut revision = first - 1;
        let mut retry = watch::Retry::new();
        let end = watch::follow(
            &mut connection,
            "/c/",
            &mut revision,
            &tx,
            &connected,
            &mut retry,
        )
        .await;
        assert!(
            matches!(end, watch::End::Compacted(at) if at == last),
            "{end:?}"
        );
    }
}
