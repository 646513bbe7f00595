//! Creating links: a VETH pair in one request, both ends placed directly in their
//! namespaces; a single dummy or VRF in its namespace; then marking and configuring them.

use super::conn::NsConn;
use super::dump::{link_by_name, parse_link, Ownership};
use super::error::NlError;
use super::update::{add_address, add_address_request};
use crate::kernel::KernelLink;
use crate::scheduler::ops::{EndSpec, FailureKind, OpOutcome, OwnedLink};
use nix::errno::Errno;
use rtnetlink::packet_core::{NLM_F_CREATE, NLM_F_ECHO, NLM_F_EXCL};
use rtnetlink::packet_route::link::{InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use rtnetlink::packet_route::RouteNetlinkMessage;
use std::os::fd::RawFd;

/// The two ends of a pair with the connections of their namespaces.
pub(crate) struct PairConns<'a> {
    /// Namespace of end `a`, whose connection sends the create request (the kernel echoes
    /// the new link to a socket of its namespace only).
    pub a: &'a NsConn,
    /// Namespace of end `b`.
    pub b: &'a NsConn,
}

/// Creates the pair, then sets alias and addresses of both ends. An end without a configured
/// MAC gets a random one here (see [`super::veth::with_mac`]).
pub(crate) async fn create_pair(
    conns: PairConns<'_>,
    a: &EndSpec,
    b: &EndSpec,
    owner: &Ownership,
) -> OpOutcome {
    let (a, b) = (&super::veth::with_mac(a), &super::veth::with_mac(b));
    let request = super::veth::pair_message(a, conns.a.fd(), b, conns.b.fd(), owner.group);
    let answer = match conns.a.request(request, CREATE_FLAGS).await {
        Ok(answer) => answer,
        Err(e) => return create_failed(&conns, a, b, owner, e).await,
    };
    // The pair exists and carries the group mark; from here on a failure leaves it in place
    // for the scheduler's next dump to finish or remove.
    let created = echoed(conns.a, &answer, &a.name).and_then(|echo| {
        let peer = super::veth::created_peer(b, echo.peer, owner.group)?;
        Some((echo.link, peer))
    });
    let (ra, rb) = match created {
        Some((la, lb)) => futures::join!(
            finish_known(conns.a, a, la, "veth"),
            finish_known(conns.b, b, lb, "veth")
        ),
        None => futures::join!(
            finish_end(conns.a, a, "veth"),
            finish_end(conns.b, b, "veth")
        ),
    };
    match (ra, rb) {
        (Ok(a), Ok(b)) => OpOutcome::PairCreated { a, b },
        (Err(e), _) | (_, Err(e)) => OpOutcome::Failed {
            kind: FailureKind::Other,
            error: e,
        },
    }
}

/// Flags of every create request: fail on an existing name, and echo the new link (its
/// index, and for a VETH its peer's), which kernels since 6.3 do.
const CREATE_FLAGS: u16 = NLM_F_CREATE | NLM_F_EXCL | NLM_F_ECHO;

/// What the kernel's echo of a created link says.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Echo {
    /// The new link as the kernel made it (before it is finished).
    pub link: KernelLink,
    /// Index of its peer in the peer's namespace (`IFLA_LINK`; 0 when absent).
    pub peer: u32,
}

/// The echo of link `name` in the answer to its create request on `conn`, if the kernel
/// sent one (and no test fault hides it).
pub(crate) fn echoed(conn: &NsConn, answer: &[RouteNetlinkMessage], name: &str) -> Option<Echo> {
    if conn.faults().ignore_echo() {
        return None;
    }
    echo_in(answer, name)
}

/// The echo of link `name` among the messages of a create request's answer.
fn echo_in(answer: &[RouteNetlinkMessage], name: &str) -> Option<Echo> {
    answer.iter().find_map(|m| match m {
        RouteNetlinkMessage::NewLink(link)
            if link
                .attributes
                .iter()
                .any(|a| matches!(a, LinkAttribute::IfName(n) if n == name)) =>
        {
            let peer = link.attributes.iter().find_map(|a| match a {
                LinkAttribute::Link(index) => Some(*index),
                _ => None,
            });
            Some(Echo {
                link: parse_link(link),
                peer: peer.unwrap_or(0),
            })
        }
        _ => None,
    })
}

/// Creates a single dummy or VRF link in its namespace, then sets its alias, master and
/// addresses.
pub(crate) async fn create_single(
    conn: &NsConn,
    end: &EndSpec,
    kind: OwnedLink,
    owner: &Ownership,
) -> OpOutcome {
    let Some(link) = single_message(end, conn.fd(), owner.group, kind) else {
        return super::tap::create_tap(conn, end, owner).await;
    };
    let answer = match conn
        .request(RouteNetlinkMessage::NewLink(link), CREATE_FLAGS)
        .await
    {
        Ok(answer) => answer,
        Err(e) => return single_failed(conn, end, kind, owner, e).await,
    };
    let finish = match echoed(conn, &answer, &end.name) {
        Some(echo) => finish_known(conn, end, echo.link, kind.kernel_kind()).await,
        None => finish_end(conn, end, kind.kernel_kind()).await,
    };
    finished(finish, kind)
}

