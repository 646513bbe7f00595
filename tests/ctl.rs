//! `nsagent-ctl` against a real etcd.

mod agent_support;
mod common;

use agent_support::TestEnv;
use common::{require_etcd, Etcd};
use etcd_client::GetOptions;
use std::io::Write;
use std::process::{Command, Output, Stdio};

const CONFIG: &str = "/vnf-agent/vpp1/linux/config/v1/";

/// Runs `nsagent-ctl --etcd-endpoints <etcd> ARGS`, feeding `stdin`, with no endpoint or
/// label from the environment.
fn ctl(endpoint: &str, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_nsagent-ctl"))
        .arg("--etcd-endpoints")
        .arg(endpoint)
        .args(args)
        .env_remove("ETCD_ENDPOINTS")
        .env_remove("MICROSERVICE_LABEL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run nsagent-ctl");
    // A command that does not read its input (a usage error) may exit before it is written.
    let written = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    if let Err(e) = written {
        assert_eq!(
            e.kind(),
            std::io::ErrorKind::BrokenPipe,
            "writing stdin: {e}"
        );
    }
    child.wait_with_output().unwrap()
}

/// Runs `nsagent-ctl` and expects success; returns stdout.
fn ctl_ok(etcd: &Etcd, args: &[&str], stdin: &str) -> String {
    let out = ctl(&etcd.endpoint(), args, stdin);
    assert!(
        out.status.success(),
        "nsagent-ctl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `nsagent-ctl` and expects exit code 1 with a one-line error; returns stderr.
fn ctl_err(endpoint: &str, args: &[&str], stdin: &str) -> String {
    let out = ctl(endpoint, args, stdin);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "nsagent-ctl {args:?}: {stderr}");
    assert!(out.stdout.is_empty(), "output on failure: {:?}", out.stdout);
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "not one line: {stderr}"
    );
    stderr
}

async fn keys(etcd: &Etcd, prefix: &str) -> Vec<String> {
    etcd.get_prefix(prefix)
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect()
}

#[tokio::test]
async fn put_and_get_raw_values_with_full_and_short_keys() {
    let Some(etcd) = require_etcd() else { return };
    // In the agent's tree but outside the configuration: written unchecked, with a warning.
    let out = ctl(
        &etcd.endpoint(),
        &["put", "/vnf-agent/vpp1/notes", "-"],
        "anything",
    );
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "OK\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("warning"));
    assert_eq!(
        ctl_ok(&etcd, &["get", "/vnf-agent/vpp1/notes"], ""),
        "anything\n"
    );

    // A short key from a file, and the same under another label.
    let file = tempfile::NamedTempFile::new().unwrap();
    let value = "{\"name\": \"x\", \"veth\": {\"peer_if_name\": \"y\"}}\n";
    std::fs::write(file.path(), value).unwrap();
    let path = file.path().to_str().unwrap();
    ctl_ok(&etcd, &["put", "interface/x", path], "");
    assert_eq!(
        etcd.get(&format!("{CONFIG}interface/x")).await.unwrap(),
        value.as_bytes()
    );
    assert_eq!(ctl_ok(&etcd, &["get", "interface/x"], ""), value);
    assert_eq!(
        ctl_ok(&etcd, &["--label", "other", "put", "interface/x", path], ""),
        "OK\n"
    );
    assert!(etcd
        .get("/vnf-agent/other/linux/config/v1/interface/x")
        .await
        .is_some());
}

