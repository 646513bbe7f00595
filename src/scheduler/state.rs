//! The scheduler's shared bookkeeping: what it believes about namespaces and the kernel,
//! the statuses it keeps, and the plain types its planning phases (`plan`, `l3`, `quiet`,
//! `drift`, `report`) pass each other. A leaf: it imports none of them.

use super::ops::Op;
use super::ItemStatus;
use crate::backoff::Backoff;
use crate::kernel::{KernelLink, KernelNeighbour, KernelRoute, LinkPresence, NsId};
use crate::keys::ItemKind;
use ipnet::IpNet;
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// What the scheduler knows about a namespace reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum RefState {
    /// It names this namespace (the executor holds it open).
    Resolved(NsId),
    /// It names no usable namespace now.
    Unavailable {
        /// Why, for the status of the items that wait for it.
        reason: String,
        /// It names something that is not a network namespace (an error, not a wait).
        invalid: bool,
        /// When to look again.
        backoff: Backoff,
        /// A missing named namespace may be created (false after it vanished while in use,
        /// until the configuration referring to it is written again).
        allow_create: bool,
        /// The last attempt was allowed to create it.
        tried_create: bool,
    },
}

/// What the scheduler believes one namespace holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum View {
    /// Not read yet (or must be read again).
    Unknown,
    /// The owned links, by ifindex.
    Known(BTreeMap<u32, KernelLink>),
}

/// What the scheduler believes of the links of one namespace that it works with but does not
/// own (EXISTING and LOOPBACK links, and links still carrying addresses it added).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Foreign {
    /// The host names asked for when it was read.
    pub names: BTreeSet<String>,
    /// The links found, by index.
    pub links: BTreeMap<u32, KernelLink>,
}

/// The item (by name) each link update of a plan is for, by namespace and link index.
pub(super) type LinkWrites = HashMap<(NsId, u32), String>;

/// An owned link and the item it belongs to.
pub(super) struct Claim<'a> {
    /// Its namespace.
    pub ns: NsId,
    /// The link.
    pub link: &'a KernelLink,
    /// The peer named in its alias; `None` for a link adopted by name (marked by the group
    /// only, because the agent stopped between creating and aliasing it).
    pub alias_peer: Option<&'a str>,
}

/// Item statuses, updated in place; remembers which changed.
pub(super) struct StatusBook {
    pub(super) map: HashMap<(ItemKind, String), ItemStatus>,
    pub(super) changed: Vec<(ItemKind, String)>,
    /// Scratch key, so that looking up an existing status allocates nothing.
    pub(super) probe: (ItemKind, String),
}

impl StatusBook {
    /// A book over `map` that adds to `changed`.
    pub(super) fn new(
        map: HashMap<(ItemKind, String), ItemStatus>,
        changed: Vec<(ItemKind, String)>,
    ) -> Self {
        StatusBook {
            map,
            changed,
            probe: (ItemKind::Interface, String::new()),
        }
    }

    /// Sets the status of an interface.
    pub(super) fn set(&mut self, name: &str, status: ItemStatus) {
        self.set_kind(ItemKind::Interface, name, status);
    }

    /// For an item whose kernel state is left as it is this round: keeps the status it has,
    /// or sets `status` when it has none yet.
    pub(super) fn hold_kind(&mut self, kind: ItemKind, name: &str, status: ItemStatus) {
        let keep = matches!(status, ItemStatus::Pending { .. })
            && self.map.contains_key(&(kind, name.to_string()));
        if !keep {
            self.set_kind(kind, name, status);
        }
    }

    /// Sets the status of an item of any kind.
    pub(super) fn set_kind(&mut self, kind: ItemKind, name: &str, status: ItemStatus) {
        self.probe.0 = kind;
        self.probe.1.clear();
        self.probe.1.push_str(name);
        match self.map.get_mut(&self.probe) {
            Some(old) if *old == status => {}
            Some(old) => {
                *old = status;
                self.changed.push(self.probe.clone());
            }
            None => {
                self.map.insert(self.probe.clone(), status);
                self.changed.push(self.probe.clone());
            }
        }
    }
}

/// What routes and neighbour entries may assume about a configured interface this round.
#[derive(Clone, Debug)]
pub(super) enum IfaceState<'a> {
    /// Applied as configured: its link in its namespace.
    Usable { ns: NsId, link: &'a KernelLink },
    /// Being applied, held, or retried: leave what depends on it as it is.
    Busy,
    /// Not applied; why.
    Absent(String),
}

/// What the scheduler believes one namespace holds in routes and neighbour entries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum L3View {
    /// Not read yet (or must be read again).
    Unknown,
    /// The owned routes and entries, and every link with its addresses.
    Known {
        routes: Vec<KernelRoute>,
        neighbours: Vec<KernelNeighbour>,
        links: Vec<LinkPresence>,
    },
}

/// The object one route or neighbour write is about, to find its item when it fails.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) enum L3Target {
    Route(NsId, RouteKey),
    Neighbour(NsId, u32, IpAddr),
}

/// Which item each write of a plan was for.
pub(super) type L3Writes = HashMap<L3Target, (ItemKind, String)>;

/// Identity of a route in the kernel (its FIB key): table, destination, metric.
pub(super) type RouteKey = (u32, IpNet, u32);

pub(super) fn route_key(r: &KernelRoute) -> RouteKey {
    (r.table, r.dst, r.metric)
}

/// The link operations a plan collects, and what routes may assume of each interface.
pub(super) struct Work<'a> {
    /// Owned links to delete.
    pub deletes: Vec<(NsId, &'a KernelLink)>,
    /// In-place changes.
    pub updates: Vec<Op>,
    /// Creations.
    pub creates: Vec<Op>,
    /// The item each link update is for.
    pub link_writes: LinkWrites,
    /// What routes and entries may assume of each interface.
    pub ifaces: HashMap<&'a str, IfaceState<'a>>,
    /// Found links (EXISTING, LOOPBACK) an item configures, by namespace and index: their
    /// marked addresses are the item's to keep or remove.
    pub found: HashSet<(NsId, u32)>,
}

impl<'a> Work<'a> {
    /// Work that starts with deleting `orphans`.
    pub(super) fn new(orphans: Vec<(NsId, &'a KernelLink)>) -> Self {
        Work {
            deletes: orphans,
            updates: Vec::new(),
            creates: Vec::new(),
            link_writes: HashMap::default(),
            ifaces: HashMap::default(),
            found: HashSet::default(),
        }
    }
}
