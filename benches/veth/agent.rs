//! The real `nsagent` binary in a child process, with its HTTP API on a free port: readiness,
//! kernel writes (from its metrics), restarts and memory.

use crate::agent_support::AgentProcess;
use crate::common;
use crate::support::{http_get, kernel_writes, memory_kib};
use std::time::{Duration, Instant};

/// How long the agent may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the agent's kernel writes may take to settle.
const QUIET_TIMEOUT: Duration = Duration::from_secs(120);

/// The agent of one size.
pub struct Agent {
    process: AgentProcess,
    listen: String,
}

/// What a restart with everything in place showed.
pub struct Restart {
    /// From starting the process until `/readyz` answered 200.
    pub ready: Duration,
    /// Kernel writes the new process had made when it became ready.
    pub writes_at_ready: u64,
    /// The same, a second later.
    pub writes_after: u64,
}

impl Agent {
    /// Starts `nsagent` for `label` against etcd at `endpoint`, stamping links with `group`,
    /// with no periodic kernel re-read; returns once it is ready. Its log level is `RUST_LOG`
    /// if set, else `warn`.
    pub fn start(endpoint: &str, label: &str, group: u32) -> Agent {
        let listen = format!("127.0.0.1:{}", common::free_port());
        let group = group.to_string();
        let log = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into());
        let extra = [
            "--etcd-endpoints",
            endpoint,
            "--link-group",
            group.as_str(),
            "--kernel-resync-interval-s",
            "0",
            "--namespace-check-interval-ms",
            "250",
            "--http-listen",
            listen.as_str(),
        ];
        let agent = Agent {
            process: AgentProcess::start_with(label, &extra, &[("RUST_LOG", log.as_str())]),
            listen,
        };
        agent.wait_ready();
        agent
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Waits until `/readyz` answers 200 (polled every 2 ms); panics with the agent's log
    /// when it does not within [`READY_TIMEOUT`].
    fn wait_ready(&self) -> Instant {
        let ready = common::wait_until(READY_TIMEOUT, Duration::from_millis(2), || {
            http_get(&self.listen, "/readyz").is_some_and(|(status, _)| status == 200)
        });
        let at = Instant::now();
        assert!(
            ready,
            "the agent was not ready within {READY_TIMEOUT:?}; log:\n{}",
            self.process.log()
        );
        at
    }

    /// Kernel writes of the running process so far.
    pub fn writes(&self) -> u64 {
        kernel_writes(&self.listen).expect("the agent's /metrics")
    }

    /// Waits until the agent's kernel writes have not changed for `quiet`: the rounds it
    /// was running are done. Returns how long after the call the last write was counted
    /// (zero when none was).
    pub fn wait_writes_quiet(&self, quiet: Duration) -> Duration {
        let started = Instant::now();
        let (mut count, mut changed) = (self.writes(), started);
        while changed.elapsed() < quiet {
            assert!(
                started.elapsed() < QUIET_TIMEOUT,
                "the agent's kernel writes did not settle within {QUIET_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
            let now = self.writes();
            if now != count {
                (count, changed) = (now, Instant::now());
            }
        }
        changed - started
    }

    /// Resident memory now and at its peak, KiB.
    pub fn memory_kib(&self) -> (u64, u64) {
        memory_kib(self.pid()).expect("the agent's /proc/<pid>/status")
    }

    /// Stops the agent (SIGTERM), starts it again and measures how long it takes to be ready
    /// and how many kernel writes it makes meanwhile and in the second after.
    pub fn restart(&mut self) -> Restart {
        if !self.process.stop() {
            eprintln!("warning: the agent did not exit cleanly on SIGTERM");
        }
        let started = Instant::now();
        self.process.restart();
        let ready = self.wait_ready() - started;
        let writes_at_ready = self.writes();
        std::thread::sleep(Duration::from_secs(1));
        Restart {
            ready,
            writes_at_ready,
            writes_after: self.writes(),
        }
    }
}
