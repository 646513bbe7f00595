//! VETH: both ends of a pair created in one request, each placed in its namespace.

use super::create::end_message;
use crate::kernel::KernelLink;
use crate::model::MacAddr;
use crate::scheduler::ops::EndSpec;
use crate::scheduler::DEFAULT_VETH_MTU;
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

/// `end` with a MAC: the configured one, else a random one. The kernel would choose a random
/// one itself (the same kind: unicast, locally administered), but the agent would then
/// have to read the peer back to learn it; with the MAC in the request, the peer is known
/// from the request and the kernel's echo of end `a` ([`created_peer`]). The kernel then
/// reports the address as set (`addr_assign_type` 3) rather than random (1), so udev's
/// `MACAddressPolicy` leaves it alone. Without randomness (never seen), the kernel chooses.
pub(crate) fn with_mac(end: &EndSpec) -> EndSpec {
    let mut end = end.clone();
    end.mac = end.mac.or_else(random_mac);
    end
}

/// A random unicast, locally administered MAC (as the kernel's `eth_random_addr`).
fn random_mac() -> Option<MacAddr> {
    let mut bytes = [0u8; 6];
    getrandom::getrandom(&mut bytes).ok()?;
    bytes[0] = (bytes[0] & 0xfe) | 0x02;
    Some(MacAddr(bytes))
}

/// The peer `b` of a pair just created, at `ifindex` (from the echo of end `a`), as the
/// create request made it: name, group, MTU (the kernel's 1500 when not given), MAC, down,
/// no alias or address yet. `None` when the index or the MAC is unknown: then it is read.
pub(crate) fn created_peer(b: &EndSpec, ifindex: u32, group: u32) -> Option<KernelLink> {
    if ifindex == 0 {
        return None;
    }
    Some(KernelLink {
        ifindex,
        name: b.name.clone(),
        alias: None,
        group,
        mtu: if b.mtu == 0 { DEFAULT_VETH_MTU } else { b.mtu },
        mac: Some(b.mac?),
        up: false,
        addresses: Vec::new(),
        kind: "veth".into(),
        master: 0,
        vrf_table: None,
        marked_addresses: Vec::new(),
    })
}

/// Transmit and receive queues of each end: one of each, which is what a VETH uses unless
/// told otherwise. Without them the kernel allocates one queue per possible CPU, then, once
/// the end is registered, cuts the queues in use down to one, which waits for an expedited
/// RCU grace period per end (about 0.1 ms of the 0.4 ms a pair takes, measured with 2
/// CPUs). The one visible difference: `ethtool -L` cannot raise an end's channels above one.
const QUEUES: u32 = 1;

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
    fn an_end_without_a_mac_gets_a_random_unicast_local_one() {
        let given = MacAddr([0x02, 0, 0, 0, 0, 7]);
        let mut configured = end("zzva");
        configured.mac = Some(given);
        assert_eq!(
            with_mac(&configured).mac,
            Some(given),
            "a configured MAC is kept"
        );
        let macs: Vec<MacAddr> = (0..8)
            .map(|_| with_mac(&end("zzva")).mac.unwrap())
            .collect();
        for mac in &macs {
            assert_eq!(mac.0[0] & 0x01, 0, "unicast: {mac}");
            assert_eq!(mac.0[0] & 0x02, 0x02, "locally administered: {mac}");
        }
        let distinct: std::collections::BTreeSet<_> = macs.iter().map(|m| m.0).collect();
        assert!(distinct.len() > 1, "random: {macs:?}");
    }

    #[test]
    fn the_peer_is_known_from_its_request() {
        let mut b = end("zzvb");
        b.mac = Some(MacAddr([0x02, 0, 0, 0, 0, 9]));
        let peer = created_peer(&b, 12, 77).expect("known");
        assert_eq!(
            (peer.ifindex, peer.name.as_str(), peer.group),
            (12, "zzvb", 77)
        );
        assert_eq!(
            (peer.mtu, peer.mac, peer.up),
            (DEFAULT_VETH_MTU, b.mac, false)
        );
        b.mtu = 9000;
        assert_eq!(created_peer(&b, 12, 77).map(|p| p.mtu), Some(9000));
        assert_eq!(created_peer(&b, 0, 77), None, "no index");
        b.mac = None;
        assert_eq!(created_peer(&b, 12, 77), None, "no MAC");
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