/// Issue 8 §6: keys outside the agent's tree need `--any-key`, and `put` refuses item keys
/// the agent would ignore (an empty name, an unknown kind).
#[tokio::test]
async fn keys_outside_the_agents_tree_need_any_key_and_item_keys_must_be_whole() {
    let Some(etcd) = require_etcd() else { return };
    let err = ctl_err(&etcd.endpoint(), &["put", "/other/key", "-"], "x");
    assert!(
        err.contains("/other/key is outside the keys of agent vpp1"),
        "{err}"
    );
    assert!(err.contains("--any-key"), "{err}");
    let err = ctl_err(&etcd.endpoint(), &["put", "/vnf-agent/vpp2/x", "-"], "x");
    assert!(err.contains("--any-key"), "{err}");
    assert!(
        keys(&etcd, "/").await.is_empty(),
        "written although refused"
    );

    let out = ctl(
        &etcd.endpoint(),
        &["put", "--any-key", "/other/key", "-"],
        "x",
    );
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("unchecked"));
    let err = ctl_err(&etcd.endpoint(), &["get", "/other/key"], "");
    assert!(err.contains("--any-key"), "{err}");
    assert_eq!(
        ctl_ok(&etcd, &["get", "--any-key", "/other/key"], ""),
        "x\n"
    );
    let err = ctl_err(&etcd.endpoint(), &["list", "/"], "");
    assert!(err.contains("--any-key"), "{err}");
    assert_eq!(
        ctl_ok(&etcd, &["list", "--any-key", "/"], ""),
        "/other/key\n"
    );

    for empty_name in ["interface/", &format!("{CONFIG}route/")] {
        let err = ctl_err(&etcd.endpoint(), &["put", empty_name, "-"], "{}");
        assert!(err.contains("the item name is empty"), "{err}");
    }
    let err = ctl_err(&etcd.endpoint(), &["put", "--force", "bogus/x", "-"], "{}");
    assert!(err.contains("not an item key"), "{err}");
    assert_eq!(keys(&etcd, "/vnf-agent/").await, Vec::<String>::new());
}

/// Issue 8 §6: `del --prefix /` deleted every key of every label without asking.
#[tokio::test]
async fn prefix_deletes_beyond_the_agents_tree_need_two_flags() {
    let Some(etcd) = require_etcd() else { return };
    let all = [
        format!("{CONFIG}interface/a"),
        "/vnf-agent/vpp2/linux/config/v1/interface/b".to_string(),
        "/vnf-agent/vpp10/linux/config/v1/interface/c".to_string(),
        "/elsewhere".to_string(),
    ];
    for key in &all {
        etcd.put(key, "{}").await;
    }
    for wide in [
        "/",
        "/vnf-agent/",
        "/vnf-agent/vpp1",
        "/vnf-agent/vpp2/",
        "/elsewhere",
    ] {
        for flags in [&[][..], &["--any-key"][..], &["--yes-delete-all"][..]] {
            let mut args = vec!["del", "--prefix", wide];
            args.extend(flags);
            let err = ctl_err(&etcd.endpoint(), &args, "");
            assert!(
                err.contains("add --any-key --yes-delete-all"),
                "{args:?}: {err}"
            );
        }
    }
    assert_eq!(
        keys(&etcd, "/").await.len(),
        all.len(),
        "deleted although refused"
    );

    let args = [
        "del",
        "--prefix",
        "--any-key",
        "--yes-delete-all",
        "/vnf-agent/vpp2/",
    ];
    assert_eq!(ctl_ok(&etcd, &args, ""), "deleted 1\n");
    assert_eq!(
        ctl_ok(&etcd, &["del", "--prefix", "/vnf-agent/vpp1/"], ""),
        "deleted 1\n"
    );
    let args = ["del", "--prefix", "--any-key", "--yes-delete-all", "/"];
    assert_eq!(ctl_ok(&etcd, &args, ""), "deleted 2\n");
    assert!(keys(&etcd, "/").await.is_empty());
}

/// Issue 8 §6: `nsagent-ctl list --values | head -1` panicked with "Broken pipe".
#[tokio::test]
async fn a_closed_stdout_ends_the_program_quietly() {
    let Some(etcd) = require_etcd() else { return };
    // More than a pipe buffer of output, so that the writer meets the closed pipe.
    let value = format!("{{\"name\": \"{}\"}}", "x".repeat(200));
    let mut client = etcd.client().await;
    let ops: Vec<etcd_client::TxnOp> = (0..1000)
        .map(|i| etcd_client::TxnOp::put(format!("{CONFIG}interface/i{i:04}"), value.clone(), None))
        .collect();
    client
        .txn(etcd_client::Txn::new().and_then(ops))
        .await
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_nsagent-ctl"))
        .args(["--etcd-endpoints", &etcd.endpoint(), "list", "--values"])
        .env_remove("ETCD_ENDPOINTS")
        .env_remove("MICROSERVICE_LABEL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut first).unwrap();
    assert_eq!(first, format!("{CONFIG}interface/i0000\n"));
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert_eq!(stderr, "", "not quiet");
}

#[tokio::test]
async fn get_of_a_missing_key_fails() {
    let Some(etcd) = require_etcd() else { return };
    let err = ctl_err(&etcd.endpoint(), &["get", "interface/nope"], "");
    assert!(err.contains(&format!("{CONFIG}interface/nope")), "{err}");
}

#[tokio::test]
async fn malformed_config_is_refused_unless_forced() {
    let Some(etcd) = require_etcd() else { return };
    let key = format!("{CONFIG}interface/veth1");
    for short_or_full in ["interface/veth1", key.as_str()] {
        let err = ctl_err(&etcd.endpoint(), &["put", short_or_full, "-"], "{\"name\":");
        assert!(err.contains(&key), "{err}");
        assert_eq!(etcd.get(&key).await, None, "written although refused");
    }
    let out = ctl(
        &etcd.endpoint(),
        &["put", "--force", "interface/veth1", "-"],
        "{\"name\":",
    );
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("warning"));
    assert_eq!(etcd.get(&key).await.unwrap(), b"{\"name\":");
}

