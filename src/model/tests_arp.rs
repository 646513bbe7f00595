//! Unit and property tests of ARP entry decoding, validation and the canonical form.
use super::tests::{any_json, assert_rejected, merged, namespace_ref, respell};
use super::*;
use crate::keys::ItemKind;
use proptest::prelude::*;
use serde_json::{json, Value};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const PREFIX: &str = "/vnf-agent/vpp1/linux/config/v1/arp/";

fn key(name: &str) -> String {
    format!("{PREFIX}{name}")
}

/// Decodes `value` under the key of the entry its `name` field names (or `arp1`).
fn decode(value: &Value) -> Result<ArpEntry, ModelError> {
    let name = value.get("name").and_then(Value::as_str).unwrap_or("arp1");
    decode_arp(&key(name), value.to_string().as_bytes())
}

/// The model.md example entry with `patch` merged in.
fn arp(patch: Value) -> Value {
    merged(
        json!({"name": "arp1", "interface": "veth1", "ip_addr": "192.168.22.9",
            "hw_address": "46:06:18:db:05:3a", "state": {"type": 0},
            "namespace": {"type": 2, "name": "ns1"}}),
        patch,
    )
}

fn ok(value: Value) -> ArpEntry {
    decode(&value).unwrap_or_else(|e| panic!("{value} should decode: {e}"))
}

