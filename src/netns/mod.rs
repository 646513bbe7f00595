//! Network namespaces: resolving references to open descriptors identified by (dev, inode),
//! creating named namespaces the way `ip netns add` does, and running code inside a
//! namespace on a dedicated OS thread (never on a tokio worker).

mod create;
mod open;
mod thread;
mod watch;

pub use open::{initial, is_netns};
pub use thread::run_in;
pub use watch::{VanishSources, VanishWatch};

use crate::kernel::NsId;
use crate::model::NamespaceRef;
use nix::errno::Errno;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// Directory of named namespaces (`ip netns`).
pub const NETNS_RUN_DIR: &str = "/var/run/netns";

/// An open network namespace.
#[derive(Debug)]
pub struct Namespace {
    /// Identity (dev, inode).
    pub id: NsId,
    /// Open descriptor of the namespace (keeps it alive while held).
    pub fd: OwnedFd,
}

/// Why a reference cannot be resolved.
#[derive(Debug, thiserror::Error)]
pub enum NsError {
    /// The path does not exist (process exited, namespace deleted, ...).
    #[error("{0}")]
    Missing(String),
    /// The path exists but is not a network namespace.
    #[error("{0}")]
    NotANamespace(String),
    /// Microservice references need the Docker tracker.
    #[error("microservice {0} is not running")]
    MicroserviceNotRunning(String),
    /// Any other failure (permissions, mount errors, ...).
    #[error("{0}")]
    Other(String),
}

/// The file a reference names, or `None` for references without one (default namespace,
/// microservices).
pub fn path_of(reference: &NamespaceRef) -> Option<PathBuf> {
    match reference {
        NamespaceRef::Default | NamespaceRef::Microservice(_) => None,
        NamespaceRef::Pid(pid) => Some(PathBuf::from(format!("/proc/{pid}/ns/net"))),
        NamespaceRef::Named(name) => Some(Path::new(NETNS_RUN_DIR).join(name)),
        NamespaceRef::File(path) => Some(path.clone()),
    }
}

/// Resolves a reference (blocking: call from `spawn_blocking` or a dedicated thread).
pub fn resolve(reference: &NamespaceRef, create: bool) -> Result<Namespace, NsError> {
    match reference {
        NamespaceRef::Default => initial()?.duplicate(),
        // Seam for the Docker tracker: it will map the label to a PID and resolve that.
        NamespaceRef::Microservice(label) => Err(NsError::MicroserviceNotRunning(label.clone())),
        NamespaceRef::Pid(pid) => {
            let path = format!("/proc/{pid}/ns/net");
            open::open_netns(Path::new(&path)).map_err(|e| match e {
                NsError::Missing(_) => NsError::Missing(format!("process {pid} does not exist")),
                other => other,
            })
        }
        NamespaceRef::Named(name) => {
            if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                return Err(NsError::Other(format!("invalid namespace name {name:?}")));
            }
            let path = Path::new(NETNS_RUN_DIR).join(name);
            match open::open_netns(&path) {
                // Not (yet) a namespace may be one being created right now: the creation
                // path waits for it.
                Err(NsError::Missing(_) | NsError::NotANamespace(_)) if create => {
                    create::create_named(&path)
                }
                other => other,
            }
        }
        NamespaceRef::File(path) => open::open_netns(path),
    }
}

/// Identity of the namespace a reference currently names, without opening or creating
/// anything; `None` when it names none (used to notice namespaces that went away).
pub fn current_id(reference: &NamespaceRef) -> Option<NsId> {
    match reference {
        NamespaceRef::Default => initial().ok().map(|ns| ns.id),
        _ => open::stat_netns(&path_of(reference)?),
    }
}

/// Text of an errno for messages.
fn errno_text(e: Errno) -> String {
    format!("{} ({:?})", e.desc(), e)
}
