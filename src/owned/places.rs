//! The record of the namespaces the agent has put things into.
//!
//! A namespace is recorded before the agent's first write there (the agent waits for etcd's
//! answer, briefly) and removed once the scheduler has let go of it with nothing of the
//! agent's left inside. At start the record is read back, so that namespaces no configuration
//! mentions any more are still read and cleaned (a pair or route whose keys were deleted
//! while the agent was stopped).

use super::owned_prefix;
use crate::backoff::Retry;
use crate::keys::KeyTree;
use crate::model::{decode_namespace, NamespaceRef};
use crate::store::EtcdSettings;
use anyhow::Context;
use etcd_client::{Client, DeleteOptions, GetOptions, Txn, TxnOp};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Longest wait for etcd before a write goes ahead unrecorded (the record is written later).
const RECORD_TIMEOUT: Duration = Duration::from_secs(2);
/// etcd's default limit of operations in one transaction is 128.
const OPS_PER_TXN: usize = 100;

/// `/vnf-agent/<label>/linux/owned/v1/namespace/`.
pub fn places_prefix(keys: &KeyTree) -> String {
    format!("{}namespace/", owned_prefix(keys))
}

/// The record key of a reference: `named/<name>`, `pid/<pid>`, `file<path>` or
/// `microservice/<label>` under [`places_prefix`].
pub fn place_key(keys: &KeyTree, reference: &NamespaceRef) -> String {
    let segment = match reference {
        NamespaceRef::Default => "default".to_string(),
        NamespaceRef::Pid(pid) => format!("pid/{pid}"),
        NamespaceRef::Microservice(label) => format!("microservice/{label}"),
        NamespaceRef::Named(name) => format!("named/{name}"),
        NamespaceRef::File(path) => format!("file{}", path.display()),
    };
    format!("{}{segment}", places_prefix(keys))
}

/// The value recorded for a reference: `{"namespace": {...}}`.
pub fn place_value(reference: &NamespaceRef) -> String {
    serde_json::json!({ "namespace": reference.to_canonical_json() }).to_string()
}

enum Message {
    /// Read the record (answered once).
    Load(oneshot::Sender<anyhow::Result<Vec<NamespaceRef>>>),
    /// Record these references; answered when etcd has them.
    Record(Vec<NamespaceRef>, oneshot::Sender<()>),
    /// Remove these references from the record.
    Forget(Vec<NamespaceRef>),
}

/// Handle to the background task that keeps the record in etcd.
#[derive(Clone)]
pub struct Places {
    tx: mpsc::UnboundedSender<Message>,
}

impl Places {
    /// Starts the task for the agent of `keys`.
    pub fn spawn(etcd: EtcdSettings, keys: KeyTree) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(keeper(etcd, keys, rx));
        Places { tx }
    }

    /// The recorded references.
    pub async fn load(&self) -> anyhow::Result<Vec<NamespaceRef>> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Message::Load(tx))
            .map_err(|_| anyhow::anyhow!("the namespace record task stopped"))?;
        rx.await
            .map_err(|_| anyhow::anyhow!("the namespace record task stopped"))?
    }

    /// Records `refs` and waits until etcd has them, or [`RECORD_TIMEOUT`] at most (then
    /// they are written as soon as etcd answers again); false after a timeout.
    pub async fn record(&self, refs: Vec<NamespaceRef>) -> bool {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Message::Record(refs, tx)).is_err() {
            return false;
        }
        matches!(tokio::time::timeout(RECORD_TIMEOUT, rx).await, Ok(Ok(())))
    }

    /// Removes `refs` from the record (in the background).
    pub fn forget(&self, refs: Vec<NamespaceRef>) {
        let _ = self.tx.send(Message::Forget(refs));
    }
}

