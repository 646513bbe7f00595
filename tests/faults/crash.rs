//! `kill -9` in the middle of a bulk apply of 1000 keys, then a restart.

use super::*;
use std::collections::{BTreeMap, BTreeSet};

/// `ip [-n NS] -j -d addr show [dev NAME]` as JSON (an empty list when it fails).
fn ip_json(ns: Option<&str>, dev: Option<&str>) -> Vec<Value> {
    let mut args: Vec<&str> = Vec::new();
    if let Some(ns) = ns {
        args.extend(["-n", ns]);
    }
    args.extend(["-j", "-d", "addr", "show"]);
    if let Some(dev) = dev {
        args.extend(["dev", dev]);
    }
    try_ip(&args)
        .ok()
        .and_then(|out| serde_json::from_str(&out).ok())
        .unwrap_or_default()
}

/// Names of the links of namespace `ns` that start with `prefix`.
fn names_with(ns: &str, prefix: &str) -> Vec<String> {
    let out = try_ip(&["-n", ns, "-o", "link", "show"]).unwrap_or_default();
    out.lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

/// The `nsid → namespace name` map of namespace `ns` (`ip -n NS netns list-id`).
fn netns_ids(ns: &str) -> BTreeMap<u64, String> {
    let out = ip(&["-n", ns, "-j", "netns", "list-id"]);
    let list: Vec<Value> = serde_json::from_str(&out).unwrap_or_default();
    list.iter()
        .filter_map(|e| Some((e["nsid"].as_u64()?, e["name"].as_str()?.to_string())))
        .collect()
}

/// The IPv4 and global IPv6 addresses of a link in `ip -j addr` form, sorted.
fn addresses(link: &Value) -> Vec<String> {
    let mut all: Vec<String> = link["addr_info"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["family"] == "inet" || a["scope"] != "link")
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap_or(""), a["prefixlen"]))
        .collect();
    all.sort();
    all
}

/// The group of a link as `ip -j` prints it (a number, or a name from /etc/iproute2/group).
fn group_of(link: &Value) -> String {
    match &link["group"] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One end of a pair of the bulk test.
struct End {
    name: String,
    host: String,
    ns: String,
    peer: String,
    address: String,
}

/// The bulk test's world: four namespaces and 500 pairs (1000 keys), each pair across two
/// of them; ends are named `<prefix>a<i>` / `<prefix>b<i>`.
struct Bulk<'a> {
    env: &'a TestEnv,
    spaces: Vec<String>,
    ends: Vec<End>,
    keys: nsagent::keys::KeyTree,
    group: String,
}

