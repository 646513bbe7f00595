//! DUMMY: a dummy link (`ip link add NAME type dummy`), made from its kind's name alone
//! (see `create::single_message`); here only the check of its request.

#[cfg(test)]
mod tests {
    use super::super::request_tests::{assert_same_request, end, single_request};
    use crate::model::link::dummy::DUMMY_LINK;

    /// `ip link add zzd1 type dummy` (iproute2 6.1, strace), without its netlink header.
    const IPROUTE2: &str = "00000000000000000000000000000000 0900 0300 7a7a643100000000 \
        1000 1200 0900 0100 64756d6d79000000";

    #[test]
    fn the_request_says_what_iproute2_says() {
        let ours = single_request(&end("zzd1"), DUMMY_LINK);
        assert_same_request(IPROUTE2, &ours);
    }
}
