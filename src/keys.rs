//! The etcd key tree: `/vnf-agent/<label>/linux/config/v1/{interface,arp,route}/<name>`.

use std::fmt;

/// Root of every agent's keys.
pub const ROOT: &str = "/vnf-agent/";

/// `/vnf-agent/<label>/`, the start of a key of an agent's tree, if `key` is in one.
pub fn agent_prefix_of(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(ROOT)?;
    let label = rest.split('/').next().filter(|l| !l.is_empty())?;
    key.get(..ROOT.len() + label.len() + 1)
        .filter(|p| p.ends_with('/'))
}

/// The kinds of configuration an agent watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ItemKind {
    /// `interface/<name>`
    Interface,
    /// `arp/<name>`
    Arp,
    /// `route/<name>`
    Route,
}

impl ItemKind {
    /// The key segment of this kind.
    pub fn segment(self) -> &'static str {
        match self {
            ItemKind::Interface => "interface",
            ItemKind::Arp => "arp",
            ItemKind::Route => "route",
        }
    }

    fn from_segment(s: &str) -> Option<Self> {
        match s {
            "interface" => Some(ItemKind::Interface),
            "arp" => Some(ItemKind::Arp),
            "route" => Some(ItemKind::Route),
            _ => None,
        }
    }
}

impl fmt::Display for ItemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.segment())
    }
}

/// The key layout of one agent (one label).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyTree {
    label: String,
    /// `/vnf-agent/<label>/`, kept because aliases are built and parsed on hot paths.
    agent_prefix: String,
}

impl KeyTree {
    /// Key tree of the agent with this microservice label.
    pub fn new(label: impl Into<String>) -> Self {
        let label = label.into();
        KeyTree {
            agent_prefix: format!("{ROOT}{label}/"),
            label,
        }
    }

    /// The agent's label.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// `/vnf-agent/<label>/`: prefix of everything the agent owns, also of link aliases.
    pub fn agent_prefix(&self) -> String {
        self.agent_prefix.clone()
    }

    /// `/vnf-agent/<label>/linux/config/v1/`: the prefix the agent watches.
    pub fn config_prefix(&self) -> String {
        format!("{ROOT}{}/linux/config/v1/", self.label)
    }

    /// Full key of one item.
    pub fn key(&self, kind: ItemKind, name: &str) -> String {
        format!("{}{}/{}", self.config_prefix(), kind.segment(), name)
    }

    /// Splits a full key under [`Self::config_prefix`] into kind and name. `None` for keys
    /// outside the prefix, of an unknown kind, or with an empty name or a name containing
    /// `/` (a value's `name` is its key's last segment, so `interface/x/veth1` would be
    /// applied as `veth1` but never deleted as `x/veth1`).
    pub fn parse(&self, key: &str) -> Option<(ItemKind, String)> {
        let rest = key.strip_prefix(&self.config_prefix())?;
        let (kind, name) = rest.split_once('/')?;
        let kind = ItemKind::from_segment(kind)?;
        if name.is_empty() || name.contains('/') {
            return None;
        }
        Some((kind, name.to_string()))
    }

    /// Expands a short key (`interface/veth1`) to a full one; full keys (starting with `/`)
    /// are returned as they are.
    pub fn expand(&self, key: &str) -> String {
        if key.starts_with('/') {
            key.to_string()
        } else {
            format!("{}{}", self.config_prefix(), key)
        }
    }

    /// The alias that marks a link as owned by this agent: `/vnf-agent/<label>/<name>/<peer>`
    /// for a VETH end, `/vnf-agent/<label>/<name>` for a single link (`peer` empty).
    pub fn link_alias(&self, name: &str, peer: &str) -> String {
        let mut alias =
            String::with_capacity(self.agent_prefix.len() + name.len() + peer.len() + 1);
        alias.push_str(&self.agent_prefix);
        alias.push_str(name);
        if !peer.is_empty() {
            alias.push('/');
            alias.push_str(peer);
        }
        alias
    }

