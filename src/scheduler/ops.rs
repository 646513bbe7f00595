//! What the scheduler asks the executor to do, and what the executor answers.

use crate::kernel::{KernelLink, NsId};
use crate::model::{MacAddr, NamespaceRef};
use ipnet::IpNet;

pub use crate::model::link::OwnedLink;

/// One link to create: a VETH end, or a single owned link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndSpec {
    /// Namespace the end is created in.
    pub ns: NsId,
    /// Host name.
    pub name: String,
    /// Ownership alias (`/vnf-agent/<label>/<name>/<peer>`, `/vnf-agent/<label>/<name>` for
    /// a single link).
    pub alias: String,
    /// MTU; 0 = kernel default.
    pub mtu: u32,
    /// MAC; `None` = a random one (chosen by the executor for a VETH end, by the kernel for
    /// other kinds).
    pub mac: Option<MacAddr>,
    /// Admin up.
    pub up: bool,
    /// Addresses to add after creation.
    pub addresses: Vec<IpNet>,
    /// Index of the VRF to enslave it to (in its namespace); 0 for none.
    pub master: u32,
}

/// In-place changes of one existing link. `None`/empty = leave as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkChanges {
    /// New host name (the executor takes the link down around the rename when it is up).
    pub rename: Option<String>,
    /// New alias.
    pub alias: Option<String>,
    /// New MTU.
    pub mtu: Option<u32>,
    /// New MAC.
    pub mac: Option<MacAddr>,
    /// New admin state.
    pub up: Option<bool>,
    /// New master (a VRF's index; 0 to release it).
    pub master: Option<u32>,
    /// Addresses to add.
    pub add_addresses: Vec<IpNet>,
    /// Addresses to remove.
    pub del_addresses: Vec<IpNet>,
    /// New link group (a link left in the transient deletion group goes back to the
    /// agent's own).
    pub group: Option<u32>,
    /// Mark the added addresses with this protocol (`IFA_PROTO`): on a link the agent does
    /// not own, so that it later removes only the addresses it added.
    pub address_mark: Option<u8>,
}

impl LinkChanges {
    /// True when nothing would change.
    pub fn is_empty(&self) -> bool {
        self.rename.is_none()
            && self.alias.is_none()
            && self.mtu.is_none()
            && self.mac.is_none()
            && self.up.is_none()
            && self.master.is_none()
            && self.add_addresses.is_empty()
            && self.del_addresses.is_empty()
            && self.group.is_none()
    }
}

/// An operation for the executor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Resolve a namespace reference to an id and keep it open; with `create`, make a missing
    /// named namespace the way `ip netns add` does.
    ResolveNs {
        /// The reference.
        reference: NamespaceRef,
        /// Create a missing named namespace.
        create: bool,
    },
    /// Read every link of the namespace owned by this agent (alias prefix or link group).
    DumpNs {
        /// Namespace to read.
        ns: NsId,
    },
    /// Read the links of the namespace the agent does not own but works with: those named
    /// in `names` (EXISTING, LOOPBACK) and those carrying an address marked with
    /// `protocol`. Answered with [`OpOutcome::LinksRead`].
    ReadLinks {
        /// Namespace to read.
        ns: NsId,
        /// Host names of the links wanted.
        names: Vec<String>,
        /// The agent's address mark (`IFA_PROTO`).
        protocol: u8,
    },
    /// Create a VETH pair in one request, both ends placed in their namespaces, then mark and
    /// configure both ends.
    CreatePair {
        /// One end.
        a: EndSpec,
        /// The other end.
        b: EndSpec,
    },
    /// Create a single owned link (dummy, TAP, VRF) in its namespace, then mark and
    /// configure it.
    CreateLink {
        /// The link.
        end: EndSpec,
        /// What to create.
        kind: OwnedLink,
    },
    /// Take over a link another program made (an AUTO_TAP's TAP): mark it with the alias
    /// while it still has its temporary name, move it into `end`'s namespace under `end`'s
    /// name in one request, then configure it like a created link. Answered with
    /// [`OpOutcome::Created`].
    AdoptLink {
        /// The namespace it is in (the agent's own).
        from: NsId,
        /// Its index there.
        ifindex: u32,
        /// What it becomes.
        end: EndSpec,
    },
    /// Give back a link the agent took over: remove its addresses, move it into `to` under
    /// `temp_name` and remove the alias. Answered with [`OpOutcome::Deleted`] (it left the
    /// agent's hands).
    ReturnLink {
        /// The namespace it is in.
        ns: NsId,
        /// Its index.
        ifindex: u32,
        /// Its host name, for logs.
        name: String,
        /// Its name before the agent took it over.
        temp_name: String,
        /// The namespace it came from (the agent's own).
        to: NsId,
        /// Its addresses, to remove.
        addresses: Vec<IpNet>,
    },
    /// Change an existing owned link in place.
    UpdateLink {
        /// Namespace of the link.
        ns: NsId,
        /// Its index.
        ifindex: u32,
        /// What to change.
        changes: LinkChanges,
    },
    /// Delete an owned link (for a VETH end, the kernel deletes the peer too).
    DeleteLink {
        /// Namespace of the link.
        ns: NsId,
        /// Its index.
        ifindex: u32,
        /// Its host name, for logs.
        name: String,
    },
    /// Delete several owned links of one namespace together: each is moved into the agent's
    /// transient deletion group, then the whole group is deleted in one request (a VETH end
    /// takes its peer along). Answered with [`OpOutcome::EachDeleted`].
    DeleteLinks {
        /// Namespace of the links.
        ns: NsId,
        /// The links, by index.
        links: Vec<LinkRef>,
    },
    /// A route or neighbour operation.
    L3(l3::L3Op),
    /// Close the executor's socket and descriptor of a namespace that went away or is no
    /// longer referenced (an open socket keeps a dead namespace alive).
    ReleaseNs {
        /// The namespace.
        ns: NsId,
    },
}

