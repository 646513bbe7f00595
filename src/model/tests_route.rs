//! Unit and property tests of route decoding, validation and the canonical form.
use super::tests::{any_json, assert_rejected, merged, namespace_ref, respell};
use super::*;
use crate::keys::ItemKind;
use proptest::prelude::*;
use serde_json::{json, Value};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const PREFIX: &str = "/vnf-agent/vpp1/linux/config/v1/route/";

fn key(name: &str) -> String {
    format!("{PREFIX}{name}")
}

/// Decodes `value` under the key of the route its `name` field names (or `route1`).
fn decode(value: &Value) -> Result<Route, ModelError> {
    let name = value
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("route1");
    decode_route(&key(name), value.to_string().as_bytes())
}

/// Scenario 14's route (`10.0.2.0/24 via 192.168.22.2 dev veth1`) with `patch` merged in.
fn route(patch: Value) -> Value {
    merged(
        json!({"name": "route1", "dst_ip_addr": "10.0.2.0/24", "gw_addr": "192.168.22.2",
            "interface": "veth1"}),
        patch,
    )
}

fn ok(value: Value) -> Route {
    decode(&value).unwrap_or_else(|e| panic!("{value} should decode: {e}"))
}

fn rejected(value: Value, field: &str, needles: &[&str]) -> ModelError {
    assert_rejected(decode(&value), &value, field, needles)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn net(s: &str) -> ipnet::IpNet {
    s.parse().unwrap()
}

// ---- whole value ----

#[test]
fn model_md_example_decodes_to_every_field() {
    let r = ok(
        json!({"name": "route1", "dst_ip_addr": "10.0.2.0/24", "gw_addr": "192.168.22.2",
        "interface": "veth1", "metric": 100, "namespace": {"type": 2, "name": "ns1"}}),
    );
    assert_eq!(
        r,
        Route {
            name: "route1".into(),
            description: String::new(),
            namespace: NamespaceRef::Named("ns1".into()),
            interface: "veth1".into(),
            scope: None,
            dst: net("10.0.2.0/24"),
            default: false,
            src: None,
            gateway: Some(ip("192.168.22.2")),
            metric: 100,
            table: 0,
        }
    );
}

#[test]
fn every_field_decodes() {
    let r = ok(
        json!({"name": "r6", "description": "to the lab", "interface": "eth0",
        "namespace": {"type": "MICROSERVICE_REF_NS", "microservice": "web"},
        "scope": {"type": "SITE"}, "dst_ip_addr": "2001:db8:9::/48",
        "src_ip_addr": "2001:db8:22::1", "gw_addr": "2001:db8:22::2", "metric": 55,
        "table": 100}),
    );
    assert_eq!(
        r,
        Route {
            name: "r6".into(),
            description: "to the lab".into(),
            namespace: NamespaceRef::Microservice("web".into()),
            interface: "eth0".into(),
            scope: Some(RouteScope::Site),
            dst: net("2001:db8:9::/48"),
            default: false,
            src: Some(ip("2001:db8:22::1")),
            gateway: Some(ip("2001:db8:22::2")),
            metric: 55,
            table: 100,
        }
    );
}

#[test]
fn value_must_be_one_json_object() {
    for text in ["[]", "\"route1\"", "7", "null"] {
        let err = decode_route(&key("route1"), text.as_bytes()).unwrap_err();
        assert_eq!(err.field, "", "{text}");
        assert!(err.message.contains("expected one JSON object"), "{err}");
    }
    let err = decode_route(&key("route1"), b"{\"name\": \"route1\",}").unwrap_err();
    assert!(err.message.starts_with("not valid JSON"), "{err}");
    assert_eq!(err.key, key("route1"));
}

#[test]
fn decode_value_dispatches_routes() {
    let v = route(json!({}));
    let item = decode_value(ItemKind::Route, &key("route1"), v.to_string().as_bytes()).unwrap();
    assert_eq!(item, ConfigItem::Route(ok(v.clone())));
    assert_eq!(item.name(), "route1");
    assert_eq!(item.to_canonical_json(), ok(v.clone()).to_canonical_json());
    // A route is not an interface or an ARP entry.
    let err = decode_value(ItemKind::Arp, &key("route1"), v.to_string().as_bytes()).unwrap_err();
    assert_eq!(err.field, "dst_ip_addr");
    assert!(err.message.contains("did you mean"), "{err}");
}

// ---- name and namespace (shared with interfaces) ----

#[test]
fn name_is_required_and_equals_the_key() {
    rejected(route(json!({"name": null})), "name", &["is required"]);
    rejected(route(json!({"name": ""})), "name", &["is required"]);
    let err = decode_route(&key("route2"), route(json!({})).to_string().as_bytes()).unwrap_err();
    assert_eq!(err.field, "name");
    assert!(err.message.contains("\"route2\""), "{err}");
}

#[test]
fn namespace_is_the_interface_union() {
    assert_eq!(ok(route(json!({}))).namespace, NamespaceRef::Default);
    for (ns, expected) in [
        (json!({"type": 0, "pid": 0}), NamespaceRef::Default),
        (json!({"type": 0, "pid": 42}), NamespaceRef::Pid(42)),
        (
            json!({"type": "FILE_REF_NS", "filepath": "/run/netns/x"}),
            NamespaceRef::File("/run/netns/x".into()),
        ),
    ] {
        assert_eq!(ok(route(json!({ "namespace": ns }))).namespace, expected);
    }
    rejected(
        route(json!({"namespace": {"name": "ns1"}})),
        "namespace.name",
        &["set `type` to NAMED_NS (2)"],
    );
    rejected(
        route(json!({"namespace": {"type": 1}})),
        "namespace.microservice",
        &["is required"],
    );
}

// ---- spellings, unknown fields, JSON types ----

/// A route using every field, keys canonical.
fn full_route() -> Value {
    json!({"name": "route1", "default": false, "description": "d", "interface": "veth1",
        "namespace": {"type": 2, "name": "ns1"}, "scope": {"type": 0},
        "dst_ip_addr": "10.0.2.0/24", "src_ip_addr": "192.168.22.1",
        "gw_addr": "192.168.22.2", "metric": 7, "table": 3})
}

#[test]
fn every_spelling_at_every_level_decodes_alike() {
    let canonical = ok(full_route());
    assert_eq!(canonical.scope, Some(RouteScope::Global));
    // Seeds that pick the same spelling for every key: lowerCamel, kebab, UPPER.
    for seed in [0x5555_5555_5555_5555_u64, 0xaaaa_aaaa_aaaa_aaaa, u64::MAX] {
        let v = respell(&full_route(), &mut seed.clone());
        assert_eq!(ok(v.clone()), canonical, "{v}");
    }
    for k in ["dstIpAddr", "dst-ip-addr", "DST_IP_ADDR", "Dst_Ip_Addr"] {
        let r = ok(route(json!({"dst_ip_addr": null, k: "10.9.0.0/16"})));
        assert_eq!(r.dst, net("10.9.0.0/16"), "{k}");
    }
    for k in ["gwAddr", "gw-addr", "GW_ADDR"] {
        let r = ok(route(json!({"gw_addr": null, k: "192.168.22.3"})));
        assert_eq!(r.gateway, Some(ip("192.168.22.3")), "{k}");
    }
}

#[test]
fn camel_spelling_is_really_camel() {
    let v = respell(&full_route(), &mut 0x5555_5555_5555_5555_u64.clone());
    for k in ["dstIpAddr", "srcIpAddr", "gwAddr", "scope", "namespace"] {
        assert!(v.get(k).is_some(), "{k} not in {v}");
    }
}

#[test]
fn same_field_twice_is_an_error() {
    let err = decode_route(
        &key("route1"),
        br#"{"name":"route1","gw_addr":"192.168.22.2","gw-addr":"192.168.22.3","interface":"veth1","dst_ip_addr":"10.0.2.0/24"}"#,
    )
    .unwrap_err();
    assert_eq!(err.field, "gw_addr");
    assert!(
        err.message.contains("(as `gw_addr` and as `gw-addr`)"),
        "{err}"
    );
}

#[test]
fn unknown_fields_are_named_with_the_closest_known_one() {
    let cases = [
        ("dst_ip", "did you mean `dst_ip_addr`?"),
        ("gw_address", "did you mean `gw_addr`?"),
        ("metrics", "did you mean `metric`?"),
        ("src-addr", "did you mean `src_ip_addr`?"),
        ("defualt", "did you mean `default`?"),
        (
            "zzzzzzzz",
            "known fields: `name`, `default`, `namespace`, `interface`",
        ),
    ];
    for (field, needle) in cases {
        rejected(route(json!({ field: 1 })), field, &[needle]);
    }
    rejected(
        route(json!({"scope": {"typ": 2}})),
        "scope.typ",
        &["did you mean `type`?"],
    );
}

#[test]
fn wrong_json_types_name_field_and_expected_type() {
    let cases = [
        (
            json!({"default": "true"}),
            "default",
            "expected true or false",
        ),
        (
            json!({"metric": "100"}),
            "metric",
            "expected an unsigned integer",
        ),
        (
            json!({"metric": -1}),
            "metric",
            "expected an unsigned integer",
        ),
        (
            json!({"table": 1.5}),
            "table",
            "expected an unsigned integer",
        ),
        (json!({"table": 4_294_967_296_u64}), "table", "out of range"),
        (json!({"interface": 1}), "interface", "expected a string"),
        (
            json!({"dst_ip_addr": ["10.0.2.0/24"]}),
            "dst_ip_addr",
            "expected a string",
        ),
        (json!({"gw_addr": false}), "gw_addr", "expected a string"),
        (
            json!({"src_ip_addr": {}}),
            "src_ip_addr",
            "expected a string",
        ),
        (
            json!({"description": 5}),
            "description",
            "expected a string",
        ),
        (
            json!({"scope": "LINK"}),
            "scope",
            "expected an object, found the string \"LINK\"",
        ),
        (json!({"scope": 2}), "scope", "expected an object"),
        (json!({"namespace": []}), "namespace", "expected an object"),
    ];
    for (patch, field, needle) in cases {
        rejected(route(patch), field, &[needle]);
    }
}

#[test]
fn null_means_absent() {
    let r = ok(route(
        json!({"description": null, "scope": null, "default": null,
        "src_ip_addr": null, "metric": null, "table": null, "namespace": null}),
    ));
    assert_eq!(r, ok(route(json!({}))));
    assert_eq!(
        ok(route(json!({"scope": {"type": null}}))).scope,
        Some(RouteScope::Global)
    );
}

// ---- scope ----

#[test]
fn scope_by_number_or_name() {
    let cases = [
        (0, "GLOBAL", RouteScope::Global, 0),
        (1, "SITE", RouteScope::Site, 200),
        (2, "LINK", RouteScope::Link, 253),
        (3, "HOST", RouteScope::Host, 254),
    ];
    for (number, name, expected, rtm) in cases {
        for t in [json!(number), json!(name)] {
            let r = ok(route(json!({"gw_addr": null, "scope": {"type": t}})));
            assert_eq!(r.scope, Some(expected), "{t}");
        }
        assert_eq!(expected.rtm_scope(), rtm);
    }
    for t in [json!("link"), json!(4), json!(-1), json!("2"), json!(true)] {
        rejected(
            route(json!({"scope": {"type": t}})),
            "scope.type",
            &["expected one of GLOBAL (0), SITE (1), LINK (2), HOST (3) (by name or number)"],
        );
    }
}

#[test]
fn absent_scope_is_unset_and_an_empty_scope_is_global() {
    assert_eq!(ok(route(json!({}))).scope, None);
    assert_eq!(
        ok(route(json!({"scope": {}}))).scope,
        Some(RouteScope::Global)
    );
}

#[test]
fn link_and_host_scope_have_no_gateway() {
    rejected(
        route(json!({"scope": {"type": "LINK"}})),
        "scope.type",
        &[
            "is LINK (2) but `gw_addr` is 192.168.22.2",
            "remove `gw_addr` or use GLOBAL (0)",
        ],
    );
    rejected(
        route(
            json!({"scope": {"type": 3}, "gw_addr": "2001:db8::1", "dst_ip_addr": "2001:db8:1::/64"}),
        ),
        "scope.type",
        &["is HOST (3) but `gw_addr` is 2001:db8::1"],
    );
    // Scenario 15's LINK-scope route that makes 10.9.9.1 reachable.
    let r = ok(route(
        json!({"dst_ip_addr": "10.9.9.0/24", "gw_addr": null, "scope": {"type": 2}}),
    ));
    assert_eq!((r.scope, r.gateway), (Some(RouteScope::Link), None));
    for scope in ["GLOBAL", "SITE"] {
        assert!(ok(route(json!({"scope": {"type": scope}})))
            .gateway
            .is_some());
    }
}

// ---- destination ----

#[test]
fn dst_is_required_unless_default() {
    for patch in [
        json!({"dst_ip_addr": null}),
        json!({"dst_ip_addr": ""}),
        json!({"default": false, "dst_ip_addr": null}),
    ] {
        rejected(
            route(patch),
            "dst_ip_addr",
            &["is required unless `default` is true"],
        );
    }
}

#[test]
fn dst_needs_a_prefix_length_and_a_valid_address() {
    rejected(
        route(json!({"dst_ip_addr": "10.0.2.0"})),
        "dst_ip_addr",
        &["\"10.0.2.0\" has no prefix length", "`10.0.2.0/24`"],
    );
    rejected(
        route(json!({"dst_ip_addr": "2001:db8::"})),
        "dst_ip_addr",
        &["has no prefix length", "`2001:db8::/64`"],
    );
    for bad in [
        "10.0.2.0/33",
        "10.0.2.256/24",
        "2001:db8::/129",
        "net/24",
        "10.0.2.0/",
        " 10.0.2.0/24",
        "default",
    ] {
        rejected(
            route(json!({"dst_ip_addr": bad})),
            "dst_ip_addr",
            &["is not an address with prefix length"],
        );
    }
}

#[test]
fn host_bits_of_the_destination_are_cleared() {
    let cases = [
        ("10.0.2.1/24", "10.0.2.0/24"),
        ("10.0.2.1/32", "10.0.2.1/32"),
        ("192.168.255.255/17", "192.168.128.0/17"),
        ("1.2.3.4/0", "0.0.0.0/0"),
        ("2001:db8::1/64", "2001:db8::/64"),
        ("2001:db8::1/128", "2001:db8::1/128"),
    ];
    for (given, expected) in cases {
        let gw = if given.contains(':') {
            "2001:db8:22::2"
        } else {
            "192.168.22.2"
        };
        let r = ok(route(json!({"dst_ip_addr": given, "gw_addr": gw})));
        assert_eq!(r.dst, net(expected), "{given}");
        assert_eq!(r.to_canonical_json()["dst_ip_addr"], json!(expected));
    }
}

// ---- default routes ----

#[test]
fn default_route_takes_the_gateways_family() {
    // Scenario 16.
    let r = ok(route(
        json!({"default": true, "dst_ip_addr": null, "metric": 100}),
    ));
    assert_eq!((r.dst, r.default, r.metric), (net("0.0.0.0/0"), true, 100));
    let r = ok(route(
        json!({"default": true, "dst_ip_addr": null, "gw_addr": "2001:db8::1"}),
    ));
    assert_eq!(r.dst, net("::/0"));
    // A link-local IPv6 gateway with its interface.
    let r = ok(route(
        json!({"default": true, "dst_ip_addr": null, "gw_addr": "fe80::1"}),
    ));
    assert_eq!((r.dst, r.gateway), (net("::/0"), Some(ip("fe80::1"))));
}

#[test]
fn default_route_needs_a_gateway() {
    rejected(
        route(json!({"default": true, "dst_ip_addr": null, "gw_addr": null})),
        "gw_addr",
        &["is required when `default` is true", "`0.0.0.0/0`"],
    );
    rejected(
        route(json!({"default": true, "dst_ip_addr": null, "gw_addr": ""})),
        "gw_addr",
        &["is required when `default` is true"],
    );
}

#[test]
fn default_route_with_another_destination_is_an_error() {
    rejected(
        route(json!({"default": true})),
        "dst_ip_addr",
        &[
            "is 10.0.2.0/24 but `default` is true",
            "remove `dst_ip_addr` or `default`",
        ],
    );
    rejected(
        route(json!({"default": true, "dst_ip_addr": "::/64", "gw_addr": "2001:db8::1"})),
        "dst_ip_addr",
        &["is ::/64 but `default` is true"],
    );
    // The default destination spelled out is fine, of the gateway's family.
    for (dst, gw) in [("0.0.0.0/0", "192.168.22.2"), ("::/0", "2001:db8::1")] {
        let r = ok(route(
            json!({"default": true, "dst_ip_addr": dst, "gw_addr": gw}),
        ));
        assert_eq!((r.dst, r.default), (net(dst), true));
    }
    rejected(
        route(json!({"default": true, "dst_ip_addr": "::/0"})),
        "gw_addr",
        &["192.168.22.2 is IPv4 but the destination ::/0 is IPv6"],
    );
}

#[test]
fn a_default_destination_without_default_is_a_plain_route() {
    // `ip route add default dev veth1`: no gateway, so not `default: true`.
    let r = ok(route(json!({"dst_ip_addr": "0.0.0.0/0", "gw_addr": null})));
    assert_eq!(
        (r.dst, r.default, r.gateway),
        (net("0.0.0.0/0"), false, None)
    );
    assert_eq!(
        r.to_canonical_json(),
        json!({"name": "route1", "interface": "veth1", "dst_ip_addr": "0.0.0.0/0"})
    );
}

// ---- gateway and source ----

#[test]
fn gateway_is_one_address() {
    rejected(
        route(json!({"gw_addr": "192.168.22.0/24"})),
        "gw_addr",
        &[
            "\"192.168.22.0/24\" has a prefix length",
            "write `192.168.22.0`",
        ],
    );
    for bad in [
        "192.168.22",
        "gateway",
        "192.168.22.2 ",
        "fe80::1%veth1",
        "2001:db8::g",
    ] {
        rejected(
            route(json!({"gw_addr": bad})),
            "gw_addr",
            &["is not an IP address such as `192.168.1.1`"],
        );
    }
}

#[test]
fn gateway_and_source_are_unicast() {
    let cases = [
        ("0.0.0.0", "the unspecified address"),
        ("::", "the unspecified address"),
        ("224.0.0.1", "a multicast address"),
        ("ff02::1", "a multicast address"),
        ("255.255.255.255", "the broadcast address"),
    ];
    for (bad, problem) in cases {
        let (dst, other) = if bad.contains(':') {
            ("2001:db8:1::/64", "2001:db8::1")
        } else {
            ("10.0.2.0/24", "192.168.22.2")
        };
        rejected(
            route(json!({"dst_ip_addr": dst, "gw_addr": bad})),
            "gw_addr",
            &[problem, "leave it empty for a direct route"],
        );
        rejected(
            route(json!({"dst_ip_addr": dst, "gw_addr": other, "src_ip_addr": bad})),
            "src_ip_addr",
            &[problem, "leave it empty to let the kernel choose"],
        );
    }
    rejected(
        route(json!({"src_ip_addr": "192.168.22.1/24"})),
        "src_ip_addr",
        &["has a prefix length", "`src_ip_addr` is one address"],
    );
    let r = ok(route(json!({"src_ip_addr": "192.168.22.1"})));
    assert_eq!(r.src, Some(ip("192.168.22.1")));
}

#[test]
fn one_route_has_one_address_family() {
    rejected(
        route(json!({"gw_addr": "2001:db8::1"})),
        "gw_addr",
        &[
            "2001:db8::1 is IPv6 but the destination 10.0.2.0/24 is IPv4",
            "one address family",
        ],
    );
    rejected(
        route(json!({"src_ip_addr": "2001:db8::1"})),
        "src_ip_addr",
        &["2001:db8::1 is IPv6 but the destination 10.0.2.0/24 is IPv4"],
    );
    rejected(
        route(
            json!({"dst_ip_addr": "2001:db8:1::/64", "gw_addr": null, "src_ip_addr": "192.168.22.1"}),
        ),
        "src_ip_addr",
        &["is IPv4 but the destination 2001:db8:1::/64 is IPv6"],
    );
    rejected(
        route(
            json!({"default": true, "dst_ip_addr": null, "gw_addr": "2001:db8::1", "src_ip_addr": "10.0.0.1"}),
        ),
        "src_ip_addr",
        &["10.0.0.1 is IPv4 but the destination ::/0 is IPv6"],
    );
    // IPv4-mapped IPv6 addresses are IPv6.
    rejected(
        route(json!({"gw_addr": "::ffff:192.168.22.2"})),
        "gw_addr",
        &["is IPv6"],
    );
}

// ---- interface ----

#[test]
fn interface_may_be_omitted_only_with_a_gateway() {
    let r = ok(route(json!({"interface": null})));
    assert_eq!(
        (r.interface.as_str(), r.gateway),
        ("", Some(ip("192.168.22.2")))
    );
    for patch in [
        json!({"interface": null, "gw_addr": null}),
        json!({"interface": "", "gw_addr": ""}),
    ] {
        rejected(
            route(patch),
            "interface",
            &["is required for a route without `gw_addr`"],
        );
    }
    rejected(
        route(json!({"interface": null, "gw_addr": "fe80::1", "dst_ip_addr": "2001:db8:1::/64"})),
        "interface",
        &["the gateway fe80::1 is link-local"],
    );
    rejected(
        route(
            json!({"interface": "", "default": true, "dst_ip_addr": null, "gw_addr": "fe80::1:2"}),
        ),
        "interface",
        &["link-local"],
    );
    // A global IPv6 gateway resolves its interface.
    assert!(ok(route(
        json!({"interface": null, "gw_addr": "2001:db8::1", "dst_ip_addr": "2001:db8:1::/64"})
    ))
    .interface
    .is_empty());
}

#[test]
fn interface_is_a_logical_or_host_name() {
    for name in [
        "veth1",
        "lo",
        "eth0",
        "a long logical name",
        "x".repeat(40).as_str(),
    ] {
        assert_eq!(ok(route(json!({"interface": name}))).interface, name);
    }
    rejected(
        route(json!({"interface": "ns1/veth1"})),
        "interface",
        &["contains '/'"],
    );
    rejected(
        route(json!({"interface": "a\u{0}b"})),
        "interface",
        &["contains '\\0'"],
    );
}

// ---- metric and table ----

#[test]
fn metric_and_table_are_kept_as_given() {
    for (metric, table) in [(0, 0), (1, 254), (100, 253), (7, 256), (u32::MAX, u32::MAX)] {
        let r = ok(route(json!({"metric": metric, "table": table})));
        assert_eq!((r.metric, r.table), (metric, table));
    }
    let e = decode(&route(json!({"table": 255}))).unwrap_err();
    assert_eq!(e.field, "table");
    assert!(e.message.contains("local table"), "{e}");
    // Scenario 17: a metric change is a new value with the same key.
    assert_eq!(ok(route(json!({"metric": 55}))).metric, 55);
}

// ---- published examples ----

#[test]
fn v1_static_route_example_decodes_with_its_kebab_case_field() {
    // routes-linux-static.json: the v1.8 agent ignored `dst-ip-addr`; we accept it.
    let text = r#"{
      "name": "route1",
      "dst-ip-addr": "10.0.2.0/24",
      "interface": "veth1",
      "metric": 100,
      "namespace": {
        "name": "ns1",
        "type": 2
      }
    }"#;
    let r = decode_route(&key("route1"), text.as_bytes()).unwrap();
    assert_eq!(r.dst, net("10.0.2.0/24"));
    assert_eq!(
        (r.gateway, r.interface.as_str(), r.metric),
        (None, "veth1", 100)
    );
    assert_eq!(r.namespace, NamespaceRef::Named("ns1".into()));
}

