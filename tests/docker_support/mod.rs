//! Docker test harness: finds the test engine through `DOCKER_HOST`, runs labelled test
//! containers with the docker CLI and removes them again (also when a test fails), and can
//! start a private dockerd of its own (`scripts/docker-test-env.sh`).
//!
//! Use it with `mod docker_support;` from a test file. It does not refer to the `nsagent`
//! crate.
//!
//! Environment:
//! * `DOCKER_HOST` (`unix:///path`): the engine to use; start one with
//!   `eval "$(scripts/docker-test-env.sh start)"`.
//! * `NSAGENT_TEST_IMAGE`: image with a static busybox (`/bin/sleep`, `/bin/sh`); default
//!   [`DEFAULT_IMAGE`], which the script builds.
//! * `CI=true`: a missing or unreachable engine fails the test; otherwise the test prints
//!   "skipping: ..." and returns early.
#![allow(dead_code)] // Every test file uses a different subset.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

/// Test image built by `scripts/docker-test-env.sh`.
pub const DEFAULT_IMAGE: &str = "nsagent-test-busybox:1";

/// True when running under CI (`CI=true`), where missing prerequisites are failures.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Fails under CI, otherwise prints "skipping: {why}"; returns `None` for early returns.
fn skip<T>(why: &str) -> Option<T> {
    assert!(
        !in_ci(),
        "{why} (CI=true); start one with: eval \"$(scripts/docker-test-env.sh start)\""
    );
    eprintln!("skipping: {why}");
    None
}

/// The engine named by `DOCKER_HOST` with the test image, or `None` after printing
/// "skipping: ..." when it is not set, not reachable or lacks the image. Panics in those
/// cases when `CI=true`.
pub fn require_docker() -> Option<Docker> {
    let Some(host) = std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()) else {
        return skip("DOCKER_HOST is not set");
    };
    let image = std::env::var("NSAGENT_TEST_IMAGE")
        .ok()
        .filter(|i| !i.is_empty())
        .unwrap_or_else(|| DEFAULT_IMAGE.to_string());
    match Docker::connect(&host, &image) {
        Ok(docker) => Some(docker),
        Err(e) => skip(&e),
    }
}

/// A label (and container name prefix) unique to this test process and call.
pub fn unique_label(tag: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("nsa-{tag}-{}-{n}", std::process::id())
}

/// A Docker engine reached with the docker CLI. Every container it starts is removed
/// (`docker rm -f`) when it is dropped.
pub struct Docker {
    host: String,
    image: String,
    started: Mutex<Vec<String>>,
}

impl Docker {
    /// Checks that the engine at `host` answers and has `image`.
    pub fn connect(host: &str, image: &str) -> Result<Docker, String> {
        let docker = Docker {
            host: host.to_string(),
            image: image.to_string(),
            started: Mutex::new(Vec::new()),
        };
        docker
            .cli(&["version", "--format", "{{.Server.Version}}"])
            .map_err(|e| format!("Docker at {host} is not reachable: {e}"))?;
        docker
            .cli(&["image", "inspect", "--format", "{{.Id}}", image])
            .map_err(|e| format!("Docker at {host} lacks the test image {image}: {e}"))?;
        Ok(docker)
    }

    /// The `DOCKER_HOST` value of this engine.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The test image.
    pub fn image(&self) -> &str {
        &self.image
    }

