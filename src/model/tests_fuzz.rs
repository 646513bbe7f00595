//! Bad input at volume: properties over arbitrary bytes, arbitrary JSON, and valid values with
//! one field broken, for the three kinds, decoded under arbitrary keys; and the key tree's
//! parsing over arbitrary strings.
//!
//! For any input: decoding never panics; every error carries the exact key; when the value
//! is one JSON object the error names a field, and that field is a real field path of the
//! kind (an index only of an element the value has) or an unknown member the value has; its
//! Display shows key and field; every accepted value re-encodes to canonical JSON that
//! decodes to the same value.
//!
//! CI runs proptest's default case count; at volume (a debug build also catches integer
//! overflow): `PROPTEST_CASES=100000 cargo test --lib model::tests_fuzz`.

use super::tests::{respell, valid_interface};
use super::tests_arp::valid_arp;
use super::tests_route::valid_route;
use super::*;
use crate::keys::{agent_prefix_of, ItemKind, KeyTree, ROOT};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{json, Value};

/// The field paths and object paths of one kind of value.
struct Model {
    /// Every field path (`[]` stands for an index).
    paths: &'static [&'static str],
    /// The objects whose members are matched to known names (`""` is the value itself).
    objects: &'static [&'static str],
    /// Top-level fields that are checked together: a problem caused by one of them may be
    /// reported on another of the same group.
    groups: &'static [&'static [&'static str]],
}

const NAMESPACE_PATHS: [&str; 6] = [
    "namespace",
    "namespace.type",
    "namespace.pid",
    "namespace.microservice",
    "namespace.name",
    "namespace.filepath",
];

const INTERFACE: Model = Model {
    paths: &[
        "name",
        "description",
        "type",
        "enabled",
        "ip_addresses",
        "ip_addresses[]",
        "phys_address",
        "mtu",
        "host_if_name",
        NAMESPACE_PATHS[0],
        NAMESPACE_PATHS[1],
        NAMESPACE_PATHS[2],
        NAMESPACE_PATHS[3],
        NAMESPACE_PATHS[4],
        NAMESPACE_PATHS[5],
        "veth",
        "veth.peer_if_name",
        "tap",
        "tap.temp_if_name",
    ],
    objects: &["", "namespace", "veth", "tap"],
    // The host name defaults to `name`, the ownership alias is `name` + peer; `type` decides
    // which of `veth` and `tap` may be set, and a LOOPBACK's host name (always `lo`) and
    // addresses (loopback ones allowed).
    groups: &[
        &["name", "host_if_name", "veth"],
        &[
            "type",
            "veth",
            "tap",
            "host_if_name",
            "ip_addresses",
            "vrf_master_interface",
        ],
    ],
};

const ROUTE: Model = Model {
    paths: &[
        "name",
        "default",
        NAMESPACE_PATHS[0],
        NAMESPACE_PATHS[1],
        NAMESPACE_PATHS[2],
        NAMESPACE_PATHS[3],
        NAMESPACE_PATHS[4],
        NAMESPACE_PATHS[5],
        "interface",
        "description",
        "scope",
        "scope.type",
        "dst_ip_addr",
        "src_ip_addr",
        "gw_addr",
        "metric",
        "table",
    ],
    objects: &["", "namespace", "scope"],
    // Destination, gateway, source, scope and interface are checked against each other.
    groups: &[&[
        "default",
        "dst_ip_addr",
        "src_ip_addr",
        "gw_addr",
        "scope",
        "interface",
    ]],
};

const ARP: Model = Model {
    paths: &[
        "name",
        NAMESPACE_PATHS[0],
        NAMESPACE_PATHS[1],
        NAMESPACE_PATHS[2],
        NAMESPACE_PATHS[3],
        NAMESPACE_PATHS[4],
        NAMESPACE_PATHS[5],
        "interface",
        "ip_family",
        "ip_family.family",
        "state",
        "state.type",
        "ip_addr",
        "hw_address",
    ],
    objects: &["", "namespace", "ip_family", "state"],
    // `ip_family` must agree with `ip_addr`.
    groups: &[&["ip_addr", "ip_family"]],
};

/// The value of an ownership record of a namespace ([`decode_namespace`]).
const NAMESPACE_RECORD: Model = Model {
    paths: &NAMESPACE_PATHS,
    objects: &["", "namespace"],
    groups: &[],
};

const KINDS: [ItemKind; 3] = [ItemKind::Interface, ItemKind::Route, ItemKind::Arp];

fn model(kind: ItemKind) -> &'static Model {
    match kind {
        ItemKind::Interface => &INTERFACE,
        ItemKind::Route => &ROUTE,
        ItemKind::Arp => &ARP,
    }
}

fn any_kind() -> impl Strategy<Value = ItemKind> {
    prop::sample::select(KINDS.to_vec())
}

// ---- the oracle: what a field path of a value is ----

fn lower_camel(snake: &str) -> String {
    let mut parts = snake.split('_');
    let first = parts.next().unwrap_or_default().to_string();
    parts.fold(first, |acc, p| {
        let mut c = p.chars();
        match c.next() {
            Some(h) => format!("{acc}{}{}", h.to_ascii_uppercase(), c.as_str()),
            None => acc,
        }
    })
}