#[tokio::test]
async fn del_deletes_exactly_one_key_or_a_prefix() {
    let Some(etcd) = require_etcd() else { return };
    for name in [
        "interface/veth1",
        "interface/veth10",
        "interface/veth11",
        "route/r1",
    ] {
        etcd.put(&format!("{CONFIG}{name}"), "{}").await;
    }
    assert_eq!(
        ctl_ok(&etcd, &["del", "interface/veth1"], ""),
        "deleted 1\n"
    );
    assert_eq!(
        keys(&etcd, CONFIG).await,
        [
            format!("{CONFIG}interface/veth10"),
            format!("{CONFIG}interface/veth11"),
            format!("{CONFIG}route/r1")
        ]
    );
    // Issue 8 §6: a missing key is an error, not "deleted 0".
    let err = ctl_err(&etcd.endpoint(), &["del", "interface/veth1"], "");
    assert!(
        err.contains(&format!("{CONFIG}interface/veth1: not found")),
        "{err}"
    );
    let err = ctl_err(&etcd.endpoint(), &["del", "--prefix", "route/x"], "");
    assert!(err.contains("no key starts with"), "{err}");
    let full = format!("{CONFIG}route/r1");
    assert_eq!(ctl_ok(&etcd, &["del", &full], ""), "deleted 1\n");
    assert_eq!(
        ctl_ok(&etcd, &["del", "--prefix", "interface/"], ""),
        "deleted 2\n"
    );
    assert!(keys(&etcd, CONFIG).await.is_empty());
}

#[tokio::test]
async fn list_keys_and_values() {
    let Some(etcd) = require_etcd() else { return };
    etcd.put(&format!("{CONFIG}interface/a"), "{\"name\":\"a\"}")
        .await;
    etcd.put(&format!("{CONFIG}route/r"), "{}\n").await;
    etcd.put("/vnf-agent/vpp2/linux/config/v1/interface/b", "{}")
        .await;
    etcd.put("/elsewhere", "x").await;

    assert_eq!(
        ctl_ok(&etcd, &["list"], ""),
        format!("{CONFIG}interface/a\n{CONFIG}route/r\n")
    );
    assert_eq!(
        ctl_ok(&etcd, &["list", "interface"], ""),
        format!("{CONFIG}interface/a\n")
    );
    assert_eq!(
        ctl_ok(&etcd, &["list", "--values", "/vnf-agent/vpp1/"], ""),
        format!("{CONFIG}interface/a\n{{\"name\":\"a\"}}\n\n{CONFIG}route/r\n{{}}\n\n")
    );
    assert_eq!(
        ctl_ok(&etcd, &["--label", "vpp2", "list"], ""),
        "/vnf-agent/vpp2/linux/config/v1/interface/b\n"
    );
}

