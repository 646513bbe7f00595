//! Unit and property tests of decoding, validation and the canonical form.
use super::*;
use proptest::prelude::*;
use serde_json::{json, Value};

const PREFIX: &str = "/vnf-agent/vpp1/linux/config/v1/interface/";

use super::link::{auto_tap::AutoTap, veth::Veth, LinkKind};

/// The temporary name of an AUTO_TAP ("" for other kinds).
fn temp_name(i: &Interface) -> &str {
    match &i.link {
        LinkKind::AutoTap(t) => &t.temp_name,
        _ => "",
    }
}

fn key(name: &str) -> String {
    format!("{PREFIX}{name}")
}

/// Decodes `value` under the key of the interface its `name` field names (or `veth1`).
fn decode(value: &Value) -> Result<Interface, ModelError> {
    let name = value.get("name").and_then(Value::as_str).unwrap_or("veth1");
    decode_interface(&key(name), value.to_string().as_bytes())
}

/// `base` with `patch` merged in at the top level (null removes a field).
pub(super) fn merged(mut base: Value, patch: Value) -> Value {
    if let (Some(o), Some(p)) = (base.as_object_mut(), patch.as_object()) {
        for (k, x) in p {
            if x.is_null() {
                o.remove(k);
            } else {
                o.insert(k.clone(), x.clone());
            }
        }
    }
    base
}

/// A minimal valid VETH end with `patch` merged in at the top level (null removes a field).
fn veth(patch: Value) -> Value {
    merged(
        json!({"name": "veth1", "veth": {"peer_if_name": "veth2"}}),
        patch,
    )
}

fn ok(value: Value) -> Interface {
    decode(&value).unwrap_or_else(|e| panic!("{value} should decode: {e}"))
}

/// Asserts that `result` (of decoding `value`) is an error on `field` with a message
/// containing every needle.
pub(super) fn assert_rejected<T: std::fmt::Debug>(
    result: Result<T, ModelError>,
    value: &Value,
    field: &str,
    needles: &[&str],
) -> ModelError {
    let err = match result {
        Ok(i) => panic!("{value} should be rejected, decoded to {i:?}"),
        Err(e) => e,
    };
    assert_eq!(err.field, field, "{value}: {err}");
    for needle in needles {
        assert!(
            err.message.contains(needle),
            "{value}: `{needle}` not in: {err}"
        );
    }
    err
}

/// Asserts that `value` is rejected on `field` with a message containing every needle.
fn rejected(value: Value, field: &str, needles: &[&str]) -> ModelError {
    assert_rejected(decode(&value), &value, field, needles)
}

fn ns(namespace: Value) -> Result<NamespaceRef, ModelError> {
    decode(&veth(json!({ "namespace": namespace }))).map(|i| i.namespace)
}

// ---- whole value ----

#[test]
fn malformed_json_reports_line_and_column() {
    let err = decode_interface(&key("veth1"), b"{\n  \"name\": \"veth1\",\n  oops\n}").unwrap_err();
    assert_eq!(err.field, "");
    assert!(err.message.contains("line 3 column"), "{err}");
    let err = decode_interface(&key("veth1"), b"{\"name\":\"veth1\"} {}").unwrap_err();
    assert_eq!(err.field, "");
    assert!(err.message.contains("trailing"), "{err}");
    assert!(decode_interface(&key("veth1"), b"").is_err());
    assert!(decode_interface(&key("veth1"), &[0xff, 0xfe]).is_err());
}

#[test]
fn value_must_be_one_object() {
    for v in [
        json!([{"name": "veth1"}]),
        json!("veth1"),
        json!(7),
        json!(null),
    ] {
        let err = decode(&v).unwrap_err();
        assert_eq!(err.field, "");
        assert!(err.message.contains("expected one JSON object"), "{err}");
    }
}

#[test]
fn errors_carry_the_full_key_and_display_the_field() {
    let err = decode(&veth(json!({"mtu": "1500"}))).unwrap_err();
    assert_eq!(err.key, key("veth1"));
    assert_eq!(err.field, "mtu");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: field `mtu`: expected an unsigned integer, found the string \"1500\"",
            key("veth1")
        )
    );
}

// ---- field spellings ----

/// A value using every field, each nested object too, with keys spelled by `spell`.
fn full_value(spell: fn(&str) -> String) -> Value {
    let obj = |pairs: Vec<(&str, Value)>| {
        Value::Object(pairs.into_iter().map(|(k, v)| (spell(k), v)).collect())
    };
    obj(vec![
        ("name", json!("veth1")),
        ("description", json!("first end")),
        ("type", json!(0)),
        ("enabled", json!(true)),
        ("ip_addresses", json!(["10.0.0.1/24"])),
        ("phys_address", json!("d2:74:8c:12:67:d2")),
        ("mtu", json!(9000)),
        ("host_if_name", json!("v1")),
        (
            "namespace",
            obj(vec![("type", json!(2)), ("name", json!("ns1"))]),
        ),
        ("veth", obj(vec![("peer_if_name", json!("veth2"))])),
    ])
}

