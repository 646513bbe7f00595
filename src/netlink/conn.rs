//! One rtnetlink socket per namespace: opened on a dedicated OS thread that enters the
//! namespace (the socket stays bound to the namespace it was created in), reopened after
//! timeouts or a failed send. Requests on one socket take turns; the kernel handles each
//! within its send, so the requesting task reads its answer at once, with no task in
//! between.

use super::datagram;
use super::error::{ext_ack_message, NlError};
use super::faults::{Armed, Counter, Fault, NetlinkCounters};
use crate::netns::{self, Namespace};
use nix::errno::Errno;
use rtnetlink::packet_core::{
    NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST,
};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::sys::protocols::NETLINK_ROUTE;
use rtnetlink::sys::{AsyncSocket, TokioSocket};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Timeout of every netlink request (tests shorten it).
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Receive buffer of each socket (capped by `net.core.rmem_max`).
const RCVBUF: usize = 4 << 20;
/// Attempts of a dump that the kernel reports as interrupted.
const DUMP_ATTEMPTS: u32 = 5;

/// The working socket of a connection.
struct Live {
    socket: Arc<TokioSocket>,
    generation: u64,
    broken: bool,
}

/// An open namespace with its netlink connection (and its event subscription, which closes
/// with it).
pub(crate) struct NsConn {
    ns: Namespace,
    events: Option<super::events::Subscription>,
    label: String,
    rt: tokio::runtime::Handle,
    live: Mutex<Live>,
    /// Requests take turns on the socket: each reads its whole answer before the next is
    /// sent (and the kernel runs one dump per socket at a time).
    turn: tokio::sync::Mutex<()>,
    /// Sequence number of the last request.
    sequence: AtomicU32,
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
            turn: tokio::sync::Mutex::new(()),
            sequence: AtomicU32::new(0),
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
    /// (the request socket is opened again by the next request, the event socket at once).
    pub(crate) async fn inject(&self, fault: Fault) {
        if fault != Fault::CloseSockets {
            self.faults.arm(fault);
            return;
        }
        if let Some(events) = &self.events {
            events.close_socket().await;
        }
        let generation = self
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .generation;
        self.mark_broken(generation);
    }

    /// Stops its event socket from receiving until the guard is dropped (see
    /// [`super::events::Subscription::deafen`]); `None` without one.
    pub(crate) fn deafen(&self) -> Option<super::events::Deaf> {
        self.events.as_ref().map(|e| e.deafen())
    }

