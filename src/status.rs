//! Item status and the agent's liveness, published to etcd so that "why is this pending?"
//! and "is the agent running?" have answers outside the log.
//!
//! * `/vnf-agent/<label>/linux/status/v1/<kind>/<name>`:
//!   `{"key": ..., "state": "applied|pending|failed|invalid", "detail": ..., "since": <RFC 3339>}`
//!   (`since`: when the item entered this state).
//! * `/vnf-agent/<label>/check/status/v1/agent` (the key of the Go agent's status check):
//!   `{"state": "INIT|OK", "build_version", "start_time", "last_change", "last_update", "pid",
//!   "hostname"}`.
//!
//! Every key is bound to a lease of the running agent (a TTL of a few seconds, kept alive), so
//! that all of them disappear when the agent dies or stops: stale "applied" statuses never
//! outlive it. After an outage (or an expired lease) a new lease is granted and everything is
//! published again. Writes are coalesced in a background task (latest status per item wins)
//! and batched into transactions, so that publishing never slows the apply loop down.

use crate::backoff::Retry;
use crate::keys::{ItemKind, KeyTree};
use crate::scheduler::ItemStatus;
use crate::store::EtcdSettings;
use etcd_client::{
    Client, DeleteOptions, GetOptions, LeaseKeepAliveStream, LeaseKeeper, PutOptions, Txn, TxnOp,
};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};

/// etcd's default limit of operations in one transaction is 128.
const OPS_PER_TXN: usize = 100;
/// Time to live of the agent's lease: its keys vanish this long after it stopped answering.
pub const LEASE_TTL: Duration = Duration::from_secs(5);
/// How often the lease is kept alive (a third of its TTL, so two misses are survived).
const KEEP_ALIVE_EVERY: Duration = Duration::from_millis(1500);
/// Longest wait for one etcd answer.
const ETCD_TIMEOUT: Duration = Duration::from_secs(3);

/// The key segment after an agent's prefix of its liveness record.
pub const LIVENESS_SUFFIX: &str = "check/status/v1/agent";

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

/// `/vnf-agent/<label>/check/status/v1/agent`: present while the agent runs.
pub fn liveness_key(keys: &KeyTree) -> String {
    format!("{}{LIVENESS_SUFFIX}", keys.agent_prefix())
}

/// `t` as RFC 3339 UTC with seconds (`2026-12-01T04:14:15Z`).
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// How often the agent repaired an item after changes made behind its back, and the last
/// repair in words.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Repairs {
    /// Repairs so far (in this agent's run).
    pub count: u64,
    /// What the last one did.
    pub last: String,
}

/// The JSON value published for one status (with `repairs` and `last_repair` once the item
/// was repaired).
pub fn status_value(
    config_key: &str,
    status: &ItemStatus,
    since: SystemTime,
    repairs: Option<&Repairs>,
) -> String {
    let mut v = serde_json::json!({
        "key": config_key,
        "state": status.state(),
        "detail": status.detail(),
        "since": rfc3339(since),
    });
    if let Some(r) = repairs.filter(|r| r.count > 0) {
        v["repairs"] = r.count.into();
        v["last_repair"] = r.last.clone().into();
    }
    v.to_string()
}

/// One published status and when the item entered its state.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Published {
    status: ItemStatus,
    since: SystemTime,
}

/// The agent's liveness record.
#[derive(Clone, Debug)]
struct Liveness {
    ready: bool,
    start: SystemTime,
    last_change: SystemTime,
    last_update: SystemTime,
}

impl Liveness {
    fn value(&self) -> String {
        let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        serde_json::json!({
            "state": if self.ready { "OK" } else { "INIT" },
            "build_version": env!("CARGO_PKG_VERSION"),
            "start_time": secs(self.start),
            "last_change": secs(self.last_change),
            "last_update": secs(self.last_update),
            "pid": std::process::id(),
            "hostname": nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default(),
        })
        .to_string()
    }
}

