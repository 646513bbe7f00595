//! The executor: runs scheduler operations against the kernel over rtnetlink, with one
//! cached netlink connection per namespace.

use crate::keys::KeyTree;
use crate::model::NamespaceRef;
use crate::scheduler::ops::{Op, OpOutcome};

/// Runs [`Op`]s. Owns the namespace descriptors and their netlink connections.
pub struct Executor {
    _keys: KeyTree,
    _group: u32,
}

impl Executor {
    /// Creates an executor for the agent of `keys`, marking links with `group`. Must be
    /// called inside a tokio runtime.
    pub async fn new(keys: KeyTree, group: u32) -> anyhow::Result<Self> {
        Ok(Executor {
            _keys: keys,
            _group: group,
        })
    }

    /// Runs a batch of independent operations concurrently; outcome `i` belongs to `ops[i]`.
    pub async fn execute(&mut self, ops: Vec<Op>) -> Vec<OpOutcome> {
        let _ = ops;
        todo!("netlink helper")
    }

    /// References resolved earlier whose namespace has disappeared or changed identity since.
    pub fn vanished_namespaces(&mut self) -> Vec<NamespaceRef> {
        todo!("netlink helper")
    }
}
