//! Creating a persistent TAP: `/dev/net/tun` makes the device in the namespace of the thread
//! that asks, so the request runs on a thread of its own inside the target namespace; the
//! device is then marked and configured over netlink like any other link.

use super::conn::NsConn;
use super::create::{finish_end, finished, single_failed};
use super::dump::Ownership;
use super::error::NlError;
use crate::model::link::tap::TAP_LINK;
use crate::netns;
use crate::scheduler::ops::{EndSpec, OpOutcome};

/// The kernel's kind of a TAP (`IFLA_INFO_KIND`).
pub(crate) const TAP_KIND: &str = TAP_LINK.kind;
use nix::errno::Errno;
use rtnetlink::packet_route::link::LinkAttribute;
use std::fs::OpenOptions;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Creates the TAP `end.name` in `conn`'s namespace, persistent (it outlives the descriptor
/// that made it), then sets group, MTU, MAC, alias, admin state and addresses.
pub(crate) async fn create_tap(conn: &NsConn, end: &EndSpec, owner: &Ownership) -> OpOutcome {
    let made = make_in_namespace(conn, &end.name).await;
    if let Err(e) = made {
        return single_failed(conn, end, TAP_LINK, owner, e).await;
    }
    let mut attrs = vec![LinkAttribute::Group(owner.group)];
    if end.mtu != 0 {
        attrs.push(LinkAttribute::Mtu(end.mtu));
    }
    if let Some(mac) = end.mac {
        attrs.push(LinkAttribute::Address(mac.0.to_vec()));
    }
    let marked = match super::dump::link_by_name(conn, &end.name).await {
        Ok(Some(link)) => super::update::set_attributes(conn, link.ifindex, attrs)
            .await
            .map_err(|e| format!("tap {} created, but cannot mark it: {e}", end.name)),
        Ok(None) => Err(format!("tap {} created but not found", end.name)),
        Err(e) => Err(format!("tap {} created, but cannot find it: {e}", end.name)),
    };
    let result = match marked {
        Ok(()) => finish_end(conn, end, "tap").await,
        Err(e) => Err(e),
    };
    finished(result, TAP_LINK)
}

/// `TUNSETIFF` (TAP, no packet information) and `TUNSETPERSIST` on a thread inside the
/// namespace; the descriptor is closed again, the device stays.
async fn make_in_namespace(conn: &NsConn, name: &str) -> Result<(), NlError> {
    // SAFETY: `conn` holds the namespace descriptor open for this whole call.
    let ns = unsafe { BorrowedFd::borrow_raw(conn.fd()) }
        .try_clone_to_owned()
        .map_err(|e| NlError::Errno(Errno::from_raw(e.raw_os_error().unwrap_or(0)), None))?;
    let name = name.to_string();
    let outcome = tokio::task::spawn_blocking(move || {
        netns::run_in(std::os::fd::AsFd::as_fd(&ns), move || make_tap(&name))
    })
    .await;
    match outcome {
        Ok(Ok(result)) => result.map_err(|e| NlError::Errno(e, None)),
        Ok(Err(e)) => Err(NlError::Errno(Errno::EIO, Some(e.to_string()))),
        Err(e) => Err(NlError::Errno(Errno::EIO, Some(e.to_string()))),
    }
}

/// Makes a persistent TAP named `name` in the calling thread's namespace.
fn make_tap(name: &str) -> Result<(), Errno> {
    let tun = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
    // SAFETY: a zeroed ifreq is valid; the name fits (at most 15 bytes, validated).
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in request.ifr_name.iter_mut().zip(name.bytes().take(15)) {
        *dst = src as libc::c_char;
    }
    request.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
    // SAFETY: TUNSETIFF reads and writes one ifreq; TUNSETPERSIST takes an int argument.
    unsafe {
        if libc::ioctl(tun.as_raw_fd(), libc::TUNSETIFF, &mut request) < 0 {
            return Err(Errno::last());
        }
        if libc::ioctl(tun.as_raw_fd(), libc::TUNSETPERSIST, 1 as libc::c_ulong) < 0 {
            return Err(Errno::last());
        }
    }
    Ok(())
}