enum Message {
    /// Publish (`Some`) or remove (`None`) one item's status.
    Set(ItemKind, String, Option<ItemStatus>),
    /// Remove every published status of this kind whose item is not in the set.
    Retain(ItemKind, BTreeSet<String>),
    /// The kernel matches the configuration (liveness state OK).
    Ready,
    /// An item was repaired (how often, what the last repair did).
    Repaired(ItemKind, String, Repairs),
    /// Revoke the lease (every key vanishes) and stop.
    Shutdown(oneshot::Sender<()>),
}

/// Handle to the background status writer.
#[derive(Clone)]
pub struct StatusPublisher {
    tx: mpsc::UnboundedSender<Message>,
}

impl StatusPublisher {
    /// Starts the writer task for the agent of `keys`; the liveness record is published as
    /// soon as etcd answers. It connects with [`crate::store::connect`], so it fails over to
    /// another member like the watcher.
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

    /// Records a repair of an item, shown with its status.
    pub fn repaired(&self, kind: ItemKind, name: &str, repairs: Repairs) {
        let _ = self
            .tx
            .send(Message::Repaired(kind, name.to_string(), repairs));
    }

    /// Marks the agent as in sync (liveness state `OK`).
    pub fn ready(&self) {
        let _ = self.tx.send(Message::Ready);
    }

    /// Revokes the agent's lease, so that its statuses and liveness record vanish at once,
    /// and waits for it (a few seconds at most).
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Message::Shutdown(tx)).is_ok() {
            let _ = tokio::time::timeout(ETCD_TIMEOUT, rx).await;
        }
    }
}

/// A connection with its lease.
struct Session {
    client: Client,
    lease: i64,
    keeper: LeaseKeeper,
    answers: LeaseKeepAliveStream,
}

/// Everything the writer knows: what is published and what is still to write.
struct State {
    keys: KeyTree,
    current: BTreeMap<(ItemKind, String), Published>,
    repairs: BTreeMap<(ItemKind, String), Repairs>,
    /// Items whose status (or removal) is not in etcd yet.
    dirty: BTreeSet<(ItemKind, String)>,
    retain: Vec<(ItemKind, BTreeSet<String>)>,
    liveness: Liveness,
    liveness_dirty: bool,
}

async fn writer(etcd: EtcdSettings, keys: KeyTree, mut rx: mpsc::UnboundedReceiver<Message>) {
    let mut state = State::new(keys);
    let mut session: Option<Session> = None;
    let mut retry = Retry::new(Duration::from_millis(100), Duration::from_secs(5));
    let mut tick = tokio::time::interval(KEEP_ALIVE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if session.is_none() {
            match open(&etcd, &mut state).await {
                Ok(s) => {
                    session = Some(s);
                    retry.reset();
                }
                Err(e) => tracing::debug!("status not published yet: {e:#}"),
            }
        }
        let wait = async {
            match session.is_some() {
                true => {
                    tick.tick().await;
                }
                false => tokio::time::sleep(retry.current()).await,
            }
        };
        let message = tokio::select! {
            m = rx.recv() => Some(m),
            _ = wait => None,
        };
        let stop = match message {
            None => match session.as_mut() {
                Some(s) => {
                    if let Err(e) = keep_alive(s).await {
                        tracing::warn!(
                            "status lease lost ({e:#}); publishing again under a new one"
                        );
                        session = None;
                    }
                    None
                }
                None => {
                    retry.failed();
                    None
                }
            },
            Some(None) => Some(None),
            Some(Some(m)) => {
                let mut stop = state.fold(m);
                while stop.is_none() {
                    match rx.try_recv() {
                        Ok(m) => stop = state.fold(m),
                        Err(_) => break,
                    }
                }
                stop
            }
        };
        if let Some(done) = stop {
            if let Some(s) = session.as_mut() {
                revoke(s).await;
            }
            if let Some(done) = done {
                let _ = done.send(());
            }
            return;
        }
        if let Some(s) = session.as_mut() {
            if let Err(e) = state.flush(s).await {
                tracing::debug!("status not published yet: {e:#}");
                session = None;
            }
        }
    }
}

