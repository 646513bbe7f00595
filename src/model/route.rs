//! Decoding and validation of a static route (`.../route/<name>`).
use super::decode::{check_name, interface_ref, ip_addr, ip_net, namespace, not_unicast, parse};
use super::fields::Object;
use super::{ModelError, Route, RouteScope};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::net::IpAddr;

const ROUTE_FIELDS: &[&str] = &[
    "name",
    "default",
    "namespace",
    "interface",
    "description",
    "scope",
    "dst_ip_addr",
    "src_ip_addr",
    "gw_addr",
    "metric",
    "table",
];
const SCOPE_FIELDS: &[&str] = &["type"];
/// `RT_TABLE_LOCAL`: the kernel's own table of local and broadcast addresses.
const LOCAL_TABLE: u32 = 255;

/// `scope.type` names; the index is the number.
pub(super) const SCOPE_TYPES: &[&str] = &["GLOBAL", "SITE", "LINK", "HOST"];
/// The scope of each `scope.type` number (same index as [`SCOPE_TYPES`]).
const SCOPES: [RouteScope; 4] = [
    RouteScope::Global,
    RouteScope::Site,
    RouteScope::Link,
    RouteScope::Host,
];

/// Decodes and validates the value of a route key (`.../route/<name>`).
///
/// Same decoding rules and error style as [`super::decode_interface`]. Beyond the JSON types
/// it checks: `dst_ip_addr` is `<ip>/<prefix>` and required unless `default` (host bits are
/// cleared); `default: true` needs `gw_addr` and allows only `0.0.0.0/0` / `::/0` as
/// `dst_ip_addr`; gateway and source are single unicast addresses of the destination's
/// family; no gateway with LINK or HOST scope; a route without `gw_addr` names its
/// `interface`, as does one via an IPv6 link-local gateway.
pub fn decode_route(key: &str, value: &[u8]) -> Result<Route, ModelError> {
    let json = parse(key, value)?;
    let obj = Object::new(key, "", &json, ROUTE_FIELDS)?;

    let name = obj.string("name")?;
    check_name(&obj, key, &name)?;
    let default = obj.bool("default")?;
    let namespace = namespace(&obj)?;
    let interface = interface_ref(&obj, "interface")?;
    let description = obj.string("description")?;
    let scope = match obj.object("scope", SCOPE_FIELDS)? {
        Some(scope) => Some(SCOPES[scope.enumeration("type", SCOPE_TYPES)?]),
        None => None,
    };
    let dst_text = obj.string("dst_ip_addr")?;
    let dst = match dst_text.as_str() {
        "" => None,
        text => Some(ip_net(&obj, "dst_ip_addr", text)?.trunc()),
    };
    let src = host_address(
        &obj,
        "src_ip_addr",
        "leave it empty to let the kernel choose",
    )?;
    let gateway = host_address(&obj, "gw_addr", "leave it empty for a direct route")?;
    let metric = obj.u32("metric")?;
    let table = obj.u32("table")?;
    if table == LOCAL_TABLE {
        return Err(obj.error(
            "table",
            format!("{LOCAL_TABLE} is the kernel's local table (the addresses of this host, maintained by the kernel); use 0 (main) or a table of your own"),
        ));
    }

    let dst = destination(&obj, default, dst, gateway)?;
    check_families(&obj, dst, gateway, src)?;
    check_scope(&obj, scope, gateway)?;
    check_interface(&obj, &interface, gateway)?;

    Ok(Route {
        name,
        description,
        namespace,
        interface,
        scope,
        dst,
        default,
        src,
        gateway,
        metric,
        table,
    })
}

/// The string `field` as one unicast address; empty = `None`. `hint` says what to do instead
/// of giving an address that cannot be used.
fn host_address(obj: &Object, field: &str, hint: &str) -> Result<Option<IpAddr>, ModelError> {
    let ip = ip_addr(obj, field)?;
    if let Some(problem) = ip.and_then(not_unicast) {
        let ip = ip.map(|ip| ip.to_string()).unwrap_or_default();
        return Err(obj.error(
            field,
            format!("{ip} is {problem}, not the address of one host; {hint}"),
        ));
    }
    Ok(ip)
}