    /// True when `alias` is exactly the alias [`Self::link_alias`] makes for (name, peer).
    pub fn is_link_alias(&self, alias: &str, name: &str, peer: &str) -> bool {
        self.split_link_alias(alias) == Some((name, peer))
    }

    /// Splits an alias written by [`Self::link_alias`] into (name, peer), without copying;
    /// the peer is "" for a single link.
    pub fn split_link_alias<'a>(&self, alias: &'a str) -> Option<(&'a str, &'a str)> {
        let rest = alias.strip_prefix(self.agent_prefix.as_str())?;
        let (name, peer) = rest.split_once('/').unwrap_or((rest, ""));
        if name.is_empty() || (peer.is_empty() && rest.contains('/')) || peer.contains('/') {
            return None;
        }
        Some((name, peer))
    }

    /// Parses an alias written by [`Self::link_alias`] back into (name, peer).
    pub fn parse_link_alias(&self, alias: &str) -> Option<(String, String)> {
        self.split_link_alias(alias)
            .map(|(n, p)| (n.to_string(), p.to_string()))
    }

    /// The default link group that marks links created by this agent from the moment they
    /// exist (the kernel ignores an alias in a create request but honours the group). Derived
    /// from the label so that agents with different labels do not claim each other's links;
    /// never 0 (the kernel's default group).
    pub fn default_link_group(&self) -> u32 {
        // FNV-1a, 32 bit, over "nsagent/<label>".
        let mut h: u32 = 0x811c_9dc5;
        for b in b"nsagent/".iter().chain(self.label.as_bytes()) {
            h ^= u32::from(*b);
            h = h.wrapping_mul(0x0100_0193);
        }
        // Keep clear of 0, of small groups admins are likely to use by hand, and of the
        // negative numbers `ip` would print for groups above i32::MAX.
        (h & 0x7fff_ffff) | 0x4000_0000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_build_round_trip() {
        let t = KeyTree::new("vpp1");
        let k = t.key(ItemKind::Interface, "veth1");
        assert_eq!(k, "/vnf-agent/vpp1/linux/config/v1/interface/veth1");
        assert_eq!(t.parse(&k), Some((ItemKind::Interface, "veth1".into())));
        assert_eq!(
            t.parse("/vnf-agent/vpp1/linux/config/v1/route/r1"),
            Some((ItemKind::Route, "r1".into()))
        );
        assert_eq!(t.parse("/vnf-agent/vpp1/linux/config/v1/bogus/x"), None);
        assert_eq!(t.parse("/vnf-agent/vpp2/linux/config/v1/interface/x"), None);
        assert_eq!(t.parse("/vnf-agent/vpp1/linux/config/v1/interface/"), None);
    }

    /// Found by `model::tests_fuzz`: a nested name was parsed as `x/veth1` while its value
    /// decoded (and was applied) as `veth1`, so deleting the key removed nothing.
    #[test]
    fn names_with_a_slash_are_not_item_keys() {
        let t = KeyTree::new("vpp1");
        for name in ["x/veth1", "veth1/", "a/b/c"] {
            assert_eq!(t.parse(&t.key(ItemKind::Interface, name)), None, "{name}");
        }
    }

    #[test]
    fn short_keys_expand() {
        let t = KeyTree::new("a");
        assert_eq!(
            t.expand("interface/veth1"),
            "/vnf-agent/a/linux/config/v1/interface/veth1"
        );
        assert_eq!(t.expand("/x/y"), "/x/y");
    }

    #[test]
    fn alias_round_trip_and_groups_differ_per_label() {
        let t = KeyTree::new("vpp1");
        let a = t.link_alias("veth1", "veth2");
        assert_eq!(a, "/vnf-agent/vpp1/veth1/veth2");
        assert_eq!(
            t.parse_link_alias(&a),
            Some(("veth1".into(), "veth2".into()))
        );
        assert_eq!(KeyTree::new("vpp2").parse_link_alias(&a), None);
        assert_ne!(
            KeyTree::new("vpp1").default_link_group(),
            KeyTree::new("vpp2").default_link_group()
        );
        assert_ne!(t.default_link_group(), 0);
    }
}