#[test]
fn every_spelling_at_every_level_decodes_alike() {
    fn camel(s: &str) -> String {
        let mut parts = s.split('_');
        let first = parts.next().unwrap_or_default().to_string();
        parts.fold(first, |acc, p| {
            let mut c = p.chars();
            match c.next() {
                Some(h) => format!("{acc}{}{}", h.to_ascii_uppercase(), c.as_str()),
                None => acc,
            }
        })
    }
    let canonical = ok(full_value(|s| s.to_string()));
    assert_eq!(canonical.host_if_name, "v1");
    assert_eq!(canonical.namespace, NamespaceRef::Named("ns1".into()));
    assert_eq!(canonical.veth_peer(), "veth2");
    let spellings: [fn(&str) -> String; 4] = [
        camel,
        |s| s.replace('_', "-"),
        |s| s.to_ascii_uppercase(),
        |s| s.replace("if", "If").replace("name", "Name"), // mixed-case snake
    ];
    for spell in spellings {
        let v = full_value(spell);
        assert_eq!(ok(v.clone()), canonical, "{v}");
    }
    // AUTO_TAP's nested `tap` too.
    for k in ["temp_if_name", "tempIfName", "temp-if-name", "TEMP_IF_NAME"] {
        let i = ok(json!({"name": "tap1", "type": 1, "tap": {k: "vpp-tap0"}}));
        assert_eq!(temp_name(&i), "vpp-tap0", "{k}");
    }
}

#[test]
fn spellings_that_are_not_accepted_are_unknown_with_a_suggestion() {
    for k in ["HostIfName", "hostifname", "host_ifname", "host-If-Name"] {
        rejected(
            veth(json!({k: "x"})),
            k,
            &[
                &format!("unknown field `{k}`"),
                "did you mean `host_if_name`?",
            ],
        );
    }
}

