//! The marks that tell this agent's kernel objects from everyone else's, chosen per label.
//!
//! Links carry the agent's link group (32 bits, derived from the label) and an alias naming
//! the label, so labels never mix them up. A second group of its own, derived from the link
//! group, holds the links it is deleting for the instant between moving them there and
//! deleting the whole group in one request per namespace (`ip link del group`). Routes and neighbour entries only have an 8-bit
//! protocol number: the default is taken from a label-derived sequence through the numbers
//! `rtnetlink.h` leaves unassigned, skipping those other labels have recorded, and recorded
//! itself, so that it stays the same across restarts.

use super::marks_key;
use crate::keys::{KeyTree, ROOT};
use anyhow::{anyhow, Context};
use etcd_client::{Client, GetOptions};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// How the agent marks what it owns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marks {
    /// `rtm_protocol` of its routes and `NDA_PROTOCOL` of its neighbour entries.
    pub route_protocol: u8,
    /// `IFLA_GROUP` of its links.
    pub link_group: u32,
    /// `IFLA_GROUP` its links are moved into just before they are deleted together; 0 in
    /// records written before it existed (one is then chosen and recorded).
    #[serde(default)]
    pub delete_group: u32,
}

/// Marks given by flags or the configuration file (`None` = choose).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Requested {
    /// `--route-protocol`.
    pub route_protocol: Option<u8>,
    /// `--link-group`.
    pub link_group: Option<u32>,
}

/// Protocol numbers a default may take: 100-254 without those `rtnetlink.h` assigns to
/// routing daemons (186 BGP ... 192 EIGRP). Below 100 most are assigned or commonly used.
pub fn protocol_pool() -> impl Iterator<Item = u8> + Clone {
    (100..=254u8).filter(|p| !(186..=192).contains(p))
}

/// The pool in the order a label tries it: from a label-derived start, wrapping around.
pub fn protocol_sequence(label: &str) -> Vec<u8> {
    let pool: Vec<u8> = protocol_pool().collect();
    let start = (fnv1a(b"nsagent-protocol/", label.as_bytes()) as usize) % pool.len();
    pool[start..]
        .iter()
        .chain(&pool[..start])
        .copied()
        .collect()
}

/// The default protocol of `label`: the first number of its sequence no other label took;
/// `None` when every one is taken.
pub fn choose_protocol(label: &str, taken: &BTreeSet<u8>) -> Option<u8> {
    protocol_sequence(label)
        .into_iter()
        .find(|p| !taken.contains(p))
}

/// The transient groups the agent with `link_group` may delete its links through, in the
/// order it tries them: derived from the link group, in the range default link groups use
/// (clear of 0, of small numbers admins use by hand, of what `ip` prints as negative), never
/// the link group itself.
pub fn delete_group_sequence(link_group: u32) -> impl Iterator<Item = u32> {
    (0u32..)
        .map(move |i| {
            let seed = [link_group.to_le_bytes(), i.to_le_bytes()].concat();
            (fnv1a(b"nsagent-delete/", &seed) & 0x7fff_ffff) | 0x4000_0000
        })
        .filter(move |g| *g != link_group)
}

/// The transient deletion group of `link_group` when nothing else is known: the first of
/// its sequence.
pub fn default_delete_group(link_group: u32) -> u32 {
    delete_group_sequence(link_group)
        .next()
        .unwrap_or(link_group ^ 1)
}

/// The transient deletion group of `link_group`: the first of its sequence that is not in
/// `taken` (other agents' groups).
pub fn choose_delete_group(link_group: u32, taken: &BTreeSet<u32>) -> u32 {
    delete_group_sequence(link_group)
        .take(1024)
        .find(|g| !taken.contains(g))
        .unwrap_or_else(|| default_delete_group(link_group))
}

/// A group one of `a` and `b` deletes through that the other also uses, if any.
fn shared_delete_group(a: &Marks, b: &Marks) -> Option<u32> {
    [
        (a.delete_group, b.link_group),
        (a.delete_group, b.delete_group),
        (a.link_group, b.delete_group),
    ]
    .into_iter()
    .find(|(x, y)| *x != 0 && x == y)
    .map(|(x, _)| x)
}