/// The `RTM_NEWLINK` that creates a single link made by netlink (dummy, VRF) in the
/// namespace of `ns_fd`; `None` for a TAP, which `/dev/net/tun` makes.
pub(crate) fn single_message(
    end: &EndSpec,
    ns_fd: RawFd,
    group: u32,
    kind: OwnedLink,
) -> Option<LinkMessage> {
    if kind.kind == super::tap::TAP_KIND {
        return None;
    }
    let mut info = vec![LinkInfo::Kind(InfoKind::from(kind.kind))];
    info.extend(kind.table.map(super::vrf::link_data));
    let mut link = end_message(end, ns_fd, group, false);
    link.attributes.push(LinkAttribute::LinkInfo(info));
    Some(link)
}

/// The outcome of a single link's creation from its finishing step.
pub(crate) fn finished(result: Result<KernelLink, String>, kind: OwnedLink) -> OpOutcome {
    match result {
        Ok(mut link) => {
            link.kind = kind.kernel_kind().to_string();
            link.vrf_table = kind.table;
            OpOutcome::Created { link }
        }
        Err(error) => OpOutcome::Failed {
            kind: FailureKind::Other,
            error,
        },
    }
}

/// Classifies a failed single create: a name taken by a link we do not own is a conflict;
/// a kind the kernel does not know (its module missing) says so.
pub(crate) async fn single_failed(
    conn: &NsConn,
    end: &EndSpec,
    kind: OwnedLink,
    owner: &Ownership,
    e: NlError,
) -> OpOutcome {
    let what = format!(
        "cannot create {} {} in {}: {e}",
        kind.kernel_kind(),
        end.name,
        conn.label()
    );
    if e.is(Errno::EOPNOTSUPP) {
        return OpOutcome::Failed {
            kind: FailureKind::Other,
            error: format!(
                "{what} (the kernel has no `{}` link driver: load its module, e.g. `modprobe {}`)",
                kind.kernel_kind(),
                kind.kernel_kind()
            ),
        };
    }
    if e.is(Errno::EEXIST)
        && matches!(link_by_name(conn, &end.name).await, Ok(Some(l)) if !owner.owns(&l))
    {
        return conflict(conn, end);
    }
    OpOutcome::Failed {
        kind: FailureKind::Other,
        error: what,
    }
}

/// The failure of a create whose name a link the agent does not own already has.
fn conflict(conn: &NsConn, end: &EndSpec) -> OpOutcome {
    OpOutcome::Failed {
        kind: FailureKind::Conflict,
        error: format!(
            "link {} already exists in {} and is not owned by this agent",
            end.name,
            conn.label()
        ),
    }
}

/// The `RTM_NEWLINK` attributes every link the agent creates has: name, namespace (`ns_fd`),
/// group, MTU and MAC when given, and admin state when `up`.
pub(crate) fn end_message(end: &EndSpec, ns_fd: RawFd, group: u32, up: bool) -> LinkMessage {
    let mut msg = LinkMessage::default();
    if up {
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
    }
    msg.attributes.push(LinkAttribute::IfName(end.name.clone()));
    msg.attributes.push(LinkAttribute::NetNsFd(ns_fd));
    msg.attributes.push(LinkAttribute::Group(group));
    if end.mtu != 0 {
        msg.attributes.push(LinkAttribute::Mtu(end.mtu));
    }
    if let Some(mac) = end.mac {
        msg.attributes.push(LinkAttribute::Address(mac.0.to_vec()));
    }
    msg
}

/// After creation, link `created` known as the kernel made it (from its echo, or for a
/// VETH peer from the request): sets the end's alias (and admin state, for the peer) and
/// adds its addresses, all in one round trip. The link is reported as created, with what
/// was just set: the kernel acknowledged each change.
pub(crate) async fn finish_known(
    conn: &NsConn,
    end: &EndSpec,
    created: KernelLink,
    kind: &str,
) -> Result<KernelLink, String> {
    let at = failure_at(conn, end, kind);
    let ifindex = created.ifindex;
    let mut requests = vec![(RouteNetlinkMessage::SetLink(finishing(end, ifindex)), 0)];
    requests.extend(
        end.addresses
            .iter()
            .map(|net| add_address_request(ifindex, net, None)),
    );
    let mut answers = conn
        .batch(requests)
        .await
        .map_err(|e| at("configure it", e))?
        .into_iter();
    let mut next = || {
        answers
            .next()
            .unwrap_or_else(|| Err(NlError::Unexpected("an answer is missing".into())))
    };
    next().map_err(|e| at("set its alias", e))?;
    for net in &end.addresses {
        next().map_err(|e| at(&format!("add address {net}"), e))?;
    }
    Ok(as_configured(created, end))
}

