//! The dependency graph of the configuration as Graphviz DOT: every configured item, what it
//! waits for (peer, namespace, microservice, interface, gateway) and its state as a colour.
//!
//! [`to_dot`] is pure: the agent (`GET /graph`) and `nsagent-ctl graph` feed it the decoded
//! items and the statuses they know. [`svg`] renders DOT with Graphviz's `dot` when it is
//! installed.

mod svg;

pub use svg::{svg, SvgError};

use crate::keys::ItemKind;
use crate::model::{ConfigItem, NamespaceRef};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// One configured item as the graph shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GraphItem {
    /// Its kind.
    pub kind: ItemKind,
    /// Its name (the key's last segment).
    pub name: String,
    /// The decoded value; `None` when it does not decode (then nothing is known of what it
    /// waits for).
    pub config: Option<ConfigItem>,
    /// The published state (`applied`, `pending`, ...), `None` when there is none yet.
    pub state: Option<String>,
    /// Why it is in that state (empty when applied).
    pub detail: String,
}

/// A node that is not a configured item: something an item waits for.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Requirement {
    /// An interface name that no configured item has.
    MissingInterface(String),
    /// A network namespace (not a microservice's).
    Namespace(NamespaceRef),
    /// The namespace of the container with this microservice label.
    Microservice(String),
    /// A route's gateway in the route's namespace.
    Gateway(NamespaceRef, std::net::IpAddr),
    /// A link the agent does not manage, by host name, in a namespace.
    Link(NamespaceRef, String),
}

impl Requirement {
    fn id(&self) -> String {
        match self {
            Requirement::MissingInterface(name) => format!("interface/{name}"),
            Requirement::Namespace(ns) => format!("namespace:{ns}"),
            Requirement::Microservice(label) => format!("microservice:{label}"),
            Requirement::Gateway(ns, ip) => format!("gateway:{ns}:{ip}"),
            Requirement::Link(ns, name) => format!("link:{ns}:{name}"),
        }
    }

    fn attributes(&self) -> String {
        match self {
            Requirement::MissingInterface(name) => format!(
                "shape=box, style=dashed, label=\"{}\"",
                escape(&format!("interface/{name}\nnot configured"))
            ),
            Requirement::Namespace(ns) => {
                format!("shape=ellipse, label=\"{}\"", escape(&ns.to_string()))
            }
            Requirement::Microservice(label) => format!(
                "shape=hexagon, label=\"{}\"",
                escape(&format!("microservice {label}"))
            ),
            Requirement::Gateway(ns, ip) => format!(
                "shape=diamond, label=\"{}\"",
                escape(&format!("gateway {ip}\nin {ns}"))
            ),
            Requirement::Link(ns, name) => format!(
                "shape=ellipse, style=dotted, label=\"{}\"",
                escape(&format!("link {name} in {ns}\nnot managed by the agent"))
            ),
        }
    }
}

/// The fill colour of an item in `state`.
fn colour(state: Option<&str>) -> &'static str {
    match state {
        Some("applied") => "palegreen",
        Some("applying") => "lightblue",
        Some("pending") => "gold",
        Some("failed") => "salmon",
        Some("invalid") => "plum",
        _ => "white",
    }
}

/// Quotes text for a DOT string (`"` and `\` escaped, line breaks as `\n`).
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

fn item_id(kind: ItemKind, name: &str) -> String {
    format!("{}/{}", kind.segment(), name)
}

/// What `item` waits for, each with the edge label.
fn requirements(
    config: &ConfigItem,
    interfaces: &BTreeSet<&str>,
) -> Vec<(&'static str, Result<String, Requirement>)> {
    let mut out = Vec::new();
    let namespace = match config {
        ConfigItem::Interface(i) => &i.namespace,
        ConfigItem::Route(r) => &r.namespace,
        ConfigItem::Arp(a) => &a.namespace,
    };
    match namespace {
        NamespaceRef::Default => {}
        NamespaceRef::Microservice(label) => out.push((
            "microservice",
            Err(Requirement::Microservice(label.clone())),
        )),
        ns => out.push(("namespace", Err(Requirement::Namespace(ns.clone())))),
    }
    let interface = |name: &str| {
        if interfaces.contains(name) {
            Ok(item_id(ItemKind::Interface, name))
        } else {
            Err(Requirement::Link(namespace.clone(), name.to_string()))
        }
    };
    match config {
        ConfigItem::Interface(i) if !i.veth_peer().is_empty() => {
            let peer = if interfaces.contains(i.veth_peer()) {
                Ok(item_id(ItemKind::Interface, i.veth_peer()))
            } else {
                Err(Requirement::MissingInterface(i.veth_peer().to_string()))
            };
            out.push(("peer", peer));
        }
        ConfigItem::Interface(_) => {}
        ConfigItem::Route(r) => {
            if !r.interface.is_empty() {
                out.push(("interface", interface(&r.interface)));
            }
            if let Some(gw) = r.gateway {
                out.push(("gateway", Err(Requirement::Gateway(namespace.clone(), gw))));
            }
        }
        ConfigItem::Arp(a) => out.push(("interface", interface(&a.interface))),
    }
    out
}

/// The DOT graph of `items`: one box per item, filled by state (applied green, pending gold,
/// failed salmon, invalid plum, no status white) and labelled with the reason; one edge to
/// everything it waits for. Sorted, so the same input gives the same text.
pub fn to_dot(items: &[GraphItem]) -> String {
    let mut items: Vec<&GraphItem> = items.iter().collect();
    items.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
    let interfaces: BTreeSet<&str> = items
        .iter()
        .filter(|i| i.kind == ItemKind::Interface)
        .map(|i| i.name.as_str())
        .collect();
    let mut dot = String::from(
        "digraph nsagent {\n  rankdir=LR;\n  node [fontname=\"Helvetica\", fontsize=10];\n  edge [fontname=\"Helvetica\", fontsize=9];\n",
    );
    let mut edges = Vec::new();
    let mut others: BTreeMap<String, Requirement> = BTreeMap::new();
    for item in &items {
        let id = item_id(item.kind, &item.name);
        let state = item.state.as_deref();
        let mut label = format!("{id}\n{}", state.unwrap_or("no status yet"));
        if !item.detail.is_empty() {
            label.push_str(": ");
            label.push_str(&item.detail);
        }
        let _ = writeln!(
            dot,
            "  \"{}\" [shape=box, style=\"filled,rounded\", fillcolor=\"{}\", label=\"{}\"];",
            escape(&id),
            colour(state),
            escape(&label)
        );
        for (what, target) in item
            .config
            .iter()
            .flat_map(|c| requirements(c, &interfaces))
        {
            let target = match target {
                Ok(id) => id,
                Err(other) => {
                    let target = other.id();
                    others.insert(target.clone(), other);
                    target
                }
            };
            edges.push((id.clone(), target, what));
        }
    }
    for (id, other) in &others {
        let _ = writeln!(dot, "  \"{}\" [{}];", escape(id), other.attributes());
    }
    for (from, to, what) in edges {
        let _ = writeln!(
            dot,
            "  \"{}\" -> \"{}\" [label=\"{what}\"];",
            escape(&from),
            escape(&to)
        );
    }
    dot.push_str("}\n");
    dot
}

#[cfg(test)]
mod tests;
