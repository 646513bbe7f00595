//! The etcd client file of the Go agent (YAML, `--etcd-config`), so that its users can point
//! nsagent at the file they already have.
//!
//! Keys nsagent uses: [`USED_KEYS`]. Keys the Go agent knows but nsagent does not use
//! ([`UNUSED_KEYS`]) are named in one warning; any other key is an error. Durations are numbers
//! of nanoseconds or strings like `300ms`. An empty value counts as absent, as in Go.

use super::settings::{parse_duration, EtcdOptions};
use anyhow::{anyhow, bail, Context};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// Keys nsagent takes from the file.
pub const USED_KEYS: &[&str] = &[
    "endpoints",
    "dial-timeout",
    "operation-timeout",
    "insecure-transport",
    "insecure-skip-tls-verify",
    "cert-file",
    "key-file",
    "ca-file",
    "username",
    "password",
    "allow-delayed-start",
];

/// Keys of the Go agent's file that nsagent accepts but has no use for.
pub const UNUSED_KEYS: &[&str] = &[
    "auto-compact",
    "resync-after-reconnect",
    "reconnect-interval",
    "session-ttl",
    "expand-env-variables",
    "delayed-start",
];

/// What one etcd file says.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct EtcdFile {
    /// The settings it gives.
    pub options: EtcdOptions,
    /// Known keys it sets that nsagent does not use, sorted.
    pub unused_keys: Vec<String>,
}

impl EtcdFile {
    /// Reads and parses the file at `path`; errors name the file.
    pub fn load(path: &Path) -> anyhow::Result<EtcdFile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read etcd config file {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("etcd config file {}", path.display()))
    }

    /// Parses the YAML text of an etcd file; errors name the key.
    pub fn parse(text: &str) -> anyhow::Result<EtcdFile> {
        let map: BTreeMap<String, Value> = serde_saphyr::from_str(text)
            .map_err(|e| anyhow!("not a YAML mapping of keys: {}", e.without_snippet()))?;
        let mut file = EtcdFile::default();
        for (key, value) in map {
            if value.is_null() {
                continue;
            }
            if UNUSED_KEYS.contains(&key.as_str()) {
                file.unused_keys.push(key);
                continue;
            }
            file.set(&key, &value)
                .with_context(|| format!("key {key}"))?;
        }
        Ok(file)
    }

    /// The warning for known keys that are not used, if any.
    pub fn unused_warning(&self, path: &Path) -> Option<String> {
        (!self.unused_keys.is_empty()).then(|| {
            format!(
                "etcd config file {}: {} known from the Go agent but not used by nsagent",
                path.display(),
                self.unused_keys.join(", ")
            )
        })
    }

    fn set(&mut self, key: &str, value: &Value) -> anyhow::Result<()> {
        let o = &mut self.options;
        match key {
            "endpoints" => o.endpoints = Some(strings(value)?),
            "dial-timeout" => o.dial_timeout = Some(parse_duration(value)?),
            "operation-timeout" => o.operation_timeout = Some(parse_duration(value)?),
            "insecure-transport" => o.insecure_transport = Some(boolean(value)?),
            "insecure-skip-tls-verify" => o.insecure_skip_tls_verify = Some(boolean(value)?),
            "allow-delayed-start" => o.allow_delayed_start = Some(boolean(value)?),
            "cert-file" => o.cert_file = string(value)?.map(Into::into),
            "key-file" => o.key_file = string(value)?.map(Into::into),
            "ca-file" => o.ca_file = string(value)?.map(Into::into),
            "username" => o.username = string(value)?,
            "password" => o.password = string(value)?,
            _ => bail!(
                "unknown key (known: {}, {})",
                USED_KEYS.join(", "),
                UNUSED_KEYS.join(", ")
            ),
        }
        Ok(())
    }
}

fn boolean(value: &Value) -> anyhow::Result<bool> {
    value
        .as_bool()
        .ok_or_else(|| anyhow!("{value} is not true or false"))
}

/// A string; empty counts as absent.
fn string(value: &Value) -> anyhow::Result<Option<String>> {
    let s = value
        .as_str()
        .ok_or_else(|| anyhow!("{value} is not a string"))?;
    Ok((!s.is_empty()).then(|| s.to_string()))
}

