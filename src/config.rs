//! Agent configuration: command-line flags and environment (clap) over a TOML file
//! (`--config`, documented in `config/nsagent.toml`) over defaults.

use anyhow::Context;
use clap::Parser;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::keys::KeyTree;

/// Default etcd endpoint.
pub const DEFAULT_ENDPOINT: &str = "127.0.0.1:2379";
/// Default microservice label.
pub const DEFAULT_LABEL: &str = "vpp1";
/// Default interval of the check for namespaces that went away.
pub const DEFAULT_NS_CHECK_MS: u64 = 250;

/// Default seconds between full re-reads of the managed kernel state.
pub const DEFAULT_KERNEL_RESYNC_S: u64 = 60;

/// Command line of the `nsagent` daemon.
#[derive(Debug, Parser)]
#[command(
    name = "nsagent",
    version,
    about = "Keeps VETH pairs and TAPs, their addresses, routes and ARP entries in network namespaces and containers as configured in etcd"
)]
pub struct Cli {
    /// etcd endpoints, HOST:PORT[,HOST:PORT...] [default: 127.0.0.1:2379]
    #[arg(long, env = "ETCD_ENDPOINTS")]
    pub etcd_endpoints: Option<String>,
    /// The agent's microservice label: it watches /vnf-agent/<label>/linux/config/v1/ [default: vpp1]
    #[arg(long, env = "MICROSERVICE_LABEL")]
    pub label: Option<String>,
    /// TOML configuration file (see config/nsagent.toml); flags and environment win over it
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Link group that marks links created by this agent [default: derived from the label]
    #[arg(long)]
    pub link_group: Option<u32>,
    /// Milliseconds between checks for namespaces that went away (process exits and deleted
    /// namespace files are noticed at once anyway) [default: 250]
    #[arg(long)]
    pub namespace_check_interval_ms: Option<u64>,
    /// Routing-protocol number marking the agent's routes and neighbour entries [default: 196]
    #[arg(long)]
    pub route_protocol: Option<u8>,
    /// Seconds between full re-reads of the kernel state the agent manages (repairs changes
    /// made behind its back; only differences are written); 0 = never [default: 60]
    #[arg(long)]
    pub kernel_resync_interval_s: Option<u64>,
    /// Docker Engine API socket for microservice references: unix:///path or a path
    /// [default: unix:///var/run/docker.sock]
    #[arg(long, env = "DOCKER_HOST")]
    pub docker_host: Option<String>,
}

/// The TOML file. Every field is optional.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileConfig {
    /// etcd endpoints.
    pub etcd_endpoints: Option<Vec<String>>,
    /// Microservice label.
    pub label: Option<String>,
    /// Ownership link group.
    pub link_group: Option<u32>,
    /// Namespace check interval in milliseconds.
    pub namespace_check_interval_ms: Option<u64>,
    /// Routing-protocol number of the agent's routes and neighbour entries.
    pub route_protocol: Option<u8>,
    /// Seconds between full re-reads of the managed kernel state; 0 = never.
    pub kernel_resync_interval_s: Option<u64>,
    /// Docker Engine API socket.
    pub docker_host: Option<String>,
}

impl FileConfig {
    /// Reads and parses a TOML file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
    }
}

/// The effective configuration of the agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentConfig {
    /// etcd endpoints (`host:port`).
    pub etcd_endpoints: Vec<String>,
    /// Microservice label.
    pub label: String,
    /// Ownership link group (never 0).
    pub link_group: u32,
    /// Interval of the check for namespaces that went away.
    pub namespace_check_interval: Duration,
    /// `rtm_protocol` / `NDA_PROTOCOL` marking the agent's routes and neighbour entries.
    pub route_protocol: u8,
    /// Interval of full re-reads of the managed kernel state (`None` = never).
    pub kernel_resync_interval: Option<Duration>,
    /// Docker Engine API socket (`None` = the local default).
    pub docker_host: Option<String>,
}