/// True when `given` spells the snake_case `canonical` as the README allows: in any letter
/// case, in kebab-case or in lowerCamelCase.
fn spells(given: &str, canonical: &str) -> bool {
    given.eq_ignore_ascii_case(canonical)
        || given == canonical.replace('_', "-")
        || given == lower_camel(canonical)
}

/// The member of object `v` that spells `canonical`, if any.
fn member<'a>(v: &'a Value, canonical: &str) -> Option<&'a Value> {
    v.as_object()?
        .iter()
        .find(|(k, _)| spells(k, canonical))
        .map(|(_, x)| x)
}

/// The part of `v` at a canonical field path (`namespace.type`, `ip_addresses[1]`).
fn at_path<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    if path.is_empty() {
        return Some(v);
    }
    path.split('.')
        .try_fold(v, |v, segment| match segment.split_once('[') {
            Some((name, index)) => member(v, name)?
                .as_array()?
                .get(index.strip_suffix(']')?.parse::<usize>().ok()?),
            None => member(v, segment),
        })
}

/// `field` with every index replaced by `[]`.
fn pattern(field: &str) -> String {
    let mut out = String::new();
    let mut in_index = false;
    for c in field.chars() {
        match c {
            '[' => {
                in_index = true;
                out.push_str("[]");
            }
            ']' if in_index => in_index = false,
            _ if in_index => {}
            _ => out.push(c),
        }
    }
    out
}

/// True when the error's field is a field path of the model (an index only of an element
/// that `value` has), or an unknown member that `value` has in one of the model's objects.
fn names_a_real_field(model: &Model, value: &Value, e: &ModelError) -> bool {
    let field = e.field.as_str();
    if model.paths.contains(&pattern(field).as_str()) {
        return !field.contains('[') || at_path(value, field).is_some();
    }
    model.objects.iter().any(|parent| {
        let given = if parent.is_empty() {
            Some(field)
        } else {
            field.strip_prefix(&format!("{parent}."))
        };
        given.is_some_and(|given| {
            e.message.starts_with(&format!("unknown field `{given}`"))
                && at_path(value, parent)
                    .and_then(Value::as_object)
                    .is_some_and(|o| o.contains_key(given))
        })
    })
}

/// Checks one error of decoding `bytes` under `key`.
fn check_error(
    model: &Model,
    key: &str,
    bytes: &[u8],
    e: &ModelError,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(&e.key, key);
    prop_assert!(!e.message.is_empty(), "{:?}", e);
    let shown = e.to_string();
    prop_assert!(shown.starts_with(&format!("{key}: ")), "{}", shown);
    if !e.field.is_empty() {
        prop_assert!(
            shown.contains(&format!(": field `{}`: ", e.field)),
            "{}",
            shown
        );
    }
    let value = serde_json::from_slice::<Value>(bytes).ok();
    match value.filter(Value::is_object) {
        None => prop_assert!(
            e.field.is_empty(),
            "{}: the value is not one JSON object, so no field can be named",
            e
        ),
        Some(v) => prop_assert!(
            names_a_real_field(model, &v, e),
            "{}: `{}` is not a field of {}",
            e,
            e.field,
            v
        ),
    }
    Ok(())
}

/// Checks that an accepted value re-encodes to canonical JSON that decodes to the same value
/// under the same key (and is its own canonical form), and that its name is the one the key
/// gives: its last segment, and the name the agent's key tree parses from it.
fn check_accepted(kind: ItemKind, key: &str, item: &ConfigItem) -> Result<(), TestCaseError> {
    let canonical = item.to_canonical_json().to_string();
    let again = decode_value(kind, key, canonical.as_bytes());
    prop_assert_eq!(again.as_ref(), Ok(item), "{}", canonical);
    if let Ok(again) = again {
        prop_assert_eq!(again.to_canonical_json().to_string(), canonical);
    }
    prop_assert_eq!(Some(item.name()), key.rsplit('/').next());
    if let Some(label) = label_of(key) {
        let parsed = KeyTree::new(label).parse(key);
        if let Some((_, name)) = parsed.filter(|(parsed_kind, _)| *parsed_kind == kind) {
            prop_assert_eq!(
                item.name(),
                name.as_str(),
                "the agent would name the item of {} differently from its value",
                key
            );
        }
    }
    Ok(())
}

/// The label of a key in an agent's tree.
fn label_of(key: &str) -> Option<&str> {
    let prefix = agent_prefix_of(key)?;
    prefix.strip_prefix(ROOT)?.strip_suffix('/')
}

/// Decodes `bytes` as `kind` under `key` (as the agent and `nsagent-ctl` do) and checks the
/// outcome.
fn check_decoding(kind: ItemKind, key: &str, bytes: &[u8]) -> Result<(), TestCaseError> {
    decode_checked(kind, key, bytes).map(drop)
}

