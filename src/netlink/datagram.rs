//! Receiving netlink datagrams into one buffer per thread (instead of one per socket: the
//! agent has two sockets per namespace), handing each to a reader before the next.

use rtnetlink::packet_core::{DecodeError, NetlinkBuffer, NetlinkMessage};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::sys::{AsyncSocket, TokioSocket};
use std::cell::RefCell;
use std::io;
use std::task::{ready, Context, Poll};

/// Size of each thread's receive buffer. The kernel fills dump answers up to 32 KiB per
/// datagram for a buffer this large; a notification or an ACK is far smaller.
const RECEIVE_BUFFER: usize = 64 * 1024;

thread_local! {
    static DATAGRAM: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Receives the next datagram of `socket`, waiting until there is one, and returns what
/// `read` makes of it. The kernel handles a request within its send, so the answer is
/// usually queued already: that case costs no trip through the reactor.
pub(crate) async fn receive<T>(
    socket: &TokioSocket,
    mut read: impl FnMut(&[u8]) -> T,
) -> io::Result<T> {
    match try_receive(socket, &mut read) {
        Some(result) => result,
        None => std::future::poll_fn(|cx| poll_receive(socket, cx, &mut read)).await,
    }
}

/// Receives the datagram queued first on `socket`, if any (`None` when none is), and
/// returns what `read` makes of it.
pub(crate) fn try_receive<T>(
    socket: &TokioSocket,
    read: &mut impl FnMut(&[u8]) -> T,
) -> Option<io::Result<T>> {
    DATAGRAM.with_borrow_mut(|buffer| {
        prepare(buffer);
        match socket.socket_ref().recv(buffer, libc::MSG_DONTWAIT) {
            Ok(_) => Some(Ok(read(buffer))),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
            Err(e) => Some(Err(e)),
        }
    })
}

/// Polls for the next datagram of `socket`; when one is there, returns what `read` makes
/// of it.
pub(crate) fn poll_receive<T>(
    socket: &TokioSocket,
    cx: &mut Context<'_>,
    read: &mut impl FnMut(&[u8]) -> T,
) -> Poll<io::Result<T>> {
    DATAGRAM.with_borrow_mut(|buffer| {
        prepare(buffer);
        ready!(socket.poll_recv_from(cx, buffer))?;
        Poll::Ready(Ok(read(buffer)))
    })
}

/// Empties `buffer`, keeping room for a whole datagram.
fn prepare(buffer: &mut Vec<u8>) {
    buffer.clear();
    buffer.reserve(RECEIVE_BUFFER);
}

/// The netlink messages of `datagram`, in order, each decoded on its own (an undecodable
/// one does not hide the next); a truncated tail is left out.
pub(crate) fn messages(
    datagram: &[u8],
) -> impl Iterator<Item = Result<NetlinkMessage<RouteNetlinkMessage>, DecodeError>> + '_ {
    let mut rest = datagram;
    std::iter::from_fn(move || {
        let length = NetlinkBuffer::new_checked(rest).ok()?.length() as usize;
        let message = NetlinkMessage::deserialize(&rest[..length]);
        rest = &rest[length.next_multiple_of(4).min(rest.len())..];
        Some(message)
    })
}
