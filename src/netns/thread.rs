//! Running code inside a namespace on a dedicated, short-lived OS thread.
//!
//! `setns` changes only the calling thread, and a thread created by it would inherit the
//! namespace. So the switch happens on a fresh thread that exits when the closure returns:
//! no thread that ever changed namespace is handed back to a pool.

use super::{errno_text, NsError};
use nix::sched::{setns, CloneFlags};
use std::os::fd::BorrowedFd;

/// Runs `f` on a new OS thread that first enters the network namespace `ns`; blocks until it
/// is done (call from `spawn_blocking` or a plain thread, never directly on a tokio worker).
pub fn run_in<T, F>(ns: BorrowedFd<'_>, f: F) -> Result<T, NsError>
where
    T: Send,
    F: FnOnce() -> T + Send,
{
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("netns-worker".into())
            .spawn_scoped(scope, move || {
                setns(ns, CloneFlags::CLONE_NEWNET).map_err(|e| {
                    NsError::Other(format!("cannot enter namespace: {}", errno_text(e)))
                })?;
                Ok(f())
            })
            .map_err(|e| NsError::Other(format!("cannot start a namespace thread: {e}")))?;
        worker
            .join()
            .map_err(|_| NsError::Other("namespace thread panicked".into()))?
    })
}
