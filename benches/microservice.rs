//! Benchmark (not a test): how fast items follow a Docker container.
//!
//! `DOCKER_HOST=unix:///... cargo bench --bench microservice -- [--samples 20]` (root; a
//! private engine: `eval "$(scripts/docker-test-env.sh start)"`).
//!
//! For each sample a VETH pair is configured between a named namespace and a microservice
//! label that no container runs yet; then `docker run` starts a container with that label.
//! Prints p50/p90 of the time from `docker run` returning until the VETH end inside the
//! container has its address, and the same after `docker restart`. Observed in the kernel:
//! a netlink socket opened inside the container's namespace (subscribe, then dump).

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use clap::Parser;
use nsagent::config::AgentConfig;
use nsagent::keys::{ItemKind, KeyTree};
use std::net::IpAddr;
use std::process::Command;
use std::time::{Duration, Instant};
use support::{ms, percentile, wait_address_in_process, AgentThread};

#[derive(Parser, Debug)]
struct Args {
    /// Container starts (and restarts) measured.
    #[arg(long, default_value_t = 20)]
    samples: usize,
    /// Accepted for `cargo bench` compatibility.
    #[arg(long)]
    bench: bool,
}

fn docker(host: &str, args: &[&str]) -> String {
    let out = Command::new("docker")
        .arg("-H")
        .arg(host)
        .args(args)
        .output()
        .expect("docker");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

async fn pid_of(api: &bollard::Docker, id: &str) -> u32 {
    let c = api.inspect_container(id, None).await.expect("inspect");
    c.state.and_then(|s| s.pid).unwrap_or(0) as u32
}

fn main() {
    let args = Args::parse();
    support::init_logging();
    assert!(nix::unistd::geteuid().is_root(), "the benchmark needs root");
    let host = std::env::var("DOCKER_HOST").expect("set DOCKER_HOST to a private engine");
    let image =
        std::env::var("NSAGENT_TEST_IMAGE").unwrap_or_else(|_| "nsagent-test-busybox:1".into());
    let etcd = common::Etcd::start_new();
    let prefix = common::unique_prefix("z");
    let label = format!("bench-{prefix}");
    let keys = KeyTree::new(&label);
    let nsx = format!("{prefix}x");
    let _guard = common::NetnsGuard::new([nsx.clone()]);
    common::ip(&["netns", "add", &nsx]);
    let _agent = AgentThread::start(AgentConfig {
        docker_host: Some(host.clone()),
        ..support::bench_config(&etcd.endpoint(), &keys)
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut client = rt.block_on(etcd.client());
    // The API, not the CLI, for the pid: a CLI process would add its own start-up time.
    let socket = nsagent::microservice::socket_path(Some(&host)).expect("unix DOCKER_HOST");
    let api = bollard::Docker::connect_with_unix(
        socket.to_str().unwrap(),
        30,
        bollard::API_DEFAULT_VERSION,
    )
    .expect("docker api");
    std::thread::sleep(Duration::from_millis(500));

    let mut containers = Vec::new();
    let (mut starts, mut restarts) = (Vec::new(), Vec::new());
    for i in 0..args.samples {
        let ms_label = format!("{prefix}-{i}");
        let inside: IpAddr = [10, 230, i as u8, 1].into();
        let (a, b) = (format!("c{i}"), format!("h{i}"));
        for (name, peer, ns, addr, host_if) in [
            (
                &a,
                &b,
                serde_json::json!({"type": "MICROSERVICE_REF_NS", "microservice": ms_label}),
                format!("{inside}/24"),
                "eth9".to_string(),
            ),
            (
                &b,
                &a,
                serde_json::json!({"type": "NAMED_NS", "name": nsx}),
                format!("10.230.{i}.2/24"),
                format!("{prefix}{i}"),
            ),
        ] {
            let v = serde_json::json!({"name": name, "host_if_name": host_if, "enabled": true,
                "ip_addresses": [addr], "namespace": ns, "veth": {"peer_if_name": peer}});
            rt.block_on(client.put(keys.key(ItemKind::Interface, name), v.to_string(), None))
                .unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
        let env = format!("MICROSERVICE_LABEL={ms_label}");
        let id = docker(
            &host,
            &[
                "run",
                "-d",
                "--network",
                "none",
                "-e",
                &env,
                &image,
                "/bin/sleep",
                "600",
            ],
        );
        let returned = Instant::now();
        containers.push(id.clone());
        let pid = rt.block_on(pid_of(&api, &id));
        let at = wait_address_in_process(pid, inside, Duration::from_secs(10))
            .expect("configured after start");
        starts.push(at.saturating_duration_since(returned));

        docker(&host, &["restart", "-t", "0", &id]);
        let returned = Instant::now();
        let pid = rt.block_on(pid_of(&api, &id));
        let at = wait_address_in_process(pid, inside, Duration::from_secs(10))
            .expect("configured after restart");
        restarts.push(at.saturating_duration_since(returned));
    }
    starts.sort();
    restarts.sort();
    println!(
        "nsagent microservice benchmark: {} containers",
        args.samples
    );
    println!("from the docker command returning until the VETH end inside the container has its address:");
    println!(
        "  docker run       p50 {}   p90 {}   max {}   (target p50 <= 5 ms)",
        ms(percentile(&starts, 0.5)),
        ms(percentile(&starts, 0.9)),
        ms(*starts.last().unwrap())
    );
    println!(
        "  docker restart   p50 {}   p90 {}   max {}",
        ms(percentile(&restarts, 0.5)),
        ms(percentile(&restarts, 0.9)),
        ms(*restarts.last().unwrap())
    );
    let mut rm = vec!["rm", "-f"];
    rm.extend(containers.iter().map(String::as_str));
    docker(&host, &rm);
    rt.block_on(client.delete(
        keys.config_prefix(),
        Some(etcd_client::DeleteOptions::new().with_prefix()),
    ))
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));
}
