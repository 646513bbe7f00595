//! The JSON Schemas, the example configurations and the decoders agree, for every kind.

use nsagent::keys::{ItemKind, KeyTree};
use nsagent::model::{decode_value, ArpEntry, ConfigItem, Interface, ModelError, Route};
use serde_json::{json, Value};
use std::fs;
use std::path::{Path, PathBuf};

const KINDS: [ItemKind; 3] = [ItemKind::Interface, ItemKind::Route, ItemKind::Arp];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn tree() -> KeyTree {
    KeyTree::new("vpp1")
}

/// `schemas/<kind>.schema.json`.
fn schema(kind: ItemKind) -> Value {
    let path = root().join(format!("schemas/{kind}.schema.json"));
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn validator(kind: ItemKind) -> jsonschema::Validator {
    jsonschema::draft202012::new(&schema(kind)).unwrap()
}

/// Schema errors of `value`, one line each; empty when valid.
fn schema_errors(validator: &jsonschema::Validator, value: &Value) -> Vec<String> {
    validator
        .iter_errors(value)
        .map(|e| format!("{}: {e}", e.instance_path))
        .collect()
}

/// Decodes `value` as `kind` under the key its `name` field names (or a fixed name).
fn decode(kind: ItemKind, value: &Value) -> Result<ConfigItem, ModelError> {
    let name = value.get("name").and_then(Value::as_str).unwrap_or("x1");
    let key = tree().key(kind, name);
    decode_value(kind, &key, value.to_string().as_bytes())
}

/// Asserts that the schema and the decoder accept `value`, and the schema its canonical form.
fn assert_both_accept(kind: ItemKind, validator: &jsonschema::Validator, value: &Value) {
    let errors = schema_errors(validator, value);
    assert!(
        errors.is_empty(),
        "{kind} schema rejects {value}: {errors:#?}"
    );
    let item =
        decode(kind, value).unwrap_or_else(|e| panic!("{kind} decoder rejects {value}: {e}"));
    let canonical = item.to_canonical_json();
    let errors = schema_errors(validator, &canonical);
    assert!(
        errors.is_empty(),
        "{kind} schema rejects canonical {canonical}: {errors:#?}"
    );
}

/// Asserts that the schema and the decoder both reject `value`.
fn assert_both_reject(kind: ItemKind, validator: &jsonschema::Validator, value: &Value) {
    assert!(
        !validator.is_valid(value),
        "{kind} schema accepts invalid {value}"
    );
    assert!(
        decode(kind, value).is_err(),
        "{kind} decoder accepts invalid {value}"
    );
}

/// Every `examples/config/**/*.json`, sorted.
fn example_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "json") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&root().join("examples/config"), &mut files);
    files.sort();
    files
}

/// Kind and full key of an example file `<kind>-<name>.json` (as build.rs reads it).
fn example_key(path: &Path) -> (ItemKind, String) {
    let stem = path.file_stem().unwrap().to_str().unwrap();
    let short = stem
        .split_once('-')
        .map(|(kind, name)| format!("{kind}/{name}"))
        .unwrap_or_default();
    let key = tree().expand(&short);
    let (kind, _) = tree()
        .parse(&key)
        .unwrap_or_else(|| panic!("{}: not named <kind>-<name>.json", path.display()));
    (kind, key)
}