/// Like [`check_decoding`]; returns the decoding result.
fn decode_checked(
    kind: ItemKind,
    key: &str,
    bytes: &[u8],
) -> Result<Result<ConfigItem, ModelError>, TestCaseError> {
    let decoded = decode_value(kind, key, bytes);
    let accepted = accept_value(kind, key, bytes);
    match (&decoded, &accepted) {
        (Ok(item), Ok(same)) => {
            prop_assert_eq!(item, same);
            check_accepted(kind, key, item)?;
        }
        (Ok(item), Err(e)) => {
            check_accepted(kind, key, item)?;
            check_error(model(kind), key, bytes, e)?;
            prop_assert_eq!(e.field.as_str(), "type", "only AUTO_TAP is refused: {}", e);
        }
        (Err(e), other) => {
            check_error(model(kind), key, bytes, e)?;
            prop_assert_eq!(other.as_ref(), Err(e));
        }
    }
    Ok(decoded)
}

// ---- generators ----

/// Strings users write, near misses of them, and text that breaks naive parsers.
const STRINGS: &[&str] = &[
    "",
    "veth1",
    "veth2",
    "VETH",
    "veth",
    "AUTO_TAP",
    "NAMED_NS",
    "named_ns",
    "PID_REF_NS",
    "MICROSERVICE_REF_NS",
    "FILE_REF_NS",
    "GLOBAL",
    "SITE",
    "LINK",
    "HOST",
    "link",
    "PERMANENT",
    "NOARP",
    "REACHABLE",
    "STALE",
    "IPV4",
    "IPV6",
    "ALL",
    "MPLS",
    "10.0.0.1/24",
    "10.0.0.1",
    "10.0.0.0/8",
    "192.168.22.2",
    "2001:db8::1/64",
    "2001:db8::1",
    "fe80::1",
    "fe80::1%eth0",
    "0.0.0.0/0",
    "::/0",
    "0.0.0.0",
    "::",
    "224.0.0.1/4",
    "ff02::1",
    "127.0.0.1/8",
    "::1/128",
    "255.255.255.255/32",
    "255.255.255.255",
    "1.2.3.4/33",
    "1.2.3.4/-1",
    "1.2.3",
    "d2:74:8c:12:67:d2",
    "D2-74-8C-12-67-D2",
    "01:00:5e:00:00:01",
    "00:00:00:00:00:00",
    "d2:74:8c:12:67",
    "d2:74:8c:12:67:d2:00",
    "d2:74-8c:12:67:d2",
    "/var/run/netns/x",
    "relative/path",
    "/",
    "a/b",
    ".",
    "..",
    "eth0",
    "lo",
    "a:b",
    "a b",
    "\u{0}",
    "é",
    "🦀",
    "\u{202e}abc",
    "x\ny",
    "1500",
    "true",
    "null",
];

/// Numbers as JSON text: enum numbers in and out of range, MTU bounds, u32 and u64 limits,
/// negative, fractional and huge numbers.
const NUMBERS: &[&str] = &[
    "0",
    "1",
    "2",
    "3",
    "4",
    "-1",
    "67",
    "68",
    "1500",
    "65535",
    "65536",
    "254",
    "255",
    "4294967295",
    "4294967296",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775808",
    "1.5",
    "-0.0",
    "1e3",
    "1e300",
    "-1e300",
    "123456789012345678901234567890",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        prop::sample::select(NUMBERS)
            .prop_map(|n| serde_json::from_str::<Value>(n).expect("a JSON number")),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop::sample::select(STRINGS).prop_map(Value::from),
        "\\PC{0,24}".prop_map(Value::from),
        any::<String>().prop_map(Value::from),
        "[a-z]{250,300}".prop_map(Value::from),
    ]
}

/// Every member name of `model`, at any level.
fn names(model: &Model) -> Vec<&'static str> {
    let mut names: Vec<&str> = model
        .paths
        .iter()
        .map(|p| p.rsplit('.').next().unwrap_or(p).trim_end_matches("[]"))
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// `name` with one typo: a letter inserted, removed, replaced or swapped with the next one,
/// at `at`; or a word separator the rules do not accept.
fn typo(name: &str, how: u8, at: Index, letter: char) -> String {
    let mut chars: Vec<char> = name.chars().collect();
    let i = at.index(chars.len());
    match how % 6 {
        0 => chars.insert(i, letter),
        1 => {
            chars.remove(i);
        }
        2 => chars[i] = letter,
        3 if i + 1 < chars.len() => chars.swap(i, i + 1),
        4 => return name.replace('_', " "),
        _ => return name.replace('_', "."),
    }
    chars.into_iter().collect()
}

/// Spells `name` as the rules accept (canonical, lowerCamel, kebab, upper case) or not
/// (PascalCase, mixed separators).
fn spelling(name: &str, how: u8) -> String {
    match how % 6 {
        0 => name.to_string(),
        1 => lower_camel(name),
        2 => name.replace('_', "-"),
        3 => name.to_ascii_uppercase(),
        4 => {
            let camel = lower_camel(name);
            let mut c = camel.chars();
            c.next()
                .map(|h| format!("{}{}", h.to_ascii_uppercase(), c.as_str()))
                .unwrap_or_default()
        }
        _ => name.replacen('_', "-", 1),
    }
}

