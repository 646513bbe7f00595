//! Certificates generated for a test (rcgen): a CA, a server certificate for 127.0.0.1 and
//! localhost, and a client certificate, written as PEM files into a temporary directory.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use std::path::PathBuf;

/// PEM files of one test's certificate authority and the certificates it signed.
pub struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// Generates a CA (common name `ca_name`), a server and a client certificate signed by it.
    pub fn generate(ca_name: &str) -> Pki {
        let dir = tempfile::tempdir().expect("tempdir for certificates");
        let pki = Pki { dir };
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.distinguished_name.push(DnType::CommonName, ca_name);
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
        pki.write("ca.pem", &ca_cert.pem());
        let issuer = Issuer::new(ca, ca_key);
        for (name, sans, usage) in [
            (
                "server",
                vec!["127.0.0.1".to_string(), "localhost".to_string()],
                vec![
                    ExtendedKeyUsagePurpose::ServerAuth,
                    ExtendedKeyUsagePurpose::ClientAuth,
                ],
            ),
            ("client", vec![], vec![ExtendedKeyUsagePurpose::ClientAuth]),
        ] {
            let key = KeyPair::generate().expect("key");
            let mut params = CertificateParams::new(sans).expect("params");
            params.distinguished_name.push(DnType::CommonName, name);
            params.extended_key_usages = usage;
            params.key_usages = vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ];
            let cert = params.signed_by(&key, &issuer).expect("certificate");
            pki.write(&format!("{name}.pem"), &cert.pem());
            pki.write(&format!("{name}-key.pem"), &key.serialize_pem());
        }
        pki
    }

    fn write(&self, name: &str, pem: &str) {
        std::fs::write(self.dir.path().join(name), pem).expect("write PEM file");
    }

    /// The CA certificate.
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The server certificate (127.0.0.1, localhost).
    pub fn server_cert(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }

    /// The key of the server certificate.
    pub fn server_key(&self) -> PathBuf {
        self.dir.path().join("server-key.pem")
    }

    /// The client certificate.
    pub fn client_cert(&self) -> PathBuf {
        self.dir.path().join("client.pem")
    }

    /// The key of the client certificate.
    pub fn client_key(&self) -> PathBuf {
        self.dir.path().join("client-key.pem")
    }

    /// A path in the certificate directory where no file exists.
    pub fn missing(&self) -> PathBuf {
        self.dir.path().join("missing-key.pem")
    }
}
