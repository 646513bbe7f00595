//! The canonical JSON form of a decoded value.
use super::arp::NEIGHBOUR_STATES;
use super::decode::NAMESPACE_TYPES;
use super::route::SCOPE_TYPES;
use super::{ArpEntry, Interface, NamespaceRef, NeighbourState, Route};
use serde_json::{json, Map, Value};

impl Interface {
    /// The value as canonical JSON: snake_case field names, enums by name, zero values
    /// omitted (a non-default namespace always names its `type`). Decoding it under the
    /// interface's key gives the same [`Interface`] back.
    pub fn to_canonical_json(&self) -> Value {
        let mut out = Map::new();
        out.insert("name".into(), json!(self.name));
        if !self.description.is_empty() {
            out.insert("description".into(), json!(self.description));
        }
        if self.enabled {
            out.insert("enabled".into(), json!(true));
        }
        if !self.ip_addresses.is_empty() {
            let ips: Vec<String> = self.ip_addresses.iter().map(|n| n.to_string()).collect();
            out.insert("ip_addresses".into(), json!(ips));
        }
        if let Some(mac) = self.phys_address {
            out.insert("phys_address".into(), json!(mac.to_string()));
        }
        if self.mtu != 0 {
            out.insert("mtu".into(), json!(self.mtu));
        }
        if !self.host_if_name.is_empty() {
            out.insert("host_if_name".into(), json!(self.host_if_name));
        }
        if let Some(ns) = namespace_json(&self.namespace) {
            out.insert("namespace".into(), ns);
        }
        if !self.vrf_master_interface.is_empty() {
            out.insert(
                "vrf_master_interface".into(),
                json!(self.vrf_master_interface),
            );
        }
        self.link.encode(&mut out);
        Value::Object(out)
    }
}

impl Route {
    /// The value as canonical JSON: snake_case field names, enums by name, zero values
    /// omitted. A `default` route has no `dst_ip_addr` (it follows from the gateway); any
    /// other route gives its resolved destination (host bits cleared). A `scope` that is set
    /// is always written, GLOBAL included (absent and GLOBAL differ). Decoding it under the
    /// route's key gives the same [`Route`] back.
    pub fn to_canonical_json(&self) -> Value {
        let mut out = Map::new();
        out.insert("name".into(), json!(self.name));
        if self.default {
            out.insert("default".into(), json!(true));
        }
        if let Some(ns) = namespace_json(&self.namespace) {
            out.insert("namespace".into(), ns);
        }
        if !self.interface.is_empty() {
            out.insert("interface".into(), json!(self.interface));
        }
        if !self.description.is_empty() {
            out.insert("description".into(), json!(self.description));
        }
        if let Some(scope) = self.scope {
            out.insert(
                "scope".into(),
                json!({ "type": SCOPE_TYPES[scope as usize] }),
            );
        }
        if !self.default {
            out.insert("dst_ip_addr".into(), json!(self.dst.to_string()));
        }
        if let Some(src) = self.src {
            out.insert("src_ip_addr".into(), json!(src.to_string()));
        }
        if let Some(gw) = self.gateway {
            out.insert("gw_addr".into(), json!(gw.to_string()));
        }
        if self.metric != 0 {
            out.insert("metric".into(), json!(self.metric));
        }
        if self.table != 0 {
            out.insert("table".into(), json!(self.table));
        }
        Value::Object(out)
    }
}

impl ArpEntry {
    /// The value as canonical JSON: snake_case field names, enums by name, zero values
    /// omitted (so no `state` for PERMANENT), MAC in lower case, no `ip_family` (it follows
    /// from `ip_addr`). Decoding it under the entry's key gives the same [`ArpEntry`] back.
    pub fn to_canonical_json(&self) -> Value {
        let mut out = Map::new();
        out.insert("name".into(), json!(self.name));
        if let Some(ns) = namespace_json(&self.namespace) {
            out.insert("namespace".into(), ns);
        }
        out.insert("interface".into(), json!(self.interface));
        if self.state != NeighbourState::Permanent {
            out.insert(
                "state".into(),
                json!({ "type": NEIGHBOUR_STATES[self.state as usize] }),
            );
        }
        out.insert("ip_addr".into(), json!(self.ip.to_string()));
        out.insert("hw_address".into(), json!(self.mac.to_string()));
        Value::Object(out)
    }
}

impl NamespaceRef {
    /// The canonical JSON of the reference, `{}` for the default namespace (decoded back by
    /// [`super::decode_namespace`]).
    pub fn to_canonical_json(&self) -> Value {
        namespace_json(self).unwrap_or_else(|| Value::Object(Map::new()))
    }
}

/// `None` for the default namespace (omitted as a zero value).
fn namespace_json(ns: &NamespaceRef) -> Option<Value> {
    let (ty, field, value) = match ns {
        NamespaceRef::Default => return None,
        NamespaceRef::Pid(pid) => (0, "pid", json!(pid)),
        NamespaceRef::Microservice(label) => (1, "microservice", json!(label)),
        NamespaceRef::Named(name) => (2, "name", json!(name)),
        NamespaceRef::File(path) => (3, "filepath", json!(path.to_string_lossy())),
    };
    let mut out = Map::new();
    out.insert("type".into(), json!(NAMESPACE_TYPES[ty]));
    out.insert(field.into(), value);
    Some(Value::Object(out))
}