fn fnv1a(prefix: &[u8], bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in prefix.iter().chain(bytes) {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// Marks that would make this agent indistinguishable from a running one with another
/// label: retrying cannot help, the operator has to choose.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// Another agent's record, as read at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtherAgent {
    /// Its label.
    pub label: String,
    /// Its recorded marks.
    pub marks: Marks,
    /// Whether it is running (its liveness key exists).
    pub running: bool,
}

/// What start-up decided, and what the operator should be told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The marks to use.
    pub marks: Marks,
    /// The record to write (`None` when the recorded one is right).
    pub write: Option<Marks>,
    /// Warnings for the log.
    pub warnings: Vec<String>,
}

/// Decides the marks of `keys`' agent from what was requested, what it recorded earlier and
/// what the other agents recorded (`None` when they cannot be read). Refuses marks that
/// would make it indistinguishable from a running agent with another label.
pub fn decide(
    keys: &KeyTree,
    requested: Requested,
    recorded: Option<Marks>,
    others: Option<&[OtherAgent]>,
) -> anyhow::Result<Decision> {
    let mut warnings = Vec::new();
    let taken: BTreeSet<u8> = others
        .unwrap_or_default()
        .iter()
        .map(|o| o.marks.route_protocol)
        .collect();
    let route_protocol = match (requested.route_protocol, recorded) {
        (Some(p), _) => p,
        (None, Some(r)) => r.route_protocol,
        (None, None) => choose_protocol(keys.label(), &taken).unwrap_or_else(|| {
            warnings.push(format!(
                "every routing-protocol number from 100 to 254 is recorded by another label; \
                 sharing one: set --route-protocol for label {}",
                keys.label()
            ));
            protocol_sequence(keys.label())[0]
        }),
    };
    let link_group = requested
        .link_group
        .or(recorded.map(|r| r.link_group))
        .unwrap_or_else(|| keys.default_link_group());
    let taken_groups: BTreeSet<u32> = others
        .unwrap_or_default()
        .iter()
        .flat_map(|o| [o.marks.link_group, o.marks.delete_group])
        .collect();
    let delete_group = recorded
        .filter(|r| r.link_group == link_group && r.delete_group != 0)
        .filter(|r| r.delete_group != link_group)
        .map(|r| r.delete_group)
        .unwrap_or_else(|| choose_delete_group(link_group, &taken_groups));
    let marks = Marks {
        route_protocol,
        link_group,
        delete_group,
    };
    if let Some(old) = recorded.filter(|r| r.route_protocol != route_protocol) {
        warnings.push(format!(
            "route protocol changed from {} (recorded) to {route_protocol}: routes and neighbour \
             entries marked {} are no longer recognised as this agent's and stay as they are",
            old.route_protocol, old.route_protocol
        ));
    }
    if let Some(old) = recorded.filter(|r| r.link_group != link_group) {
        warnings.push(format!(
            "link group changed from {} (recorded) to {link_group}: links not aliased by this \
             agent in group {} are no longer recognised as its own",
            old.link_group, old.link_group
        ));
    }
    for other in others.unwrap_or_default() {
        let shared: Vec<String> = [
            (other.marks.route_protocol == route_protocol)
                .then(|| format!("route protocol {route_protocol}")),
            (other.marks.link_group == link_group).then(|| format!("link group {link_group}")),
            shared_delete_group(&marks, &other.marks)
                .map(|g| format!("link group {g} (one of them deletes links through it)")),
        ]
        .into_iter()
        .flatten()
        .collect();
        if shared.is_empty() {
            continue;
        }
        let what = format!(
            "the agent with label {} recorded the same {}; two agents with one mark modify and \
             delete each other's routes, neighbour entries or links",
            other.label,
            shared.join(" and ")
        );
        if other.running {
            return Err(Refused(format!(
                "{what}; it is running: choose another --route-protocol / --link-group for \
                 label {}",
                keys.label()
            ))
            .into());
        }
        warnings.push(format!(
            "{what} (it is not running now; delete {}{}/{} if it is gone for good)",
            ROOT,
            other.label,
            super::MARKS_SUFFIX
        ));
    }
    Ok(Decision {
        marks,
        write: (recorded != Some(marks)).then_some(marks),
        warnings,
    })
}

