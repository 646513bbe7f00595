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
    /// Addresses, without the kernel's own IPv6 link-local ones, sorted.
    pub addresses: Vec<IpNet>,
}
