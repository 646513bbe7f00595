//! One rtnetlink connection per namespace: opened on a dedicated OS thread that enters the
//! namespace (the socket stays bound to the namespace it was created in), driven by a tokio
//! task, reopened after timeouts or a closed socket (a request that finds its connection
//! ended goes to a reopened socket at once: nothing was sent).

use super::error::{ext_ack_message, NlError};
use super::faults::{Armed, Counter, Fault, NetlinkCounters};
use crate::netns::{self, Namespace};
use futures::{Stream, StreamExt};
use nix::errno::Errno;
use rtnetlink::packet_core::{
    NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST,
};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::sys::AsyncSocket;
use rtnetlink::Handle;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::Mutex;
use std::time::Duration;
use tokio::task::AbortHandle;

/// Timeout of every netlink request (tests shorten it).
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Receive buffer of each socket (capped by `net.core.rmem_max`).
const RCVBUF: usize = 4 << 20;
/// Attempts of a dump that the kernel reports as interrupted.
const DUMP_ATTEMPTS: u32 = 5;

/// A running connection: its handle and the task that drives its socket.
struct Live {
    handle: Handle,
    task: AbortHandle,
    generation: u64,
    broken: bool,
}

impl Drop for Live {
    fn drop(&mut self) {
        // Dropping the task drops the socket, which no longer pins the namespace.
        self.task.abort();
    }
}

/// An open namespace with its netlink connection (and its event subscription, which closes
/// with it).
pub(crate) struct NsConn {
    ns: Namespace,
    events: Option<super::events::Subscription>,
    label: String,
    rt: tokio::runtime::Handle,
    live: Mutex<Live>,
    /// The kernel runs one dump per socket at a time (a second one fails with EBUSY).
    dumping: tokio::sync::Mutex<()>,
    /// How long a request waits for its complete answer.
    timeout: Duration,
    /// Faults armed by tests.
    faults: Armed,
    /// Sockets opened again after one broke.
    reopened: Counter,
    /// Dump answers marked interrupted.
    dumps_interrupted: Counter,
    /// Dumps given up after [`DUMP_ATTEMPTS`] interrupted answers.
    dumps_given_up: Counter,
}

impl NsConn {
    /// Opens a connection inside `ns`; `label` names the namespace in messages; `events` is
    /// its event subscription, if any (kept until the connection closes); requests wait
    /// `timeout` for their answer.
    pub(crate) async fn open(
        ns: Namespace,
        label: String,
        events: Option<super::events::Subscription>,
        timeout: Duration,
    ) -> Result<NsConn, String> {
        let rt = tokio::runtime::Handle::current();
        let live = open_live(&ns, &rt, 0).await?;
        Ok(NsConn {
            ns,
            events,
            label,
            rt,
            live: Mutex::new(live),
            dumping: tokio::sync::Mutex::new(()),
            timeout,
            faults: Armed::default(),
            reopened: Counter::default(),
            dumps_interrupted: Counter::default(),
            dumps_given_up: Counter::default(),
        })
    }

    /// The namespace descriptor (for `IFLA_NET_NS_FD`), valid while `self` lives.
    pub(crate) fn fd(&self) -> RawFd {
        self.ns.fd.as_raw_fd()
    }

    /// How messages name this namespace.
    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    /// The faults tests armed on this connection.
    pub(crate) fn faults(&self) -> &Armed {
        &self.faults
    }

    /// Injects a test fault: counted ones are armed, `CloseSockets` closes both sockets now
    /// (and returns once their tasks have ended).
    pub(crate) async fn inject(&self, fault: Fault) {
        if fault != Fault::CloseSockets {
            self.faults.arm(fault);
            return;
        }
        if let Some(events) = &self.events {
            events.close_socket().await;
        }
        let task = self
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .task
            .clone();
        task.abort();
        while !task.is_finished() {
            tokio::task::yield_now().await;
        }
    }

    /// What the recovery of this connection did so far.
    pub(crate) fn counters(&self) -> NetlinkCounters {
        NetlinkCounters {
            reopened: self.reopened.get(),
            dumps_interrupted: self.dumps_interrupted.get(),
            dumps_given_up: self.dumps_given_up.get(),
            events_resubscribed: self.events.as_ref().map_or(0, |e| e.resubscriptions()),
        }
    }

    /// A handle of a working connection, reopening the socket when it broke.
    async fn handle(&self) -> Result<(Handle, u64), NlError> {
        let generation = {
            let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
            if !live.broken {
                return Ok((live.handle.clone(), live.generation));
            }
            live.generation
        };
        let fresh = open_live(&self.ns, &self.rt, generation + 1)
            .await
            .map_err(NlError::Unexpected)?;
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if live.generation == generation {
            tracing::info!(ns = %self.label, "reopened netlink socket");
            self.reopened.bump();
            *live = fresh;
        }
        Ok((live.handle.clone(), live.generation))
    }

