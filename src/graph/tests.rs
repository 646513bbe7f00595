use super::*;
use crate::keys::KeyTree;
use serde_json::json;

fn item(kind: ItemKind, value: serde_json::Value, state: Option<&str>, detail: &str) -> GraphItem {
    let name = value["name"].as_str().unwrap().to_string();
    let key = KeyTree::new("vpp1").key(kind, &name);
    let config = crate::model::decode_value(kind, &key, value.to_string().as_bytes()).ok();
    GraphItem {
        kind,
        name,
        config,
        state: state.map(str::to_string),
        detail: detail.to_string(),
    }
}

fn veth(name: &str, peer: &str, ns: serde_json::Value) -> serde_json::Value {
    json!({"name": name, "namespace": ns, "veth": {"peer_if_name": peer}})
}

#[test]
fn a_pair_is_two_coloured_boxes_that_point_at_each_other_and_their_namespaces() {
    let dot = to_dot(&[
        item(
            ItemKind::Interface,
            veth("v2", "v1", json!({"type": "NAMED_NS", "name": "ns2"})),
            Some("applied"),
            "",
        ),
        item(
            ItemKind::Interface,
            veth("v1", "v2", json!({"type": "NAMED_NS", "name": "ns1"})),
            Some("pending"),
            "waiting for \"ns1\"",
        ),
    ]);
    let expected = r#"digraph nsagent {
  rankdir=LR;
  node [fontname="Helvetica", fontsize=10];
  edge [fontname="Helvetica", fontsize=9];
  "interface/v1" [shape=box, style="filled,rounded", fillcolor="gold", label="interface/v1\npending: waiting for \"ns1\""];
  "interface/v2" [shape=box, style="filled,rounded", fillcolor="palegreen", label="interface/v2\napplied"];
  "namespace:named namespace ns1" [shape=ellipse, label="named namespace ns1"];
  "namespace:named namespace ns2" [shape=ellipse, label="named namespace ns2"];
  "interface/v1" -> "namespace:named namespace ns1" [label="namespace"];
  "interface/v1" -> "interface/v2" [label="peer"];
  "interface/v2" -> "namespace:named namespace ns2" [label="namespace"];
  "interface/v2" -> "interface/v1" [label="peer"];
}
"#;
    assert_eq!(dot, expected);
}

#[test]
fn routes_and_entries_point_at_interfaces_gateways_and_unmanaged_links() {
    let ns = json!({"type": "NAMED_NS", "name": "r1"});
    let dot = to_dot(&[
        item(ItemKind::Interface, veth("a", "b", ns.clone()), None, ""),
        item(
            ItemKind::Route,
            json!({"name": "r", "namespace": ns, "interface": "a",
                   "dst_ip_addr": "10.0.0.0/8", "gw_addr": "192.168.1.1"}),
            Some("pending"),
            "",
        ),
        item(
            ItemKind::Arp,
            json!({"name": "n", "interface": "eth0", "ip_addr": "192.168.1.9",
                   "hw_address": "02:00:00:00:00:01"}),
            Some("failed"),
            "boom",
        ),
    ]);
    for line in [
        r#""interface/a" [shape=box, style="filled,rounded", fillcolor="white", label="interface/a\nno status yet"];"#,
        r#""interface/b" [shape=box, style=dashed, label="interface/b\nnot configured"];"#,
        r#""interface/a" -> "interface/b" [label="peer"];"#,
        r#""route/r" -> "interface/a" [label="interface"];"#,
        r#""route/r" -> "gateway:named namespace r1:192.168.1.1" [label="gateway"];"#,
        r#""gateway:named namespace r1:192.168.1.1" [shape=diamond, label="gateway 192.168.1.1\nin named namespace r1"];"#,
        r#""arp/n" -> "link:default namespace:eth0" [label="interface"];"#,
        r#""arp/n" [shape=box, style="filled,rounded", fillcolor="salmon", label="arp/n\nfailed: boom"];"#,
    ] {
        assert!(dot.contains(line), "missing {line}\nin\n{dot}");
    }
    // The default namespace is not drawn.
    assert!(!dot.contains("\"namespace:default"), "{dot}");
}

#[test]
fn microservices_and_invalid_items() {
    let dot = to_dot(&[
        item(
            ItemKind::Interface,
            veth(
                "m",
                "x",
                json!({"type": "MICROSERVICE_REF_NS", "microservice": "web"}),
            ),
            Some("pending"),
            "microservice web is not running",
        ),
        item(
            ItemKind::Interface,
            json!({"name": "bad", "mtu": "x"}),
            Some("invalid"),
            "field `mtu`",
        ),
    ]);
    assert!(dot.contains(r#""interface/m" -> "microservice:web" [label="microservice"];"#));
    assert!(dot.contains(r#""microservice:web" [shape=hexagon, label="microservice web"];"#));
    assert!(dot.contains(r#""interface/bad" [shape=box, style="filled,rounded", fillcolor="plum""#));
    assert!(
        !dot.contains(r#""interface/bad" ->"#),
        "an undecodable item waits for nothing known"
    );
}

#[test]
fn escaping_keeps_the_dot_well_formed() {
    assert_eq!(escape("a\"b\\c\nd\re"), "a\\\"b\\\\c\\nde");
}