impl AgentConfig {
    /// Merges flags/environment, the file named by `--config`, and defaults.
    pub fn from_cli(cli: Cli) -> anyhow::Result<Self> {
        let file = match &cli.config {
            Some(p) => FileConfig::load(p)?,
            None => FileConfig::default(),
        };
        Self::merge(cli, file)
    }

    fn merge(cli: Cli, file: FileConfig) -> anyhow::Result<Self> {
        let etcd_endpoints = match cli.etcd_endpoints {
            Some(s) => crate::store::parse_endpoints(&s)?,
            None => file
                .etcd_endpoints
                .unwrap_or_else(|| vec![DEFAULT_ENDPOINT.to_string()]),
        };
        anyhow::ensure!(!etcd_endpoints.is_empty(), "no etcd endpoint given");
        let label = cli
            .label
            .or(file.label)
            .unwrap_or_else(|| DEFAULT_LABEL.to_string());
        anyhow::ensure!(
            !label.is_empty() && !label.contains('/'),
            "invalid label {label:?}: it must be non-empty and contain no '/'"
        );
        let link_group = cli
            .link_group
            .or(file.link_group)
            .unwrap_or_else(|| KeyTree::new(&label).default_link_group());
        anyhow::ensure!(
            link_group != 0,
            "link group 0 is the kernel's default group; choose another"
        );
        let ms = cli
            .namespace_check_interval_ms
            .or(file.namespace_check_interval_ms)
            .unwrap_or(DEFAULT_NS_CHECK_MS)
            .max(10);
        let route_protocol = cli
            .route_protocol
            .or(file.route_protocol)
            .unwrap_or(crate::scheduler::DEFAULT_ROUTE_PROTOCOL);
        anyhow::ensure!(
            !matches!(route_protocol, 0..=4),
            "route protocol {route_protocol} is reserved by the kernel (0-4: unspec, redirect, kernel, boot, static); choose another"
        );
        let resync_s = cli
            .kernel_resync_interval_s
            .or(file.kernel_resync_interval_s)
            .unwrap_or(DEFAULT_KERNEL_RESYNC_S);
        Ok(AgentConfig {
            etcd_endpoints,
            label,
            link_group,
            namespace_check_interval: Duration::from_millis(ms),
            route_protocol,
            kernel_resync_interval: (resync_s > 0).then(|| Duration::from_secs(resync_s)),
            docker_host: cli.docker_host.or(file.docker_host),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("nsagent").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn flags_win_over_the_file_and_defaults_fill_the_rest() {
        let file: FileConfig = toml::from_str(
            "etcd-endpoints = [\"10.0.0.1:2379\"]\nlabel = \"fromfile\"\nlink-group = 7\n",
        )
        .unwrap();
        let c = AgentConfig::merge(cli(&["--label", "flag"]), file).unwrap();
        assert_eq!(c.label, "flag");
        assert_eq!(c.etcd_endpoints, vec!["10.0.0.1:2379"]);
        assert_eq!(c.link_group, 7);
        let d = AgentConfig::merge(cli(&[]), FileConfig::default()).unwrap();
        assert_eq!(d.etcd_endpoints, vec![DEFAULT_ENDPOINT]);
        assert_eq!(d.label, DEFAULT_LABEL);
        assert_eq!(d.link_group, KeyTree::new("vpp1").default_link_group());
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(
            AgentConfig::merge(cli(&["--etcd-endpoints", "nohost"]), FileConfig::default())
                .is_err()
        );
        assert!(AgentConfig::merge(cli(&["--link-group", "0"]), FileConfig::default()).is_err());
        assert!(
            AgentConfig::merge(cli(&["--route-protocol", "3"]), FileConfig::default()).is_err()
        );
        assert!(AgentConfig::merge(cli(&["--label", "a/b"]), FileConfig::default()).is_err());
        assert!(toml::from_str::<FileConfig>("bogus = 1").is_err());
    }

    #[test]
    fn the_documented_example_file_parses() {
        let text = include_str!("../config/nsagent.toml");
        let f: FileConfig = toml::from_str(text).unwrap();
        assert_eq!(f.label.as_deref(), Some("vpp1"));
    }
}
