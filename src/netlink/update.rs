//! Changing and deleting existing links, adding and removing addresses.

use super::conn::NsConn;
use super::dump::link_by_index;
use super::error::NlError;
use crate::kernel::KernelLink;
use crate::scheduler::ops::{FailureKind, LinkChanges, OpOutcome};
use ipnet::IpNet;
use nix::errno::Errno;
use rtnetlink::packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use rtnetlink::packet_route::address::{
    AddressAttribute, AddressHeaderFlags, AddressMessage, AddressProtocol,
};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};

/// Applies `changes` to link `ifindex` in place; the outcome carries the link as it then is.
pub(crate) async fn update_link(conn: &NsConn, ifindex: u32, changes: &LinkChanges) -> OpOutcome {
    match apply(conn, ifindex, changes).await {
        Ok(link) => OpOutcome::Updated { link },
        Err((what, e)) => fail(conn, ifindex, &what, e),
    }
}

/// Deletes link `ifindex`; a link (or namespace) that is already gone counts as deleted.
pub(crate) async fn delete_link(conn: &NsConn, ifindex: u32, name: &str) -> OpOutcome {
    let mut msg = LinkMessage::default();
    msg.header.index = ifindex;
    match conn.request(RouteNetlinkMessage::DelLink(msg), 0).await {
        Ok(_) => OpOutcome::Deleted,
        Err(e) if e.is(Errno::ENODEV) || e.is(Errno::ENOENT) => OpOutcome::Deleted,
        Err(e) => OpOutcome::Failed {
            kind: FailureKind::Other,
            error: format!(
                "cannot delete link {name} (index {ifindex}) in {}: {e}",
                conn.label()
            ),
        },
    }
}

type StepError = (String, NlError);

fn step(what: impl Into<String>) -> impl FnOnce(NlError) -> StepError {
    let what = what.into();
    move |e| (what, e)
}

fn fail(conn: &NsConn, ifindex: u32, what: &str, e: NlError) -> OpOutcome {
    let kind = if e.is(Errno::ENODEV) {
        FailureKind::LinkGone
    } else {
        FailureKind::Other
    };
    OpOutcome::Failed {
        kind,
        error: format!(
            "cannot {what} (link index {ifindex} in {}): {e}",
            conn.label()
        ),
    }
}

async fn apply(conn: &NsConn, ifindex: u32, c: &LinkChanges) -> Result<KernelLink, StepError> {
    let before = link_by_index(conn, ifindex, c.address_mark)
        .await
        .map_err(step("read the link"))?;
    let name = before.name.clone();
    let mut up = before.up;
    // Going down first spares the kernel a rename of a running link.
    if c.up == Some(false) && up {
        set_up(conn, ifindex, false)
            .await
            .map_err(step(format!("set {name} down")))?;
        up = false;
    }
    let mut restore = Vec::new();
    if let Some(attrs) = link_attributes(c) {
        match set_attributes(conn, ifindex, attrs.clone()).await {
            Ok(()) => {}
            // Older kernels (and some drivers for MAC changes) refuse to change a running
            // link: take it down around the change and put back what the kernel drops then
            // (IPv6 addresses, unless keep_addr_on_down).
            Err(e) if e.is(Errno::EBUSY) && up => {
                set_up(conn, ifindex, false)
                    .await
                    .map_err(step(format!("set {name} down for a change")))?;
                let changed = set_attributes(conn, ifindex, attrs).await;
                let back_up = set_up(conn, ifindex, true).await;
                changed.map_err(step(format!("change {name}")))?;
                back_up.map_err(step(format!("set {name} up again")))?;
                restore = before.addresses.clone();
            }
            Err(e) => return Err((format!("change {name}"), e)),
        }
    }
    if c.up == Some(true) && !up {
        set_up(conn, ifindex, true)
            .await
            .map_err(step(format!("set {name} up")))?;
    }
    for net in &c.del_addresses {
        del_address(conn, ifindex, net)
            .await
            .map_err(step(format!("remove address {net} from {name}")))?;
    }
    restore.retain(|net| !c.del_addresses.contains(net));
    for net in c.add_addresses.iter().chain(&restore) {
        add_address(conn, ifindex, net, c.address_mark)
            .await
            .map_err(step(format!("add address {net} to {name}")))?;
    }
    link_by_index(conn, ifindex, c.address_mark)
        .await
        .map_err(step(format!("read {name} back")))
}

