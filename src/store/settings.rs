//! How to reach etcd: endpoints, TLS files, credentials and timeouts, gathered from layered
//! sources ([`EtcdOptions`], each field optional) and checked into one [`EtcdSettings`].
//!
//! The TLS rules are those of the Go agent's etcd file: TLS is used when a CA, certificate or
//! key file is given, unless `insecure-transport` is set; `https://` endpoints always use it.

use anyhow::{anyhow, bail, ensure};
use serde::{Deserialize, Deserializer};
use std::path::PathBuf;
use std::time::Duration;

/// Endpoint used when none is given.
pub const DEFAULT_ENDPOINT: &str = "127.0.0.1:2379";
/// Timeout for connecting to one endpoint (the Go agent's default `dial-timeout`).
pub const DEFAULT_DIAL_TIMEOUT: Duration = Duration::from_secs(1);
/// Timeout for one request (the Go agent's default `operation-timeout`).
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(3);

/// etcd connection settings from one source (flags, the etcd YAML file, the TOML file). Every
/// field is optional; [`EtcdOptions::or`] layers sources and [`EtcdOptions::resolve`] checks
/// the result and fills in defaults.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct EtcdOptions {
    /// Endpoints: `HOST:PORT`, `http://HOST:PORT` or `https://HOST:PORT`.
    pub endpoints: Option<Vec<String>>,
    /// CA certificate(s) that sign the server certificates (PEM).
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM).
    pub cert_file: Option<PathBuf>,
    /// Key of the client certificate (PEM).
    pub key_file: Option<PathBuf>,
    /// User name for etcd authentication.
    pub username: Option<String>,
    /// Password of `username`.
    pub password: Option<String>,
    /// Timeout for connecting to one endpoint.
    pub dial_timeout: Option<Duration>,
    /// Timeout for one request.
    pub operation_timeout: Option<Duration>,
    /// Plain HTTP even when TLS files are given.
    pub insecure_transport: Option<bool>,
    /// Accept any server certificate (TLS without verification; for tests only).
    pub insecure_skip_tls_verify: Option<bool>,
    /// At start, keep retrying an unreachable etcd instead of failing.
    pub allow_delayed_start: Option<bool>,
}

impl std::fmt::Debug for EtcdOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdOptions")
            .field("endpoints", &self.endpoints)
            .field("ca_file", &self.ca_file)
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("dial_timeout", &self.dial_timeout)
            .field("operation_timeout", &self.operation_timeout)
            .field("insecure_transport", &self.insecure_transport)
            .field("insecure_skip_tls_verify", &self.insecure_skip_tls_verify)
            .field("allow_delayed_start", &self.allow_delayed_start)
            .finish()
    }
}

/// TLS towards etcd.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    /// CA file; `None` = the system's trust roots.
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key files.
    pub identity: Option<(PathBuf, PathBuf)>,
    /// Accept any server certificate (`insecure-skip-tls-verify`).
    pub skip_verify: bool,
}

/// Checked etcd connection settings: what [`crate::store::connect`] needs.
#[derive(Clone, PartialEq, Eq)]
pub struct EtcdSettings {
    /// Endpoint URLs (`http://HOST:PORT` or `https://HOST:PORT`, all of one scheme), tried in
    /// this order.
    pub endpoints: Vec<String>,
    /// TLS settings; `Some` exactly when the endpoints are `https://`.
    pub tls: Option<TlsSettings>,
    /// User name and password for etcd authentication.
    pub user: Option<(String, String)>,
    /// Timeout for connecting to one endpoint.
    pub dial_timeout: Duration,
    /// Timeout for one request (not for the lifetime of a watch).
    pub operation_timeout: Duration,
    /// At start, keep retrying an unreachable etcd instead of failing.
    pub allow_delayed_start: bool,
}

