//! What the agent owns, recorded in etcd so that it outlives the agent's own downtime.
//!
//! * Its marks (`/vnf-agent/<label>/linux/owned/v1/marks`): the routing-protocol number that
//!   marks its routes and neighbour entries and the link group that marks its links. They are
//!   chosen once per label, away from the numbers other labels recorded, so that agents with
//!   different labels never take each other's objects for their own ([`marks`]).
//! * The namespaces it has put things into (`/vnf-agent/<label>/linux/owned/v1/namespace/...`),
//!   recorded before its first write there and removed once nothing of its own is left there,
//!   so that an agent started after its configuration was deleted still finds and removes
//!   what it left behind ([`places`]).
//!
//! These keys carry no lease: they must survive the agent.

pub mod marks;
pub mod places;

use crate::keys::KeyTree;

/// `/vnf-agent/<label>/linux/owned/v1/`: the prefix of the agent's ownership records.
pub fn owned_prefix(keys: &KeyTree) -> String {
    format!("{}linux/owned/v1/", keys.agent_prefix())
}

/// The key segment after an agent's prefix that ends a marks record.
const MARKS_SUFFIX: &str = "linux/owned/v1/marks";

/// `/vnf-agent/<label>/linux/owned/v1/marks`.
pub fn marks_key(keys: &KeyTree) -> String {
    format!("{}{MARKS_SUFFIX}", keys.agent_prefix())
}
