//! Kernel events of one namespace waiting for the agent, shared by the namespace's forwarder
//! task and the agent. The forwarder reads the event socket as datagrams arrive and tells the
//! agent that there is something to take; the agent, when it takes the events, first reads
//! what the socket still holds. So the agent always looks at everything the kernel said until
//! that moment: a change it made in several steps (a pair is created down and without alias,
//! then configured) is never seen half-way, which would look like a change behind its back.

use super::backlog::EventBacklog;
use super::datagram;
use super::event_parse::events_of;
use crate::kernel::{KernelEvent, NsEvents, NsId};
use rtnetlink::sys::{AsyncSocket, TokioSocket};
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{ready, Context, Poll};
use tokio::sync::mpsc;

/// `RTNLGRP_*` groups followed in every namespace: link, IPv4 address, IPv6 address.
const LINK_GROUPS: [u32; 3] = [1, 5, 9];

/// `RTNLGRP_*` groups followed once the agent reads a namespace's routes and neighbour
/// entries: neighbour, IPv4 route, IPv6 route. Elsewhere nothing of them matters, and a
/// group nobody follows costs the kernel nothing (it does not even build the message).
const ROUTE_GROUPS: [u32; 3] = [3, 7, 11];

/// The events of one namespace that the agent has not taken yet.
pub(crate) struct Pending {
    ns: NsId,
    state: Mutex<State>,
}

/// What [`Pending`] guards.
struct State {
    backlog: EventBacklog,
    /// The socket the events come from (`None` before one is installed and once the
    /// subscription is gone).
    socket: Option<Arc<TokioSocket>>,
    /// The agent was told that events wait, and has not taken them since.
    told: bool,
    /// The socket is in its event groups (it leaves them while deaf).
    listening: bool,
    /// How many batches want the socket deaf (see [`Pending::deafen`]).
    deaf: usize,
    /// Route and neighbour changes are followed too.
    routes: bool,
}

impl State {
    /// The groups the socket is in while it listens.
    fn groups(&self) -> impl Iterator<Item = u32> {
        let routes: &[u32] = if self.routes { &ROUTE_GROUPS } else { &[] };
        LINK_GROUPS.into_iter().chain(routes.iter().copied())
    }

    /// Joins (`wanted`) or leaves the event groups, if the socket is there and not as
    /// wanted yet; true when it changed.
    fn join(&mut self, wanted: bool) -> io::Result<bool> {
        let Some(socket) = self.socket.clone() else {
            return Ok(false);
        };
        if self.listening == wanted {
            return Ok(false);
        }
        for group in self.groups() {
            if wanted {
                socket.socket_ref().add_membership(group)?;
            } else {
                socket.socket_ref().drop_membership(group)?;
            }
        }
        self.listening = wanted;
        Ok(true)
    }
}

/// Tells the agent that a namespace has events waiting.
pub(crate) struct Notice(Arc<Pending>);