#[test]
fn same_field_twice_is_an_error() {
    let err = decode_interface(
        &key("veth1"),
        br#"{"name":"veth1","veth":{"peer_if_name":"veth2"},"host_if_name":"a","hostIfName":"b"}"#,
    )
    .unwrap_err();
    assert_eq!(err.field, "host_if_name");
    assert!(
        err.message
            .contains("twice (as `host_if_name` and as `hostIfName`)"),
        "{err}"
    );

    let err = decode_interface(&key("veth1"), br#"{"name":"veth1","name":"veth1"}"#).unwrap_err();
    assert_eq!(err.field, "name");
    assert_eq!(err.message, "field is given twice");

    let err = decode_interface(
        &key("veth1"),
        br#"{"name":"veth1","veth":{"peer_if_name":"veth2","peer-if-name":"veth2"}}"#,
    )
    .unwrap_err();
    assert_eq!(err.field, "veth.peer_if_name");
}

// ---- unknown fields ----

#[test]
fn unknown_fields_are_named_with_path_and_closest_suggestion() {
    rejected(
        veth(json!({"hostIfNme": "x"})),
        "hostIfNme",
        &["unknown field `hostIfNme`; did you mean `host_if_name`?"],
    );
    rejected(
        veth(json!({"namespace": {"type": 2, "nmae": "ns1"}})),
        "namespace.nmae",
        &["unknown field `nmae`; did you mean `name`?"],
    );
    rejected(
        veth(json!({"veth": {"peer": "veth2"}})),
        "veth.peer",
        &["did you mean `peer_if_name`?"],
    );
    rejected(
        veth(json!({"addresses": ["10.0.0.1/24"]})),
        "addresses",
        &["did you mean `ip_addresses`?"],
    );
    // The older agents' snake spelling with a typo in case and separator.
    rejected(
        veth(json!({"phys-adress": "x"})),
        "phys-adress",
        &["`phys_address`"],
    );
    // Nothing close: list the known fields.
    rejected(
        veth(json!({"zzzzzzzz": 1})),
        "zzzzzzzz",
        &["known fields: `name`, `description`, `type`"],
    );
}

// ---- JSON types ----

#[test]
fn wrong_json_types_name_field_and_expected_type() {
    let cases = [
        (
            json!({"mtu": "1500"}),
            "mtu",
            "expected an unsigned integer, found the string \"1500\"",
        ),
        (
            json!({"mtu": -1}),
            "mtu",
            "expected an unsigned integer, found the number -1",
        ),
        (
            json!({"mtu": 1500.5}),
            "mtu",
            "expected an unsigned integer",
        ),
        (json!({"mtu": 4_294_967_296_u64}), "mtu", "out of range"),
        (
            json!({"enabled": "yes"}),
            "enabled",
            "expected true or false, found the string \"yes\"",
        ),
        (json!({"enabled": 1}), "enabled", "expected true or false"),
        (
            json!({"name": 5}),
            "name",
            "expected a string, found the number 5",
        ),
        (
            json!({"description": ["a"]}),
            "description",
            "expected a string, found an array",
        ),
        (
            json!({"ip_addresses": "10.0.0.1/24"}),
            "ip_addresses",
            "expected an array of strings",
        ),
        (
            json!({"ip_addresses": ["10.0.0.1/24", 7]}),
            "ip_addresses[1]",
            "expected a string",
        ),
        (
            json!({"ip_addresses": [null]}),
            "ip_addresses[0]",
            "found null",
        ),
        (
            json!({"phys_address": 1}),
            "phys_address",
            "expected a string",
        ),
        (
            json!({"host_if_name": true}),
            "host_if_name",
            "expected a string",
        ),
        (
            json!({"namespace": "ns1"}),
            "namespace",
            "expected an object, found the string",
        ),
        (
            json!({"namespace": {"pid": "1"}}),
            "namespace.pid",
            "expected an unsigned integer",
        ),
        (json!({"veth": "veth2"}), "veth", "expected an object"),
        (
            json!({"veth": {"peer_if_name": 2}}),
            "veth.peer_if_name",
            "expected a string",
        ),
    ];
    for (patch, field, needle) in cases {
        rejected(veth(patch), field, &[needle]);
    }
}

#[test]
fn null_means_absent() {
    let v = json!({
        "name": "veth1", "description": null, "type": null, "enabled": null,
        "ip_addresses": null, "phys_address": null, "mtu": null, "host_if_name": null,
        "namespace": null, "tap": null, "veth": {"peer_if_name": "veth2"}
    });
    let i = ok(v);
    assert_eq!(i, ok(veth(json!({}))));
    assert_eq!(
        ns(json!({"type": null, "name": null})),
        Ok(NamespaceRef::Default)
    );
}

// ---- enums ----

#[test]
fn interface_type_by_number_or_name() {
    for t in [json!(0), json!("VETH")] {
        assert!(matches!(
            ok(veth(json!({"type": t}))).link,
            LinkKind::Veth(_)
        ));
    }
    for t in [json!(1), json!("AUTO_TAP")] {
        let i = ok(json!({"name": "tap1", "type": t}));
        assert!(matches!(i.link, LinkKind::AutoTap(_)));
    }
    for t in [
        json!("veth"),
        json!(7),
        json!(-1),
        json!("1"),
        json!(true),
        json!(0.5),
    ] {
        rejected(
            veth(json!({"type": t})),
            "type",
            &["expected one of VETH (0), AUTO_TAP (1), TAP (2), LOOPBACK (3), EXISTING (4), VRF_DEVICE (5), DUMMY (6)"],
        );
    }
}

#[test]
fn namespace_type_by_number_or_name() {
    let cases = [
        (0, "PID_REF_NS", json!({"pid": 42}), NamespaceRef::Pid(42)),
        (
            1,
            "MICROSERVICE_REF_NS",
            json!({"microservice": "web"}),
            NamespaceRef::Microservice("web".into()),
        ),
        (
            2,
            "NAMED_NS",
            json!({"name": "ns1"}),
            NamespaceRef::Named("ns1".into()),
        ),
        (
            3,
            "FILE_REF_NS",
            json!({"filepath": "/proc/1/ns/net"}),
            NamespaceRef::File("/proc/1/ns/net".into()),
        ),
    ];
    for (number, name, mut value, expected) in cases {
        for t in [json!(number), json!(name)] {
            value["type"] = t;
            assert_eq!(ns(value.clone()), Ok(expected.clone()), "{value}");
        }
    }
    let err = ns(json!({"type": "named_ns", "name": "ns1"})).unwrap_err();
    assert_eq!(err.field, "namespace.type");
    assert!(
        err.message
            .contains("PID_REF_NS (0), MICROSERVICE_REF_NS (1), NAMED_NS (2), FILE_REF_NS (3)"),
        "{err}"
    );
    assert_eq!(ns(json!({"type": 4})).unwrap_err().field, "namespace.type");
}

// ---- namespaces ----

#[test]
fn zero_value_namespaces_are_the_default() {
    for v in [
        json!(null),
        json!({}),
        json!({"type": 0}),
        json!({"type": 0, "pid": 0}),
        json!({"type": "PID_REF_NS", "pid": 0, "name": "", "microservice": "", "filepath": ""}),
    ] {
        assert_eq!(ns(v.clone()), Ok(NamespaceRef::Default), "{v}");
    }
    assert_eq!(ok(veth(json!({}))).namespace, NamespaceRef::Default);
}

#[test]
fn a_namespace_type_that_names_something_needs_its_field() {
    for (v, field) in [
        (json!({"type": "NAMED_NS", "name": ""}), "namespace.name"),
        (json!({"type": 2, "name": ""}), "namespace.name"),
        (json!({"type": "NAMED_NS"}), "namespace.name"),
        (json!({"type": 3, "filepath": ""}), "namespace.filepath"),
        (
            json!({"type": 2, "name": "", "pid": 0, "microservice": "", "filepath": ""}),
            "namespace.name",
        ),
    ] {
        let e = ns(v.clone()).unwrap_err();
        assert_eq!(e.field, field, "{v}");
        assert!(e.message.contains("is required"), "{v}: {e}");
        assert!(e.message.contains("leave `namespace` out"), "{v}: {e}");
    }
}

#[test]
fn addresses_that_are_almost_surely_mistakes_are_invalid() {
    for (address, why) in [
        ("0.0.0.0/0", "unspecified"),
        ("0.0.0.0/24", "unspecified"),
        ("::/0", "unspecified"),
        ("224.0.0.5/24", "multicast"),
        ("ff02::1/64", "multicast"),
        ("127.0.0.1/8", "loopback"),
        ("::1/128", "loopback"),
        ("255.255.255.255/32", "broadcast"),
    ] {
        let e = decode(&veth(json!({"ip_addresses": ["10.0.0.1/24", address]}))).unwrap_err();
        assert_eq!(e.field, "ip_addresses[1]", "{address}");
        assert!(e.message.contains(why), "{address}: {e}");
    }
    let i = ok(veth(
        json!({"ip_addresses": ["fe80::1/64", "10.0.0.0/8", "100.64.0.1/10"]}),
    ));
    assert_eq!(i.ip_addresses.len(), 3);
}

#[test]
fn the_ownership_alias_must_fit_the_kernel_limit() {
    // `/vnf-agent/vpp1/` is 16 bytes: 16 + 119 + 1 + 119 = 255 fits, one byte more does not.
    let (a, b) = ("a".repeat(119), "b".repeat(119));
    let fits = json!({"name": a, "host_if_name": "x1", "veth": {"peer_if_name": b}});
    assert!(decode_interface(&key(&a), fits.to_string().as_bytes()).is_ok());
    let b = "b".repeat(120);
    let long = json!({"name": a, "host_if_name": "x1", "veth": {"peer_if_name": b}});
    let e = decode_interface(&key(&a), long.to_string().as_bytes()).unwrap_err();
    assert_eq!(e.field, "name");
    assert!(e.message.contains("256 bytes long"), "{e}");
    assert!(e.message.contains("allows 255"), "{e}");
}

#[test]
fn microservice_needs_a_label() {
    for v in [json!({"type": 1}), json!({"type": 1, "microservice": ""})] {
        rejected(
            veth(json!({ "namespace": v })),
            "namespace.microservice",
            &["is required", "MICROSERVICE_REF_NS (1)"],
        );
    }
}

#[test]
fn field_of_another_namespace_type_is_an_error() {
    rejected(
        veth(json!({"namespace": {"name": "ns1"}})),
        "namespace.name",
        &[
            "`namespace.name` is set but `namespace.type` is PID_REF_NS (0, the default when `type` is absent)",
            "set `type` to NAMED_NS (2)",
        ],
    );
    rejected(
        veth(json!({"namespace": {"type": 2, "name": "ns1", "pid": 7}})),
        "namespace.pid",
        &[
            "`namespace.type` is NAMED_NS (2);",
            "set `type` to PID_REF_NS (0)",
        ],
    );
    // arp-linux.json's namespace: FILE_REF_NS with a name.
    rejected(
        veth(json!({"namespace": {"name": "ns1", "type": 3}})),
        "namespace.name",
        &["FILE_REF_NS (3)"],
    );
    rejected(
        veth(json!({"namespace": {"type": "PID_REF_NS", "microservice": "web"}})),
        "namespace.microservice",
        &["set `type` to MICROSERVICE_REF_NS (1)"],
    );
    rejected(
        veth(json!({"namespace": {"type": 1, "microservice": "web", "filepath": "/x"}})),
        "namespace.filepath",
        &["set `type` to FILE_REF_NS (3)"],
    );
    // Zero values of the other fields are "not set".
    assert_eq!(
        ns(json!({"type": 2, "name": "ns1", "pid": 0, "filepath": ""})),
        Ok(NamespaceRef::Named("ns1".into()))
    );
}

#[test]
fn named_namespace_names_are_file_names() {
    assert_eq!(
        ns(json!({"type": 2, "name": "ns-1.a_b"})),
        Ok(NamespaceRef::Named("ns-1.a_b".into()))
    );
    for bad in ["a/b", ".", "..", "a\u{0}b", &"n".repeat(256)] {
        let err = ns(json!({"type": 2, "name": bad})).unwrap_err();
        assert_eq!(err.field, "namespace.name", "{bad}: {err}");
    }
}

#[test]
fn file_namespace_path_is_absolute() {
    for bad in ["proc/1/ns/net", "./ns", "ns1", "/a\u{0}b"] {
        let err = ns(json!({"type": 3, "filepath": bad})).unwrap_err();
        assert_eq!(err.field, "namespace.filepath", "{bad}: {err}");
        assert!(err.message.contains("absolute"), "{err}");
    }
}

// ---- addresses ----

#[test]
fn ip_addresses_are_kept_as_given() {
    let i = ok(veth(
        json!({"ip_addresses": ["192.168.22.1/24", "2001:db8:22::1/64", "10.0.0.0/8"]}),
    ));
    let texts: Vec<String> = i.ip_addresses.iter().map(ToString::to_string).collect();
    assert_eq!(
        texts,
        ["192.168.22.1/24", "2001:db8:22::1/64", "10.0.0.0/8"]
    );
}

#[test]
fn ip_addresses_need_a_prefix_length() {
    rejected(
        veth(json!({"ip_addresses": ["10.0.0.1/24", "10.0.0.2"]})),
        "ip_addresses[1]",
        &["\"10.0.0.2\" has no prefix length", "`10.0.0.2/24`"],
    );
    rejected(
        veth(json!({"ip_addresses": ["2001:db8::2"]})),
        "ip_addresses[0]",
        &["`2001:db8::2/64`"],
    );
    for bad in [
        "10.0.0.1/33",
        "2001:db8::1/129",
        "10.0.0.256/24",
        "host/24",
        "",
        "10.0.0.1/",
        "10.0.0.1/24 ",
    ] {
        rejected(
            veth(json!({"ip_addresses": [bad]})),
            "ip_addresses[0]",
            &["is not an address with prefix length"],
        );
    }
}

#[test]
fn duplicate_ip_addresses_are_errors() {
    rejected(
        veth(json!({"ip_addresses": ["10.0.0.1/24", "10.0.0.2/24", "10.0.0.1/24"]})),
        "ip_addresses[2]",
        &["10.0.0.1 is already given in `ip_addresses[0]`"],
    );
    // The same address with another prefix length is the same address in the kernel.
    rejected(
        veth(json!({"ip_addresses": ["2001:db8::1/64", "2001:db8::1/48"]})),
        "ip_addresses[1]",
        &["already given"],
    );
}

// ---- MAC ----

#[test]
fn phys_address_forms() {
    let expected = Some(MacAddr([0xd2, 0x74, 0x8c, 0x12, 0x67, 0xd2]));
    for text in [
        "d2:74:8c:12:67:d2",
        "D2:74:8C:12:67:D2",
        "d2-74-8c-12-67-d2",
        "D2-74-8c-12-67-d2",
    ] {
        assert_eq!(
            ok(veth(json!({"phys_address": text}))).phys_address,
            expected,
            "{text}"
        );
    }
    assert_eq!(ok(veth(json!({"phys_address": ""}))).phys_address, None);
}

#[test]
fn invalid_phys_addresses_are_rejected() {
    for bad in [
        "d2:74:8c:12:67",
        "d2:74:8c:12:67:d2:00",
        "d2:74:8c:12:67:d",
        "d2:74:8c:12:67:d2:",
        "d2:74-8c:12:67:d2",
        "d274.8c12.67d2",
        "g2:74:8c:12:67:d2",
        "+2:74:8c:12:67:d2",
        "d2:74:8c:12:67:d2 ",
    ] {
        rejected(
            veth(json!({"phys_address": bad})),
            "phys_address",
            &["is not a MAC address"],
        );
    }
    rejected(
        veth(json!({"phys_address": "01:00:5e:00:00:01"})),
        "phys_address",
        &["multicast"],
    );
    rejected(
        veth(json!({"phys_address": "ff:ff:ff:ff:ff:ff"})),
        "phys_address",
        &["multicast"],
    );
    rejected(
        veth(json!({"phys_address": "00:00:00:00:00:00"})),
        "phys_address",
        &["not a valid link address"],
    );
}

// ---- MTU ----

#[test]
fn mtu_range() {
    for (mtu, expected) in [(0, 0), (68, 68), (1500, 1500), (65535, 65535)] {
        assert_eq!(ok(veth(json!({"mtu": mtu}))).mtu, expected);
    }
    rejected(
        veth(json!({"mtu": 1})),
        "mtu",
        &["below the kernel minimum of 68"],
    );
    rejected(
        veth(json!({"mtu": 67})),
        "mtu",
        &["below the kernel minimum of 68"],
    );
    rejected(
        veth(json!({"mtu": 65536})),
        "mtu",
        &["above the maximum of 65535"],
    );
}

// ---- names ----

#[test]
fn name_is_required_and_equals_the_key() {
    let err = decode_interface(&key("veth1"), br#"{"veth":{"peer_if_name":"veth2"}}"#).unwrap_err();
    assert_eq!(err.field, "name");
    assert!(err.message.contains("required"), "{err}");
    let err = decode_interface(&key("veth1"), br#"{"name":""}"#).unwrap_err();
    assert_eq!(err.field, "name");
    let err = decode_interface(
        &key("veth9"),
        br#"{"name":"veth1","veth":{"peer_if_name":"veth2"}}"#,
    )
    .unwrap_err();
    assert_eq!(err.field, "name");
    assert!(
        err.message.contains("\"veth1\"") && err.message.contains("\"veth9\""),
        "{err}"
    );
    // A bare name as the key works too.
    assert!(decode_interface(
        "veth1",
        br#"{"name":"veth1","veth":{"peer_if_name":"veth2"}}"#
    )
    .is_ok());
}

#[test]
fn host_if_name_defaults_to_name() {
    assert_eq!(ok(veth(json!({}))).host_if_name, "veth1");
    assert_eq!(ok(veth(json!({"host_if_name": ""}))).host_if_name, "veth1");
    assert_eq!(
        ok(veth(json!({"host_if_name": "eth0"}))).host_if_name,
        "eth0"
    );
}

#[test]
fn host_if_name_must_be_a_link_name() {
    let fifteen = "a".repeat(15);
    assert_eq!(
        ok(veth(json!({"host_if_name": fifteen}))).host_if_name,
        fifteen
    );
    assert_eq!(ok(veth(json!({"host_if_name": "ø-é"}))).host_if_name, "ø-é");
    let cases = [
        ("a".repeat(16), "16 bytes long"),
        ("éééééééé".to_string(), "16 bytes long"),
        ("a/b".to_string(), "'/'"),
        ("a b".to_string(), "' '"),
        ("a\tb".to_string(), "'\\t'"),
        ("a:b".to_string(), "':'"),
        ("a\u{0}b".to_string(), "'\\0'"),
        (".".to_string(), "not a valid link name"),
        ("..".to_string(), "not a valid link name"),
    ];
    for (bad, needle) in cases {
        rejected(
            veth(json!({"host_if_name": bad})),
            "host_if_name",
            &[needle],
        );
    }
}

#[test]
fn name_used_as_host_name_is_checked_on_name() {
    let long = "a-very-long-veth-name";
    let err = decode_interface(
        &key(long),
        json!({"name": long, "veth": {"peer_if_name": "veth2"}})
            .to_string()
            .as_bytes(),
    )
    .unwrap_err();
    assert_eq!(err.field, "name");
    assert!(err.message.contains("no `host_if_name` is given"), "{err}");
    assert!(err.message.contains("21 bytes long"), "{err}");
    // With a host name the logical name may be long.
    let v = json!({"name": long, "host_if_name": "short", "veth": {"peer_if_name": "veth2"}});
    assert!(decode_interface(&key(long), v.to_string().as_bytes()).is_ok());
}

// ---- VETH and TAP ----

#[test]
fn veth_needs_a_peer_that_is_another_interface() {
    for v in [
        json!({"name": "veth1"}),
        json!({"name": "veth1", "veth": {}}),
        json!({"name": "veth1", "veth": {"peer_if_name": ""}}),
    ] {
        rejected(v, "veth.peer_if_name", &["is required for a VETH"]);
    }
    rejected(
        veth(json!({"veth": {"peer_if_name": "veth1"}})),
        "veth.peer_if_name",
        &["the interface itself"],
    );
    rejected(
        veth(json!({"veth": {"peer_if_name": "a/b"}})),
        "veth.peer_if_name",
        &["contains `/`"],
    );
    rejected(
        veth(json!({"tap": {"temp_if_name": "tap0"}})),
        "tap.temp_if_name",
        &["set `type` to AUTO_TAP (1)"],
    );
    let i = ok(veth(json!({"tap": {}})));
    assert_eq!((i.veth_peer(), temp_name(&i)), ("veth2", ""));
}

#[test]
fn auto_tap_temp_name_defaults_to_host_name() {
    let i = ok(json!({"name": "tap1", "type": 1, "host_if_name": "linux-tap"}));
    assert_eq!(temp_name(&i), "linux-tap");
    let i = ok(json!({"name": "tap1", "type": "AUTO_TAP"}));
    assert_eq!((i.host_if_name.as_str(), temp_name(&i)), ("tap1", "tap1"));
    let i = ok(json!({"name": "tap1", "type": 1, "tap": {"temp_if_name": "tap0"}}));
    assert_eq!(temp_name(&i), "tap0");
    assert_eq!(i.veth_peer(), "");
    rejected(
        json!({"name": "tap1", "type": 1, "tap": {"temp_if_name": "x".repeat(16)}}),
        "tap.temp_if_name",
        &["16 bytes long"],
    );
    rejected(
        json!({"name": "tap1", "type": 1, "veth": {"peer_if_name": "veth2"}}),
        "veth.peer_if_name",
        &["set `type` to VETH (0)"],
    );
}

#[test]
fn description_is_free_text() {
    let text = "line 1\nline 2 — ünïcode / : \t";
    assert_eq!(ok(veth(json!({"description": text}))).description, text);
}

// ---- published examples ----

#[test]
fn v1_veth_examples_decode() {
    let veth1 = r#"{
        "enabled": true, "mtu": 1500,
        "ip_addresses": ["192.168.22.1/24", "2001:db8:0:0:0:ff00:89e3:bb42/48"],
        "namespace": {"name": "ns1", "type": 2},
        "name": "veth1", "host_if_name": "veth1Name", "phys_address": "d2:74:8c:12:67:d2",
        "type": 0, "veth": {"peer_if_name": "veth2"}
    }"#;
    let i = decode_interface(&key("veth1"), veth1.as_bytes()).unwrap();
    assert_eq!(
        i,
        Interface {
            name: "veth1".into(),
            description: String::new(),
            enabled: true,
            ip_addresses: vec![
                "192.168.22.1/24".parse().unwrap(),
                "2001:db8::ff00:89e3:bb42/48".parse().unwrap()
            ],
            phys_address: Some(MacAddr([0xd2, 0x74, 0x8c, 0x12, 0x67, 0xd2])),
            mtu: 1500,
            host_if_name: "veth1Name".into(),
            namespace: NamespaceRef::Named("ns1".into()),
            vrf_master_interface: String::new(),
            link: LinkKind::Veth(Veth {
                peer: "veth2".into(),
            }),
        }
    );
    let veth2 = r#"{
        "enabled": true, "mtu": 1500,
        "ip_addresses": ["192.168.22.2/24", "2001:842:0:0:0:ff00:13c7:1245/48"],
        "namespace": {"name": "ns2", "type": 2},
        "name": "veth2", "host_if_name": "veth2Name", "phys_address": "92:c7:42:67:ab:cd",
        "type": 0, "veth": {"peer_if_name": "veth1"}
    }"#;
    let i = decode_interface(&key("veth2"), veth2.as_bytes()).unwrap();
    assert_eq!(i.namespace, NamespaceRef::Named("ns2".into()));
    assert_eq!(i.veth_peer(), "veth1");
    assert_eq!(i.host_if_name, "veth2Name");
}

#[test]
fn v1_tap_example_decodes() {
    let tap = r#"{
      "name": "tap1", "host_if_name": "linux-tap", "enabled": true, "type": 1, "mtu": 1500,
      "phys_address": "92:c7:42:67:ab:cc", "namespace": {"type": 2, "name": "ns1"},
      "ip_addresses": ["172.52.45.127/24"], "tap": {"temp_if_name": "tap1"}
    }"#;
    let i = decode_interface(&key("tap1"), tap.as_bytes()).unwrap();
    assert!(matches!(i.link, LinkKind::AutoTap(_)));
    assert_eq!(temp_name(&i), "tap1");
    assert_eq!(i.host_if_name, "linux-tap");
}

