//! Link deletions by the fewest kernel requests.
//!
//! Every link deletion waits for the kernel's network synchronisation, but one request can
//! delete a whole link group of a namespace (`ip link del group N`). So the links a plan
//! deletes in one namespace are deleted together ([`Op::DeleteLinks`]): moved into the
//! agent's transient deletion group, then that group deleted. A VETH pair dies with either
//! end, so a pair whose ends are both to go is deleted from the end whose namespace serves
//! the most other deletions (a greedy cover), and fewer namespaces need a request. A lone
//! link in its namespace keeps its single delete.
//!
//! Only links the agent owns and is deleting may ever be in the transient group: a namespace
//! where a link is (or, after a failed group deletion, may be) in it without being deleted by
//! this plan gets single deletes instead, until that link is deleted or moved back.

use super::ops::{LinkRef, Op};
use super::state::View;
use super::Scheduler;
use crate::kernel::{KernelLink, NsId};
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// One deletion: where it can be done (one link, or either end of a VETH pair, the end with
/// the smaller item name first; both ends die, also when they share a namespace).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Deletion<'a> {
    options: Vec<(NsId, &'a KernelLink)>,
}

impl Deletion<'_> {
    /// The namespaces it can be done in, each once.
    fn places(&self) -> impl Iterator<Item = NsId> + '_ {
        let options = &self.options;
        options
            .iter()
            .enumerate()
            .filter(|(i, (ns, _))| !options[..*i].iter().any(|(n, _)| n == ns))
            .map(|(_, (ns, _))| *ns)
    }
}

impl Scheduler {
    /// Delete operations for `links`: a pair whose ends are both listed once, at most one
    /// operation per namespace (a group deletion for several links, a single delete for
    /// one), skipping links (and their pairs) whose last delete failed until their retry is
    /// due.
    pub(super) fn delete_ops(&self, mut links: Vec<(NsId, &KernelLink)>, now: Duration) -> Vec<Op> {
        links.sort_by_key(|(ns, l)| (*ns, l.ifindex));
        links.dedup_by_key(|(ns, l)| (*ns, l.ifindex));
        let deletions = self.deletions(&links, now);
        let dying: HashSet<(NsId, u32)> = deletions
            .iter()
            .flat_map(|d| &d.options)
            .map(|(ns, l)| (*ns, l.ifindex))
            .collect();
        let mut ops = Vec::new();
        for (ns, links) in cover(&deletions) {
            if links.len() > 1 && self.group_delete_safe(ns, &dying) {
                let links = links
                    .iter()
                    .map(|l| LinkRef {
                        ifindex: l.ifindex,
                        name: l.name.clone(),
                    })
                    .collect();
                ops.push(Op::DeleteLinks { ns, links });
            } else {
                ops.extend(links.iter().map(|l| Op::DeleteLink {
                    ns,
                    ifindex: l.ifindex,
                    name: l.name.clone(),
                }));
            }
        }
        ops
    }

    /// The deletions of `links` (sorted): one per VETH pair whose ends are both listed (by
    /// alias), one per other link; none for those whose delete, or whose pair's, waits.
    fn deletions<'a>(&self, links: &[(NsId, &'a KernelLink)], now: Duration) -> Vec<Deletion<'a>> {
        let ends_of = |l: &'a KernelLink| {
            l.alias
                .as_deref()
                .and_then(|a| self.keys.split_link_alias(a))
        };
        let mut by_ends: HashMap<(&str, &str), Vec<(NsId, &KernelLink)>> = HashMap::default();
        for (ns, l) in links {
            if let Some(ends) = ends_of(l) {
                by_ends.entry(ends).or_default().push((*ns, *l));
            }
        }
        let waiting = |(ns, l): &(NsId, &KernelLink)| self.link_waiting(*ns, l.ifindex, now);
        let mut out = Vec::new();
        for end in links {
            let mut options = vec![*end];
            if let Some((name, peer)) = ends_of(end.1) {
                match by_ends.get(&(peer, name)).map(Vec::as_slice) {
                    // The other end deletes this pair (or these pairs).
                    Some(_) if peer < name => continue,
                    // One link for each end: either will do.
                    Some([other]) if peer != name && by_ends[&(name, peer)].len() == 1 => {
                        options.push(*other);
                    }
                    _ => {}
                }
            }
            if !options.iter().any(waiting) {
                out.push(Deletion { options });
            }
        }
        out
    }

    /// True when a group deletion in `ns` takes nothing but links this plan deletes: every
    /// link believed to be in the transient group there is `dying`.
    fn group_delete_safe(&self, ns: NsId, dying: &HashSet<(NsId, u32)>) -> bool {
        let Some(View::Known(links)) = self.views.get(&ns) else {
            return false;
        };
        links
            .values()
            .filter(|l| l.group == self.delete_group)
            .all(|l| dying.contains(&(ns, l.ifindex)))
    }
}