impl Op {
    /// The links a create operation makes.
    pub fn created_ends(&self) -> Vec<&EndSpec> {
        match self {
            Op::CreatePair { a, b } => vec![a, b],
            Op::CreateLink { end, .. } | Op::AdoptLink { end, .. } => vec![end],
            _ => Vec::new(),
        }
    }

    /// The namespaces the operation acts in (none for resolving a reference).
    pub fn namespaces(&self) -> Vec<NsId> {
        match self {
            Op::CreatePair { a, b } => vec![a.ns, b.ns],
            Op::CreateLink { end, .. } => vec![end.ns],
            Op::AdoptLink { from, end, .. } => vec![*from, end.ns],
            Op::ReturnLink { ns, to, .. } => vec![*ns, *to],
            Op::UpdateLink { ns, .. }
            | Op::DeleteLink { ns, .. }
            | Op::DeleteLinks { ns, .. }
            | Op::DumpNs { ns }
            | Op::ReadLinks { ns, .. }
            | Op::ReleaseNs { ns } => vec![*ns],
            Op::L3(op) => vec![op.ns()],
            Op::ResolveNs { .. } => Vec::new(),
        }
    }

    /// True for the operations that change the kernel (not reads, resolutions, releases).
    pub fn writes(&self) -> bool {
        match self {
            Op::CreatePair { .. }
            | Op::CreateLink { .. }
            | Op::AdoptLink { .. }
            | Op::ReturnLink { .. }
            | Op::UpdateLink { .. }
            | Op::DeleteLink { .. }
            | Op::DeleteLinks { .. } => true,
            Op::L3(op) => !matches!(op, l3::L3Op::Dump { .. }),
            Op::ResolveNs { .. }
            | Op::DumpNs { .. }
            | Op::ReadLinks { .. }
            | Op::ReleaseNs { .. } => false,
        }
    }
}

/// A link named by its index, with its host name for logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkRef {
    /// Its index.
    pub ifindex: u32,
    /// Its host name.
    pub name: String,
}

/// An operation with its outcome as one per link: [`Op::DeleteLinks`] becomes the
/// [`Op::DeleteLink`] of each of its links with that link's outcome (what the scheduler,
/// the journal and the metrics account), anything else stays as it is.
pub fn per_link(op: Op, outcome: OpOutcome) -> Vec<(Op, OpOutcome)> {
    let Op::DeleteLinks { ns, links } = op else {
        return vec![(op, outcome)];
    };
    let outcomes = match outcome {
        OpOutcome::EachDeleted { outcomes } if outcomes.len() == links.len() => outcomes,
        failed @ OpOutcome::Failed { .. } => vec![failed; links.len()],
        other => {
            let failed = OpOutcome::Failed {
                kind: FailureKind::Other,
                error: format!("unexpected answer to a group deletion: {other:?}"),
            };
            vec![failed; links.len()]
        }
    };
    links
        .into_iter()
        .zip(outcomes)
        .map(|(l, outcome)| {
            let op = Op::DeleteLink {
                ns,
                ifindex: l.ifindex,
                name: l.name,
            };
            (op, outcome)
        })
        .collect()
}

/// Why an operation failed, as far as the scheduler needs to know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// A link the agent does not own already has the name.
    Conflict,
    /// The namespace is gone (or its descriptor is no longer usable).
    NamespaceGone,
    /// The link to change or delete does not exist (any more).
    LinkGone,
    /// Anything else (retry with backoff).
    Other,
}

