//! Kernel events of one namespace: a netlink socket subscribed to link, IPv4/IPv6 address,
//! IPv4/IPv6 route and neighbour changes. It is opened inside the namespace (on a dedicated
//! thread, like the request socket) when the namespace is first resolved, before it is read,
//! so that no change falls between the dump and the events; it closes with the namespace's
//! connection. Lost events (the receive buffer overflowed: ENOBUFS, which the socket survives)
//! and a socket that closed (it is opened again) are reported as [`KernelEvent::Overrun`]: the
//! namespace is read again in full.

use super::backlog::EventBacklog;
use super::datagram;
use super::dump::{parse_address, parse_link};
use super::faults::Counter;
use super::neigh::parse_neighbour;
use super::route::parse_route;
use crate::kernel::{KernelEvent, NsEvents, NsId};
use crate::netns::{self, Namespace};
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::address::{AddressMessage, AddressProtocol};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::sys::protocols::NETLINK_ROUTE;
use rtnetlink::sys::{AsyncSocket, TokioSocket};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::Sender;
use tokio::sync::{watch, Notify};
use tokio::task::AbortHandle;

/// Receive buffer of an event socket (capped by `net.core.rmem_max`): large, so that bursts
/// rarely overflow it (an overflow makes the namespace be read again in full).
const EVENT_RCVBUF: usize = 8 << 20;

/// `RTNLGRP_*` groups: link, neighbour, IPv4 address, IPv4 route, IPv6 address, IPv6 route.
const GROUPS: [u32; 6] = [1, 3, 5, 7, 9, 11];

/// How long to wait before trying again to open an event socket that could not be opened,
/// first and at most.
const RESUBSCRIBE_DELAY: (Duration, Duration) =
    (Duration::from_millis(100), Duration::from_secs(5));

/// At most one warning about lost events per namespace in this time (the others are debug).
const OVERRUN_WARNING_EVERY: Duration = Duration::from_secs(10);

/// A subscription; dropping it closes the socket (which would otherwise keep a namespace
/// that went away alive).
pub(crate) struct Subscription {
    task: AbortHandle,
    shared: Arc<Shared>,
}

/// What the subscription's task shares with its owner.
#[derive(Default)]
struct Shared {
    /// Tells the task to close its socket (a test fault).
    close: Notify,
    /// How many holders want the socket deaf (see [`Subscription::deafen`]).
    deaf: watch::Sender<usize>,
    /// Sockets opened again after one closed.
    resubscribed: Counter,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Subscription {
    /// Closes the current socket, as a read error would (test fault); returns once another
    /// one is open.
    pub(crate) async fn close_socket(&self) {
        let before = self.shared.resubscribed.get();
        self.shared.close.notify_one();
        while self.shared.resubscribed.get() == before && !self.task.is_finished() {
            tokio::task::yield_now().await;
        }
    }

    /// How many times the socket was opened again after it closed.
    pub(crate) fn resubscriptions(&self) -> u64 {
        self.shared.resubscribed.get()
    }

    /// Stops receiving events until the returned guard is dropped, then reports them lost
    /// (the namespace is read again). While the agent makes many changes in a namespace,
    /// the echo of each is of no use, and every event socket slows every change the kernel
    /// announces on the host.
    pub(crate) fn deafen(&self) -> Deaf {
        self.shared.deaf.send_modify(|n| *n += 1);
        Deaf(self.shared.clone())
    }
}

/// Keeps an event socket deaf while it lives (see [`Subscription::deafen`]).
pub(crate) struct Deaf(Arc<Shared>);

impl Drop for Deaf {
    fn drop(&mut self) {
        self.0.deaf.send_modify(|n| *n -= 1);
    }
}

/// Subscribes to the events of `ns` (identity `id`, named `label` in messages), forwarding
/// them to `tx`. `rcvbuf` overrides the receive buffer (tests provoke overflows with a small
/// one). When the socket closes, another one is opened and an [`KernelEvent::Overrun`] sent,
/// so that the namespace is read again.
pub(crate) async fn subscribe(
    ns: &Namespace,
    id: NsId,
    label: String,
    tx: Sender<NsEvents>,
    rcvbuf: Option<usize>,
) -> Result<Subscription, String> {
    let fd = ns
        .fd
        .try_clone()
        .map_err(|e| format!("cannot duplicate namespace descriptor: {e}"))?;
    let socket = open(&fd, rcvbuf).await?;
    let shared = Arc::new(Shared::default());
    let follow = Follow {
        fd,
        id,
        label,
        tx,
        rcvbuf,
        shared: shared.clone(),
    };
    let task = tokio::spawn(follow.run(socket)).abort_handle();
    Ok(Subscription { task, shared })
}

/// Opens an event socket inside the namespace of `fd`, on a dedicated thread.
async fn open(fd: &OwnedFd, rcvbuf: Option<usize>) -> Result<TokioSocket, String> {
    let fd = fd
        .try_clone()
        .map_err(|e| format!("cannot duplicate namespace descriptor: {e}"))?;
    let rt = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        netns::run_in(fd.as_fd(), move || {
            let _enter = rt.enter();
            let mut events = TokioSocket::new(NETLINK_ROUTE)?;
            let socket = events.socket_mut();
            if let Err(e) = socket.set_rx_buf_sz(rcvbuf.unwrap_or(EVENT_RCVBUF)) {
                tracing::warn!("cannot set the event socket's receive buffer: {e}");
            }
            socket.bind_auto()?;
            for group in GROUPS {
                socket.add_membership(group)?;
            }
            Ok::<_, std::io::Error>(events)
        })
    })
    .await
    .map_err(|e| format!("namespace thread failed: {e}"))?
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("cannot subscribe to kernel events: {e}"))
}

