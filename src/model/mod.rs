//! The configuration model: typed, validated values decoded from the JSON users write.
//!
//! Decoding rules (see `../shared/model.md`): field names in snake_case (also in any letter
//! case, as Go matched them), lowerCamelCase or kebab-case; enums by number or name; unknown,
//! doubled or mistyped fields are errors naming the field (and the closest known one); zero
//! values mean "not set". Three kinds of value: [`Interface`], [`Route`] and [`ArpEntry`];
//! `to_canonical_json` gives each one's canonical form back.

mod accept;
mod arp;
mod decode;
mod encode;
mod fields;
mod json;
pub mod link;
mod route;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_arp;
#[cfg(test)]
mod tests_fuzz;
#[cfg(test)]
mod tests_route;
mod validate;

pub use accept::accept_value;
pub use arp::decode_arp;
pub use decode::{decode_interface, decode_namespace, decode_value};
pub use route::decode_route;
pub use validate::host_name_conflict;

use std::fmt;
use std::path::PathBuf;

/// A MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl std::str::FromStr for MacAddr {
    type Err = String;

    /// Parses six hex byte pairs separated by `:` or `-` (either case), e.g. `d2:74:8c:12:67:d2`.
    fn from_str(s: &str) -> Result<Self, String> {
        let separator = if s.contains('-') { '-' } else { ':' };
        let mut bytes = [0u8; 6];
        let mut parts = s.split(separator);
        for byte in &mut bytes {
            *byte = parts
                .next()
                .filter(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
                .and_then(|p| u8::from_str_radix(p, 16).ok())
                .ok_or_else(|| mac_syntax_error(s))?;
        }
        match parts.next() {
            Some(_) => Err(mac_syntax_error(s)),
            None => Ok(MacAddr(bytes)),
        }
    }
}

fn mac_syntax_error(s: &str) -> String {
    format!(
        "{} is not a MAC address such as `d2:74:8c:12:67:d2`",
        json::quote(s)
    )
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Where an item lives. Zero values are normalised away: every spelling of "the agent's own
/// namespace" decodes to [`NamespaceRef::Default`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NamespaceRef {
    /// The agent's own network namespace.
    Default,
    /// `/proc/<pid>/ns/net` (PID_REF_NS with a non-zero pid).
    Pid(u32),
    /// The namespace of the running Docker container labelled `MICROSERVICE_LABEL=<label>`.
    Microservice(String),
    /// `/var/run/netns/<name>` (NAMED_NS with a non-empty name); created when missing.
    Named(String),
    /// Any file that is a network namespace (FILE_REF_NS with a non-empty path).
    File(PathBuf),
}

impl fmt::Display for NamespaceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NamespaceRef::Default => write!(f, "default namespace"),
            NamespaceRef::Pid(p) => write!(f, "namespace of pid {p}"),
            NamespaceRef::Microservice(l) => write!(f, "microservice {l}"),
            NamespaceRef::Named(n) => write!(f, "named namespace {n}"),
            NamespaceRef::File(p) => write!(f, "namespace file {}", p.display()),
        }
    }
}

/// One Linux interface, decoded and validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    /// Logical name; equals the key's last segment.
    pub name: String,
    /// Free text, informational.
    pub description: String,
    /// Admin state: up when true.
    pub enabled: bool,
    /// Addresses with prefix length, in the order given, without duplicates.
    pub ip_addresses: Vec<ipnet::IpNet>,
    /// MAC address; `None` lets the kernel choose.
    pub phys_address: Option<MacAddr>,
    /// MTU; 0 leaves the kernel's default.
    pub mtu: u32,
    /// Name of the link in the kernel (already defaulted to `name` when empty).
    pub host_if_name: String,
    /// Where the link lives.
    pub namespace: NamespaceRef,
    /// Logical name of the VRF_DEVICE interface the link is enslaved to; "" for none.
    pub vrf_master_interface: String,
    /// What kind of link it is, with the kind's own data (`type` and its fields).
    pub link: link::LinkKind,
}

impl Interface {
    /// The logical name of the other end, for a VETH end.
    pub fn peer(&self) -> Option<&str> {
        self.link.peer()
    }

    /// The logical name of the other end of a VETH end; "" for other kinds.
    pub fn veth_peer(&self) -> &str {
        self.peer().unwrap_or("")
    }

    /// The second part of the ownership alias of its link (`/vnf-agent/<label>/<name>/<it>`):
    /// a VETH end's peer, an AUTO_TAP's temporary name (to give it back under); "" for
    /// the others.
    pub fn alias_suffix(&self) -> &str {
        match self.link.lifecycle() {
            link::Lifecycle::Pair { peer } => peer,
            link::Lifecycle::Adopted { temp_name } => temp_name,
            _ => "",
        }
    }
}

/// Route scope (`scope.type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RouteScope {
    /// GLOBAL (0): the kernel's universe scope.
    Global,
    /// SITE (1).
    Site,
    /// LINK (2): the destination is on the link; no gateway.
    Link,
    /// HOST (3): the destination is on this host; no gateway.
    Host,
}