impl std::fmt::Debug for EtcdSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdSettings")
            .field("endpoints", &self.endpoints)
            .field("tls", &self.tls)
            .field("user", &self.user.as_ref().map(|(name, _)| name))
            .field("dial_timeout", &self.dial_timeout)
            .field("operation_timeout", &self.operation_timeout)
            .field("allow_delayed_start", &self.allow_delayed_start)
            .finish()
    }
}

impl EtcdSettings {
    /// Settings for a comma-separated endpoint list with defaults for everything else.
    pub fn with_endpoints(list: &str) -> anyhow::Result<Self> {
        EtcdOptions {
            endpoints: Some(split_endpoints(list)),
            ..EtcdOptions::default()
        }
        .resolve()
    }

    /// The endpoints joined by commas, for messages.
    pub fn endpoint_list(&self) -> String {
        self.endpoints.join(",")
    }
}

/// Splits a comma-separated endpoint list (blanks around items are ignored).
pub fn split_endpoints(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// Splits etcdctl's `NAME[:PASSWORD]` at the first colon.
pub fn split_user(value: &str) -> (String, Option<String>) {
    match value.split_once(':') {
        Some((name, password)) => (name.to_string(), Some(password.to_string())),
        None => (value.to_string(), None),
    }
}

/// The scheme of an endpoint, if it names one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scheme {
    Http,
    Https,
}

/// Splits `[http://|https://]HOST:PORT[/]` into its scheme and `HOST:PORT`.
fn parse_endpoint(item: &str) -> anyhow::Result<(Option<Scheme>, String)> {
    let (scheme, rest) = if let Some(rest) = item.strip_prefix("https://") {
        (Some(Scheme::Https), rest)
    } else if let Some(rest) = item.strip_prefix("http://") {
        (Some(Scheme::Http), rest)
    } else {
        (None, item)
    };
    let hostport = rest.strip_suffix('/').unwrap_or(rest);
    let valid = match hostport.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty()
                && !host.contains(['/', '@', '?', '#'])
                && port.parse::<u16>().is_ok_and(|p| p != 0)
        }
        None => false,
    };
    ensure!(
        valid,
        "etcd endpoint {item:?}: expected HOST:PORT, http://HOST:PORT or https://HOST:PORT"
    );
    Ok((scheme, hostport.to_string()))
}

impl EtcdOptions {
    /// Fills every field not set here from `lower` (a source of lower precedence).
    pub fn or(self, lower: EtcdOptions) -> EtcdOptions {
        EtcdOptions {
            endpoints: self.endpoints.or(lower.endpoints),
            ca_file: self.ca_file.or(lower.ca_file),
            cert_file: self.cert_file.or(lower.cert_file),
            key_file: self.key_file.or(lower.key_file),
            username: self.username.or(lower.username),
            password: self.password.or(lower.password),
            dial_timeout: self.dial_timeout.or(lower.dial_timeout),
            operation_timeout: self.operation_timeout.or(lower.operation_timeout),
            insecure_transport: self.insecure_transport.or(lower.insecure_transport),
            insecure_skip_tls_verify: self
                .insecure_skip_tls_verify
                .or(lower.insecure_skip_tls_verify),
            allow_delayed_start: self.allow_delayed_start.or(lower.allow_delayed_start),
        }
    }

