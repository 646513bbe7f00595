//! Kernel events of one namespace: a netlink socket subscribed to link, IPv4/IPv6 address,
//! IPv4/IPv6 route and neighbour changes. It is opened inside the namespace (on a dedicated
//! thread, like the request socket) when the namespace is first resolved, before it is read,
//! so that no change falls between the dump and the events; it closes with the namespace's
//! connection.

use super::dump::{parse_address, parse_link};
use super::neigh::parse_neighbour;
use super::route::parse_route;
use crate::kernel::{KernelEvent, NsEvents, NsId};
use crate::netns::{self, Namespace};
use futures::StreamExt;
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::address::{AddressMessage, AddressProtocol};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::sys::AsyncSocket;
use std::os::fd::AsFd;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::AbortHandle;

/// Receive buffer of an event socket (capped by `net.core.rmem_max`): large, so that bursts
/// rarely overflow it (an overflow makes the namespace be read again in full).
const EVENT_RCVBUF: usize = 8 << 20;

/// `RTNLGRP_*` groups: link, neighbour, IPv4 address, IPv4 route, IPv6 address, IPv6 route.
const GROUPS: [u32; 6] = [1, 3, 5, 7, 9, 11];

/// A subscription; dropping it closes the socket.
pub(crate) struct Subscription {
    task: AbortHandle,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Subscribes to the events of `ns` (identity `id`), forwarding them to `tx`. `rcvbuf`
/// overrides the receive buffer (tests provoke overflows with a small one).
pub(crate) async fn subscribe(
    ns: &Namespace,
    id: NsId,
    tx: UnboundedSender<NsEvents>,
    rcvbuf: Option<usize>,
) -> Result<Subscription, String> {
    let fd = ns
        .fd
        .try_clone()
        .map_err(|e| format!("cannot duplicate namespace descriptor: {e}"))?;
    let rt = tokio::runtime::Handle::current();
    let rt2 = rt.clone();
    let (conn, messages) = tokio::task::spawn_blocking(move || {
        netns::run_in(fd.as_fd(), move || {
            let _enter = rt2.enter();
            let (mut conn, _handle, messages) = rtnetlink::new_connection()?;
            let socket = conn.socket_mut().socket_mut();
            if let Err(e) = socket.set_rx_buf_sz(rcvbuf.unwrap_or(EVENT_RCVBUF)) {
                tracing::warn!("cannot set the event socket's receive buffer: {e}");
            }
            socket.bind_auto()?;
            for group in GROUPS {
                socket.add_membership(group)?;
            }
            Ok::<_, std::io::Error>((conn, messages))
        })
    })
    .await
    .map_err(|e| format!("namespace thread failed: {e}"))?
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("cannot subscribe to kernel events: {e}"))?;
    let task = rt
        .spawn(async move {
            let driver = tokio::spawn(conn);
            forward(id, messages, tx).await;
            driver.abort();
        })
        .abort_handle();
    Ok(Subscription { task })
}

/// Forwards every message, a batch of those already queued at a time.
async fn forward(
    ns: NsId,
    mut messages: futures::channel::mpsc::UnboundedReceiver<(
        NetlinkMessage<RouteNetlinkMessage>,
        rtnetlink::sys::SocketAddr,
    )>,
    tx: UnboundedSender<NsEvents>,
) {
    while let Some((first, _)) = messages.next().await {
        let mut events: Vec<KernelEvent> = event(first).into_iter().collect();
        while let Ok((more, _)) = messages.try_recv() {
            events.extend(event(more));
        }
        if !events.is_empty() && tx.send(NsEvents { ns, events }).is_err() {
            return;
        }
    }
    // The socket closed (an error other than an overflow): read the namespace again.
    let _ = tx.send(NsEvents {
        ns,
        events: vec![KernelEvent::Overrun],
    });
}

/// The agent's view of one event message; `None` for what the agent does not follow.
fn event(message: NetlinkMessage<RouteNetlinkMessage>) -> Option<KernelEvent> {
    use RouteNetlinkMessage as M;
    match message.payload {
        NetlinkPayload::Overrun(_) => Some(KernelEvent::Overrun),
        NetlinkPayload::InnerMessage(inner) => match inner {
            M::NewLink(l) => Some(KernelEvent::Link(parse_link(&l))),
            M::DelLink(l) => Some(KernelEvent::LinkGone {
                ifindex: l.header.index,
            }),
            M::NewAddress(a) => address(&a, true),
            M::DelAddress(a) => address(&a, false),
            M::NewRoute(r) => {
                parse_route(&r).map(|route| KernelEvent::Route { route, added: true })
            }
            M::DelRoute(r) => parse_route(&r).map(|route| KernelEvent::Route {
                route,
                added: false,
            }),
            M::NewNeighbour(n) => parse_neighbour(&n).map(|neighbour| KernelEvent::Neighbour {
                neighbour,
                added: true,
            }),
            M::DelNeighbour(n) => parse_neighbour(&n).map(|neighbour| KernelEvent::Neighbour {
                neighbour,
                added: false,
            }),
            _ => None,
        },
        _ => None,
    }
}

/// An address event; `None` for the addresses the kernel makes itself.
fn address(msg: &AddressMessage, added: bool) -> Option<KernelEvent> {
    let (net, proto) = parse_address(msg)?;
    if matches!(
        proto,
        Some(AddressProtocol::LinkLocal | AddressProtocol::RouterAnnouncement)
    ) {
        return None;
    }
    Some(KernelEvent::Address {
        ifindex: msg.header.index,
        net,
        added,
    })
}
