//! `nsagent`: the daemon. Watches `/vnf-agent/<label>/linux/config/v1/` in etcd and applies it.

use clap::Parser;
use nsagent::agent::Agent;
use nsagent::config::{AgentConfig, Cli};
use std::io::IsTerminal;
use tokio::signal::unix::{signal, SignalKind};

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    let config = AgentConfig::from_cli(Cli::parse())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let shutdown = async move {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received"),
                _ = int.recv() => tracing::info!("SIGINT received"),
            }
        };
        let agent = Agent::new(&config).await?;
        agent.run(config, shutdown).await
    })
}
