//! Agent configuration: command-line flags and environment (clap) over a TOML file
//! (`--config`, documented in `config/nsagent.toml`) over defaults. The etcd settings have
//! one more layer between the two: the Go agent's etcd YAML file (`--etcd-config`, see
//! [`crate::store::EtcdArgs`]).

use anyhow::Context;
use clap::Parser;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::store::{EtcdArgs, EtcdOptions, EtcdSettings};

pub use crate::store::DEFAULT_ENDPOINT;
/// Default microservice label.
pub const DEFAULT_LABEL: &str = "vpp1";
/// Default interval of the check for namespaces that went away.
pub const DEFAULT_NS_CHECK_MS: u64 = 250;

/// Default seconds between full re-reads of the managed kernel state.
pub const DEFAULT_KERNEL_RESYNC_S: u64 = 60;

/// Default quiet, in milliseconds, that ends a burst of etcd changes.
pub const DEFAULT_BURST_QUIET_MS: u64 = 10;
/// The longest quiet that may end a burst (a burst is gathered for at most 1 s).
pub const MAX_BURST_QUIET_MS: u64 = 1000;

/// Command line of the `nsagent` daemon.
#[derive(Debug, Parser)]
#[command(
    name = "nsagent",
    version,
    about = "Keeps VETH pairs, their addresses, routes and ARP entries in network namespaces and containers as configured in etcd"
)]
pub struct Cli {
    /// How to reach etcd.
    #[command(flatten)]
    pub etcd: EtcdArgs,
    /// The agent's microservice label: it watches /vnf-agent/<label>/linux/config/v1/ [default: vpp1]
    #[arg(long, env = "MICROSERVICE_LABEL")]
    pub label: Option<String>,
    /// TOML configuration file (see config/nsagent.toml); flags and environment win over it
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Link group that marks links created by this agent [default: derived from the label,
    /// recorded in etcd at /vnf-agent/<label>/linux/owned/v1/marks]
    #[arg(long)]
    pub link_group: Option<u32>,
    /// Milliseconds between checks for namespaces that went away (process exits and deleted
    /// namespace files are noticed at once anyway) [default: 250]
    #[arg(long)]
    pub namespace_check_interval_ms: Option<u64>,
    /// Routing-protocol number marking the agent's routes and neighbour entries [default: chosen
    /// per label from 100-254 away from other labels' numbers, recorded in etcd at
    /// /vnf-agent/<label>/linux/owned/v1/marks]
    #[arg(long)]
    pub route_protocol: Option<u8>,
    /// Seconds between full re-reads of the kernel state the agent manages (repairs changes
    /// made behind its back; only differences are written); 0 = never [default: 60]
    #[arg(long)]
    pub kernel_resync_interval_s: Option<u64>,
    /// Milliseconds without etcd changes that end a burst of 64 changes or more (keys
    /// written in many transactions back to back are applied in one go once etcd is quiet
    /// that long); raise it when transactions reach the agent further apart; 0 = plan on
    /// every change [default: 10]
    #[arg(long)]
    pub burst_quiet_ms: Option<u64>,
    /// Docker Engine API socket for microservice references: unix:///path or a path
    /// [default: unix:///var/run/docker.sock]
    #[arg(long, env = "DOCKER_HOST")]
    pub docker_host: Option<String>,
    /// Address of the HTTP API (health, status, graph, metrics, resync): IP:PORT, or off
    /// [default: 127.0.0.1:9191]
    #[arg(long, env = "NSAGENT_HTTP_LISTEN")]
    pub http_listen: Option<String>,
}

/// The TOML file. Every field is optional.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileConfig {
    /// etcd endpoints.
    pub etcd_endpoints: Option<Vec<String>>,
    /// etcd CA certificate file.
    pub etcd_cacert: Option<PathBuf>,
    /// etcd client certificate file.
    pub etcd_cert: Option<PathBuf>,
    /// Key file of the etcd client certificate.
    pub etcd_key: Option<PathBuf>,
    /// etcd user, `NAME[:PASSWORD]`.
    pub etcd_user: Option<String>,
    /// Password of the etcd user.
    pub etcd_password: Option<String>,
    /// The Go agent's etcd YAML file.
    pub etcd_config: Option<PathBuf>,
    /// Timeout for connecting to one etcd endpoint.
    #[serde(default, deserialize_with = "crate::store::deserialize_duration")]
    pub etcd_dial_timeout: Option<Duration>,
    /// Timeout for one etcd request.
    #[serde(default, deserialize_with = "crate::store::deserialize_duration")]
    pub etcd_operation_timeout: Option<Duration>,
    /// Plain HTTP to etcd even with TLS files.
    pub etcd_insecure_transport: Option<bool>,
    /// Accept any etcd server certificate.
    pub etcd_insecure_skip_tls_verify: Option<bool>,
    /// Keep retrying an unreachable etcd at start instead of exiting.
    pub etcd_allow_delayed_start: Option<bool>,
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
    /// Milliseconds without etcd changes that end a burst.
    pub burst_quiet_ms: Option<u64>,
    /// Docker Engine API socket.
    pub docker_host: Option<String>,
    /// Address of the HTTP API, or `off`.
    pub http_listen: Option<String>,
}

