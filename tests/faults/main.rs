//! Faults around the agent (issue 10 §4): a crash in the middle of a bulk apply
//! ([`crash`]), etcd compacting past the agent's watch while the agent is cut off or paused
//! ([`etcd`]), and the Docker daemon killed and started again while containers come and go
//! ([`docker`]).
//!
//! The `nsagent` binary runs as a child process against a real etcd, real namespaces and, for
//! the Docker scenario, a private dockerd of the test's own. Every test uses its own label,
//! names with a unique prefix, and removes what it created, also on failure.

#[path = "../agent_support/mod.rs"]
mod agent_support;
#[path = "../common/mod.rs"]
mod common;
#[path = "../docker_support/mod.rs"]
mod docker_support;

mod crash;
mod docker;
mod etcd;

use agent_support::*;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

/// Deadline for the agent to converge after a fault (generous: debug builds on a shared
/// machine; speed is measured by the benchmarks).
const CONVERGE: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(20);

fn named(n: &str) -> Value {
    json!({"type": "NAMED_NS", "name": n})
}

/// Waits up to [`CONVERGE`] for `probe` to succeed; panics with `what` and its last error.
async fn converge<T: std::fmt::Debug>(
    what: &str,
    mut probe: impl FnMut() -> Result<T, String>,
) -> T {
    let mut last = Err(String::new());
    let ok = wait_until_async(CONVERGE, POLL, || {
        last = probe();
        last.is_ok()
    })
    .await;
    assert!(ok, "{what}: {}", last.as_ref().err().unwrap());
    last.unwrap()
}
