//! Connecting to etcd: one member at a time, in the order the endpoints are listed.
//!
//! A [`Connection`] is bound to one member over one HTTP/2 connection (not a channel
//! balanced over all endpoints): when that member dies, every request and the watch stream on
//! it fail at once, and the caller connects again, which skips the dead member. TLS uses
//! rustls through etcd-client's `tls` feature; files are read on every connect, so renewed
//! certificates are picked up by the next reconnect.

use super::settings::{EtcdSettings, TlsSettings};
use anyhow::{anyhow, bail, Context};
use etcd_client::{Client, ConnectOptions, GetOptions};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

/// Interval of HTTP/2 keep-alive pings while a stream (the watch) is open, so that a member
/// that vanished without closing the connection is noticed. etcd closes connections that
/// ping more often than every 5 s (`--grpc-keepalive-min-time`) or without an open stream.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// Longest wait for the answer to a keep-alive ping.
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(3);

/// A client connected to one etcd member.
#[derive(Clone)]
pub struct Connection {
    /// The client; all its requests go to [`Connection::endpoint`].
    pub client: Client,
    /// URL of the member it is connected to.
    pub endpoint: String,
}

/// Connects to the first endpoint that accepts the connection, the TLS handshake and the
/// credentials and has a leader. Fails with one line naming each endpoint tried and why.
pub async fn connect(settings: &EtcdSettings) -> anyhow::Result<Connection> {
    let tls = match &settings.tls {
        Some(tls) => Some(
            TlsMaterial::load(tls)
                .with_context(|| format!("etcd at {}", settings.endpoint_list()))?,
        ),
        None => None,
    };
    let mut failures = Vec::new();
    for endpoint in &settings.endpoints {
        match connect_to(endpoint, settings, tls.as_ref()).await {
            Ok(client) => {
                return Ok(Connection {
                    client,
                    endpoint: endpoint.clone(),
                })
            }
            Err(cause) => failures.push(format!("{endpoint}: {}", explain(cause, settings))),
        }
    }
    bail!("cannot connect to etcd at {}", failures.join("; "))
}

/// The start-up check: connects and counts the keys under `prefix`, so that unreachable
/// endpoints, an untrusted certificate, a wrong password or a missing read permission fail at
/// once, in one line. Returns the endpoint it reached.
pub async fn check(settings: &EtcdSettings, prefix: &str) -> anyhow::Result<String> {
    let mut connection = connect(settings).await?;
    let options = GetOptions::new().with_prefix().with_count_only();
    connection
        .client
        .get(prefix, Some(options))
        .await
        .map_err(|e| {
            anyhow!(
                "etcd at {}: cannot read {prefix}: {}",
                connection.endpoint,
                describe_etcd(&e)
            )
        })?;
    Ok(connection.endpoint)
}

