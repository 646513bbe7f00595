//! nsagent and nsagent-ctl against an etcd with authentication enabled, as a user whose role
//! may read and write only the agent's own prefix `/vnf-agent/<label>/`.

mod agent_support;
mod common;

use agent_support::*;
use common::*;
use etcd_client::Permission;
use serde_json::json;

/// Enables authentication on `etcd` and adds the user `agent` (password `agentpw`) whose role
/// grants read-write on `prefix` only.
async fn add_agent_user(etcd: &mut Etcd, prefix: &str) {
    etcd.enable_auth("rootpw").await;
    let mut c = etcd.client().await;
    c.role_add("agent-role").await.unwrap();
    c.role_grant_permission("agent-role", Permission::read_write(prefix).with_prefix())
        .await
        .unwrap();
    c.user_add("agent", "agentpw", None).await.unwrap();
    c.user_grant_role("agent", "agent-role").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_limited_to_the_agents_prefix_applies_a_pair_and_publishes_status() {
    let Some(mut env) = TestEnv::new("u") else {
        return;
    };
    let prefix = format!("/vnf-agent/{}/", env.label);
    add_agent_user(&mut env.etcd, &prefix).await;
    let agent = env.agent_with(&["--etcd-user", "agent:agentpw"]);

    let (nsx, nsy) = (env.ns("x"), env.ns("y"));
    let named = |n: &str| json!({"type": "NAMED_NS", "name": n});
    let (h1, h2) = (env.host("1"), env.host("2"));
    env.put(
        "interface",
        "e1",
        veth_json("e1", &h1, "e2", named(&nsx), &["10.204.0.1/24"]),
    )
    .await;
    env.put(
        "interface",
        "e2",
        veth_json("e2", &h2, "e1", named(&nsy), &["10.204.0.2/24"]),
    )
    .await;
    wait_for("the first end with its address", || {
        link(Some(&nsx), &h1).filter(|l| l.addresses == ["10.204.0.1/24"])
    })
    .await;
    wait_for("the second end", || link(Some(&nsy), &h2)).await;
    env.wait_status("interface", "e1", "applied", "").await;
    env.wait_status("interface", "e2", "applied", "").await;
    drop(agent);

    // nsagent-ctl as the same user, from the environment: its own prefix is readable...
    let endpoint = env.etcd.endpoint();
    let user_env = [
        ("ETCD_ENDPOINTS", endpoint.as_str()),
        ("ETCD_USER", "agent"),
        ("ETCD_PASSWORD", "agentpw"),
    ];
    let label = env.label.clone();
    let out = run_ctl(&["--label", &label, "get", "interface/e1"], &user_env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // ...and nothing else is: the role really limits the user.
    let out = run_ctl(
        &["get", "--any-key", "/vnf-agent/someone-else/x"],
        &user_env,
    );
    assert_one_line_failure(&out, &["permission denied"]);
}

#[tokio::test]
async fn a_wrong_password_fails_at_start_in_one_line() {
    let Some(mut etcd) = require_etcd() else {
        return;
    };
    add_agent_user(&mut etcd, "/vnf-agent/auth-wrong/").await;
    let url = etcd.url();
    let flags = ["--etcd-endpoints", url.as_str(), "--etcd-user", "agent"];
    let mut agent = vec!["--label", "auth-wrong", "--etcd-password", "nope"];
    agent.extend(flags);
    let out = run_agent_to_exit(&agent, &[]);
    let line = assert_one_line_failure(&out, &[&url, "authentication failed"]);
    eprintln!("{line}");

    let mut ctl = flags.to_vec();
    ctl.extend(["--label", "auth-wrong", "get", "/vnf-agent/auth-wrong/x"]);
    let out = run_ctl(&ctl, &[("ETCD_PASSWORD", "nope")]);
    let line = assert_one_line_failure(&out, &[&url, "authentication failed"]);
    eprintln!("{line}");
}
