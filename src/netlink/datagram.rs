//! Receiving netlink datagrams into one buffer per thread (instead of one per socket: the
//! agent has two sockets per namespace), handing each to a reader before the next, and
//! decoding their messages (link messages only as far as the agent reads them).

use rtnetlink::packet_core::{
    DecodeError, NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload, NlasIterator,
    Parseable, ParseableParametrized,
};
use rtnetlink::packet_route::link::{LinkAttribute, LinkHeader, LinkMessage};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::sys::{AsyncSocket, TokioSocket};
use std::cell::RefCell;
use std::io;
use std::task::{ready, Context, Poll};

/// Size of each thread's receive buffer. The kernel fills dump answers up to 32 KiB per
/// datagram for a buffer this large; a notification or an ACK is far smaller.
const RECEIVE_BUFFER: usize = 64 * 1024;

thread_local! {
    static DATAGRAM: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Receives the next datagram of `socket`, waiting until there is one, and returns what
/// `read` makes of it. The kernel handles a request within its send, so the answer is
/// usually queued already: that case costs no trip through the reactor.
pub(crate) async fn receive<T>(
    socket: &TokioSocket,
    mut read: impl FnMut(&[u8]) -> T,
) -> io::Result<T> {
    match try_receive(socket, &mut read) {
        Some(result) => result,
        None => std::future::poll_fn(|cx| poll_receive(socket, cx, &mut read)).await,
    }
}

/// Receives the datagram queued first on `socket`, if any (`None` when none is), and
/// returns what `read` makes of it.
pub(crate) fn try_receive<T>(
    socket: &TokioSocket,
    read: &mut impl FnMut(&[u8]) -> T,
) -> Option<io::Result<T>> {
    DATAGRAM.with_borrow_mut(|buffer| {
        prepare(buffer);
        match socket.socket_ref().recv(buffer, libc::MSG_DONTWAIT) {
            Ok(_) => Some(Ok(read(buffer))),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
            Err(e) => Some(Err(e)),
        }
    })
}

/// Polls for the next datagram of `socket`; when one is there, returns what `read` makes
/// of it.
pub(crate) fn poll_receive<T>(
    socket: &TokioSocket,
    cx: &mut Context<'_>,
    read: &mut impl FnMut(&[u8]) -> T,
) -> Poll<io::Result<T>> {
    DATAGRAM.with_borrow_mut(|buffer| {
        prepare(buffer);
        ready!(socket.poll_recv_from(cx, buffer))?;
        Poll::Ready(Ok(read(buffer)))
    })
}

/// Empties `buffer`, keeping room for a whole datagram.
fn prepare(buffer: &mut Vec<u8>) {
    buffer.clear();
    buffer.reserve(RECEIVE_BUFFER);
}

/// The netlink messages of `datagram`, in order, each decoded on its own (an undecodable
/// one does not hide the next); a truncated tail is left out.
pub(crate) fn messages(
    datagram: &[u8],
) -> impl Iterator<Item = Result<NetlinkMessage<RouteNetlinkMessage>, DecodeError>> + '_ {
    let mut rest = datagram;
    std::iter::from_fn(move || {
        let length = NetlinkBuffer::new_checked(rest).ok()?.length() as usize;
        let message = decode(&rest[..length]);
        rest = &rest[length.next_multiple_of(4).min(rest.len())..];
        Some(message)
    })
}

/// The attributes of a link the agent reads (`dump::parse_link`, the echo of a created
/// link): name, alias, group, MTU, MAC, master, peer index and kind information. A link
/// message holds many more (statistics, per-family settings, queues, ...), which make most
/// of its size and of the work of decoding it.
const READ_LINK_ATTRIBUTES: [u16; 8] = [
    libc::IFLA_IFNAME,
    libc::IFLA_IFALIAS,
    libc::IFLA_GROUP,
    libc::IFLA_MTU,
    libc::IFLA_ADDRESS,
    libc::IFLA_MASTER,
    libc::IFLA_LINK,
    libc::IFLA_LINKINFO,
];

/// Decodes one netlink message; a new or deleted link keeps only [`READ_LINK_ATTRIBUTES`]
/// (the others are skipped undecoded), every other message is decoded whole.
fn decode(bytes: &[u8]) -> Result<NetlinkMessage<RouteNetlinkMessage>, DecodeError> {
    let buffer = NetlinkBuffer::new_checked(bytes)?;
    let kind = buffer.message_type();
    if kind != libc::RTM_NEWLINK && kind != libc::RTM_DELLINK {
        return NetlinkMessage::deserialize(bytes);
    }
    let header = NetlinkHeader::parse(&buffer)?;
    let link = read_link(buffer.payload())?;
    let link = match kind {
        libc::RTM_NEWLINK => RouteNetlinkMessage::NewLink(link),
        _ => RouteNetlinkMessage::DelLink(link),
    };
    Ok(NetlinkMessage::new(
        header,
        NetlinkPayload::InnerMessage(link),
    ))
}

