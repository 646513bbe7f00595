//! VRF_DEVICE: a VRF bound to a routing table (`ip link add NAME type vrf table N`).

use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVrf, LinkInfo};

/// `IFLA_LINKINFO` of a VRF bound to `table`.
pub(crate) fn link_info(table: u32) -> Vec<LinkInfo> {
    vec![
        LinkInfo::Kind(InfoKind::Vrf),
        LinkInfo::Data(InfoData::Vrf(vec![InfoVrf::TableId(table)])),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::request_tests::{assert_same_request, end, single_request};
    use crate::scheduler::ops::OwnedLink;

    /// `ip link add zzv1 type vrf table 1091` (iproute2 6.1, strace), without its netlink
    /// header.
    const IPROUTE2: &str = "00000000000000000000000000000000 0900 0300 7a7a763100000000 \
        1800 1200 0700 0100 76726600 0c00 0200 0800 0100 43040000";

    #[test]
    fn the_request_says_what_iproute2_says() {
        let ours = single_request(&end("zzv1"), OwnedLink::Vrf { table: 1091 });
        assert_same_request(IPROUTE2, &ours);
    }
}