#[test]
fn v1_default_route_example_names_its_network_gateway() {
    // routes-linux-default.json: `gw-addr` is a network.
    let text = r#"{
      "name": "defRoute",
      "default": true,
      "gw-addr": "10.0.2.0/24",
      "interface": "veth1",
      "metric": 100,
      "namespace": {
        "name": "ns1",
        "type": 2
      }
    }"#;
    let err = decode_route(&key("defRoute"), text.as_bytes()).unwrap_err();
    assert_eq!(err.field, "gw_addr");
    assert!(
        err.message.contains("\"10.0.2.0/24\" has a prefix length"),
        "{err}"
    );
    let fixed = text.replace("10.0.2.0/24", "10.0.2.1");
    let r = decode_route(&key("defRoute"), fixed.as_bytes()).unwrap();
    assert_eq!((r.dst, r.default), (net("0.0.0.0/0"), true));
}

#[test]
fn robot_template_route_decodes() {
    // linux_static_route.json of the v1.8 robot tests, with `default` false.
    let r = ok(
        json!({"name": "route1", "default": false, "namespace": {"name": "ns1", "type": 2},
        "interface": "ns1_veth1_linux", "dst_ip_addr": "192.168.22.2/32",
        "gw_addr": "192.168.22.1", "metric": 55}),
    );
    assert_eq!(r.dst, net("192.168.22.2/32"));
}

