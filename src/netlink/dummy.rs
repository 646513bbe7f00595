//! DUMMY: a dummy link (`ip link add NAME type dummy`).

use rtnetlink::packet_route::link::{InfoKind, LinkInfo};

/// `IFLA_LINKINFO` of a dummy link.
pub(crate) fn link_info() -> Vec<LinkInfo> {
    vec![LinkInfo::Kind(InfoKind::Dummy)]
}

#[cfg(test)]
mod tests {
    use super::super::request_tests::{assert_same_request, end, single_request};
    use crate::scheduler::ops::OwnedLink;

    /// `ip link add zzd1 type dummy` (iproute2 6.1, strace), without its netlink header.
    const IPROUTE2: &str = "00000000000000000000000000000000 0900 0300 7a7a643100000000 \
        1000 1200 0900 0100 64756d6d79000000";

    #[test]
    fn the_request_says_what_iproute2_says() {
        let ours = single_request(&end("zzd1"), OwnedLink::Dummy);
        assert_same_request(IPROUTE2, &ours);
    }
}
