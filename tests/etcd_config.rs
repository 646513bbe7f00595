//! The Go agent's etcd client file (`--etcd-config`, env `ETCD_CONFIG`): TLS settings from
//! the file, a warning for known keys nsagent does not use, an error for unknown keys, and
//! `allow-delayed-start`.

mod agent_support;
mod common;

use agent_support::*;
use common::pki::Pki;
use common::*;
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Writes `text` as an etcd file in `dir`; returns its path.
fn etcd_file(dir: &tempfile::TempDir, text: &str) -> PathBuf {
    let path = dir.path().join("etcd.conf");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_and_ctl_connect_with_tls_settings_from_the_etcd_file() {
    let pki = Arc::new(Pki::generate("nsagent test CA"));
    let setup = EtcdSetup {
        tls: Some(pki.clone()),
        ..EtcdSetup::default()
    };
    let Some(env) = TestEnv::with_setup("f", setup) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = etcd_file(
        &dir,
        &format!(
            "# as the Go agent has it\n\
             endpoints:\n  - \"{}\"\n\
             dial-timeout: 500ms\n\
             operation-timeout: 3000000000\n\
             insecure-transport: false\n\
             ca-file: {}\ncert-file: {}\nkey-file: {}\n\
             auto-compact: 0\n\
             resync-after-reconnect: true\n",
            env.etcd.url(),
            pki.ca().display(),
            pki.client_cert().display(),
            pki.client_key().display()
        ),
    );
    let file = file.display().to_string();
    let agent = AgentProcess::start_with(&env.label, &["--etcd-config", &file], &[]);
    let warning = format!(
        "etcd config file {file}: auto-compact, resync-after-reconnect known from the Go agent \
         but not used by nsagent"
    );
    assert!(
        agent.wait_log(&warning, 1, Duration::from_secs(10)).await,
        "no warning about the unused keys"
    );

    let (nsx, nsy) = (env.ns("x"), env.ns("y"));
    let named = |n: &str| json!({"type": "NAMED_NS", "name": n});
    let (h1, h2) = (env.host("1"), env.host("2"));
    env.put(
        "interface",
        "e1",
        veth_json("e1", &h1, "e2", named(&nsx), &["10.205.0.1/24"]),
    )
    .await;
    env.put(
        "interface",
        "e2",
        veth_json("e2", &h2, "e1", named(&nsy), &[]),
    )
    .await;
    wait_for("the first end with its address", || {
        link(Some(&nsx), &h1).filter(|l| l.addresses == ["10.205.0.1/24"])
    })
    .await;
    wait_for("the second end", || link(Some(&nsy), &h2)).await;
    env.wait_status("interface", "e2", "applied", "").await;
    drop(agent);

    // nsagent-ctl finds the file through ETCD_CONFIG and warns the same way.
    let label = env.label.clone();
    let out = run_ctl(
        &["--label", &label, "get", "interface/e2"],
        &[("ETCD_CONFIG", &file)],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains(&warning), "{stderr}");
}

#[test]
fn an_unknown_key_in_the_etcd_file_fails_at_start_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = etcd_file(&dir, "endpoints: [\"127.0.0.1:2379\"]\ndial-timeuot: 1s\n");
    let file = file.display().to_string();
    let needles = [file.as_str(), "dial-timeuot", "unknown key"];
    let out = run_agent_to_exit(&["--etcd-config", &file], &[]);
    eprintln!("{}", assert_one_line_failure(&out, &needles));
    let out = run_ctl(&["get", "--any-key", "/k"], &[("ETCD_CONFIG", &file)]);
    eprintln!("{}", assert_one_line_failure(&out, &needles));
}

#[test]
fn unreachable_endpoints_fail_at_start_in_one_line_naming_each() {
    let (a, b) = (free_port(), free_port());
    let endpoints = format!("127.0.0.1:{a},http://127.0.0.1:{b}");
    let out = run_agent_to_exit(&["--etcd-endpoints", &endpoints], &[]);
    let (ua, ub) = (
        format!("http://127.0.0.1:{a}: "),
        format!("http://127.0.0.1:{b}: "),
    );
    let line = assert_one_line_failure(&out, &[&ua, &ub, "refused"]);
    eprintln!("{line}");
    let out = run_ctl(&["list"], &[("ETCD_ENDPOINTS", &endpoints)]);
    assert_one_line_failure(&out, &[&ua, &ub, "refused"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_allow_delayed_start_the_agent_waits_for_etcd() {
    let Some(mut env) = TestEnv::new("d") else {
        return;
    };
    let nsx = env.ns("x");
    ip(&["netns", "add", &nsx]);
    let named = json!({"type": "NAMED_NS", "name": nsx});
    let (h1, h2) = (env.host("1"), env.host("2"));
    env.put(
        "interface",
        "e1",
        veth_json("e1", &h1, "e2", named.clone(), &[]),
    )
    .await;
    env.put("interface", "e2", veth_json("e2", &h2, "e1", named, &[]))
        .await;
    env.etcd.stop();

    let dir = tempfile::tempdir().unwrap();
    let file = etcd_file(
        &dir,
        &format!(
            "endpoints: [\"{}\"]\nallow-delayed-start: true\n",
            env.etcd.endpoint()
        ),
    );
    let file = file.display().to_string();
    let mut agent = AgentProcess::start_with(&env.label, &[], &[("ETCD_CONFIG", file.as_str())]);
    assert!(
        agent
            .wait_log("retrying in the background", 1, Duration::from_secs(10))
            .await,
        "no warning about the delayed start"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        agent.running(),
        "the agent gave up although allow-delayed-start is set"
    );

    env.etcd.start();
    wait_for("the pair after etcd came up", || link(Some(&nsx), &h2)).await;
    env.wait_status("interface", "e1", "applied", "").await;
}

#[test]
fn insecure_skip_tls_verify_accepts_a_server_certificate_of_an_unknown_ca() {
    let pki = Arc::new(Pki::generate("nsagent test CA"));
    let Some(etcd) = require_etcd_with(EtcdSetup {
        tls: Some(pki.clone()),
        ..EtcdSetup::default()
    }) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let settings = |skip: bool| {
        format!(
            "endpoints: [\"{}\"]\ncert-file: {}\nkey-file: {}\ninsecure-skip-tls-verify: {skip}\n",
            etcd.url(),
            pki.client_cert().display(),
            pki.client_key().display()
        )
    };
    // No CA file: the system's roots (if the machine has any) do not know the test CA...
    let file = etcd_file(&dir, &settings(false));
    let file = file.display().to_string();
    let out = run_ctl(&["--etcd-config", &file, "list"], &[]);
    let line = assert_one_line_failure(&out, &[&etcd.url()]);
    assert!(
        line.contains("not trusted") || line.contains("no system trust roots"),
        "{line}"
    );
    // ...unless verification is skipped.
    let file = etcd_file(&dir, &settings(true));
    let file = file.display().to_string();
    let out = run_ctl(&["--etcd-config", &file, "list"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn insecure_transport_ignores_the_tls_files() {
    let Some(etcd) = require_etcd() else { return };
    let dir = tempfile::tempdir().unwrap();
    let file = etcd_file(
        &dir,
        &format!(
            "endpoints: [\"{}\"]\nca-file: /nonexistent/ca.pem\ninsecure-transport: true\n",
            etcd.endpoint()
        ),
    );
    let file = file.display().to_string();
    let out = run_ctl(&["--etcd-config", &file, "list"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