#[tokio::test]
async fn examples_are_listed_printed_and_put_in_one_transaction() {
    let Some(etcd) = require_etcd() else { return };
    let list = ctl_ok(&etcd, &["example"], "");
    let names: Vec<&str> = list
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(
        names.contains(&"named-pair") && names.contains(&"default-pair"),
        "{list}"
    );
    // Every kind is accepted: no example is listed as refused.
    assert!(!list.contains("not accepted by the agent"), "{list}");

    let veth1 = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/config/named-pair/interface-veth1.json"
    ))
    .unwrap();
    let shown = ctl_ok(&etcd, &["example", "named-pair"], "");
    assert!(
        shown.contains(&format!("{CONFIG}interface/veth1\n{veth1}")),
        "{shown}"
    );
    assert!(
        keys(&etcd, "/").await.is_empty(),
        "printing wrote something"
    );

    ctl_ok(&etcd, &["example", "named-pair", "--put"], "");
    let resp = etcd
        .client()
        .await
        .get(CONFIG, Some(GetOptions::new().with_prefix()))
        .await
        .unwrap();
    let got: Vec<_> = resp
        .kvs()
        .iter()
        .map(|kv| (kv.key_str().unwrap(), kv.mod_revision()))
        .collect();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].0, format!("{CONFIG}interface/veth1"));
    assert_eq!(got[1].0, format!("{CONFIG}interface/veth2"));
    assert_eq!(got[0].1, got[1].1, "not written in one transaction");
    assert_eq!(resp.kvs()[0].value(), veth1.as_bytes());

    ctl_err(&etcd.endpoint(), &["example", "no-such-example"], "");
}

/// Every example must pass the agent's validation.
#[test]
fn examples_are_valid_config() {
    let tree = nsagent::keys::KeyTree::new("vpp1");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/config");
    for dir in std::fs::read_dir(root).unwrap() {
        for file in std::fs::read_dir(dir.unwrap().path()).unwrap() {
            let path = file.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let Some((kind, item)) = name.strip_suffix(".json").and_then(|n| n.split_once('-'))
            else {
                continue;
            };
            let key = tree.expand(&format!("{kind}/{item}"));
            let (kind, _) = tree.parse(&key).expect("example of a known kind");
            let value = std::fs::read(&path).unwrap();
            if let Err(e) = nsagent::model::decode_value(kind, &key, &value) {
                panic!("{}: {e}", path.display());
            }
        }
    }
}

