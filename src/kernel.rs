//! Plain data describing kernel objects, shared by the scheduler (which reasons about them)
//! and the executor (which reads and writes them). No I/O here.

use crate::model::MacAddr;
use ipnet::IpNet;
use std::fmt;

/// Identity of a network namespace: device and inode of its nsfs file. Two references to the
/// same namespace (a named one and `/proc/<pid>/ns/net` of a process inside it) have one id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NsId {
    /// `st_dev` of the namespace file.
    pub dev: u64,
    /// `st_ino` of the namespace file.
    pub ino: u64,
}

impl fmt::Display for NsId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "net:[{}]", self.ino)
    }
}

impl fmt::Debug for NsId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NsId({}:{})", self.dev, self.ino)
    }
}

/// A link as read from (or written to) the kernel, limited to what the agent manages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelLink {
    /// Interface index inside its namespace.
    pub ifindex: u32,
    /// Host name.
    pub name: String,
    /// `IFLA_IFALIAS`, when set.
    pub alias: Option<String>,
    /// `IFLA_GROUP`.
    pub group: u32,
    /// MTU.
    pub mtu: u32,
    /// Hardware address.
    pub mac: Option<MacAddr>,
    /// Admin state (`IFF_UP`).
    pub up: bool,
    /// Addresses, without those the kernel makes itself (IPv6 link-local, from router
    /// advertisements), sorted.
    pub addresses: Vec<IpNet>,
    /// Its kind (`IFLA_INFO_KIND`: `veth`, `dummy`, `vrf`, `tun`, ...); "" when unknown.
    pub kind: String,
    /// Index of its master (the VRF it is enslaved to); 0 for none.
    pub master: u32,
    /// The routing table of a VRF.
    pub vrf_table: Option<u32>,
    /// Those of `addresses` the agent added to a link it does not own, marked with its
    /// protocol (`IFA_PROTO`), sorted; read only for such links (empty otherwise).
    pub marked_addresses: Vec<IpNet>,
}

#[cfg(test)]
impl KernelLink {
    /// An up veth link `name` at `ifindex` with MTU 1500 and nothing else set (tests).
    pub(crate) fn veth(ifindex: u32, name: &str) -> KernelLink {
        KernelLink {
            ifindex,
            name: name.into(),
            alias: None,
            group: 0,
            mtu: 1500,
            mac: None,
            up: true,
            addresses: Vec::new(),
            kind: "veth".into(),
            master: 0,
            vrf_table: None,
            marked_addresses: Vec::new(),
        }
    }
}

/// A route as read from (or written to) the kernel, limited to what the agent manages.
/// Identity in the kernel (the FIB key) is (table, destination, metric); gateway, source,
/// scope and outgoing interface are attributes that can be replaced in place.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KernelRoute {
    /// Routing table id (254 = main).
    pub table: u32,
    /// Destination prefix (`0.0.0.0/0` / `::/0` for default routes).
    pub dst: IpNet,
    /// Gateway.
    pub gateway: Option<std::net::IpAddr>,
    /// Preferred source address.
    pub source: Option<std::net::IpAddr>,
    /// Priority (metric). IPv6 routes with no metric are reported as 1024 by the kernel.
    pub metric: u32,
    /// `rtm_scope` (0 universe, 200 site, 253 link, 254 host).
    pub scope: u8,
    /// Outgoing interface index, 0 when none.
    pub oif: u32,
    /// `rtm_protocol`: the agent's own number marks its routes.
    pub protocol: u8,
}

/// A neighbour (ARP/NDP) entry as read from (or written to) the kernel.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KernelNeighbour {
    /// Interface index.
    pub ifindex: u32,
    /// Neighbour IP address.
    pub ip: std::net::IpAddr,
    /// Link-layer address.
    pub mac: Option<MacAddr>,
    /// `ndm_state` (NUD_PERMANENT 0x80, NUD_NOARP 0x40, NUD_REACHABLE 0x02, NUD_STALE 0x04).
    pub state: u16,
    /// `NDA_PROTOCOL`, when set: the agent's own number marks its entries.
    pub protocol: Option<u8>,
}

/// Every link of a namespace by name, owned or not: routes and neighbour entries may use links
/// the agent does not own (`lo`, `eth0`), so the scheduler needs to know they exist and are up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkPresence {
    /// Interface index.
    pub ifindex: u32,
    /// Host name.
    pub name: String,
    /// Admin state (`IFF_UP`).
    pub up: bool,
    /// Addresses (for gateway reachability), without those the kernel makes itself.
    pub addresses: Vec<IpNet>,
    /// Destinations of the direct routes through this link that are not the agent's (a
    /// link-scope route added by hand also makes a gateway reachable), sorted.
    pub direct_routes: Vec<IpNet>,
}