/// After creation, link index unknown (no echo): sets the end's alias (and admin state, for
/// the peer) by name while reading its index, then adds its addresses; two round trips,
/// the requests of each sent together. The link is reported as read, with what was just
/// set.
pub(crate) async fn finish_end(
    conn: &NsConn,
    end: &EndSpec,
    kind: &str,
) -> Result<KernelLink, String> {
    let at = failure_at(conn, end, kind);
    let (set, found) = futures::join!(
        conn.request(RouteNetlinkMessage::SetLink(finishing(end, 0)), 0),
        link_by_name(conn, &end.name)
    );
    set.map_err(|e| at("set its alias", e))?;
    let link = found.map_err(|e| at("find it", e))?.ok_or_else(|| {
        format!(
            "{kind} {} created but not found in {}",
            end.name,
            conn.label()
        )
    })?;
    let added = futures::future::join_all(
        end.addresses
            .iter()
            .map(|net| add_address(conn, link.ifindex, net, None)),
    )
    .await;
    for (net, result) in end.addresses.iter().zip(added) {
        result.map_err(|e| at(&format!("add address {net}"), e))?;
    }
    Ok(as_configured(link, end))
}

/// How a failure to finish a created link reads: `at(what, error)`.
fn failure_at<'a>(
    conn: &'a NsConn,
    end: &'a EndSpec,
    kind: &'a str,
) -> impl Fn(&str, NlError) -> String + 'a {
    move |what, e| {
        format!(
            "{kind} {} created in {}, but cannot {what}: {e}",
            end.name,
            conn.label()
        )
    }
}

/// The `RTM_SETLINK` that finishes a created end: alias, admin state when up, master.
/// Link `ifindex`, or with 0 the link named as the end (the kernel then finds it by
/// `IFLA_IFNAME`).
fn finishing(end: &EndSpec, ifindex: u32) -> LinkMessage {
    let mut set = LinkMessage::default();
    set.header.index = ifindex;
    if ifindex == 0 {
        set.attributes.push(LinkAttribute::IfName(end.name.clone()));
    }
    set.attributes
        .push(LinkAttribute::IfAlias(end.alias.clone()));
    if end.up {
        set.header.flags = LinkFlags::Up;
        set.header.change_mask = LinkFlags::Up;
    }
    if end.master != 0 {
        set.attributes.push(LinkAttribute::Controller(end.master));
    }
    set
}

/// `link` as read after creation, with what was set since (alias, admin state, master,
/// addresses).
fn as_configured(mut link: KernelLink, end: &EndSpec) -> KernelLink {
    link.alias = Some(end.alias.clone());
    link.up = end.up;
    link.master = end.master;
    link.addresses = end.addresses.clone();
    link.addresses.sort();
    link.addresses.dedup();
    link
}

/// Classifies a failed create: a name taken by a link we do not own is a conflict.
async fn create_failed(
    conns: &PairConns<'_>,
    a: &EndSpec,
    b: &EndSpec,
    owner: &Ownership,
    e: NlError,
) -> OpOutcome {
    let what = format!(
        "cannot create veth pair {} in {} / {} in {}: {e}",
        a.name,
        conns.a.label(),
        b.name,
        conns.b.label()
    );
    if !e.is(Errno::EEXIST) {
        return OpOutcome::Failed {
            kind: FailureKind::Other,
            error: what,
        };
    }
    let mut ours = Vec::new();
    for (conn, end) in [(conns.a, a), (conns.b, b)] {
        match link_by_name(conn, &end.name).await {
            Ok(Some(link)) if !owner.owns(&link) => return conflict(conn, end),
            Ok(Some(_)) => ours.push(format!(
                "link {} already exists in {} (owned by this agent)",
                end.name,
                conn.label()
            )),
            _ => {}
        }
    }
    OpOutcome::Failed {
        kind: FailureKind::Other,
        error: if ours.is_empty() {
            what
        } else {
            format!("{what}: {}", ours.join(", "))
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_link(index: u32, name: &str, peer: Option<u32>) -> RouteNetlinkMessage {
        let mut link = LinkMessage::default();
        link.header.index = index;
        link.attributes.push(LinkAttribute::IfName(name.into()));
        link.attributes.extend(peer.map(LinkAttribute::Link));
        RouteNetlinkMessage::NewLink(link)
    }

    /// The index, name and peer index an echo gives.
    fn summary(echo: Option<Echo>) -> Option<(u32, String, u32)> {
        echo.map(|e| (e.link.ifindex, e.link.name, e.peer))
    }

    #[test]
    fn the_echo_of_the_created_link_gives_its_index_and_its_peers() {
        let answer = [new_link(7, "other", Some(2)), new_link(9, "zza", Some(4))];
        assert_eq!(summary(echo_in(&answer, "zza")), Some((9, "zza".into(), 4)));
        let single = [new_link(5, "zzd", None)];
        assert_eq!(summary(echo_in(&single, "zzd")), Some((5, "zzd".into(), 0)));
        assert_eq!(echo_in(&answer, "zzb"), None, "no echo of that link");
        assert_eq!(echo_in(&[], "zza"), None, "a kernel that echoes nothing");
    }
}