// ---- canonical form ----

#[test]
fn canonical_json_is_snake_case_with_names_and_no_zero_values() {
    let r = ok(
        json!({"name": "route1", "dstIpAddr": "10.0.2.1/24", "gw-addr": "192.168.22.2",
        "interface": "veth1", "metric": 0, "table": 0, "description": "", "default": false,
        "srcIpAddr": "", "namespace": {"type": 0}}),
    );
    assert_eq!(
        r.to_canonical_json(),
        json!({"name": "route1", "interface": "veth1", "dst_ip_addr": "10.0.2.0/24",
            "gw_addr": "192.168.22.2"})
    );
    let r = ok(
        json!({"name": "def", "default": true, "dst_ip_addr": "::/0",
        "gw_addr": "2001:DB8::0:1", "src_ip_addr": "2001:db8::2", "scope": {},
        "metric": 5, "table": 7, "description": "d", "namespace": {"type": 0, "pid": 9}}),
    );
    assert_eq!(
        r.to_canonical_json(),
        json!({"name": "def", "default": true, "namespace": {"type": "PID_REF_NS", "pid": 9},
            "description": "d", "scope": {"type": "GLOBAL"}, "src_ip_addr": "2001:db8::2",
            "gw_addr": "2001:db8::1", "metric": 5, "table": 7})
    );
}

