//! Early notice that a namespace may have gone: an entry removed from the directory of a
//! referenced namespace file (`ip netns del` unlinks `/var/run/netns/<name>`), or a
//! referenced process exiting (a pidfd becomes readable). The agent then checks its
//! namespaces at once instead of at its next poll; the poll stays as the safety net (a
//! namespace file unmounted but not removed, a directory that cannot be watched).

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// What may vanish: directories holding referenced namespace files, referenced processes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VanishSources {
    /// Directories of referenced namespace files.
    pub dirs: BTreeSet<PathBuf>,
    /// Processes whose namespaces are referenced.
    pub pids: BTreeSet<u32>,
}

/// An inotify instance as something tokio can wait on.
struct InotifyFd(Inotify);

impl AsRawFd for InotifyFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// Wakes its owner when a source may have vanished.
pub struct VanishWatch {
    inotify: Option<Arc<AsyncFd<InotifyFd>>>,
    watched: VanishSources,
    dirs: BTreeMap<PathBuf, WatchDescriptor>,
    pids: BTreeMap<u32, JoinHandle<()>>,
    tx: mpsc::UnboundedSender<()>,
    rx: mpsc::UnboundedReceiver<()>,
    reader: Option<JoinHandle<()>>,
}

impl VanishWatch {
    /// A watch with nothing to watch yet. Must be created inside a tokio runtime. Without
    /// inotify (an error is logged) only processes are watched.
    pub fn new() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .map_err(|e| e.to_string())
            .and_then(|i| {
                // SAFETY: the inotify instance owns its descriptor, which is neither closed
                // nor replaced while registered.
                unsafe { AsyncFd::register_with_interest(InotifyFd(i), Interest::READABLE) }
                    .map_err(|e| e.to_string())
            });
        let (inotify, reader) = match inotify {
            Ok(fd) => {
                let fd = Arc::new(fd);
                let reader = tokio::spawn(read_inotify(fd.clone(), tx.clone()));
                (Some(fd), Some(reader))
            }
            Err(e) => {
                tracing::warn!("no inotify ({e}); deleted namespaces are noticed by polling");
                (None, None)
            }
        };
        VanishWatch {
            inotify,
            watched: VanishSources::default(),
            dirs: BTreeMap::new(),
            pids: BTreeMap::new(),
            tx,
            rx,
            reader,
        }
    }

    /// Watches exactly `sources` from now on (a directory that could not be watched is
    /// tried again on the next call).
    pub fn track(&mut self, sources: VanishSources) {
        let all_dirs = self.inotify.is_none() || self.dirs.len() == sources.dirs.len();
        if sources == self.watched && all_dirs {
            return;
        }
        if let Some(inotify) = &self.inotify {
            self.dirs.retain(|dir, wd| {
                let keep = sources.dirs.contains(dir);
                if !keep {
                    let _ = inotify.get_ref().0.rm_watch(*wd);
                }
                keep
            });
            let flags = AddWatchFlags::IN_DELETE
                | AddWatchFlags::IN_MOVED_FROM
                | AddWatchFlags::IN_DELETE_SELF
                | AddWatchFlags::IN_MOVE_SELF
                | AddWatchFlags::IN_ONLYDIR;
            for dir in &sources.dirs {
                if self.dirs.contains_key(dir) {
                    continue;
                }
                match inotify.get_ref().0.add_watch(dir.as_path(), flags) {
                    Ok(wd) => {
                        self.dirs.insert(dir.clone(), wd);
                    }
                    Err(e) => tracing::debug!(dir = %dir.display(), "cannot watch: {e}"),
                }
            }
        }
        self.pids.retain(|pid, task| {
            let keep = sources.pids.contains(pid);
            if !keep {
                task.abort();
            }
            keep
        });
        for pid in &sources.pids {
            if !self.pids.contains_key(pid) {
                let task = tokio::spawn(wait_exit(*pid, self.tx.clone()));
                self.pids.insert(*pid, task);
            }
        }
        self.watched = sources;
    }

    /// Resolves when a watched source may have vanished (cancel-safe).
    pub async fn changed(&mut self) {
        if self.rx.recv().await.is_none() {
            std::future::pending::<()>().await;
        }
        while self.rx.try_recv().is_ok() {}
    }
}

impl Default for VanishWatch {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for VanishWatch {
    fn drop(&mut self) {
        for task in self.pids.values().chain(&self.reader) {
            task.abort();
        }
    }
}

async fn read_inotify(fd: Arc<AsyncFd<InotifyFd>>, tx: mpsc::UnboundedSender<()>) {
    loop {
        let Ok(mut ready) = fd.readable().await else {
            return;
        };
        match fd.get_ref().0.read_events() {
            Ok(events) if !events.is_empty() => {
                if tx.send(()).is_err() {
                    return;
                }
            }
            Ok(_) | Err(nix::errno::Errno::EAGAIN) => ready.clear_ready(),
            Err(e) => {
                tracing::warn!("inotify: {e}; deleted namespaces are noticed by polling");
                return;
            }
        }
    }
}

/// Sends once when process `pid` exits (or at once when it cannot be watched).
async fn wait_exit(pid: u32, tx: mpsc::UnboundedSender<()>) {
    if let Some(fd) = pidfd_open(pid) {
        // SAFETY: the pidfd owns its descriptor, which is neither closed nor replaced while
        // registered.
        if let Ok(fd) = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) } {
            let _ = fd.readable().await;
        }
    }
    let _ = tx.send(());
}

/// A pidfd for `pid` (readable once the process has exited); `None` when it is gone or
/// pidfds are unavailable. `nix` has no wrapper for `pidfd_open` (Linux 5.3).
fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    let pid = libc::pid_t::try_from(pid).ok()?;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = RawFd::try_from(fd).ok().filter(|fd| *fd >= 0)?;
    // SAFETY: the descriptor was just created and is owned by nobody else.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}
