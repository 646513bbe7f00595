//! Reading links and addresses back from the kernel.

use super::conn::NsConn;
use super::error::NlError;
use crate::kernel::{KernelLink, LinkPresence};
use crate::model::MacAddr;
use ipnet::IpNet;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage, AddressProtocol};
use rtnetlink::packet_route::link::{
    InfoData, InfoVrf, LinkAttribute, LinkExtentMask, LinkFlags, LinkInfo, LinkMessage,
};
use rtnetlink::packet_route::RouteNetlinkMessage;
use std::collections::HashMap;
use std::net::IpAddr;

/// Which links count as the agent's own.
pub(crate) struct Ownership {
    /// Link group that marks owned links.
    pub group: u32,
    /// The transient group owned links are deleted through (they are the agent's in it too:
    /// a deletion cut short leaves them there).
    pub delete_group: u32,
    /// Alias prefix that marks owned links.
    pub alias_prefix: String,
}

impl Ownership {
    /// True when `link` carries one of the marks.
    pub(crate) fn owns(&self, link: &KernelLink) -> bool {
        link.group == self.group
            || link.group == self.delete_group
            || link
                .alias
                .as_deref()
                .is_some_and(|a| a.starts_with(&self.alias_prefix))
    }
}

/// Every link of the namespace, without addresses.
async fn all_links(conn: &NsConn) -> Result<Vec<KernelLink>, NlError> {
    let links = conn.dump(get_link(LinkMessage::default())).await?;
    Ok(links
        .iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => Some(parse_link(l)),
            _ => None,
        })
        .collect())
}

/// Every owned link of the namespace, with its addresses.
pub(crate) async fn owned_links(
    conn: &NsConn,
    owner: &Ownership,
) -> Result<Vec<KernelLink>, NlError> {
    let mut owned = all_links(conn).await?;
    owned.retain(|l| owner.owns(l));
    if owned.is_empty() {
        return Ok(owned);
    }
    let mut addresses = addresses_by_link(read_addresses(conn, 0).await?, &owned);
    for link in &mut owned {
        link.addresses = addresses.remove(&link.ifindex).unwrap_or_default();
    }
    owned.sort_by_key(|l| l.ifindex);
    Ok(owned)
}

/// Every link of the namespace, owned or not, with its addresses, sorted by index.
pub(crate) async fn link_presence(conn: &NsConn) -> Result<Vec<LinkPresence>, NlError> {
    let (links, addresses) = futures::try_join!(all_links(conn), read_addresses(conn, 0))?;
    let mut addresses = addresses_by_link(addresses, &links);
    let mut present: Vec<LinkPresence> = links
        .into_iter()
        .map(|l| LinkPresence {
            addresses: addresses.remove(&l.ifindex).unwrap_or_default(),
            ifindex: l.ifindex,
            name: l.name,
            up: l.up,
            direct_routes: Vec::new(),
        })
        .collect();
    present.sort_by_key(|l| l.ifindex);
    Ok(present)
}

/// The links of the namespace the agent does not own but works with: those named in
/// `names` and those carrying an address marked with `protocol`, with their addresses and
/// marked addresses, sorted by index.
pub(crate) async fn foreign_links(
    conn: &NsConn,
    owner: &Ownership,
    names: &[String],
    protocol: u8,
) -> Result<Vec<KernelLink>, NlError> {
    let (mut all, addresses) = futures::try_join!(all_links(conn), read_addresses(conn, 0))?;
    all.retain(|l| !owner.owns(l));
    let mut marked = marked_by_link(&addresses, protocol);
    let mut by_link = addresses_by_link(addresses, &all);
    let wanted: Vec<KernelLink> = all
        .into_iter()
        .filter(|l| names.contains(&l.name) || marked.contains_key(&l.ifindex))
        .collect();
    let mut found: Vec<KernelLink> = wanted
        .into_iter()
        .map(|mut l| {
            l.addresses = by_link.remove(&l.ifindex).unwrap_or_default();
            l.marked_addresses = marked.remove(&l.ifindex).unwrap_or_default();
            l
        })
        .collect();
    found.sort_by_key(|l| l.ifindex);
    Ok(found)
}

/// The link with this index, with its addresses (and those marked with `mark`, if given).
pub(crate) async fn link_by_index(
    conn: &NsConn,
    ifindex: u32,
    mark: Option<u8>,
) -> Result<KernelLink, NlError> {
    let mut msg = LinkMessage::default();
    msg.header.index = ifindex;
    let mut link = single_link(conn, msg).await?;
    let addresses = read_addresses(conn, ifindex).await?;
    if let Some(protocol) = mark {
        link.marked_addresses = marked_by_link(&addresses, protocol)
            .remove(&ifindex)
            .unwrap_or_default();
    }
    link.addresses = addresses_by_link(addresses, std::slice::from_ref(&link))
        .remove(&ifindex)
        .unwrap_or_default();
    Ok(link)
}

/// The addresses marked with `protocol` (`IFA_PROTO`), by link index, sorted.
fn marked_by_link(addresses: &[RawAddress], protocol: u8) -> HashMap<u32, Vec<IpNet>> {
    let mut map: HashMap<u32, Vec<IpNet>> = HashMap::new();
    for (index, net, proto) in addresses {
        if proto.is_some_and(|p| u8::from(p) == protocol) {
            map.entry(*index).or_default().push(*net);
        }
    }
    for list in map.values_mut() {
        list.sort();
        list.dedup();
    }
    map
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
    let answer = conn.request(get_link(msg), 0).await?;
    link_in(&answer)
}