async fn keeper(etcd: EtcdSettings, keys: KeyTree, mut rx: mpsc::UnboundedReceiver<Message>) {
    let mut client: Option<Client> = None;
    // Writes not yet in etcd: reference -> recorded (true) or removed (false).
    let mut pending: BTreeMap<NamespaceRef, bool> = BTreeMap::new();
    let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
    let mut loads: Vec<oneshot::Sender<anyhow::Result<Vec<NamespaceRef>>>> = Vec::new();
    let mut retry = Retry::new(Duration::from_millis(100), Duration::from_secs(5));
    loop {
        if pending.is_empty() && loads.is_empty() {
            match rx.recv().await {
                Some(m) => fold(m, &mut pending, &mut waiting, &mut loads),
                None => return,
            }
        }
        while let Ok(m) = rx.try_recv() {
            fold(m, &mut pending, &mut waiting, &mut loads);
        }
        if client.is_none() {
            client = crate::store::connect(&etcd).await.ok().map(|c| c.client);
        }
        let result = match client.as_mut() {
            Some(c) => serve(c, &keys, &mut pending, &mut loads).await,
            None => Err(anyhow::anyhow!("cannot connect to etcd")),
        };
        match result {
            Ok(()) => {
                retry.reset();
                for w in waiting.drain(..) {
                    let _ = w.send(());
                }
            }
            Err(e) => {
                tracing::debug!("namespace record not written yet: {e:#}");
                client = None;
                tokio::time::sleep(retry.failed()).await;
            }
        }
    }
}

fn fold(
    m: Message,
    pending: &mut BTreeMap<NamespaceRef, bool>,
    waiting: &mut Vec<oneshot::Sender<()>>,
    loads: &mut Vec<oneshot::Sender<anyhow::Result<Vec<NamespaceRef>>>>,
) {
    match m {
        Message::Load(tx) => loads.push(tx),
        Message::Record(refs, tx) => {
            pending.extend(refs.into_iter().map(|r| (r, true)));
            waiting.push(tx);
        }
        Message::Forget(refs) => pending.extend(refs.into_iter().map(|r| (r, false))),
    }
}

async fn serve(
    client: &mut Client,
    keys: &KeyTree,
    pending: &mut BTreeMap<NamespaceRef, bool>,
    loads: &mut Vec<oneshot::Sender<anyhow::Result<Vec<NamespaceRef>>>>,
) -> anyhow::Result<()> {
    if !loads.is_empty() {
        let recorded = read(client, keys).await?;
        for tx in loads.drain(..) {
            let _ = tx.send(Ok(recorded.clone()));
        }
    }
    while !pending.is_empty() {
        let batch: Vec<(NamespaceRef, bool)> = pending
            .iter()
            .take(OPS_PER_TXN)
            .map(|(r, on)| (r.clone(), *on))
            .collect();
        let ops: Vec<TxnOp> = batch
            .iter()
            .map(|(r, on)| match on {
                true => TxnOp::put(place_key(keys, r), place_value(r), None),
                false => TxnOp::delete(place_key(keys, r), None::<DeleteOptions>),
            })
            .collect();
        client.txn(Txn::new().and_then(ops)).await?;
        for (r, _) in batch {
            pending.remove(&r);
        }
    }
    Ok(())
}

/// Every recorded reference; an unreadable record is logged and skipped.
async fn read(client: &mut Client, keys: &KeyTree) -> anyhow::Result<Vec<NamespaceRef>> {
    let prefix = places_prefix(keys);
    let resp = client
        .get(prefix.as_str(), Some(GetOptions::new().with_prefix()))
        .await
        .with_context(|| format!("cannot read {prefix}"))?;
    let mut refs = Vec::new();
    for kv in resp.kvs() {
        let key = String::from_utf8_lossy(kv.key());
        match decode_namespace(&key, kv.value()) {
            Ok(NamespaceRef::Default) => {}
            Ok(r) => refs.push(r),
            Err(e) => tracing::warn!("ignoring an unreadable namespace record: {e}"),
        }
    }
    Ok(refs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_round_trip() {
        let keys = KeyTree::new("vpp1");
        for (r, key) in [
            (
                NamespaceRef::Named("ns1".into()),
                "/vnf-agent/vpp1/linux/owned/v1/namespace/named/ns1",
            ),
            (
                NamespaceRef::Pid(42),
                "/vnf-agent/vpp1/linux/owned/v1/namespace/pid/42",
            ),
            (
                NamespaceRef::File("/run/netns/x".into()),
                "/vnf-agent/vpp1/linux/owned/v1/namespace/file/run/netns/x",
            ),
            (
                NamespaceRef::Microservice("web".into()),
                "/vnf-agent/vpp1/linux/owned/v1/namespace/microservice/web",
            ),
        ] {
            assert_eq!(place_key(&keys, &r), key);
            assert_eq!(decode_namespace(key, place_value(&r).as_bytes()), Ok(r));
        }
    }
}