/// The links to delete in each namespace: each deletion in the first namespace of its
/// options already chosen; namespaces are chosen first where a deletion has no other
/// option, then, while deletions are left, the one that serves the most of them (the
/// smallest on a tie, so that plans are deterministic). Links sorted by index.
fn cover<'a>(deletions: &[Deletion<'a>]) -> BTreeMap<NsId, Vec<&'a KernelLink>> {
    let mut chosen: BTreeSet<NsId> = deletions
        .iter()
        .filter(|d| d.places().count() == 1)
        .flat_map(Deletion::places)
        .collect();
    let mut out: BTreeMap<NsId, Vec<&KernelLink>> = BTreeMap::new();
    let mut open: Vec<&Deletion> = deletions.iter().collect();
    loop {
        open.retain(
            |d| match d.options.iter().find(|(ns, _)| chosen.contains(ns)) {
                Some((ns, link)) => {
                    out.entry(*ns).or_default().push(link);
                    false
                }
                None => true,
            },
        );
        let mut served: BTreeMap<NsId, usize> = BTreeMap::new();
        for ns in open.iter().flat_map(|d| d.places()) {
            *served.entry(ns).or_default() += 1;
        }
        // The most served; of those, the smallest.
        let best = served
            .into_iter()
            .max_by(|(a, x), (b, y)| x.cmp(y).then(b.cmp(a)));
        match best {
            Some((ns, _)) => chosen.insert(ns),
            None => break,
        };
    }
    for links in out.values_mut() {
        links.sort_by_key(|l| l.ifindex);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(ino: u64) -> NsId {
        NsId { dev: 1, ino }
    }

    fn link(ifindex: u32) -> KernelLink {
        KernelLink::veth(ifindex, &format!("l{ifindex}"))
    }

    fn indexes(cover: &BTreeMap<NsId, Vec<&KernelLink>>) -> Vec<(u64, Vec<u32>)> {
        cover
            .iter()
            .map(|(ns, links)| (ns.ino, links.iter().map(|l| l.ifindex).collect()))
            .collect()
    }

    #[test]
    fn pairs_go_where_most_deletions_are_served() {
        let links: Vec<KernelLink> = (0..10).map(link).collect();
        let d = |options: &[(u64, usize)]| Deletion {
            options: options.iter().map(|(n, i)| (ns(*n), &links[*i])).collect(),
        };
        // A ring of pairs over namespaces 1..=4 (pair i between i and i+1), and a lone
        // link in namespace 3: namespace 3 is taken for it, and serves pairs 2-3 and 3-4;
        // of the rest (1-2, 4-1) namespace 1 serves both.
        let deletions = [
            d(&[(1, 0), (2, 1)]),
            d(&[(2, 2), (3, 3)]),
            d(&[(3, 4), (4, 5)]),
            d(&[(4, 6), (1, 7)]),
            d(&[(3, 8)]),
        ];
        assert_eq!(
            indexes(&cover(&deletions)),
            vec![(1, vec![0, 7]), (3, vec![3, 4, 8])]
        );
        // Without the lone link: ties go to the smallest namespace.
        assert_eq!(
            indexes(&cover(&deletions[..4])),
            vec![(1, vec![0, 7]), (3, vec![3, 4])]
        );
        // The order deletions come in does not change the cover.
        let mut reversed = deletions.to_vec();
        reversed.reverse();
        assert_eq!(cover(&reversed), cover(&deletions));
    }

    #[test]
    fn a_namespace_serving_many_pairs_takes_them_all() {
        let links: Vec<KernelLink> = (0..40).map(link).collect();
        // Twenty pairs, each with one end in namespace 9 and the other alone elsewhere.
        let deletions: Vec<Deletion> = (0..20)
            .map(|i| Deletion {
                options: vec![
                    (ns(100 + i as u64), &links[2 * i]),
                    (ns(9), &links[2 * i + 1]),
                ],
            })
            .collect();
        let cover = cover(&deletions);
        assert_eq!(cover.len(), 1);
        assert_eq!(cover[&ns(9)].len(), 20);
    }
}