/// The link an answer to `RTM_GETLINK` carries.
fn link_in(answer: &[RouteNetlinkMessage]) -> Result<KernelLink, NlError> {
    answer
        .iter()
        .find_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => Some(parse_link(l)),
            _ => None,
        })
        .ok_or_else(|| NlError::Unexpected("no link in the answer to RTM_GETLINK".into()))
}

/// An `RTM_GETLINK` of `msg` that leaves out the link's statistics: the agent has no use
/// for them, and they are most of what the kernel would fill and the agent parse.
fn get_link(mut msg: LinkMessage) -> RouteNetlinkMessage {
    msg.attributes
        .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
    RouteNetlinkMessage::GetLink(msg)
}

/// One address as read: link index, address, and who made it (`IFA_PROTO`), if marked.
type RawAddress = (u32, IpNet, Option<AddressProtocol>);

/// Every address of the namespace, or of link `ifindex` when non-zero.
async fn read_addresses(conn: &NsConn, ifindex: u32) -> Result<Vec<RawAddress>, NlError> {
    let mut msg = AddressMessage::default();
    msg.header.index = ifindex;
    let answer = conn.dump(RouteNetlinkMessage::GetAddress(msg)).await?;
    Ok(answer
        .iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewAddress(a) if ifindex == 0 || a.header.index == ifindex => {
                parse_address(a).map(|(net, proto)| (a.header.index, net, proto))
            }
            _ => None,
        })
        .collect())
}

/// The addresses of `links` by link index, sorted, without those the kernel makes itself
/// (the IPv6 link-local address of every link, addresses from router advertisements), which
/// the agent neither configures nor removes; a link-local address someone configured stays.
fn addresses_by_link(addresses: Vec<RawAddress>, links: &[KernelLink]) -> HashMap<u32, Vec<IpNet>> {
    // Since Linux 5.18 the kernel marks the addresses it makes (IFA_PROTO), so an address
    // without a mark is someone's; older kernels mark none, and their own link-local address
    // is recognised by the link's hardware address.
    let marked = addresses.iter().any(|(_, _, proto)| proto.is_some());
    let mut map: HashMap<u32, Vec<IpNet>> = HashMap::new();
    for (index, net, proto) in addresses {
        let kernel_made = match proto {
            Some(p) => matches!(
                p,
                AddressProtocol::LinkLocal | AddressProtocol::RouterAnnouncement
            ),
            None if marked => false,
            None => links
                .iter()
                .find(|l| l.ifindex == index)
                .and_then(|l| l.mac)
                .is_some_and(|mac| net.addr() == eui64_link_local(mac)),
        };
        if !kernel_made {
            map.entry(index).or_default().push(net);
        }
    }
    for list in map.values_mut() {
        list.sort();
        list.dedup();
    }
    map
}

/// The link-local address the kernel gives a link with this hardware address by default
/// (EUI-64).
fn eui64_link_local(mac: MacAddr) -> IpAddr {
    let m = mac.0;
    let bytes = [
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        m[0] ^ 2,
        m[1],
        m[2],
        0xff,
        0xfe,
        m[3],
        m[4],
        m[5],
    ];
    IpAddr::V6(std::net::Ipv6Addr::from(bytes))
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
        kind: String::new(),
        master: 0,
        vrf_table: None,
        marked_addresses: Vec::new(),
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
            LinkAttribute::Controller(m) => link.master = *m,
            LinkAttribute::LinkInfo(infos) => parse_link_info(infos, &mut link),
            _ => {}
        }
    }
    link
}

/// The kind of a link, and a VRF's table.
fn parse_link_info(infos: &[LinkInfo], link: &mut KernelLink) {
    for info in infos {
        match info {
            LinkInfo::Kind(kind) => link.kind = kind.to_string(),
            LinkInfo::Data(InfoData::Vrf(attrs)) => {
                for attr in attrs {
                    if let InfoVrf::TableId(table) = attr {
                        link.vrf_table = Some(*table);
                    }
                }
            }
            _ => {}
        }
    }
}

/// The address of an address message with its `IFA_PROTO` mark (who made it), if any.
pub(crate) fn parse_address(msg: &AddressMessage) -> Option<(IpNet, Option<AddressProtocol>)> {
    let mut local = None;
    let mut address = None;
    let mut protocol = None;
    for attr in &msg.attributes {
        match attr {
            AddressAttribute::Local(ip) => local = Some(*ip),
            AddressAttribute::Address(ip) => address = Some(*ip),
            AddressAttribute::Protocol(p) => protocol = Some(*p),
            _ => {}
        }
    }
    // IPv4: IFA_LOCAL is the interface's address (IFA_ADDRESS the peer on point-to-point).
    let ip = local.or(address)?;
    IpNet::new(ip, msg.header.prefix_len)
        .ok()
        .map(|net| (net, protocol))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernels_default_link_local_address_is_eui64() {
        // `ip link add x address 02:00:00:81:00:05` gets fe80::ff:fe81:5.
        let mac = MacAddr([0x02, 0, 0, 0x81, 0, 0x05]);
        assert_eq!(
            eui64_link_local(mac),
            "fe80::ff:fe81:5".parse::<IpAddr>().unwrap()
        );
    }
}