impl Pending {
    /// Nothing waiting yet for namespace `ns`, and no socket yet.
    pub(crate) fn new(ns: NsId) -> Arc<Self> {
        Arc::new(Pending {
            ns,
            state: Mutex::new(State {
                backlog: EventBacklog::default(),
                socket: None,
                told: false,
                listening: false,
                deaf: 0,
                routes: false,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The events come from `socket` from now on; it joins the groups followed, unless the
    /// socket is to be deaf now (it joins them when the last batch is done).
    pub(crate) fn install(&self, socket: Arc<TokioSocket>) -> io::Result<()> {
        let mut state = self.lock();
        state.listening = false;
        state.socket = Some(socket);
        if state.deaf == 0 {
            state.join(true)?;
        }
        Ok(())
    }

    /// The events come from nowhere any more (the socket is closed once nothing else holds
    /// it).
    pub(crate) fn detach(&self) {
        let mut state = self.lock();
        state.socket = None;
        state.listening = false;
    }

    /// Leaves the event groups until every `deafen` is matched by a [`Pending::hear`]: a
    /// batch that writes to the namespace many times does not listen to its echo. Done at
    /// once, on the caller's thread, so that the socket is deaf before the batch starts.
    pub(crate) fn deafen(&self) -> io::Result<()> {
        let mut state = self.lock();
        state.deaf += 1;
        state.join(false).map(drop)
    }

    /// Undoes one [`Pending::deafen`]. The last one joins the groups again and reports the
    /// events missed meanwhile as lost, so that the namespace is read again (after the
    /// socket listens again: no change falls in between).
    pub(crate) fn hear(&self) -> io::Result<()> {
        let mut state = self.lock();
        state.deaf = state.deaf.saturating_sub(1);
        if state.deaf == 0 && state.join(true)? {
            state.backlog.push(KernelEvent::Overrun);
        }
        Ok(())
    }

    /// Follows route and neighbour changes too from now on; called before the namespace's
    /// routes and entries are first read, so that no change falls in between.
    pub(crate) fn follow_routes(&self) -> io::Result<()> {
        let mut state = self.lock();
        if state.routes {
            return Ok(());
        }
        state.routes = true;
        if let (true, Some(socket)) = (state.listening, &state.socket) {
            for group in ROUTE_GROUPS {
                socket.socket_ref().add_membership(group)?;
            }
        }
        Ok(())
    }

    /// Adds `event` to those waiting.
    pub(crate) fn push(&self, event: KernelEvent) {
        self.lock().backlog.push(event);
    }

    /// Polls `socket` for its next datagram, and adds the events in it to those waiting.
    pub(crate) fn poll_receive(
        &self,
        socket: &TokioSocket,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        let mut state = self.lock();
        let received = datagram::poll_receive(socket, cx, &mut |datagram: &[u8]| {
            events_of(datagram)
                .into_iter()
                .for_each(|e| state.backlog.push(e))
        });
        ready!(received)?;
        Poll::Ready(Ok(()))
    }

    /// True when events wait that the agent has not been told about.
    pub(crate) fn untold(&self) -> bool {
        let state = self.lock();
        !state.told && !state.backlog.is_empty()
    }

    /// Tells the agent through `permit` that events wait, unless it knows already.
    pub(crate) fn tell(self: &Arc<Self>, permit: mpsc::Permit<'_, Notice>) {
        let mut state = self.lock();
        if !state.told && !state.backlog.is_empty() {
            state.told = true;
            permit.send(Notice(self.clone()));
        }
    }

    /// Takes the events waiting, after reading what the socket holds.
    fn take(&self) -> Vec<KernelEvent> {
        let mut state = self.lock();
        let State {
            backlog, socket, ..
        } = &mut *state;
        if let Some(socket) = socket {
            read_queued(socket, backlog);
        }
        state.told = false;
        state.backlog.take()
    }
}

/// Reads the datagrams queued on `socket` into `backlog`, without waiting.
fn read_queued(socket: &TokioSocket, backlog: &mut EventBacklog) {
    let mut read = |datagram: &[u8]| events_of(datagram);
    while let Some(received) = datagram::try_receive(socket, &mut read) {
        match received {
            Ok(events) => events.into_iter().for_each(|e| backlog.push(e)),
            // Lost events (ENOBUFS: the socket goes on) or a failing socket, which its
            // forwarder finds too: either way the namespace is read again.
            Err(e) => {
                tracing::debug!("kernel events lost: {e}");
                backlog.push(KernelEvent::Overrun);
                if e.raw_os_error() != Some(libc::ENOBUFS) {
                    return;
                }
            }
        }
    }
}

/// The kernel events of the namespaces the executor holds open, as the agent takes them.
pub struct KernelEvents(mpsc::Receiver<Notice>);

impl KernelEvents {
    /// Events arrive through the notices of `notices`.
    pub(crate) fn new(notices: mpsc::Receiver<Notice>) -> Self {
        KernelEvents(notices)
    }

    /// The events of the next namespace that has some, waiting until one has (`None` once
    /// the executor is gone). They include all the kernel had said until now.
    pub async fn recv(&mut self) -> Option<NsEvents> {
        self.0.recv().await.map(Notice::take)
    }

    /// Like [`KernelEvents::recv`], without waiting: `None` when no namespace has events.
    pub fn try_recv(&mut self) -> Option<NsEvents> {
        self.0.try_recv().ok().map(Notice::take)
    }
}

impl Notice {
    fn take(self) -> NsEvents {
        NsEvents {
            ns: self.0.ns,
            events: self.0.take(),
        }
    }
}