fn rejected(value: Value, field: &str, needles: &[&str]) -> ModelError {
    assert_rejected(decode(&value), &value, field, needles)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

// ---- whole value ----

#[test]
fn model_md_example_decodes_to_every_field() {
    assert_eq!(
        ok(arp(json!({}))),
        ArpEntry {
            name: "arp1".into(),
            namespace: NamespaceRef::Named("ns1".into()),
            interface: "veth1".into(),
            ip: ip("192.168.22.9"),
            mac: MacAddr([0x46, 0x06, 0x18, 0xdb, 0x05, 0x3a]),
            state: NeighbourState::Permanent,
        }
    );
}

#[test]
fn scenario_18_entry_decodes() {
    let a = ok(
        json!({"name": "arp1", "interface": "veth1", "ip_addr": "155.155.155.155",
        "hw_address": "32:51:51:51:51:51"}),
    );
    assert_eq!(a.ip, ip("155.155.155.155"));
    assert_eq!(a.mac.to_string(), "32:51:51:51:51:51");
    assert_eq!(
        (a.state, a.namespace),
        (NeighbourState::Permanent, NamespaceRef::Default)
    );
}

#[test]
fn value_must_be_one_json_object() {
    for text in ["[]", "\"arp1\"", "1", "null", "{", ""] {
        let err = decode_arp(&key("arp1"), text.as_bytes()).unwrap_err();
        assert_eq!(err.field, "", "{text}");
        assert_eq!(err.key, key("arp1"));
    }
}

#[test]
fn decode_value_dispatches_arp_entries() {
    let v = arp(json!({}));
    let item = decode_value(ItemKind::Arp, &key("arp1"), v.to_string().as_bytes()).unwrap();
    assert_eq!(item, ConfigItem::Arp(ok(v.clone())));
    assert_eq!(item.name(), "arp1");
    assert_eq!(item.to_canonical_json(), ok(v.clone()).to_canonical_json());
    let err =
        decode_value(ItemKind::Interface, &key("arp1"), v.to_string().as_bytes()).unwrap_err();
    assert!(err.message.starts_with("unknown field"), "{err}");
}

// ---- name and namespace ----

#[test]
fn name_is_required_and_equals_the_key() {
    rejected(arp(json!({"name": null})), "name", &["is required"]);
    let err = decode_arp(&key("arp2"), arp(json!({})).to_string().as_bytes()).unwrap_err();
    assert_eq!(err.field, "name");
    assert!(err.message.contains("must be equal"), "{err}");
}

#[test]
fn namespace_is_the_interface_union() {
    assert_eq!(
        ok(arp(json!({"namespace": null}))).namespace,
        NamespaceRef::Default
    );
    assert_eq!(
        ok(arp(
            json!({"namespace": {"type": "MICROSERVICE_REF_NS", "microservice": "ms1"}})
        ))
        .namespace,
        NamespaceRef::Microservice("ms1".into())
    );
    rejected(
        arp(json!({"namespace": {"type": 2, "name": "ns1", "pid": 3}})),
        "namespace.pid",
        &["set `type` to PID_REF_NS (0)"],
    );
}

// ---- spellings, unknown fields, JSON types ----

fn full_arp() -> Value {
    json!({"name": "arp1", "interface": "veth1", "ip_addr": "2001:db8::9",
        "hw_address": "46:06:18:db:05:3a", "state": {"type": 3},
        "ip_family": {"family": 1}, "namespace": {"type": 2, "name": "ns1"}})
}

#[test]
fn every_spelling_at_every_level_decodes_alike() {
    let canonical = ok(full_arp());
    assert_eq!(canonical.state, NeighbourState::Stale);
    for seed in [0x5555_5555_5555_5555_u64, 0xaaaa_aaaa_aaaa_aaaa, u64::MAX] {
        let v = respell(&full_arp(), &mut seed.clone());
        assert_eq!(ok(v.clone()), canonical, "{v}");
    }
    let camel = respell(&full_arp(), &mut 0x5555_5555_5555_5555_u64.clone());
    for k in ["ipAddr", "hwAddress", "ipFamily"] {
        assert!(camel.get(k).is_some(), "{k} not in {camel}");
    }
    for k in ["hwAddress", "hw-address", "HW_ADDRESS"] {
        let a = ok(arp(json!({"hw_address": null, k: "00:11:22:33:44:55"})));
        assert_eq!(a.mac.to_string(), "00:11:22:33:44:55", "{k}");
    }
}

#[test]
fn unknown_fields_are_named_with_the_closest_known_one() {
    let cases = [
        ("hw_addr", "did you mean `hw_address`?"),
        ("mac_address", "did you mean `hw_address`?"),
        ("ip_address", "did you mean `ip_addr`?"),
        ("ipfamily", "did you mean `ip_family`?"),
        ("zzzzzzzz", "known fields: `name`, `namespace`, `interface`"),
    ];
    for (field, needle) in cases {
        rejected(arp(json!({ field: "x" })), field, &[needle]);
    }
    rejected(
        arp(json!({"state": {"state": 0}})),
        "state.state",
        &["known fields: `type`"],
    );
    rejected(
        arp(json!({"ip_family": {"type": 0}})),
        "ip_family.type",
        &["known fields: `family`"],
    );
}

#[test]
fn wrong_json_types_name_field_and_expected_type() {
    let cases = [
        (json!({"interface": 1}), "interface", "expected a string"),
        (
            json!({"ip_addr": 3232241161_u64}),
            "ip_addr",
            "expected a string",
        ),
        (
            json!({"hw_address": [1, 2]}),
            "hw_address",
            "expected a string",
        ),
        (json!({"state": "PERMANENT"}), "state", "expected an object"),
        (json!({"ip_family": 1}), "ip_family", "expected an object"),
        (
            json!({"namespace": "ns1"}),
            "namespace",
            "expected an object",
        ),
    ];
    for (patch, field, needle) in cases {
        rejected(arp(patch), field, &[needle]);
    }
}

#[test]
fn null_means_absent() {
    let a = ok(arp(json!({"state": null, "ip_family": null})));
    assert_eq!(a, ok(arp(json!({}))));
    assert_eq!(
        ok(arp(json!({"state": {"type": null}}))).state,
        NeighbourState::Permanent
    );
}

// ---- state ----

#[test]
fn state_by_number_or_name() {
    let cases = [
        (0, "PERMANENT", NeighbourState::Permanent, 0x80),
        (1, "NOARP", NeighbourState::NoArp, 0x40),
        (2, "REACHABLE", NeighbourState::Reachable, 0x02),
        (3, "STALE", NeighbourState::Stale, 0x04),
    ];
    for (number, name, expected, nud) in cases {
        for t in [json!(number), json!(name)] {
            assert_eq!(ok(arp(json!({"state": {"type": t}}))).state, expected);
        }
        assert_eq!(expected.nud_state(), nud);
    }
    assert_eq!(
        ok(arp(json!({"state": null}))).state,
        NeighbourState::Permanent
    );
    assert_eq!(
        ok(arp(json!({"state": {}}))).state,
        NeighbourState::Permanent
    );
    for t in [json!("permanent"), json!(4), json!("NO_ARP"), json!(1.0)] {
        rejected(
            arp(json!({"state": {"type": t}})),
            "state.type",
            &["expected one of PERMANENT (0), NOARP (1), REACHABLE (2), STALE (3)"],
        );
    }
}

// ---- family ----

#[test]
fn family_is_taken_from_the_address_unless_given() {
    for (family, addr) in [
        (json!(null), "192.168.22.9"),
        (json!(null), "2001:db8::9"),
        (json!({}), "2001:db8::9"),
        (json!({"family": null}), "2001:db8::9"),
        (json!({"family": 0}), "192.168.22.9"),
        (json!({"family": "IPV4"}), "192.168.22.9"),
        (json!({"family": 1}), "2001:db8::9"),
        (json!({"family": "IPV6"}), "fe80::9"),
        (json!({"family": 2}), "192.168.22.9"),
        (json!({"family": "ALL"}), "2001:db8::9"),
    ] {
        let a = ok(arp(json!({"ip_family": family, "ip_addr": addr})));
        assert_eq!(a.ip, ip(addr), "{family}");
    }
}

#[test]
fn family_contradicting_the_address_is_an_error() {
    rejected(
        arp(json!({"ip_family": {"family": 0}, "ip_addr": "2001:db8::9"})),
        "ip_family.family",
        &[
            "is IPV4 (0) but `ip_addr` \"2001:db8::9\" is an IPv6 address",
            "omit `ip_family`",
        ],
    );
    rejected(
        arp(json!({"ip_family": {"family": "IPV6"}})),
        "ip_family.family",
        &["is IPV6 (1) but `ip_addr` \"192.168.22.9\" is an IPv4 address"],
    );
    for mpls in [json!(3), json!("MPLS")] {
        rejected(
            arp(json!({"ip_family": {"family": mpls}})),
            "ip_family.family",
            &["MPLS (3), which is not supported"],
        );
    }
    rejected(
        arp(json!({"ip_family": {"family": 4}})),
        "ip_family.family",
        &["expected one of IPV4 (0), IPV6 (1), ALL (2), MPLS (3)"],
    );
}

// ---- required fields ----

#[test]
fn interface_is_required() {
    for patch in [json!({"interface": null}), json!({"interface": ""})] {
        rejected(arp(patch), "interface", &["is required"]);
    }
    rejected(
        arp(json!({"interface": "ns1/veth1"})),
        "interface",
        &["contains '/'"],
    );
    // Links the agent does not manage (the robot test puts an ARP on `lo`).
    assert_eq!(ok(arp(json!({"interface": "lo"}))).interface, "lo");
}

#[test]
fn ip_addr_is_required_and_one_unicast_address() {
    for patch in [json!({"ip_addr": null}), json!({"ip_addr": ""})] {
        rejected(arp(patch), "ip_addr", &["is required"]);
    }
    rejected(
        arp(json!({"ip_addr": "192.168.22.9/24"})),
        "ip_addr",
        &["has a prefix length", "write `192.168.22.9`"],
    );
    for bad in ["192.168.22", "192.168.22.256", "host", "fe80::1%veth1"] {
        rejected(
            arp(json!({"ip_addr": bad})),
            "ip_addr",
            &["is not an IP address"],
        );
    }
    for (bad, problem) in [
        ("0.0.0.0", "the unspecified address"),
        ("::", "the unspecified address"),
        ("224.0.0.251", "a multicast address"),
        ("ff02::1", "a multicast address"),
        ("255.255.255.255", "the broadcast address"),
    ] {
        rejected(arp(json!({"ip_addr": bad})), "ip_addr", &[problem]);
    }
}

#[test]
fn hw_address_is_required_and_a_mac() {
    for patch in [json!({"hw_address": null}), json!({"hw_address": ""})] {
        rejected(arp(patch), "hw_address", &["is required"]);
    }
    for bad in [
        "46:06:18:db:05",
        "46:06:18:db:05:3a:00",
        "46:06:18:db:05:3g",
        "4606.18db.053a",
        "46:06-18:db:05:3a",
    ] {
        rejected(
            arp(json!({"hw_address": bad})),
            "hw_address",
            &["is not a MAC address"],
        );
    }
    // Any MAC, multicast and broadcast ones included (unlike an interface's own address).
    for good in [
        "ff:ff:ff:ff:ff:ff",
        "01:00:5e:00:00:fb",
        "00:00:00:00:00:00",
        "46-06-18-DB-05-3A",
    ] {
        assert!(decode(&arp(json!({"hw_address": good}))).is_ok(), "{good}");
    }
}

// ---- published examples ----

#[test]
fn v1_arp_example_is_rejected_on_its_namespace_name() {
    // arp-linux.json: FILE_REF_NS with `name` set (the v1.8 agent used the default namespace).
    let text = r#"{
	"name": "arp1",
	"interface": "veth1",
	"ip_addr": "192.168.10.21",
	"hw_address": "59:6C:45:59:8E:BD",
	"namespace": {
		"name": "ns1",
		"type": 3
	}
}"#;
    let err = decode_arp(&key("arp1"), text.as_bytes()).unwrap_err();
    assert_eq!(err.field, "namespace.name");
    assert!(
        err.message
            .contains("`namespace.type` is FILE_REF_NS (3); set `type` to NAMED_NS (2)"),
        "{err}"
    );
    // With the type it meant, it decodes; its MAC (a multicast one) is kept, in lower case.
    let fixed = text.replace("\"type\": 3", "\"type\": 2");
    let a = decode_arp(&key("arp1"), fixed.as_bytes()).unwrap();
    assert_eq!(a.namespace, NamespaceRef::Named("ns1".into()));
    assert_eq!(a.mac.to_string(), "59:6c:45:59:8e:bd");
    assert_eq!(a.state, NeighbourState::Permanent);
}