    /// Checks the settings and fills in defaults: endpoints of one scheme, certificate and key
    /// given together, a password for the user. A zero timeout means the default, as in Go.
    pub fn resolve(self) -> anyhow::Result<EtcdSettings> {
        let listed = self
            .endpoints
            .unwrap_or_else(|| vec![DEFAULT_ENDPOINT.to_string()]);
        let parsed = listed
            .iter()
            .map(|item| parse_endpoint(item.trim()))
            .collect::<anyhow::Result<Vec<_>>>()?;
        ensure!(
            !parsed.is_empty(),
            "no etcd endpoint given (expected HOST:PORT[,HOST:PORT...])"
        );
        let identity = client_identity(self.cert_file, self.key_file)?;
        let files_given = self.ca_file.is_some() || identity.is_some();
        let use_tls = tls_wanted(
            common_scheme(&listed, &parsed)?,
            files_given,
            self.insecure_transport.unwrap_or(false),
            &listed,
        )?;
        let prefix = if use_tls { "https" } else { "http" };
        let endpoints = parsed
            .into_iter()
            .map(|(_, hostport)| format!("{prefix}://{hostport}"))
            .collect();
        let tls = use_tls.then(|| TlsSettings {
            ca_file: self.ca_file,
            identity,
            skip_verify: self.insecure_skip_tls_verify.unwrap_or(false),
        });
        let nonzero = |d: Option<Duration>| d.filter(|d| !d.is_zero());
        Ok(EtcdSettings {
            endpoints,
            tls,
            user: credentials(self.username, self.password)?,
            dial_timeout: nonzero(self.dial_timeout).unwrap_or(DEFAULT_DIAL_TIMEOUT),
            operation_timeout: nonzero(self.operation_timeout).unwrap_or(DEFAULT_OPERATION_TIMEOUT),
            allow_delayed_start: self.allow_delayed_start.unwrap_or(false),
        })
    }
}

/// The client certificate and key, which go together.
fn client_identity(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
) -> anyhow::Result<Option<(PathBuf, PathBuf)>> {
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some((cert, key))),
        (None, None) => Ok(None),
        (Some(cert), None) => bail!(
            "etcd client certificate {} given without its key (--etcd-key, key-file)",
            cert.display()
        ),
        (None, Some(key)) => bail!(
            "etcd client key {} given without its certificate (--etcd-cert, cert-file)",
            key.display()
        ),
    }
}

/// Whether to use TLS: `https://` endpoints always do, `http://` ones never (TLS files with
/// them are a mistake), `HOST:PORT` ones when TLS files are given, unless
/// `insecure-transport` is set (which contradicts `https://`).
fn tls_wanted(
    scheme: Option<Scheme>,
    files_given: bool,
    insecure_transport: bool,
    listed: &[String],
) -> anyhow::Result<bool> {
    match scheme {
        Some(Scheme::Https) => {
            ensure!(
                !insecure_transport,
                "etcd endpoints {} are https:// but insecure-transport is set",
                listed.join(",")
            );
            Ok(true)
        }
        Some(Scheme::Http) => {
            ensure!(
                !files_given || insecure_transport,
                "etcd endpoints {} are plain http:// but TLS files are given: use https:// or \
                 HOST:PORT",
                listed.join(",")
            );
            Ok(false)
        }
        None => Ok(files_given && !insecure_transport),
    }
}

/// The user and its password, which go together.
fn credentials(
    username: Option<String>,
    password: Option<String>,
) -> anyhow::Result<Option<(String, String)>> {
    match (username, password) {
        (Some(name), Some(password)) => {
            ensure!(!name.is_empty(), "empty etcd user name");
            Ok(Some((name, password)))
        }
        (Some(name), None) => bail!(
            "no password for etcd user {name} (--etcd-user NAME:PASSWORD, --etcd-password, \
             ETCD_PASSWORD or password in the etcd config file)"
        ),
        (None, Some(_)) => {
            bail!("an etcd password is given without a user (--etcd-user, ETCD_USER, username)")
        }
        (None, None) => Ok(None),
    }
}

/// The one scheme the endpoints name explicitly (`None` when all are `HOST:PORT`); mixing
/// `http://` and `https://` is an error.
fn common_scheme(
    listed: &[String],
    parsed: &[(Option<Scheme>, String)],
) -> anyhow::Result<Option<Scheme>> {
    let mut found: Option<Scheme> = None;
    for (scheme, _) in parsed {
        match (found, scheme) {
            (_, None) => {}
            (None, Some(s)) => found = Some(*s),
            (Some(a), Some(b)) if a == *b => {}
            (Some(_), Some(_)) => bail!(
                "etcd endpoints {} mix http:// and https://: use one scheme for all",
                listed.join(",")
            ),
        }
    }
    Ok(found)
}