    /// Follows the namespace's route and neighbour changes too from now on (see
    /// [`super::events::Subscription::follow_routes`]); a failure is logged, and such changes
    /// are then found by re-reads only.
    pub(crate) fn follow_routes(&self) {
        if let Some(Err(e)) = self.events.as_ref().map(|e| e.follow_routes()) {
            tracing::warn!(ns = %self.label, "cannot follow route and neighbour changes: {e}; they are found by re-reads only");
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

    /// The working socket, reopened when it broke.
    async fn socket(&self) -> Result<(Arc<TokioSocket>, u64), NlError> {
        let generation = {
            let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
            if !live.broken {
                return Ok((live.socket.clone(), live.generation));
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
        Ok((live.socket.clone(), live.generation))
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

    /// Sends one request and waits for its complete answer; a timeout or a socket that
    /// fails on the way marks the socket broken (the next request reopens it).
    async fn raw_request(
        &self,
        message: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<(Vec<RouteNetlinkMessage>, bool), NlError> {
        let sequence = self
            .sequence
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_add(1);
        let slow = Slow::of(&message);
        let mut bytes = Vec::new();
        append_request(&mut bytes, message, flags, sequence);
        let _turn = self.turn.lock().await;
        let (socket, generation) = self.sent(&bytes, slow).await?;
        self.answered(generation, collect(&socket, sequence)).await
    }

    /// Waits up to the request timeout for `exchange`, the reading of an answer; a failure
    /// that breaks the connection marks the socket of `generation` broken.
    async fn answered<T>(
        &self,
        generation: u64,
        exchange: impl std::future::Future<Output = Result<T, NlError>>,
    ) -> Result<T, NlError> {
        let result = tokio::time::timeout(self.timeout, exchange)
            .await
            .unwrap_or(Err(NlError::Timeout(self.timeout)));
        if let Err(e) = &result {
            if e.breaks_connection() {
                self.mark_broken(generation);
            }
        }
        result
    }

    /// Sends `requests` (each with `NLM_F_REQUEST | NLM_F_ACK` plus its flags; no dumps) in
    /// one datagram: the kernel handles them in order, each on its own (one that fails does
    /// not stop the next), within the one send. Returns each request's answer; the outer
    /// error is the connection's (timeout, closed), as for [`Self::request`].
    pub(crate) async fn batch(
        &self,
        requests: Vec<(RouteNetlinkMessage, u16)>,
    ) -> Result<Vec<Answer>, NlError> {
        let count = requests.len() as u32;
        let first = self
            .sequence
            .fetch_add(count, Ordering::Relaxed)
            .wrapping_add(1);
        let mut bytes = Vec::new();
        for (sequence, (message, flags)) in (first..).zip(requests) {
            append_request(&mut bytes, message, flags, sequence);
        }
        let _turn = self.turn.lock().await;
        let (socket, generation) = self.sent(&bytes, Slow::No).await?;
        self.answered(generation, collect_batch(&socket, first, count))
            .await
    }
}

/// The answer of one request of a batch: its messages, or the kernel's error.
pub(crate) type Answer = Result<Vec<RouteNetlinkMessage>, NlError>;

impl NsConn {
    /// Sends a request on a working socket; one that cannot send is replaced at once
    /// (nothing was sent on it). A lost request (test fault) is not sent at all.
    async fn sent(&self, bytes: &[u8], slow: Slow) -> Result<(Arc<TokioSocket>, u64), NlError> {
        let mut failure = NlError::Closed;
        for _ in 0..2 {
            let (socket, generation) = self.socket().await?;
            if self.faults.drop_request() {
                return Ok((socket, generation));
            }
            match send(&socket, bytes, slow).await {
                Ok(()) => return Ok((socket, generation)),
                Err(e) => {
                    self.mark_broken(generation);
                    failure = e;
                }
            }
        }
        Err(failure)
    }
}

/// How long the kernel may take to handle a request within its send.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Slow {
    /// Briefly: sent from the requesting task.
    No,
    /// Long, mostly waiting (a link deletion waits for the network to quiesce, also after
    /// the kernel's lock is released): sent from a blocking thread, so that the deletions of
    /// other namespaces go on meanwhile.
    Waits,
}

impl Slow {
    fn of(message: &RouteNetlinkMessage) -> Slow {
        match message {
            RouteNetlinkMessage::DelLink(_) => Slow::Waits,
            _ => Slow::No,
        }
    }
}

/// Appends request `sequence` of `message` to `bytes`. With `NLM_F_ACK` every request ends
/// with an ACK, an error or (dumps) DONE.
fn append_request(bytes: &mut Vec<u8>, message: RouteNetlinkMessage, flags: u16, sequence: u32) {
    let mut request = NetlinkMessage::from(message);
    request.header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
    request.header.sequence_number = sequence;
    request.finalize();
    let at = bytes.len();
    bytes.resize(at + request.buffer_len(), 0);
    request.serialize(&mut bytes[at..]);
}

/// Requests that wait ([`Slow::Waits`]) sent at once: at most half the blocking threads, so
/// that deletions the kernel holds up (a device whose references are never released) leave
/// threads to open namespaces and resolve references.
static WAITING_SENDS: tokio::sync::Semaphore =
    tokio::sync::Semaphore::const_new(crate::memory::BLOCKING_THREADS / 2);

/// Sends one request; a socket that cannot send is closed for this connection.
async fn send(socket: &Arc<TokioSocket>, bytes: &[u8], slow: Slow) -> Result<(), NlError> {
    let sent = if slow == Slow::Waits {
        let _permit = WAITING_SENDS.acquire().await.map_err(|_| NlError::Closed)?;
        let (socket, owned) = (socket.clone(), bytes.to_vec());
        tokio::task::spawn_blocking(move || socket.socket_ref().send(&owned, libc::MSG_DONTWAIT))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
    } else {
        socket.socket_ref().send(bytes, libc::MSG_DONTWAIT)
    };
    let sent = match sent {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
            std::future::poll_fn(|cx| socket.poll_send(cx, bytes)).await
        }
        other => other,
    };
    match sent {
        Ok(n) if n == bytes.len() => Ok(()),
        Ok(n) => Err(NlError::Unexpected(format!(
            "netlink request sent in part ({n} of {} bytes)",
            bytes.len()
        ))),
        Err(e) => {
            tracing::debug!("netlink send failed: {e}");
            Err(NlError::Closed)
        }
    }
}

/// What one datagram of an answer said.
#[derive(Default)]
struct Part {
    messages: Vec<RouteNetlinkMessage>,
    interrupted: bool,
    complete: bool,
}

/// Reads the answer of request `sequence` until its ACK, error or DONE; a kernel error
/// becomes [`NlError::Errno`]. Also says whether a message was marked `NLM_F_DUMP_INTR`
/// (DONE carries it too).
async fn collect(
    socket: &TokioSocket,
    sequence: u32,
) -> Result<(Vec<RouteNetlinkMessage>, bool), NlError> {
    let mut out = Vec::new();
    let mut interrupted = false;
    loop {
        let part = datagram::receive(socket, |bytes| read_part(bytes, sequence))
            .await
            .map_err(receive_failed)??;
        out.extend(part.messages);
        interrupted |= part.interrupted;
        if part.complete {
            return Ok((out, interrupted));
        }
    }
}

/// Reads the answers of the `count` requests from sequence `first` on, until each has its
/// ACK or error.
async fn collect_batch(
    socket: &TokioSocket,
    first: u32,
    count: u32,
) -> Result<Vec<Answer>, NlError> {
    let mut answers: Vec<Option<Answer>> = (0..count).map(|_| None).collect();
    let mut messages: Vec<Vec<RouteNetlinkMessage>> = vec![Vec::new(); count as usize];
    while answers.iter().any(Option::is_none) {
        let parts = datagram::receive(socket, |bytes| {
            (0..count)
                .filter(|i| answers[*i as usize].is_none())
                .map(|i| (i as usize, read_part(bytes, first.wrapping_add(i))))
                .collect::<Vec<_>>()
        })
        .await
        .map_err(receive_failed)?;
        for (i, part) in parts {
            match part {
                Ok(part) => {
                    messages[i].extend(part.messages);
                    if part.complete {
                        answers[i] = Some(Ok(std::mem::take(&mut messages[i])));
                    }
                }
                Err(e) => answers[i] = Some(Err(e)),
            }
        }
    }
    Ok(answers.into_iter().flatten().collect())
}

/// What a failed receive on a request socket means: an overrun answer (ENOBUFS), or a
/// socket that cannot be trusted any more.
fn receive_failed(e: std::io::Error) -> NlError {
    match e.raw_os_error() {
        Some(libc::ENOBUFS) => NlError::Overrun,
        _ => NlError::Closed,
    }
}

/// The messages of request `sequence` in one datagram (those of other requests are
/// left out).
fn read_part(datagram: &[u8], sequence: u32) -> Result<Part, NlError> {
    let mut part = Part::default();
    for message in datagram::messages(datagram) {
        let message =
            message.map_err(|e| NlError::Unexpected(format!("undecodable netlink answer: {e}")))?;
        if message.header.sequence_number != sequence {
            continue;
        }
        part.interrupted |= message.header.flags & NLM_F_DUMP_INTR != 0;
        match message.payload {
            NetlinkPayload::InnerMessage(m) => part.messages.push(m),
            NetlinkPayload::Error(e) => match e.code {
                Some(code) => {
                    return Err(NlError::Errno(
                        Errno::from_raw(-code.get()),
                        ext_ack_message(message.header.flags, &e.header),
                    ))
                }
                None => part.complete = true,
            },
            NetlinkPayload::Done(d) if d.code < 0 => {
                return Err(NlError::Errno(Errno::from_raw(-d.code), None))
            }
            NetlinkPayload::Done(_) => part.complete = true,
            _ => {}
        }
    }
    Ok(part)
}

/// Opens a socket inside `ns` on a dedicated thread.
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
            let mut requests = TokioSocket::new(NETLINK_ROUTE)?;
            let socket = requests.socket_mut();
            socket.bind_auto()?;
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
            Ok::<_, std::io::Error>(requests)
        })
    })
    .await
    .map_err(|e| format!("namespace thread failed: {e}"))?
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("cannot open netlink socket: {e}"))?;
    Ok(Live {
        socket: Arc::new(opened),
        generation,
        broken: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtnetlink::packet_core::{DoneMessage, ErrorMessage};
    use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage};
    use std::num::NonZeroI32;

    /// `NLM_F_MULTI`: a part of a multi-part answer.
    const NLM_F_MULTI: u16 = 2;

    /// The bytes of `payload` sent as answer `sequence` with `flags`.
    fn answer(sequence: u32, flags: u16, payload: NetlinkPayload<RouteNetlinkMessage>) -> Vec<u8> {
        let mut message = NetlinkMessage::new(Default::default(), payload);
        message.header.sequence_number = sequence;
        message.finalize();
        message.header.flags = flags;
        let mut bytes = vec![0; message.buffer_len()];
        message.serialize(&mut bytes);
        bytes
    }

    fn link(name: &str) -> NetlinkPayload<RouteNetlinkMessage> {
        let mut l = LinkMessage::default();
        l.attributes.push(LinkAttribute::IfName(name.into()));
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l))
    }

    fn ack(code: Option<i32>) -> NetlinkPayload<RouteNetlinkMessage> {
        let mut e = ErrorMessage::default();
        e.code = code.and_then(NonZeroI32::new);
        NetlinkPayload::Error(e)
    }

    #[test]
    fn a_dump_part_is_read_until_done_and_others_answers_are_left_out() {
        let mut datagram = answer(6, NLM_F_MULTI, link("stale"));
        datagram.extend(answer(7, NLM_F_MULTI, link("a")));
        datagram.extend(answer(7, NLM_F_MULTI | NLM_F_DUMP_INTR, link("b")));
        let part = read_part(&datagram, 7).unwrap();
        assert_eq!(part.messages.len(), 2);
        assert!(part.interrupted && !part.complete);
        let done = answer(7, NLM_F_MULTI, NetlinkPayload::Done(DoneMessage::default()));
        assert!(read_part(&done, 7).unwrap().complete);
    }

    #[test]
    fn an_ack_completes_and_an_error_names_the_kernels_errno() {
        assert!(read_part(&answer(3, 0, ack(None)), 3).unwrap().complete);
        match read_part(&answer(3, 0, ack(Some(-libc::EEXIST))), 3) {
            Err(NlError::Errno(e, _)) => assert_eq!(e, Errno::EEXIST),
            other => panic!("an error answer: {:?}", other.map(|p| p.complete)),
        }
        assert!(!read_part(&answer(2, 0, ack(None)), 3).unwrap().complete);
    }
}