impl<'a> Bulk<'a> {
    fn new(env: &'a TestEnv, pairs: usize) -> Bulk<'a> {
        let spaces: Vec<String> = ["x", "y", "z", "w"].iter().map(|s| env.ns(s)).collect();
        let mut ends = Vec::new();
        for i in 0..pairs {
            let subnet = format!("10.{}.{}", 230 + i / 250, i % 250);
            let (a, b) = (format!("a{i}"), format!("b{i}"));
            for (n, (name, peer)) in [(a.clone(), b.clone()), (b, a)].into_iter().enumerate() {
                ends.push(End {
                    host: env.host(&name),
                    ns: spaces[(i + n) % spaces.len()].clone(),
                    address: format!("{subnet}.{}/24", n + 1),
                    name,
                    peer,
                });
            }
        }
        let keys = nsagent::keys::KeyTree::new(&env.label);
        let group = keys.default_link_group().to_string();
        Bulk {
            env,
            spaces,
            ends,
            keys,
            group,
        }
    }

    /// Writes every end in one transaction.
    async fn put_all(&self) {
        let ops: Vec<etcd_client::TxnOp> = self
            .ends
            .iter()
            .map(|e| {
                let value = veth_json(&e.name, &e.host, &e.peer, named(&e.ns), &[&e.address]);
                etcd_client::TxnOp::put(self.env.key("interface", &e.name), value, None)
            })
            .collect();
        let mut client = self.env.etcd.client().await;
        client
            .txn(etcd_client::Txn::new().and_then(ops))
            .await
            .expect("one transaction of all keys");
    }

    fn is_end(&self, name: &str) -> bool {
        name.starts_with(&self.env.host("a")) || name.starts_with(&self.env.host("b"))
    }

    /// How many ends exist in the kernel.
    fn count(&self) -> usize {
        self.spaces
            .iter()
            .flat_map(|ns| names_with(ns, &self.env.p))
            .filter(|n| self.is_end(n))
            .count()
    }

    fn by_host(&self) -> BTreeMap<&str, &End> {
        self.ends.iter().map(|e| (e.host.as_str(), e)).collect()
    }

    /// Every end that exists carries the agent's link group.
    fn assert_all_marked(&self) {
        for ns in &self.spaces {
            for l in ip_json(Some(ns), None) {
                let name = l["ifname"].as_str().unwrap_or_default();
                if self.is_end(name) {
                    assert_eq!(group_of(&l), self.group, "{name} in {ns} exists unmarked");
                }
            }
        }
    }

    /// `Ok` once every end is in its namespace with its alias and address.
    fn applied(&self) -> Result<(), String> {
        let by_host = self.by_host();
        let mut missing = BTreeSet::from_iter(by_host.keys().copied());
        for ns in &self.spaces {
            for l in ip_json(Some(ns), None) {
                let name = l["ifname"].as_str().unwrap_or_default();
                let Some(e) = by_host.get(name) else { continue };
                let alias = self.keys.link_alias(&e.name, &e.peer);
                if &e.ns == ns
                    && l["ifalias"].as_str() == Some(&alias)
                    && addresses(&l) == [e.address.clone()]
                {
                    missing.remove(name);
                }
            }
        }
        match missing.first() {
            None => Ok(()),
            Some(first) => Err(format!("{} ends not applied, e.g. {first}", missing.len())),
        }
    }

    /// Every end exists once, in its namespace, marked, up, with its peer; no link marked as
    /// the agent's is left (here or in the default namespace) that no configuration asks for.
    fn assert_once_with_peers_and_no_orphans(&self) {
        let by_host = self.by_host();
        // host name → (namespace, ifindex, peer's namespace, peer's ifindex)
        let mut seen: BTreeMap<String, (String, u64, String, u64)> = BTreeMap::new();
        let mut namespaces: Vec<Option<&str>> =
            self.spaces.iter().map(|s| Some(s.as_str())).collect();
        namespaces.push(None);
        for ns in namespaces {
            let ids = ns.map(netns_ids).unwrap_or_default();
            for l in ip_json(ns, None) {
                let name = l["ifname"].as_str().unwrap_or_default().to_string();
                let alias = l["ifalias"].as_str().unwrap_or_default();
                let grouped = group_of(&l) == self.group;
                let Some(e) = by_host.get(name.as_str()) else {
                    let marked = grouped || alias.starts_with(&self.keys.agent_prefix());
                    assert!(!marked, "orphaned owned link {name} in {ns:?}: {l}");
                    continue;
                };
                assert_eq!(ns, Some(e.ns.as_str()), "{name} in the wrong namespace");
                assert!(grouped, "{name} lacks the agent's group: {l}");
                assert_eq!(alias, self.keys.link_alias(&e.name, &e.peer), "{name}");
                let up = l["flags"]
                    .as_array()
                    .is_some_and(|f| f.iter().any(|x| x == "UP"));
                assert!(up, "{name} is down: {l}");
                let peer_ns = l["link_netnsid"]
                    .as_u64()
                    .and_then(|id| ids.get(&id).cloned())
                    .unwrap_or_else(|| panic!("{name}: peer namespace unknown: {l}"));
                let ifindex = l["ifindex"].as_u64().unwrap();
                let peer_index = l["link_index"].as_u64().unwrap();
                let place = (e.ns.clone(), ifindex, peer_ns, peer_index);
                assert!(seen.insert(name.clone(), place).is_none(), "{name} twice");
            }
        }
        assert_eq!(seen.len(), self.ends.len(), "ends present");
        for e in &self.ends {
            let (_, _, peer_ns, peer_index) = &seen[&e.host];
            let peer = &self.env.host(&e.peer);
            let (peer_home, peer_ifindex, ..) = &seen[peer];
            assert_eq!(
                (peer_ns, peer_index),
                (peer_home, peer_ifindex),
                "{}'s peer is not {peer}",
                e.host
            );
        }
    }

    /// Waits until every end's published status is `applied` (and there is no other).
    async fn wait_statuses_applied(&self) {
        let prefix = format!("/vnf-agent/{}/linux/status/v1/interface/", self.env.label);
        let deadline = std::time::Instant::now() + CONVERGE;
        loop {
            let statuses = self.env.etcd.get_prefix(&prefix).await;
            let applied = statuses
                .iter()
                .filter(|(_, v)| {
                    serde_json::from_slice::<Value>(v).is_ok_and(|s| s["state"] == "applied")
                })
                .count();
            if applied == self.ends.len() && statuses.len() == self.ends.len() {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{applied} of {} statuses applied, {} expected",
                statuses.len(),
                self.ends.len()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// What the agent does not own, next to what it creates in the bulk test: a veth pair inside
/// one namespace with an address, a pair across two namespaces marked as another label's (an
/// alias under a label that starts like the agent's, that label's group), and an address on
/// `lo`. Holds their state as made.
struct Foreign {
    /// (namespace, link)
    places: Vec<(String, String)>,
    made: Vec<Vec<Value>>,
}

impl Foreign {
    fn make(bulk: &Bulk) -> Foreign {
        let (env, spaces) = (bulk.env, &bulk.spaces);
        let [f1, f2, f3, f4] = ["f1", "f2", "f3", "f4"].map(|n| env.host(n));
        let other = nsagent::keys::KeyTree::new(format!("{}x", env.label));
        let other_group = other.default_link_group().to_string();
        assert_ne!(other_group, bulk.group);
        let (s0, s1, s2, s3) = (&spaces[0], &spaces[1], &spaces[2], &spaces[3]);
        ip(&[
            "-n", s0, "link", "add", &f1, "type", "veth", "peer", "name", &f2,
        ]);
        ip(&["-n", s0, "addr", "add", "10.199.0.1/24", "dev", &f1]);
        let peer_there = ["peer", "name", &f4, "netns", s2];
        ip(&[
            &["-n", s1, "link", "add", &f3, "type", "veth"][..],
            &peer_there,
        ]
        .concat());
        ip(&[
            "-n",
            s1,
            "link",
            "set",
            &f3,
            "alias",
            &other.link_alias("f3", "f4"),
        ]);
        ip(&["-n", s2, "link", "set", &f4, "group", &other_group]);
        ip(&["-n", s3, "addr", "add", "127.0.0.77/8", "dev", "lo"]);
        let places = [
            (s0, f1),
            (s0, f2),
            (s1, f3),
            (s2, f4),
            (s3, "lo".to_string()),
        ]
        .map(|(ns, link)| (ns.clone(), link))
        .to_vec();
        let mut foreign = Foreign {
            places,
            made: Vec::new(),
        };
        foreign.made = foreign.state();
        assert!(
            foreign.made.iter().all(|l| l.len() == 1),
            "{:?}",
            foreign.made
        );
        foreign
    }

    fn state(&self) -> Vec<Vec<Value>> {
        self.places
            .iter()
            .map(|(ns, link)| ip_json(Some(ns), Some(link)))
            .collect()
    }

    fn assert_untouched(&self) {
        assert_eq!(
            self.state(),
            self.made,
            "links the agent does not own were touched"
        );
    }
}

/// `kill -9` in the middle of one transaction of 1000 keys (500 pairs over four
/// namespaces), then a restart: every pair once, complete, with its peer; the pairs made
/// before the crash kept rather than re-created; no orphaned owned link; what the agent does
/// not own untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_during_a_1000_key_bulk_apply_then_restart_converges_without_duplicates_or_orphans() {
    const PAIRS: usize = 500;
    let Some(env) = TestEnv::new("k") else { return };
    let _w = NetnsGuard::new([env.ns("w")]);
    let bulk = Bulk::new(&env, PAIRS);
    for ns in &bulk.spaces {
        ip(&["netns", "add", ns]);
    }
    let foreign = Foreign::make(&bulk);

    let mut agent = env.agent_with(&[]);
    bulk.put_all().await;
    let fifth = bulk.ends.len() / 5;
    let reached =
        wait_until_async(CONVERGE, Duration::from_millis(2), || bulk.count() >= fifth).await;
    assert!(reached, "the agent never created a fifth of the links");
    agent.kill9();
    // The process is gone, so the kernel state is final.
    let at_crash = bulk.count();
    assert!(
        at_crash < bulk.ends.len(),
        "the bulk apply was complete before the agent was killed"
    );
    assert_eq!(at_crash % 2, 0, "a pair is one request: {at_crash} ends");
    bulk.assert_all_marked();

    agent.restart();
    converge("every end applied after the restart", || bulk.applied()).await;
    let resynced = "in sync with etcd snapshot";
    assert!(
        agent.wait_log(resynced, 1, CONVERGE).await,
        "no resync summary"
    );
    let log = agent.log();
    let summary = log.lines().find(|l| l.contains(resynced)).unwrap();
    eprintln!(
        "killed with {at_crash} of {} ends made; then {summary}",
        bulk.ends.len()
    );
    // The pairs made before the crash are adopted and completed in place, not re-created.
    let created = format!("created={}", PAIRS - at_crash / 2);
    assert!(summary.contains(&created), "expected {created}: {summary}");
    assert!(summary.contains("deleted=0"), "{summary}");
    bulk.assert_once_with_peers_and_no_orphans();
    foreign.assert_untouched();
    bulk.wait_statuses_applied().await;
}
