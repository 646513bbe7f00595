//! The agent's view of the kernel's event messages (link, address, route and neighbour
//! notifications).

use super::datagram;
use super::dump::{parse_address, parse_link};
use super::neigh::parse_neighbour;
use super::route::parse_route;
use crate::kernel::KernelEvent;
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::address::{AddressMessage, AddressProtocol};
use rtnetlink::packet_route::RouteNetlinkMessage;

/// The events of the netlink messages in `datagram`.
pub(super) fn events_of(datagram: &[u8]) -> Vec<KernelEvent> {
    datagram::messages(datagram)
        .filter_map(|message| {
            message
                .map_err(|e| tracing::debug!("undecodable kernel event: {e}"))
                .ok()
                .and_then(event)
        })
        .collect()
}

/// The agent's view of one event message; `None` for what the agent does not follow.
fn event(message: NetlinkMessage<RouteNetlinkMessage>) -> Option<KernelEvent> {
    use RouteNetlinkMessage as M;
    match message.payload {
        NetlinkPayload::InnerMessage(inner) => match inner {
            M::NewLink(l) => Some(KernelEvent::Link(parse_link(&l))),
            M::DelLink(l) => Some(KernelEvent::LinkGone {
                ifindex: l.header.index,
            }),
            M::NewAddress(a) => address(&a, true),
            M::DelAddress(a) => address(&a, false),
            M::NewRoute(r) => {
                parse_route(&r).map(|route| KernelEvent::Route { route, added: true })
            }
            M::DelRoute(r) => parse_route(&r).map(|route| KernelEvent::Route {
                route,
                added: false,
            }),
            M::NewNeighbour(n) => parse_neighbour(&n).map(|neighbour| KernelEvent::Neighbour {
                neighbour,
                added: true,
            }),
            M::DelNeighbour(n) => parse_neighbour(&n).map(|neighbour| KernelEvent::Neighbour {
                neighbour,
                added: false,
            }),
            _ => None,
        },
        _ => None,
    }
}

/// An address event; `None` for the addresses the kernel makes itself.
fn address(msg: &AddressMessage, added: bool) -> Option<KernelEvent> {
    let (net, proto) = parse_address(msg)?;
    if matches!(
        proto,
        Some(AddressProtocol::LinkLocal | AddressProtocol::RouterAnnouncement)
    ) {
        return None;
    }
    Some(KernelEvent::Address {
        ifindex: msg.header.index,
        net,
        added,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage};

    /// A `RTM_NEWLINK` (or `RTM_DELLINK`) message of link `index` named `name`, as sent.
    fn link_message(index: u32, name: &str, gone: bool) -> Vec<u8> {
        let mut link = LinkMessage::default();
        link.header.index = index;
        link.attributes.push(LinkAttribute::IfName(name.into()));
        let inner = if gone {
            RouteNetlinkMessage::DelLink(link)
        } else {
            RouteNetlinkMessage::NewLink(link)
        };
        let mut message = NetlinkMessage::from(inner);
        message.finalize();
        let mut bytes = vec![0; message.buffer_len()];
        message.serialize(&mut bytes);
        bytes
    }

    #[test]
    fn every_message_of_a_datagram_is_read() {
        let mut datagram = link_message(7, "a", false);
        datagram.extend(link_message(8, "bb", true));
        let events = events_of(&datagram);
        assert!(
            matches!(&events[..], [KernelEvent::Link(l), KernelEvent::LinkGone { ifindex: 8 }]
                if l.ifindex == 7 && l.name == "a"),
            "{events:?}"
        );
    }

    #[test]
    fn a_truncated_datagram_gives_the_whole_messages_before_the_cut() {
        let mut datagram = link_message(7, "a", false);
        let second = link_message(8, "b", false);
        datagram.extend(&second[..second.len() - 4]);
        assert_eq!(events_of(&datagram).len(), 1);
        assert!(events_of(&[0; 3]).is_empty());
    }
}