#[test]
fn model_md_examples_decode() {
    let i = ok(
        json!({"name": "veth2", "enabled": true, "host_if_name": "veth2Name",
        "ip_addresses": ["192.168.22.2/24"],
        "namespace": {"type": "MICROSERVICE_REF_NS", "microservice": "web"},
        "veth": {"peer_if_name": "veth1"}}),
    );
    assert_eq!(i.namespace, NamespaceRef::Microservice("web".into()));
}

#[test]
fn route_example_is_not_an_interface() {
    // routes-linux-static.json from the v1 examples.
    let route = json!({"name": "route1", "dst-ip-addr": "10.0.2.0/24", "interface": "veth1",
        "metric": 100, "namespace": {"name": "ns1", "type": 2}});
    assert_eq!(decode(&route).unwrap_err().field, "dst-ip-addr");
}

// ---- canonical form ----

#[test]
fn canonical_json_is_snake_case_with_names_and_no_zero_values() {
    let i = ok(
        json!({"name": "veth1", "hostIfName": "", "type": 0, "mtu": 0, "enabled": false,
        "description": "", "phys-address": "", "namespace": {"type": 0, "pid": 0},
        "veth": {"peerIfName": "veth2"}}),
    );
    assert_eq!(
        i.to_canonical_json(),
        json!({"name": "veth1", "host_if_name": "veth1", "veth": {"peer_if_name": "veth2"}})
    );
    let i = ok(
        json!({"name": "tap1", "type": 1, "enabled": true, "mtu": 9000,
        "description": "d", "ipAddresses": ["10.0.0.1/8"], "phys_address": "D2-74-8C-12-67-D2",
        "namespace": {"type": 0, "pid": 42}}),
    );
    assert_eq!(
        i.to_canonical_json(),
        json!({"name": "tap1", "type": "AUTO_TAP", "enabled": true, "mtu": 9000,
            "description": "d", "ip_addresses": ["10.0.0.1/8"], "phys_address": "d2:74:8c:12:67:d2",
            "host_if_name": "tap1", "namespace": {"type": "PID_REF_NS", "pid": 42},
            "tap": {"temp_if_name": "tap1"}})
    );
}

