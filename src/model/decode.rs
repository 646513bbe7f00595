//! JSON decoding with the compatibility rules of the older agents, and validation of one value.
use super::arp::decode_arp;
use super::fields::Object;
use super::json::{quote, Json};
use super::link::{KindContext, LinkKind, FIXED_HOST_NAMES, INTERFACE_TYPES, KIND_FIELDS};
use super::route::decode_route;
use super::{ConfigItem, Interface, MacAddr, ModelError, NamespaceRef};
use crate::keys::ItemKind;
use ipnet::IpNet;
use std::net::IpAddr;
use std::path::PathBuf;

/// The fields every interface has (each kind adds its own, see [`super::link`]).
const COMMON_FIELDS: &[&str] = &[
    "name",
    "description",
    "type",
    "enabled",
    "ip_addresses",
    "phys_address",
    "mtu",
    "host_if_name",
    "namespace",
    "vrf_master_interface",
];
const NAMESPACE_FIELDS: &[&str] = &["type", "pid", "microservice", "name", "filepath"];

/// `namespace.type` names; the index is the number.
pub(super) const NAMESPACE_TYPES: &[&str] = &[
    "PID_REF_NS",
    "MICROSERVICE_REF_NS",
    "NAMED_NS",
    "FILE_REF_NS",
];
/// The field that counts for each namespace type (same index).
const NAMESPACE_TYPE_FIELDS: [&str; 4] = ["pid", "microservice", "name", "filepath"];

/// Smallest MTU the kernel accepts for an Ethernet-like link.
const MIN_MTU: u32 = 68;
/// Largest MTU accepted.
const MAX_MTU: u32 = 65535;
/// Longest link name (IFNAMSIZ - 1).
const MAX_HOST_NAME: usize = 15;

/// Decodes and validates the value of an interface key (`.../interface/<name>`).
///
/// Accepts the spellings and enum forms described in the module docs; every error names the
/// field and says what is wrong.
pub fn decode_interface(key: &str, value: &[u8]) -> Result<Interface, ModelError> {
    let json = parse(key, value)?;
    let fields: Vec<&str> = COMMON_FIELDS
        .iter()
        .chain(KIND_FIELDS.iter().copied().flatten())
        .copied()
        .collect();
    let obj = Object::new(key, "", &json, &fields)?;

    let name = obj.string("name")?;
    check_name(&obj, key, &name)?;
    let description = obj.string("description")?;
    let type_number = obj.enumeration("type", INTERFACE_TYPES)?;
    let enabled = obj.bool("enabled")?;
    let fixed_host_name = FIXED_HOST_NAMES[type_number];
    let ip_addresses = ip_addresses(&obj, fixed_host_name.is_some())?;
    let phys_address = phys_address(&obj)?;
    let mtu = mtu(&obj)?;
    let host_if_name = match fixed_host_name {
        Some(fixed) => fixed_host_name_of(&obj, type_number, fixed)?,
        None => host_if_name(&obj, &name)?,
    };
    let namespace = namespace(&obj)?;
    let vrf_master_interface = vrf_master_interface(&obj, &name)?;
    let cx = KindContext {
        key,
        name: &name,
        host_if_name: &host_if_name,
    };
    let link = LinkKind::decode(type_number, &obj, &cx)?;
    if link.vrf_table().is_some() && !vrf_master_interface.is_empty() {
        return Err(obj.error(
            "vrf_master_interface",
            format!(
                "is {}, but a VRF_DEVICE cannot join another VRF (the kernel does not enslave \
                 one VRF to another); leave it out",
                quote(&vrf_master_interface)
            ),
        ));
    }

    Ok(Interface {
        name,
        description,
        enabled,
        ip_addresses,
        phys_address,
        mtu,
        host_if_name,
        namespace,
        vrf_master_interface,
        link,
    })
}

/// The host name of a kind whose links all have the same one (`lo`): `host_if_name` may
/// only repeat it.
fn fixed_host_name_of(obj: &Object, type_number: usize, fixed: &str) -> Result<String, ModelError> {
    let given = obj.string("host_if_name")?;
    if !given.is_empty() && given != fixed {
        return Err(obj.error(
            "host_if_name",
            format!(
                "is {} but a {} is always `{fixed}`; leave `host_if_name` out",
                quote(&given),
                INTERFACE_TYPES[type_number]
            ),
        ));
    }
    Ok(fixed.to_string())
}