fn strings(value: &Value) -> anyhow::Result<Vec<String>> {
    value
        .as_array()
        .ok_or_else(|| anyhow!("{value} is not a list"))?
        .iter()
        .map(|item| {
            item.as_str()
                .map(String::from)
                .ok_or_else(|| anyhow!("{item} is not a string"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn every_used_key_is_read() {
        let file = EtcdFile::parse(
            "# the Go agent's file\n\
             endpoints:\n  - \"10.0.0.1:2379\"\n  - https://10.0.0.2:2379\n\
             dial-timeout: 300ms\n\
             operation-timeout: 2000000000\n\
             insecure-transport: false\n\
             insecure-skip-tls-verify: true\n\
             cert-file: /etc/etcd/client.pem\n\
             key-file: /etc/etcd/client-key.pem\n\
             ca-file: /etc/etcd/ca.pem\n\
             username: agent\n\
             password: secret\n\
             allow-delayed-start: true\n",
        )
        .unwrap();
        let o = file.options;
        assert_eq!(
            o.endpoints,
            Some(vec!["10.0.0.1:2379".into(), "https://10.0.0.2:2379".into()])
        );
        assert_eq!(o.dial_timeout, Some(Duration::from_millis(300)));
        assert_eq!(o.operation_timeout, Some(Duration::from_secs(2)));
        assert_eq!(o.insecure_transport, Some(false));
        assert_eq!(o.insecure_skip_tls_verify, Some(true));
        assert_eq!(o.cert_file, Some("/etc/etcd/client.pem".into()));
        assert_eq!(o.key_file, Some("/etc/etcd/client-key.pem".into()));
        assert_eq!(o.ca_file, Some("/etc/etcd/ca.pem".into()));
        assert_eq!(o.username.as_deref(), Some("agent"));
        assert_eq!(o.password.as_deref(), Some("secret"));
        assert_eq!(o.allow_delayed_start, Some(true));
        assert!(file.unused_keys.is_empty());
    }

    #[test]
    fn the_go_agents_sample_file_is_accepted_with_a_warning() {
        // cn-infra's etcd.conf, with the placeholders filled in.
        let file = EtcdFile::parse(
            "endpoints:\n  - \"172.17.0.1:2379\"\n\
             dial-timeout: 100ms\noperation-timeout: 300ms\n\
             insecure-transport: false\ninsecure-skip-tls-verify: false\n\
             cert-file: \"\"\nkey-file:\nca-file: \"\"\n\
             auto-compact: 0\nresync-after-reconnect: false\n\
             allow-delayed-start: false\nreconnect-interval: 2s\n",
        )
        .unwrap();
        assert_eq!(file.options.cert_file, None);
        assert_eq!(file.options.key_file, None);
        assert_eq!(
            file.unused_keys,
            [
                "auto-compact",
                "reconnect-interval",
                "resync-after-reconnect"
            ]
        );
        let warning = file.unused_warning(Path::new("/etc/etcd.conf")).unwrap();
        assert_eq!(
            warning,
            "etcd config file /etc/etcd.conf: auto-compact, reconnect-interval, \
             resync-after-reconnect known from the Go agent but not used by nsagent"
        );
        assert_eq!(EtcdFile::default().unused_warning(Path::new("x")), None);
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let err = |text: &str| format!("{:#}", EtcdFile::parse(text).unwrap_err());
        let unknown = err("endpoints: [a:1]\nendpoint: b:2\n");
        assert!(
            unknown.starts_with("key endpoint: unknown key"),
            "{unknown}"
        );
        let duration = err("dial-timeout: soon\n");
        assert!(
            duration.starts_with("key dial-timeout: \"soon\""),
            "{duration}"
        );
        let boolean = err("insecure-transport: maybe\n");
        assert!(boolean.starts_with("key insecure-transport:"), "{boolean}");
        let list = err("endpoints: a:1\n");
        assert!(list.starts_with("key endpoints:"), "{list}");
        let syntax = err("endpoints:\n  - a\n b: [\n");
        assert!(!syntax.contains('\n'), "{syntax}");
        assert!(EtcdFile::parse("").unwrap() == EtcdFile::default());
    }

    #[test]
    fn errors_from_a_file_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etcd.conf");
        let missing = format!("{:#}", EtcdFile::load(&path).unwrap_err());
        assert!(missing.contains(&path.display().to_string()), "{missing}");
        std::fs::write(&path, "bogus: 1\n").unwrap();
        let unknown = format!("{:#}", EtcdFile::load(&path).unwrap_err());
        assert!(
            unknown.starts_with(&format!(
                "etcd config file {}: key bogus: unknown key",
                path.display()
            )),
            "{unknown}"
        );
    }
}
