//! Test helpers: the agent's link requests next to the ones iproute2 sends for the same links
//! (captured with strace, since some kernels refuse them), compared attribute by attribute.

use super::create::single_message;
use crate::kernel::NsId;
use crate::scheduler::ops::{EndSpec, OwnedLink};
use rtnetlink::packet_core::{Emitable, Parseable};
use rtnetlink::packet_route::link::{LinkAttribute, LinkInfo, LinkMessage};

/// A link to create, named `name`, with nothing else set.
pub(super) fn end(name: &str) -> EndSpec {
    EndSpec {
        ns: NsId { dev: 0, ino: 0 },
        name: name.into(),
        alias: String::new(),
        mtu: 0,
        mac: None,
        up: false,
        addresses: Vec::new(),
        master: 0,
    }
}

/// The agent's request for a single link (its namespace's descriptor 3, group 77).
pub(super) fn single_request(end: &EndSpec, kind: OwnedLink) -> LinkMessage {
    single_message(end, 3, 77, kind).expect("made by netlink")
}

/// The link message of an iproute2 request body (hex, spaces ignored).
pub(super) fn iproute2(hex: &str) -> LinkMessage {
    let hex: String = hex.split_whitespace().collect();
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    LinkMessage::parse(bytes.as_slice()).expect("a link message")
}

/// `IFLA_LINKINFO` of a message.
pub(super) fn link_info(m: &LinkMessage) -> Vec<LinkInfo> {
    m.attributes
        .iter()
        .find_map(|a| match a {
            LinkAttribute::LinkInfo(info) => Some(info.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

/// Every attribute of a message, as text.
pub(super) fn attributes(m: &LinkMessage) -> Vec<String> {
    m.attributes.iter().map(|a| format!("{a:?}")).collect()
}

/// The agent's request `ours` asks for what iproute2's does: the same header and link
/// information, and every other attribute of iproute2's (the agent adds its marks).
pub(super) fn assert_same_request(iproute2_hex: &str, ours: &LinkMessage) {
    let theirs = iproute2(iproute2_hex);
    assert_eq!(theirs.header, ours.header);
    assert_eq!(link_info(&theirs), link_info(ours));
    let o = attributes(ours);
    for a in attributes(&theirs) {
        assert!(o.contains(&a), "{a} missing in {o:?}");
    }
    // And it survives the wire: emitted and parsed back, it is the same request.
    let mut buf = vec![0; ours.buffer_len()];
    ours.emit(&mut buf);
    let back = LinkMessage::parse(buf.as_slice()).expect("parses back");
    assert_eq!(&back, ours);
}
