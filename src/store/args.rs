//! The etcd flags shared by `nsagent` and `nsagent-ctl` (`#[command(flatten)]`), and how
//! they combine with the etcd YAML file and the TOML file: flags and environment win over the
//! file named by `--etcd-config`, which wins over the TOML file, which wins over defaults.

use super::etcd_file::EtcdFile;
use super::settings::{split_endpoints, split_user, EtcdOptions, EtcdSettings};
use std::path::PathBuf;

/// etcd connection flags (each also read from the environment variable it names).
#[derive(Clone, Debug, Default, clap::Args)]
pub struct EtcdArgs {
    /// etcd endpoints, comma-separated: HOST:PORT, http://HOST:PORT or https://HOST:PORT,
    /// tried in order [default: 127.0.0.1:2379]
    #[arg(long, env = "ETCD_ENDPOINTS", value_name = "ENDPOINTS", global = true)]
    pub etcd_endpoints: Option<String>,
    /// CA certificate file (PEM) that signs etcd's server certificates; enables TLS
    #[arg(long, env = "ETCD_CACERT", value_name = "FILE", global = true)]
    pub etcd_cacert: Option<PathBuf>,
    /// Client certificate file (PEM) for etcd; enables TLS
    #[arg(long, env = "ETCD_CERT", value_name = "FILE", global = true)]
    pub etcd_cert: Option<PathBuf>,
    /// Key file (PEM) of the client certificate
    #[arg(long, env = "ETCD_KEY", value_name = "FILE", global = true)]
    pub etcd_key: Option<PathBuf>,
    /// etcd user for authentication, optionally with its password
    #[arg(
        long,
        env = "ETCD_USER",
        value_name = "NAME[:PASSWORD]",
        hide_env_values = true,
        global = true
    )]
    pub etcd_user: Option<String>,
    /// Password of the etcd user
    #[arg(
        long,
        env = "ETCD_PASSWORD",
        value_name = "PASSWORD",
        hide_env_values = true,
        global = true
    )]
    pub etcd_password: Option<String>,
    /// The Go agent's etcd client file (YAML: endpoints, ca-file, cert-file, key-file,
    /// username, password, dial-timeout, ...); flags and environment win over it
    #[arg(long, env = "ETCD_CONFIG", value_name = "FILE", global = true)]
    pub etcd_config: Option<PathBuf>,
}

/// The outcome of combining the sources.
#[derive(Debug)]
pub struct ResolvedEtcd {
    /// The settings to connect with.
    pub settings: EtcdSettings,
    /// A warning for the user (known keys of the etcd file that are not used), if any.
    pub warning: Option<String>,
}

impl EtcdArgs {
    /// The settings given by flags and environment alone.
    pub fn options(&self) -> EtcdOptions {
        let (username, inline_password) = match &self.etcd_user {
            Some(user) => {
                let (name, password) = split_user(user);
                (Some(name), password)
            }
            None => (None, None),
        };
        EtcdOptions {
            endpoints: self.etcd_endpoints.as_deref().map(split_endpoints),
            ca_file: self.etcd_cacert.clone(),
            cert_file: self.etcd_cert.clone(),
            key_file: self.etcd_key.clone(),
            username,
            password: self.etcd_password.clone().or(inline_password),
            ..EtcdOptions::default()
        }
    }

    /// Combines flags/environment, the etcd YAML file (`--etcd-config`, else `config_file`
    /// named by a lower source) and `lower` (the TOML file's settings), and checks the result.
    pub fn resolve(
        &self,
        config_file: Option<PathBuf>,
        lower: EtcdOptions,
    ) -> anyhow::Result<ResolvedEtcd> {
        let (from_file, warning) = match self.etcd_config.clone().or(config_file) {
            Some(path) => {
                let file = EtcdFile::load(&path)?;
                let warning = file.unused_warning(&path);
                (file.options, warning)
            }
            None => (EtcdOptions::default(), None),
        };
        let settings = self.options().or(from_file).or(lower).resolve()?;
        Ok(ResolvedEtcd { settings, warning })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::time::Duration;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        etcd: EtcdArgs,
    }

    fn args(list: &[&str]) -> EtcdArgs {
        Cli::try_parse_from(std::iter::once("test").chain(list.iter().copied()))
            .unwrap()
            .etcd
    }

    #[test]
    fn flags_map_to_options() {
        let a = args(&[
            "--etcd-endpoints",
            "a:1,b:2",
            "--etcd-cacert",
            "ca.pem",
            "--etcd-cert",
            "c.pem",
            "--etcd-key",
            "k.pem",
            "--etcd-user",
            "root:pw:x",
        ]);
        let o = a.options();
        assert_eq!(o.endpoints, Some(vec!["a:1".into(), "b:2".into()]));
        assert_eq!(o.ca_file, Some("ca.pem".into()));
        assert_eq!(o.cert_file, Some("c.pem".into()));
        assert_eq!(o.key_file, Some("k.pem".into()));
        assert_eq!(o.username.as_deref(), Some("root"));
        assert_eq!(o.password.as_deref(), Some("pw:x"));
        // --etcd-password wins over the password after the colon.
        let b = args(&["--etcd-user", "root:pw", "--etcd-password", "other"]);
        assert_eq!(b.options().password.as_deref(), Some("other"));
    }

    #[test]
    fn flags_win_over_the_etcd_file_which_wins_over_the_toml_settings() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = dir.path().join("etcd.conf");
        std::fs::write(
            &yaml,
            "endpoints: [\"f:1\"]\nusername: fileuser\npassword: filepw\n\
             dial-timeout: 300ms\nauto-compact: 0\n",
        )
        .unwrap();
        let toml = EtcdOptions {
            endpoints: Some(vec!["t:1".into()]),
            dial_timeout: Some(Duration::from_secs(9)),
            operation_timeout: Some(Duration::from_secs(7)),
            ..EtcdOptions::default()
        };
        let path = yaml.display().to_string();
        let r = args(&["--etcd-config", &path, "--etcd-password", "flagpw"])
            .resolve(None, toml.clone())
            .unwrap();
        assert_eq!(r.settings.endpoints, ["http://f:1"]);
        assert_eq!(r.settings.user, Some(("fileuser".into(), "flagpw".into())));
        assert_eq!(r.settings.dial_timeout, Duration::from_millis(300));
        assert_eq!(r.settings.operation_timeout, Duration::from_secs(7));
        assert!(r.warning.unwrap().contains("auto-compact"));

        // The file may also be named by the TOML file; a flag names another one.
        let r = args(&[]).resolve(Some(yaml.clone()), toml.clone()).unwrap();
        assert_eq!(r.settings.endpoints, ["http://f:1"]);
        let r = args(&["--etcd-endpoints", "x:1"])
            .resolve(Some(yaml), toml.clone())
            .unwrap();
        assert_eq!(r.settings.endpoints, ["http://x:1"]);

        let r = args(&[]).resolve(None, toml).unwrap();
        assert_eq!(r.settings.endpoints, ["http://t:1"]);
        assert_eq!(r.warning, None);
        let missing = args(&["--etcd-config", "/nonexistent/etcd.conf"])
            .resolve(None, EtcdOptions::default())
            .unwrap_err();
        assert!(format!("{missing:#}").contains("/nonexistent/etcd.conf"));
    }
}