/// The destination: `dst_ip_addr` (required unless `default`), or the default route of the
/// gateway's family.
fn destination(
    obj: &Object,
    default: bool,
    dst: Option<IpNet>,
    gateway: Option<IpAddr>,
) -> Result<IpNet, ModelError> {
    if !default {
        return dst.ok_or_else(|| {
            obj.error(
                "dst_ip_addr",
                "is required unless `default` is true: the destination `<ip>/<prefix>`, e.g. `10.0.2.0/24`".to_string(),
            )
        });
    }
    if let Some(dst) = dst.filter(|d| d.prefix_len() != 0) {
        return Err(obj.error(
            "dst_ip_addr",
            format!(
                "is {dst} but `default` is true, which means 0.0.0.0/0 (or ::/0); remove `dst_ip_addr` or `default`"
            ),
        ));
    }
    let Some(gateway) = gateway else {
        return Err(obj.error(
            "gw_addr",
            "is required when `default` is true; for a default route without a gateway, set `dst_ip_addr` to `0.0.0.0/0` or `::/0` instead of `default`".to_string(),
        ));
    };
    Ok(dst.unwrap_or_else(|| match gateway {
        IpAddr::V4(_) => IpNet::V4(Ipv4Net::default()),
        IpAddr::V6(_) => IpNet::V6(Ipv6Net::default()),
    }))
}

/// Destination, gateway and source belong to one address family.
fn check_families(
    obj: &Object,
    dst: IpNet,
    gateway: Option<IpAddr>,
    src: Option<IpAddr>,
) -> Result<(), ModelError> {
    let dst_is_v4 = matches!(dst, IpNet::V4(_));
    for (field, ip) in [("gw_addr", gateway), ("src_ip_addr", src)] {
        if let Some(ip) = ip.filter(|ip| ip.is_ipv4() != dst_is_v4) {
            return Err(obj.error(
                field,
                format!(
                    "{ip} is {} but the destination {dst} is {}; destination, gateway and source of one route must be of one address family",
                    family(ip.is_ipv4()),
                    family(dst_is_v4)
                ),
            ));
        }
    }
    Ok(())
}

fn family(v4: bool) -> &'static str {
    if v4 {
        "IPv4"
    } else {
        "IPv6"
    }
}

/// LINK and HOST scope routes have no gateway (the kernel refuses them).
fn check_scope(
    obj: &Object,
    scope: Option<RouteScope>,
    gateway: Option<IpAddr>,
) -> Result<(), ModelError> {
    let (Some(scope), Some(gateway)) = (scope, gateway) else {
        return Ok(());
    };
    let what = match scope {
        RouteScope::Link => "a LINK-scope route reaches its destination directly on the link",
        RouteScope::Host => "a HOST-scope route's destination is on this host",
        RouteScope::Global | RouteScope::Site => return Ok(()),
    };
    Err(obj.error(
        "scope.type",
        format!(
            "is {} ({}) but `gw_addr` is {gateway}: {what}, without a gateway; remove `gw_addr` or use GLOBAL (0)",
            SCOPE_TYPES[scope as usize], scope as usize
        ),
    ))
}

/// A route without a gateway needs its outgoing interface; so does one via an IPv6
/// link-local gateway (the address means nothing without its link).
fn check_interface(
    obj: &Object,
    interface: &str,
    gateway: Option<IpAddr>,
) -> Result<(), ModelError> {
    if !interface.is_empty() {
        return Ok(());
    }
    match gateway {
        None => Err(obj.error(
            "interface",
            "is required for a route without `gw_addr`: the logical `name` of the outgoing interface (or a link name such as `eth0`)".to_string(),
        )),
        Some(IpAddr::V6(gw)) if gw.segments()[0] & 0xffc0 == 0xfe80 => Err(obj.error(
            "interface",
            format!("is required: the gateway {gw} is link-local, so the route must name its outgoing interface"),
        )),
        Some(_) => Ok(()),
    }
}
