//! Kernel events of one namespace: a netlink socket subscribed to link, IPv4/IPv6 address,
//! IPv4/IPv6 route and neighbour changes. It is opened inside the namespace (on a dedicated
//! thread, like the request socket) when the namespace is first resolved, before it is read,
//! so that no change falls between the dump and the events; it closes with the namespace's
//! connection. Lost events (the receive buffer overflowed: ENOBUFS, which the socket survives)
//! and a socket that closed (it is opened again) are reported as [`KernelEvent::Overrun`]: the
//! namespace is read again in full.

use super::backlog::EventBacklog;
use super::dump::{parse_address, parse_link};
use super::faults::Counter;
use super::neigh::parse_neighbour;
use super::route::parse_route;
use crate::kernel::{KernelEvent, NsEvents, NsId};
use crate::netns::{self, Namespace};
use futures::StreamExt;
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::address::{AddressMessage, AddressProtocol};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::sys::AsyncSocket;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::Sender;
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
    /// The task driving the current socket.
    driver: Mutex<Option<AbortHandle>>,
    /// Sockets opened again after one closed.
    resubscribed: Counter,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // The task's end ends the socket's task too (see `AbortOnDrop`).
        self.task.abort();
    }
}

/// Aborts a task when dropped: a socket's task ends with the task that reads its messages
/// (also when that one is aborted), or else the socket would pin its namespace.
struct AbortOnDrop(AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Subscription {
    /// Closes the current socket, as a read error would (test fault); returns once its task
    /// has ended. The subscription opens another one.
    pub(crate) async fn close_socket(&self) {
        let driver = self
            .shared
            .driver
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(driver) = driver {
            driver.abort();
            while !driver.is_finished() {
                tokio::task::yield_now().await;
            }
        }
    }

    /// How many times the socket was opened again after it closed.
    pub(crate) fn resubscriptions(&self) -> u64 {
        self.shared.resubscribed.get()
    }
}

/// The messages an event socket receives.
type Messages = futures::channel::mpsc::UnboundedReceiver<(
    NetlinkMessage<RouteNetlinkMessage>,
    rtnetlink::sys::SocketAddr,
)>;

/// An event socket's connection (to be driven by a task) and its messages.
type EventSocket = (rtnetlink::proto::Connection<RouteNetlinkMessage>, Messages);

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
async fn open(fd: &OwnedFd, rcvbuf: Option<usize>) -> Result<EventSocket, String> {
    let fd = fd
        .try_clone()
        .map_err(|e| format!("cannot duplicate namespace descriptor: {e}"))?;
    let rt = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        netns::run_in(fd.as_fd(), move || {
            let _enter = rt.enter();
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
    async fn run(self, mut socket: EventSocket) {
        let mut backlog = EventBacklog::default();
        let mut warned: Option<Instant> = None;
        loop {
            let (conn, messages) = socket;
            let driver = AbortOnDrop(tokio::spawn(conn).abort_handle());
            *self.shared.driver.lock().unwrap_or_else(|p| p.into_inner()) = Some(driver.0.clone());
            if !self.forward(messages, &mut backlog, &mut warned).await {
                return;
            }
            drop(driver);
            // The socket closed (an error other than an overflow). Subscribed again before
            // the namespace is read again, so that no change falls in between.
            socket = self.reopen().await;
            self.shared.resubscribed.bump();
            tracing::info!(ns = %self.label, "kernel event socket closed; subscribed again");
            backlog.push(KernelEvent::Overrun);
        }
    }

    /// Opens a new event socket, trying again with growing delays until it works.
    async fn reopen(&self) -> EventSocket {
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

    /// Folds the messages of one socket into `backlog`, and hands the backlog to the agent
    /// whenever its queue has room, until the socket closes (true) or the agent is gone
    /// (false). While the queue is full, the backlog keeps only the latest event of each
    /// object.
    async fn forward(
        &self,
        mut messages: Messages,
        backlog: &mut EventBacklog,
        warned: &mut Option<Instant>,
    ) -> bool {
        loop {
            tokio::select! {
                message = messages.next() => {
                    let Some((first, _)) = message else {
                        return true;
                    };
                    self.fold(first, backlog, warned);
                    while let Ok((more, _)) = messages.try_recv() {
                        self.fold(more, backlog, warned);
                    }
                }
                permit = self.tx.reserve(), if !backlog.is_empty() => {
                    let Ok(permit) = permit else {
                        return false;
                    };
                    permit.send(NsEvents {
                        ns: self.id,
                        events: backlog.take(),
                    });
                }
            }
        }
    }

    /// Adds what `message` reports to `backlog`, warning (at most every
    /// [`OVERRUN_WARNING_EVERY`]) when events were lost.
    fn fold(
        &self,
        message: NetlinkMessage<RouteNetlinkMessage>,
        backlog: &mut EventBacklog,
        warned: &mut Option<Instant>,
    ) {
        let Some(event) = event(message) else {
            return;
        };
        if event == KernelEvent::Overrun {
            if warned.is_none_or(|t| t.elapsed() >= OVERRUN_WARNING_EVERY) {
                *warned = Some(Instant::now());
                tracing::warn!(ns = %self.label,
                    "kernel events lost (event socket receive buffer full): reading the namespace again");
            } else {
                tracing::debug!(ns = %self.label, "kernel events lost again");
            }
        }
        backlog.push(event);
    }
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
