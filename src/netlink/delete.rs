//! Deleting several links of a namespace in one request: each is moved into the agent's
//! transient deletion group, then the group is deleted (`RTM_DELLINK` with `IFLA_GROUP` and
//! no index, as `ip link del group N`), so that the kernel's network synchronisation is
//! waited for once instead of once per link.
//!
//! A link whose move fails, and every moved link when the group deletion fails, is deleted
//! on its own instead. A link whose own delete fails too stays in the transient group: it is
//! reported failed, and the scheduler (which reads the namespace again) deletes it on its
//! retry or moves it back when it is configured again; so does an agent restarted after
//! stopping half-way.

use super::conn::NsConn;
use super::error::NlError;
use super::update::delete_link;
use crate::scheduler::ops::{LinkRef, OpOutcome};
use nix::errno::Errno;
use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage};
use rtnetlink::packet_route::RouteNetlinkMessage;

/// Deletes `links` through `group`; outcome `i` ([`OpOutcome::Deleted`] or
/// [`OpOutcome::Failed`]) belongs to `links[i]`. A link that is already gone counts as
/// deleted.
pub(crate) async fn delete_links(conn: &NsConn, links: &[LinkRef], group: u32) -> Vec<OpOutcome> {
    let moves = links.iter().map(|l| move_to_group(conn, l.ifindex, group));
    let moved = futures::future::join_all(moves).await;
    let mut outcomes: Vec<Option<OpOutcome>> = vec![None; links.len()];
    let mut in_group = Vec::new();
    let mut alone = Vec::new();
    for (i, result) in moved.into_iter().enumerate() {
        match result {
            Ok(()) => in_group.push(i),
            Err(e) if gone(&e) => outcomes[i] = Some(OpOutcome::Deleted),
            Err(e) => {
                tracing::debug!(link = %links[i].name, "cannot move into the deletion group ({e}); deleting it alone");
                alone.push(i);
            }
        }
    }
    if !in_group.is_empty() {
        match delete_group(conn, group).await {
            Ok(()) => {
                tracing::debug!(
                    "{} links deleted together (group {group}) in {}",
                    in_group.len(),
                    conn.label()
                );
                for i in &in_group {
                    outcomes[*i] = Some(OpOutcome::Deleted);
                }
            }
            Err(e) => {
                tracing::warn!(
                    "cannot delete link group {group} in {} ({e}); deleting its {} links one by one",
                    conn.label(),
                    in_group.len()
                );
                alone.extend(in_group);
            }
        }
    }
    let singles = alone
        .iter()
        .map(|i| delete_link(conn, links[*i].ifindex, &links[*i].name));
    for (i, outcome) in alone.iter().zip(futures::future::join_all(singles).await) {
        outcomes[*i] = Some(outcome);
    }
    outcomes
        .into_iter()
        .map(|o| o.unwrap_or(OpOutcome::Deleted))
        .collect()
}

/// True for the errors that say the link (or every link of the group) is gone.
fn gone(e: &NlError) -> bool {
    e.is(Errno::ENODEV) || e.is(Errno::ENOENT)
}

/// `RTM_SETLINK` of link `ifindex` into `group`.
async fn move_to_group(conn: &NsConn, ifindex: u32, group: u32) -> Result<(), NlError> {
    let mut msg = LinkMessage::default();
    msg.header.index = ifindex;
    msg.attributes.push(LinkAttribute::Group(group));
    conn.request(RouteNetlinkMessage::SetLink(msg), 0)
        .await
        .map(|_| ())
}

/// `RTM_DELLINK` of every link in `group`; a group with no link left counts as deleted.
async fn delete_group(conn: &NsConn, group: u32) -> Result<(), NlError> {
    if conn.faults().refuse_group_delete() {
        return Err(NlError::Errno(
            Errno::EBUSY,
            Some("refused by a test fault".into()),
        ));
    }
    let mut msg = LinkMessage::default();
    msg.attributes.push(LinkAttribute::Group(group));
    match conn.request(RouteNetlinkMessage::DelLink(msg), 0).await {
        Err(e) if gone(&e) => Ok(()),
        other => other.map(|_| ()),
    }
}