impl FileConfig {
    /// Reads and parses a TOML file; a parse error is one line naming the file and line.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        toml::from_str(&text).map_err(|e| {
            let line = e
                .span()
                .map(|span| text[..span.start].lines().count().max(1));
            let at = line.map(|l| format!(" line {l}:")).unwrap_or_default();
            anyhow::anyhow!(
                "invalid config file {}:{at} {}",
                path.display(),
                e.message().trim()
            )
        })
    }

    /// The etcd settings of the file (the etcd YAML file it names is read later, by
    /// [`EtcdArgs::resolve`]).
    pub fn etcd_options(&self) -> EtcdOptions {
        let (username, inline_password) = match &self.etcd_user {
            Some(user) => {
                let (name, password) = crate::store::split_user(user);
                (Some(name), password)
            }
            None => (None, None),
        };
        EtcdOptions {
            endpoints: self.etcd_endpoints.clone(),
            ca_file: self.etcd_cacert.clone(),
            cert_file: self.etcd_cert.clone(),
            key_file: self.etcd_key.clone(),
            username,
            password: self.etcd_password.clone().or(inline_password),
            dial_timeout: self.etcd_dial_timeout,
            operation_timeout: self.etcd_operation_timeout,
            insecure_transport: self.etcd_insecure_transport,
            insecure_skip_tls_verify: self.etcd_insecure_skip_tls_verify,
            allow_delayed_start: self.etcd_allow_delayed_start,
        }
    }
}