/// Connects, grants a lease and publishes everything under it.
async fn open(etcd: &EtcdSettings, state: &mut State) -> anyhow::Result<Session> {
    let mut client = crate::store::connect(etcd).await?.client;
    let ttl = LEASE_TTL.as_secs() as i64;
    let lease = timed(client.lease_grant(ttl, None)).await?.id();
    let (keeper, answers) = timed(client.lease_keep_alive(lease)).await?;
    let mut session = Session {
        client,
        lease,
        keeper,
        answers,
    };
    // Statuses written under an earlier lease are gone or going: write them all again.
    state.dirty.extend(state.current.keys().cloned());
    state.liveness_dirty = true;
    state.flush(&mut session).await?;
    Ok(session)
}

/// Renews the lease; an error when etcd does not answer or the lease expired meanwhile.
async fn keep_alive(s: &mut Session) -> anyhow::Result<()> {
    timed(s.keeper.keep_alive()).await?;
    let answer = tokio::time::timeout(ETCD_TIMEOUT, s.answers.message())
        .await
        .map_err(|_| anyhow::anyhow!("no keep-alive answer within {ETCD_TIMEOUT:?}"))??;
    match answer {
        Some(a) if a.ttl() > 0 => Ok(()),
        Some(_) => Err(anyhow::anyhow!("lease {} expired", s.lease)),
        None => Err(anyhow::anyhow!("keep-alive stream closed")),
    }
}

/// Revokes the lease: every key bound to it is deleted at once.
async fn revoke(s: &mut Session) {
    if let Err(e) = timed(s.client.lease_revoke(s.lease)).await {
        tracing::debug!("cannot revoke the status lease: {e:#}");
    }
}

async fn timed<T>(
    request: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
) -> anyhow::Result<T> {
    tokio::time::timeout(ETCD_TIMEOUT, request)
        .await
        .map_err(|_| anyhow::anyhow!("etcd did not answer within {ETCD_TIMEOUT:?}"))?
        .map_err(anyhow::Error::from)
}

impl State {
    fn new(keys: KeyTree) -> Self {
        let now = SystemTime::now();
        State {
            keys,
            current: BTreeMap::new(),
            repairs: BTreeMap::new(),
            dirty: BTreeSet::new(),
            retain: Vec::new(),
            liveness: Liveness {
                ready: false,
                start: now,
                last_change: now,
                last_update: now,
            },
            liveness_dirty: true,
        }
    }

    /// Folds one message in; `Some` when the writer is to stop (with whom to tell).
    fn fold(&mut self, m: Message) -> Option<Option<oneshot::Sender<()>>> {
        let now = SystemTime::now();
        match m {
            Message::Set(kind, name, status) => {
                let id = (kind, name);
                match status {
                    Some(status) => {
                        let since = match self.current.get(&id) {
                            Some(p) if p.status.state() == status.state() => p.since,
                            _ => now,
                        };
                        self.current.insert(id.clone(), Published { status, since });
                    }
                    None => {
                        self.current.remove(&id);
                        self.repairs.remove(&id);
                    }
                }
                self.dirty.insert(id);
                self.liveness.last_update = now;
            }
            Message::Retain(kind, names) => {
                // Statuses this writer published itself are dropped here (they would be
                // written again under a new lease otherwise); `flush` removes the others
                // that etcd holds.
                let gone: Vec<_> = self
                    .current
                    .keys()
                    .filter(|(k, name)| *k == kind && !names.contains(name))
                    .cloned()
                    .collect();
                for id in gone {
                    self.current.remove(&id);
                    self.repairs.remove(&id);
                    self.dirty.insert(id);
                }
                self.retain.push((kind, names));
            }
            Message::Repaired(kind, name, repairs) => {
                let id = (kind, name);
                self.repairs.insert(id.clone(), repairs);
                self.dirty.insert(id);
            }
            Message::Ready => {
                if !self.liveness.ready {
                    self.liveness.ready = true;
                    self.liveness.last_change = now;
                    self.liveness_dirty = true;
                }
            }
            Message::Shutdown(done) => return Some(Some(done)),
        }
        None
    }

