//! The configuration model: typed, validated values decoded from the JSON users write.
//!
//! Decoding rules (see `../shared/model.md`): field names in snake_case (also in any letter
//! case, as Go matched them), lowerCamelCase or kebab-case; enums by number or name; unknown,
//! doubled or mistyped fields are errors naming the field (and the closest known one); zero
//! values mean "not set". [`Interface::to_canonical_json`] gives the canonical form back.

mod decode;
mod encode;
mod fields;
mod json;
#[cfg(test)]
mod tests;
mod validate;

pub use decode::{decode_interface, decode_value};
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

/// Interface type (`type` field).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InterfaceType {
    /// One end of a VETH pair (0, the default).
    Veth,
    /// A TAP created by another program and taken over by the agent (1).
    AutoTap,
}

/// One Linux interface, decoded and validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    /// Logical name; equals the key's last segment.
    pub name: String,
    /// Free text, informational.
    pub description: String,
    /// VETH or AUTO_TAP.
    pub if_type: InterfaceType,
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
    /// Logical name of the other VETH end (VETH only; validated non-empty and != name).
    pub veth_peer: String,
    /// AUTO_TAP: the name the TAP has before the agent takes it over.
    pub tap_temp_if_name: String,
}

/// A decoded configuration value of any kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigItem {
    /// `.../interface/<name>`
    Interface(Interface),
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