/// `vrf_master_interface`: the logical name of a VRF_DEVICE interface, or "".
fn vrf_master_interface(obj: &Object, name: &str) -> Result<String, ModelError> {
    let master = obj.string("vrf_master_interface")?;
    if master == name {
        return Err(obj.error(
            "vrf_master_interface",
            format!(
                "is {}, the interface itself; name a VRF_DEVICE interface",
                quote(&master)
            ),
        ));
    }
    if master.contains('/') {
        return Err(obj.error(
            "vrf_master_interface",
            format!(
                "{} contains `/`; it must be the logical `name` of a VRF_DEVICE interface",
                quote(&master)
            ),
        ));
    }
    Ok(master)
}

/// Decodes and validates a value of any kind.
pub fn decode_value(kind: ItemKind, key: &str, value: &[u8]) -> Result<ConfigItem, ModelError> {
    match kind {
        ItemKind::Interface => decode_interface(key, value).map(ConfigItem::Interface),
        ItemKind::Route => decode_route(key, value).map(ConfigItem::Route),
        ItemKind::Arp => decode_arp(key, value).map(ConfigItem::Arp),
    }
}

/// Decodes a value holding one namespace reference, `{"namespace": {...}}` (as the agent
/// records where it has put things), with the rules of an item's `namespace` field.
pub fn decode_namespace(key: &str, value: &[u8]) -> Result<NamespaceRef, ModelError> {
    let json = parse(key, value)?;
    let obj = Object::new(key, "", &json, &["namespace"])?;
    namespace(&obj)
}

/// `s` quoted for a message (a JSON string literal, shortened).
pub(super) fn quote_name(s: &str) -> String {
    quote(s)
}

/// Parses a whole value; a syntax error names no field.
pub(super) fn parse(key: &str, value: &[u8]) -> Result<Json, ModelError> {
    Json::parse(value).map_err(|e| ModelError {
        key: key.to_string(),
        field: String::new(),
        message: format!("not valid JSON: {e}"),
    })
}

/// `name` is required and equals the key's last segment.
pub(super) fn check_name(obj: &Object, key: &str, name: &str) -> Result<(), ModelError> {
    let segment = key.rsplit('/').next().unwrap_or(key);
    if name.is_empty() {
        return Err(obj.error(
            "name",
            format!("is required (the key says {})", quote(segment)),
        ));
    }
    if name != segment {
        return Err(obj.error(
            "name",
            format!(
                "is {} but the key ends in {}; they must be equal",
                quote(name),
                quote(segment)
            ),
        ));
    }
    Ok(())
}

/// `ip_addresses`: `<ip>/<prefix>` each, kept as given (host bits too), no address twice.
fn ip_addresses(obj: &Object, loopback: bool) -> Result<Vec<IpNet>, ModelError> {
    let mut nets: Vec<IpNet> = Vec::new();
    for (i, text) in obj.strings("ip_addresses")?.iter().enumerate() {
        let field = format!("ip_addresses[{i}]");
        let net = ip_net(obj, &field, text)?;
        if let Some(problem) =
            link_address_problem(&net).filter(|_| !loopback || !net.addr().is_loopback())
        {
            return Err(obj.error(&field, format!("{net} is {problem}")));
        }
        if let Some(j) = nets.iter().position(|n| n.addr() == net.addr()) {
            return Err(obj.error(
                &field,
                format!(
                    "address {} is already given in `ip_addresses[{j}]`",
                    net.addr()
                ),
            ));
        }
        nets.push(net);
    }
    Ok(nets)
}

/// Why an address the kernel would accept on a VETH or TAP link is almost surely a mistake,
/// if it is.
fn link_address_problem(net: &IpNet) -> Option<&'static str> {
    let ip = net.addr();
    if ip.is_unspecified() {
        Some("the unspecified address, which names no host; give the link's own address")
    } else if ip.is_multicast() {
        Some("a multicast address; a link's address must be unicast (multicast groups are joined, not assigned)")
    } else if ip.is_loopback() {
        Some("a loopback address, which belongs on the loopback link `lo` only")
    } else if ip == IpAddr::V4(std::net::Ipv4Addr::BROADCAST) {
        Some("the limited broadcast address, which names no host")
    } else {
        None
    }
}

