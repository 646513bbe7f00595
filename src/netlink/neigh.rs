//! Neighbour (ARP/NDP) entries: reading the agent's own back (marked by `NDA_PROTOCOL`),
//! setting and deleting them.

use super::conn::NsConn;
use super::error::NlError;
use crate::kernel::KernelNeighbour;
use crate::model::MacAddr;
use crate::scheduler::ops::l3::L3Outcome;
use crate::scheduler::ops::FailureKind;
use nix::errno::Errno;
use rtnetlink::packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
};
use rtnetlink::packet_route::route::RouteProtocol;
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use std::net::IpAddr;

/// Every IPv4 and IPv6 neighbour entry whose `NDA_PROTOCOL` is `protocol`, sorted. Entries
/// without the attribute (learnt by the kernel, or added by hand) are not the agent's.
pub(crate) async fn owned_neighbours(
    conn: &NsConn,
    protocol: u8,
) -> Result<Vec<KernelNeighbour>, NlError> {
    // One dump per family: an AF_UNSPEC dump would also walk the bridge FDB.
    let (mut v4, v6) = futures::try_join!(
        dump_family(conn, AddressFamily::Inet),
        dump_family(conn, AddressFamily::Inet6)
    )?;
    v4.extend(v6);
    v4.retain(|n| n.protocol == Some(protocol));
    v4.sort();
    Ok(v4)
}

async fn dump_family(
    conn: &NsConn,
    family: AddressFamily,
) -> Result<Vec<KernelNeighbour>, NlError> {
    // Strict checking offers no filter by protocol: the whole table comes back.
    let mut msg = NeighbourMessage::default();
    msg.header.family = family;
    let answer = conn.dump(RouteNetlinkMessage::GetNeighbour(msg)).await?;
    Ok(answer
        .iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewNeighbour(n) => parse_neighbour(n),
            _ => None,
        })
        .collect())
}

/// The agent's view of a neighbour message; `None` without an IP destination.
pub(crate) fn parse_neighbour(msg: &NeighbourMessage) -> Option<KernelNeighbour> {
    let mut ip = None;
    let mut mac = None;
    let mut protocol = None;
    for attr in &msg.attributes {
        match attr {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => {
                ip = Some(IpAddr::from(*a))
            }
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => {
                ip = Some(IpAddr::from(*a))
            }
            NeighbourAttribute::LinkLayerAddress(bytes) => {
                mac = <[u8; 6]>::try_from(bytes.as_slice()).ok().map(MacAddr)
            }
            NeighbourAttribute::Protocol(p) => protocol = Some(u8::from(*p)),
            _ => {}
        }
    }
    Some(KernelNeighbour {
        ifindex: msg.header.ifindex,
        ip: ip?,
        mac,
        state: u16::from(msg.header.state),
        protocol,
    })
}

/// Creates or replaces the entry (`NLM_F_CREATE|NLM_F_REPLACE`) with its MAC, state and
/// `NDA_PROTOCOL` mark.
pub(crate) async fn set_neighbour(conn: &NsConn, n: &KernelNeighbour) -> L3Outcome {
    let mut msg = neighbour_message(n);
    msg.header.state = NeighbourState::from(n.state);
    if let Some(mac) = n.mac {
        msg.attributes
            .push(NeighbourAttribute::LinkLayerAddress(mac.0.to_vec()));
    }
    if let Some(p) = n.protocol {
        msg.attributes
            .push(NeighbourAttribute::Protocol(RouteProtocol::from(p)));
    }
    match conn
        .request(
            RouteNetlinkMessage::NewNeighbour(msg),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
        .await
    {
        Ok(_) => L3Outcome::Done,
        Err(e) => L3Outcome::Failed {
            kind: if e.is(Errno::ENODEV) {
                FailureKind::LinkGone
            } else {
                FailureKind::Other
            },
            error: format!("cannot set neighbour {} in {}: {e}", n, conn.label()),
        },
    }
}

/// Deletes the entry of (link, IP); one that is not there (or whose link is gone) counts as
/// deleted.
pub(crate) async fn delete_neighbour(conn: &NsConn, n: &KernelNeighbour) -> L3Outcome {
    let msg = neighbour_message(n);
    match conn
        .request(RouteNetlinkMessage::DelNeighbour(msg), 0)
        .await
    {
        Ok(_) => L3Outcome::Done,
        Err(e) if e.is(Errno::ENOENT) || e.is(Errno::ENODEV) => L3Outcome::Done,
        Err(e) => L3Outcome::Failed {
            kind: FailureKind::Other,
            error: format!("cannot delete neighbour {} in {}: {e}", n, conn.label()),
        },
    }
}

/// The message that names the entry: family, link and `NDA_DST`.
fn neighbour_message(n: &KernelNeighbour) -> NeighbourMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = match n.ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    msg.header.ifindex = n.ifindex;
    msg.attributes
        .push(NeighbourAttribute::Destination(n.ip.into()));
    msg
}
