//! `nsagent-ctl` against a real etcd.

mod common;

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
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
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
    // Outside the configuration tree: written unchecked, with a warning.
    let out = ctl(&etcd.endpoint(), &["put", "/other/key", "-"], "anything");
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "OK\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("warning"));
    assert_eq!(ctl_ok(&etcd, &["get", "/other/key"], ""), "anything\n");

    // A short key of an unknown kind lands under the config prefix, unchecked.
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), "{\"x\": 1}\n").unwrap();
    ctl_ok(
        &etcd,
        &["put", "bogus/x", file.path().to_str().unwrap()],
        "",
    );
    assert_eq!(
        etcd.get(&format!("{CONFIG}bogus/x")).await.unwrap(),
        b"{\"x\": 1}\n"
    );
    assert_eq!(ctl_ok(&etcd, &["get", "bogus/x"], ""), "{\"x\": 1}\n");
    assert_eq!(
        ctl_ok(&etcd, &["--label", "other", "put", "bogus/y", "-"], "1"),
        "OK\n"
    );
    assert!(etcd
        .get("/vnf-agent/other/linux/config/v1/bogus/y")
        .await
        .is_some());
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
    assert_eq!(
        ctl_ok(&etcd, &["del", "interface/veth1"], ""),
        "deleted 0\n"
    );
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
