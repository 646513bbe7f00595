//! The etcd northbound: a stream of snapshots, puts and deletes for one key prefix.

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

/// Watches `prefix` on etcd forever, sending a snapshot and then every change to `tx`.
pub async fn watch(
    endpoints: Vec<String>,
    prefix: String,
    tx: tokio::sync::mpsc::UnboundedSender<StoreEvent>,
) {
    let _ = (endpoints, prefix, tx);
    todo!("store helper")
}
