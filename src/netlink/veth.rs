//! VETH: both ends of a pair created in one request, each placed in its namespace.

use super::create::end_message;
use crate::scheduler::ops::EndSpec;
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth, LinkAttribute, LinkInfo};
use rtnetlink::packet_route::RouteNetlinkMessage;
use std::os::fd::RawFd;

/// The `RTM_NEWLINK` that creates the whole pair: end `a` as the link, end `b` as the peer
/// (`VETH_INFO_PEER`), each with namespace, group, name, MTU, MAC and [`QUEUES`]; `a` also
/// with its admin state. The peer cannot be set up in the same request: the kernel opens it
/// before the two ends are joined, `veth_open` fails with ENOTCONN and the whole creation is
/// rolled back.
pub(crate) fn pair_message(
    a: &EndSpec,
    na: RawFd,
    b: &EndSpec,
    nb: RawFd,
    group: u32,
) -> RouteNetlinkMessage {
    let mut peer = end_message(b, nb, group, false);
    peer.attributes.extend(queues());
    let mut link = end_message(a, na, group, a.up);
    link.attributes.extend(queues());
    link.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Veth),
        LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
    ]));
    RouteNetlinkMessage::NewLink(link)
}

/// Transmit and receive queues of each end: one of each, which is what a VETH uses unless
/// told otherwise. Without them the kernel allocates one queue per possible CPU, then, once
/// the end is registered, cuts the queues in use down to one, which waits for an expedited
/// RCU grace period per end (about 0.1 ms of the 0.4 ms a pair takes, measured with 2
/// CPUs). The one visible difference: `ethtool -L` cannot raise an end's channels above one.
pub(crate) const QUEUES: u32 = 1;

/// The queue attributes of each end (see [`QUEUES`]).
fn queues() -> [LinkAttribute; 2] {
    [
        LinkAttribute::NumTxQueues(QUEUES),
        LinkAttribute::NumRxQueues(QUEUES),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::request_tests::{attributes, end, iproute2, link_info};
    use super::*;

    /// `ip -n A link add zzva type veth peer name zzvb netns B` (iproute2 6.1, strace),
    /// without its netlink header: B's descriptor was 4.
    const IPROUTE2: &str = "00000000000000000000000000000000 0900 0300 7a7a766100000000 \
        3800 1200 0800 0100 76657468 2c00 0200 2800 0100 00000000000000000000000000000000 \
        0800 1c00 04000000 0900 0300 7a7a766200000000";

    #[test]
    fn the_pair_request_says_what_iproute2_says_and_marks_both_ends() {
        let theirs = iproute2(IPROUTE2);
        let RouteNetlinkMessage::NewLink(ours) = pair_message(&end("zzva"), 3, &end("zzvb"), 4, 77)
        else {
            unreachable!()
        };
        let peer = |m: &rtnetlink::packet_route::link::LinkMessage| match link_info(m).as_slice() {
            [LinkInfo::Kind(InfoKind::Veth), LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(p)))] => {
                p.clone()
            }
            other => panic!("not a veth request: {other:?}"),
        };
        let (their_peer, our_peer) = (peer(&theirs), peer(&ours));
        // Everything iproute2 asks of each end, the agent asks too (plus its group mark).
        for (t, o) in [(&theirs, &ours), (&their_peer, &our_peer)] {
            let (t, o) = (attributes(t), attributes(o));
            let missing: Vec<_> = t
                .iter()
                .filter(|a| !a.starts_with("LinkInfo") && !o.contains(a))
                .filter(|a| {
                    !a.starts_with("NetNsFd") || !o.iter().any(|x| x.starts_with("NetNsFd"))
                })
                .collect();
            assert!(missing.is_empty(), "missing {missing:?} in {o:?}");
            assert!(o.contains(&"Group(77)".to_string()), "{o:?}");
        }
        assert_eq!(
            our_peer
                .attributes
                .iter()
                .filter(|a| matches!(a, LinkAttribute::NetNsFd(4)))
                .count(),
            1
        );
    }

    #[test]
    fn both_ends_ask_for_one_queue_each_way() {
        let RouteNetlinkMessage::NewLink(link) = pair_message(&end("zzva"), 3, &end("zzvb"), 4, 77)
        else {
            unreachable!()
        };
        let info = link_info(&link);
        let [LinkInfo::Kind(InfoKind::Veth), LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer)))] =
            info.as_slice()
        else {
            panic!("not a veth request");
        };
        for end in [attributes(&link), attributes(peer)] {
            assert!(end.contains(&"NumTxQueues(1)".to_string()), "{end:?}");
            assert!(end.contains(&"NumRxQueues(1)".to_string()), "{end:?}");
        }
    }
}
