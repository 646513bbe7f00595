//! `nsagent`: the daemon. Watches `/vnf-agent/<label>/linux/config/v1/` in etcd and applies it.
//! A start-up failure (bad flags or files, etcd unreachable or refusing) is one line on stderr
//! and exit code 1.

use clap::Parser;
use nsagent::agent::Agent;
use nsagent::config::{AgentConfig, Cli};
use nsagent::keys::KeyTree;
use nsagent::store;
use std::io::IsTerminal;
use std::process::ExitCode;
use tokio::signal::unix::{signal, SignalKind};

fn main() -> ExitCode {
    nsagent::memory::use_one_arena();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nsagent: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let config = AgentConfig::from_cli(cli)?;
    // One thread runs every task: the agent mostly waits for etcd and for the kernel (whose
    // work happens within the agent's syscalls, under its global lock), and the tasks of a
    // multi-threaded runtime spent that time waking each other on other threads. Measured
    // A/B on 2 CPUs: single-pair latency 1.26-1.36x of its floor against 1.31-1.50x, bulk
    // creation no slower. Blocking work (namespace switches, waiting deletions) still runs
    // on the blocking pool's threads.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(nsagent::memory::BLOCKING_THREADS)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        // Local resources first (the HTTP port, the netlink socket): their errors need no
        // etcd to be reported.
        let agent = Agent::new(&config).await?;
        let prefix = KeyTree::new(&config.label).config_prefix();
        match store::check(&config.etcd, &prefix).await {
            Ok(endpoint) => tracing::debug!("etcd at {endpoint} answers"),
            Err(e) if config.etcd.allow_delayed_start => {
                tracing::warn!("{e:#}; retrying in the background (allow-delayed-start)")
            }
            Err(e) => return Err(e),
        }
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let shutdown = async move {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received"),
                _ = int.recv() => tracing::info!("SIGINT received"),
            }
        };
        agent.run(config, shutdown).await
    })
}