/// `text` (the value of `field`) as `<ip>/<prefix>`, host bits kept.
pub(super) fn ip_net(obj: &Object, field: &str, text: &str) -> Result<IpNet, ModelError> {
    text.parse().map_err(|_| {
        let message = match text.parse::<IpAddr>() {
            Ok(ip) => format!(
                "{} has no prefix length; write e.g. `{text}/{}`",
                quote(text),
                if ip.is_ipv4() { 24 } else { 64 }
            ),
            Err(_) => format!(
                "{} is not an address with prefix length such as `192.168.1.1/24` or `2001:db8::1/64`",
                quote(text)
            ),
        };
        obj.error(field, message)
    })
}

/// The string `field` as one IP address without prefix length; empty = `None`.
pub(super) fn ip_addr(obj: &Object, field: &str) -> Result<Option<IpAddr>, ModelError> {
    let text = obj.string(field)?;
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| {
        let message = match text.split_once('/') {
            Some((addr, _)) if text.parse::<IpNet>().is_ok() => format!(
                "{} has a prefix length; `{field}` is one address: write `{addr}`",
                quote(&text)
            ),
            _ => format!(
                "{} is not an IP address such as `192.168.1.1` or `2001:db8::1`",
                quote(&text)
            ),
        };
        obj.error(field, message)
    })
}

/// Why `ip` cannot be the address of one host (a gateway, a source, a neighbour), if it cannot.
pub(super) fn not_unicast(ip: IpAddr) -> Option<&'static str> {
    if ip.is_unspecified() {
        Some("the unspecified address")
    } else if ip.is_multicast() {
        Some("a multicast address")
    } else if ip == IpAddr::V4(std::net::Ipv4Addr::BROADCAST) {
        Some("the broadcast address")
    } else {
        None
    }
}

/// The string `field` naming an interface: the logical `name` of a configured interface or
/// the name of a link the agent does not manage (`eth0`, `lo`); empty = not set.
pub(super) fn interface_ref(obj: &Object, field: &str) -> Result<String, ModelError> {
    let name = obj.string(field)?;
    if let Some(c) = name.chars().find(|c| matches!(c, '/' | '\0')) {
        return Err(obj.error(
            field,
            format!(
                "{} contains {c:?}; give the logical `name` of an interface or a link name such as `eth0`",
                quote(&name)
            ),
        ));
    }
    Ok(name)
}

/// `phys_address`: a unicast, non-zero MAC; empty = not set.
fn phys_address(obj: &Object) -> Result<Option<MacAddr>, ModelError> {
    let text = obj.string("phys_address")?;
    if text.is_empty() {
        return Ok(None);
    }
    let mac: MacAddr = text.parse().map_err(|e| obj.error("phys_address", e))?;
    if mac.0[0] & 1 == 1 {
        return Err(obj.error(
            "phys_address",
            format!("{mac} is a multicast address (lowest bit of the first byte set); a link needs a unicast MAC"),
        ));
    }
    if mac.0 == [0; 6] {
        return Err(obj.error(
            "phys_address",
            "00:00:00:00:00:00 is not a valid link address; leave the field empty to let the kernel choose".to_string(),
        ));
    }
    Ok(Some(mac))
}

/// `mtu`: 0 = not set, otherwise 68..=65535.
fn mtu(obj: &Object) -> Result<u32, ModelError> {
    let mtu = obj.u32("mtu")?;
    if mtu != 0 && mtu < MIN_MTU {
        return Err(obj.error(
            "mtu",
            format!(
                "{mtu} is below the kernel minimum of {MIN_MTU} (0 leaves the kernel's default)"
            ),
        ));
    }
    if mtu > MAX_MTU {
        return Err(obj.error("mtu", format!("{mtu} is above the maximum of {MAX_MTU}")));
    }
    Ok(mtu)
}