// ---- canonical form ----

#[test]
fn canonical_json_is_snake_case_with_names_and_no_zero_values() {
    let a = ok(arp(
        json!({"hw_address": "46-06-18-DB-05-3A", "ip_family": {"family": 0}}),
    ));
    assert_eq!(
        a.to_canonical_json(),
        json!({"name": "arp1", "namespace": {"type": "NAMED_NS", "name": "ns1"},
            "interface": "veth1", "ip_addr": "192.168.22.9", "hw_address": "46:06:18:db:05:3a"})
    );
    let a = ok(
        json!({"name": "n6", "interface": "eth0", "ipAddr": "2001:DB8:0::9",
        "hw-address": "46:06:18:db:05:3a", "state": {"type": "REACHABLE"}}),
    );
    assert_eq!(
        a.to_canonical_json(),
        json!({"name": "n6", "interface": "eth0", "ip_addr": "2001:db8::9",
            "hw_address": "46:06:18:db:05:3a", "state": {"type": "REACHABLE"}})
    );
}

// ---- properties ----

fn unicast_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<Ipv4Addr>().prop_map(IpAddr::V4),
        any::<Ipv6Addr>().prop_map(IpAddr::V6),
    ]
    .prop_filter("unicast", |ip| {
        !ip.is_unspecified() && !ip.is_multicast() && *ip != IpAddr::V4(Ipv4Addr::BROADCAST)
    })
}