// ---- cross-value rules ----

#[test]
fn host_name_conflicts() {
    let a = ok(veth(
        json!({"host_if_name": "eth0", "namespace": {"type": 2, "name": "ns1"}}),
    ));
    let mut b = ok(json!({"name": "veth2", "host_if_name": "eth0",
        "namespace": {"type": "NAMED_NS", "name": "ns1"}, "veth": {"peer_if_name": "veth1"}}));
    assert!(host_name_conflict(&a, &b));
    assert!(
        !host_name_conflict(&a, &a),
        "an interface does not conflict with itself"
    );
    b.namespace = NamespaceRef::Named("ns2".into());
    assert!(!host_name_conflict(&a, &b));
    b.namespace = a.namespace.clone();
    b.host_if_name = "eth1".into();
    assert!(!host_name_conflict(&a, &b));
}

// ---- properties ----

fn link_name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_.@-]{1,15}".prop_filter("not . or ..", |s| s != "." && s != "..")
}

pub(super) fn namespace_ref() -> impl Strategy<Value = NamespaceRef> {
    prop_oneof![
        Just(NamespaceRef::Default),
        (1u32..).prop_map(NamespaceRef::Pid),
        ".{1,20}".prop_map(NamespaceRef::Microservice),
        "[a-zA-Z0-9_. -]{1,30}"
            .prop_filter("not . or ..", |s| s != "." && s != "..")
            .prop_map(NamespaceRef::Named),
        "(/[a-z0-9.]{0,8}){1,4}".prop_map(|p| NamespaceRef::File(p.into())),
    ]
}