#[test]
fn unreachable_etcd_and_usage_errors_fail_with_exit_code_1() {
    let port = common::free_port().to_string();
    let started = std::time::Instant::now();
    let err = ctl_err(&format!("127.0.0.1:{port}"), &["get", "x"], "");
    assert!(err.contains(&port), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(8));
    ctl_err("not-an-endpoint", &["get", "x"], "");
    let out = ctl("127.0.0.1:2379", &["frobnicate"], "");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

/// Runs `nsagent-ctl --label <the test's label> ARGS` against the test's etcd.
fn ctl_as(env: &TestEnv, args: &[&str]) -> Output {
    let mut all = vec!["--label", env.label.as_str()];
    all.extend(args);
    ctl(&env.etcd.endpoint(), &all, "")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn veth(name: &str, host: &str, peer: &str, ns: &str, address: &str) -> String {
    agent_support::veth_json(
        name,
        host,
        peer,
        serde_json::json!({"type": "NAMED_NS", "name": ns}),
        &[address],
    )
}

/// `status` and `wait` against the real agent (issue 9 §3, issue 8 §5).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_wait_follow_the_real_agent() {
    let Some(env) = TestEnv::new("s") else { return };
    let not_running = format!("no agent with label {} is running", env.label);
    let out = ctl_as(&env, &["status"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains(&not_running), "{out:?}");
    let out = ctl_as(&env, &["wait", "--timeout", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!("timed out after 1 s: {not_running}")),
        "{out:?}"
    );

    let _agent = env.agent_with(&[]);
    env.wait_agent_running().await;
    let (nsx, nsy) = (env.ns("x"), env.ns("y"));
    env.put(
        "interface",
        "e1",
        veth("e1", &env.host("1"), "e2", &nsx, "10.240.0.1/24"),
    )
    .await;
    env.put(
        "interface",
        "e3",
        veth("e3", &env.host("3"), "e4", &nsx, "10.240.1.1/24"),
    )
    .await;
    env.put(
        "interface",
        "e2",
        veth("e2", &env.host("2"), "e1", &nsy, "10.240.0.2/24"),
    )
    .await;

    let out = ctl_as(&env, &["wait", "e1", "interface/e2", "--timeout", "20"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout(&out), "applied: 2 items\n");
    assert!(agent_support::link(Some(&nsy), &env.host("2")).is_some());

    let out = ctl_as(&env, &["wait", "--timeout", "1"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let listed = stdout(&out);
    assert!(listed.starts_with("interface/e3"), "{listed}");
    assert!(
        listed.contains("pending  peer interface `e4` is not configured"),
        "{listed}"
    );
    assert_eq!(listed.lines().count(), 1, "{listed}");
    assert!(
        stderr(&out).contains("timed out after 1 s: 1 of 3 items are not applied"),
        "{out:?}"
    );
    let out = ctl_as(&env, &["wait", "nope", "--timeout", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("missing  not configured"), "{out:?}");

    let all = ctl_as(&env, &["status"]);
    assert!(all.status.success(), "{all:?}");
    let lines: Vec<String> = stdout(&all).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[0].starts_with("interface/e1") && lines[0].ends_with("applied"));
    assert!(
        lines[2].contains("pending  peer interface `e4`"),
        "{lines:?}"
    );
    let one = ctl_as(&env, &["status", "e3"]);
    assert_eq!(stdout(&one).lines().count(), 1, "{one:?}");
    // Issue 8 §5: an unknown name is "not configured", not "is the agent running?".
    for unknown in ["nope", "route/e1"] {
        let out = ctl_as(&env, &["status", unknown]);
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(
            stderr(&out),
            format!("nsagent-ctl: no item named {unknown} is configured\n")
        );
    }
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&ctl_as(&env, &["status", "--json"]))).unwrap();
    let records = json.as_array().expect("array");
    assert_eq!(records.len(), 3);
    assert_eq!(records[0]["key"], env.key("interface", "e1"));
    assert_eq!(records[0]["kind"], "interface");
    assert_eq!(records[0]["name"], "e1");
    assert_eq!(records[0]["state"], "applied");
    assert_eq!(records[0]["detail"], "");
    assert!(records[0].get("since").is_some(), "{json}");
    assert_eq!(records[2]["state"], "pending");
}

/// `apply`: validates every file first, writes them in one transaction, and follows the
/// agent until they are applied (issue 9 §3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_validates_everything_then_writes_and_waits() {
    let Some(env) = TestEnv::new("p") else { return };
    let _agent = env.agent_with(&[]);
    env.wait_agent_running().await;
    let nsx = env.ns("x");
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("interface")).unwrap();
    std::fs::create_dir(dir.path().join("route")).unwrap();
    let a1 = veth("a1", &env.host("1"), "a2", &nsx, "10.241.0.1/24");
    let a2 = veth("a2", &env.host("2"), "a1", &nsx, "10.241.0.2/24");
    let route = serde_json::json!({"name": "r", "namespace": {"type": "NAMED_NS", "name": nsx},
        "interface": "a1", "dst_ip_addr": "10.242.0.0/16", "gw_addr": "10.241.0.2"});
    std::fs::write(dir.path().join("interface/a1.json"), &a1).unwrap();
    std::fs::write(dir.path().join("a2.json"), &a2).unwrap();
    std::fs::write(dir.path().join("route/r.json"), route.to_string()).unwrap();
    std::fs::write(dir.path().join("README"), "not a value").unwrap();

    // One bad value refuses the whole set.
    let bad = tempfile::tempdir().unwrap();
    std::fs::write(bad.path().join("a1.json"), &a1).unwrap();
    std::fs::write(
        bad.path().join("x.json"),
        r#"{"name": "x", "veth": {}, "mtu": -1}"#,
    )
    .unwrap();
    let dir_arg = bad.path().to_str().unwrap();
    let out = ctl_as(&env, &["apply", dir_arg]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("x.json: "), "{out:?}");
    assert!(
        stderr(&out).contains("nothing written: 1 problem in 2 files"),
        "{out:?}"
    );
    let config = format!("/vnf-agent/{}/linux/config/", env.label);
    assert!(
        keys(&env.etcd, &config).await.is_empty(),
        "written although refused"
    );

    let out = ctl_as(
        &env,
        &["apply", dir.path().to_str().unwrap(), "--timeout", "20"],
    );
    assert!(out.status.success(), "{out:?}");
    let shown = stdout(&out);
    assert!(
        shown.starts_with("wrote 3 keys in 1 transaction\n"),
        "{shown}"
    );
    assert!(shown.contains("applied 3 of 3\n"), "{shown}");
    assert!(shown.ends_with("applied: 3 items\n"), "{shown}");
    assert!(agent_support::link(Some(&nsx), &env.host("1")).is_some());
    let stored = env.etcd.get(&env.key("interface", "a2")).await.unwrap();
    assert_eq!(stored, a2.as_bytes());

    let out = ctl_as(&env, &["apply", "--no-wait", dir.path().to_str().unwrap()]);
    assert_eq!(stdout(&out), "wrote 3 keys in 1 transaction\n", "{out:?}");

    let lone = tempfile::tempdir().unwrap();
    let b1 = veth("b1", &env.host("3"), "b2", &nsx, "10.243.0.1/24");
    std::fs::write(lone.path().join("b1.json"), b1).unwrap();
    let out = ctl_as(
        &env,
        &["apply", lone.path().to_str().unwrap(), "--timeout", "1"],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stdout(&out).contains(
            "interface/b1                   pending  peer interface `b2` is not configured"
        ),
        "{out:?}"
    );
}

/// etcd's default limit of 128 operations per transaction: `apply` uses as few
/// transactions as it allows.
#[tokio::test]
async fn apply_splits_transactions_at_etcds_limit() {
    if common::etcd_binary().is_none() {
        assert!(!common::in_ci(), "etcd not installed (CI=true)");
        return;
    }
    let etcd = Etcd::start_new_with(&["--max-txn-ops=128"]);
    let dir = tempfile::tempdir().unwrap();
    for i in 0..300 {
        let value = format!(r#"{{"name": "i{i}", "veth": {{"peer_if_name": "j{i}"}}}}"#);
        std::fs::write(dir.path().join(format!("i{i}.json")), value).unwrap();
    }
    let out = ctl(
        &etcd.endpoint(),
        &["apply", "--no-wait", dir.path().to_str().unwrap()],
        "",
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout(&out), "wrote 300 keys in 3 transactions\n");
    let resp = etcd
        .client()
        .await
        .get(CONFIG, Some(GetOptions::new().with_prefix()))
        .await
        .unwrap();
    let revisions: std::collections::BTreeSet<i64> =
        resp.kvs().iter().map(|kv| kv.mod_revision()).collect();
    assert_eq!(resp.kvs().len(), 300);
    assert_eq!(revisions.len(), 3, "{revisions:?}");
}

/// `graph` prints the DOT graph of the configuration and status in etcd; `--svg` renders it
/// with Graphviz, and says so when Graphviz is missing.
#[tokio::test]
async fn graph_prints_dot_and_svg() {
    let Some(etcd) = require_etcd() else { return };
    let named = |n: &str| serde_json::json!({"type": "NAMED_NS", "name": n});
    etcd.put(
        &format!("{CONFIG}interface/g1"),
        agent_support::veth_json("g1", "g1", "g2", named("n1"), &[]),
    )
    .await;
    etcd.put(
        "/vnf-agent/vpp1/linux/status/v1/interface/g1",
        r#"{"key": "k", "state": "pending", "detail": "peer interface `g2` is not configured"}"#,
    )
    .await;
    let dot = ctl_ok(&etcd, &["graph"], "");
    for line in [
        r#""interface/g1" -> "interface/g2" [label="peer"];"#,
        r#""interface/g2" [shape=box, style=dashed, label="interface/g2\nnot configured"];"#,
        r#"fillcolor="gold", label="interface/g1\npending: peer interface `g2` is not configured"]"#,
        r#""interface/g1" -> "namespace:named namespace n1" [label="namespace"];"#,
    ] {
        assert!(dot.contains(line), "no {line} in\n{dot}");
    }
    if common::graphviz_installed() {
        let svg = ctl_ok(&etcd, &["graph", "--svg"], "");
        assert!(
            svg.contains("<svg") && svg.contains("interface/g1"),
            "{svg}"
        );
    }
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_nsagent-ctl"))
        .args(["--etcd-endpoints", &etcd.endpoint(), "graph", "--svg"])
        .env("PATH", empty.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("Graphviz is not installed"),
        "{out:?}"
    );
}

/// Every example that `example --put` offers is accepted and applied by the real agent
/// (with namespace and link names made unique to the test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_offered_is_accepted_and_applied() {
    let Some(env) = TestEnv::new("x") else { return };
    let list = stdout(&ctl(&env.etcd.endpoint(), &["example"], ""));
    // The `vrf` example needs the kernel's dummy and vrf drivers: where the kernel lacks
    // them, its items fail with an error naming the driver (tests/link_kinds.rs).
    let drivers = ["dummy", "vrf"].iter().all(|kind| {
        let probe = format!("{}{kind}", env.p);
        let mut args = vec!["link", "add", probe.as_str(), "type", kind];
        if *kind == "vrf" {
            args.extend(["table", "4243"]);
        }
        let made = Command::new("ip")
            .args(&args)
            .status()
            .is_ok_and(|s| s.success());
        let _ = Command::new("ip").args(["link", "del", &probe]).status();
        made
    });
    let offered: Vec<&str> = list
        .lines()
        .filter(|l| !l.contains("(not accepted by the agent"))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| drivers || *name != "vrf")
        .collect();
    assert!(offered.len() >= 3, "{list}");
    let scratch = format!("{}-examples", env.label);
    for name in &offered {
        let out = ctl(
            &env.etcd.endpoint(),
            &["--label", &scratch, "example", name, "--put"],
            "",
        );
        assert!(out.status.success(), "{name}: {out:?}");
    }
    // What `--put` wrote, made unique and given to the test's agent.
    let mut namespaces = common::NetnsGuard::default();
    let mut renamed: std::collections::BTreeMap<String, String> = Default::default();
    let written = env
        .etcd
        .get_prefix(&format!("/vnf-agent/{scratch}/linux/config/v1/"))
        .await;
    for (key, value) in &written {
        let mut v: serde_json::Value = serde_json::from_slice(value).unwrap();
        // No container runs here: a named namespace stands in for a microservice.
        if v["namespace"]["type"] == "MICROSERVICE_REF_NS" {
            let label = v["namespace"]["microservice"].clone();
            v["namespace"] = serde_json::json!({"type": "NAMED_NS", "name": label});
        }
        if let Some(ns) = v["namespace"]["name"].as_str().map(str::to_string) {
            let count = renamed.len();
            let unique = renamed
                .entry(ns)
                .or_insert_with(|| env.ns(&format!("n{count}")))
                .clone();
            namespaces.add(unique.clone());
            v["namespace"]["name"] = serde_json::json!(unique);
        }
        let (kind, name) = key
            .rsplit_once("/config/v1/")
            .unwrap()
            .1
            .split_once('/')
            .unwrap();
        // A loopback keeps its name; a link the agent finds is made here for it.
        if kind == "interface" && v["type"] != "LOOPBACK" {
            let host = v["host_if_name"].as_str().unwrap_or(name).to_string();
            let unique = env.host(&host);
            v["host_if_name"] = serde_json::json!(unique);
            if v["type"] == "EXISTING" {
                let mut args: Vec<String> = Vec::new();
                if let Some(ns) = v["namespace"]["name"].as_str() {
                    args.extend(["netns", "exec", ns, "ip"].map(String::from));
                }
                let add = ["link", "add", &unique, "type", "veth", "peer", "name"];
                args.extend(add.map(String::from));
                args.push(format!("{unique}p"));
                let made = Command::new("ip").args(&args).status();
                assert!(made.is_ok_and(|s| s.success()), "ip {args:?}");
            }
            // The TAP an AUTO_TAP takes over is made by another program: here.
            if let Some(temp) = v["tap"]["temp_if_name"].as_str().map(str::to_string) {
                let unique = env.host(&temp);
                v["tap"]["temp_if_name"] = serde_json::json!(unique);
                let args = ["tuntap", "add", "dev", &unique, "mode", "tap"];
                let made = Command::new("ip").args(args).status();
                assert!(made.is_ok_and(|s| s.success()), "ip {args:?}");
            }
        }
        env.put(kind, name, v.to_string()).await;
    }
    let _agent = env.agent_with(&[]);
    env.wait_agent_running().await;
    let out = ctl_as(&env, &["wait", "--timeout", "30"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout(&out), format!("applied: {} items\n", written.len()));
}