/// Reads the recorded marks and the other agents' records, decides (see [`decide`]), writes
/// the record when it changed, and logs what the operator should know.
pub async fn resolve(
    client: &mut Client,
    keys: &KeyTree,
    requested: Requested,
) -> anyhow::Result<Marks> {
    let key = marks_key(keys);
    let own = client
        .get(key.as_str(), None)
        .await
        .with_context(|| format!("cannot read {key}"))?;
    let recorded = match own.kvs().first() {
        Some(kv) => Some(
            serde_json::from_slice::<Marks>(kv.value())
                .map_err(|e| anyhow!("{key}: unreadable record ({e}); delete it to choose anew"))?,
        ),
        None => None,
    };
    let others = match read_others(client, keys).await {
        Ok(others) => Some(others),
        Err(e) => {
            tracing::info!(
                "cannot read other agents' records under {ROOT} ({e:#}); the marks of label {} \
                 are not checked against theirs",
                keys.label()
            );
            None
        }
    };
    let decision = decide(keys, requested, recorded, others.as_deref())?;
    for warning in &decision.warnings {
        tracing::warn!("{warning}");
    }
    if let Some(marks) = decision.write {
        let value = serde_json::to_string(&marks)?;
        client
            .put(key.as_str(), value, None)
            .await
            .with_context(|| format!("cannot write {key}"))?;
    }
    Ok(decision.marks)
}

