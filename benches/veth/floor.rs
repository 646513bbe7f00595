//! The floors: the same links made and removed by `ip` (with iproute2's defaults) in the same
//! run, with no agent running.

use super::plan::Plan;
use crate::common;
use crate::support::{ip_batch, Watcher};
use nsagent::keys::KeyTree;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How long `ip` may take to make or remove every link of one size.
const TIMEOUT: Duration = Duration::from_secs(600);

/// The floors of one size.
pub struct Floors {
    /// `ip -batch` creating every pair with its alias and address.
    pub create: Duration,
    /// `ip` processes that took.
    pub create_processes: usize,
    /// One `ip -n NS link del group G` per namespace.
    pub group_delete: Duration,
    /// `ip -batch` deleting one end per pair, one by one (when measured).
    pub one_by_one_delete: Option<Duration>,
}

/// Measures every floor of `p` (links made with the agent's `group` and aliases); leaves
/// no link behind.
pub fn measure(p: &Plan, keys: &KeyTree, group: u32, one_by_one: bool) -> Floors {
    let (create, create_processes) = ip_create(p, keys, group);
    let one_by_one_delete = one_by_one.then(|| {
        let t = ip_delete_one_by_one(p);
        ip_create(p, keys, group);
        t
    });
    let group_delete = ip_delete_by_group(p, group);
    Floors {
        create,
        create_processes,
        group_delete,
        one_by_one_delete,
    }
}

/// The links of the agent's bulk creation made by `ip -batch` with iproute2's defaults (one
/// process for the pairs, one per namespace for aliases and addresses); the time until every
/// address is there, and the number of `ip` processes. The agent's ends differ in asking for
/// one queue each way and bringing their own MAC (`netlink::veth`), which is cheaper for the
/// kernel than `ip`'s one queue per CPU.
fn ip_create(p: &Plan, keys: &KeyTree, group: u32) -> (Duration, usize) {
    let watcher = Watcher::start(&p.namespaces);
    let started = Instant::now();
    let mut links = String::new();
    let mut per_ns: BTreeMap<&str, String> = BTreeMap::new();
    for (a, b) in p.pair_ends() {
        links.push_str(&format!(
            "link add {} netns {} group {group} mtu 1500 up type veth peer name {} netns {} group {group} mtu 1500\n",
            a.host, a.ns, b.host, b.ns
        ));
        // The kernel refuses IFF_UP for the peer in the create request (ENOTCONN).
        for (e, peer, up) in [(a, &b.name, ""), (b, &a.name, " up")] {
            let s = per_ns.entry(&e.ns).or_default();
            s.push_str(&format!(
                "link set dev {} alias {}{up}\n",
                e.host,
                keys.link_alias(&e.name, peer)
            ));
            s.push_str(&format!("addr add {}/24 dev {}\n", e.addr, e.host));
        }
    }
    ip_batch(&[], &links);
    for (ns, cmds) in &per_ns {
        ip_batch(&["-n", ns], cmds);
    }
    let done = watcher
        .wait_all(&p.addresses(), TIMEOUT)
        .expect("ip -batch did not make every address");
    (done - started, 1 + per_ns.len())
}

/// Deletes the pairs `ip_create` made one by one (`link del` of end a of each pair, one
/// `ip -batch` per namespace); the time until every address is gone.
fn ip_delete_one_by_one(p: &Plan) -> Duration {
    let mut per_ns: BTreeMap<&str, String> = BTreeMap::new();
    for (a, _) in p.pair_ends() {
        per_ns
            .entry(&a.ns)
            .or_default()
            .push_str(&format!("link del {}\n", a.host));
    }
    let watcher = Watcher::start(&p.namespaces);
    let started = Instant::now();
    for (ns, cmds) in &per_ns {
        ip_batch(&["-n", ns], cmds);
    }
    let done = watcher
        .wait_all(&p.addresses_gone(), TIMEOUT)
        .expect("ip -batch did not delete every end");
    done - started
}

/// Deletes the pairs `ip_create` made by group: `ip -n NS link del group G` for every
/// namespace in turn (one finding its links gone with their peers fails, harmlessly); the
/// time until every address is gone.
fn ip_delete_by_group(p: &Plan, group: u32) -> Duration {
    let watcher = Watcher::start(&p.namespaces);
    let group = group.to_string();
    let started = Instant::now();
    for ns in &p.namespaces {
        let _ = common::try_ip(&["-n", ns, "link", "del", "group", &group]);
    }
    let done = watcher
        .wait_all(&p.addresses_gone(), TIMEOUT)
        .expect("ip link del group did not delete every end");
    done - started
}
