//! What `nsagent-ctl` knows of one agent from etcd: its configuration, the statuses it
//! published, and whether it runs (its liveness record). Built from a read of the agent's
//! tree and kept current from a watch; everything here but [`read`] and [`follow`] is pure.

use crate::api::StatusRecord;
use crate::graph::GraphItem;
use crate::keys::{ItemKind, KeyTree};
use crate::model;
use crate::status::status_prefix;
use etcd_client::{Client, EventType, GetOptions, WatchOptions};
use std::collections::BTreeMap;

/// An item: kind and name.
pub type ItemId = (ItemKind, String);

/// The key of the agent's liveness record (the Go agent's statuscheck key); present while
/// an agent with the label runs.
pub fn liveness_key(tree: &KeyTree) -> String {
    format!("{}check/status/v1/agent", tree.agent_prefix())
}

/// An item that is not applied, for people: `kind/name`, its state and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotApplied {
    /// `kind/name`, or the name asked for when nothing matches it.
    pub what: String,
    /// Its state (`pending`, `failed`, ...; `unknown` without status; `missing` when not
    /// configured).
    pub state: String,
    /// Why.
    pub detail: String,
}

/// The agent's tree as far as `nsagent-ctl` needs it.
#[derive(Clone, Debug)]
pub struct AgentView {
    tree: KeyTree,
    /// Configured values by item.
    pub config: BTreeMap<ItemId, Vec<u8>>,
    /// Published statuses by item.
    pub statuses: BTreeMap<ItemId, StatusRecord>,
    /// The liveness record, while an agent runs.
    pub agent: Option<serde_json::Value>,
}

impl AgentView {
    /// An empty view of the agent of `tree`.
    pub fn new(tree: KeyTree) -> Self {
        AgentView {
            tree,
            config: BTreeMap::new(),
            statuses: BTreeMap::new(),
            agent: None,
        }
    }

    fn status_item(&self, key: &str) -> Option<ItemId> {
        let rest = key.strip_prefix(&status_prefix(&self.tree))?;
        self.tree
            .parse(&format!("{}{rest}", self.tree.config_prefix()))
    }

    /// Takes in a key written under the agent's tree (other keys are ignored).
    pub fn put(&mut self, key: &str, value: &[u8]) {
        if let Some(id) = self.tree.parse(key) {
            self.config.insert(id, value.to_vec());
        } else if let Some(id) = self.status_item(key) {
            self.statuses
                .insert(id.clone(), status_record(&self.tree, &id, value));
        } else if key == liveness_key(&self.tree) {
            self.agent = Some(serde_json::from_slice(value).unwrap_or_default());
        }
    }

    /// Takes in a deleted key.
    pub fn delete(&mut self, key: &str) {
        if let Some(id) = self.tree.parse(key) {
            self.config.remove(&id);
        } else if let Some(id) = self.status_item(key) {
            self.statuses.remove(&id);
        } else if key == liveness_key(&self.tree) {
            self.agent = None;
        }
    }

    /// True while an agent with the label runs (its liveness record exists).
    pub fn agent_running(&self) -> bool {
        self.agent.is_some()
    }

    /// "no agent with label X is running", for when [`Self::agent_running`] is false.
    pub fn not_running(&self) -> String {
        format!(
            "no agent with label {} is running (no {} in etcd)",
            self.tree.label(),
            liveness_key(&self.tree)
        )
    }

    /// The configured items a name means: `kind/name` that one, a bare `name` the items of
    /// any kind with that name.
    pub fn matching(&self, name: &str) -> Vec<ItemId> {
        if let Some(id) = self.tree.parse(&self.tree.expand(name)) {
            return self
                .config
                .contains_key(&id)
                .then_some(id)
                .into_iter()
                .collect();
        }
        self.config
            .keys()
            .filter(|(_, n)| n == name)
            .cloned()
            .collect()
    }

    /// The status of every configured item (state `unknown` for those without one yet).
    pub fn records(&self) -> Vec<StatusRecord> {
        self.config.keys().map(|id| self.record(id)).collect()
    }

    /// The status of one configured item.
    pub fn record(&self, id: &ItemId) -> StatusRecord {
        self.statuses
            .get(id)
            .cloned()
            .unwrap_or_else(|| StatusRecord {
                key: self.tree.key(id.0, &id.1),
                kind: id.0.segment().to_string(),
                name: id.1.clone(),
                state: "unknown".to_string(),
                detail: "the agent has not reported this item yet".to_string(),
                since: None,
            })
    }

    /// What keeps the items `names` mean (every configured item when empty) from being
    /// applied, and how many items that is out of: (not applied, total).
    pub fn not_applied(&self, names: &[String]) -> (Vec<NotApplied>, usize) {
        let mut ids: Vec<ItemId> = Vec::new();
        let mut missing = Vec::new();
        if names.is_empty() {
            ids.extend(self.config.keys().cloned());
        }
        for name in names {
            let found = self.matching(name);
            if found.is_empty() {
                missing.push(NotApplied {
                    what: name.clone(),
                    state: "missing".to_string(),
                    detail: "not configured".to_string(),
                });
            }
            ids.extend(found);
        }
        ids.sort();
        ids.dedup();
        let total = ids.len() + missing.len();
        let mut not = missing;
        for id in ids {
            let r = self.record(&id);
            if r.state != "applied" {
                not.push(NotApplied {
                    what: format!("{}/{}", r.kind, r.name),
                    state: r.state,
                    detail: r.detail,
                });
            }
        }
        (not, total)
    }

