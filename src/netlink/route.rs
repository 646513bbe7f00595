//! Static routes: reading the agent's own back (marked by its routing-protocol number),
//! adding, replacing and deleting them.

use super::conn::NsConn;
use super::error::NlError;
use crate::kernel::KernelRoute;
use crate::scheduler::ops::l3::L3Outcome;
use crate::scheduler::ops::FailureKind;
use ipnet::IpNet;
use nix::errno::Errno;
use rtnetlink::packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteProtocol, RouteScope,
    RouteType,
};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The main routing table (`RT_TABLE_MAIN`), also used for a route with table 0.
const RT_TABLE_MAIN: u32 = 254;
/// `RT_SCOPE_HOST`: a route to an address of this host.
const RT_SCOPE_HOST: u8 = 254;
/// The metric the kernel gives IPv6 routes added without one (`IP6_RT_PRIO_USER`).
const IP6_DEFAULT_METRIC: u32 = 1024;

/// What one read of a namespace's routes gives.
pub(crate) struct RouteDump {
    /// The routes carrying the agent's protocol, sorted.
    pub owned: Vec<KernelRoute>,
    /// The destinations of everyone else's direct routes (no gateway, not host scope), by
    /// outgoing link: they make a gateway reachable like an address does.
    pub direct: Vec<(u32, IpNet)>,
}

/// Every unicast route of both families in all tables with a single next hop, split into the
/// agent's own (carrying `protocol`) and the others' direct routes. Others (multipath,
/// nexthop objects, `via` another family, TOS or source-specific routes) cannot have been
/// made by the agent and are left out.
pub(crate) async fn read_routes(conn: &NsConn, protocol: u8) -> Result<RouteDump, NlError> {
    let (mut v4, v6) = futures::try_join!(
        dump_family(conn, AddressFamily::Inet, None, None),
        dump_family(conn, AddressFamily::Inet6, None, None)
    )?;
    v4.extend(v6);
    let (mut owned, others): (Vec<KernelRoute>, Vec<KernelRoute>) =
        v4.into_iter().partition(|r| r.protocol == protocol);
    owned.sort();
    let direct = others
        .iter()
        .filter(|r| r.gateway.is_none() && r.oif != 0 && r.scope != RT_SCOPE_HOST)
        .map(|r| (r.oif, r.dst))
        .collect();
    Ok(RouteDump { owned, direct })
}

/// The unicast routes of one family: carrying `protocol` when given (else all), of one table
/// when `table` is given.
async fn dump_family(
    conn: &NsConn,
    family: AddressFamily,
    protocol: Option<u8>,
    table: Option<u32>,
) -> Result<Vec<KernelRoute>, NlError> {
    let mut msg = RouteMessage::default();
    msg.header.address_family = family;
    // With strict checking (enabled on every socket) the kernel filters the dump by
    // protocol, type and table itself; without it these are ignored. Either way the answer
    // is filtered again below.
    if let Some(p) = protocol {
        msg.header.protocol = RouteProtocol::from(p);
    }
    msg.header.kind = RouteType::Unicast;
    if let Some(t) = table {
        msg.attributes.push(RouteAttribute::Table(t));
    }
    let answer = match conn.dump(RouteNetlinkMessage::GetRoute(msg)).await {
        Ok(a) => a,
        // A filtered dump of a table that does not exist.
        Err(e) if table.is_some() && e.is(Errno::ENOENT) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    Ok(answer
        .iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewRoute(r) => parse_route(r),
            _ => None,
        })
        .filter(|r| protocol.is_none_or(|p| r.protocol == p) && table.is_none_or(|t| r.table == t))
        .collect())
}

