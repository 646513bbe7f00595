//! The JSON Schema, the example configurations and the decoder agree.

use nsagent::model::{decode_interface, Interface};
use serde_json::{json, Value};
use std::fs;
use std::path::{Path, PathBuf};

const PREFIX: &str = "/vnf-agent/vpp1/linux/config/v1/interface/";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn schema() -> Value {
    let text = fs::read_to_string(root().join("schemas/interface.schema.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn validator() -> jsonschema::Validator {
    jsonschema::draft202012::new(&schema()).unwrap()
}

/// Schema errors of `value`, one line each; empty when valid.
fn schema_errors(validator: &jsonschema::Validator, value: &Value) -> Vec<String> {
    validator
        .iter_errors(value)
        .map(|e| format!("{}: {e}", e.instance_path))
        .collect()
}

fn decode(value: &Value) -> Result<Interface, nsagent::model::ModelError> {
    let name = value.get("name").and_then(Value::as_str).unwrap_or("veth1");
    decode_interface(&format!("{PREFIX}{name}"), value.to_string().as_bytes())
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

/// The logical name an example file configures: `interface-<name>.json`.
fn example_name(path: &Path) -> String {
    let stem = path.file_stem().unwrap().to_str().unwrap();
    stem.strip_prefix("interface-")
        .unwrap_or_else(|| panic!("{}: not named interface-<name>.json", path.display()))
        .to_string()
}

#[test]
fn schema_is_a_valid_draft_2020_12_schema() {
    jsonschema::draft202012::meta::validate(&schema()).unwrap();
}

#[test]
fn examples_match_the_schema_and_decode() {
    let validator = validator();
    let files = example_files();
    assert!(files.len() >= 4, "examples missing: {files:?}");
    for path in files {
        let bytes = fs::read(&path).unwrap();
        let value: Value = serde_json::from_slice(&bytes).unwrap();
        let errors = schema_errors(&validator, &value);
        assert!(errors.is_empty(), "{}: {errors:#?}", path.display());

        let key = format!("{PREFIX}{}", example_name(&path));
        let iface =
            decode_interface(&key, &bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let canonical = iface.to_canonical_json();
        let errors = schema_errors(&validator, &canonical);
        assert!(
            errors.is_empty(),
            "{} canonical {canonical}: {errors:#?}",
            path.display()
        );
    }
}

#[test]
fn example_directories_have_a_readme_and_complete_pairs() {
    let mut dirs: Vec<PathBuf> = example_files()
        .iter()
        .map(|p| p.parent().unwrap().to_path_buf())
        .collect();
    dirs.dedup();
    for dir in dirs {
        let readme = fs::read_to_string(dir.join("README")).unwrap();
        assert_eq!(readme.trim().lines().count(), 1, "{}/README", dir.display());
        let ifaces: Vec<Interface> = example_files()
            .iter()
            .filter(|p| p.parent() == Some(dir.as_path()))
            .map(|p| {
                let key = format!("{PREFIX}{}", example_name(p));
                decode_interface(&key, &fs::read(p).unwrap()).unwrap()
            })
            .collect();
        for i in ifaces.iter().filter(|i| !i.veth_peer.is_empty()) {
            let peer = ifaces.iter().find(|p| p.name == i.veth_peer);
            assert!(
                peer.is_some_and(|p| p.veth_peer == i.name),
                "{}: {} and its peer {} do not name each other",
                dir.display(),
                i.name,
                i.veth_peer
            );
        }
    }
}

#[test]
fn the_schema_and_the_decoder_accept_the_same_edge_cases() {
    let validator = validator();
    let valid = [
        json!({"name": "veth1", "veth": {"peer_if_name": "veth2"}}),
        json!({"name": "veth1", "type": 0, "veth": {"peer_if_name": "veth2"}}),
        json!({"name": "tap1", "type": 1}),
        json!({"name": "tap1", "type": "AUTO_TAP", "tap": {"temp_if_name": ""}, "veth": {}}),
        json!({"name": "veth1", "veth": {"peer_if_name": "veth2"}, "namespace": {}}),
        json!({"name": "veth1", "veth": {"peer_if_name": "veth2"}, "namespace": {"type": 0, "pid": 0}}),
        json!({"name": "veth1", "veth": {"peer_if_name": "veth2"}, "namespace": {"type": 2, "name": ""}}),
        json!({"name": "veth1", "veth": {"peer_if_name": "veth2"}, "namespace": {"type": 3, "filepath": ""}}),
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
            "ip_addresses": ["0.0.0.0/0", "::/0", "::ffff:10.0.0.1/128", "fe80::1/64"]}),
        json!({"name": "a-long-logical-name", "host_if_name": "fifteen-bytes-x",
            "veth": {"peer_if_name": "veth2"}}),
    ];
    for value in valid {
        let errors = schema_errors(&validator, &value);
        assert!(errors.is_empty(), "schema rejects {value}: {errors:#?}");
        assert!(
            decode(&value).is_ok(),
            "decoder rejects {value}: {:?}",
            decode(&value)
        );
    }
}

#[test]
fn invalid_values_are_rejected_by_the_schema_and_the_decoder() {
    let validator = validator();
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
    ];
    for value in invalid {
        assert!(
            !validator.is_valid(&value),
            "schema accepts invalid {value}"
        );
        assert!(decode(&value).is_err(), "decoder accepts invalid {value}");
    }
}
