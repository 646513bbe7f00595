//! Errors of single netlink requests.

use nix::errno::Errno;
use std::fmt;
use std::time::Duration;

/// Why one netlink request failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum NlError {
    /// The kernel answered with an error.
    Errno(Errno),
    /// No complete answer within the request timeout.
    Timeout(Duration),
    /// The connection is closed (its task ended).
    Closed,
    /// A dump kept being interrupted by concurrent changes (`NLM_F_DUMP_INTR`).
    Interrupted(u32),
    /// The kernel dropped messages for this socket (ENOBUFS).
    Overrun,
    /// An answer we cannot use.
    Unexpected(String),
}

impl NlError {
    /// True for the kernel error `e`.
    pub(crate) fn is(&self, e: Errno) -> bool {
        matches!(self, NlError::Errno(x) if *x == e)
    }

    /// True when the socket should not be trusted any more (reopen it).
    pub(crate) fn breaks_connection(&self) -> bool {
        matches!(
            self,
            NlError::Timeout(_) | NlError::Closed | NlError::Overrun
        )
    }
}

impl fmt::Display for NlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NlError::Errno(e) => write!(f, "{} ({e:?})", e.desc()),
            NlError::Timeout(d) => write!(f, "timeout: no answer from the kernel in {d:?}"),
            NlError::Closed => write!(f, "netlink connection closed"),
            NlError::Interrupted(n) => {
                write!(f, "dump interrupted by concurrent changes {n} times")
            }
            NlError::Overrun => write!(f, "netlink socket overrun (ENOBUFS)"),
            NlError::Unexpected(s) => write!(f, "unexpected netlink answer: {s}"),
        }
    }
}