/// The effective configuration of the agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentConfig {
    /// How to reach etcd.
    pub etcd: EtcdSettings,
    /// Microservice label.
    pub label: String,
    /// Ownership link group (never 0) given by flag or file; `None` = the label's recorded
    /// or derived one (see [`crate::owned::marks`]).
    pub link_group: Option<u32>,
    /// Interval of the check for namespaces that went away.
    pub namespace_check_interval: Duration,
    /// `rtm_protocol` / `NDA_PROTOCOL` marking the agent's routes and neighbour entries,
    /// given by flag or file; `None` = the label's recorded or chosen one.
    pub route_protocol: Option<u8>,
    /// Interval of full re-reads of the managed kernel state (`None` = never).
    pub kernel_resync_interval: Option<Duration>,
    /// The quiet that ends a burst of etcd changes.
    pub burst_quiet: Duration,
    /// Docker Engine API socket (`None` = the local default).
    pub docker_host: Option<String>,
    /// Address of the HTTP API (`None` = off).
    pub http_listen: Option<SocketAddr>,
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
        let etcd = cli
            .etcd
            .resolve(file.etcd_config.clone(), file.etcd_options())?;
        if let Some(warning) = etcd.warning {
            tracing::warn!("{warning}");
        }
        let label = cli
            .label
            .or(file.label)
            .unwrap_or_else(|| DEFAULT_LABEL.to_string());
        anyhow::ensure!(
            !label.is_empty() && !label.contains('/'),
            "invalid label {label:?}: it must be non-empty and contain no '/'"
        );
        let link_group = cli.link_group.or(file.link_group);
        anyhow::ensure!(
            link_group != Some(0),
            "link group 0 is the kernel's default group; choose another"
        );
        let ms = cli
            .namespace_check_interval_ms
            .or(file.namespace_check_interval_ms)
            .unwrap_or(DEFAULT_NS_CHECK_MS)
            .max(10);
        let route_protocol = cli.route_protocol.or(file.route_protocol);
        anyhow::ensure!(
            !matches!(route_protocol, Some(0..=4)),
            "route protocol {} is reserved by the kernel (0-4: unspec, redirect, kernel, boot, static); choose another",
            route_protocol.unwrap_or_default()
        );
        let resync_s = cli
            .kernel_resync_interval_s
            .or(file.kernel_resync_interval_s)
            .unwrap_or(DEFAULT_KERNEL_RESYNC_S);
        let burst_quiet_ms = cli
            .burst_quiet_ms
            .or(file.burst_quiet_ms)
            .unwrap_or(DEFAULT_BURST_QUIET_MS);
        anyhow::ensure!(
            burst_quiet_ms <= MAX_BURST_QUIET_MS,
            "burst quiet {burst_quiet_ms} ms is longer than a burst may last ({MAX_BURST_QUIET_MS} ms)"
        );
        Ok(AgentConfig {
            etcd: etcd.settings,
            label,
            link_group,
            namespace_check_interval: Duration::from_millis(ms),
            route_protocol,
            kernel_resync_interval: (resync_s > 0).then(|| Duration::from_secs(resync_s)),
            burst_quiet: Duration::from_millis(burst_quiet_ms),
            docker_host: cli.docker_host.or(file.docker_host),
            http_listen: crate::api::parse_listen(
                cli.http_listen
                    .as_deref()
                    .or(file.http_listen.as_deref())
                    .unwrap_or(crate::api::DEFAULT_LISTEN),
            )?,
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
        assert_eq!(c.etcd.endpoints, vec!["http://10.0.0.1:2379"]);
        assert_eq!(c.link_group, Some(7));
        let d = AgentConfig::merge(cli(&[]), FileConfig::default()).unwrap();
        assert_eq!(d.etcd.endpoints, vec![format!("http://{DEFAULT_ENDPOINT}")]);
        assert_eq!(d.label, DEFAULT_LABEL);
        assert_eq!(d.link_group, None, "chosen per label at start");
        assert_eq!(d.route_protocol, None, "chosen per label at start");
        assert_eq!(
            d.http_listen,
            Some(crate::api::DEFAULT_LISTEN.parse().unwrap())
        );
        let off = AgentConfig::merge(cli(&["--http-listen", "off"]), FileConfig::default());
        assert_eq!(off.unwrap().http_listen, None);
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
        assert!(
            AgentConfig::merge(cli(&["--http-listen", "nohost"]), FileConfig::default()).is_err()
        );
        assert!(toml::from_str::<FileConfig>("bogus = 1").is_err());
    }

    #[test]
    fn the_toml_file_takes_the_etcd_settings_below_flags_and_the_etcd_file() {
        let file: FileConfig = toml::from_str(
            "etcd-endpoints = [\"a:1\", \"b:2\"]\n\
             etcd-cacert = \"/ca.pem\"\netcd-cert = \"/c.pem\"\netcd-key = \"/k.pem\"\n\
             etcd-user = \"agent:pw\"\n\
             etcd-dial-timeout = \"300ms\"\netcd-operation-timeout = 2000000000\n\
             etcd-insecure-skip-tls-verify = true\netcd-allow-delayed-start = true\n",
        )
        .unwrap();
        let c = AgentConfig::merge(cli(&[]), file).unwrap().etcd;
        assert_eq!(c.endpoints, ["https://a:1", "https://b:2"]);
        let tls = c.tls.unwrap();
        assert_eq!(tls.ca_file, Some("/ca.pem".into()));
        assert_eq!(tls.identity, Some(("/c.pem".into(), "/k.pem".into())));
        assert!(tls.skip_verify);
        assert_eq!(c.user, Some(("agent".into(), "pw".into())));
        assert_eq!(c.dial_timeout, Duration::from_millis(300));
        assert_eq!(c.operation_timeout, Duration::from_secs(2));
        assert!(c.allow_delayed_start);

        let file: FileConfig =
            toml::from_str("etcd-endpoints = [\"a:1\"]\netcd-insecure-transport = true\n").unwrap();
        let c = AgentConfig::merge(cli(&["--etcd-endpoints", "z:9"]), file).unwrap();
        assert_eq!(c.etcd.endpoints, ["http://z:9"]);
    }

    #[test]
    fn a_bad_toml_file_is_one_line_naming_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nsagent.toml");
        std::fs::write(&path, "label = \"x\"\netcd-dial-timeout = \"soon\"\n").unwrap();
        let e = format!("{:#}", FileConfig::load(&path).unwrap_err());
        assert!(
            e.starts_with(&format!("invalid config file {}: line 2:", path.display())),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn the_burst_quiet_comes_from_flag_or_file_and_is_bounded() {
        let c = AgentConfig::merge(cli(&[]), FileConfig::default()).unwrap();
        assert_eq!(c.burst_quiet, Duration::from_millis(DEFAULT_BURST_QUIET_MS));
        let file: FileConfig = toml::from_str("burst-quiet-ms = 40\n").unwrap();
        let c = AgentConfig::merge(cli(&[]), file).unwrap();
        assert_eq!(c.burst_quiet, Duration::from_millis(40));
        let file: FileConfig = toml::from_str("burst-quiet-ms = 40\n").unwrap();
        let c = AgentConfig::merge(cli(&["--burst-quiet-ms", "0"]), file).unwrap();
        assert_eq!(c.burst_quiet, Duration::ZERO);
        let e = AgentConfig::merge(cli(&["--burst-quiet-ms", "1001"]), FileConfig::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("burst quiet 1001 ms"), "{e}");
    }

    #[test]
    fn the_documented_example_file_parses() {
        let text = include_str!("../config/nsagent.toml");
        let f: FileConfig = toml::from_str(text).unwrap();
        assert_eq!(f.label.as_deref(), Some("vpp1"));
        assert_eq!(f.burst_quiet_ms, Some(DEFAULT_BURST_QUIET_MS));
    }
}
