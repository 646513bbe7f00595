//! VRF_DEVICE: a VRF bound to a routing table (`ip link add NAME type vrf table N`).

use rtnetlink::packet_route::link::{InfoData, InfoVrf, LinkInfo};

/// The data of a VRF's `IFLA_LINKINFO`: the table it is bound to.
pub(crate) fn link_data(table: u32) -> LinkInfo {
    LinkInfo::Data(InfoData::Vrf(vec![InfoVrf::TableId(table)]))
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
        let vrf = OwnedLink {
            kind: "vrf",
            table: Some(1091),
            default_mtu: 65575,
        };
        let ours = single_request(&end("zzv1"), vrf);
        assert_same_request(IPROUTE2, &ours);
    }
}