    /// Every configured item for the graph, decoded with the agent's rules.
    pub fn graph_items(&self) -> Vec<GraphItem> {
        self.config
            .iter()
            .map(|(id, value)| {
                let key = self.tree.key(id.0, &id.1);
                let status = self.statuses.get(id);
                GraphItem {
                    kind: id.0,
                    name: id.1.clone(),
                    config: model::accept_value(id.0, &key, value).ok(),
                    state: status.map(|s| s.state.clone()),
                    detail: status.map(|s| s.detail.clone()).unwrap_or_default(),
                }
            })
            .collect()
    }
}

/// A published status value as a record (an unreadable one says so in its detail).
fn status_record(tree: &KeyTree, id: &ItemId, value: &[u8]) -> StatusRecord {
    let v: serde_json::Value = serde_json::from_slice(value).unwrap_or_default();
    let text = |field: &str| v[field].as_str().map(str::to_string);
    StatusRecord {
        key: text("key").unwrap_or_else(|| tree.key(id.0, &id.1)),
        kind: id.0.segment().to_string(),
        name: id.1.clone(),
        state: text("state").unwrap_or_else(|| "unknown".to_string()),
        detail: match text("detail") {
            Some(d) => d,
            None if v.is_object() => String::new(),
            None => format!("unreadable status: {}", String::from_utf8_lossy(value)),
        },
        since: text("since"),
    }
}

/// Reads the agent's tree; returns the view and the revision it was read at.
pub async fn read(client: &mut Client, tree: &KeyTree) -> anyhow::Result<(AgentView, i64)> {
    let prefix = tree.agent_prefix();
    let resp = client
        .get(prefix.as_str(), Some(GetOptions::new().with_prefix()))
        .await?;
    let revision = resp.header().map_or(0, |h| h.revision());
    let mut view = AgentView::new(tree.clone());
    for kv in resp.kvs() {
        view.put(&String::from_utf8_lossy(kv.key()), kv.value());
    }
    Ok((view, revision))
}

/// Keeps `view` current from revision `from` on, calling `changed` after every batch of
/// events until it returns true (then returns). Fails when the watch breaks.
pub async fn follow(
    client: &mut Client,
    view: &mut AgentView,
    from: i64,
    mut changed: impl FnMut(&AgentView) -> bool,
) -> anyhow::Result<()> {
    let prefix = view.tree.agent_prefix();
    let options = WatchOptions::new().with_prefix().with_start_revision(from);
    let mut stream = client.watch(prefix.as_str(), Some(options)).await?;
    while let Some(resp) = stream.message().await? {
        if resp.canceled() {
            anyhow::bail!("etcd canceled the watch: {}", resp.cancel_reason());
        }
        for event in resp.events() {
            let Some(kv) = event.kv() else { continue };
            let key = String::from_utf8_lossy(kv.key());
            match event.event_type() {
                EventType::Put => view.put(&key, kv.value()),
                EventType::Delete => view.delete(&key),
            }
        }
        if changed(view) {
            return Ok(());
        }
    }
    anyhow::bail!("the etcd watch ended")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> AgentView {
        let t = KeyTree::new("vpp1");
        let mut v = AgentView::new(t.clone());
        v.put(&t.key(ItemKind::Interface, "a"), b"{}");
        v.put(&t.key(ItemKind::Interface, "b"), b"{}");
        v.put(&t.key(ItemKind::Route, "a"), b"{}");
        let status = |kind: &str, name: &str, state: &str| {
            (
                format!("/vnf-agent/vpp1/linux/status/v1/{kind}/{name}"),
                format!(
                    r#"{{"key": "k", "state": "{state}", "detail": "why {name}", "since": "2024-01-01T00:00:00Z"}}"#
                ),
            )
        };
        for (k, value) in [
            status("interface", "a", "applied"),
            status("interface", "b", "pending"),
        ] {
            v.put(&k, value.as_bytes());
        }
        v
    }

    #[test]
    fn keys_sort_into_config_status_and_liveness() {
        let mut v = view();
        assert!(!v.agent_running());
        assert!(v
            .not_running()
            .contains("no agent with label vpp1 is running"));
        v.put(
            "/vnf-agent/vpp1/check/status/v1/agent",
            br#"{"state": "OK"}"#,
        );
        assert!(v.agent_running());
        v.put("/vnf-agent/vpp2/linux/config/v1/interface/x", b"{}");
        assert_eq!(v.config.len(), 3);
        let b = v.record(&(ItemKind::Interface, "b".into()));
        assert_eq!((b.state.as_str(), b.detail.as_str()), ("pending", "why b"));
        assert_eq!(b.since.as_deref(), Some("2024-01-01T00:00:00Z"));
        let r = v.record(&(ItemKind::Route, "a".into()));
        assert_eq!(r.state, "unknown");
        v.delete("/vnf-agent/vpp1/check/status/v1/agent");
        v.delete("/vnf-agent/vpp1/linux/status/v1/interface/b");
        assert!(!v.agent_running());
        assert_eq!(
            v.record(&(ItemKind::Interface, "b".into())).state,
            "unknown"
        );
    }

    #[test]
    fn names_select_items_and_not_applied_ones_are_listed() {
        let v = view();
        assert_eq!(v.matching("a").len(), 2);
        assert_eq!(v.matching("route/a"), vec![(ItemKind::Route, "a".into())]);
        assert!(v.matching("interface/zz").is_empty());
        let (not, total) = v.not_applied(&[]);
        assert_eq!(total, 3);
        let whats: Vec<_> = not
            .iter()
            .map(|n| (n.what.as_str(), n.state.as_str()))
            .collect();
        assert_eq!(whats, [("interface/b", "pending"), ("route/a", "unknown")]);
        let (not, total) = v.not_applied(&["interface/a".into(), "zz".into()]);
        assert_eq!(total, 2);
        assert_eq!(
            not,
            vec![NotApplied {
                what: "zz".into(),
                state: "missing".into(),
                detail: "not configured".into()
            }]
        );
    }
}