/// Member names for JSON of `model`: its names spelled in every way, near misses, and
/// arbitrary text.
fn member_name(model: &Model) -> BoxedStrategy<String> {
    let known = prop::sample::select(names(model));
    prop_oneof![
        6 => known.clone().prop_map(String::from),
        2 => (known.clone(), any::<u8>()).prop_map(|(n, how)| spelling(n, how)),
        1 => (known, any::<u8>(), any::<Index>(), "[a-z_]")
            .prop_map(|(n, how, at, l)| typo(n, how, at, l.chars().next().unwrap_or('q'))),
        1 => "\\PC{0,12}",
    ]
    .boxed()
}

/// Arbitrary JSON whose object members mostly spell the fields of `model`.
fn shaped_json(model: &Model) -> BoxedStrategy<Value> {
    let name = member_name(model);
    leaf()
        .prop_recursive(3, 48, 8, move |inner| {
            prop_oneof![
                1 => proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                3 => proptest::collection::vec((name.clone(), inner), 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
        .boxed()
}

/// A member of the object at `parent` of `model` whose canonical name is `name`: usually
/// spelled as the rules accept, sometimes with a typo; its value a leaf or, for an object
/// field, an object of that object's members (or arbitrary JSON either way).
fn shaped_member(
    model: &'static Model,
    parent: &str,
    name: &'static str,
) -> BoxedStrategy<(String, Value)> {
    let spelled = prop_oneof![
        16 => Just(name.to_string()),
        3 => any::<u8>().prop_map(move |how| spelling(name, how)),
        1 => (any::<u8>(), any::<Index>(), "[a-z_]")
            .prop_map(move |(how, at, l)| typo(name, how, at, l.chars().next().unwrap_or('q'))),
    ];
    let path = join(parent, name);
    let inner = names_at(model, &path);
    let value = if !inner.is_empty() {
        let members =
            prop::sample::select(inner).prop_flat_map(move |n| shaped_member(model, &path, n));
        prop_oneof![
            4 => proptest::collection::vec(members, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            1 => shaped_json(model),
        ]
        .boxed()
    } else {
        prop_oneof![
            4 => plausible(name),
            4 => leaf(),
            1 => proptest::collection::vec(leaf(), 0..4).prop_map(Value::Array),
            1 => shaped_json(model),
        ]
        .boxed()
    };
    (spelled, value).boxed()
}

/// Values a user could mean for the field `name` (most of them valid).
fn plausible(name: &str) -> BoxedStrategy<Value> {
    let pick = |values: Vec<Value>| prop::sample::select(values).boxed();
    let address = prop::sample::select(vec![
        "10.0.0.1",
        "10.0.0.2",
        "192.168.22.2",
        "2001:db8::1",
        "fe80::1",
    ]);
    let link = prop::sample::select(vec!["veth1", "veth2", "eth0", "lo", "tap0"]);
    match name {
        "type" | "family" => pick(vec![
            json!(0),
            json!(1),
            json!(2),
            json!(3),
            json!("VETH"),
            json!("AUTO_TAP"),
            json!("NAMED_NS"),
            json!("LINK"),
            json!("STALE"),
            json!("IPV4"),
            json!("IPV6"),
            json!("ALL"),
        ]),
        "enabled" | "default" => any::<bool>().prop_map(Value::from).boxed(),
        "mtu" | "metric" | "table" | "pid" => pick(vec![
            json!(0),
            json!(1),
            json!(100),
            json!(1500),
            json!(9000),
        ]),
        "ip_addresses" => proptest::collection::vec(
            prop::sample::select(vec!["10.0.0.1/24", "2001:db8::1/64", "192.168.1.1/16"]),
            0..3,
        )
        .prop_map(|a| json!(a))
        .boxed(),
        "dst_ip_addr" => pick(vec![
            json!("10.0.2.0/24"),
            json!("0.0.0.0/0"),
            json!("2001:db8:2::/64"),
            json!("::/0"),
        ]),
        "gw_addr" | "src_ip_addr" | "ip_addr" => address.prop_map(Value::from).boxed(),
        "phys_address" | "hw_address" => {
            pick(vec![json!("d2:74:8c:12:67:d2"), json!("46-06-18-DB-05-3A")])
        }
        "host_if_name" | "interface" | "peer_if_name" | "temp_if_name" => {
            link.prop_map(Value::from).boxed()
        }
        "microservice" | "name" => pick(vec![json!("ns1"), json!("web")]),
        "filepath" => pick(vec![json!("/var/run/netns/ns1"), json!("/proc/1/ns/net")]),
        _ => "\\PC{0,20}".prop_map(Value::from).boxed(),
    }
}

/// One JSON object with members of `model` (and now and then others), its `name` usually
/// the key's last segment (so that decoding gets past the name check).
fn shaped_object(model: &'static Model, key: String) -> BoxedStrategy<(String, Value)> {
    let member = prop_oneof![
        12 => prop::sample::select(names_at(model, ""))
            .prop_flat_map(move |n| shaped_member(model, "", n)),
        1 => (member_name(model), shaped_json(model)),
    ];
    (
        proptest::collection::vec(member, 0..10),
        prop::bool::weighted(0.85),
    )
        .prop_map(move |(members, named)| {
            let mut object: serde_json::Map<String, Value> = members.into_iter().collect();
            if named {
                let segment = key.rsplit('/').next().unwrap_or_default();
                object.insert("name".into(), Value::from(segment));
            }
            (key.clone(), Value::Object(object))
        })
        .boxed()
}

/// Names of items, odd ones included: empty, unicode, long, with `/`, dots, control
/// characters.
fn odd_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z][a-z0-9-]{0,10}",
        1 => Just(String::new()),
        1 => "\\PC{1,20}",
        1 => "[a-z]{100,300}",
        1 => "[a-z]{1,5}/[a-z]{0,5}",
        1 => prop::sample::select(vec![".", "..", " ", "a b", "\u{0}", "é", "🦀"]).prop_map(String::from),
        1 => any::<String>(),
    ]
}

/// Labels as the agent allows them (non-empty, no `/`).
fn label() -> impl Strategy<Value = String> {
    prop_oneof![Just("vpp1".to_string()), "[a-z0-9-]{1,12}", "[^/]{1,12}",]
}

/// Keys of `kind` an agent may be handed: its own form with odd names, other labels and
/// trees, and arbitrary text.
fn any_key(kind: ItemKind) -> impl Strategy<Value = String> {
    prop_oneof![
        6 => (label(), odd_name())
            .prop_map(move |(l, n)| format!("{ROOT}{l}/linux/config/v1/{kind}/{n}")),
        1 => (".{0,30}", odd_name()).prop_map(|(p, n)| format!("{p}/{n}")),
        1 => any::<String>(),
    ]
}

/// The canonical JSON of a valid value of `kind` and its key.
fn valid_value(kind: ItemKind) -> BoxedStrategy<(String, Value)> {
    let key = move |name: &str| format!("/vnf-agent/vpp1/linux/config/v1/{kind}/{name}");
    match kind {
        ItemKind::Interface => valid_interface()
            .prop_map(move |i| (key(&i.name), i.to_canonical_json()))
            .boxed(),
        ItemKind::Route => valid_route()
            .prop_map(move |r| (key(&r.name), r.to_canonical_json()))
            .boxed(),
        ItemKind::Arp => (valid_arp(), any::<bool>())
            .prop_map(move |(a, family)| {
                let mut v = a.to_canonical_json();
                if family {
                    // `ip_family` is never canonical: give it so that it is mutated too.
                    let name = if a.ip.is_ipv4() { "IPV4" } else { "IPV6" };
                    v["ip_family"] = json!({ "family": name });
                }
                (key(&a.name), v)
            })
            .boxed(),
    }
}

fn kind_and_valid_value() -> impl Strategy<Value = (ItemKind, String, Value)> {
    any_kind().prop_flat_map(|kind| valid_value(kind).prop_map(move |(k, v)| (kind, k, v)))
}

/// Sets the canonical field path `path` of `v` to `x`, creating objects and the array on
/// the way (an index past the end appends); returns the path that was set.
fn set_path(v: &mut Value, path: &str, x: Value) -> String {
    let (parent, last) = match path.rsplit_once('.') {
        Some((parent, last)) => (Some(parent), last),
        None => (None, path),
    };
    let mut object = v;
    if let Some(parent) = parent {
        if !object[parent].is_object() {
            object[parent] = json!({});
        }
        object = &mut object[parent];
    }
    match last.split_once('[') {
        Some((name, index)) => {
            let i: usize = index.trim_end_matches(']').parse().expect("an index");
            if !object[name].is_array() {
                object[name] = json!([]);
            }
            let array = object[name].as_array_mut().expect("an array");
            let i = i.min(array.len());
            match array.get_mut(i) {
                Some(slot) => *slot = x,
                None => array.push(x),
            }
            let element = format!("{name}[{i}]");
            parent.map_or(element.clone(), |p| join(p, &element))
        }
        None => {
            object[last] = x;
            path.to_string()
        }
    }
}

/// A field path of `model` with indices filled in (0 to 3).
fn field_path(model: &'static Model) -> impl Strategy<Value = String> {
    (prop::sample::select(model.paths), 0usize..4)
        .prop_map(|(p, i)| p.replace("[]", &format!("[{i}]")))
}

/// The JSON type a field path of the model holds.
#[derive(Clone, Copy, Debug)]
enum Shape {
    Text,
    Flag,
    Number,
    Enum,
    Object,
    Texts,
}

fn shape(path: &str) -> Shape {
    match pattern(path).as_str() {
        "enabled" | "default" => Shape::Flag,
        "mtu" | "metric" | "table" | "namespace.pid" => Shape::Number,
        "type" | "namespace.type" | "scope.type" | "state.type" | "ip_family.family" => Shape::Enum,
        "namespace" | "veth" | "tap" | "scope" | "state" | "ip_family" => Shape::Object,
        "ip_addresses" => Shape::Texts,
        _ => Shape::Text,
    }
}

/// Values of the wrong JSON type for `shape` (null is absent, so never wrong).
fn wrong_type(shape: Shape) -> Vec<Value> {
    match shape {
        Shape::Text => vec![
            json!(true),
            json!(0),
            json!(1.5),
            json!(["x"]),
            json!({"x": 1}),
        ],
        Shape::Flag => vec![json!("true"), json!(1), json!(0), json!([true]), json!({})],
        Shape::Number => vec![
            json!("1500"),
            json!(true),
            json!(-1),
            json!(1.5),
            json!(4_294_967_296u64),
            json!(1e300),
            json!([1500]),
            json!({}),
        ],
        Shape::Enum => vec![
            json!(true),
            json!(-1),
            json!(1.5),
            json!(99),
            json!(u64::MAX),
            json!("nope"),
            json!(""),
            json!([0]),
            json!({}),
        ],
        Shape::Object => vec![json!("x"), json!(1), json!(true), json!([{}])],
        Shape::Texts => vec![json!("10.0.0.1/24"), json!(1), json!(true), json!({})],
    }
}

/// True when `field` lies within the top-level field `top` (itself or something inside).
fn within(field: &str, top: &str) -> bool {
    field
        .strip_prefix(top)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.') || rest.starts_with('['))
}

/// The top-level fields where a problem caused by changing `path` may be reported: its
/// own, and those of every group it is in.
fn related(model: &Model, path: &str) -> Vec<&'static str> {
    let top = model
        .paths
        .iter()
        .copied()
        .find(|p| within(path, p) && !p.contains('.') && !p.contains('['))
        .expect("a path of the model");
    let mut out = vec![top];
    for group in model.groups {
        if group.contains(&top) {
            out.extend(group.iter().copied());
        }
    }
    out
}

/// A member present in the canonical JSON `v` at any level: (parent path, canonical name).
fn present_member(v: &Value, at: Index) -> (String, String) {
    let mut all = Vec::new();
    if let Some(o) = v.as_object() {
        for (k, x) in o {
            all.push((String::new(), k.clone()));
            if let Some(inner) = x.as_object() {
                all.extend(inner.keys().map(|n| (k.clone(), n.clone())));
            }
        }
    }
    all[at.index(all.len())].clone()
}

fn object_at<'a>(v: &'a mut Value, parent: &str) -> &'a mut serde_json::Map<String, Value> {
    let v = if parent.is_empty() { v } else { &mut v[parent] };
    v.as_object_mut().expect("an object")
}

