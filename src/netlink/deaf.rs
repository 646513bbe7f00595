//! Which namespaces stop listening to kernel events while a batch runs. A bulk change makes
//! dozens of events per link; their echo tells the agent nothing it does not know from the
//! answers, and every subscribed event socket on the host slows every change the kernel
//! announces. So a namespace the batch writes to many times is deaf for the batch, then
//! read again in full (which also finds any change made by someone else meanwhile).

use crate::kernel::NsId;
use crate::scheduler::ops::l3::L3Op;
use crate::scheduler::ops::Op;
use std::collections::BTreeMap;

/// Writes of one batch to one namespace from which it is deaf during the batch (below, the
/// echo is cheaper than reading the namespace again afterwards).
pub(crate) const DEAF_FROM_WRITES: usize = 8;

/// The namespaces `ops` write to at least [`DEAF_FROM_WRITES`] times (a group deletion
/// counts once per link).
pub(crate) fn busy_namespaces(ops: &[Op]) -> Vec<NsId> {
    busy(ops.iter().filter(|op| op.writes()).flat_map(|op| {
        let weight = match op {
            Op::DeleteLinks { links, .. } => links.len(),
            _ => 1,
        };
        op.namespaces().into_iter().map(move |ns| (ns, weight))
    }))
}

/// The namespaces the route and neighbour operations `ops` write to at least
/// [`DEAF_FROM_WRITES`] times.
pub(crate) fn busy_l3_namespaces(ops: &[L3Op]) -> Vec<NsId> {
    busy(
        ops.iter()
            .filter(|op| !matches!(op, L3Op::Dump { .. }))
            .map(|op| (op.ns(), 1)),
    )
}

fn busy(writes: impl Iterator<Item = (NsId, usize)>) -> Vec<NsId> {
    let mut per_ns: BTreeMap<NsId, usize> = BTreeMap::new();
    for (ns, weight) in writes {
        *per_ns.entry(ns).or_default() += weight;
    }
    per_ns
        .into_iter()
        .filter(|(_, writes)| *writes >= DEAF_FROM_WRITES)
        .map(|(ns, _)| ns)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::ops::LinkRef;

    fn ns(ino: u64) -> NsId {
        NsId { dev: 1, ino }
    }

    fn read(n: u64) -> Op {
        Op::DumpNs { ns: ns(n) }
    }

    #[test]
    fn only_namespaces_with_many_writes_are_deaf() {
        let link = |i| LinkRef {
            ifindex: i,
            name: format!("l{i}"),
        };
        let mut ops: Vec<Op> = (0..DEAF_FROM_WRITES as u32)
            .map(|i| Op::DeleteLink {
                ns: ns(1),
                ifindex: i,
                name: format!("l{i}"),
            })
            .collect();
        ops.extend((0..20).map(|_| read(2)));
        ops.push(Op::DeleteLinks {
            ns: ns(3),
            links: (0..DEAF_FROM_WRITES as u32).map(link).collect(),
        });
        ops.push(Op::DeleteLinks {
            ns: ns(4),
            links: vec![link(1)],
        });
        assert_eq!(busy_namespaces(&ops), vec![ns(1), ns(3)]);
        assert_eq!(busy_namespaces(&ops[1..]), vec![ns(3)]);
    }
}
