//! The canonical JSON form of a decoded value.
use super::decode::{INTERFACE_TYPES, NAMESPACE_TYPES};
use super::{Interface, InterfaceType, NamespaceRef};
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
        if self.if_type == InterfaceType::AutoTap {
            out.insert("type".into(), json!(INTERFACE_TYPES[1]));
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
        if !self.veth_peer.is_empty() {
            out.insert("veth".into(), json!({ "peer_if_name": self.veth_peer }));
        }
        if !self.tap_temp_if_name.is_empty() {
            out.insert(
                "tap".into(),
                json!({ "temp_if_name": self.tap_temp_if_name }),
            );
        }
        Value::Object(out)
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