/// The task of one subscription.
struct Follow {
    /// The namespace, to open sockets in it again.
    fd: OwnedFd,
    id: NsId,
    label: String,
    tx: Sender<NsEvents>,
    rcvbuf: Option<usize>,
    shared: Arc<Shared>,
}

impl Follow {
    /// Forwards the events of `socket`, and of the sockets that replace it when it closes,
    /// until the receiver is gone.
    async fn run(self, mut socket: TokioSocket) {
        let mut backlog = EventBacklog::default();
        let mut warned: Option<Instant> = None;
        loop {
            if !self.forward(&socket, &mut backlog, &mut warned).await {
                return;
            }
            drop(socket);
            // The socket closed (an error other than an overflow). Subscribed again before
            // the namespace is read again, so that no change falls in between.
            socket = self.reopen().await;
            self.shared.resubscribed.bump();
            tracing::info!(ns = %self.label, "kernel event socket closed; subscribed again");
            backlog.push(KernelEvent::Overrun);
        }
    }

    /// Opens a new event socket, trying again with growing delays until it works.
    async fn reopen(&self) -> TokioSocket {
        let mut retry = crate::backoff::Retry::new(RESUBSCRIBE_DELAY.0, RESUBSCRIBE_DELAY.1);
        loop {
            match open(&self.fd, self.rcvbuf).await {
                Ok(socket) => return socket,
                Err(e) => {
                    tracing::warn!(ns = %self.label, "{e}; trying again in {:?}", retry.current())
                }
            }
            tokio::time::sleep(retry.failed()).await;
        }
    }