    /// Writes what is not in etcd yet.
    async fn flush(&mut self, s: &mut Session) -> anyhow::Result<()> {
        let lease = || Some(PutOptions::new().with_lease(s.lease));
        while let Some((kind, names)) = self.retain.first() {
            let prefix = format!("{}{}/", status_prefix(&self.keys), kind.segment());
            let existing = timed(s.client.get(
                prefix.as_str(),
                Some(GetOptions::new().with_prefix().with_keys_only()),
            ))
            .await?;
            for kv in existing.kvs() {
                let name = kv.key_str()?.trim_start_matches(prefix.as_str());
                if !names.contains(name) && !self.current.contains_key(&(*kind, name.into())) {
                    self.dirty.insert((*kind, name.to_string()));
                }
            }
            self.retain.remove(0);
        }
        if self.liveness_dirty {
            let value = self.liveness.value();
            timed(s.client.put(liveness_key(&self.keys), value, lease())).await?;
            self.liveness_dirty = false;
        }
        while !self.dirty.is_empty() {
            let batch: Vec<(ItemKind, String)> =
                self.dirty.iter().take(OPS_PER_TXN).cloned().collect();
            let ops: Vec<TxnOp> = batch
                .iter()
                .map(|id| {
                    let key = status_key(&self.keys, id.0, &id.1);
                    match self.current.get(id) {
                        Some(p) => {
                            let value = status_value(
                                &self.keys.key(id.0, &id.1),
                                &p.status,
                                p.since,
                                self.repairs.get(id),
                            );
                            TxnOp::put(key, value, lease())
                        }
                        None => TxnOp::delete(key, None::<DeleteOptions>),
                    }
                })
                .collect();
            timed(s.client.txn(Txn::new().and_then(ops))).await?;
            for id in batch {
                self.dirty.remove(&id);
            }
        }
        Ok(())
    }
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
        assert_eq!(liveness_key(&t), "/vnf-agent/vpp1/check/status/v1/agent");
        let since = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let v: serde_json::Value = serde_json::from_str(&status_value(
            "/k",
            &ItemStatus::Pending {
                reason: "peer interface `veth2` is not configured".into(),
            },
            since,
            None,
        ))
        .unwrap();
        assert_eq!(v["state"], "pending");
        assert_eq!(v["detail"], "peer interface `veth2` is not configured");
        assert_eq!(v["key"], "/k");
        assert_eq!(v["since"], "2026-11-18T11:06:40Z");
    }

    /// After a fresh snapshot (etcd compacted the watched revision) the statuses of items
    /// it no longer holds are removed, also those this writer published itself.
    #[test]
    fn retain_drops_published_statuses_of_items_gone() {
        let mut state = State::new(KeyTree::new("a"));
        let set =
            |name: &str| Message::Set(ItemKind::Interface, name.into(), Some(ItemStatus::Applied));
        state.fold(set("kept"));
        state.fold(set("gone"));
        state.fold(Message::Set(
            ItemKind::Route,
            "gone".into(),
            Some(ItemStatus::Applied),
        ));
        state.dirty.clear();
        state.fold(Message::Retain(
            ItemKind::Interface,
            BTreeSet::from(["kept".to_string()]),
        ));
        let ids = |names: &[(ItemKind, &str)]| -> BTreeSet<(ItemKind, String)> {
            names.iter().map(|(k, n)| (*k, n.to_string())).collect()
        };
        assert_eq!(
            state.current.keys().cloned().collect::<BTreeSet<_>>(),
            ids(&[(ItemKind::Interface, "kept"), (ItemKind::Route, "gone")])
        );
        assert_eq!(
            state.dirty,
            ids(&[(ItemKind::Interface, "gone")]),
            "to delete"
        );
    }

    #[test]
    fn since_is_kept_while_the_state_stays() {
        let mut state = State::new(KeyTree::new("a"));
        let pending = |reason: &str| ItemStatus::Pending {
            reason: reason.into(),
        };
        let id = (ItemKind::Interface, "x".to_string());
        state.fold(Message::Set(id.0, id.1.clone(), Some(pending("one"))));
        let first = state.current[&id].since;
        std::thread::sleep(Duration::from_millis(20));
        state.fold(Message::Set(id.0, id.1.clone(), Some(pending("two"))));
        assert_eq!(state.current[&id].since, first, "still pending");
        state.fold(Message::Set(id.0, id.1.clone(), Some(ItemStatus::Applied)));
        assert!(state.current[&id].since > first);
    }
}