/// A link message with its header and those of its attributes the agent reads.
fn read_link(payload: &[u8]) -> Result<LinkMessage, DecodeError> {
    let header = LinkHeader::parse(payload)?;
    let mut link = LinkMessage::default();
    link.header = header;
    let attributes = payload.get(LINK_HEADER_LEN..).unwrap_or_default();
    for nla in NlasIterator::new(attributes) {
        let nla = nla?;
        if READ_LINK_ATTRIBUTES.contains(&nla.kind()) {
            let attribute = LinkAttribute::parse_with_param(&nla, link.header.interface_family)?;
            link.attributes.push(attribute);
        }
    }
    Ok(link)
}

/// Size of `struct ifinfomsg`, the header of a link message.
const LINK_HEADER_LEN: usize = std::mem::size_of::<libc::ifinfomsg>();

#[cfg(test)]
mod tests {
    use super::*;
    use rtnetlink::packet_core::Nla;
    use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
    use rtnetlink::packet_route::link::{InfoKind, LinkFlags, LinkInfo, State};

    /// `message` as the kernel would send it.
    fn datagram(message: RouteNetlinkMessage) -> Vec<u8> {
        let mut message = NetlinkMessage::from(message);
        message.header.sequence_number = 7;
        message.finalize();
        let mut bytes = vec![0; message.buffer_len()];
        message.serialize(&mut bytes);
        bytes
    }

    /// A link with attributes the agent reads and others it does not.
    fn link() -> LinkMessage {
        let mut link = LinkMessage::default();
        link.header.index = 9;
        link.header.flags = LinkFlags::Up;
        link.attributes = vec![
            LinkAttribute::IfName("zz0".into()),
            LinkAttribute::TxQueueLen(1000),
            LinkAttribute::OperState(State::Up),
            LinkAttribute::Mtu(1400),
            LinkAttribute::Group(77),
            LinkAttribute::Promiscuity(0),
            LinkAttribute::NumTxQueues(1),
            LinkAttribute::Address(vec![2, 0, 0, 0, 0, 9]),
            LinkAttribute::Broadcast(vec![0xff; 6]),
            LinkAttribute::Link(4),
            LinkAttribute::Controller(3),
            LinkAttribute::IfAlias("/vnf-agent/x/zz0/zz1".into()),
            LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Veth)]),
        ];
        link
    }

    #[test]
    fn a_link_keeps_the_header_and_the_attributes_the_agent_reads() {
        for (bytes, new) in [
            (datagram(RouteNetlinkMessage::NewLink(link())), true),
            (datagram(RouteNetlinkMessage::DelLink(link())), false),
        ] {
            let full = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&bytes).unwrap();
            let ours = messages(&bytes).next().unwrap().unwrap();
            assert_eq!(ours.header, full.header);
            let (NetlinkPayload::InnerMessage(ours), NetlinkPayload::InnerMessage(full)) =
                (ours.payload, full.payload)
            else {
                panic!("not inner messages");
            };
            let (ours, mut full) = match (ours, full) {
                (RouteNetlinkMessage::NewLink(o), RouteNetlinkMessage::NewLink(f)) if new => (o, f),
                (RouteNetlinkMessage::DelLink(o), RouteNetlinkMessage::DelLink(f)) if !new => {
                    (o, f)
                }
                other => panic!("kinds differ: {other:?}"),
            };
            full.attributes
                .retain(|a| READ_LINK_ATTRIBUTES.contains(&a.kind()));
            assert_eq!(full.attributes.len(), 8, "{full:?}");
            assert_eq!(ours, full);
            assert_eq!(
                super::super::dump::parse_link(&ours),
                super::super::dump::parse_link(&link())
            );
        }
    }

    #[test]
    fn other_messages_are_decoded_whole() {
        let mut address = AddressMessage::default();
        address.header.index = 9;
        address
            .attributes
            .push(AddressAttribute::Label("zz0".into()));
        let bytes = datagram(RouteNetlinkMessage::NewAddress(address));
        let full = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&bytes).unwrap();
        assert_eq!(messages(&bytes).next().unwrap().unwrap(), full);
    }
}