impl RouteScope {
    /// The kernel's `rtm_scope` (RT_SCOPE_UNIVERSE 0, SITE 200, LINK 253, HOST 254).
    pub fn rtm_scope(self) -> u8 {
        match self {
            RouteScope::Global => 0,
            RouteScope::Site => 200,
            RouteScope::Link => 253,
            RouteScope::Host => 254,
        }
    }
}

/// One static route, decoded and validated.
///
/// The destination is resolved: `default: true` gives `0.0.0.0/0` (or `::/0` for an IPv6
/// gateway), and host bits are cleared (`10.0.2.1/24` is `10.0.2.0/24`, as `ip route` does).
/// Destination, gateway and source are of one address family. A route has an `interface`, a
/// `gateway`, or both.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Route {
    /// Label; equals the key's last segment.
    pub name: String,
    /// Free text, informational.
    pub description: String,
    /// Namespace the route is added in.
    pub namespace: NamespaceRef,
    /// Outgoing interface: the logical `name` of a configured interface, or the name of a
    /// link the agent does not manage (`eth0`, `lo`); empty = the kernel picks it from the
    /// gateway (only allowed with a gateway).
    pub interface: String,
    /// Scope; `None` (no `scope` message) leaves it to the kernel's default. A `scope`
    /// message without `type` is GLOBAL, as in proto3.
    pub scope: Option<RouteScope>,
    /// Destination network, host bits cleared; `0.0.0.0/0` or `::/0` for a default route.
    pub dst: ipnet::IpNet,
    /// True when the value said `default: true` (then `gateway` is set and `dst` has prefix
    /// length 0). A route to `0.0.0.0/0` given by `dst_ip_addr` alone keeps `false`.
    pub default: bool,
    /// Preferred source address.
    pub src: Option<std::net::IpAddr>,
    /// Gateway; `None` for a direct route.
    pub gateway: Option<std::net::IpAddr>,
    /// Priority (metric); 0 = not set.
    pub metric: u32,
    /// Routing table id as given; 0 = main (254 is main too). Applies to default routes as
    /// well (the v1 agent put those in main whatever `table` said).
    pub table: u32,
}

/// State of a static neighbour entry (`state.type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NeighbourState {
    /// PERMANENT (0, the default): never expires.
    Permanent,
    /// NOARP (1): valid, never probed.
    NoArp,
    /// REACHABLE (2): valid until the reachability timeout.
    Reachable,
    /// STALE (3): valid, verified on next use.
    Stale,
}

impl NeighbourState {
    /// The kernel's `ndm_state` (NUD_PERMANENT 0x80, NUD_NOARP 0x40, NUD_REACHABLE 0x02,
    /// NUD_STALE 0x04).
    pub fn nud_state(self) -> u16 {
        match self {
            NeighbourState::Permanent => 0x80,
            NeighbourState::NoArp => 0x40,
            NeighbourState::Reachable => 0x02,
            NeighbourState::Stale => 0x04,
        }
    }
}

/// One static neighbour (ARP or NDP) entry, decoded and validated. The address family is the
/// address's (`ip_family`, when given, must agree with it).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ArpEntry {
    /// Label; equals the key's last segment.
    pub name: String,
    /// Namespace of the interface.
    pub namespace: NamespaceRef,
    /// The logical `name` of a configured interface, or the name of a link the agent does not
    /// manage (`eth0`, `lo`); never empty.
    pub interface: String,
    /// Neighbour IP address (unicast).
    pub ip: std::net::IpAddr,
    /// Neighbour link-layer address (any MAC, multicast ones included).
    pub mac: MacAddr,
    /// Entry state.
    pub state: NeighbourState,
}

/// A decoded configuration value of any kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigItem {
    /// `.../interface/<name>`
    Interface(Interface),
    /// `.../route/<name>`
    Route(Route),
    /// `.../arp/<name>`
    Arp(ArpEntry),
}

impl ConfigItem {
    /// The item's `name` (its key's last segment).
    pub fn name(&self) -> &str {
        match self {
            ConfigItem::Interface(i) => &i.name,
            ConfigItem::Route(r) => &r.name,
            ConfigItem::Arp(a) => &a.name,
        }
    }

    /// The canonical JSON of the item (see each kind's `to_canonical_json`).
    pub fn to_canonical_json(&self) -> serde_json::Value {
        match self {
            ConfigItem::Interface(i) => i.to_canonical_json(),
            ConfigItem::Route(r) => r.to_canonical_json(),
            ConfigItem::Arp(a) => a.to_canonical_json(),
        }
    }
}

/// A bad value: names the key and the field, and says what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelError {
    /// Full etcd key of the value.
    pub key: String,
    /// Field path in snake_case (`namespace.type`, `ip_addresses[1]`), or empty for the whole value.
    pub field: String,
    /// What is wrong, for humans.
    pub message: String,
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}: {}", self.key, self.message)
        } else {
            write!(f, "{}: field `{}`: {}", self.key, self.field, self.message)
        }
    }
}

impl std::error::Error for ModelError {}