    /// Runs `docker -H <host> <args>`; its trimmed stdout, or an error with its stderr.
    pub fn cli(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("docker")
            .arg("-H")
            .arg(&self.host)
            .args(args)
            .output()
            .map_err(|e| format!("cannot run docker: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(format!(
                "docker {} failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// Starts `sleep 600` in a detached container with its own (empty) network namespace,
    /// `MICROSERVICE_LABEL=<label>` in its environment if `label` is given, and `extra`
    /// `docker run` options; returns the full container id. Panics on failure.
    pub fn run(&self, label: Option<&str>, extra: &[&str]) -> String {
        let mut args = vec!["run", "-d", "--network", "none", "--stop-timeout", "1"];
        let env;
        if let Some(label) = label {
            env = format!("MICROSERVICE_LABEL={label}");
            args.extend(["-e", env.as_str()]);
        }
        let name = unique_label("c");
        args.extend(["--name", name.as_str()]);
        args.extend(extra);
        args.extend([self.image.as_str(), "/bin/sleep", "600"]);
        // Remember the name before running, so a half-started container is removed too.
        self.started.lock().unwrap().push(name.clone());
        let id = self.cli(&args).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(id.len(), 64, "unexpected container id {id:?}");
        id
    }

    /// A container's `docker inspect --format` value.
    pub fn inspect(&self, id: &str, format: &str) -> String {
        self.cli(&["inspect", "--format", format, id])
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Pid of the container's init process (0 when it does not run).
    pub fn pid(&self, id: &str) -> u32 {
        let pid = self.inspect(id, "{{.State.Pid}}");
        pid.parse().unwrap_or_else(|_| panic!("bad pid {pid:?}"))
    }

    /// `docker restart -t 1`.
    pub fn restart(&self, id: &str) {
        self.cli(&["restart", "-t", "1", id])
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// `docker stop -t 1`.
    pub fn stop(&self, id: &str) {
        self.cli(&["stop", "-t", "1", id])
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// `docker rm -f`.
    pub fn rm(&self, id: &str) {
        self.cli(&["rm", "-f", id])
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        let names = std::mem::take(&mut *self.started.lock().unwrap_or_else(|e| e.into_inner()));
        if names.is_empty() {
            return;
        }
        let mut args = vec!["rm", "-f"];
        args.extend(names.iter().map(String::as_str));
        if let Err(e) = self.cli(&args) {
            // Already removed ones are fine ("No such container").
            if !e.contains("No such container") {
                eprintln!("warning: cleanup: {e}");
            }
        }
    }
}

/// Path of `scripts/docker-test-env.sh`.
pub fn env_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/docker-test-env.sh")
}

/// A dockerd of a test's own (so it can be stopped and started), in a temporary directory,
/// run by `scripts/docker-test-env.sh`. Stopped, with its containers and directory removed,
/// on drop.
pub struct PrivateDockerd {
    dir: tempfile::TempDir,
    dockerd_args: String,
    docker: Option<Docker>,
}

impl PrivateDockerd {
    /// Starts one with extra dockerd arguments (e.g. `--live-restore`), or returns `None`
    /// after printing "skipping: ..." when that is impossible (not root, no dockerd); panics
    /// then under `CI=true`, and whenever the script fails.
    pub fn start(dockerd_args: &str) -> Option<PrivateDockerd> {
        if !nix::unistd::geteuid().is_root() {
            return skip("a private dockerd needs root");
        }
        let found = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .any(|d| d.join("dockerd").is_file());
        if !found {
            return skip("dockerd not installed (docker.io)");
        }
        let dir = tempfile::Builder::new()
            .prefix("nsa-dockerd-")
            .tempdir_in("/tmp")
            .expect("cannot create a directory for dockerd");
        std::fs::write(dir.path().join(".nsagent-docker-test-env"), "")
            .expect("cannot write the marker");
        let mut d = PrivateDockerd {
            dir,
            dockerd_args: dockerd_args.to_string(),
            docker: None,
        };
        let env = d.script("start");
        let host = env
            .lines()
            .find_map(|l| l.strip_prefix("export DOCKER_HOST="))
            .expect("no DOCKER_HOST from docker-test-env.sh")
            .to_string();
        d.docker = Some(Docker::connect(&host, DEFAULT_IMAGE).unwrap_or_else(|e| panic!("{e}")));
        Some(d)
    }

    /// The engine.
    pub fn docker(&self) -> &Docker {
        self.docker.as_ref().unwrap()
    }

    /// Stops dockerd, keeping its state (with `--live-restore`, containers keep running).
    pub fn stop_daemon(&self) {
        self.script("stop-daemon");
    }

    /// Kills dockerd with SIGKILL (a crash), keeping its state (with `--live-restore`,
    /// containers keep running).
    pub fn kill_daemon(&self) {
        self.script("kill-daemon");
    }

    /// Starts dockerd again on the same state.
    pub fn start_daemon(&self) {
        self.script("start");
    }

    /// Runs the script with `cmd` on this directory; its stdout. Panics on failure.
    fn script(&self, cmd: &str) -> String {
        let out = Command::new("bash")
            .arg(env_script())
            .arg(cmd)
            .arg(self.dir.path())
            .env("NSAGENT_DOCKERD_ARGS", &self.dockerd_args)
            .output()
            .expect("cannot run docker-test-env.sh");
        assert!(
            out.status.success(),
            "docker-test-env.sh {cmd} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for PrivateDockerd {
    fn drop(&mut self) {
        drop(self.docker.take());
        let out = Command::new("bash")
            .arg(env_script())
            .arg("stop")
            .arg(self.dir.path())
            .output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!(
                "warning: docker-test-env.sh stop failed: {}",
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => eprintln!("warning: cannot run docker-test-env.sh stop: {e}"),
        }
    }
}