/// True when `a` and `b` differ by at most one typo (a character inserted, dropped or
/// replaced, or two adjacent ones swapped), compared without case and punctuation.
fn within_one_typo(a: &str, b: &str) -> bool {
    let plain = |s: &str| -> Vec<char> {
        s.chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect()
    };
    let (a, b) = (plain(a), plain(b));
    let (short, long) = if a.len() <= b.len() {
        (&a, &b)
    } else {
        (&b, &a)
    };
    match long.len() - short.len() {
        0 => {
            let differ: Vec<usize> = (0..a.len()).filter(|&i| a[i] != b[i]).collect();
            match differ[..] {
                [] | [_] => true,
                [i, j] => j == i + 1 && a[i] == b[j] && a[j] == b[i],
                _ => false,
            }
        }
        1 => (0..long.len()).any(|i| {
            let mut dropped = long.clone();
            dropped.remove(i);
            dropped == *short
        }),
        _ => false,
    }
}

/// `parent.name`, or `name` at the top level.
fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}.{name}")
    }
}

/// The fields of the object at `parent` of `model`.
fn names_at(model: &Model, parent: &str) -> Vec<&'static str> {
    model
        .paths
        .iter()
        .filter_map(|p| match p.rsplit_once('.') {
            Some((pp, name)) if pp == parent => Some(name),
            None if parent.is_empty() => Some(p.trim_end_matches("[]")),
            _ => None,
        })
        .collect()
}