fn state() -> impl Strategy<Value = NeighbourState> {
    prop::sample::select(vec![
        NeighbourState::Permanent,
        NeighbourState::NoArp,
        NeighbourState::Reachable,
        NeighbourState::Stale,
    ])
}

prop_compose! {
    pub(super) fn valid_arp()(
        name in "[a-zA-Z0-9][a-zA-Z0-9._-]{0,20}",
        namespace in namespace_ref(),
        interface in "[a-z][a-z0-9 .@-]{0,15}",
        ip in unicast_ip(),
        mac in any::<[u8; 6]>(),
        state in state(),
    ) -> ArpEntry {
        ArpEntry { name, namespace, interface, ip, mac: MacAddr(mac), state }
    }
}

proptest! {
    #[test]
    fn canonical_json_round_trips(a in valid_arp(), seed in any::<u64>()) {
        let canonical = a.to_canonical_json();
        let decoded = decode_arp(&key(&a.name), canonical.to_string().as_bytes());
        prop_assert_eq!(decoded, Ok(a.clone()));
        let mut seed = seed;
        let respelled = respell(&canonical, &mut seed);
        let decoded = decode_arp(&key(&a.name), respelled.to_string().as_bytes());
        prop_assert_eq!(decoded, Ok(a));
    }

    #[test]
    fn an_explicit_matching_family_changes_nothing(a in valid_arp(), all in any::<bool>()) {
        let mut v = a.to_canonical_json();
        let family = match (all, a.ip) {
            (true, _) => "ALL",
            (false, IpAddr::V4(_)) => "IPV4",
            (false, IpAddr::V6(_)) => "IPV6",
        };
        v["ip_family"] = json!({"family": family});
        prop_assert_eq!(decode_arp(&key(&a.name), v.to_string().as_bytes()), Ok(a));
    }

    #[test]
    fn decode_never_panics_on_json(v in any_json(), name in "[a-z0-9]{0,4}") {
        let _ = decode_arp(&key(&name), v.to_string().as_bytes());
        let embedded = json!({"name": "arp1", "interface": "veth1", "ip_addr": v.clone(),
            "hw_address": v.clone(), "state": v.clone(), "ip_family": v.clone(),
            "namespace": v.clone()});
        let _ = decode_arp(&key("arp1"), embedded.to_string().as_bytes());
    }

    #[test]
    fn decode_never_panics_on_text(text in ".*", bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = decode_arp(&key("arp1"), text.as_bytes());
        let _ = decode_arp(&key("arp1"), &bytes);
    }

    #[test]
    fn errors_always_carry_the_key(v in any_json()) {
        if let Err(e) = decode_arp(&key("arp1"), v.to_string().as_bytes()) {
            prop_assert_eq!(e.key, key("arp1"));
            prop_assert!(!e.message.is_empty());
        }
    }
}