/// The attribute changes of `c` (everything but admin state and addresses).
fn link_attributes(c: &LinkChanges) -> Option<Vec<LinkAttribute>> {
    let mut attrs = Vec::new();
    if let Some(n) = &c.rename {
        attrs.push(LinkAttribute::IfName(n.clone()));
    }
    if let Some(a) = &c.alias {
        attrs.push(LinkAttribute::IfAlias(a.clone()));
    }
    if let Some(m) = c.mtu {
        attrs.push(LinkAttribute::Mtu(m));
    }
    if let Some(mac) = c.mac {
        attrs.push(LinkAttribute::Address(mac.0.to_vec()));
    }
    if let Some(master) = c.master {
        attrs.push(LinkAttribute::Controller(master));
    }
    if let Some(g) = c.group {
        attrs.push(LinkAttribute::Group(g));
    }
    (!attrs.is_empty()).then_some(attrs)
}

/// `RTM_SETLINK` of `attrs` on link `ifindex`.
pub(crate) async fn set_attributes(
    conn: &NsConn,
    ifindex: u32,
    attrs: Vec<LinkAttribute>,
) -> Result<(), NlError> {
    if conn.faults().busy_link_change() {
        return Err(NlError::Errno(
            Errno::EBUSY,
            Some("refused by a test fault".into()),
        ));
    }
    let mut msg = LinkMessage::default();
    msg.header.index = ifindex;
    msg.attributes = attrs;
    conn.request(RouteNetlinkMessage::SetLink(msg), 0)
        .await
        .map(|_| ())
}

/// Sets the admin state of link `ifindex`.
pub(crate) async fn set_up(conn: &NsConn, ifindex: u32, up: bool) -> Result<(), NlError> {
    let mut msg = LinkMessage::default();
    msg.header.index = ifindex;
    msg.header.change_mask = LinkFlags::Up;
    if up {
        msg.header.flags = LinkFlags::Up;
    }
    conn.request(RouteNetlinkMessage::SetLink(msg), 0)
        .await
        .map(|_| ())
}

fn address_message(ifindex: u32, net: &IpNet) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.index = ifindex;
    msg.header.prefix_len = net.prefix_len();
    match net {
        IpNet::V4(v4) => {
            msg.header.family = AddressFamily::Inet;
            let ip = v4.addr().into();
            msg.attributes.push(AddressAttribute::Local(ip));
            msg.attributes.push(AddressAttribute::Address(ip));
        }
        IpNet::V6(v6) => {
            msg.header.family = AddressFamily::Inet6;
            msg.attributes
                .push(AddressAttribute::Address(v6.addr().into()));
        }
    }
    msg
}

/// Adds (or refreshes) an address. IPv4 gets the subnet's broadcast address (like
/// `brd +`) for prefixes up to /30; IPv6 is added without duplicate address detection so
/// that it is usable at once. With `mark`, the address carries it as its `IFA_PROTO` (on a
/// link the agent does not own, the mark says which addresses are the agent's).
pub(crate) async fn add_address(
    conn: &NsConn,
    ifindex: u32,
    net: &IpNet,
    mark: Option<u8>,
) -> Result<(), NlError> {
    let (request, flags) = add_address_request(ifindex, net, mark);
    conn.request(request, flags).await.map(|_| ())
}

/// The request (and its flags) of [`add_address`].
pub(crate) fn add_address_request(
    ifindex: u32,
    net: &IpNet,
    mark: Option<u8>,
) -> (RouteNetlinkMessage, u16) {
    let mut msg = address_message(ifindex, net);
    if let Some(protocol) = mark {
        msg.attributes
            .push(AddressAttribute::Protocol(AddressProtocol::from(protocol)));
    }
    match net {
        IpNet::V4(v4) if v4.prefix_len() < 31 => msg
            .attributes
            .push(AddressAttribute::Broadcast(v4.broadcast())),
        IpNet::V6(_) => msg.header.flags = AddressHeaderFlags::Nodad,
        _ => {}
    }
    (
        RouteNetlinkMessage::NewAddress(msg),
        NLM_F_CREATE | NLM_F_REPLACE,
    )
}

/// Removes an address; one that is not there counts as removed.
pub(crate) async fn del_address(conn: &NsConn, ifindex: u32, net: &IpNet) -> Result<(), NlError> {
    let msg = address_message(ifindex, net);
    match conn.request(RouteNetlinkMessage::DelAddress(msg), 0).await {
        Err(e) if e.is(Errno::EADDRNOTAVAIL) || e.is(Errno::ENOENT) => Ok(()),
        other => other.map(|_| ()),
    }
}