// ---- properties ----

prop_compose! {
    /// A unicast IPv4 host address (10/8, 192.168/16 or 172.16/12).
    fn host_v4()(net in 0u8..3, a in any::<u8>(), b in any::<u8>(), c in 1u8..255) -> IpAddr {
        IpAddr::V4(match net {
            0 => Ipv4Addr::new(10, a, b, c),
            1 => Ipv4Addr::new(192, 168, b, c),
            _ => Ipv4Addr::new(172, 16 | (a & 15), b, c),
        })
    }
}

prop_compose! {
    /// A unicast IPv6 host address: global (2001:db8::/32) or link-local.
    fn host_v6()(link_local in any::<bool>(), tail in any::<[u16; 4]>(), mid in any::<u16>()) -> IpAddr {
        let head = if link_local { [0xfe80, 0, 0, 0] } else { [0x2001, 0xdb8, mid, 1] };
        IpAddr::V6(Ipv6Addr::new(head[0], head[1], head[2], head[3], tail[0], tail[1], tail[2], tail[3] | 1))
    }
}

prop_compose! {
    pub(super) fn valid_route()(
        name in "[a-zA-Z0-9][a-zA-Z0-9._-]{0,20}",
        description in ".{0,30}",
        namespace in namespace_ref(),
        v4 in any::<bool>(),
        dst4 in (any::<Ipv4Addr>(), 0u8..=32),
        dst6 in (any::<Ipv6Addr>(), 0u8..=128),
        gw in proptest::option::of((host_v4(), host_v6())),
        src in proptest::option::of((host_v4(), host_v6())),
        default in any::<bool>(),
        interface in "[a-z][a-z0-9 .@-]{0,15}",
        omit_interface in any::<bool>(),
        scope in proptest::option::of(0usize..4),
        metric in any::<u32>(),
        table in any::<u32>(),
    ) -> Route {
        let pick = |(a4, a6): (IpAddr, IpAddr)| if v4 { a4 } else { a6 };
        let gateway = gw.map(pick);
        let default = default && gateway.is_some();
        let dst = match (default, v4) {
            (true, true) => net("0.0.0.0/0"),
            (true, false) => net("::/0"),
            (false, true) => ipnet::Ipv4Net::new(dst4.0, dst4.1).unwrap().trunc().into(),
            (false, false) => ipnet::Ipv6Net::new(dst6.0, dst6.1).unwrap().trunc().into(),
        };
        let link_local_gw = matches!(gateway, Some(IpAddr::V6(g)) if g.segments()[0] == 0xfe80);
        let interface = if omit_interface && gateway.is_some() && !link_local_gw {
            String::new()
        } else {
            interface
        };
        let scopes = [RouteScope::Global, RouteScope::Site, RouteScope::Link, RouteScope::Host];
        let scope = scope.map(|s| if gateway.is_some() { scopes[s % 2] } else { scopes[s] });
        Route {
            name, description, namespace, interface, scope, dst, default,
            src: src.map(pick), gateway, metric, table,
        }
    }
}

