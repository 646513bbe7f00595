//! Reading links and addresses back from the kernel.

use super::conn::NsConn;
use super::error::NlError;
use crate::kernel::{KernelLink, LinkPresence};
use crate::model::MacAddr;
use ipnet::IpNet;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::packet_route::RouteNetlinkMessage;
use std::collections::HashMap;
use std::net::IpAddr;

/// Which links count as the agent's own.
pub(crate) struct Ownership {
    /// Link group that marks owned links.
    pub group: u32,
    /// Alias prefix that marks owned links.
    pub alias_prefix: String,
}

impl Ownership {
    /// True when `link` carries one of the marks.
    pub(crate) fn owns(&self, link: &KernelLink) -> bool {
        link.group == self.group
            || link
                .alias
                .as_deref()
                .is_some_and(|a| a.starts_with(&self.alias_prefix))
    }
}

/// Every owned link of the namespace, with its addresses.
pub(crate) async fn owned_links(
    conn: &NsConn,
    owner: &Ownership,
) -> Result<Vec<KernelLink>, NlError> {
    let links = conn
        .dump(RouteNetlinkMessage::GetLink(LinkMessage::default()))
        .await?;
    let mut owned: Vec<KernelLink> = links
        .iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => Some(parse_link(l)),
            _ => None,
        })
        .filter(|l| owner.owns(l))
        .collect();
    if owned.is_empty() {
        return Ok(owned);
    }
    let mut addresses = address_map(conn, 0).await?;
    for link in &mut owned {
        link.addresses = addresses.remove(&link.ifindex).unwrap_or_default();
    }
    owned.sort_by_key(|l| l.ifindex);
    Ok(owned)
}

/// Every link of the namespace, owned or not, with its addresses, sorted by index.
pub(crate) async fn link_presence(conn: &NsConn) -> Result<Vec<LinkPresence>, NlError> {
    let (links, mut addresses) = futures::try_join!(
        conn.dump(RouteNetlinkMessage::GetLink(LinkMessage::default())),
        address_map(conn, 0)
    )?;
    let mut present: Vec<LinkPresence> = links
        .iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => Some(parse_link(l)),
            _ => None,
        })
        .map(|l| LinkPresence {
            addresses: addresses.remove(&l.ifindex).unwrap_or_default(),
            ifindex: l.ifindex,
            name: l.name,
            up: l.up,
        })
        .collect();
    present.sort_by_key(|l| l.ifindex);
    Ok(present)
}

/// The link with this index, with its addresses.
pub(crate) async fn link_by_index(conn: &NsConn, ifindex: u32) -> Result<KernelLink, NlError> {
    let mut msg = LinkMessage::default();
    msg.header.index = ifindex;
    let mut link = single_link(conn, msg).await?;
    link.addresses = address_map(conn, ifindex)
        .await?
        .remove(&ifindex)
        .unwrap_or_default();
    Ok(link)
}

/// The link with this name (without addresses); `None` when there is none.
pub(crate) async fn link_by_name(conn: &NsConn, name: &str) -> Result<Option<KernelLink>, NlError> {
    let mut msg = LinkMessage::default();
    msg.attributes.push(LinkAttribute::IfName(name.to_string()));
    match single_link(conn, msg).await {
        Ok(link) => Ok(Some(link)),
        Err(e) if e.is(nix::errno::Errno::ENODEV) => Ok(None),
        Err(e) => Err(e),
    }
}

async fn single_link(conn: &NsConn, msg: LinkMessage) -> Result<KernelLink, NlError> {
    let answer = conn.request(RouteNetlinkMessage::GetLink(msg), 0).await?;
    answer
        .iter()
        .find_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => Some(parse_link(l)),
            _ => None,
        })
        .ok_or_else(|| NlError::Unexpected("no link in the answer to RTM_GETLINK".into()))
}

/// Addresses of the namespace (or of link `ifindex` when non-zero) by link index, sorted,
/// without IPv6 link-local ones.
async fn address_map(conn: &NsConn, ifindex: u32) -> Result<HashMap<u32, Vec<IpNet>>, NlError> {
    let mut msg = AddressMessage::default();
    msg.header.index = ifindex;
    let answer = conn.dump(RouteNetlinkMessage::GetAddress(msg)).await?;
    let mut map: HashMap<u32, Vec<IpNet>> = HashMap::new();
    for m in &answer {
        let RouteNetlinkMessage::NewAddress(a) = m else {
            continue;
        };
        if ifindex != 0 && a.header.index != ifindex {
            continue;
        }
        if let Some(net) = parse_address(a) {
            map.entry(a.header.index).or_default().push(net);
        }
    }
    for list in map.values_mut() {
        list.sort();
        list.dedup();
    }
    Ok(map)
}

/// The agent's view of a link message (addresses left empty).
pub(crate) fn parse_link(msg: &LinkMessage) -> KernelLink {
    let mut link = KernelLink {
        ifindex: msg.header.index,
        name: String::new(),
        alias: None,
        group: 0,
        mtu: 0,
        mac: None,
        up: msg.header.flags.contains(LinkFlags::Up),
        addresses: Vec::new(),
    };
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => link.name = n.clone(),
            LinkAttribute::IfAlias(a) if !a.is_empty() => link.alias = Some(a.clone()),
            LinkAttribute::Group(g) => link.group = *g,
            LinkAttribute::Mtu(m) => link.mtu = *m,
            LinkAttribute::Address(bytes) => {
                link.mac = <[u8; 6]>::try_from(bytes.as_slice()).ok().map(MacAddr)
            }
            _ => {}
        }
    }
    link
}

/// The address of an address message; `None` for IPv6 link-local ones.
fn parse_address(msg: &AddressMessage) -> Option<IpNet> {
    let mut local = None;
    let mut address = None;
    for attr in &msg.attributes {
        match attr {
            AddressAttribute::Local(ip) => local = Some(*ip),
            AddressAttribute::Address(ip) => address = Some(*ip),
            _ => {}
        }
    }
    // IPv4: IFA_LOCAL is the interface's address (IFA_ADDRESS the peer on point-to-point).
    let ip = local.or(address)?;
    if let IpAddr::V6(v6) = ip {
        if v6.segments()[0] & 0xffc0 == 0xfe80 {
            return None;
        }
    }
    IpNet::new(ip, msg.header.prefix_len).ok()
}
