//! AUTO_TAP: taking over a TAP another program made, and giving it back.

use super::conn::NsConn;
use super::create::finish_end;
use super::error::NlError;
use super::update::{del_address, set_attributes, set_up};
use crate::scheduler::ops::{EndSpec, FailureKind, OpOutcome};
use ipnet::IpNet;
use nix::errno::Errno;
use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage};
use rtnetlink::packet_route::RouteNetlinkMessage;

/// Where a taken-over link is, and where it goes.
pub(crate) struct Move<'a> {
    /// The namespace it is in.
    pub from: &'a NsConn,
    /// The namespace it goes to.
    pub to: &'a NsConn,
    /// The two are one namespace (it is only renamed).
    pub same: bool,
}

/// The `RTM_SETLINK` attributes that rename link and move it into `m.to`.
fn move_attributes(m: &Move, name: &str) -> Vec<LinkAttribute> {
    let mut attrs = vec![LinkAttribute::IfName(name.to_string())];
    if !m.same {
        attrs.push(LinkAttribute::NetNsFd(m.to.fd()));
    }
    attrs
}

/// Takes over link `ifindex` of `m.from`: marks it with `end`'s alias while it still has its
/// temporary name (a stop half-way leaves a link the agent recognises as its own), moves it
/// into `m.to` under `end`'s name with its MTU and MAC in one request (down: a running link
/// cannot be renamed in place), then finishes it like a created link.
pub(crate) async fn adopt_link(m: Move<'_>, ifindex: u32, end: &EndSpec) -> OpOutcome {
    let failed = |what: &str, e: NlError| OpOutcome::Failed {
        kind: FailureKind::Other,
        error: format!(
            "cannot take over link {ifindex} of {} as {} in {}: {what}: {e}",
            m.from.label(),
            end.name,
            m.to.label()
        ),
    };
    let alias = vec![LinkAttribute::IfAlias(end.alias.clone())];
    if let Err(e) = set_attributes(m.from, ifindex, alias).await {
        return failed("set its alias", e);
    }
    if let Err(e) = set_up(m.from, ifindex, false).await {
        return failed("set it down", e);
    }
    let mut attrs = move_attributes(&m, &end.name);
    if end.mtu != 0 {
        attrs.push(LinkAttribute::Mtu(end.mtu));
    }
    if let Some(mac) = end.mac {
        attrs.push(LinkAttribute::Address(mac.0.to_vec()));
    }
    if let Err(e) = set_attributes(m.from, ifindex, attrs).await {
        return failed("move and rename it", e);
    }
    match finish_end(m.to, end, "tun").await {
        Ok(mut link) => {
            link.kind = "tun".into();
            OpOutcome::Created { link }
        }
        Err(error) => OpOutcome::Failed {
            kind: FailureKind::Other,
            error,
        },
    }
}

/// Gives back link `ifindex` of `m.from`: removes `addresses`, moves it into `m.to` under
/// `temp_name`, and removes the alias last (until then the agent recognises it as its own
/// and can finish the job). A link that is gone counts as given back.
pub(crate) async fn return_link(
    m: Move<'_>,
    ifindex: u32,
    temp_name: &str,
    addresses: &[IpNet],
) -> OpOutcome {
    let failed = |what: &str, e: NlError| OpOutcome::Failed {
        kind: FailureKind::Other,
        error: format!(
            "cannot give back link {ifindex} of {} as {temp_name} to {}: {what}: {e}",
            m.from.label(),
            m.to.label()
        ),
    };
    for net in addresses {
        if let Err(e) = del_address(m.from, ifindex, net).await {
            return gone_or(e, |e| failed(&format!("remove address {net}"), e));
        }
    }
    if let Err(e) = set_up(m.from, ifindex, false).await {
        return gone_or(e, |e| failed("set it down", e));
    }
    let attrs = move_attributes(&m, temp_name);
    if let Err(e) = set_attributes(m.from, ifindex, attrs).await {
        return gone_or(e, |e| failed("move and rename it", e));
    }
    // RTM_SETLINK with index 0 names the link by IFLA_IFNAME.
    let mut clear = LinkMessage::default();
    clear.attributes = vec![
        LinkAttribute::IfName(temp_name.to_string()),
        LinkAttribute::IfAlias(String::new()),
    ];
    match m.to.request(RouteNetlinkMessage::SetLink(clear), 0).await {
        Ok(_) => OpOutcome::Deleted,
        Err(e) => failed("remove its alias", e),
    }
}

/// [`OpOutcome::Deleted`] when `e` says the link is gone, else the failure.
fn gone_or(e: NlError, failure: impl FnOnce(NlError) -> OpOutcome) -> OpOutcome {
    if e.is(Errno::ENODEV) {
        OpOutcome::Deleted
    } else {
        failure(e)
    }
}
