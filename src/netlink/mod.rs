//! The executor: runs scheduler operations against the kernel over rtnetlink, with one
//! cached netlink connection per namespace.

mod auto_tap;
mod backlog;
mod conn;
mod create;
mod datagram;
mod deaf;
mod delete;
mod dummy;
mod dump;
mod error;
mod event_parse;
mod events;
mod faults;
mod neigh;
mod pending;
#[cfg(test)]
mod request_tests;
mod route;
mod tap;
mod update;
mod veth;
mod vrf;

use crate::kernel::NsId;
use crate::keys::KeyTree;
use crate::model::NamespaceRef;
use crate::netns;
use crate::scheduler::ops::l3::{L3Op, L3Outcome};
use crate::scheduler::ops::{FailureKind, Op, OpOutcome};
use crate::scheduler::rounds::Kernel;
use conn::NsConn;
use dump::Ownership;
#[doc(hidden)]
pub use faults::{Fault, NetlinkCounters};
use futures::StreamExt;
pub use pending::KernelEvents;
use pending::Notice;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// How many operations of one batch run at the same time.
const CONCURRENCY: usize = 128;

/// Notices of namespaces with kernel events waiting, queued for the agent. While the queue is
/// full, each namespace keeps its events waiting, one per object.
const EVENT_QUEUE: usize = 256;

/// Environment variable (for tests only) that sets the receive buffer of the event sockets in
/// bytes, so that a test can make them overflow; see [`Executor::set_event_buffer`].
pub const EVENT_RCVBUF_ENV: &str = "NSAGENT_EVENT_RCVBUF";

/// Runs [`Op`]s. Owns the namespace descriptors and their netlink connections, and follows
/// the kernel events of every namespace it holds open.
pub struct Executor {
    owner: Ownership,
    /// Where the event subscriptions send.
    events_tx: mpsc::Sender<Notice>,
    /// Taken by the agent ([`Executor::take_events`]).
    events_rx: Option<mpsc::Receiver<Notice>>,
    /// Receive buffer of new event sockets (`None`: the default; tests shrink it).
    event_rcvbuf: Option<usize>,
    /// Timeout of the requests of new connections (tests shorten it).
    request_timeout: Duration,
    state: Mutex<State>,
}

/// Open namespaces and the references that name them.
#[derive(Default)]
struct State {
    conns: HashMap<NsId, Arc<NsConn>>,
    refs: HashMap<NamespaceRef, NsId>,
    /// Running microservices: label -> PID of the container's process.
    microservices: HashMap<String, u32>,
    /// Bumped whenever `refs` or `microservices` change.
    version: u64,
}

impl State {
    /// Drops the connections no reference maps to any more.
    fn prune(&mut self) {
        let State { conns, refs, .. } = self;
        conns.retain(|id, _| refs.values().any(|r| r == id));
    }

    /// What a reference names in the kernel: microservices through their process.
    fn concrete(&self, reference: &NamespaceRef) -> Option<NamespaceRef> {
        match reference {
            NamespaceRef::Microservice(label) => self
                .microservices
                .get(label)
                .map(|pid| NamespaceRef::Pid(*pid)),
            other => Some(other.clone()),
        }
    }
}

impl Executor {
    /// Creates an executor for the agent of `keys`, marking links with `group`. Must be
    /// called inside a tokio runtime. The event sockets' receive buffer comes from
    /// [`EVENT_RCVBUF_ENV`] when that is set (tests of lost events).
    pub async fn new(keys: KeyTree, group: u32) -> anyhow::Result<Self> {
        let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
        let event_rcvbuf = match std::env::var(EVENT_RCVBUF_ENV) {
            Ok(v) => Some(v.trim().parse::<usize>().map_err(|e| {
                anyhow::anyhow!("{EVENT_RCVBUF_ENV}={v:?}: not a number of bytes: {e}")
            })?),
            Err(_) => None,
        };
        if let Some(bytes) = event_rcvbuf {
            tracing::warn!(
                "{EVENT_RCVBUF_ENV}={bytes}: event sockets get a test-sized receive buffer"
            );
        }
        Ok(Executor {
            events_tx,
            events_rx: Some(events_rx),
            event_rcvbuf,
            request_timeout: conn::REQUEST_TIMEOUT,
            owner: Ownership {
                group,
                delete_group: crate::owned::marks::default_delete_group(group),
                alias_prefix: keys.agent_prefix(),
            },
            state: Mutex::new(State::default()),
        })
    }