proptest! {
    #[test]
    fn canonical_json_round_trips(r in valid_route(), seed in any::<u64>()) {
        let canonical = r.to_canonical_json();
        let decoded = decode_route(&key(&r.name), canonical.to_string().as_bytes());
        prop_assert_eq!(decoded, Ok(r.clone()));
        let mut seed = seed;
        let respelled = respell(&canonical, &mut seed);
        let decoded = decode_route(&key(&r.name), respelled.to_string().as_bytes());
        prop_assert_eq!(decoded, Ok(r));
    }

    #[test]
    fn decode_never_panics_on_json(v in any_json(), name in "[a-z0-9]{0,4}") {
        let _ = decode_route(&key(&name), v.to_string().as_bytes());
        let embedded = json!({"name": "route1", "scope": v.clone(), "namespace": v.clone(),
            "dst_ip_addr": v.clone(), "gw_addr": v.clone(), "default": v.clone()});
        let _ = decode_route(&key("route1"), embedded.to_string().as_bytes());
    }

    #[test]
    fn decode_never_panics_on_text(text in ".*", bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = decode_route(&key("route1"), text.as_bytes());
        let _ = decode_route(&key("route1"), &bytes);
    }

    #[test]
    fn decode_never_panics_on_address_text(dst in ".{0,50}", gw in "[0-9a-fA-F:./%]{0,45}", default in any::<bool>()) {
        let v = json!({"name": "route1", "dst_ip_addr": dst, "gw_addr": gw, "src_ip_addr": gw,
            "default": default, "interface": "veth1"});
        if let Err(e) = decode_route(&key("route1"), v.to_string().as_bytes()) {
            prop_assert!(!e.field.is_empty(), "{}", e);
        }
    }

    #[test]
    fn errors_always_carry_the_key(v in any_json()) {
        if let Err(e) = decode_route(&key("route1"), v.to_string().as_bytes()) {
            prop_assert_eq!(e.key, key("route1"));
            prop_assert!(!e.message.is_empty());
        }
    }
}
