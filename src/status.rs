//! Item status published to etcd, so that "why is this pending?" has an answer outside the
//! log: `/vnf-agent/<label>/linux/status/v1/<kind>/<name>` holds
//! `{"key": ..., "state": "applied|applying|pending|failed|invalid", "detail": ...}`.
//!
//! Writes are coalesced in a background task (latest status per item wins) and batched into
//! transactions, so that publishing never slows the apply loop down; while etcd is away the
//! latest statuses wait and are written when it is back.

use crate::keys::{ItemKind, KeyTree};
use crate::scheduler::ItemStatus;
use crate::store::EtcdSettings;
use etcd_client::{Client, DeleteOptions, GetOptions, Txn, TxnOp};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tokio::sync::mpsc;

/// etcd's default limit of operations in one transaction is 128.
const OPS_PER_TXN: usize = 100;

/// The status key of an item.
pub fn status_key(keys: &KeyTree, kind: ItemKind, name: &str) -> String {
    format!(
        "{}linux/status/v1/{}/{}",
        keys.agent_prefix(),
        kind.segment(),
        name
    )
}

/// The prefix of all status keys of an agent.
pub fn status_prefix(keys: &KeyTree) -> String {
    format!("{}linux/status/v1/", keys.agent_prefix())
}

/// The JSON value published for one status.
pub fn status_value(config_key: &str, status: &ItemStatus) -> String {
    serde_json::json!({
        "key": config_key,
        "state": status.state(),
        "detail": status.detail(),
    })
    .to_string()
}

enum Message {
    /// Publish (`Some`) or remove (`None`) one item's status.
    Set(ItemKind, String, Option<ItemStatus>),
    /// Remove every published status of this kind whose item is not in the set.
    Retain(ItemKind, BTreeSet<String>),
}

/// Handle to the background status writer.
#[derive(Clone)]
pub struct StatusPublisher {
    tx: mpsc::UnboundedSender<Message>,
}

impl StatusPublisher {
    /// Starts the writer task for the agent of `keys`. It connects with
    /// [`crate::store::connect`], so it fails over to another member like the watcher.
    pub fn spawn(etcd: EtcdSettings, keys: KeyTree) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(writer(etcd, keys, rx));
        StatusPublisher { tx }
    }

    /// Publishes the status of one item (`None` removes it).
    pub fn set(&self, kind: ItemKind, name: &str, status: Option<ItemStatus>) {
        let _ = self.tx.send(Message::Set(kind, name.to_string(), status));
    }

    /// Removes published statuses of items that are no longer configured.
    pub fn retain(&self, kind: ItemKind, names: BTreeSet<String>) {
        let _ = self.tx.send(Message::Retain(kind, names));
    }
}

async fn writer(etcd: EtcdSettings, keys: KeyTree, mut rx: mpsc::UnboundedReceiver<Message>) {
    let mut client: Option<Client> = None;
    let mut pending: BTreeMap<(ItemKind, String), Option<ItemStatus>> = BTreeMap::new();
    let mut retain: Vec<(ItemKind, BTreeSet<String>)> = Vec::new();
    let mut delay = Duration::from_millis(100);
    loop {
        if pending.is_empty() && retain.is_empty() {
            match rx.recv().await {
                Some(m) => fold(m, &mut pending, &mut retain),
                None => return,
            }
        }
        while let Ok(m) = rx.try_recv() {
            fold(m, &mut pending, &mut retain);
        }
        if client.is_none() {
            match crate::store::connect(&etcd).await {
                Ok(c) => client = Some(c.client),
                Err(e) => tracing::debug!("status not published yet: {e:#}"),
            }
        }
        let result = match client.as_mut() {
            Some(c) => flush(c, &keys, &mut pending, &mut retain).await,
            None => Err(anyhow::anyhow!("not connected to etcd")),
        };
        match result {
            Ok(()) => delay = Duration::from_millis(100),
            Err(e) => {
                tracing::debug!("status not published yet: {e:#}");
                client = None;
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

fn fold(
    m: Message,
    pending: &mut BTreeMap<(ItemKind, String), Option<ItemStatus>>,
    retain: &mut Vec<(ItemKind, BTreeSet<String>)>,
) {
    match m {
        Message::Set(kind, name, status) => {
            pending.insert((kind, name), status);
        }
        Message::Retain(kind, names) => retain.push((kind, names)),
    }
}

async fn flush(
    client: &mut Client,
    keys: &KeyTree,
    pending: &mut BTreeMap<(ItemKind, String), Option<ItemStatus>>,
    retain: &mut Vec<(ItemKind, BTreeSet<String>)>,
) -> anyhow::Result<()> {
    while let Some((kind, names)) = retain.first() {
        let prefix = format!("{}linux/status/v1/{}/", keys.agent_prefix(), kind.segment());
        let existing = client
            .get(
                prefix.as_str(),
                Some(GetOptions::new().with_prefix().with_keys_only()),
            )
            .await?;
        for kv in existing.kvs() {
            let name = kv
                .key_str()?
                .trim_start_matches(prefix.as_str())
                .to_string();
            if !names.contains(&name) {
                pending.entry((*kind, name)).or_insert(None);
            }
        }
        retain.remove(0);
    }
    while !pending.is_empty() {
        let batch: Vec<_> = pending.keys().take(OPS_PER_TXN).cloned().collect();
        let ops: Vec<TxnOp> = batch
            .iter()
            .map(|(kind, name)| {
                let key = status_key(keys, *kind, name);
                match &pending[&(*kind, name.clone())] {
                    Some(s) => TxnOp::put(key, status_value(&keys.key(*kind, name), s), None),
                    None => TxnOp::delete(key, None::<DeleteOptions>),
                }
            })
            .collect();
        client.txn(Txn::new().and_then(ops)).await?;
        for k in batch {
            pending.remove(&k);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values() {
        let t = KeyTree::new("vpp1");
        assert_eq!(
            status_key(&t, ItemKind::Interface, "veth1"),
            "/vnf-agent/vpp1/linux/status/v1/interface/veth1"
        );
        let v: serde_json::Value = serde_json::from_str(&status_value(
            "/k",
            &ItemStatus::Pending {
                reason: "peer interface `veth2` is not configured".into(),
            },
        ))
        .unwrap();
        assert_eq!(v["state"], "pending");
        assert_eq!(v["detail"], "peer interface `veth2` is not configured");
        assert_eq!(v["key"], "/k");
    }
}