/// The agent's view of a route message; `None` for routes the agent never makes.
pub(crate) fn parse_route(msg: &RouteMessage) -> Option<KernelRoute> {
    let h = &msg.header;
    let unspecified: IpAddr = match h.address_family {
        AddressFamily::Inet => Ipv4Addr::UNSPECIFIED.into(),
        AddressFamily::Inet6 => Ipv6Addr::UNSPECIFIED.into(),
        _ => return None,
    };
    if h.kind != RouteType::Unicast
        || h.tos != 0
        || h.source_prefix_length != 0
        || h.flags.contains(RouteFlags::Cloned)
    {
        return None;
    }
    let mut route = KernelRoute {
        table: u32::from(h.table),
        dst: IpNet::new(unspecified, 0).ok()?,
        gateway: None,
        source: None,
        metric: 0,
        scope: h.scope.into(),
        oif: 0,
        protocol: h.protocol.into(),
    };
    let mut dst = unspecified;
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Destination(a) => dst = ip(a)?,
            RouteAttribute::Gateway(a) => route.gateway = Some(ip(a)?),
            RouteAttribute::PrefSource(a) => route.source = Some(ip(a)?),
            RouteAttribute::Priority(p) => route.metric = *p,
            RouteAttribute::Oif(i) => route.oif = *i,
            // RTA_TABLE holds the full id; rtm_table is 252 (RT_TABLE_COMPAT) above 255.
            RouteAttribute::Table(t) => route.table = *t,
            RouteAttribute::MultiPath(_) | RouteAttribute::Via(_) | RouteAttribute::NhId(_) => {
                return None
            }
            _ => {}
        }
    }
    route.dst = IpNet::new(dst, h.destination_prefix_length).ok()?;
    Some(route)
}

fn ip(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some((*v4).into()),
        RouteAddress::Inet6(v6) => Some((*v6).into()),
        _ => None,
    }
}

/// Adds `route` (`replace` = false, fails when its (table, dst, metric) exists) or creates or
/// replaces it in place (`replace` = true).
pub(crate) async fn write_route(conn: &NsConn, route: &KernelRoute, replace: bool) -> L3Outcome {
    let verb = if replace { "replace" } else { "add" };
    let msg = match route_message(route) {
        Ok(m) => m,
        Err(e) => return invalid(conn, verb, route, e),
    };
    let flags = NLM_F_CREATE | if replace { NLM_F_REPLACE } else { NLM_F_EXCL };
    match conn
        .request(RouteNetlinkMessage::NewRoute(msg), flags)
        .await
    {
        Ok(_) => L3Outcome::Done,
        Err(e) if !replace && e.is(Errno::EEXIST) => L3Outcome::Failed {
            kind: FailureKind::Other,
            error: format!(
                "route {} exists in {} (a route with the same table, destination and metric)",
                route,
                conn.label()
            ),
        },
        Err(e) => L3Outcome::Failed {
            kind: if e.is(Errno::ENODEV) {
                FailureKind::LinkGone
            } else {
                FailureKind::Other
            },
            error: format!(
                "cannot {verb} route {} in {}: {e}{}",
                route,
                conn.label(),
                hint(route, &e)
            ),
        },
    }
}

/// Deletes exactly `route` (as dumped); a route that is not there counts as deleted.
pub(crate) async fn delete_route(conn: &NsConn, route: &KernelRoute) -> L3Outcome {
    let mut msg = match route_message(route) {
        Ok(m) => m,
        Err(e) => return invalid(conn, "delete", route, e),
    };
    let failed = |e: NlError| L3Outcome::Failed {
        kind: FailureKind::Other,
        error: format!("cannot delete route {} in {}: {e}", route, conn.label()),
    };
    if route.dst.addr().is_ipv6() && route.metric == 0 {
        // The kernel stores it as 1024, and IPv6 deletes match the metric only when set.
        msg.attributes
            .push(RouteAttribute::Priority(IP6_DEFAULT_METRIC));
    }
    if route.dst.addr().is_ipv4() && route.metric == 0 {
        // An IPv4 delete without RTA_PRIORITY matches any metric: were this route gone, the
        // kernel would delete an owned sibling with a higher metric instead. Only delete
        // what is there.
        match still_present(conn, route).await {
            Ok(true) => {}
            Ok(false) => return L3Outcome::Done,
            Err(e) => return failed(e),
        }
    }
    match conn.request(RouteNetlinkMessage::DelRoute(msg), 0).await {
        Ok(_) => L3Outcome::Done,
        // Already gone, or its link (and with it the route) is gone.
        Err(e) if e.is(Errno::ESRCH) || e.is(Errno::ENOENT) || e.is(Errno::ENODEV) => {
            L3Outcome::Done
        }
        Err(e) => failed(e),
    }
}

