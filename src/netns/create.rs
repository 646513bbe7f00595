//! Creating a named namespace exactly like `ip netns add`.

use super::open::open_netns;
use super::{errno_text, Namespace, NsError, NETNS_RUN_DIR};
use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::stat::Mode;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

/// Serialises creations inside this process: the run-directory mount setup must not stack
/// two bind mounts, and a second creator must not see the still-empty file of the first.
static CREATE_LOCK: Mutex<()> = Mutex::new(());

/// How often a creator that lost the race against another process re-checks the file.
const RACE_ATTEMPTS: u32 = 20;

/// Creates (or, when someone else just did, opens) the named namespace at `path`, which is
/// inside [`NETNS_RUN_DIR`].
pub(super) fn create_named(path: &Path) -> Result<Namespace, NsError> {
    let _guard = CREATE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    prepare_run_dir()?;
    let mut last = None;
    for _ in 0..RACE_ATTEMPTS {
        match open(
            path,
            OFlag::O_RDONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(file) => {
                drop(file);
                return match bind_new_netns(path) {
                    Ok(()) => open_netns(path),
                    Err(e) => {
                        let _ = std::fs::remove_file(path);
                        Err(e)
                    }
                };
            }
            // Someone else created it: use theirs once it is mounted.
            Err(Errno::EEXIST) => match open_netns(path) {
                Ok(ns) => return Ok(ns),
                Err(e @ (NsError::NotANamespace(_) | NsError::Missing(_))) => {
                    last = Some(e);
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(e),
            },
            Err(e) => {
                return Err(NsError::Other(format!(
                    "cannot create {}: {}",
                    path.display(),
                    errno_text(e)
                )))
            }
        }
    }
    Err(last.unwrap_or_else(|| NsError::Other(format!("cannot create {}", path.display()))))
}

/// `mkdir -p` the run directory and make it a shared mount (bind-mounting it onto itself
/// first when it is not a mount point), so that namespace mounts propagate to other mount
/// namespaces and `ip netns del` can unmount them.
fn prepare_run_dir() -> Result<(), NsError> {
    std::fs::create_dir_all(NETNS_RUN_DIR)
        .map_err(|e| NsError::Other(format!("cannot create {NETNS_RUN_DIR}: {e}")))?;
    let shared = || {
        mount(
            None::<&str>,
            NETNS_RUN_DIR,
            Some("none"),
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )
    };
    match shared() {
        Ok(()) => Ok(()),
        Err(Errno::EINVAL) => {
            mount(
                Some(NETNS_RUN_DIR),
                NETNS_RUN_DIR,
                Some("none"),
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(|e| {
                NsError::Other(format!(
                    "cannot bind-mount {NETNS_RUN_DIR}: {}",
                    errno_text(e)
                ))
            })?;
            shared().map_err(|e| {
                NsError::Other(format!(
                    "cannot make {NETNS_RUN_DIR} a shared mount: {}",
                    errno_text(e)
                ))
            })
        }
        Err(e) => Err(NsError::Other(format!(
            "cannot make {NETNS_RUN_DIR} a shared mount: {}",
            errno_text(e)
        ))),
    }
}

/// On a dedicated thread (which then exits): a new network namespace, bind-mounted onto
/// `path` so that it outlives the thread.
fn bind_new_netns(path: &Path) -> Result<(), NsError> {
    let path = path.to_path_buf();
    std::thread::Builder::new()
        .name("netns-create".into())
        .spawn(move || {
            unshare(CloneFlags::CLONE_NEWNET).map_err(|e| {
                NsError::Other(format!(
                    "cannot create a network namespace: {}",
                    errno_text(e)
                ))
            })?;
            let source = format!("/proc/self/task/{}/ns/net", nix::unistd::gettid());
            mount(
                Some(source.as_str()),
                &path,
                Some("none"),
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| {
                NsError::Other(format!(
                    "cannot bind-mount the new namespace onto {}: {}",
                    path.display(),
                    errno_text(e)
                ))
            })
        })
        .map_err(|e| NsError::Other(format!("cannot start a namespace thread: {e}")))?
        .join()
        .map_err(|_| NsError::Other("namespace thread panicked".into()))?
}