    /// The kernel events of the namespaces it opens (once; later calls get a closed channel).
    pub fn take_events(&mut self) -> KernelEvents {
        KernelEvents::new(self.events_rx.take().unwrap_or_else(|| mpsc::channel(1).1))
    }

    /// Event sockets opened from now on get this receive buffer (tests provoke overflows; the
    /// kernel rounds it up to its minimum).
    pub fn set_event_buffer(&mut self, bytes: usize) {
        self.event_rcvbuf = Some(bytes);
    }

    /// Test-only: requests on connections opened from now on time out after `timeout`
    /// instead of 10 s.
    #[doc(hidden)]
    pub fn set_request_timeout(&mut self, timeout: Duration) {
        self.request_timeout = timeout;
    }

    /// Test-only: injects `fault` into the netlink connection of the open namespace `ns`;
    /// false when `ns` is not open.
    #[doc(hidden)]
    pub async fn inject_netlink_fault(&self, ns: NsId, fault: Fault) -> bool {
        let Some(conn) = self.open_conn(ns) else {
            return false;
        };
        conn.inject(fault).await;
        true
    }

    /// Test-only: what the recovery of the netlink connection of `ns` did so far (`None`
    /// when `ns` is not open).
    #[doc(hidden)]
    pub fn netlink_counters(&self, ns: NsId) -> Option<NetlinkCounters> {
        self.open_conn(ns).map(|c| c.counters())
    }

    /// Marks the links it creates with `group` from now on (and owns the links in it); the
    /// transient deletion group becomes the one derived from it until
    /// [`Executor::set_delete_group`].
    pub fn set_link_group(&mut self, group: u32) {
        self.owner.group = group;
        self.owner.delete_group = crate::owned::marks::default_delete_group(group);
    }

    /// Deletes several links of a namespace through `group` from now on (and owns the links
    /// in it).
    pub fn set_delete_group(&mut self, group: u32) {
        self.owner.delete_group = group;
    }

    /// Runs a batch of independent operations concurrently; outcome `i` belongs to `ops[i]`.
    pub async fn execute(&mut self, ops: Vec<Op>) -> Vec<OpOutcome> {
        self.run_all(ops).await
    }

    async fn run_all(&self, ops: Vec<Op>) -> Vec<OpOutcome> {
        let _deaf = self.deafen(deaf::busy_namespaces(&ops));
        let mut done: Vec<(usize, OpOutcome)> = futures::stream::iter(ops.into_iter().enumerate())
            .map(|(i, op)| async move { (i, self.run(op).await) })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        done.sort_by_key(|(i, _)| *i);
        done.into_iter().map(|(_, outcome)| outcome).collect()
    }

    /// Runs a batch of independent route and neighbour operations concurrently; outcome `i`
    /// belongs to `ops[i]`.
    pub async fn execute_l3(&mut self, ops: Vec<L3Op>) -> Vec<L3Outcome> {
        let this = &*self;
        let _deaf = this.deafen(deaf::busy_l3_namespaces(&ops));
        let mut done: Vec<(usize, L3Outcome)> = futures::stream::iter(ops.into_iter().enumerate())
            .map(|(i, op)| async move { (i, this.run_l3(op).await) })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        done.sort_by_key(|(i, _)| *i);
        done.into_iter().map(|(_, outcome)| outcome).collect()
    }