// ---- properties ----

proptest! {
    /// (a) Arbitrary bytes of any kind under any key.
    #[test]
    fn arbitrary_bytes_never_panic_and_errors_name_the_key(
        (kind, key) in any_kind().prop_flat_map(|k| (Just(k), any_key(k))),
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        check_decoding(kind, &key, &bytes)?;
    }

    /// (a) Valid values' text with one byte inserted, removed or replaced: truncated
    /// documents, broken escapes, invalid UTF-8 inside strings, trailing garbage.
    #[test]
    fn broken_json_text_never_panics(
        (kind, key, v) in kind_and_valid_value(),
        edit in 0u8..3,
        at in any::<Index>(),
        byte in any::<u8>(),
    ) {
        let mut bytes = v.to_string().into_bytes();
        let i = at.index(bytes.len());
        match edit {
            0 => bytes.insert(i, byte),
            1 => { bytes.remove(i); }
            _ => bytes[i] = byte,
        }
        check_decoding(kind, &key, &bytes)?;
    }

    /// (b) Arbitrary JSON shaped like each kind (spellings, near-miss names, wrong types,
    /// enum names and numbers, huge numbers, nested objects, unicode) under any key.
    #[test]
    fn arbitrary_json_errors_name_the_key_and_a_real_field(
        (kind, key, v) in any_kind()
            .prop_flat_map(|k| (Just(k), any_key(k)))
            .prop_flat_map(|(k, key)| shaped_object(model(k), key).prop_map(move |(key, v)| (k, key, v))),
    ) {
        check_decoding(kind, &key, v.to_string().as_bytes())?;
    }

    /// (b) The namespace records the agent reads back at start.
    #[test]
    fn namespace_records_name_the_key_and_a_real_field(
        key in ".{0,40}",
        ns in shaped_json(&NAMESPACE_RECORD),
        extra in proptest::option::of((member_name(&NAMESPACE_RECORD), shaped_json(&NAMESPACE_RECORD))),
    ) {
        let mut v = json!({ "namespace": ns });
        if let Some((name, x)) = extra {
            v[name] = x;
        }
        let bytes = v.to_string().into_bytes();
        match decode_namespace(&key, &bytes) {
            Ok(ns) => {
                let again = json!({ "namespace": ns.to_canonical_json() }).to_string();
                prop_assert_eq!(decode_namespace(&key, again.as_bytes()), Ok(ns));
            }
            Err(e) => check_error(&NAMESPACE_RECORD, &key, &bytes, &e)?,
        }
    }

    /// (c) One field of a valid value (given or not) set to a value of the wrong JSON
    /// type is reported on exactly that field.
    #[test]
    fn one_wrong_type_is_reported_on_its_field(
        (kind, key, v, path) in kind_and_valid_value()
            .prop_flat_map(|(k, key, v)| (Just(k), Just(key), Just(v), field_path(model(k)))),
        pick in any::<Index>(),
        element in any::<bool>(),
    ) {
        let mut v = v;
        // An element of `ip_addresses` of the wrong type (null included).
        let (path, wrong) = if element && matches!(shape(&path), Shape::Texts) {
            let i = v["ip_addresses"].as_array().map_or(0, Vec::len);
            let choices = [json!(null), json!(1), json!(true), json!(["x"]), json!({})];
            (format!("ip_addresses[{i}]"), pick.get(&choices).clone())
        } else {
            (path.clone(), pick.get(&wrong_type(shape(&path))).clone())
        };
        let path = set_path(&mut v, &path, wrong);
        let bytes = v.to_string().into_bytes();
        match decode_checked(kind, &key, &bytes)? {
            Ok(item) => prop_assert!(false, "{} decoded to {:?}", v, item),
            Err(e) => prop_assert_eq!(e.field, path, "{}: {}", v, e.message),
        }
    }

    /// (c) One field of a valid value (given or not) set to anything at all: accepted (and
    /// canonical again), or reported on that field or one checked together with it.
    #[test]
    fn one_field_set_to_anything_is_reported_on_it_or_a_related_field(
        (kind, key, v, path) in kind_and_valid_value()
            .prop_flat_map(|(k, key, v)| (Just(k), Just(key), Just(v), field_path(model(k)))),
        x in prop_oneof![leaf(), shaped_json(&INTERFACE), shaped_json(&ROUTE), shaped_json(&ARP)],
    ) {
        let mut v = v;
        let path = set_path(&mut v, &path, x);
        let bytes = v.to_string().into_bytes();
        if let Err(e) = decode_checked(kind, &key, &bytes)? {
            let allowed = related(model(kind), &path);
            prop_assert!(
                allowed.iter().any(|top| within(&e.field, top)),
                "{} changed, {} reported on `{}` (expected one of {:?}): {}", path, v, e.field, allowed, e.message
            );
        }
    }

    /// (c) A member of a valid value renamed with a typo is an unknown field named as
    /// given, with the original suggested (or another field as few typos away).
    #[test]
    fn a_misspelled_field_is_unknown_and_the_original_suggested(
        (kind, key, v) in kind_and_valid_value(),
        at in any::<Index>(),
        how in any::<u8>(),
        typo_at in any::<Index>(),
        letter in "[a-z_-]",
    ) {
        let mut v = v;
        let (parent, name) = present_member(&v, at);
        let letter = letter.chars().next().unwrap_or('q');
        let given = typo(&name, how, typo_at, letter);
        let known = names_at(model(kind), &parent);
        // A typo that happens to spell a known field (or nothing) becomes another one.
        let given = if given.is_empty() || known.iter().any(|k| spells(&given, k)) {
            format!("{name}q")
        } else {
            given
        };
        let members = object_at(&mut v, &parent);
        let x = members.remove(&name).expect("present");
        members.insert(given.clone(), x);
        let bytes = v.to_string().into_bytes();
        match decode_checked(kind, &key, &bytes)? {
            Ok(item) => prop_assert!(false, "{} decoded to {:?}", v, item),
            Err(e) => {
                prop_assert_eq!(&e.field, &join(&parent, &given), "{}", v);
                let suggested = e
                    .message
                    .strip_prefix(&format!("unknown field `{given}`; did you mean `"))
                    .and_then(|rest| rest.strip_suffix("`?"));
                prop_assert!(
                    suggested.is_some_and(|s| s == name
                        || (known.contains(&s) && within_one_typo(&given, s))),
                    "{}: {}", v, e.message
                );
            }
        }
    }

    /// (c) A member given a second time in another accepted spelling is reported on its
    /// canonical path.
    #[test]
    fn a_field_given_twice_is_reported_on_it(
        (kind, key, v) in kind_and_valid_value(),
        at in any::<Index>(),
    ) {
        let mut v = v;
        let (parent, name) = present_member(&v, at);
        let members = object_at(&mut v, &parent);
        let x = members[&name].clone();
        members.insert(name.to_ascii_uppercase(), x);
        let bytes = v.to_string().into_bytes();
        match decode_checked(kind, &key, &bytes)? {
            Ok(item) => prop_assert!(false, "{} decoded to {:?}", v, item),
            Err(e) => {
                prop_assert_eq!(&e.field, &join(&parent, &name), "{}", v);
                prop_assert!(e.message.starts_with("field is given twice"), "{}", e);
            }
        }
    }

    /// (c) Valid values under odd keys, named after the key's last segment: accepted with
    /// that name (and the name the agent parses from the key), or refused on `name`.
    #[test]
    fn valid_values_under_odd_keys(
        (kind, v, key) in kind_and_valid_value()
            .prop_flat_map(|(k, _, v)| (Just(k), Just(v), any_key(k))),
        respelled in any::<u64>(),
    ) {
        let mut v = v;
        v["name"] = Value::from(key.rsplit('/').next().unwrap_or_default());
        let mut seed = respelled;
        let v = respell(&v, &mut seed);
        if let Err(e) = decode_checked(kind, &key, v.to_string().as_bytes())? {
            prop_assert_eq!(e.field.as_str(), "name", "{}: {}", v, e);
        }
    }
}