/// Whether a route that an IPv4 delete of `route` (metric 0) would match exactly exists.
async fn still_present(conn: &NsConn, route: &KernelRoute) -> Result<bool, NlError> {
    let table = table_id(route.table);
    let present = dump_family(conn, AddressFamily::Inet, Some(route.protocol), Some(table)).await?;
    Ok(present.iter().any(|r| {
        r.dst == route.dst
            && r.metric == 0
            && r.scope == route.scope
            && (route.gateway.is_none() || r.gateway == route.gateway)
            && (route.source.is_none() || r.source == route.source)
            && (route.oif == 0 || r.oif == route.oif)
    }))
}

fn table_id(table: u32) -> u32 {
    if table == 0 {
        RT_TABLE_MAIN
    } else {
        table
    }
}

/// The `RTM_NEWROUTE`/`RTM_DELROUTE` body of `route`, or why the kernel could not hold it.
fn route_message(route: &KernelRoute) -> Result<RouteMessage, String> {
    let dst = route.dst;
    if dst.trunc() != dst {
        return Err(format!(
            "destination {dst} has host bits set (the prefix is {})",
            dst.trunc()
        ));
    }
    let v4 = dst.addr().is_ipv4();
    for (what, addr) in [("gateway", route.gateway), ("source", route.source)] {
        if addr.is_some_and(|a| a.is_ipv4() != v4) {
            return Err(format!("{what} and destination are of different families"));
        }
    }
    let table = table_id(route.table);
    let mut msg = RouteMessage::default();
    msg.header.address_family = if v4 {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    msg.header.destination_prefix_length = dst.prefix_len();
    // Ids above 255 only fit RTA_TABLE.
    msg.header.table = u8::try_from(table).unwrap_or(RouteHeader::RT_TABLE_UNSPEC);
    msg.header.protocol = RouteProtocol::from(route.protocol);
    msg.header.scope = RouteScope::from(route.scope);
    msg.header.kind = RouteType::Unicast;
    let a = &mut msg.attributes;
    a.push(RouteAttribute::Table(table));
    if dst.prefix_len() > 0 {
        a.push(RouteAttribute::Destination(dst.addr().into()));
    }
    if let Some(gw) = route.gateway {
        a.push(RouteAttribute::Gateway(gw.into()));
    }
    if let Some(src) = route.source {
        a.push(RouteAttribute::PrefSource(src.into()));
    }
    if route.metric != 0 {
        a.push(RouteAttribute::Priority(route.metric));
    }
    if route.oif != 0 {
        a.push(RouteAttribute::Oif(route.oif));
    }
    Ok(msg)
}

fn invalid(conn: &NsConn, verb: &str, route: &KernelRoute, why: String) -> L3Outcome {
    L3Outcome::Failed {
        kind: FailureKind::Other,
        error: format!("cannot {verb} route {} in {}: {why}", route, conn.label()),
    }
}

/// What the kernel probably meant, for errors whose text alone is cryptic: the link an
/// index names, or (when the kernel gave no explanation of its own) a likely cause.
fn hint(route: &KernelRoute, e: &NlError) -> String {
    let explained = matches!(e, NlError::Errno(_, Some(_)));
    let gw = route
        .gateway
        .map(|g| g.to_string())
        .unwrap_or_else(|| "-".into());
    if e.is(Errno::ENODEV) && route.oif != 0 {
        format!("; no link with index {}", route.oif)
    } else if e.is(Errno::ENETDOWN) && route.oif != 0 {
        format!("; the link with index {} is down", route.oif)
    } else if explained {
        String::new()
    } else if let (true, Some(src)) = (e.is(Errno::EINVAL), route.source) {
        format!("; is the source {src} an address of a link in this namespace?")
    } else if e.is(Errno::ENETUNREACH) || e.is(Errno::EHOSTUNREACH) {
        format!("; gateway {gw} is not reachable through a route of link scope")
    } else if e.is(Errno::EINVAL) && route.gateway.is_some() {
        format!("; is gateway {gw} on a connected subnet of the link?")
    } else {
        String::new()
    }
}
