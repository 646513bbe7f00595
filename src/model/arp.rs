//! Decoding and validation of a static neighbour entry (`.../arp/<name>`).
use super::decode::{check_name, interface_ref, ip_addr, namespace, not_unicast, parse};
use super::fields::Object;
use super::json::quote;
use super::{ArpEntry, MacAddr, ModelError, NeighbourState};

const ARP_FIELDS: &[&str] = &[
    "name",
    "namespace",
    "interface",
    "ip_family",
    "state",
    "ip_addr",
    "hw_address",
];
const IP_FAMILY_FIELDS: &[&str] = &["family"];
const STATE_FIELDS: &[&str] = &["type"];

/// `ip_family.family` names; the index is the number.
pub(super) const IP_FAMILIES: &[&str] = &["IPV4", "IPV6", "ALL", "MPLS"];
/// `state.type` names; the index is the number.
pub(super) const NEIGHBOUR_STATES: &[&str] = &["PERMANENT", "NOARP", "REACHABLE", "STALE"];
/// The state of each `state.type` number (same index as [`NEIGHBOUR_STATES`]).
const STATES: [NeighbourState; 4] = [
    NeighbourState::Permanent,
    NeighbourState::NoArp,
    NeighbourState::Reachable,
    NeighbourState::Stale,
];

/// Decodes and validates the value of an ARP key (`.../arp/<name>`).
///
/// Same decoding rules and error style as [`super::decode_interface`]. Beyond the JSON types
/// it checks: `interface`, `ip_addr` (one unicast address) and `hw_address` (a MAC) are
/// required; `ip_family.family`, when given, agrees with `ip_addr` (ALL means "the
/// address's family"; MPLS is refused); `state.type` defaults to PERMANENT.
pub fn decode_arp(key: &str, value: &[u8]) -> Result<ArpEntry, ModelError> {
    let json = parse(key, value)?;
    let obj = Object::new(key, "", &json, ARP_FIELDS)?;

    let name = obj.string("name")?;
    check_name(&obj, key, &name)?;
    let namespace = namespace(&obj)?;
    let interface = interface_ref(&obj, "interface")?;
    if interface.is_empty() {
        return Err(obj.error(
            "interface",
            "is required: the logical `name` of the interface the entry is on (or a link name such as `eth0`)".to_string(),
        ));
    }
    let family = match obj.object("ip_family", IP_FAMILY_FIELDS)? {
        Some(f) if f.has("family") => Some((f.enumeration("family", IP_FAMILIES)?, f)),
        _ => None,
    };
    let state = match obj.object("state", STATE_FIELDS)? {
        Some(state) => STATES[state.enumeration("type", NEIGHBOUR_STATES)?],
        None => NeighbourState::Permanent,
    };
    let ip = ip_addr(&obj, "ip_addr")?.ok_or_else(|| {
        obj.error(
            "ip_addr",
            "is required: the neighbour's IP address, e.g. `192.168.22.9`".to_string(),
        )
    })?;
    if let Some(problem) = not_unicast(ip) {
        return Err(obj.error(
            "ip_addr",
            format!("{ip} is {problem}, not the address of one neighbour"),
        ));
    }
    let mac = obj.string("hw_address")?;
    if mac.is_empty() {
        return Err(obj.error(
            "hw_address",
            "is required: the neighbour's MAC address, e.g. `46:06:18:db:05:3a`".to_string(),
        ));
    }
    let mac: MacAddr = mac.parse().map_err(|e| obj.error("hw_address", e))?;

    if let Some((number, f)) = family {
        let contradiction = match number {
            0 => ip.is_ipv6(),
            1 => ip.is_ipv4(),
            2 => false,
            _ => {
                return Err(f.error(
                    "family",
                    "is MPLS (3), which is not supported: the entry is for an IP address; omit `ip_family` to take the family from `ip_addr`".to_string(),
                ))
            }
        };
        if contradiction {
            let actual = if ip.is_ipv4() { "IPv4" } else { "IPv6" };
            return Err(f.error(
                "family",
                format!(
                    "is {} ({number}) but `ip_addr` {} is an {actual} address; omit `ip_family` to take the family from the address",
                    IP_FAMILIES[number],
                    quote(&ip.to_string())
                ),
            ));
        }
    }

    Ok(ArpEntry {
        name,
        namespace,
        interface,
        ip,
        mac,
        state,
    })
}