// ---- the key tree over arbitrary strings ----

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-z/]{0,12}",
        (label(), odd_name(), any_kind())
            .prop_map(|(l, n, k)| format!("{ROOT}{l}/linux/config/v1/{k}/{n}")),
        (label(), ".{0,30}").prop_map(|(l, rest)| format!("{ROOT}{l}/{rest}")),
        ".{0,30}".prop_map(|rest| format!("{ROOT}{rest}")),
    ]
}

proptest! {
    /// `parse` inverts `key` exactly for the names an item may have (non-empty, no `/`).
    #[test]
    fn key_tree_parse_inverts_key(l in label(), kind in any_kind(), name in odd_name()) {
        let tree = KeyTree::new(&l);
        let key = tree.key(kind, &name);
        let expected = (!name.is_empty() && !name.contains('/')).then(|| (kind, name.clone()));
        prop_assert_eq!(tree.parse(&key), expected);
        let prefix = tree.agent_prefix();
        prop_assert_eq!(agent_prefix_of(&key), Some(prefix.as_str()));
    }

    /// Whatever `parse` accepts is exactly the key of what it returns.
    #[test]
    fn key_tree_parse_accepts_only_item_keys(l in label(), text in any_text()) {
        let tree = KeyTree::new(&l);
        if let Some((kind, name)) = tree.parse(&text) {
            prop_assert!(!name.is_empty() && !name.contains('/'));
            prop_assert_eq!(tree.key(kind, &name), text);
        }
    }

    /// Short keys expand under the configuration prefix; full keys are kept.
    #[test]
    fn key_tree_expand(l in label(), text in any_text(), kind in any_kind(), name in odd_name()) {
        let tree = KeyTree::new(&l);
        let expanded = tree.expand(&text);
        if text.starts_with('/') {
            prop_assert_eq!(expanded, text);
        } else {
            prop_assert_eq!(expanded, format!("{}{text}", tree.config_prefix()));
        }
        let short = format!("{kind}/{name}");
        prop_assert_eq!(tree.parse(&tree.expand(&short)), tree.parse(&tree.key(kind, &name)));
    }

    /// Aliases round trip exactly for names and peers without `/` (an empty peer: a single
    /// link's alias), and whatever splits is the alias of its parts.
    #[test]
    fn link_aliases_round_trip(l in label(), name in odd_name(), peer in odd_name(), text in any_text()) {
        let tree = KeyTree::new(&l);
        let alias = tree.link_alias(&name, &peer);
        let valid = |s: &str| !s.is_empty() && !s.contains('/');
        let expected = (valid(&name) && (peer.is_empty() || valid(&peer)))
            .then_some((name.as_str(), peer.as_str()));
        // `a/b` with no peer spells the pair (a, b): a name with `/` is never used.
        if expected.is_some() || !peer.is_empty() || !name.contains('/') {
            prop_assert_eq!(tree.split_link_alias(&alias), expected);
            prop_assert_eq!(tree.is_link_alias(&alias, &name, &peer), expected.is_some());
        }
        if let Some((n, p)) = tree.split_link_alias(&text) {
            prop_assert_eq!(tree.link_alias(n, p), text.clone());
            prop_assert!(tree.is_link_alias(&text, n, p));
            prop_assert_eq!(tree.parse_link_alias(&text), Some((n.to_string(), p.to_string())));
        }
    }

    /// `agent_prefix_of` finds `/vnf-agent/<label>/` (a non-empty label without `/`) at
    /// the start of the text, or nothing.
    #[test]
    fn agent_prefix_of_any_text(text in any_text()) {
        if let Some(prefix) = agent_prefix_of(&text) {
            prop_assert!(text.starts_with(prefix));
            let label = prefix.strip_prefix(ROOT).and_then(|p| p.strip_suffix('/'));
            prop_assert!(label.is_some_and(|l| !l.is_empty() && !l.contains('/')), "{}", prefix);
        }
    }

    /// The label's link group is never 0 and stays clear of small and negative numbers.
    #[test]
    fn link_groups_stay_in_their_range(l in any::<String>()) {
        let group = KeyTree::new(&l).default_link_group();
        prop_assert!((0x4000_0000..=0x7fff_ffff).contains(&group));
    }
}