/// Decodes an example file.
fn decode_example(path: &Path) -> ConfigItem {
    let (kind, key) = example_key(path);
    decode_value(kind, &key, &fs::read(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The decoded examples of one directory, by kind.
fn directory_items(dir: &Path) -> (Vec<Interface>, Vec<Route>, Vec<ArpEntry>) {
    let (mut ifaces, mut routes, mut arps) = (Vec::new(), Vec::new(), Vec::new());
    for path in example_files().iter().filter(|p| p.parent() == Some(dir)) {
        match decode_example(path) {
            ConfigItem::Interface(i) => ifaces.push(i),
            ConfigItem::Route(r) => routes.push(r),
            ConfigItem::Arp(a) => arps.push(a),
        }
    }
    (ifaces, routes, arps)
}

fn example_directories() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = example_files()
        .iter()
        .map(|p| p.parent().unwrap().to_path_buf())
        .collect();
    dirs.dedup();
    dirs
}

#[test]
fn schemas_are_valid_draft_2020_12_schemas() {
    for kind in KINDS {
        jsonschema::draft202012::meta::validate(&schema(kind))
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
    }
}

#[test]
fn schemas_share_their_common_definitions() {
    let def = |kind: ItemKind, name: &str| schema(kind)["$defs"][name].clone();
    for (name, kinds) in [
        ("namespace", &KINDS[..]),
        ("ipPrefix", &[ItemKind::Interface, ItemKind::Route][..]),
        ("ipAddress", &[ItemKind::Route, ItemKind::Arp][..]),
        ("interfaceRef", &[ItemKind::Route, ItemKind::Arp][..]),
    ] {
        let first = def(kinds[0], name);
        assert!(first.is_object(), "{} has no $defs.{name}", kinds[0]);
        for &kind in &kinds[1..] {
            assert_eq!(
                def(kind, name),
                first,
                "$defs.{name} of {kind} and {}",
                kinds[0]
            );
        }
    }
}

#[test]
fn examples_match_the_schema_and_decode() {
    let files = example_files();
    for kind in KINDS {
        let validator = validator(kind);
        let of_kind: Vec<&PathBuf> = files.iter().filter(|p| example_key(p).0 == kind).collect();
        assert!(of_kind.len() >= 2, "too few {kind} examples: {files:?}");
        for path in of_kind {
            let value: Value = serde_json::from_slice(&fs::read(path).unwrap()).unwrap();
            let errors = schema_errors(&validator, &value);
            assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
            let canonical = decode_example(path).to_canonical_json();
            let errors = schema_errors(&validator, &canonical);
            assert!(
                errors.is_empty(),
                "{} canonical {canonical}: {errors:#?}",
                path.display()
            );
        }
    }
}

#[test]
fn example_directories_have_a_readme_and_complete_pairs() {
    for dir in example_directories() {
        let readme = fs::read_to_string(dir.join("README")).unwrap();
        assert_eq!(readme.trim().lines().count(), 1, "{}/README", dir.display());
        let (ifaces, _, _) = directory_items(&dir);
        for i in ifaces.iter().filter(|i| !i.veth_peer().is_empty()) {
            let peer = ifaces.iter().find(|p| p.name == i.veth_peer());
            assert!(
                peer.is_some_and(|p| p.veth_peer() == i.name),
                "{}: {} and its peer {} do not name each other",
                dir.display(),
                i.name,
                i.veth_peer()
            );
        }
    }
}

/// Routes and ARP entries of an example use an interface of the same example, in the same
/// namespace; gateways and neighbours are inside that interface's subnets, a source is one
/// of its addresses, and a neighbour that is another interface of the example has its MAC.
#[test]
fn example_routes_and_arp_entries_fit_their_interfaces() {
    for dir in example_directories() {
        let (ifaces, routes, arps) = directory_items(&dir);
        let on = |what: &str, name: &str| {
            ifaces.iter().find(|i| i.name == name).unwrap_or_else(|| {
                panic!("{}: {what} uses unknown interface {name:?}", dir.display())
            })
        };
        let in_subnet = |iface: &Interface, ip: std::net::IpAddr| {
            iface
                .ip_addresses
                .iter()
                .any(|n| n.contains(&ip) && n.addr() != ip)
        };
        for r in &routes {
            let what = format!("route {}", r.name);
            let iface = on(&what, &r.interface);
            assert_eq!(r.namespace, iface.namespace, "{}: {what}", dir.display());
            if let Some(gw) = r.gateway {
                assert!(
                    in_subnet(iface, gw),
                    "{}: {what}: gateway {gw} is off-link",
                    dir.display()
                );
            }
            if let Some(src) = r.src {
                assert!(
                    iface.ip_addresses.iter().any(|n| n.addr() == src),
                    "{}: {what}: source {src} is not an address of {}",
                    dir.display(),
                    iface.name
                );
            }
        }
        for a in &arps {
            let what = format!("ARP entry {}", a.name);
            let iface = on(&what, &a.interface);
            assert_eq!(a.namespace, iface.namespace, "{}: {what}", dir.display());
            assert!(
                in_subnet(iface, a.ip),
                "{}: {what}: {} is off-link",
                dir.display(),
                a.ip
            );
            if let Some(owner) = ifaces
                .iter()
                .find(|i| i.ip_addresses.iter().any(|n| n.addr() == a.ip))
            {
                assert_eq!(
                    Some(a.mac),
                    owner.phys_address,
                    "{}: {what}: MAC of {}",
                    dir.display(),
                    owner.name
                );
            }
        }
    }
}

#[test]
fn the_interface_schema_and_the_decoder_accept_the_same_edge_cases() {
    let validator = validator(ItemKind::Interface);
    let valid = [
        json!({"name": "veth1", "veth": {"peer_if_name": "veth2"}}),
        json!({"name": "veth1", "type": 0, "veth": {"peer_if_name": "veth2"}}),
        json!({"name": "tap1", "type": 1}),
        json!({"name": "tap1", "type": "AUTO_TAP", "tap": {"temp_if_name": ""}, "veth": {}}),
        json!({"name": "veth1", "veth": {"peer_if_name": "veth2"}, "namespace": {}}),
        json!({"name": "veth1", "veth": {"peer_if_name": "veth2"}, "namespace": {"type": 0, "pid": 0}}),
        json!({"name": "veth1", "veth": {"peer_if_name": "veth2"}, "namespace": {"pid": 1234}}),
        json!({"name": "veth1", "veth": {"peer_if_name": "veth2"},
            "namespace": {"type": "MICROSERVICE_REF_NS", "microservice": "web"}}),
        json!({"name": "veth1", "veth": {"peer_if_name": "veth2"},
            "namespace": {"type": 3, "filepath": "/proc/1/ns/net", "pid": 0}}),
        json!({"name": "veth1", "veth": {"peer_if_name": "veth2"}, "phys_address": "D2-74-8C-12-67-D2"}),
        json!({"name": "veth1", "veth": {"peer_if_name": "veth2"}, "phys_address": ""}),
        json!({"name": "veth1", "veth": {"peer_if_name": "veth2"}, "mtu": 68}),
        json!({"name": "veth1", "veth": {"peer_if_name": "veth2"}, "mtu": 0}),
        json!({"name": "veth1", "veth": {"peer_if_name": "veth2"},
            "ip_addresses": ["10.0.0.0/8", "::ffff:10.0.0.1/128", "fe80::1/64", "2001:db8::/64"]}),
        json!({"name": "a-long-logical-name", "host_if_name": "fifteen-bytes-x",
            "veth": {"peer_if_name": "veth2"}}),
        json!({"name": "d1", "type": "DUMMY", "vrf_master_interface": "red"}),
        json!({"name": "t1", "type": 2, "tap": {"temp_if_name": ""}}),
        json!({"name": "red", "type": "VRF_DEVICE", "vrf_dev": {"routing_table": 10}}),
        json!({"name": "l1", "type": "LOOPBACK", "ip_addresses": ["127.0.0.2/8", "::1/128"]}),
        json!({"name": "l1", "type": 3, "host_if_name": "lo"}),
        json!({"name": "e1", "type": "EXISTING", "link_only": true, "host_if_name": "eth0"}),
        json!({"name": "t1", "type": "AUTO_TAP", "host_if_name": "linux-tap",
            "tap": {"temp_if_name": "tap0"}, "vrf_master_interface": "red"}),
        json!({"name": "veth1", "veth": {"peer_if_name": "veth2"}, "link_only": false,
            "vrf_dev": {"routing_table": 0}}),
    ];
    for value in valid {
        assert_both_accept(ItemKind::Interface, &validator, &value);
    }
}

#[test]
fn invalid_interfaces_are_rejected_by_the_schema_and_the_decoder() {
    let validator = validator(ItemKind::Interface);
    let veth = |patch: Value| {
        let mut v = json!({"name": "veth1", "veth": {"peer_if_name": "veth2"}});
        for (k, x) in patch.as_object().unwrap() {
            v[k] = x.clone();
        }
        v
    };
    let invalid = [
        json!([]),
        json!({"veth": {"peer_if_name": "veth2"}}),
        json!({"name": "veth1"}),
        json!({"name": "veth1", "veth": {"peer_if_name": ""}}),
        json!({"name": "tap1", "type": 1, "veth": {"peer_if_name": "veth2"}}),
        veth(json!({"tap": {"temp_if_name": "tap0"}})),
        veth(json!({"hostIfNme": "x"})),
        veth(json!({"mtu": "1500"})),
        veth(json!({"mtu": 67})),
        veth(json!({"mtu": 65536})),
        veth(json!({"enabled": "yes"})),
        veth(json!({"type": "veth"})),
        veth(json!({"type": 2})),
        veth(json!({"type": 7})),
        veth(json!({"link_only": true})),
        veth(json!({"vrf_dev": {"routing_table": 5}})),
        veth(json!({"vrf_master_interface": "a/b"})),
        veth(json!({"ip_addresses": ["127.0.0.2/8"]})),
        json!({"name": "red", "type": "VRF_DEVICE"}),
        json!({"name": "red", "type": 5, "vrf_dev": {"routing_table": 254}}),
        json!({"name": "red", "type": 5, "vrf_dev": {"routing_table": 10, "table": 1}}),
        json!({"name": "red", "type": 5, "vrf_dev": {"routing_table": 10},
            "vrf_master_interface": "blue"}),
        json!({"name": "l1", "type": "LOOPBACK", "host_if_name": "lo0"}),
        json!({"name": "d1", "type": "DUMMY", "ip_addresses": ["127.0.0.2/8"]}),
        json!({"name": "d1", "type": "DUMMY", "tap": {"temp_if_name": "x"}}),
        veth(json!({"ip_addresses": ["192.168.1.1"]})),
        veth(json!({"ip_addresses": ["192.168.1.1/33"]})),
        veth(json!({"ip_addresses": ["2001:db8::1/129"]})),
        veth(json!({"ip_addresses": ["10.0.0.1/24", "10.0.0.1/24"]})),
        veth(json!({"phys_address": "d2:74:8c:12:67"})),
        veth(json!({"phys_address": "01:00:5e:00:00:01"})),
        veth(json!({"phys_address": "00:00:00:00:00:00"})),
        veth(json!({"phys_address": "d2:74-8c:12:67:d2"})),
        veth(json!({"host_if_name": "sixteen-bytes-xx"})),
        veth(json!({"host_if_name": "a b"})),
        veth(json!({"host_if_name": "a:b"})),
        veth(json!({"host_if_name": ".."})),
        veth(json!({"host_if_name": "a\tb"})),
        veth(json!({"host_if_name": "a\u{0}b"})),
        veth(json!({"host_if_name": "a/b"})),
        json!({"name": "a-long-logical-name", "veth": {"peer_if_name": "veth2"}}),
        veth(json!({"namespace": {"name": "ns1"}})),
        veth(json!({"namespace": {"type": 2, "name": "ns1", "pid": 5}})),
        veth(json!({"namespace": {"type": 3, "name": "ns1"}})),
        veth(json!({"namespace": {"type": 1}})),
        veth(json!({"namespace": {"type": 1, "microservice": ""}})),
        veth(json!({"namespace": {"type": 4}})),
        veth(json!({"namespace": {"type": "named_ns", "name": "ns1"}})),
        veth(json!({"namespace": {"type": 2, "name": "a/b"}})),
        veth(json!({"namespace": {"type": 2, "name": "."}})),
        veth(json!({"namespace": {"type": 3, "filepath": "proc/1/ns/net"}})),
        veth(json!({"namespace": {"type": 2, "nmae": "ns1"}})),
        veth(json!({"namespace": {"pid": -1}})),
        veth(json!({"namespace": {"type": 2, "name": ""}})),
        veth(json!({"namespace": {"type": "NAMED_NS"}})),
        veth(json!({"namespace": {"type": 3, "filepath": ""}})),
        veth(json!({"ip_addresses": ["0.0.0.0/0"]})),
        veth(json!({"ip_addresses": ["::/0"]})),
        veth(json!({"ip_addresses": ["127.0.0.1/8"]})),
        veth(json!({"ip_addresses": ["::1/128"]})),
        veth(json!({"ip_addresses": ["224.0.0.1/24"]})),
        veth(json!({"ip_addresses": ["ff02::1/64"]})),
        veth(json!({"ip_addresses": ["255.255.255.255/32"]})),
    ];
    for value in invalid {
        assert_both_reject(ItemKind::Interface, &validator, &value);
    }
}

/// A valid route (`10.0.2.0/24 via 192.168.22.2 dev veth1`) with `patch` merged in (null
/// removes a field).
fn route(patch: Value) -> Value {
    merged(
        json!({"name": "route1", "dst_ip_addr": "10.0.2.0/24", "gw_addr": "192.168.22.2",
            "interface": "veth1"}),
        patch,
    )
}

/// A valid ARP entry with `patch` merged in (null removes a field).
fn arp(patch: Value) -> Value {
    merged(
        json!({"name": "arp1", "interface": "veth1", "ip_addr": "192.168.22.9",
            "hw_address": "46:06:18:db:05:3a"}),
        patch,
    )
}

fn merged(mut base: Value, patch: Value) -> Value {
    for (k, x) in patch.as_object().unwrap() {
        if x.is_null() {
            base.as_object_mut().unwrap().remove(k);
        } else {
            base[k] = x.clone();
        }
    }
    base
}

#[test]
fn the_route_schema_and_the_decoder_accept_the_same_edge_cases() {
    let validator = validator(ItemKind::Route);
    let valid = [
        route(json!({})),
        route(json!({"interface": null})),
        route(json!({"interface": ""})),
        route(json!({"gw_addr": null})),
        route(json!({"gw_addr": ""})),
        route(json!({"dst_ip_addr": "10.0.2.1/24"})),
        route(json!({"dst_ip_addr": "0.0.0.0/0", "gw_addr": null})),
        route(json!({"default": false})),
        route(json!({"default": true, "dst_ip_addr": null})),
        route(json!({"default": true, "dst_ip_addr": ""})),
        route(json!({"default": true, "dst_ip_addr": "0.0.0.0/0", "metric": 100})),
        route(json!({"default": true, "dst_ip_addr": "::/0", "gw_addr": "2001:db8::1"})),
        route(json!({"default": true, "dst_ip_addr": null, "gw_addr": "fe80::1"})),
        route(
            json!({"dst_ip_addr": "2001:db8:1::/64", "gw_addr": "2001:db8::1",
            "src_ip_addr": "2001:db8::2"}),
        ),
        route(json!({"src_ip_addr": ""})),
        route(json!({"src_ip_addr": "192.168.22.1"})),
        route(json!({"scope": {}})),
        route(json!({"scope": {"type": "SITE"}})),
        route(json!({"scope": {"type": 0}})),
        route(json!({"scope": {"type": "LINK"}, "gw_addr": null})),
        route(json!({"scope": {"type": 3}, "gw_addr": ""})),
        route(json!({"metric": 0, "table": 0})),
        route(json!({"metric": 4_294_967_295_u32, "table": 254})),
        route(json!({"interface": "lo", "description": "any text"})),
        route(json!({"namespace": {"type": "NAMED_NS", "name": "ns1"}})),
        route(json!({"namespace": {"type": 0, "pid": 0}})),
    ];
    for value in valid {
        assert_both_accept(ItemKind::Route, &validator, &value);
    }
}

#[test]
fn invalid_routes_are_rejected_by_the_schema_and_the_decoder() {
    let validator = validator(ItemKind::Route);
    let invalid = [
        json!([]),
        route(json!({"name": null})),
        route(json!({"name": ""})),
        route(json!({"dst_ip_addr": null})),
        route(json!({"dst_ip_addr": ""})),
        route(json!({"dst_ip_addr": "10.0.2.0"})),
        route(json!({"dst_ip_addr": "10.0.2.0/33"})),
        route(json!({"dst_ip_addr": "10.0.2.256/24"})),
        route(json!({"gw_addr": "192.168.22.0/24"})),
        route(json!({"gw_addr": "gateway"})),
        route(json!({"src_ip_addr": "192.168.22.1/24"})),
        route(json!({"default": true})),
        route(json!({"default": true, "dst_ip_addr": null, "gw_addr": null})),
        route(json!({"default": true, "dst_ip_addr": null, "gw_addr": ""})),
        route(json!({"default": "true"})),
        route(json!({"scope": {"type": "LINK"}})),
        route(json!({"scope": {"type": "HOST"}})),
        route(json!({"scope": {"type": 4}})),
        route(json!({"scope": {"type": "link"}})),
        route(json!({"scope": "LINK"})),
        route(json!({"scope": {"typ": 2}})),
        route(json!({"gw_addr": null, "interface": null})),
        route(json!({"gw_addr": "", "interface": ""})),
        route(json!({"interface": "ns1/veth1"})),
        route(json!({"metric": -1})),
        route(json!({"table": 4_294_967_296_u64})),
        route(json!({"metric": "100"})),
        route(json!({"namespace": {"type": 3, "name": "ns1"}})),
        route(json!({"namespace": {"type": 1}})),
        route(json!({"table": 255})),
        route(json!({"namespace": {"type": 3, "filepath": ""}})),
        route(json!({"namespace": {"type": "NAMED_NS", "name": ""}})),
    ];
    for value in invalid {
        assert_both_reject(ItemKind::Route, &validator, &value);
    }
}

#[test]
fn the_arp_schema_and_the_decoder_accept_the_same_edge_cases() {
    let validator = validator(ItemKind::Arp);
    let valid = [
        arp(json!({})),
        arp(json!({"ip_addr": "2001:db8::9"})),
        arp(json!({"ip_addr": "fe80::1:9", "ip_family": {"family": "IPV6"}})),
        arp(json!({"ip_family": {}})),
        arp(json!({"ip_family": {"family": 0}})),
        arp(json!({"ip_family": {"family": "ALL"}})),
        arp(json!({"ip_family": {"family": 2}, "ip_addr": "2001:db8::9"})),
        arp(json!({"state": {}})),
        arp(json!({"state": {"type": "NOARP"}})),
        arp(json!({"state": {"type": 3}})),
        arp(json!({"hw_address": "46-06-18-DB-05-3A"})),
        arp(json!({"hw_address": "59:6C:45:59:8E:BD"})),
        arp(json!({"hw_address": "ff:ff:ff:ff:ff:ff"})),
        arp(json!({"interface": "lo"})),
        arp(json!({"namespace": {"type": 2, "name": "ns1"}})),
        arp(json!({"namespace": {"type": 0, "pid": 0}})),
    ];
    for value in valid {
        assert_both_accept(ItemKind::Arp, &validator, &value);
    }
}

#[test]
fn invalid_arp_entries_are_rejected_by_the_schema_and_the_decoder() {
    let validator = validator(ItemKind::Arp);
    let invalid = [
        json!("arp1"),
        arp(json!({"name": null})),
        arp(json!({"interface": null})),
        arp(json!({"interface": ""})),
        arp(json!({"interface": "a/b"})),
        arp(json!({"ip_addr": null})),
        arp(json!({"ip_addr": ""})),
        arp(json!({"ip_addr": "192.168.22.9/24"})),
        arp(json!({"ip_addr": "192.168.22.256"})),
        arp(json!({"hw_address": null})),
        arp(json!({"hw_address": ""})),
        arp(json!({"hw_address": "46:06:18:db:05"})),
        arp(json!({"hw_address": "46:06-18:db:05:3a"})),
        arp(json!({"ip_family": {"family": 0}, "ip_addr": "2001:db8::9"})),
        arp(json!({"ip_family": {"family": "IPV6"}})),
        arp(json!({"ip_family": {"family": 3}})),
        arp(json!({"ip_family": {"family": "MPLS"}})),
        arp(json!({"ip_family": {"family": 4}})),
        arp(json!({"ip_family": 1})),
        arp(json!({"state": {"type": 4}})),
        arp(json!({"state": {"type": "permanent"}})),
        arp(json!({"hwAddr": "46:06:18:db:05:3a"})),
        // arp-linux.json of the v1 examples: FILE_REF_NS with a name.
        arp(json!({"hw_address": "59:6C:45:59:8E:BD", "namespace": {"name": "ns1", "type": 3}})),
    ];
    for value in invalid {
        assert_both_reject(ItemKind::Arp, &validator, &value);
    }
}