/// The marks records of agents with other labels, and whether each runs.
async fn read_others(client: &mut Client, keys: &KeyTree) -> anyhow::Result<Vec<OtherAgent>> {
    let listing = client
        .kv_client()
        .max_decoding_message_size(256 << 20)
        .get(ROOT, Some(GetOptions::new().with_prefix().with_keys_only()))
        .await?;
    let mut labels = BTreeSet::new();
    let mut running = BTreeSet::new();
    for kv in listing.kvs() {
        let Ok(key) = kv.key_str() else { continue };
        let Some((label, rest)) = key.strip_prefix(ROOT).and_then(|r| r.split_once('/')) else {
            continue;
        };
        if label == keys.label() {
            continue;
        }
        if rest == super::MARKS_SUFFIX {
            labels.insert(label.to_string());
        } else if rest == crate::status::LIVENESS_SUFFIX {
            running.insert(label.to_string());
        }
    }
    let mut others = Vec::new();
    for label in labels {
        let key = marks_key(&KeyTree::new(&label));
        let resp = client.get(key.as_str(), None).await?;
        let Some(kv) = resp.kvs().first() else {
            continue;
        };
        match serde_json::from_slice::<Marks>(kv.value()) {
            Ok(marks) => others.push(OtherAgent {
                running: running.contains(&label),
                label,
                marks,
            }),
            Err(e) => tracing::warn!("{key}: unreadable record of another agent: {e}"),
        }
    }
    Ok(others)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn other(label: &str, route_protocol: u8, link_group: u32, running: bool) -> OtherAgent {
        OtherAgent {
            label: label.into(),
            marks: Marks {
                route_protocol,
                link_group,
                delete_group: default_delete_group(link_group),
            },
            running,
        }
    }

    #[test]
    fn the_pool_leaves_out_assigned_numbers() {
        let pool: Vec<u8> = protocol_pool().collect();
        assert_eq!(pool.len(), 148);
        for assigned in [0, 2, 3, 4, 11, 12, 16, 42, 80, 99, 186, 188, 192, 255] {
            assert!(!pool.contains(&assigned), "{assigned}");
        }
        let seq = protocol_sequence("vpp1");
        assert_eq!(seq.len(), pool.len());
        assert_eq!(seq.iter().collect::<BTreeSet<_>>().len(), pool.len());
    }

    #[test]
    fn labels_get_protocols_others_have_not_taken() {
        let (a, b) = (KeyTree::new("uxlab"), KeyTree::new("uxlab2"));
        let first = decide(&a, Requested::default(), None, Some(&[])).unwrap();
        let others = [other(
            "uxlab",
            first.marks.route_protocol,
            first.marks.link_group,
            true,
        )];
        let second = decide(&b, Requested::default(), None, Some(&others)).unwrap();
        assert_ne!(first.marks.route_protocol, second.marks.route_protocol);
        assert_ne!(first.marks.link_group, second.marks.link_group);
        assert_eq!(first.write, Some(first.marks));
        // Even when b's own sequence starts at a's number.
        let taken = [other("x", protocol_sequence("uxlab2")[0], 7, true)];
        let third = decide(&b, Requested::default(), None, Some(&taken)).unwrap();
        assert_eq!(third.marks.route_protocol, protocol_sequence("uxlab2")[1]);
    }

    #[test]
    fn a_recorded_choice_is_kept_across_restarts() {
        let keys = KeyTree::new("uxlab");
        let recorded = Marks {
            route_protocol: 150,
            link_group: 0x4000_0007,
            delete_group: 0x4000_0008,
        };
        // Another label that started meanwhile and took the same sequence start does not
        // move it; nothing is written again.
        let others = [other("late", 151, 9, false)];
        let d = decide(&keys, Requested::default(), Some(recorded), Some(&others)).unwrap();
        assert_eq!(d.marks, recorded);
        assert_eq!(d.write, None);
        assert!(d.warnings.is_empty());
    }

    #[test]
    fn marks_shared_with_a_running_agent_are_refused_and_with_a_stopped_one_warned() {
        let keys = KeyTree::new("uxlab2");
        let requested = Requested {
            route_protocol: Some(196),
            link_group: None,
        };
        let running = [other("uxlab", 196, 5, true)];
        let e = decide(&keys, requested, None, Some(&running)).unwrap_err();
        let e = e.to_string();
        assert!(
            e.contains("label uxlab ") && e.contains("route protocol 196"),
            "{e}"
        );
        assert!(e.contains("--route-protocol"), "{e}");
        let stopped = [other("uxlab", 196, 5, false)];
        let d = decide(&keys, requested, None, Some(&stopped)).unwrap();
        assert_eq!(d.marks.route_protocol, 196);
        assert!(d.warnings[0].contains("not running"), "{:?}", d.warnings);
    }

    #[test]
    fn a_requested_change_is_written_and_warned_about() {
        let keys = KeyTree::new("a");
        let recorded = Marks {
            route_protocol: 150,
            link_group: 77,
            delete_group: 78,
        };
        let requested = Requested {
            route_protocol: Some(201),
            link_group: None,
        };
        let d = decide(&keys, requested, Some(recorded), None).unwrap();
        assert_eq!(
            d.marks,
            Marks {
                route_protocol: 201,
                link_group: 77,
                delete_group: 78,
            }
        );
        assert_eq!(d.write, Some(d.marks));
        assert!(
            d.warnings[0].contains("changed from 150"),
            "{:?}",
            d.warnings
        );
    }

    #[test]
    fn the_delete_group_is_derived_from_the_link_group_and_kept_clear_of_others() {
        let keys = KeyTree::new("uxlab");
        let link_group = keys.default_link_group();
        let first = decide(&keys, Requested::default(), None, Some(&[])).unwrap();
        assert_eq!(first.marks.delete_group, default_delete_group(link_group));
        assert_ne!(first.marks.delete_group, link_group);
        assert!((0x4000_0000..=0x7fff_ffff).contains(&first.marks.delete_group));
        // Another label whose link group is our first choice: the next one is taken.
        let squatter = [other("x", 120, default_delete_group(link_group), false)];
        let d = decide(&keys, Requested::default(), None, Some(&squatter)).unwrap();
        assert_eq!(
            Some(d.marks.delete_group),
            delete_group_sequence(link_group).nth(1)
        );
        assert!(d.warnings.is_empty(), "{:?}", d.warnings);
    }

    #[test]
    fn an_old_record_without_delete_group_gets_one_written() {
        let keys = KeyTree::new("uxlab");
        let old: Marks = serde_json::from_str(r#"{"route_protocol":150,"link_group":77}"#).unwrap();
        assert_eq!(old.delete_group, 0);
        let d = decide(&keys, Requested::default(), Some(old), Some(&[])).unwrap();
        assert_eq!(d.marks.link_group, 77);
        assert_eq!(d.marks.delete_group, default_delete_group(77));
        assert_eq!(d.write, Some(d.marks));
        // A changed link group takes a delete group derived from the new one.
        let recorded = d.marks;
        let requested = Requested {
            route_protocol: None,
            link_group: Some(5000),
        };
        let d = decide(&keys, requested, Some(recorded), Some(&[])).unwrap();
        assert_eq!(d.marks.delete_group, default_delete_group(5000));
    }

    #[test]
    fn a_delete_group_shared_with_a_running_agent_is_refused() {
        let keys = KeyTree::new("uxlab2");
        // The running agent's link group is the one our recorded record deletes through.
        let recorded = Marks {
            route_protocol: 150,
            link_group: 0x4000_0100,
            delete_group: 0x4000_0200,
        };
        let running = [other("uxlab", 151, 0x4000_0200, true)];
        let e = decide(&keys, Requested::default(), Some(recorded), Some(&running))
            .unwrap_err()
            .to_string();
        assert!(e.contains("link group 1073742336"), "{e}");
        let stopped = [other("uxlab", 151, 0x4000_0200, false)];
        let d = decide(&keys, Requested::default(), Some(recorded), Some(&stopped)).unwrap();
        assert!(d.warnings[0].contains("deletes links"), "{:?}", d.warnings);
    }
}