    /// Folds the events `socket` receives into `backlog`, and hands the backlog to the
    /// agent whenever its queue has room, until the socket closes (true) or the agent is
    /// gone (false). While the queue is full, the backlog keeps only the latest event of
    /// each object, and what is not read yet waits in the socket.
    async fn forward(
        &self,
        socket: &TokioSocket,
        backlog: &mut EventBacklog,
        warned: &mut Option<Instant>,
    ) -> bool {
        let mut deaf = self.shared.deaf.subscribe();
        let mut listening = true;
        loop {
            let wanted = *deaf.borrow_and_update() == 0;
            if let Err(e) = self.listen(socket, wanted, &mut listening, backlog) {
                tracing::debug!(ns = %self.label, "kernel event socket failed: {e}");
                return true;
            }
            tokio::select! {
                Ok(()) = deaf.changed() => {}
                received = datagram::receive(socket, events_of) => match received {
                    Ok(events) => events.into_iter().for_each(|e| backlog.push(e)),
                    Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                        self.warn_lost(warned);
                        backlog.push(KernelEvent::Overrun);
                    }
                    Err(e) => {
                        tracing::debug!(ns = %self.label, "kernel event socket failed: {e}");
                        return true;
                    }
                },
                permit = self.tx.reserve(), if !backlog.is_empty() => {
                    let Ok(permit) = permit else {
                        return false;
                    };
                    permit.send(NsEvents {
                        ns: self.id,
                        events: backlog.take(),
                    });
                }
                () = self.shared.close.notified() => return true,
            }
        }
    }

    /// Joins (`wanted`) or leaves the event groups when `listening` says otherwise. Joining
    /// again reports the events missed meanwhile as lost, so that the namespace is read
    /// again (after the socket listens again: no change falls in between).
    fn listen(
        &self,
        socket: &TokioSocket,
        wanted: bool,
        listening: &mut bool,
        backlog: &mut EventBacklog,
    ) -> io::Result<()> {
        if wanted == *listening {
            return Ok(());
        }
        for group in GROUPS {
            if wanted {
                socket.socket_ref().add_membership(group)?;
            } else {
                socket.socket_ref().drop_membership(group)?;
            }
        }
        *listening = wanted;
        if wanted {
            backlog.push(KernelEvent::Overrun);
        }
        tracing::trace!(ns = %self.label, listening = wanted, "kernel events");
        Ok(())
    }

    /// Warns (at most every [`OVERRUN_WARNING_EVERY`]) that events were lost.
    fn warn_lost(&self, warned: &mut Option<Instant>) {
        if warned.is_none_or(|t| t.elapsed() >= OVERRUN_WARNING_EVERY) {
            *warned = Some(Instant::now());
            tracing::warn!(ns = %self.label,
                "kernel events lost (event socket receive buffer full): reading the namespace again");
        } else {
            tracing::debug!(ns = %self.label, "kernel events lost again");
        }
    }
}

/// The events of the netlink messages in `datagram`.
fn events_of(datagram: &[u8]) -> Vec<KernelEvent> {
    datagram::messages(datagram)
        .filter_map(|message| {
            message
                .map_err(|e| tracing::debug!("undecodable kernel event: {e}"))
                .ok()
                .and_then(event)
        })
        .collect()
}

/// The agent's view of one event message; `None` for what the agent does not follow.
fn event(message: NetlinkMessage<RouteNetlinkMessage>) -> Option<KernelEvent> {
    use RouteNetlinkMessage as M;
    match message.payload {
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

#[cfg(test)]
mod tests {
    use super::*;
    use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage};

    /// A `RTM_NEWLINK` (or `RTM_DELLINK`) message of link `index` named `name`, as sent.
    fn link_message(index: u32, name: &str, gone: bool) -> Vec<u8> {
        let mut link = LinkMessage::default();
        link.header.index = index;
        link.attributes.push(LinkAttribute::IfName(name.into()));
        let inner = if gone {
            RouteNetlinkMessage::DelLink(link)
        } else {
            RouteNetlinkMessage::NewLink(link)
        };
        let mut message = NetlinkMessage::from(inner);
        message.finalize();
        let mut bytes = vec![0; message.buffer_len()];
        message.serialize(&mut bytes);
        bytes
    }

    #[test]
    fn every_message_of_a_datagram_is_read() {
        let mut datagram = link_message(7, "a", false);
        datagram.extend(link_message(8, "bb", true));
        let events = events_of(&datagram);
        assert!(
            matches!(&events[..], [KernelEvent::Link(l), KernelEvent::LinkGone { ifindex: 8 }]
                if l.ifindex == 7 && l.name == "a"),
            "{events:?}"
        );
    }

    #[test]
    fn a_truncated_datagram_gives_the_whole_messages_before_the_cut() {
        let mut datagram = link_message(7, "a", false);
        let second = link_message(8, "b", false);
        datagram.extend(&second[..second.len() - 4]);
        assert_eq!(events_of(&datagram).len(), 1);
        assert!(events_of(&[0; 3]).is_empty());
    }
}
