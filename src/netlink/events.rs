//! Kernel events of one namespace: a netlink socket subscribed to link, IPv4/IPv6 address,
//! IPv4/IPv6 route and neighbour changes. It is opened inside the namespace (on a dedicated
//! thread, like the request socket) when the namespace is first resolved, before it is read,
//! so that no change falls between the dump and the events; it closes with the namespace's
//! connection. Lost events (the receive buffer overflowed: ENOBUFS, which the socket survives)
//! and a socket that closed (it is opened again) are reported as [`KernelEvent::Overrun`]: the
//! namespace is read again in full.

use super::faults::Counter;
use super::pending::{Notice, Pending};
use crate::kernel::{KernelEvent, NsId};
use crate::netns::{self, Namespace};
use rtnetlink::sys::protocols::NETLINK_ROUTE;
use rtnetlink::sys::{AsyncSocket, TokioSocket};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::Sender;
use tokio::sync::Notify;
use tokio::task::AbortHandle;

/// Receive buffer of an event socket (capped by `net.core.rmem_max`): large, so that bursts
/// rarely overflow it (an overflow makes the namespace be read again in full).
const EVENT_RCVBUF: usize = 8 << 20;

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
    pending: Arc<Pending>,
}

/// What the subscription's task shares with its owner.
#[derive(Default)]
struct Shared {
    /// Tells the task to close its socket and open another (a test fault, or a socket
    /// whose groups could not be changed).
    close: Notify,
    /// Tells the task to look at what waits again (an event was added from outside it).
    wake: Notify,
    /// Sockets opened again after one closed.
    resubscribed: Counter,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.task.abort();
        // A notice the agent has not taken yet must not keep the namespace open.
        self.pending.detach();
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

    /// Follows the namespace's route and neighbour changes too from now on (call before
    /// they are first read).
    pub(crate) fn follow_routes(&self) -> io::Result<()> {
        self.pending.follow_routes()
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
        let deaf = Deaf {
            shared: self.shared.clone(),
            pending: self.pending.clone(),
        };
        if let Err(e) = self.pending.deafen() {
            deaf.socket_failed(e);
        }
        deaf
    }
}

/// Keeps an event socket deaf while it lives (see [`Subscription::deafen`]).
pub(crate) struct Deaf {
    shared: Arc<Shared>,
    pending: Arc<Pending>,
}

impl Deaf {
    /// The socket's groups could not be changed: it is replaced (and the namespace read
    /// again), as after any other failure of the socket.
    fn socket_failed(&self, e: io::Error) {
        tracing::debug!("cannot change the kernel event socket's groups: {e}");
        self.shared.close.notify_one();
    }
}

impl Drop for Deaf {
    fn drop(&mut self) {
        match self.pending.hear() {
            Ok(()) => self.shared.wake.notify_one(),
            Err(e) => self.socket_failed(e),
        }
    }
}

/// Subscribes to the events of `ns` (identity `id`, named `label` in messages), forwarding
/// them to the agent through `tx`. `rcvbuf` overrides the receive buffer (tests provoke overflows with a small
/// one). When the socket closes, another one is opened and an [`KernelEvent::Overrun`] sent,
/// so that the namespace is read again.
pub(crate) async fn subscribe(
    ns: &Namespace,
    id: NsId,
    label: String,
    tx: Sender<Notice>,
    rcvbuf: Option<usize>,
) -> Result<Subscription, String> {
    let fd = ns
        .fd
        .try_clone()
        .map_err(|e| format!("cannot duplicate namespace descriptor: {e}"))?;
    let socket = Arc::new(open(&fd, rcvbuf).await?);
    let shared = Arc::new(Shared::default());
    let pending = Pending::new(id);
    pending
        .install(socket.clone())
        .map_err(|e| format!("cannot subscribe to kernel events: {e}"))?;
    let follow = Follow {
        fd,
        label,
        tx,
        rcvbuf,
        shared: shared.clone(),
        pending: pending.clone(),
    };
    let task = tokio::spawn(follow.run(socket)).abort_handle();
    Ok(Subscription {
        task,
        shared,
        pending,
    })
}

/// Opens an event socket inside the namespace of `fd`, on a dedicated thread (it joins its
/// groups when installed).
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
    label: String,
    tx: Sender<Notice>,
    rcvbuf: Option<usize>,
    shared: Arc<Shared>,
    /// Where the events wait for the agent.
    pending: Arc<Pending>,
}

impl Follow {
    /// Forwards the events of `socket`, and of the sockets that replace it when it closes,
    /// until the receiver is gone.
    async fn run(self, mut socket: Arc<TokioSocket>) {
        let mut warned: Option<Instant> = None;
        loop {
            if !self.forward(&socket, &mut warned).await {
                return;
            }
            self.pending.detach();
            drop(socket);
            // The socket closed (an error other than an overflow). Subscribed again before
            // the namespace is read again, so that no change falls in between.
            socket = self.reopen().await;
            self.shared.resubscribed.bump();
            tracing::info!(ns = %self.label, "kernel event socket closed; subscribed again");
            self.pending.push(KernelEvent::Overrun);
        }
    }

    /// Opens a new event socket and installs it, trying again with growing delays until it
    /// works.
    async fn reopen(&self) -> Arc<TokioSocket> {
        let mut retry = crate::backoff::Retry::new(RESUBSCRIBE_DELAY.0, RESUBSCRIBE_DELAY.1);
        loop {
            let opened = open(&self.fd, self.rcvbuf).await.map(Arc::new);
            let installed = opened.and_then(|socket| {
                self.pending
                    .install(socket.clone())
                    .map(|()| socket)
                    .map_err(|e| format!("cannot subscribe to kernel events: {e}"))
            });
            match installed {
                Ok(socket) => return socket,
                Err(e) => {
                    tracing::warn!(ns = %self.label, "{e}; trying again in {:?}", retry.current())
                }
            }
            tokio::time::sleep(retry.failed()).await;
        }
    }

    /// Adds the events `socket` receives to those waiting, and tells the agent about them
    /// when its queue has room, until the socket closes (true) or the agent is gone (false).
    /// While the queue is full, only the latest event of each object waits, and what is not
    /// read yet waits in the socket.
    async fn forward(&self, socket: &TokioSocket, warned: &mut Option<Instant>) -> bool {
        loop {
            tokio::select! {
                () = self.shared.wake.notified() => {}
                received = std::future::poll_fn(|cx| self.pending.poll_receive(socket, cx)) => match received {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                        self.warn_lost(warned);
                        self.pending.push(KernelEvent::Overrun);
                    }
                    Err(e) => {
                        tracing::debug!(ns = %self.label, "kernel event socket failed: {e}");
                        return true;
                    }
                },
                permit = self.tx.reserve(), if self.pending.untold() => {
                    let Ok(permit) = permit else {
                        return false;
                    };
                    self.pending.tell(permit);
                }
                () = self.shared.close.notified() => return true,
            }
        }
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