pub(super) fn ip_net() -> impl Strategy<Value = ipnet::IpNet> {
    prop_oneof![
        (any::<std::net::Ipv4Addr>(), 0u8..=32)
            .prop_map(|(a, p)| ipnet::Ipv4Net::new(a, p).unwrap().into()),
        (any::<std::net::Ipv6Addr>(), 0u8..=128)
            .prop_map(|(a, p)| ipnet::Ipv6Net::new(a, p).unwrap().into()),
    ]
}

/// Addresses a link may have (no unspecified, multicast, loopback or broadcast address).
fn link_ip_net() -> impl Strategy<Value = ipnet::IpNet> {
    ip_net().prop_filter("usable on a link", |n| {
        let ip = n.addr();
        !(ip.is_unspecified()
            || ip.is_multicast()
            || ip.is_loopback()
            || ip == std::net::IpAddr::V4(std::net::Ipv4Addr::BROADCAST))
    })
}

prop_compose! {
    pub(super) fn valid_interface()(
        name in "[a-z][a-z0-9-]{0,30}",
        description in ".{0,40}",
        tap in any::<bool>(),
        enabled in any::<bool>(),
        ips in proptest::collection::vec(link_ip_net(), 0..5),
        mac in proptest::option::of(any::<[u8; 6]>()),
        mtu in prop_oneof![Just(0u32), 68u32..=65535],
        host_if_name in link_name(),
        namespace in namespace_ref(),
        other in "[a-z][a-z0-9]{0,30}",
        temp in link_name(),
    ) -> Interface {
        let mut ip_addresses: Vec<ipnet::IpNet> = Vec::new();
        for ip in ips {
            if !ip_addresses.iter().any(|n| n.addr() == ip.addr()) {
                ip_addresses.push(ip);
            }
        }
        let phys_address = mac
            .map(|mut m| { m[0] &= 0xfe; m[5] |= 1; MacAddr(m) });
        let link = if tap {
            LinkKind::AutoTap(AutoTap { temp_name: temp })
        } else {
            LinkKind::Veth(Veth { peer: format!("{other}-peer") })
        };
        Interface {
            name, description, enabled, ip_addresses, phys_address, mtu,
            host_if_name, namespace, link, vrf_master_interface: String::new(),
        }
    }
}

