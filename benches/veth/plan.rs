//! The pairs of one size: their ends, namespaces, addresses and etcd values.

use nsagent::keys::{ItemKind, KeyTree};
use std::collections::HashSet;
use std::net::IpAddr;

use crate::support::Seen;

/// One VETH end.
pub struct End {
    /// Logical name (the etcd key's last segment).
    pub name: String,
    /// Link name in the kernel.
    pub host: String,
    /// Named namespace the end lives in.
    pub ns: String,
    /// Its one address (a /24).
    pub addr: IpAddr,
}

/// N pairs over ceil(N / per-namespace) named namespaces; ends 2i and 2i+1 form pair i,
/// end b of a pair lives in the namespace after end a's.
pub struct Plan {
    /// Start of every namespace and link name of this size.
    pub prefix: String,
    /// The named namespaces.
    pub namespaces: Vec<String>,
    /// Every end.
    pub ends: Vec<End>,
}

impl Plan {
    /// `pairs` pairs with `per_namespace` pairs per namespace (at least one namespace).
    pub fn new(prefix: &str, pairs: usize, per_namespace: usize) -> Plan {
        assert!(pairs <= 250 * 150, "at most 37500 pairs (address space)");
        let count = pairs.div_ceil(per_namespace.max(1)).max(1);
        let namespaces: Vec<String> = (0..count).map(|i| format!("{prefix}n{i}")).collect();
        let mut ends = Vec::with_capacity(2 * pairs);
        for i in 0..pairs {
            let (hi, lo) = ((50 + i / 250) as u8, (i % 250) as u8);
            for (side, ns, host) in [("a", i, 1), ("b", i + 1, 2)] {
                ends.push(End {
                    name: format!("{side}{i}"),
                    host: format!("{prefix}{side}{i}"),
                    ns: namespaces[ns % count].clone(),
                    addr: IpAddr::from([10, hi, lo, host]),
                });
            }
        }
        Plan {
            prefix: prefix.to_string(),
            namespaces,
            ends,
        }
    }

    /// Every pair as (end a, end b).
    pub fn pair_ends(&self) -> impl Iterator<Item = (&End, &End)> {
        self.ends.chunks(2).map(|p| (&p[0], &p[1]))
    }

    /// Every end's address appearing.
    pub fn addresses(&self) -> HashSet<Seen> {
        self.ends.iter().map(|e| Seen::Address(e.addr)).collect()
    }

    /// Every end's address going away.
    pub fn addresses_gone(&self) -> HashSet<Seen> {
        self.ends
            .iter()
            .map(|e| Seen::AddressGone(e.addr))
            .collect()
    }

    /// A put of every end's key, pair by pair.
    pub fn puts(&self, keys: &KeyTree) -> Vec<etcd_client::TxnOp> {
        self.pair_ends()
            .flat_map(|(a, b)| [put(keys, a, &b.name), put(keys, b, &a.name)])
            .collect()
    }
}

/// The put of end `end` whose peer is named `peer`.
pub fn put(keys: &KeyTree, end: &End, peer: &str) -> etcd_client::TxnOp {
    etcd_client::TxnOp::put(
        keys.key(ItemKind::Interface, &end.name),
        end_json(end, peer),
        None,
    )
}

/// The configuration of end `end` whose peer is named `peer`, as JSON.
pub fn end_json(end: &End, peer: &str) -> String {
    serde_json::json!({
        "name": end.name, "host_if_name": end.host, "enabled": true, "mtu": 1500,
        "ip_addresses": [format!("{}/24", end.addr)],
        "namespace": {"type": "NAMED_NS", "name": end.ns},
        "veth": {"peer_if_name": peer},
    })
    .to_string()
}
