//! Errors of single netlink requests.

use nix::errno::Errno;
use rtnetlink::packet_core::{NLM_F_ACK_TLVS, NLM_F_CAPPED};
use std::fmt;
use std::time::Duration;

/// Why one netlink request failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum NlError {
    /// The kernel answered with an error, with its extended-ACK message when it gave one
    /// (e.g. "Nexthop has invalid gateway").
    Errno(Errno, Option<String>),
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
        matches!(self, NlError::Errno(x, _) if *x == e)
    }

    /// True when the socket should not be trusted any more (reopen it).
    pub(crate) fn breaks_connection(&self) -> bool {
        matches!(
            self,
            NlError::Timeout(_) | NlError::Closed | NlError::Overrun
        )
    }
}

/// The extended-ACK message (`NLMSGERR_ATTR_MSG`) of an error message whose header has
/// `flags` and whose payload after the error code is `payload`: the echoed request (only its
/// header when `NLM_F_CAPPED`), then the TLVs when `NLM_F_ACK_TLVS`.
pub(crate) fn ext_ack_message(flags: u16, payload: &[u8]) -> Option<String> {
    const HEADER_LEN: usize = 16;
    const NLMSGERR_ATTR_MSG: u16 = 1;
    if flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    let echoed = if flags & NLM_F_CAPPED != 0 {
        HEADER_LEN
    } else {
        let len = payload.get(..4)?;
        u32::from_ne_bytes(len.try_into().ok()?) as usize
    };
    let mut tlvs = payload.get(align4(echoed)..)?;
    while tlvs.len() >= 4 {
        let len = u16::from_ne_bytes([tlvs[0], tlvs[1]]) as usize;
        let kind = u16::from_ne_bytes([tlvs[2], tlvs[3]]) & 0x3fff;
        if len < 4 || len > tlvs.len() {
            return None;
        }
        if kind == NLMSGERR_ATTR_MSG {
            let text = &tlvs[4..len];
            let text = text.split(|b| *b == 0).next().unwrap_or_default();
            let text = String::from_utf8_lossy(text).trim().to_string();
            return (!text.is_empty()).then_some(text);
        }
        tlvs = tlvs.get(align4(len)..).unwrap_or_default();
    }
    None
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

impl fmt::Display for NlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NlError::Errno(e, None) => write!(f, "{} ({e:?})", e.desc()),
            NlError::Errno(e, Some(m)) => write!(f, "{} ({e:?}): {m}", e.desc()),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn tlv(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut out = ((4 + value.len()) as u16).to_ne_bytes().to_vec();
        out.extend(kind.to_ne_bytes());
        out.extend(value);
        out.resize(align4(out.len()), 0);
        out
    }

    /// The echoed request: a header of `len` bytes in all, zero-filled.
    fn echoed(len: usize) -> Vec<u8> {
        let mut out = (len as u32).to_ne_bytes().to_vec();
        out.resize(len, 0);
        out
    }

    #[test]
    fn ext_ack_message_after_a_capped_or_full_echo() {
        let mut capped = echoed(16);
        capped.extend(tlv(2, &7u32.to_ne_bytes()));
        capped.extend(tlv(1, b"Nexthop has invalid gateway\0"));
        assert_eq!(
            ext_ack_message(NLM_F_ACK_TLVS | NLM_F_CAPPED, &capped).as_deref(),
            Some("Nexthop has invalid gateway")
        );
        let mut full = echoed(38);
        full.resize(40, 0);
        full.extend(tlv(1, b"Device for nexthop is not up\0"));
        assert_eq!(
            ext_ack_message(NLM_F_ACK_TLVS, &full).as_deref(),
            Some("Device for nexthop is not up")
        );
    }

    #[test]
    fn ext_ack_message_absent_or_malformed() {
        let mut payload = echoed(16);
        payload.extend(tlv(1, b"text\0"));
        assert_eq!(ext_ack_message(NLM_F_CAPPED, &payload), None);
        assert_eq!(ext_ack_message(NLM_F_ACK_TLVS, &payload[..3]), None);
        let mut bad = echoed(16);
        bad.extend([200, 0, 1, 0, b'x']);
        assert_eq!(ext_ack_message(NLM_F_ACK_TLVS | NLM_F_CAPPED, &bad), None);
        assert_eq!(
            ext_ack_message(NLM_F_ACK_TLVS | NLM_F_CAPPED, &echoed(16)),
            None
        );
    }
}