/// Respells every key of `v`, recursively: canonical, lowerCamel, kebab or upper case,
/// chosen by successive bits of `seed`.
pub(super) fn respell(v: &Value, seed: &mut u64) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| {
                    let choice = *seed % 4;
                    *seed = seed.rotate_right(2);
                    let k = match choice {
                        0 => k.clone(),
                        1 => k.split('_').enumerate().fold(String::new(), |acc, (i, p)| {
                            if i == 0 {
                                p.to_string()
                            } else {
                                acc + &p[..1].to_ascii_uppercase() + &p[1..]
                            }
                        }),
                        2 => k.replace('_', "-"),
                        _ => k.to_ascii_uppercase(),
                    };
                    (k, respell(x, seed))
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Arbitrary JSON whose object keys are often (mis)spellings of the model's fields (of all
/// three kinds).
pub(super) fn any_json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        prop::sample::select(vec![
            "name",
            "type",
            "mtu",
            "enabled",
            "ip_addresses",
            "phys_address",
            "host_if_name",
            "hostIfName",
            "namespace",
            "veth",
            "tap",
            "pid",
            "microservice",
            "filepath",
            "peer_if_name",
            "temp_if_name",
            "description",
            "NAME",
            "default",
            "interface",
            "scope",
            "dst_ip_addr",
            "src_ip_addr",
            "gw_addr",
            "gwAddr",
            "metric",
            "table",
            "ip_family",
            "family",
            "state",
            "ip_addr",
            "hw_address",
        ])
        .prop_map(String::from),
        ".{0,12}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop::sample::select(vec![
            "veth1",
            "",
            "NAMED_NS",
            "10.0.0.1/24",
            "aa:bb:cc:dd:ee:ff",
            "/x",
            "192.168.1.1",
            "fe80::1",
            "0.0.0.0/0",
            "LINK",
            "IPV6",
            "STALE",
        ])
        .prop_map(Value::from),
        ".{0,20}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((key.clone(), inner), 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn canonical_json_round_trips(iface in valid_interface(), seed in any::<u64>()) {
        let canonical = iface.to_canonical_json();
        let decoded = decode_interface(&key(&iface.name), canonical.to_string().as_bytes());
        prop_assert_eq!(decoded, Ok(iface.clone()));
        let mut seed = seed;
        let respelled = respell(&canonical, &mut seed);
        let decoded = decode_interface(&key(&iface.name), respelled.to_string().as_bytes());
        prop_assert_eq!(decoded, Ok(iface));
    }

    #[test]
    fn decode_never_panics_on_json(v in any_json(), name in "[a-z0-9]{0,4}") {
        let _ = decode_interface(&key(&name), v.to_string().as_bytes());
        let _ = decode_interface(&key("veth1"), json!({"name": "veth1", "namespace": v.clone(), "veth": v}).to_string().as_bytes());
    }

    #[test]
    fn decode_never_panics_on_text(text in ".*", bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = decode_interface(&key("veth1"), text.as_bytes());
        let _ = decode_interface(&key("veth1"), &bytes);
    }

    #[test]
    fn errors_always_carry_the_key(v in any_json()) {
        if let Err(e) = decode_interface(&key("veth1"), v.to_string().as_bytes()) {
            prop_assert_eq!(e.key, key("veth1"));
            prop_assert!(!e.message.is_empty());
        }
    }
}