/// Connects to one member; the error is the cause in a few words.
async fn connect_to(
    url: &str,
    settings: &EtcdSettings,
    tls: Option<&TlsMaterial>,
) -> Result<Client, String> {
    let mut endpoint = Endpoint::from_shared(url.to_string())
        .map_err(|e| describe(&e))?
        .connect_timeout(settings.dial_timeout)
        .timeout(settings.operation_timeout)
        .http2_keep_alive_interval(KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
        .keep_alive_while_idle(false);
    if let Some(tls) = tls {
        endpoint = tls.apply(endpoint).map_err(|e| describe(&e))?;
    }
    let channel = tokio::time::timeout(settings.dial_timeout, endpoint.connect())
        .await
        .map_err(|_| format!("no connection within {:?}", settings.dial_timeout))?
        .map_err(|e| describe(&e))?;
    let mut options = ConnectOptions::new()
        .with_require_leader(true)
        .with_auto_token_refresh(true);
    if let Some((name, password)) = &settings.user {
        options = options.with_user(name, password);
    }
    let within = |what: &str| format!("{what} within {:?}", settings.operation_timeout);
    let mut client = tokio::time::timeout(
        settings.operation_timeout,
        Client::from_channel(etcd_client::Channel::Tonic(channel), Some(options)),
    )
    .await
    .map_err(|_| within("no answer to the authentication"))?
    .map_err(|e| describe_etcd(&e))?;
    // The member must answer, and have a leader (`with_require_leader`).
    tokio::time::timeout(settings.operation_timeout, client.status())
        .await
        .map_err(|_| within("no status answer"))?
        .map_err(|e| describe_etcd(&e))?;
    Ok(client)
}

/// TLS configuration read from the files of [`TlsSettings`].
struct TlsMaterial {
    config: ClientTlsConfig,
    /// Replaces certificate verification (`insecure-skip-tls-verify`).
    verifier: Option<Arc<dyn rustls::client::danger::ServerCertVerifier>>,
}

impl TlsMaterial {
    fn load(settings: &TlsSettings) -> anyhow::Result<TlsMaterial> {
        let mut config = ClientTlsConfig::new();
        if let Some((cert, key)) = &settings.identity {
            let cert_pem = read_pem(cert, "client certificate", |pem| {
                CertificateDer::pem_slice_iter(pem).next().is_some()
            })?;
            let key_pem = read_pem(key, "client key", |pem| {
                PrivateKeyDer::from_pem_slice(pem).is_ok()
            })?;
            config = config.identity(Identity::from_pem(cert_pem, key_pem));
        }
        let mut verifier = None;
        if settings.skip_verify {
            verifier = Some(Arc::new(skip_verify::AcceptAnyServer::new())
                as Arc<dyn rustls::client::danger::ServerCertVerifier>);
        } else if let Some(ca) = &settings.ca_file {
            let pem = read_pem(ca, "CA certificate", |pem| {
                CertificateDer::pem_slice_iter(pem).next().is_some()
            })?;
            config = config.ca_certificate(Certificate::from_pem(pem));
        } else {
            config = config.with_native_roots();
        }
        Ok(TlsMaterial { config, verifier })
    }

    fn apply(&self, endpoint: Endpoint) -> Result<Endpoint, tonic::transport::Error> {
        match &self.verifier {
            Some(v) => endpoint.tls_config_with_verifier(self.config.clone(), v.clone()),
            None => endpoint.tls_config(self.config.clone()),
        }
    }
}

/// Reads a PEM file and checks with `holds` that it contains what it should.
fn read_pem(path: &Path, what: &str, holds: impl Fn(&[u8]) -> bool) -> anyhow::Result<Vec<u8>> {
    let pem =
        std::fs::read(path).with_context(|| format!("cannot read {what} {}", path.display()))?;
    if !holds(&pem) {
        return Err(anyhow!("{} holds no PEM {what}", path.display()));
    }
    Ok(pem)
}

/// Puts a plain explanation around TLS failures that rustls words tersely. A server that
/// requires a client certificate closes the connection of a client without one, sometimes
/// before its alert is read.
fn explain(cause: String, settings: &EtcdSettings) -> String {
    let without_identity = settings.tls.as_ref().is_some_and(|t| t.identity.is_none());
    if cause.contains("invalid peer certificate") {
        format!("etcd's server certificate is not trusted ({cause})")
    } else if ["BadCertificate", "CertificateRequired", "UnknownCA"]
        .iter()
        .any(|alert| cause.contains(&format!("fatal alert: {alert}")))
    {
        format!("etcd refused the client certificate or its absence ({cause})")
    } else if cause.contains("no native certs found") {
        "no CA file given (--etcd-cacert, ca-file) and no system trust roots found".to_string()
    } else if without_identity
        && ["connection closed", "broken pipe", "reset by peer"]
            .iter()
            .any(|ended| cause.contains(ended))
    {
        format!("{cause} (does etcd require a client certificate? --etcd-cert, --etcd-key)")
    } else {
        cause
    }
}

/// The cause of an etcd-client error in a few words: the gRPC message etcd sent, or the chain
/// of transport errors without their repetitions.
fn describe_etcd(error: &etcd_client::Error) -> String {
    match error {
        etcd_client::Error::GRpcStatus(status) => describe_status(status),
        etcd_client::Error::TransportError(e) => describe(e),
        other => describe(other),
    }
}

/// An etcd-client error as an error whose message is [`describe_etcd`]'s few words.
pub(super) fn etcd_error(error: etcd_client::Error) -> anyhow::Error {
    anyhow!(describe_etcd(&error))
}

/// A gRPC status: etcd's own message, or the transport error behind an unavailable member.
fn describe_status(status: &tonic::Status) -> String {
    use std::error::Error;
    if let Some(source) = status.source() {
        return describe(source);
    }
    match status.message() {
        "" => format!("{:?}", status.code()),
        message => message.to_string(),
    }
}

/// An error and its sources joined by ": ", leaving out empty and generic links
/// ("transport error") and messages already contained in the previous one.
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(e) = next {
        let text = e.to_string();
        let generic = text.is_empty() || text == "transport error";
        if !generic && !parts.last().is_some_and(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    if parts.is_empty() {
        return error.to_string();
    }
    parts.join(": ")
}

/// `insecure-skip-tls-verify`: any server certificate is accepted (its handshake signature
/// is still checked), as Go's `InsecureSkipVerify` does.
mod skip_verify {
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::{
        verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms,
    };
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{DigitallySignedStruct, Error, SignatureScheme};

    #[derive(Debug)]
    pub(super) struct AcceptAnyServer {
        algorithms: WebPkiSupportedAlgorithms,
    }

    impl AcceptAnyServer {
        pub(super) fn new() -> Self {
            AcceptAnyServer {
                algorithms: rustls::crypto::ring::default_provider()
                    .signature_verification_algorithms,
            }
        }
    }

    impl ServerCertVerifier for AcceptAnyServer {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp_response: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            verify_tls12_signature(message, cert, dss, &self.algorithms)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            verify_tls13_signature(message, cert, dss, &self.algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.algorithms.supported_schemes()
        }
    }
}
