//! Opening and checking namespace files, and the agent's own (initial) namespace.

use super::{errno_text, Namespace, NsError};
use crate::kernel::NsId;
use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::sys::stat::{fstat, stat, Mode};
use nix::sys::statfs::{fstatfs, statfs, NSFS_MAGIC};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::OnceLock;

/// `NS_GET_NSTYPE` = `_IO(0xb7, 0x3)`.
const NS_GET_NSTYPE: u64 = 0xb703;

impl Namespace {
    /// A second handle on the same namespace (a new descriptor).
    pub fn duplicate(&self) -> Result<Namespace, NsError> {
        let fd = self
            .fd
            .try_clone()
            .map_err(|e| NsError::Other(format!("cannot duplicate namespace descriptor: {e}")))?;
        Ok(Namespace { id: self.id, fd })
    }
}

/// True when `fd` is a network namespace: nsfs and `NS_GET_NSTYPE` says `CLONE_NEWNET`.
pub fn is_netns(fd: BorrowedFd<'_>) -> bool {
    let nsfs = fstatfs(fd).is_ok_and(|s| s.filesystem_type() == NSFS_MAGIC);
    // SAFETY: NS_GET_NSTYPE takes no argument and only returns a value.
    nsfs && unsafe { nix::libc::ioctl(fd.as_raw_fd(), NS_GET_NSTYPE as _) }
        == nix::libc::CLONE_NEWNET
}

fn id_of(fd: BorrowedFd<'_>) -> Result<NsId, Errno> {
    let st = fstat(fd)?;
    Ok(NsId {
        dev: st.st_dev,
        ino: st.st_ino,
    })
}

/// Opens `path` and checks that it is a network namespace.
pub(super) fn open_netns(path: &Path) -> Result<Namespace, NsError> {
    let fd = match open(path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) | Err(Errno::ENOTDIR) | Err(Errno::ESRCH) => {
            return Err(NsError::Missing(format!(
                "{} does not exist",
                path.display()
            )))
        }
        Err(e) => {
            return Err(NsError::Other(format!(
                "cannot open {}: {}",
                path.display(),
                errno_text(e)
            )))
        }
    };
    from_fd(fd, path)
}

/// Checks an open descriptor and wraps it.
fn from_fd(fd: OwnedFd, path: &Path) -> Result<Namespace, NsError> {
    if !is_netns(fd.as_fd()) {
        return Err(NsError::NotANamespace(format!(
            "{} is not a network namespace",
            path.display()
        )));
    }
    let id = id_of(fd.as_fd()).map_err(|e| {
        NsError::Other(format!("cannot stat {}: {}", path.display(), errno_text(e)))
    })?;
    Ok(Namespace { id, fd })
}

/// Identity of the namespace at `path` without opening it; `None` unless it is on nsfs.
pub(super) fn stat_netns(path: &Path) -> Option<NsId> {
    let fs = statfs(path).ok()?;
    if fs.filesystem_type() != NSFS_MAGIC {
        return None;
    }
    let st = stat(path).ok()?;
    Some(NsId {
        dev: st.st_dev,
        ino: st.st_ino,
    })
}

static INITIAL: OnceLock<Result<Namespace, String>> = OnceLock::new();

/// The namespace of the process (its main thread), opened once and reused, so that a thread
/// that happens to be elsewhere can never make "default" mean another namespace.
pub fn initial() -> Result<&'static Namespace, NsError> {
    INITIAL
        .get_or_init(|| {
            let path = format!("/proc/{}/ns/net", nix::unistd::getpid());
            open_netns(Path::new(&path)).map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| NsError::Other(format!("cannot open the agent's own namespace: {e}")))
}