/// The result of one [`Op`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpOutcome {
    /// `ResolveNs` succeeded.
    NsResolved {
        /// The namespace's identity.
        ns: NsId,
    },
    /// `ResolveNs` failed: the reference does not name a usable namespace (now).
    NsUnavailable {
        /// Why, for the item's status.
        reason: String,
        /// The reference names something that exists but is not a network namespace: an
        /// error in the item's value rather than a requirement to wait for.
        invalid: bool,
    },
    /// `DumpNs` result.
    Dumped {
        /// Every owned link in the namespace.
        links: Vec<KernelLink>,
    },
    /// `ReadLinks` result.
    LinksRead {
        /// The links asked for that exist, and the links with marked addresses, with their
        /// addresses and `marked_addresses`.
        links: Vec<KernelLink>,
    },
    /// `CreatePair` result: both ends as they now are.
    PairCreated {
        /// End `a`.
        a: KernelLink,
        /// End `b`.
        b: KernelLink,
    },
    /// `CreateLink` and `AdoptLink` result: the link as it now is.
    Created {
        /// The link.
        link: KernelLink,
    },
    /// `UpdateLink` result: the link as it now is.
    Updated {
        /// The link.
        link: KernelLink,
    },
    /// `DeleteLink` or `ReturnLink` succeeded (or the link was already gone).
    Deleted,
    /// `DeleteLinks` result: outcome `i` ([`OpOutcome::Deleted`] or [`OpOutcome::Failed`])
    /// belongs to link `i`.
    EachDeleted {
        /// One per link.
        outcomes: Vec<OpOutcome>,
    },
    /// `ReleaseNs` done.
    Released,
    /// Result of an [`Op::L3`].
    L3(l3::L3Outcome),
    /// The operation failed.
    Failed {
        /// Classification.
        kind: FailureKind,
        /// Message for the item's status and the log.
        error: String,
    },
}

/// Route and neighbour operations.
pub mod l3 {
    use crate::kernel::{KernelNeighbour, KernelRoute, LinkPresence, NsId};

    /// An operation on routes or neighbour entries of one namespace.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub enum L3Op {
        /// Read every route carrying `protocol` (all tables), every neighbour entry carrying
        /// `protocol` in `NDA_PROTOCOL`, and every link (owned or not) with its addresses.
        Dump {
            /// Namespace.
            ns: NsId,
            /// The agent's routing-protocol number.
            protocol: u8,
        },
        /// Create a route, failing if one with the same (table, dst, metric) exists
        /// (`NLM_F_CREATE|NLM_F_EXCL`).
        AddRoute {
            /// Namespace.
            ns: NsId,
            /// The route (its `protocol` set).
            route: KernelRoute,
        },
        /// Create or replace the route with the same (table, dst, metric)
        /// (`NLM_F_CREATE|NLM_F_REPLACE`).
        ReplaceRoute {
            /// Namespace.
            ns: NsId,
            /// The route (its `protocol` set).
            route: KernelRoute,
        },
        /// Delete exactly this route (ESRCH/ENOENT count as success).
        DeleteRoute {
            /// Namespace.
            ns: NsId,
            /// The route as dumped.
            route: KernelRoute,
        },
        /// Create or replace a neighbour entry (`NLM_F_CREATE|NLM_F_REPLACE`).
        SetNeighbour {
            /// Namespace.
            ns: NsId,
            /// The entry (its `protocol` set).
            neighbour: KernelNeighbour,
        },
        /// Delete a neighbour entry (ENOENT counts as success).
        DeleteNeighbour {
            /// Namespace.
            ns: NsId,
            /// The entry as dumped.
            neighbour: KernelNeighbour,
        },
    }

    impl L3Op {
        /// True for the operations that add or change something (not reads or deletes).
        pub fn puts(&self) -> bool {
            matches!(
                self,
                L3Op::AddRoute { .. } | L3Op::ReplaceRoute { .. } | L3Op::SetNeighbour { .. }
            )
        }

        /// The destination of the route or the address (as a host prefix) of the entry it
        /// writes or deletes; `None` for a dump.
        pub fn target(&self) -> Option<ipnet::IpNet> {
            match self {
                L3Op::Dump { .. } => None,
                L3Op::AddRoute { route, .. }
                | L3Op::ReplaceRoute { route, .. }
                | L3Op::DeleteRoute { route, .. } => Some(route.dst),
                L3Op::SetNeighbour { neighbour, .. } | L3Op::DeleteNeighbour { neighbour, .. } => {
                    Some(ipnet::IpNet::from(neighbour.ip))
                }
            }
        }

        /// The namespace the operation acts in.
        pub fn ns(&self) -> NsId {
            match self {
                L3Op::Dump { ns, .. }
                | L3Op::AddRoute { ns, .. }
                | L3Op::ReplaceRoute { ns, .. }
                | L3Op::DeleteRoute { ns, .. }
                | L3Op::SetNeighbour { ns, .. }
                | L3Op::DeleteNeighbour { ns, .. } => *ns,
            }
        }
    }

    /// The result of one [`L3Op`].
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub enum L3Outcome {
        /// `Dump` result.
        Dumped {
            /// Owned routes.
            routes: Vec<KernelRoute>,
            /// Owned neighbour entries.
            neighbours: Vec<KernelNeighbour>,
            /// Every link of the namespace.
            links: Vec<LinkPresence>,
        },
        /// A write succeeded.
        Done,
        /// The operation failed.
        Failed {
            /// Classification.
            kind: super::FailureKind,
            /// Message naming the object and the errno text.
            error: String,
        },
    }
}