/// Parses a duration as the Go agent's files write it: a number of nanoseconds, or a string
/// with units (`300ms`, `2s`, `1m30s`).
pub fn parse_duration(value: &serde_json::Value) -> anyhow::Result<Duration> {
    match value {
        serde_json::Value::Number(n) => n
            .as_u64()
            .map(Duration::from_nanos)
            .ok_or_else(|| anyhow!("{n} is not a whole, non-negative number of nanoseconds")),
        serde_json::Value::String(s) => humantime::parse_duration(s.trim())
            .map_err(|e| anyhow!("{s:?} is not a duration like 300ms or 2s: {e}")),
        other => bail!("{other} is not a duration (nanoseconds, or a string like 300ms)"),
    }
}

/// Serde helper for optional durations written as [`parse_duration`] reads them.
pub fn deserialize_duration<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    let value = serde_json::Value::deserialize(deserializer)?;
    parse_duration(&value)
        .map(Some)
        .map_err(|e| serde::de::Error::custom(format!("{e:#}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints(list: &str) -> anyhow::Result<Vec<String>> {
        EtcdSettings::with_endpoints(list).map(|s| s.endpoints)
    }

    #[test]
    fn endpoints_get_a_scheme_and_bad_ones_are_refused() {
        assert_eq!(
            endpoints("127.0.0.1:2379").unwrap(),
            ["http://127.0.0.1:2379"]
        );
        assert_eq!(
            endpoints("http://a:1, b:2 ,http://c:3/").unwrap(),
            ["http://a:1", "http://b:2", "http://c:3"]
        );
        assert_eq!(
            endpoints("https://a:1,b:2").unwrap(),
            ["https://a:1", "https://b:2"]
        );
        for bad in [
            "",
            ",",
            "a",
            "a:",
            ":1",
            "a:x",
            "a:0",
            "a:70000",
            "http://a/b:1",
            "ftp://a:1",
        ] {
            assert!(endpoints(bad).is_err(), "{bad:?} accepted");
        }
        let mixed = endpoints("http://a:1,https://b:2").unwrap_err().to_string();
        assert!(mixed.contains("mix http:// and https://"), "{mixed}");
    }

    #[test]
    fn tls_follows_the_go_agent_rules() {
        let base = || EtcdOptions {
            endpoints: Some(vec!["a:1".into()]),
            ..EtcdOptions::default()
        };
        let plain = base().resolve().unwrap();
        assert_eq!(plain.tls, None);
        assert_eq!(plain.endpoints, ["http://a:1"]);

        let with_ca = EtcdOptions {
            ca_file: Some("ca.pem".into()),
            ..base()
        }
        .resolve()
        .unwrap();
        assert_eq!(with_ca.endpoints, ["https://a:1"]);
        assert_eq!(
            with_ca.tls,
            Some(TlsSettings {
                ca_file: Some("ca.pem".into()),
                identity: None,
                skip_verify: false
            })
        );

        // insecure-transport wins over the files for HOST:PORT endpoints...
        let insecure = EtcdOptions {
            ca_file: Some("ca.pem".into()),
            insecure_transport: Some(true),
            ..base()
        };
        assert_eq!(insecure.clone().resolve().unwrap().tls, None);
        // ...and contradicts https://.
        let https = EtcdOptions {
            endpoints: Some(vec!["https://a:1".into()]),
            ..insecure
        };
        assert!(https.resolve().is_err());

        // https:// without files: system roots.
        let system = EtcdSettings::with_endpoints("https://a:1").unwrap();
        assert_eq!(system.tls.unwrap().ca_file, None);

        // TLS files with explicit http:// endpoints are a mistake.
        let http_with_ca = EtcdOptions {
            endpoints: Some(vec!["http://a:1".into()]),
            ca_file: Some("ca.pem".into()),
            ..EtcdOptions::default()
        };
        assert!(http_with_ca.resolve().is_err());

        let skip = EtcdOptions {
            endpoints: Some(vec!["https://a:1".into()]),
            insecure_skip_tls_verify: Some(true),
            ..EtcdOptions::default()
        };
        assert!(skip.resolve().unwrap().tls.unwrap().skip_verify);
    }

    #[test]
    fn certificate_and_key_go_together_and_users_need_a_password() {
        let cert_only = EtcdOptions {
            cert_file: Some("c.pem".into()),
            ..EtcdOptions::default()
        };
        assert!(cert_only.resolve().is_err());
        let key_only = EtcdOptions {
            key_file: Some("k.pem".into()),
            ..EtcdOptions::default()
        };
        assert!(key_only.resolve().is_err());
        let both = EtcdOptions {
            cert_file: Some("c.pem".into()),
            key_file: Some("k.pem".into()),
            ..EtcdOptions::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(
            both.tls.unwrap().identity,
            Some(("c.pem".into(), "k.pem".into()))
        );

        let user = |name: Option<&str>, password: Option<&str>| EtcdOptions {
            username: name.map(String::from),
            password: password.map(String::from),
            ..EtcdOptions::default()
        };
        assert!(user(Some("u"), None).resolve().is_err());
        assert!(user(None, Some("p")).resolve().is_err());
        let ok = user(Some("u"), Some("p")).resolve().unwrap();
        assert_eq!(ok.user, Some(("u".into(), "p".into())));
        assert_eq!(split_user("root:a:b"), ("root".into(), Some("a:b".into())));
        assert_eq!(split_user("root"), ("root".into(), None));
    }

    #[test]
    fn layers_fill_only_what_is_missing() {
        let high = EtcdOptions {
            endpoints: Some(vec!["a:1".into()]),
            password: Some("flag".into()),
            ..EtcdOptions::default()
        };
        let low = EtcdOptions {
            endpoints: Some(vec!["b:2".into()]),
            username: Some("file".into()),
            password: Some("file".into()),
            dial_timeout: Some(Duration::from_millis(300)),
            ..EtcdOptions::default()
        };
        let s = high.or(low).resolve().unwrap();
        assert_eq!(s.endpoints, ["http://a:1"]);
        assert_eq!(s.user, Some(("file".into(), "flag".into())));
        assert_eq!(s.dial_timeout, Duration::from_millis(300));
        assert_eq!(s.operation_timeout, DEFAULT_OPERATION_TIMEOUT);

        let zero = EtcdOptions {
            dial_timeout: Some(Duration::ZERO),
            ..EtcdOptions::default()
        };
        assert_eq!(zero.resolve().unwrap().dial_timeout, DEFAULT_DIAL_TIMEOUT);
    }

    #[test]
    fn durations_are_nanoseconds_or_strings_with_units() {
        let d = |v: serde_json::Value| parse_duration(&v);
        assert_eq!(
            d(serde_json::json!(300_000_000)).unwrap(),
            Duration::from_millis(300)
        );
        assert_eq!(
            d(serde_json::json!("300ms")).unwrap(),
            Duration::from_millis(300)
        );
        assert_eq!(d(serde_json::json!("2s")).unwrap(), Duration::from_secs(2));
        assert_eq!(
            d(serde_json::json!("1m30s")).unwrap(),
            Duration::from_secs(90)
        );
        assert!(d(serde_json::json!(-1)).is_err());
        assert!(d(serde_json::json!(1.5)).is_err());
        assert!(d(serde_json::json!("soon")).is_err());
        assert!(d(serde_json::json!(true)).is_err());
    }

    #[test]
    fn debug_output_hides_passwords() {
        let options = EtcdOptions {
            username: Some("root".into()),
            password: Some("s3cret".into()),
            ..EtcdOptions::default()
        };
        assert!(!format!("{options:?}").contains("s3cret"));
        assert!(!format!("{:?}", options.resolve().unwrap()).contains("s3cret"));
    }
}