/// The main routing table (also what table 0 means).
const RT_TABLE_MAIN: u32 = 254;

impl fmt::Display for KernelRoute {
    /// `dst via gw src s dev index N table T metric M scope S proto P`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.dst)?;
        if let Some(gw) = self.gateway {
            write!(f, " via {gw}")?;
        }
        if let Some(src) = self.source {
            write!(f, " src {src}")?;
        }
        if self.oif != 0 {
            write!(f, " dev index {}", self.oif)?;
        }
        let table = if self.table == 0 {
            RT_TABLE_MAIN
        } else {
            self.table
        };
        write!(
            f,
            " table {table} metric {} scope {} proto {}",
            self.metric, self.scope, self.protocol
        )
    }
}

impl fmt::Display for KernelNeighbour {
    /// `ip lladdr mac dev index N state S proto P`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.ip)?;
        if let Some(mac) = self.mac {
            write!(f, " lladdr {mac}")?;
        }
        write!(f, " dev index {} state ", self.ifindex)?;
        match self.state {
            0x01 => f.write_str("incomplete")?,
            0x02 => f.write_str("reachable")?,
            0x04 => f.write_str("stale")?,
            0x08 => f.write_str("delay")?,
            0x10 => f.write_str("probe")?,
            0x20 => f.write_str("failed")?,
            0x40 => f.write_str("noarp")?,
            0x80 => f.write_str("permanent")?,
            bits => write!(f, "{bits:#x}")?,
        }
        if let Some(p) = self.protocol {
            write!(f, " proto {p}")?;
        }
        Ok(())
    }
}

/// A change the kernel reported in one namespace (netlink multicast groups), in the agent's
/// terms. Addresses the kernel makes itself are left out, as in dumps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelEvent {
    /// A link appeared or changed (`RTM_NEWLINK`); its addresses are left empty.
    Link(KernelLink),
    /// A link went away or left the namespace (`RTM_DELLINK`).
    LinkGone {
        /// Its index.
        ifindex: u32,
    },
    /// An address was added to (`true`) or removed from a link.
    Address {
        /// The link's index.
        ifindex: u32,
        /// The address.
        net: IpNet,
        /// Added (`RTM_NEWADDR`) or removed (`RTM_DELADDR`).
        added: bool,
    },
    /// A route was added or changed (`true`) or deleted.
    Route {
        /// The route.
        route: KernelRoute,
        /// Added or changed (`RTM_NEWROUTE`), or deleted (`RTM_DELROUTE`).
        added: bool,
    },
    /// A neighbour entry was added or changed (`true`) or deleted.
    Neighbour {
        /// The entry.
        neighbour: KernelNeighbour,
        /// Added or changed (`RTM_NEWNEIGH`), or deleted (`RTM_DELNEIGH`).
        added: bool,
    },
    /// The kernel dropped events for this namespace (ENOBUFS): read it again in full.
    Overrun,
}

/// The object a [`KernelEvent`] is about: only the latest event of each object tells
/// its state (earlier ones are steps on the way).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventSubject {
    /// A link, by index (appeared, changed or gone).
    Link(u32),
    /// An address of a link.
    Address(u32, IpNet),
    /// A route, by table, destination and metric.
    Route(u32, IpNet, u32),
    /// A neighbour entry, by link and address.
    Neighbour(u32, std::net::IpAddr),
    /// The whole namespace (events were lost).
    Overrun,
}

impl KernelEvent {
    /// The object this event is about.
    pub fn subject(&self) -> EventSubject {
        match self {
            KernelEvent::Link(l) => EventSubject::Link(l.ifindex),
            KernelEvent::LinkGone { ifindex } => EventSubject::Link(*ifindex),
            KernelEvent::Address { ifindex, net, .. } => EventSubject::Address(*ifindex, *net),
            KernelEvent::Route { route, .. } => {
                EventSubject::Route(route.table, route.dst, route.metric)
            }
            KernelEvent::Neighbour { neighbour, .. } => {
                EventSubject::Neighbour(neighbour.ifindex, neighbour.ip)
            }
            KernelEvent::Overrun => EventSubject::Overrun,
        }
    }
}

/// Events of one namespace, in the order the kernel sent them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NsEvents {
    /// The namespace.
    pub ns: NsId,
    /// Its events.
    pub events: Vec<KernelEvent>,
}