#[test]
fn single_link_kinds_decode_and_round_trip() {
    use crate::model::link::{Lifecycle, OwnedLink};
    let cases = [
        (
            json!({"name": "d1", "type": "DUMMY"}),
            Lifecycle::Owned(OwnedLink::plain("dummy")),
        ),
        (
            json!({"name": "d1", "type": 6}),
            Lifecycle::Owned(OwnedLink::plain("dummy")),
        ),
        (
            json!({"name": "t1", "type": "TAP"}),
            Lifecycle::Owned(OwnedLink::plain("tun")),
        ),
        (
            json!({"name": "v1", "type": "VRF_DEVICE", "vrf_dev": {"routing_table": 10}}),
            Lifecycle::Owned(OwnedLink {
                kind: "vrf",
                table: Some(10),
                default_mtu: 65575,
            }),
        ),
        (
            json!({"name": "e1", "type": "EXISTING", "link_only": true}),
            Lifecycle::Existing { link_only: true },
        ),
        (
            json!({"name": "l1", "type": 3}),
            Lifecycle::Existing { link_only: false },
        ),
    ];
    for (value, lifecycle) in cases {
        let i = ok(value.clone());
        assert_eq!(i.link.lifecycle(), lifecycle, "{value}");
        let again = decode(&i.to_canonical_json()).unwrap();
        assert_eq!(again, i, "{value} round trip");
    }
    let lo = ok(json!({"name": "l1", "type": "LOOPBACK", "ip_addresses": ["127.0.0.2/8"]}));
    assert_eq!(lo.host_if_name, "lo");
}

#[test]
fn single_link_kinds_refuse_what_the_kernel_would() {
    rejected(
        json!({"name": "v1", "type": "VRF_DEVICE"}),
        "vrf_dev.routing_table",
        &["is required for a VRF_DEVICE"],
    );
    rejected(
        json!({"name": "v1", "type": "VRF_DEVICE", "vrf_dev": {"routing_table": 254}}),
        "vrf_dev.routing_table",
        &["254 is the kernel's main table"],
    );
    rejected(
        json!({"name": "v1", "type": "VRF_DEVICE", "vrf_dev": {"routing_table": 10},
            "vrf_master_interface": "v2"}),
        "vrf_master_interface",
        &["a VRF_DEVICE cannot join another VRF"],
    );
    rejected(
        json!({"name": "d1", "type": "DUMMY", "vrf_dev": {"routing_table": 5}}),
        "vrf_dev.routing_table",
        &["is set but `type` is DUMMY (6); set `type` to VRF_DEVICE (5)"],
    );
    rejected(
        json!({"name": "l1", "type": "LOOPBACK", "host_if_name": "lo0"}),
        "host_if_name",
        &["a LOOPBACK is always `lo`"],
    );
    rejected(
        json!({"name": "d1", "type": "DUMMY", "ip_addresses": ["127.0.0.2/8"]}),
        "ip_addresses[0]",
        &["loopback address"],
    );
    rejected(
        json!({"name": "d1", "type": "DUMMY", "vrf_master_interface": "d1"}),
        "vrf_master_interface",
        &["the interface itself"],
    );
    rejected(
        veth(json!({"type": "DUMMY"})),
        "veth.peer_if_name",
        &["set `type` to VETH (0)"],
    );
}