    /// References resolved earlier whose namespace has disappeared or changed identity since.
    /// They are forgotten, and a namespace no remaining reference names is released (its
    /// socket and descriptor closed), so that the kernel can really free it.
    pub fn vanished_namespaces(&mut self) -> Vec<NamespaceRef> {
        let mut state = self.lock();
        let vanished: Vec<NamespaceRef> = state
            .refs
            .iter()
            .filter(|(r, id)| state.concrete(r).and_then(|c| netns::current_id(&c)) != Some(**id))
            .map(|(r, _)| r.clone())
            .collect();
        for r in &vanished {
            tracing::info!(reference = %r, "namespace went away");
            state.refs.remove(r);
        }
        if !vanished.is_empty() {
            state.version += 1;
            state.prune();
        }
        vanished
    }

    /// What to watch to notice early that a resolved namespace went away (the directories
    /// of namespace files, the processes of PID and microservice references), or `None`
    /// when the references have not changed since `seen` (which is updated).
    pub fn vanish_sources(&self, seen: &mut u64) -> Option<netns::VanishSources> {
        let state = self.lock();
        if state.version == *seen {
            return None;
        }
        *seen = state.version;
        let mut sources = netns::VanishSources::default();
        for r in state.refs.keys().filter_map(|r| state.concrete(r)) {
            match &r {
                NamespaceRef::Pid(pid) => {
                    sources.pids.insert(*pid);
                }
                other => {
                    let dir = netns::path_of(other).and_then(|p| p.parent().map(Into::into));
                    sources.dirs.extend(dir);
                }
            }
        }
        Some(sources)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn run(&self, op: Op) -> OpOutcome {
        match op {
            Op::L3(op) => OpOutcome::L3(self.run_l3(op).await),
            Op::ResolveNs { reference, create } => self.resolve(reference, create).await,
            Op::DumpNs { ns } => {
                let conn = match self.conn(ns) {
                    Ok(c) => c,
                    Err(failed) => return *failed,
                };
                match dump::owned_links(&conn, &self.owner).await {
                    Ok(links) => OpOutcome::Dumped { links },
                    Err(e) => OpOutcome::Failed {
                        kind: FailureKind::Other,
                        error: format!("cannot read the links of {}: {e}", conn.label()),
                    },
                }
            }
            Op::ReadLinks {
                ns,
                names,
                protocol,
            } => {
                let conn = match self.conn(ns) {
                    Ok(c) => c,
                    Err(failed) => return *failed,
                };
                match dump::foreign_links(&conn, &self.owner, &names, protocol).await {
                    Ok(links) => OpOutcome::LinksRead { links },
                    Err(e) => OpOutcome::Failed {
                        kind: FailureKind::Other,
                        error: format!("cannot read the links of {}: {e}", conn.label()),
                    },
                }
            }
            Op::CreatePair { a, b } => {
                let (ca, cb) = match (self.conn(a.ns), self.conn(b.ns)) {
                    (Ok(ca), Ok(cb)) => (ca, cb),
                    (Err(failed), _) | (_, Err(failed)) => return *failed,
                };
                let conns = create::PairConns { a: &ca, b: &cb };
                create::create_pair(conns, &a, &b, &self.owner).await
            }
            Op::CreateLink { end, kind } => match self.conn(end.ns) {
                Ok(conn) => create::create_single(&conn, &end, kind, &self.owner).await,
                Err(failed) => *failed,
            },
            Op::AdoptLink { from, ifindex, end } => {
                let (cf, ct) = match (self.conn(from), self.conn(end.ns)) {
                    (Ok(cf), Ok(ct)) => (cf, ct),
                    (Err(failed), _) | (_, Err(failed)) => return *failed,
                };
                let m = auto_tap::Move {
                    from: &cf,
                    to: &ct,
                    same: from == end.ns,
                };
                auto_tap::adopt_link(m, ifindex, &end).await
            }
            Op::ReturnLink {
                ns,
                ifindex,
                temp_name,
                to,
                addresses,
                ..
            } => {
                let (cf, ct) = match (self.conn(ns), self.conn(to)) {
                    (Ok(cf), Ok(ct)) => (cf, ct),
                    (Err(failed), _) | (_, Err(failed)) => return *failed,
                };
                let m = auto_tap::Move {
                    from: &cf,
                    to: &ct,
                    same: ns == to,
                };
                auto_tap::return_link(m, ifindex, &temp_name, &addresses).await
            }
            Op::UpdateLink {
                ns,
                ifindex,
                changes,
            } => match self.conn(ns) {
                Ok(conn) => update::update_link(&conn, ifindex, &changes).await,
                Err(failed) => *failed,
            },
            Op::DeleteLink { ns, ifindex, name } => match self.conn(ns) {
                Ok(conn) => update::delete_link(&conn, ifindex, &name).await,
                // A namespace that is gone took its links with it.
                Err(_) => OpOutcome::Deleted,
            },
            Op::DeleteLinks { ns, links } => {
                let outcomes = match self.conn(ns) {
                    Ok(conn) => delete::delete_links(&conn, &links, self.owner.delete_group).await,
                    Err(_) => vec![OpOutcome::Deleted; links.len()],
                };
                OpOutcome::EachDeleted { outcomes }
            }
            Op::ReleaseNs { ns } => {
                let mut state = self.lock();
                state.refs.retain(|_, id| *id != ns);
                state.conns.remove(&ns);
                state.version += 1;
                OpOutcome::Released
            }
        }
    }

    async fn run_l3(&self, op: L3Op) -> L3Outcome {
        let ns = op.ns();
        let Some(conn) = self.open_conn(ns) else {
            return match op {
                // A namespace that is gone took its routes and neighbours with it.
                L3Op::DeleteRoute { .. } | L3Op::DeleteNeighbour { .. } => L3Outcome::Done,
                _ => L3Outcome::Failed {
                    kind: FailureKind::NamespaceGone,
                    error: not_open(ns),
                },
            };
        };
        match op {
            L3Op::Dump { protocol, .. } => {
                conn.follow_routes();
                let read = futures::try_join!(
                    route::read_routes(&conn, protocol),
                    neigh::owned_neighbours(&conn, protocol),
                    dump::link_presence(&conn)
                );
                match read {
                    Ok((routes, neighbours, mut links)) => {
                        for (oif, dst) in routes.direct {
                            if let Some(l) = links.iter_mut().find(|l| l.ifindex == oif) {
                                l.direct_routes.push(dst);
                            }
                        }
                        for l in &mut links {
                            l.direct_routes.sort();
                            l.direct_routes.dedup();
                        }
                        L3Outcome::Dumped {
                            routes: routes.owned,
                            neighbours,
                            links,
                        }
                    }
                    Err(e) => L3Outcome::Failed {
                        kind: FailureKind::Other,
                        error: format!(
                            "cannot read the routes and neighbours of {}: {e}",
                            conn.label()
                        ),
                    },
                }
            }
            L3Op::AddRoute { route, .. } => route::write_route(&conn, &route, false).await,
            L3Op::ReplaceRoute { route, .. } => route::write_route(&conn, &route, true).await,
            L3Op::DeleteRoute { route, .. } => route::delete_route(&conn, &route).await,
            L3Op::SetNeighbour { neighbour, .. } => neigh::set_neighbour(&conn, &neighbour).await,
            L3Op::DeleteNeighbour { neighbour, .. } => {
                neigh::delete_neighbour(&conn, &neighbour).await
            }
        }
    }

    /// The open connection of `ns`, if any.
    fn open_conn(&self, ns: NsId) -> Option<Arc<NsConn>> {
        self.lock().conns.get(&ns).cloned()
    }

    /// Stops the event sockets of `namespaces` from receiving until the guards are dropped
    /// (then each namespace is read again; see [`deaf`]).
    fn deafen(&self, namespaces: Vec<NsId>) -> Vec<events::Deaf> {
        if !namespaces.is_empty() {
            tracing::debug!(
                namespaces = namespaces.len(),
                "not listening to kernel events during a large batch"
            );
        }
        namespaces
            .into_iter()
            .filter_map(|ns| self.open_conn(ns)?.deafen())
            .collect()
    }

    /// The open connection of `ns`, or the outcome that says it is not open.
    fn conn(&self, ns: NsId) -> Result<Arc<NsConn>, Box<OpOutcome>> {
        self.open_conn(ns).ok_or_else(|| {
            Box::new(OpOutcome::Failed {
                kind: FailureKind::NamespaceGone,
                error: not_open(ns),
            })
        })
    }

    /// Records where a microservice runs (`None`: it stopped). A reference to it that was
    /// resolved before is forgotten (and its connection dropped, so that a dead container's
    /// namespace is freed); the caller tells the scheduler.
    pub fn set_microservice(&mut self, label: &str, pid: Option<u32>) {
        let mut state = self.lock();
        match pid {
            Some(pid) => state.microservices.insert(label.to_string(), pid),
            None => state.microservices.remove(label),
        };
        state.version += 1;
        state
            .refs
            .remove(&NamespaceRef::Microservice(label.to_string()));
        state.prune();
    }

    async fn resolve(&self, reference: NamespaceRef, create: bool) -> OpOutcome {
        let concrete = self.lock().concrete(&reference);
        let Some(r) = concrete else {
            return OpOutcome::NsUnavailable {
                reason: format!("{reference} is not running"),
                invalid: false,
            };
        };
        let resolved = match tokio::task::spawn_blocking(move || netns::resolve(&r, create)).await {
            Ok(Ok(ns)) => ns,
            Ok(Err(e)) => {
                return OpOutcome::NsUnavailable {
                    invalid: matches!(e, netns::NsError::NotANamespace(_)),
                    reason: e.to_string(),
                }
            }
            Err(e) => {
                return OpOutcome::Failed {
                    kind: FailureKind::Other,
                    error: format!("cannot resolve {reference}: {e}"),
                }
            }
        };
        let id = resolved.id;
        if !self.lock().conns.contains_key(&id) {
            // Two references to one namespace share one connection: a connection opened
            // concurrently by someone else wins, ours is dropped.
            let label = format!("{reference} ({id})");
            // Subscribed before anything reads the namespace: no change falls in between.
            let events = events::subscribe(
                &resolved,
                id,
                label.clone(),
                self.events_tx.clone(),
                self.event_rcvbuf,
            )
            .await;
            let events = match events {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!("{label}: {e}; changes there are found by re-reads only");
                    None
                }
            };
            match NsConn::open(resolved, label, events, self.request_timeout).await {
                Ok(conn) => {
                    self.lock()
                        .conns
                        .entry(id)
                        .or_insert_with(|| Arc::new(conn));
                }
                Err(e) => {
                    return OpOutcome::Failed {
                        kind: FailureKind::Other,
                        error: format!("cannot open {reference} ({id}): {e}"),
                    }
                }
            }
        }
        let mut state = self.lock();
        state.version += 1;
        if state
            .refs
            .insert(reference, id)
            .is_some_and(|old| old != id)
        {
            // The reference names another namespace now: release the old one if unused.
            state.prune();
        }
        OpOutcome::NsResolved { ns: id }
    }
}

impl Kernel for Executor {
    fn execute(
        &mut self,
        ops: Vec<Op>,
    ) -> impl std::future::Future<Output = Vec<OpOutcome>> + Send {
        self.run_all(ops)
    }
}

/// Why an operation on `ns` cannot run.
fn not_open(ns: NsId) -> String {
    format!("namespace {ns} is not open (gone or not resolved)")
}