/// `host_if_name`, defaulted to `name`, valid as a kernel link name.
fn host_if_name(obj: &Object, name: &str) -> Result<String, ModelError> {
    let given = obj.string("host_if_name")?;
    if given.is_empty() {
        if let Some(problem) = link_name_problem(name) {
            return Err(obj.error(
                "name",
                format!(
                    "no `host_if_name` is given, so the link is named after `name` {}, which {problem}; set `host_if_name`",
                    quote(name)
                ),
            ));
        }
        return Ok(name.to_string());
    }
    if let Some(problem) = link_name_problem(&given) {
        return Err(obj.error("host_if_name", format!("{} {problem}", quote(&given))));
    }
    Ok(given)
}

/// Why the kernel would refuse `name` as a link name (its `dev_valid_name`), if it would.
pub(super) fn link_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("is empty".to_string());
    }
    if name.len() > MAX_HOST_NAME {
        return Some(format!(
            "is {} bytes long; a Linux link name has at most {MAX_HOST_NAME}",
            name.len()
        ));
    }
    if name == "." || name == ".." {
        return Some("is not a valid link name".to_string());
    }
    name.chars()
        .find(|c| matches!(c, '/' | ':' | '\0') || c.is_whitespace())
        .map(|c| format!("contains {c:?}, which a Linux link name cannot contain"))
}

/// The namespace union, normalised; zero values mean the default namespace.
pub(super) fn namespace(obj: &Object) -> Result<NamespaceRef, ModelError> {
    let Some(ns) = obj.object("namespace", NAMESPACE_FIELDS)? else {
        return Ok(NamespaceRef::Default);
    };
    let ty = ns.enumeration("type", NAMESPACE_TYPES)?;
    let pid = ns.u32("pid")?;
    let microservice = ns.string("microservice")?;
    let name = ns.string("name")?;
    let filepath = ns.string("filepath")?;

    let set = [
        pid != 0,
        !microservice.is_empty(),
        !name.is_empty(),
        !filepath.is_empty(),
    ];
    if let Some(other) = (0..set.len()).find(|&i| set[i] && i != ty) {
        let given = if ns.has("type") {
            ""
        } else {
            ", the default when `type` is absent"
        };
        return Err(ns.error(
            NAMESPACE_TYPE_FIELDS[other],
            format!(
                "`namespace.{}` is set but `namespace.type` is {} ({ty}{given}); set `type` to {} ({other})",
                NAMESPACE_TYPE_FIELDS[other], NAMESPACE_TYPES[ty], NAMESPACE_TYPES[other]
            ),
        ));
    }

    match ty {
        0 if pid == 0 => Ok(NamespaceRef::Default),
        0 => Ok(NamespaceRef::Pid(pid)),
        // Only the all-zero reference (PID_REF_NS with pid 0) means the agent's own
        // namespace: a type that names a namespace by label, name or file needs that field.
        _ if !set[ty] => Err(ns.error(
            NAMESPACE_TYPE_FIELDS[ty],
            format!(
                "is required when `namespace.type` is {} ({ty}); leave `namespace` out for the agent's own namespace",
                NAMESPACE_TYPES[ty]
            ),
        )),
        1 => Ok(NamespaceRef::Microservice(microservice)),
        2 => match netns_name_problem(&name) {
            Some(problem) => Err(ns.error("name", format!("{} {problem}", quote(&name)))),
            None => Ok(NamespaceRef::Named(name)),
        },
        _ if !filepath.starts_with('/') || filepath.contains('\0') => Err(ns.error(
            "filepath",
            format!("{} is not an absolute path", quote(&filepath)),
        )),
        _ => Ok(NamespaceRef::File(PathBuf::from(filepath))),
    }
}

/// Why `name` cannot be a file in `/var/run/netns`, if it cannot.
fn netns_name_problem(name: &str) -> Option<&'static str> {
    if name == "." || name == ".." {
        Some("is not a valid namespace name")
    } else if name.contains('/') {
        Some("contains `/`; a named namespace is a file name in /var/run/netns")
    } else if name.contains('\0') {
        Some("contains a NUL character")
    } else if name.len() > 255 {
        Some("is longer than 255 bytes")
    } else {
        None
    }
}