    fn mark_broken(&self, generation: u64) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if live.generation == generation {
            live.broken = true;
        }
    }

    /// Sends one request (`NLM_F_REQUEST | NLM_F_ACK` plus `flags`) and collects the answer
    /// messages; a kernel error becomes [`NlError::Errno`].
    pub(crate) async fn request(
        &self,
        message: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, NlError> {
        self.raw_request(message, flags)
            .await
            .map(|(answer, _)| answer)
    }

    /// A dump, repeated while the kernel reports it as interrupted by concurrent changes (an
    /// interrupted dump may miss entries: it is never used). Dumps on one connection take
    /// turns.
    pub(crate) async fn dump(
        &self,
        message: RouteNetlinkMessage,
    ) -> Result<Vec<RouteNetlinkMessage>, NlError> {
        let _turn = self.dumping.lock().await;
        for _ in 0..DUMP_ATTEMPTS {
            let (answer, interrupted) = self.raw_request(message.clone(), NLM_F_DUMP).await?;
            if !interrupted && !self.faults.interrupt_dump() {
                return Ok(answer);
            }
            self.dumps_interrupted.bump();
            tracing::debug!(ns = %self.label, "dump interrupted by concurrent changes");
        }
        self.dumps_given_up.bump();
        Err(NlError::Interrupted(DUMP_ATTEMPTS))
    }

    /// Sends one request and waits for its complete answer; a timeout or a connection that
    /// dies on the way marks the socket broken (the next request reopens it).
    async fn raw_request(
        &self,
        message: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<(Vec<RouteNetlinkMessage>, bool), NlError> {
        let mut request = NetlinkMessage::from(message);
        // With NLM_F_ACK every request ends with an ACK, an error or (dumps) DONE.
        request.header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        let (answers, generation) = if self.faults.drop_request() {
            (None, self.handle().await?.1)
        } else {
            let (answers, generation) = self.send(request).await?;
            (Some(answers), generation)
        };
        let answer = async {
            match answers {
                Some(answers) => collect(answers).await,
                // A lost request (test fault): no answer ever comes.
                None => std::future::pending().await,
            }
        };
        let result = match tokio::time::timeout(self.timeout, answer).await {
            Ok(r) => r,
            Err(_) => Err(NlError::Timeout(self.timeout)),
        };
        if let Err(e) = &result {
            if e.breaks_connection() {
                self.mark_broken(generation);
            }
        }
        result
    }

    /// Hands `request` to a working connection. One whose task has ended (its socket failed)
    /// takes nothing, so nothing was sent: the request goes to a reopened socket instead.
    async fn send(
        &self,
        request: NetlinkMessage<RouteNetlinkMessage>,
    ) -> Result<(impl Stream<Item = NetlinkMessage<RouteNetlinkMessage>>, u64), NlError> {
        for _ in 0..2 {
            let (mut handle, generation) = self.handle().await?;
            match handle.request(request.clone()) {
                Ok(answers) => return Ok((answers, generation)),
                Err(_) => self.mark_broken(generation),
            }
        }
        Err(NlError::Closed)
    }
}

/// Collects the answer messages of one request until its ACK, error or DONE; a kernel error
/// becomes [`NlError::Errno`]. Also says whether a message was marked `NLM_F_DUMP_INTR`
/// (DONE carries it too).
async fn collect(
    mut answers: impl Stream<Item = NetlinkMessage<RouteNetlinkMessage>> + Unpin,
) -> Result<(Vec<RouteNetlinkMessage>, bool), NlError> {
    let mut out = Vec::new();
    let mut interrupted = false;
    let mut complete = false;
    while let Some(msg) = answers.next().await {
        interrupted |= msg.header.flags & NLM_F_DUMP_INTR != 0;
        match msg.payload {
            NetlinkPayload::InnerMessage(m) => out.push(m),
            NetlinkPayload::Error(e) => match e.code {
                Some(code) => {
                    return Err(NlError::Errno(
                        Errno::from_raw(-code.get()),
                        ext_ack_message(msg.header.flags, &e.header),
                    ))
                }
                None => complete = true,
            },
            NetlinkPayload::Done(d) if d.code < 0 => {
                return Err(NlError::Errno(Errno::from_raw(-d.code), None))
            }
            NetlinkPayload::Done(_) => complete = true,
            NetlinkPayload::Overrun(_) => return Err(NlError::Overrun),
            _ => {}
        }
    }
    // The stream also ends when the connection dies.
    if !complete {
        return Err(NlError::Closed);
    }
    Ok((out, interrupted))
}

/// Opens a socket inside `ns` on a dedicated thread and starts its connection task.
async fn open_live(
    ns: &Namespace,
    rt: &tokio::runtime::Handle,
    generation: u64,
) -> Result<Live, String> {
    let fd = ns
        .fd
        .try_clone()
        .map_err(|e| format!("cannot duplicate namespace descriptor: {e}"))?;
    let rt2 = rt.clone();
    let opened = tokio::task::spawn_blocking(move || {
        netns::run_in(fd.as_fd(), move || {
            // The socket is created here, inside the namespace; the tokio context is only
            // needed to register it with the reactor.
            let _enter = rt2.enter();
            let (mut conn, handle, _unsolicited) = rtnetlink::new_connection()?;
            let socket = conn.socket_mut().socket_mut();
            if let Err(e) = socket.set_rx_buf_sz(RCVBUF) {
                tracing::warn!("cannot set netlink receive buffer: {e}");
            }
            // Lets the kernel filter dumps by the header (address dump of one link).
            socket.set_netlink_get_strict_chk(true)?;
            // Error answers carry the kernel's explanation ("Nexthop has invalid gateway")
            // and echo only the request's header.
            if let Err(e) = socket
                .set_ext_ack(true)
                .and_then(|()| socket.set_cap_ack(true))
            {
                tracing::debug!("no extended netlink ACKs: {e}");
            }
            // Forward ACK and DONE to tell a complete answer from a dead connection (and
            // DONE carries NLM_F_DUMP_INTR too).
            conn.set_forward_ack(true);
            conn.set_forward_done(true);
            Ok::<_, std::io::Error>((conn, handle))
        })
    })
    .await
    .map_err(|e| format!("namespace thread failed: {e}"))?
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("cannot open netlink socket: {e}"))?;
    let (conn, handle) = opened;
    let task = rt.spawn(conn).abort_handle();
    Ok(Live {
        handle,
        task,
        generation,
        broken: false,
    })
}
